"""`heddle convert ingress` on every file of ../shared/corpus/ingress-nginx/ (ingress-nginx's
documentation examples and ingress2gateway's test inputs): what converts cleanly, what is
listed as not converted, and that every output passes `heddle validate`."""

from __future__ import annotations

import subprocess
import sys
from collections import Counter
from pathlib import Path

import pytest

from heddle.api.loader import load_text
from heddle.api.yaml_documents import read_documents
from heddle.convert.findings import Verdict
from heddle.convert.ingress import Conversion, convert
from heddle.convert.output import manifests_yaml

HEDDLE = str(Path(sys.executable).with_name("heddle"))

# Ingresses converted with nothing lost / with something listed as not converted.
CLEAN, WITH_LOSSES = 62, 86
# What was not converted, all files together: annotation (or field) -> how often.
NOT_CONVERTED = {
    "kubernetes.io/tls-acme": 1,
    "nginx.ingress.kubernetes.io/affinity": 6,
    "nginx.ingress.kubernetes.io/auth-realm": 1,
    "nginx.ingress.kubernetes.io/auth-response-headers": 6,
    "nginx.ingress.kubernetes.io/auth-secret": 9,
    "nginx.ingress.kubernetes.io/auth-secret-type": 6,
    "nginx.ingress.kubernetes.io/auth-signin": 2,
    "nginx.ingress.kubernetes.io/auth-tls-error-page": 1,
    "nginx.ingress.kubernetes.io/auth-tls-pass-certificate-to-upstream": 1,
    "nginx.ingress.kubernetes.io/auth-tls-secret": 1,
    "nginx.ingress.kubernetes.io/auth-tls-verify-client": 1,
    "nginx.ingress.kubernetes.io/auth-tls-verify-depth": 1,
    "nginx.ingress.kubernetes.io/auth-type": 9,
    "nginx.ingress.kubernetes.io/auth-url": 13,
    "nginx.ingress.kubernetes.io/backend-protocol": 7,
    "nginx.ingress.kubernetes.io/client-body-buffer-size": 4,
    "nginx.ingress.kubernetes.io/configuration-snippet": 1,
    "nginx.ingress.kubernetes.io/enable-access-log": 3,
    "nginx.ingress.kubernetes.io/fastcgi-index": 1,
    "nginx.ingress.kubernetes.io/fastcgi-params-configmap": 1,
    "nginx.ingress.kubernetes.io/limit-burst-multiplier": 3,
    "nginx.ingress.kubernetes.io/limit-rpm": 3,
    "nginx.ingress.kubernetes.io/limit-rps": 5,
    "nginx.ingress.kubernetes.io/load-balance": 5,
    "nginx.ingress.kubernetes.io/proxy-body-size": 5,
    "nginx.ingress.kubernetes.io/proxy-connect-timeout": 5,
    "nginx.ingress.kubernetes.io/proxy-read-timeout": 9,
    "nginx.ingress.kubernetes.io/proxy-send-timeout": 8,
    "nginx.ingress.kubernetes.io/proxy-ssl-name": 5,
    "nginx.ingress.kubernetes.io/proxy-ssl-secret": 5,
    "nginx.ingress.kubernetes.io/proxy-ssl-server-name": 5,
    "nginx.ingress.kubernetes.io/proxy-ssl-verify": 5,
    "nginx.ingress.kubernetes.io/rewrite-target": 2,
    "nginx.ingress.kubernetes.io/server-snippet": 1,
    "nginx.ingress.kubernetes.io/service-upstream": 5,
    "nginx.ingress.kubernetes.io/session-cookie-conditional-samesite-none": 1,
    "nginx.ingress.kubernetes.io/session-cookie-domain": 3,
    "nginx.ingress.kubernetes.io/session-cookie-expires": 5,
    "nginx.ingress.kubernetes.io/session-cookie-max-age": 5,
    "nginx.ingress.kubernetes.io/session-cookie-name": 6,
    "nginx.ingress.kubernetes.io/session-cookie-path": 3,
    "nginx.ingress.kubernetes.io/session-cookie-samesite": 4,
    "nginx.ingress.kubernetes.io/session-cookie-secure": 3,
    "nginx.ingress.kubernetes.io/ssl-passthrough": 2,
    "nginx.ingress.kubernetes.io/stream-snippet": 1,
    "nginx.ingress.kubernetes.io/upstream-hash-by": 1,
    "nginx.ingress.kubernetes.io/upstream-hash-by-subset": 1,
    "nginx.ingress.kubernetes.io/upstream-hash-by-subset-size": 1,
    # F5's NGINX Ingress Controller's annotations (ingress2gateway's nginx provider inputs)
    "nginx.org/grpc-services": 1, "nginx.org/hsts": 1, "nginx.org/hsts-include-subdomains": 1,
    "nginx.org/hsts-max-age": 1, "nginx.org/listen-ports": 1, "nginx.org/listen-ports-ssl": 1,
    "nginx.org/path-regex": 1, "nginx.org/proxy-hide-headers": 1,
    "nginx.org/proxy-set-headers": 1, "nginx.org/redirect-to-https": 1,
    "nginx.org/rewrites": 1, "nginx.org/ssl-services": 1,
    # not annotations: a regex path without use-regex, placeholder hosts, a named port
    "path '/api/v[0-9]+'": 1,
    "spec.rules[0].host": 6,
    "spec.rules[0].http.paths[0].backend": 1,
    "spec.tls[0].hosts[0]": 3,
}


def conversions(root: Path) -> dict[Path, Conversion]:
    out: dict[Path, Conversion] = {}
    for path in sorted(root.rglob("*.yaml")):
        docs, problems = read_documents(path.read_text(), str(path.relative_to(root)))
        assert problems == [], problems
        out[path.relative_to(root)] = convert(docs)
    return out


@pytest.fixture(scope="module")
def corpus_conversions() -> dict[Path, Conversion]:
    root = Path(__file__).resolve().parents[2].parent / "shared" / "corpus" / "ingress-nginx"
    if not root.is_dir():
        pytest.fail(f"the shared corpus is missing at {root}")
    return conversions(root)


def test_every_corpus_file_but_the_backend_service_holds_ingresses(
        corpus_conversions: dict[Path, Conversion]) -> None:
    without = [p for p, c in corpus_conversions.items() if not c.ingresses]
    assert without == [Path("examples/docs/examples/http-svc.yaml")]
    assert len(corpus_conversions) == 94


def test_clean_and_lossy_counts_and_what_was_not_converted(
        corpus_conversions: dict[Path, Conversion]) -> None:
    lossy = sum(len(c.not_converted()) for c in corpus_conversions.values())
    total = sum(len(c.ingresses) for c in corpus_conversions.values())
    assert (total - lossy, lossy) == (CLEAN, WITH_LOSSES)
    found = Counter(f.subject.split("=")[0] for c in corpus_conversions.values()
                    for f in c.findings if f.verdict is Verdict.NOT_CONVERTED)
    assert dict(found) == NOT_CONVERTED
    reasons = [f.reason for c in corpus_conversions.values() for f in c.findings]
    assert all(len(r) > 20 for r in reasons)  # each says why


def test_the_converted_annotation_families_of_the_corpus_come_out_as_gateway_api(
        corpus_conversions: dict[Path, Conversion]) -> None:
    everything = manifests_yaml(m for c in corpus_conversions.values() for m in c.manifests)
    for produced in ("type: RegularExpression", "type: CORS", "type: URLRewrite",
                     "replacePrefixMatch: /", "statusCode: 308", "statusCode: 302",
                     "kind: GRPCRoute", "sectionName: https-"):
        assert produced in everything


def test_every_output_passes_heddle_validate(corpus_conversions: dict[Path, Conversion],
                                             tmp_path: Path) -> None:
    for i, (path, conversion) in enumerate(corpus_conversions.items()):
        text = manifests_yaml(conversion.manifests)
        assert load_text(text, str(path)).errors == []
        (tmp_path / f"{i:03}-{path.stem}.yaml").write_text(text)
    out = subprocess.run([HEDDLE, "validate", "-f", str(tmp_path)], capture_output=True,
                         text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert " 0 errors" in out.stdout
