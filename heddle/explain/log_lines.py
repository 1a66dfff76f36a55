"""Reading an access log line in Istio's default text format, with the fields Heddle adds
(see heddle.translate.access_logs), or a JSON line with Istio's keys.

Light on purpose (no translation, no protobuf): the CLI parses the log before it asks the
control plane about what it found."""

from __future__ import annotations

import json
import re
from pathlib import Path

# The positional fields of Istio's text format, in order (a "[time]" first, quoted fields
# without their quotes); Heddle's key=value fields follow.
TEXT_FIELDS = (
    "start_time", "request", "response_code", "response_flags", "response_code_details",
    "connection_termination_details", "upstream_transport_failure_reason", "bytes_received",
    "bytes_sent", "duration", "upstream_service_time", "x_forwarded_for", "user_agent",
    "request_id", "authority", "upstream_host", "upstream_cluster", "upstream_local_address",
    "downstream_local_address", "downstream_remote_address", "requested_server_name",
    "route_name",
)
_TOKEN = re.compile(r'\[[^\]]*\]|"(?:[^"\\]|\\.)*"|\S+')
_REQUEST = re.compile(r"(\S+) (\S+) (\S+)")
LAST_LINES = 20_000  # how far back `--last-failure` looks


def parse(line: str) -> dict[str, str] | None:
    """The fields of one line (`-` for a value Envoy had none for), or None when the line is
    not an access log line (Envoy's own log, a TCP line without a request)."""
    line = line.strip()
    if line.startswith("{"):
        try:
            found = json.loads(line)
        except ValueError:
            return None
        if not isinstance(found, dict) or "response_code" not in found:
            return None
        return {str(k): "-" if v is None else str(v) for k, v in found.items()}
    if not line.startswith("["):
        return None
    tokens = [t[1:-1] if t[:1] in '["' else t for t in _TOKEN.findall(line)]
    if len(tokens) < len(TEXT_FIELDS) or not tokens[2].isdigit():
        return None
    fields = dict(zip(TEXT_FIELDS, tokens, strict=False))
    request = _REQUEST.fullmatch(fields.pop("request"))
    if request is not None:
        fields["method"], fields["path"], fields["protocol"] = request.groups()
    for token in tokens[len(TEXT_FIELDS):]:
        key, sep, value = token.partition("=")
        if sep:
            fields[key] = value
    return fields


def failed(fields: dict[str, str]) -> bool:
    """A request that did not succeed: a 4xx/5xx (or no answer at all, code 0), or one Envoy
    flagged (a retry, a reset, a fault)."""
    code = int(fields.get("response_code", "0") or 0)
    return code == 0 or code >= 400 or fields.get("response_flags", "-") not in ("-", "")


def last_failure(log: Path, limit: int = LAST_LINES) -> dict[str, str] | None:
    """The last failed request in an Envoy log (its last `limit` lines)."""
    try:
        lines = log.read_text(errors="replace").splitlines()[-limit:]
    except OSError:
        return None
    for line in reversed(lines):
        fields = parse(line)
        if fields is not None and failed(fields):
            return fields
    return None
