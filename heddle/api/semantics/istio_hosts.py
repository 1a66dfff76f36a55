"""Host names as Istio checks them: DNS-1123 labels, a wildcard only in the first label
(`*`, `*.example.com`, `*-suffix.example.com`, `*prefix.example.com`), the auto-generated SNI
form `outbound_.PORT_._.HOST` on a gateway-bound VirtualService, `NAMESPACE/HOST` in Gateway
servers and Sidecar egress. Each function returns what is wrong, or None."""

from __future__ import annotations

import ipaddress
import re

_LABEL = "[a-zA-Z0-9](?:[-a-zA-Z0-9]*[a-zA-Z0-9])?"
DNS1123_LABEL = re.compile(f"^{_LABEL}$")
# A first label: `*`, or a label optionally after `*` or `*-`.
_WILDCARD_LABEL = re.compile(rf"^(\*|(\*|\*-)?{_LABEL})$")
_MAX_LABEL = 63


def is_dns1123_label(value: str) -> bool:
    return len(value) <= _MAX_LABEL and bool(DNS1123_LABEL.match(value))


def is_ip(value: str) -> bool:
    try:
        ipaddress.ip_address(value)
    except ValueError:
        return False
    return True


def _preconditions(name: str) -> str | None:
    if len(name) > 255:
        return f"domain name {name!r} is too long (at most 255 characters)"
    if not name:
        return "an empty domain name is not allowed"
    return None


def dns1123_labels_problem(domain: str) -> str | None:
    parts = domain.split(".")
    if parts[-1].isdigit():
        return f"domain name {domain!r}: the top-level domain {parts[-1]!r} is all digits"
    for i, label in enumerate(parts):
        if i == len(parts) - 1 and label == "":
            return None  # a trailing dot, as in `istio.io.`
        if not is_dns1123_label(label):
            return f"domain name {domain!r}: label {label!r} is not a DNS-1123 label"
    return None


def fqdn_problem(name: str) -> str | None:
    return _preconditions(name) or dns1123_labels_problem(name)


def wildcard_domain_problem(domain: str) -> str | None:
    """A DNS name whose first label may be a wildcard (Istio's ValidateWildcardDomain)."""
    problem = _preconditions(domain)
    if problem:
        return problem
    first, dot, rest = domain.partition(".")
    if len(first) > _MAX_LABEL or not _WILDCARD_LABEL.match(first):
        return f"domain name {domain!r}: label {first!r} is not a DNS-1123 label or wildcard"
    return dns1123_labels_problem(rest) if dot else None


def gateway_bound_domain_problem(sni: bool, domain: str) -> str | None:
    """As wildcard_domain_problem, and where the VirtualService routes on SNI also the
    auto-generated `outbound_.PORT_._.HOST` names of AUTO_PASSTHROUGH gateways."""
    problem = _preconditions(domain)
    if problem:
        return problem
    if sni and domain.startswith("outbound_"):
        parts = domain.split("_")
        if len(parts) < 4:
            return f"domain name {domain!r} does not follow outbound_.<port>_._.<hostname>"
        port, hostname = parts[1].strip("."), parts[3].strip(".")
        if parts[0] != "outbound":
            return f"domain name {domain!r}: label {parts[0]!r} is not outbound"
        if not re.search(r"[0-9]", port):
            return f"domain name {domain!r}: {port!r} is not a port number"
        if not re.search(r"[a-zA-Z]", hostname):
            return f"domain name {domain!r}: {hostname!r} is not a host name"
        return None
    return wildcard_domain_problem(domain)


def partial_wildcard_problem(host: str) -> str | None:
    if "*" in host and host != "*" and not host.startswith("*."):
        return f"partial wildcard {host!r} is not allowed"
    return None


def _hostname_part_problems(hostname: str, is_gateway: bool) -> list[str]:
    problems = []
    if hostname != "*" and "." not in hostname:
        problems.append(f"short name {hostname!r} is not allowed: write a fully qualified "
                        "name")
    problem = wildcard_domain_problem(hostname)
    if problem and not (is_gateway and is_ip(hostname)):
        problems.append(problem)  # a Gateway may name an IP address
    partial = partial_wildcard_problem(hostname)
    if partial:
        problems.append(partial)
    return problems


def namespaced_host_problems(host: str, is_gateway: bool) -> list[str]:
    """`NAMESPACE/HOST` as Gateway servers and Sidecar egress listeners write it. A Sidecar
    namespace may be `~NS` (every namespace but NS); a Gateway host may leave out the
    namespace."""
    namespace, slash, hostname = host.partition("/")
    if not slash:
        if is_gateway:
            return _hostname_part_problems(host, True)
        return [f"host {host!r} must be of the form namespace/dnsName"]
    problems = []
    if not namespace or not hostname:
        problems.append("the namespace and the dnsName of a host cannot be empty")
    if not is_gateway:
        bare = namespace.removeprefix("~")
        if bare not in ("", "*", ".") and not is_dns1123_label(bare):
            problems.append(f"invalid namespace {namespace!r} in sidecar")
    elif namespace not in ("*", ".") and not is_dns1123_label(namespace):
        problems.append(f"invalid namespace {namespace!r} in gateway")
    return problems + _hostname_part_problems(hostname, is_gateway)
