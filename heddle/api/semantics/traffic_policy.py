"""Istio's rules for traffic policies (DestinationRule, its subsets and port settings, and a
Sidecar's inbound connection pools): connection pools, load balancers, localities, outlier
detection, client TLS, tunnels."""

from __future__ import annotations

from typing import Any

from heddle.api.diagnostics import Severity
from heddle.api.problems import FieldProblem, PathKey
from heddle.api.semantics.common import items, mapping
from heddle.api.semantics.durations import duration_problems
from heddle.api.semantics.istio_hosts import fqdn_problem, is_ip

_POLICY_PARTS = ("outlierDetection", "connectionPool", "loadBalancer", "tls")
_TOPOLOGY_LABELS = {"topology.kubernetes.io/region", "topology.kubernetes.io/zone",
                    "topology.istio.io/subzone"}
_MAGLEV_MAX = 5000011


def _error(path: PathKey, message: str, fix: str) -> FieldProblem:
    return FieldProblem(path, message, fix)


def _warning(path: PathKey, message: str, fix: str) -> FieldProblem:
    return FieldProblem(path, message, fix, Severity.WARNING)


def is_prime(n: int) -> bool:
    """Envoy's test, which Istio copies: 1, 2 and 3 count as prime."""
    if 0 < n < 4:
        return True
    if n % 2 == 0:
        return False
    return all(n % f for f in range(3, int(n ** 0.5) + 1, 2))


def _non_negative(path: PathKey, block: dict[str, Any], names: tuple[str, ...],
                  ) -> list[FieldProblem]:
    return [_error((*path, name), f"{name} must not be negative", "use 0 or more")
            for name in names if isinstance(block.get(name), int) and block[name] < 0]


def connection_pool_problems(path: PathKey, pool: Any) -> list[FieldProblem]:
    if pool is None:
        return []
    pool = mapping(pool)
    if pool.get("http") is None and pool.get("tcp") is None:
        return [_error(path, "a connection pool must have at least one field",
                       "set tcp or http settings, or remove connectionPool")]
    problems: list[FieldProblem] = []
    if pool.get("http") is not None:
        http = mapping(pool["http"])
        here = (*path, "http")
        problems += _non_negative(here, http, ("http1MaxPendingRequests", "http2MaxRequests",
                                               "maxRequestsPerConnection", "maxRetries",
                                               "maxConcurrentStreams"))
        problems += duration_problems((*here, "idleTimeout"), http.get("idleTimeout"))
        if http.get("h2UpgradePolicy") == "UPGRADE" and http.get("useClientProtocol"):
            problems.append(_error((*here, "useClientProtocol"), "useClientProtocol must not "
                                   "be true when h2UpgradePolicy is UPGRADE",
                                   "keep one of them"))
        if http.get("http2KeepAlive") is not None:
            keepalive = mapping(http["http2KeepAlive"])
            for name in ("interval", "timeout"):
                if keepalive.get(name) is None:
                    problems.append(_error((*here, "http2KeepAlive"), f"http2KeepAlive needs "
                                           f"{name}", f"set http2KeepAlive.{name}"))
                else:
                    problems += duration_problems((*here, "http2KeepAlive", name),
                                                  keepalive[name])
    if pool.get("tcp") is not None:
        tcp = mapping(pool["tcp"])
        here = (*path, "tcp")
        problems += _non_negative(here, tcp, ("maxConnections",))
        for name in ("connectTimeout", "maxConnectionDuration"):
            problems += duration_problems((*here, name), tcp.get(name))
        idle = tcp.get("idleTimeout")
        if idle not in ("0s", "0", "0ms"):  # 0s turns the idle timeout off
            problems += duration_problems((*here, "idleTimeout"), idle)
        keepalive = mapping(tcp.get("tcpKeepalive"))
        for name in ("time", "interval"):
            problems += duration_problems((*here, "tcpKeepalive", name), keepalive.get(name))
    return problems


def outlier_detection_problems(path: PathKey, outlier: Any) -> list[FieldProblem]:
    if outlier is None:
        return []
    outlier = mapping(outlier)
    problems: list[FieldProblem] = []
    for name in ("baseEjectionTime", "interval"):
        problems += duration_problems((*path, name), outlier.get(name))
    if outlier.get("consecutiveErrors"):
        problems.append(_warning((*path, "consecutiveErrors"), "consecutiveErrors is "
                                 "deprecated", "use consecutiveGatewayErrors or "
                                               "consecutive5xxErrors"))
    local = outlier.get("consecutiveLocalOriginFailures")
    if not outlier.get("splitExternalLocalOriginErrors") and isinstance(local, int) and local:
        problems.append(_error((*path, "consecutiveLocalOriginFailures"),
                               "consecutiveLocalOriginFailures needs "
                               "splitExternalLocalOriginErrors: true",
                               "set splitExternalLocalOriginErrors: true"))
    for name in ("maxEjectionPercent", "minHealthPercent"):
        percent = outlier.get(name)
        if isinstance(percent, int) and not 0 <= percent <= 100:
            problems.append(_error((*path, name), f"{name} {percent} is not between 0 and 100",
                                   "use a value from 0 to 100"))
    return problems


def _localities_problem(localities: list[str]) -> str | None:
    """Istio's validateLocalities: one trailing `*` at most, no empty parts, no overlaps."""
    seen: dict[str, Any] = {}
    for locality in localities:
        stars = locality.count("*")
        if stars and (stars > 1 or not locality.endswith("*")):
            return f"locality {locality}: at most one '*', and only at the end"
        if "*" in seen:
            return f"locality {locality} overlaps an earlier one"
        parts = locality.split("/", 2)
        if any(not p for p in parts):
            return f"locality {locality} has an empty region, zone or subzone"
        region = parts[0]
        zones = seen.get(region)
        if len(parts) == 1:
            if zones is not None:
                return f"locality {locality} overlaps an earlier one"
            seen[region] = {"*": {"*"}}
            continue
        if zones is None:
            seen[region] = {parts[1]: {"*"} if len(parts) == 2 else {parts[2]}}
            continue
        if "*" in zones:
            return f"locality {locality} overlaps an earlier one"
        if len(parts) == 2:
            if parts[1] in zones:
                return f"locality {locality} overlaps an earlier one"
            zones[parts[1]] = {"*"}
            continue
        subzones = zones.setdefault(parts[1], set())
        if "*" in subzones or parts[2] in subzones:
            return f"locality {locality} overlaps an earlier one"
        subzones.add(parts[2])
    return None


def _failover(path: PathKey, failovers: list[tuple[int, Any]], what: str,
              ) -> list[FieldProblem]:
    problems: list[FieldProblem] = []
    for i, failover in failovers:
        failover = mapping(failover)
        source, target = str(failover.get("from", "")), str(failover.get("to", ""))
        here = (*path, "failover", i)
        if source == target:
            problems.append(_error(here, f"{what} failover must name different regions",
                                   "fail over to another region"))
        if "/" in source or "/" in target:
            problems.append(_error(here, f"{what} failover names regions only",
                                   "write the region, without zone or subzone"))
        if "*" in source or "*" in target:
            problems.append(_error(here, f"{what} failover regions cannot contain '*'",
                                   "name the regions"))
    return problems


def _locality_lb(path: PathKey, lb: dict[str, Any], outlier: Any) -> list[FieldProblem]:
    distribute, failover = items(lb.get("distribute")), items(lb.get("failover"))
    priority = [str(p) for _, p in items(lb.get("failoverPriority"))]
    if distribute and failover:
        return [_error(path, "distribute and failover cannot both be set", "keep one of them")]
    if failover and priority:
        for label in priority:
            if label in _TOPOLOGY_LABELS:
                return [_error((*path, "failoverPriority"), f"failover and the topology label "
                                                            f"{label} in failoverPriority "
                                                            "cannot both be set",
                               "remove the topology label, or failover")]
    problems: list[FieldProblem] = []
    sources = []
    for i, item in distribute:
        item = mapping(item)
        sources.append(str(item.get("from", "")))
        weights = mapping(item.get("to"))
        for weight in weights.values():
            if not isinstance(weight, int) or not 1 <= weight <= 100:
                return [_error((*path, "distribute", i, "to"),
                               "locality weights must be from 1 to 100",
                               "weigh each locality from 1 to 100")]
        total = sum(weights.values())
        if total != 100:
            return [_error((*path, "distribute", i, "to"), f"locality weights add up to "
                                                           f"{total}, not 100",
                           "make the weights add up to 100")]
        problem = _localities_problem([str(k) for k in weights])
        if problem:
            problems.append(_error((*path, "distribute", i, "to"), problem,
                                   "list each locality once"))
    problem = _localities_problem(sources)
    if problem:
        problems.append(_error((*path, "distribute"), problem, "list each locality once"))
    if (failover or priority) and outlier is None:
        problems.append(_warning(path, "failover needs an outlier detection policy",
                                 "add outlierDetection"))
    return problems + _failover(path, failover, "locality lb")


def _zone_aware_lb(path: PathKey, lb: dict[str, Any], outlier: Any) -> list[FieldProblem]:
    problems: list[FieldProblem] = []
    priority = [str(p) for _, p in items(lb.get("failoverPriority"))]
    for label in priority:
        if label in _TOPOLOGY_LABELS:
            problems.append(_error((*path, "failoverPriority"), f"failoverPriority for zone "
                                   f"aware lb must not use the topology label {label}",
                                   "region and zone routing is automatic: remove it"))
    failover = items(lb.get("failover"))
    if (failover or priority) and outlier is None:
        problems.append(_warning(path, "failover needs an outlier detection policy",
                                 "add outlierDetection"))
    return problems + _failover(path, failover, "zone aware lb")


def load_balancer_problems(path: PathKey, lb: Any, outlier: Any) -> list[FieldProblem]:
    if lb is None:
        return []
    lb = mapping(lb)
    problems: list[FieldProblem] = []
    if "simple" in lb and "consistentHash" in lb:
        problems.append(_error(path, "simple and consistentHash cannot both be set",
                               "keep one of them"))
    consistent = lb.get("consistentHash")
    if consistent is not None:
        consistent = mapping(consistent)
        here = (*path, "consistentHash")
        cookie = consistent.get("httpCookie")
        if cookie is not None:
            cookie = mapping(cookie)
            if not cookie.get("name"):
                problems.append(_error((*here, "httpCookie", "name"),
                                       "an httpCookie needs a name", "name the cookie"))
            names: set[str] = set()
            for i, attribute in items(cookie.get("attributes")):
                name = str(mapping(attribute).get("name") or "")
                if not name:
                    problems.append(_error((*here, "httpCookie", "attributes", i),
                                           "a cookie attribute needs a name",
                                           "name the attribute"))
                elif name in names:
                    problems.append(_error((*here, "httpCookie", "attributes", i),
                                           f"duplicate cookie attribute {name!r}",
                                           "give each attribute once"))
                names.add(name)
        if consistent.get("minimumRingSize"):
            problems.append(_warning((*here, "minimumRingSize"), "minimumRingSize is "
                                     "deprecated", "use ringHash.minimumRingSize"))
            if consistent.get("ringHash") is not None or consistent.get("maglev") is not None:
                problems.append(_error(here, "only one of minimumRingSize or maglev/ringHash "
                                             "can be set", "move minimumRingSize into "
                                                           "ringHash"))
        if consistent.get("maglev") is not None:
            size = mapping(consistent["maglev"]).get("tableSize", 0)
            size_path = (*here, "maglev", "tableSize")
            if not size:
                problems.append(_error(size_path, "maglev needs a tableSize",
                                       "set a prime tableSize, e.g. 65537"))
            elif isinstance(size, int):
                if size >= _MAGLEV_MAX:
                    problems.append(_error(size_path, f"maglev tableSize must be less than "
                                                      f"{_MAGLEV_MAX}", "use e.g. 65537"))
                if not is_prime(size):
                    problems.append(_error(size_path, f"maglev tableSize {size} is not prime",
                                           "use a prime number, e.g. 65537"))
    locality, zone_aware = lb.get("localityLbSetting"), lb.get("zoneAwareLbSetting")
    if locality is not None and zone_aware is not None:
        problems.append(_error(path, "localityLbSetting and zoneAwareLbSetting cannot both be "
                                     "set", "keep one of them"))
    if locality is not None:
        problems += _locality_lb((*path, "localityLbSetting"), mapping(locality), outlier)
    if zone_aware is not None:
        problems += _zone_aware_lb((*path, "zoneAwareLbSetting"), mapping(zone_aware), outlier)
    warmup = lb.get("warmup")
    if warmup is not None:
        warmup = mapping(warmup)
        if warmup.get("duration") is None:
            problems.append(_error((*path, "warmup"), "warmup needs a duration",
                                   "set warmup.duration"))
        else:
            problems += duration_problems((*path, "warmup", "duration"), warmup["duration"])
        minimum = warmup.get("minimumPercent")
        if isinstance(minimum, int | float) and minimum > 100:
            problems.append(_error((*path, "warmup", "minimumPercent"),
                                   "minimumPercent must be at most 100", "use 0 to 100"))
        aggression = warmup.get("aggression")
        if isinstance(aggression, int | float) and aggression <= 0:
            problems.append(_error((*path, "warmup", "aggression"),
                                   "aggression must be more than 0", "use e.g. 1.0"))
    return problems


def client_tls_problems(path: PathKey, tls: Any, namespace: str) -> list[FieldProblem]:
    """Istio's agent.ValidateTLS for a client's TLS settings."""
    if tls is None:
        return []
    tls = mapping(tls)
    problems: list[FieldProblem] = []
    mode, credential = tls.get("mode"), str(tls.get("credentialName") or "")
    if credential.startswith("configmap://"):
        ns, _, name = credential.removeprefix("configmap://").rpartition("/")
        if not name or (ns or namespace) != namespace:
            problems.append(_error((*path, "credentialName"), "a configmap:// credentialName "
                                   f"must name a ConfigMap of the namespace {namespace!r}",
                                   "write configmap://NAME"))
    if tls.get("insecureSkipVerify"):
        clash = (["caCertificates", "credentialName", "subjectAltNames"] if mode == "SIMPLE"
                 else ["caCertificates", "subjectAltNames"] if mode == "MUTUAL" else [])
        if any(tls.get(k) is not None and tls.get(k) != "" for k in clash):
            problems.append(_error(path, f"{', '.join(clash)} cannot be set when "
                                         "insecureSkipVerify is true",
                                   "drop them, or drop insecureSkipVerify"))
    if mode in ("SIMPLE", "MUTUAL") and credential:
        if any(tls.get(k) for k in ("clientCertificate", "caCertificates", "privateKey",
                                    "caCrl")):
            problems.append(_error(path, "clientCertificate, privateKey, caCertificates and "
                                         "caCrl cannot be set with credentialName",
                                   "keep credentialName (the Secret holds them) or the file "
                                   "paths"))
        return problems
    if mode == "MUTUAL":
        for name, what in (("clientCertificate", "a client certificate"),
                           ("privateKey", "a private key")):
            if not tls.get(name):
                problems.append(_error((*path, name), f"MUTUAL TLS needs {what}",
                                       f"set {name} or credentialName, or use ISTIO_MUTUAL"))
    return problems


def _policy_parts(path: PathKey, policy: dict[str, Any], namespace: str,
                  ) -> list[FieldProblem]:
    outlier = policy.get("outlierDetection")
    return [*outlier_detection_problems((*path, "outlierDetection"), outlier),
            *connection_pool_problems((*path, "connectionPool"), policy.get("connectionPool")),
            *load_balancer_problems((*path, "loadBalancer"), policy.get("loadBalancer"),
                                    outlier),
            *client_tls_problems((*path, "tls"), policy.get("tls"), namespace)]


def _tunnel(path: PathKey, tunnel: dict[str, Any]) -> list[FieldProblem]:
    problems: list[FieldProblem] = []
    if tunnel.get("protocol") not in (None, "", "CONNECT", "POST"):
        problems.append(_error((*path, "protocol"), "the tunnel protocol must be CONNECT or "
                                                    "POST", "write CONNECT or POST"))
    host = str(tunnel.get("targetHost") or "")
    if fqdn_problem(host) and not is_ip(host):
        problems.append(_error((*path, "targetHost"), f"tunnel targetHost {host!r} is neither "
                                                      "a host name nor an IP",
                               "name the tunnel's target"))
    port = tunnel.get("targetPort", 0)
    if not isinstance(port, int) or not 1 <= port <= 65535:
        problems.append(_error((*path, "targetPort"), f"tunnel targetPort {port} must be in "
                                                      "the range 1..65535",
                               "use a port from 1 to 65535"))
    return problems


def traffic_policy_problems(path: PathKey, policy: Any, namespace: str) -> list[FieldProblem]:
    if policy is None:
        return []
    policy = mapping(policy)
    if not any(policy.get(k) is not None for k in (
            *_POLICY_PARTS, "portLevelSettings", "tunnel", "proxyProtocol", "retryBudget")):
        return [_error(path, "a traffic policy must have at least one field",
                       "set a policy, or remove trafficPolicy")]
    if policy.get("tunnel") is not None and policy.get("proxyProtocol") is not None:
        return [_error(path, "tunnel and proxyProtocol cannot both be set", "keep one of them")]
    problems = _policy_parts(path, policy, namespace)
    for i, port_policy in items(policy.get("portLevelSettings")):
        here = (*path, "portLevelSettings", i)
        if port_policy is None:
            problems.append(_error(here, "a port traffic policy may not be null", "remove it"))
            continue
        port_policy = mapping(port_policy)
        if port_policy.get("port") is None:
            problems.append(_error((*here, "port"), "a port traffic policy needs a port",
                                   "add port.number"))
        if not any(port_policy.get(k) is not None for k in _POLICY_PARTS):
            problems.append(_error(here, "a port traffic policy must have at least one field",
                                   "set a policy for the port, or remove it"))
        else:
            problems += _policy_parts(here, port_policy, namespace)
    if policy.get("tunnel") is not None:
        problems += _tunnel((*path, "tunnel"), mapping(policy["tunnel"]))
    version = mapping(policy.get("proxyProtocol")).get("version")
    if version not in (None, "V1", "V2"):
        problems.append(_error((*path, "proxyProtocol", "version"),
                               f"invalid proxy protocol version {version!r}",
                               "use V1 or V2"))
    return problems
