"""Port Istio's validation test tables (Go struct literals) into YAML facts for Heddle's oracle.

Reads the test files of pkg/config/validation/ at the Istio commit of the shared corpus from
the bare mirror, evaluates each table row's Go composite literal into the YAML a user would
write (protojson field names, enums by name, durations as "1s", wrappers as plain values,
zero-valued scalars left out as protojson leaves them out), and writes per case: id, kind,
metadata, spec and Istio's verdict (valid / invalid / warning). Rows whose input is not a
literal (helper calls, variables) are skipped and counted.

Usage: python scripts/port_istio_validation_cases.py [OUT]  (default
tests/compat/istio_validation_cases.yaml)
"""

from __future__ import annotations

import re
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

MIRROR = "/work/.mirror/istio+istio/repo"
COMMIT_FILE = Path("/work/shared/corpus/istio/COMMIT")
ROOT = "pkg/config/validation/"

# Go message type -> the kind a whole resource of it is.
KINDS = {
    "networking.VirtualService": ("networking.istio.io/v1", "VirtualService"),
    "networking.DestinationRule": ("networking.istio.io/v1", "DestinationRule"),
    "networking.Gateway": ("networking.istio.io/v1", "Gateway"),
    "networking.ServiceEntry": ("networking.istio.io/v1", "ServiceEntry"),
    "networking.Sidecar": ("networking.istio.io/v1", "Sidecar"),
    "networking.WorkloadEntry": ("networking.istio.io/v1", "WorkloadEntry"),
    "networking.WorkloadGroup": ("networking.istio.io/v1", "WorkloadGroup"),
    "networking.EnvoyFilter": ("networking.istio.io/v1alpha3", "EnvoyFilter"),
    "security_beta.AuthorizationPolicy": ("security.istio.io/v1", "AuthorizationPolicy"),
    "security_beta.RequestAuthentication": ("security.istio.io/v1", "RequestAuthentication"),
    "security_beta.PeerAuthentication": ("security.istio.io/v1", "PeerAuthentication"),
    "telemetry.Telemetry": ("telemetry.istio.io/v1", "Telemetry"),
}
# Whole-resource tables: (file, test function, how a row's verdict is read).
TABLES = [
    ("validation_test.go", "TestValidateGateway"),
    ("validation_test.go", "TestValidateVirtualService"),
    ("virtualservice_test.go", "TestValidateChainingVirtualService"),
    ("validation_test.go", "TestValidateWorkloadEntry"),
    ("validation_test.go", "TestValidateWorkloadGroup"),
    ("validation_test.go", "TestValidateDestinationRule"),
    ("validation_test.go", "TestValidateServiceEntries"),
    ("validation_test.go", "TestValidateAuthorizationPolicy"),
    ("validation_test.go", "TestValidateSidecar"),
    ("validation_test.go", "TestValidateRequestAuthentication"),
    ("validation_test.go", "TestValidatePeerAuthentication"),
    ("validation_test.go", "TestValidateTelemetry"),
    ("envoyfilter/envoyfilter_test.go", "TestValidateEnvoyFilter"),
]
# Tables of one part of a resource, each row placed into a resource that is valid without it.
# Each is (file, test) -> (the resource's Go type, a spec it is valid in, where the part goes:
# dotted fields, `[]` making a one-element list).
PART_TABLES: dict[tuple[str, str], tuple[str, dict[str, Any], str]] = {
    ("validation_test.go", "TestValidateServer"): ("networking.Gateway", {}, "servers[]"),
    ("validation_test.go", "TestValidateTrafficPolicy"):
        ("networking.DestinationRule", {"host": "reviews"}, "trafficPolicy"),
    ("validation_test.go", "TestValidateConnectionPool"):
        ("networking.DestinationRule", {"host": "reviews"}, "trafficPolicy.connectionPool"),
    ("validation_test.go", "TestValidateLoadBalancer"):
        ("networking.DestinationRule", {"host": "reviews"}, "trafficPolicy.loadBalancer"),
    ("validation_test.go", "TestValidateOutlierDetection"):
        ("networking.DestinationRule", {"host": "reviews"}, "trafficPolicy.outlierDetection"),
    ("validation_test.go", "TestValidateHTTPRoute"):
        ("networking.VirtualService", {"hosts": ["foo.bar"]}, "http[]"),
    ("validation_test.go", "TestValidateRouteDestination"):
        ("networking.VirtualService", {"hosts": ["foo.bar"]}, "tcp[].route"),
    ("validation_test.go", "TestValidateDestination"):
        ("networking.VirtualService", {"hosts": ["foo.bar"]}, "http[].route[].destination"),
    ("virtualservice_test.go", "TestValidateRootHTTPRoute"):
        ("networking.VirtualService", {"hosts": ["foo.bar"]}, "http[]"),
    # A VirtualService without hosts is a delegate.
    ("virtualservice_test.go", "TestValidateDelegateHTTPRoute"):
        ("networking.VirtualService", {}, "http[]"),
}
CONSTANTS = {"someName": "foo", "someNamespace": "bar",
             "constants.DefaultAuthenticationPolicyName": "default",
             "gvk.KubernetesGateway.Group": "gateway.networking.k8s.io",
             "gvk.KubernetesGateway.Kind": "Gateway", "gvk.Service.Group": "",
             "gvk.Service.Kind": "Service",
             "wellknown.HTTPConnectionManager": "envoy.filters.network.http_connection_manager",
             # TestValidateLoadBalancer's local `duration` (one hour)
             "duration": "3600s"}


class Unsupported(Exception):
    """A row whose input is not a plain literal."""


@dataclass
class Composite:
    type: str
    elements: list[tuple[Any, Any]] = field(default_factory=list)  # (key or None, value)


@dataclass
class Ident:
    name: str


@dataclass
class Call:
    func: str
    args: list[Any]


@dataclass
class Binary:
    op: str
    left: Any
    right: Any


_TOKEN = re.compile(r"""
    (?P<space>\s+|//[^\n]*|/\*.*?\*/)
  | (?P<raw>`[^`]*`)
  | (?P<str>"(?:[^"\\\n]|\\.)*")
  | (?P<char>'(?:[^'\\]|\\.)')
  | (?P<num>\d+\.\d*(?:[eE][-+]?\d+)?|\d+(?:[eE][-+]?\d+)?|0[xX][0-9a-fA-F]+)
  | (?P<ident>[A-Za-z_][A-Za-z0-9_]*)
  | (?P<punct>:=|[{}\[\]().,:&*+\-/<>!=;|])
""", re.S | re.X)


def tokens(text: str) -> list[tuple[str, str]]:
    out, pos = [], 0
    while pos < len(text):
        m = _TOKEN.match(text, pos)
        if not m:
            raise SyntaxError(f"cannot read {text[pos:pos + 40]!r}")
        pos = m.end()
        if m.lastgroup != "space":
            out.append((m.lastgroup or "", m.group()))
    return out


def _unquote(token: str) -> str:
    if token.startswith("`"):
        return token[1:-1]
    return str(yaml.safe_load(token))  # YAML double-quoted strings share Go's escapes


class Parser:
    def __init__(self, toks: list[tuple[str, str]], pos: int = 0) -> None:
        self.toks, self.pos = toks, pos

    def peek(self, offset: int = 0) -> str:
        i = self.pos + offset
        return self.toks[i][1] if i < len(self.toks) else ""

    def take(self, expected: str | None = None) -> str:
        value = self.toks[self.pos][1]
        if expected is not None and value != expected:
            raise SyntaxError(f"expected {expected!r}, got {value!r} at token {self.pos}")
        self.pos += 1
        return value

    def type_name(self) -> str:
        parts = []
        while True:
            tok = self.peek()
            if tok == "[":
                self.take("[")
                if self.peek() == "]":
                    self.take("]")
                    parts.append("[]")
                    continue
                raise SyntaxError("array types are not used here")
            if tok == "*":
                parts.append(self.take())
                continue
            if tok == "map":
                self.take()
                self.take("[")
                key = self.type_name()
                self.take("]")
                parts.append(f"map[{key}]")
                continue
            if tok == "struct":
                raise Unsupported("anonymous struct")
            name = self.take()
            while self.peek() == "." and self.toks[self.pos + 1][0] == "ident":
                self.take(".")
                name += "." + self.take()
            parts.append(name)
            return "".join(parts)

    def composite_body(self, type_name: str) -> Composite:
        self.take("{")
        elements: list[tuple[Any, Any]] = []
        # Elements of a slice or map literal may leave out their type: it is the element's.
        inner = ""
        if type_name.startswith("[]"):
            inner = type_name[2:]
        elif type_name.startswith("map["):
            inner = type_name[type_name.index("]") + 1:] if type_name.count("[") == 1 else (
                type_name.rpartition("]")[2])
        while self.peek() != "}":
            value = self.element(inner)
            key = None
            if self.peek() == ":":
                self.take(":")
                key, value = value, self.element(inner)
            elements.append((key, value))
            if self.peek() == ",":
                self.take(",")
        self.take("}")
        return Composite(type_name, elements)

    def element(self, elided_type: str = "") -> Any:
        if self.peek() == "{":
            return self.composite_body(elided_type)
        return self.expr()

    def expr(self) -> Any:
        left = self.unary()
        while self.peek() in ("*", "+", "-", "/", "|"):
            op = self.take()
            left = Binary(op, left, self.unary())
        return left

    def unary(self) -> Any:
        tok = self.peek()
        if tok == "&":
            self.take()
            return self.unary()
        if tok == "-":
            self.take()
            return Binary("-", 0, self.unary())
        if tok == "(":
            self.take()
            value = self.expr()
            self.take(")")
            return value
        return self.primary()

    def primary(self) -> Any:
        kind, tok = self.toks[self.pos]
        if kind in ("str", "raw"):
            self.pos += 1
            return _unquote(tok)
        if kind == "num":
            self.pos += 1
            return float(tok) if "." in tok or ("e" in tok.lower() and not tok.startswith(
                "0x")) else int(tok, 0)
        if tok in ("true", "false"):
            self.pos += 1
            return tok == "true"
        if tok == "nil":
            self.pos += 1
            return None
        if tok in ("[", "map", "*"):
            type_name = self.type_name()
            return self.composite_body(type_name)
        if kind != "ident":
            raise Unsupported(f"unexpected {tok!r}")
        name = self.type_name()
        if self.peek() == "{":
            return self.composite_body(name)
        if self.peek() == "(":
            self.take("(")
            args = []
            while self.peek() != ")":
                args.append(self.expr())
                if self.peek() == ",":
                    self.take(",")
            self.take(")")
            return Call(name, args)
        return Ident(name)


# Values of Go expressions, in YAML terms.
_TIME_UNITS = {"time.Nanosecond": 1e-9, "time.Microsecond": 1e-6, "time.Millisecond": 1e-3,
               "time.Second": 1.0, "time.Minute": 60.0, "time.Hour": 3600.0}


def _seconds(value: Any) -> float:
    if isinstance(value, int | float):
        return float(value) * 1e-9  # a bare time.Duration is in nanoseconds
    if isinstance(value, Ident) and value.name in _TIME_UNITS:
        return _TIME_UNITS[value.name]
    if isinstance(value, Binary):
        if value.op == "*":
            left = value.left if not isinstance(value.left, int | float) else None
            right = value.right if not isinstance(value.right, int | float) else None
            if left is None and right is not None:
                return float(value.left) * _seconds(right)
            if right is None and left is not None:
                return _seconds(left) * float(value.right)
            if left is None and right is None:
                return float(value.left) * float(value.right) * 1e-9
            raise Unsupported("duration times duration")
        if value.op in "+-":
            a = 0.0 if value.left == 0 else _seconds(value.left)
            b = _seconds(value.right)
            return a + b if value.op == "+" else a - b
        if value.op == "/":
            return _seconds(value.left) / float(evaluate(value.right))
    raise Unsupported(f"duration {value!r}")


def _duration(seconds: float) -> str:
    text = f"{seconds:.9f}".rstrip("0").rstrip(".")
    return f"{text}s"


def _enum(name: str) -> str | None:
    """`networking.ServerTLSSettings_ISTIO_MUTUAL` -> ISTIO_MUTUAL."""
    _, _, local = name.rpartition(".")
    parts = local.split("_")
    tail: list[str] = []
    while parts and re.fullmatch(r"[A-Z0-9]+", parts[-1]):
        tail.insert(0, parts.pop())
    return "_".join(tail) if tail and parts else None


def _field_name(go: str) -> str:
    return go[0].lower() + go[1:]


def _is_zero(value: Any) -> bool:
    """protojson leaves out unset scalars and empty lists and maps."""
    return value is None or (value == 0 and not isinstance(value, bool)) or value == "" or (
        value is False) or value == [] or value == {}


def evaluate(value: Any) -> Any:
    if isinstance(value, str | bool | int | float) or value is None:
        return value
    if isinstance(value, Ident):
        if value.name in CONSTANTS:
            return CONSTANTS[value.name]
        enum = _enum(value.name)
        if enum is not None:
            return enum
        if value.name in _TIME_UNITS:
            return value
        raise Unsupported(f"identifier {value.name}")
    if isinstance(value, Binary):
        if value.op == "+" and isinstance(value.left, str):
            return evaluate(value.left) + evaluate(value.right)
        if value.op == "-" and value.left == 0 and isinstance(value.right, int | float):
            return -value.right
        raise Unsupported(f"expression {value!r}")
    if isinstance(value, Call):
        return _call(value)
    if isinstance(value, Composite):
        return _composite(value)
    raise Unsupported(repr(value))


def _call(call: Call) -> Any:
    local = call.func.rpartition(".")[2]
    if call.func in ("durationpb.New", "types.DurationProto"):
        return _duration(_seconds(call.args[0]))
    if call.func.startswith(("wrapperspb.", "wrappers.")) and len(call.args) == 1:
        return evaluate(call.args[0])
    if call.func == "strings.Repeat":
        return str(evaluate(call.args[0])) * int(evaluate(call.args[1]))
    if call.func in ("proto.String", "proto.Bool", "proto.Uint32", "proto.Int32", "ptr.Of"):
        return evaluate(call.args[0])
    if local in ("UInt32", "Bool", "Double", "String", "Int64", "UInt64", "Int32"):
        return evaluate(call.args[0])
    if re.fullmatch(r"(networking|security_beta|telemetry|api)\.[A-Za-z_]+", call.func) and len(
            call.args) == 1 and isinstance(call.args[0], int):
        raise Unsupported("enum by number")
    raise Unsupported(f"call {call.func}")


def _composite(value: Composite) -> Any:
    type_name = value.type.lstrip("*&")
    if type_name.startswith("[]"):
        if any(v is None for _, v in value.elements):
            raise Unsupported("a nil list element, which YAML cannot carry")
        return [evaluate(v) for _, v in value.elements]
    if type_name.startswith("map["):
        if any(v is None for _, v in value.elements):
            raise Unsupported("a null map value, which the API server drops")
        return {str(evaluate(k)): evaluate(v) for k, v in value.elements}
    local = type_name.rpartition(".")[2]
    fields = {str(k.name if isinstance(k, Ident) else k): v for k, v in value.elements}
    if any(k is None for k, _ in value.elements):
        raise Unsupported(f"positional fields in {type_name}")
    if type_name in ("durationpb.Duration", "duration.Duration", "types.Duration"):
        return _duration(float(evaluate(fields.get("Seconds", 0)))
                         + float(evaluate(fields.get("Nanos", 0))) * 1e-9)
    if re.fullmatch(r"(wrappers|wrapperspb|types)\.\w+Value", type_name):
        return evaluate(fields.get("Value", 0)) if "Value" in fields else (
            False if "Bool" in type_name else "" if "String" in type_name else 0)
    if type_name == "structpb.Struct":
        return {k: v for k, v in (evaluate(fields.get("Fields")) or {}).items()}
    if type_name == "structpb.Value":
        kind = fields.get("Kind")
        return evaluate(kind) if kind is not None else None
    if type_name.startswith("structpb.Value_"):  # the oneof of a Value: its one field
        return evaluate(value.elements[0][1]) if value.elements else None
    if type_name == "structpb.ListValue":
        return list(evaluate(fields.get("Values")) or [])
    out: dict[str, Any] = {}
    # A oneof set to its zero value is still set: protojson writes it (`regex: ""`).
    oneof = _is_oneof_wrapper(value)
    for name, raw in fields.items():
        inner = raw
        if isinstance(raw, Composite) and not raw.elements and raw.type.startswith("[]*"):
            # Go tells an empty list of messages from an absent one; JSON read into a proto
            # does not (`from: []` arrives as a nil list, while `{}` is an empty map), so the
            # case has no YAML form.
            raise Unsupported(f"an empty non-nil {name}, which YAML cannot express")
        evaluated = evaluate(inner)
        is_message = isinstance(inner, Composite) and not inner.type.lstrip("*").startswith(
            ("[]", "map["))
        # A oneof is set through a wrapper `Parent_Field{Field: v}`: protojson writes the field.
        if is_message and isinstance(evaluated, dict) and _is_oneof_wrapper(inner):
            out.update(evaluated)
            continue
        # A port written as number 0 (a unix socket's) is kept: the CRD requires the field.
        explicit_port = name == "Number" and type_name.endswith("Port")
        # An empty map written out is kept: `{}` read into a proto is an empty map, not nil.
        explicit_map = isinstance(inner, Composite) and inner.type.lstrip("*").startswith(
            "map[")
        if _is_zero(evaluated) and not is_message and not _is_wrapper(inner) and not (
                explicit_port or oneof or explicit_map):
            continue
        out[_field_name(name)] = evaluated
    if local.startswith("Value_") and type_name.startswith("structpb."):
        return out
    return out


def _is_wrapper(value: Any) -> bool:
    return ((isinstance(value, Composite) and bool(re.search(r"Value$|Duration$", value.type)))
            or isinstance(value, Call))


def _is_oneof_wrapper(value: Composite) -> bool:
    local = value.type.lstrip("*&").rpartition(".")[2]
    suffix = local.rpartition("_")[2]
    keys = [k.name for k, _ in value.elements if isinstance(k, Ident)]
    return "_" in local and len(keys) == 1 and keys[0] == suffix


# Reading tables.

def _struct_fields(parser: Parser) -> list[str]:
    parser.take("struct")
    parser.take("{")
    names: list[str] = []
    while parser.peek() != "}":
        line_names = [parser.take()]
        while parser.peek() == ",":
            parser.take(",")
            line_names.append(parser.take())
        parser.type_name()
        if parser.peek() == ";":
            parser.take(";")
        names += line_names
    parser.take("}")
    return names


@dataclass
class Row:
    test: str
    values: dict[str, Any]


def table_rows(source: str, test: str) -> list[Row]:
    start = source.index(f"func {test}(")
    toks = tokens(source[start:])
    i = next(n for n, (_, t) in enumerate(toks) if t == "struct")
    parser = Parser(toks, i)
    names = _struct_fields(parser)
    body = parser.composite_body("")
    rows = []
    for _, element in body.elements:
        if not isinstance(element, Composite):
            continue
        values: dict[str, Any] = {}
        for n, (key, value) in enumerate(element.elements):
            name = key.name if isinstance(key, Ident) else names[n]
            values[name.lower()] = value
        rows.append(Row(test, values))
    return rows


def _verdict(values: dict[str, Any]) -> str:
    if "valid" in values:
        valid = evaluate(values["valid"])
        warn = evaluate(values.get("warning", values.get("warn", False)))
        if not valid:
            return "invalid"
        return "warning" if warn else "valid"
    error = evaluate(values.get("out", values.get("err", values.get("error", ""))))
    warning = evaluate(values.get("warning", ""))
    if error:
        return "invalid"
    return "warning" if warning else "valid"


def _slug(text: str) -> str:
    return re.sub(r"[^a-z0-9]+", "-", text.lower()).strip("-")[:70]


def _place(path: str, part: Any, base: dict[str, Any]) -> dict[str, Any]:
    spec: dict[str, Any] = yaml.safe_load(yaml.safe_dump(base)) or {}
    *parents, leaf = path.split(".")
    here = spec
    for parent in parents:
        if parent.endswith("[]"):
            child: dict[str, Any] = {}
            here[parent[:-2]] = [child]
            here = child
        else:
            here = here.setdefault(parent, {})
    if leaf.endswith("[]"):
        here[leaf[:-2]] = [part]
    else:
        here[leaf] = part
    return spec


def cases(sources: dict[str, str]) -> tuple[list[dict[str, Any]], list[str]]:
    out: list[dict[str, Any]] = []
    skipped: list[str] = []
    seen: set[str] = set()
    tables: list[tuple[str, str, Any]] = [(f, t, None) for f, t in TABLES] + [
        (f, t, part) for (f, t), part in PART_TABLES.items()]
    for file, test, part in tables:
        for row in table_rows(sources[file], test):
            name = str(evaluate(row.values.get("name", "")))
            raw = next((row.values[k] for k in ("in", "route", "routes", "destination")
                        if k in row.values), None)
            label = f"{test}/{name}"
            try:
                type_name = raw.type.lstrip("*&") if isinstance(raw, Composite) else ""
                if part is None and type_name not in KINDS:
                    raise Unsupported(f"input {type_name or raw!r} is not a resource")
                spec = evaluate(raw)
                verdict = _verdict(row.values)
                annotations = evaluate(row.values["annotations"]) if row.values.get(
                    "annotations") is not None else None
                config_name = evaluate(row.values["configname"]) if row.values.get(
                    "configname") is not None else CONSTANTS["someName"]
            except Unsupported as why:
                skipped.append(f"{label}: {why}")
                continue
            if part is not None:
                type_name, base, path = part
                spec = _place(path, spec, base)
            api_version, kind = KINDS[type_name]
            base_id = f"{_slug(test.removeprefix('TestValidate'))}/{_slug(name) or 'case'}"
            case_id, n = base_id, 2
            while case_id in seen:
                case_id, n = f"{base_id}-{n}", n + 1
            seen.add(case_id)
            metadata: dict[str, Any] = {"name": config_name, "namespace": CONSTANTS[
                "someNamespace"]}
            if annotations:
                metadata["annotations"] = annotations
            out.append({"id": case_id, "source": f"{ROOT}{file} {label}", "kind": kind,
                        "apiVersion": api_version, "metadata": metadata, "spec": spec,
                        "istio": verdict})
    return out, skipped


def crd_testdata_cases(commit: str) -> list[dict[str, Any]]:
    """testdata/crds/*-valid.yaml and *-invalid.yaml: objects on which Istio's CRD schema and
    its webhook agree (openapi_test.go), `_err` naming the expected error."""
    listing = subprocess.run(["git", "-C", MIRROR, "ls-tree", "--name-only", commit,
                              f"{ROOT}testdata/crds/"], check=True, capture_output=True,
                             text=True).stdout.split()
    out = []
    wanted = {k for _, k in KINDS.values()}
    for path in listing:
        text = _show(commit, path)
        for n, doc in enumerate(yaml.safe_load_all(text)):
            if not isinstance(doc, dict) or doc.get("kind") not in wanted:
                continue
            error = doc.pop("_err", "")
            meta = doc.get("metadata") or {}
            out.append({"id": f"crds/{Path(path).stem}/{_slug(str(meta.get('name', n)))}",
                        "source": f"{path} #{n}", "kind": doc["kind"],
                        "apiVersion": doc["apiVersion"], "metadata": meta,
                        "spec": doc.get("spec", {}), "istio": "invalid" if error else "valid"})
    return out


def _show(commit: str, path: str) -> str:
    return subprocess.run(["git", "-C", MIRROR, "show", f"{commit}:{path}"], check=True,
                          capture_output=True, text=True).stdout


def main() -> None:
    out = Path(sys.argv[1] if len(sys.argv) > 1 else "tests/compat/istio_validation_cases.yaml")
    commit = COMMIT_FILE.read_text().strip()
    sources = {f: _show(commit, ROOT + f) for f in {f for f, _ in [*TABLES, *PART_TABLES]}}
    ported, skipped = cases(sources)
    ported += crd_testdata_cases(commit)
    seen: dict[str, int] = {}
    for case in ported:  # ids unique across tables and files
        n = seen[case["id"]] = seen.get(case["id"], 0) + 1
        if n > 1:
            case["id"] = f"{case['id']}-{n}"
    header = (f"# Istio's validation verdicts as data, ported by "
              f"scripts/port_istio_validation_cases.py\n# from istio/istio {commit} "
              f"{ROOT} (test tables and testdata/crds).\n# {len(ported)} cases; "
              f"{len(skipped)} rows skipped (input not a literal).\n")
    out.write_text(header + yaml.safe_dump({"commit": commit, "cases": ported},
                                           sort_keys=False, width=100))
    print(f"{len(ported)} cases -> {out}; {len(skipped)} skipped")
    for line in skipped:
        print("  skipped", line)


if __name__ == "__main__":
    main()
