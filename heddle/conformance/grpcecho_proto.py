"""The message types of the upstream gRPC echo service (`echo-basic`'s grpcecho.proto:
package `gateway_api_conformance.echo_basic.grpcecho`, service `GrpcEcho` with the unary
methods Echo, EchoTwo and EchoThree), built from a descriptor here, since no protoc runs in
this project. Field names and numbers are the .proto's, so that the bytes are its.
"""

from __future__ import annotations

from google.protobuf import descriptor_pb2, descriptor_pool, message, message_factory

PACKAGE = "gateway_api_conformance.echo_basic.grpcecho"
SERVICE = f"{PACKAGE}.GrpcEcho"
METHODS = ("Echo", "EchoTwo", "EchoThree")

_STRING = descriptor_pb2.FieldDescriptorProto.TYPE_STRING
_MESSAGE = descriptor_pb2.FieldDescriptorProto.TYPE_MESSAGE
_OPTIONAL = descriptor_pb2.FieldDescriptorProto.LABEL_OPTIONAL
_REPEATED = descriptor_pb2.FieldDescriptorProto.LABEL_REPEATED

# (message, [(field, number, type or message name, repeated)])
_MESSAGES: tuple[tuple[str, tuple[tuple[str, int, str, bool], ...]], ...] = (
    ("Header", (("key", 1, "string", False), ("value", 2, "string", False))),
    ("Context", (("namespace", 1, "string", False), ("ingress", 2, "string", False),
                 ("service_name", 3, "string", False), ("pod", 4, "string", False))),
    ("TLSAssertions", (("version", 1, "string", False),
                       ("negotiated_protocol", 2, "string", False),
                       ("server_name", 3, "string", False),
                       ("cipher_suite", 4, "string", False),
                       ("peer_certificates", 5, "string", True))),
    ("Assertions", (("fully_qualified_method", 1, "string", False),
                    ("headers", 2, "Header", True), ("authority", 3, "string", False),
                    ("context", 4, "Context", False),
                    ("tls_assertions", 5, "TLSAssertions", False))),
    ("EchoRequest", ()),
    ("EchoResponse", (("assertions", 1, "Assertions", False),
                      ("request", 2, "EchoRequest", False))),
)


def _file() -> descriptor_pb2.FileDescriptorProto:
    proto = descriptor_pb2.FileDescriptorProto(name="grpcecho.proto", package=PACKAGE,
                                               syntax="proto3")
    for name, fields in _MESSAGES:
        msg = proto.message_type.add(name=name)
        for field, number, kind, repeated in fields:
            added = msg.field.add(name=field, number=number,
                                  label=_REPEATED if repeated else _OPTIONAL)
            if kind == "string":
                added.type = _STRING
            else:
                added.type, added.type_name = _MESSAGE, f".{PACKAGE}.{kind}"
    service = proto.service.add(name="GrpcEcho")
    for method in METHODS:
        service.method.add(name=method, input_type=f".{PACKAGE}.EchoRequest",
                           output_type=f".{PACKAGE}.EchoResponse")
    return proto


_POOL = descriptor_pool.DescriptorPool()
_POOL.Add(_file())


def _message_class(name: str) -> type[message.Message]:
    return message_factory.GetMessageClass(_POOL.FindMessageTypeByName(f"{PACKAGE}.{name}"))


EchoRequest = _message_class("EchoRequest")
EchoResponse = _message_class("EchoResponse")


def full_method(method: str) -> str:
    """`/gateway_api_conformance.echo_basic.grpcecho.GrpcEcho/Echo`, as gRPC names a call."""
    return f"/{SERVICE}/{method}"
