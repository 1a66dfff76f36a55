"""Istio's proto merge for EnvoyFilter MERGE: protobuf's merge (fields set in the patch win,
messages merge field by field, lists append, map entries are replaced) except that a
Duration is replaced whole, and MERGE_AND_REPLACE_LIST replaces lists instead of appending.
A filter's typed_config merges as istiod's MergeAnyWithAny does: both unpacked, merged as
the messages they are, packed again."""

from __future__ import annotations

from google.protobuf import any_pb2, duration_pb2
from google.protobuf.message import Message

from heddle.api.envoy_protos import message_class

_DURATION = duration_pb2.Duration.DESCRIPTOR.full_name


def merge(target: Message, patch: Message, replace_lists: bool = False) -> None:
    for field, value in patch.ListFields():
        if field.is_repeated:
            if field.message_type is not None and field.message_type.GetOptions().map_entry:
                getattr(target, field.name).MergeFrom(value)  # entries replace by key
                continue
            held = getattr(target, field.name)
            if replace_lists:
                del held[:]
            held.extend(value)
        elif field.message_type is None:
            setattr(target, field.name, value)
        elif field.message_type.full_name == _DURATION or not target.HasField(field.name):
            getattr(target, field.name).CopyFrom(value)
        else:
            merge(getattr(target, field.name), value, replace_lists)


class AnyMergeError(Exception):
    pass


def merge_any(target: any_pb2.Any, patch: any_pb2.Any) -> any_pb2.Any:
    """The patch's typed config merged into the target's: the same type merges as messages;
    a different type replaces it (istiod fails the merge then; Heddle says so)."""
    if target.type_url != patch.type_url:
        raise AnyMergeError(f"cannot merge a {patch.type_url.rsplit('/', 1)[-1]} into a "
                            f"{target.type_url.rsplit('/', 1)[-1]}")
    kind = message_class(target.type_url.rsplit("/", 1)[-1])
    if kind is None:
        raise AnyMergeError(f"unknown type {target.type_url}")
    held, extra = kind(), kind()
    target.Unpack(held)
    patch.Unpack(extra)
    merge(held, extra)
    packed = any_pb2.Any()
    packed.Pack(held)
    return packed
