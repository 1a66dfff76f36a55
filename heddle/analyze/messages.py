"""What an analyzer reports: Istio's message types (code, level, name) and one finding."""

from __future__ import annotations

from dataclasses import dataclass
from enum import IntEnum

from heddle.api.diagnostics import ResourceRef, SourcePosition
from heddle.api.problems import format_path
from heddle.api.yaml_documents import PathKey

DOCS_URL = "https://istio.io/latest/docs/reference/config/analysis/{code}/"


class Level(IntEnum):
    """Ordered so that `level >= threshold` reads as Istio's `--failure-threshold`."""

    INFO = 0
    WARNING = 1
    ERROR = 2

    @property
    def label(self) -> str:
        return self.name.capitalize()

    @classmethod
    def parse(cls, text: str) -> Level:
        try:
            return cls[text.upper()]
        except KeyError:
            raise ValueError(f"unknown level {text!r}: use Error, Warning or Info") from None


@dataclass(frozen=True)
class MessageType:
    code: str
    name: str
    level: Level


def _type(code: int, name: str, level: Level) -> MessageType:
    return MessageType(f"IST{code:04d}", name, level)


E, W, INFO = Level.ERROR, Level.WARNING, Level.INFO
DEPRECATED = _type(2, "Deprecated", W)
REFERENCED_RESOURCE_NOT_FOUND = _type(101, "ReferencedResourceNotFound", E)
PORT_NAME_NOT_UNDER_NAMING_CONVENTION = _type(118, "PortNameIsNotUnderNamingConvention", INFO)
EXTERNAL_NAME_SERVICE_INVALID_PORT_NAME = _type(
    150, "ExternalNameServiceTypeInvalidPortName", W)
INVALID_TELEMETRY_PROVIDER = _type(157, "InvalidTelemetryProvider", W)
CONFLICTING_TELEMETRY_SELECTORS = _type(159, "ConflictingTelemetryWorkloadSelectors", E)
MULTIPLE_TELEMETRIES_WITHOUT_SELECTORS = _type(
    160, "MultipleTelemetriesWithoutWorkloadSelectors", E)
SCHEMA_VALIDATION_ERROR = _type(106, "SchemaValidationError", E)
CONFLICTING_MESH_GATEWAY_VS_HOSTS = _type(109, "ConflictingMeshGatewayVirtualServiceHosts", E)
CONFLICTING_SIDECAR_SELECTORS = _type(110, "ConflictingSidecarWorkloadSelectors", E)
MULTIPLE_SIDECARS_WITHOUT_SELECTORS = _type(111, "MultipleSidecarsWithoutWorkloadSelectors", E)
VS_DESTINATION_PORT_SELECTOR_REQUIRED = _type(
    112, "VirtualServiceDestinationPortSelectorRequired", E)
NO_MATCHING_WORKLOADS_FOUND = _type(127, "NoMatchingWorkloadsFound", W)
NO_SERVER_CERT_VERIFICATION_DESTINATION = _type(
    128, "NoServerCertificateVerificationDestinationLevel", W)
NO_SERVER_CERT_VERIFICATION_PORT = _type(129, "NoServerCertificateVerificationPortLevel", W)
VS_UNREACHABLE_RULE = _type(130, "VirtualServiceUnreachableRule", W)
VS_INEFFECTIVE_MATCH = _type(131, "VirtualServiceIneffectiveMatch", INFO)
VS_HOST_NOT_FOUND_IN_GATEWAY = _type(132, "VirtualServiceHostNotFoundInGateway", W)
SERVICE_ENTRY_ADDRESSES_REQUIRED = _type(134, "ServiceEntryAddressesRequired", W)
REFERENCED_INTERNAL_GATEWAY = _type(165, "ReferencedInternalGateway", W)
ENVOY_FILTER_RELATIVE_OPERATION = _type(151, "EnvoyFilterUsesRelativeOperation", W)
ENVOY_FILTER_REPLACE_INCORRECTLY = _type(152, "EnvoyFilterUsesReplaceOperationIncorrectly", E)
ENVOY_FILTER_ADD_INCORRECTLY = _type(153, "EnvoyFilterUsesAddOperationIncorrectly", E)
ENVOY_FILTER_REMOVE_INCORRECTLY = _type(154, "EnvoyFilterUsesRemoveOperationIncorrectly", E)
ENVOY_FILTER_RELATIVE_WITH_PROXY_VERSION = _type(
    155, "EnvoyFilterUsesRelativeOperationWithProxyVersion", W)
GATEWAY_DUPLICATE_CERTIFICATE = _type(138, "GatewayDuplicateCertificate", W)
INGRESS_ROUTE_RULES_NOT_AFFECTED = _type(140, "IngressRouteRulesNotAffected", W)
CONFLICTING_GATEWAYS = _type(145, "ConflictingGateways", E)
JWT_CLAIM_ROUTING_WITHOUT_REQUEST_AUTHN = _type(
    149, "JwtClaimBasedRoutingWithoutRequestAuthN", E)
INVALID_GATEWAY_CREDENTIAL = _type(161, "InvalidGatewayCredential", E)
GATEWAY_PORT_NOT_DEFINED_ON_SERVICE = _type(162, "GatewayPortNotDefinedOnService", W)
NEGATIVE_CONDITION_STATUS = _type(171, "NegativeConditionStatus", W)
DR_SUBSET_NOT_SELECT_PODS = _type(173, "DestinationRuleSubsetNotSelectPods", E)
UNKNOWN_DR_HOST = _type(174, "UnknownDestinationRuleHost", W)
CONFLICTING_SERVICE_ENTRY_PROTOCOL = _type(177, "ConflictingServiceEntryProtocol", W)
INEFFECTIVE_SELECTOR = _type(166, "IneffectiveSelector", W)
INEFFECTIVE_POLICY = _type(167, "IneffectivePolicy", W)

ALL_TYPES = tuple(v for v in list(globals().values()) if isinstance(v, MessageType))
BY_NAME = {t.name: t for t in ALL_TYPES}


@dataclass(frozen=True)
class Message:
    """One finding: of a type, about a resource, saying what is wrong and how to fix it."""

    type: MessageType
    resource: ResourceRef
    text: str
    fix: str = ""
    position: SourcePosition | None = None
    path: PathKey = ()  # the field it is about, from the document's root

    @property
    def description(self) -> str:
        where = f"{format_path(self.path)}: " if self.path else ""
        fix = f". Fix: {self.fix}" if self.fix else ""
        return f"{where}{self.text}{fix}"

    @property
    def level(self) -> Level:
        return self.type.level

    @property
    def origin(self) -> str:
        return str(self.resource)

    @property
    def reference(self) -> str:
        where = f" {self.position.file}:{self.position.line}" if self.position else ""
        return f"{self.resource}{where}"

    @property
    def documentation_url(self) -> str:
        return DOCS_URL.format(code=self.type.code.lower())

    def __str__(self) -> str:
        return f"{self.level.label} [{self.type.code}] ({self.reference}) {self.description}"

    def as_dict(self) -> dict[str, str]:
        """The fields of an `istioctl analyze -o json` entry."""
        return {"code": self.type.code, "level": self.level.label, "message": self.description,
                "origin": self.origin, "reference": self.reference,
                "documentationUrl": self.documentation_url}
