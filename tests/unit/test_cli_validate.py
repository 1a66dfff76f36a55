"""`heddle validate -f` behaves like `istioctl validate`: problems printed, exit 1 on errors."""

from __future__ import annotations

import re
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

HEDDLE = str(Path(sys.executable).with_name("heddle"))


def run_validate(*paths: Path) -> subprocess.CompletedProcess[str]:
    args = [HEDDLE, "validate"]
    for path in paths:
        args += ["-f", str(path)]
    return subprocess.run(args, capture_output=True, text=True, timeout=120)


def test_bookinfo_networking_validates_clean(corpus: Path) -> None:
    out = run_validate(corpus / "istio" / "samples" / "bookinfo" / "networking")
    assert out.returncode == 0, out.stderr
    assert "0 errors" in out.stdout


EXAMPLES = Path(__file__).resolve().parents[2] / "examples"
# The one example meant to be refused: the README shows its typo in `heddle status`.
BROKEN_ON_PURPOSE = EXAMPLES / "hello-extra" / "broken-route.yaml"


def test_the_examples_validate_clean() -> None:
    files = sorted(p for p in EXAMPLES.rglob("*.yaml") if p != BROKEN_ON_PURPOSE)
    out = run_validate(*files)
    assert out.returncode == 0, out.stderr


def test_the_broken_example_fails_only_on_its_typo() -> None:
    out = run_validate(BROKEN_ON_PURPOSE)
    assert out.returncode == 1
    errors = [line for line in out.stdout.splitlines() + out.stderr.splitlines()
              if ": error: " in line]
    assert len(errors) == 1 and 'unknown field "weigth"' in errors[0], out.stdout + out.stderr


def test_misspelled_weight_fails_naming_file_line_field_and_fix(
    write_yaml: Callable[..., Path],
) -> None:
    path = write_yaml("""
        apiVersion: networking.istio.io/v1
        kind: VirtualService
        metadata: {name: reviews}
        spec:
          hosts: [reviews]
          http:
          - route:
            - destination: {host: reviews}
              weigth: 100
        """)
    out = run_validate(path)
    assert out.returncode == 1
    assert f"{path}:9:7: error:" in out.stderr
    assert 'spec.http[0].route[0].weigth: unknown field "weigth" (did you mean "weight"?)' in (
        out.stderr
    )


def test_bad_timeout_fails_naming_file_line_field_and_fix(write_yaml: Callable[..., Path]) -> None:
    path = write_yaml("""
        apiVersion: networking.istio.io/v1
        kind: VirtualService
        metadata: {name: ratings}
        spec:
          hosts: [ratings]
          http:
          - timeout: 10x
            route:
            - destination: {host: ratings}
        """)
    out = run_validate(path)
    assert out.returncode == 1
    assert f"{path}:7:5: error:" in out.stderr
    assert "spec.http[0].timeout" in out.stderr and "'10x'" in out.stderr
    assert "10s" in out.stderr


def test_warnings_do_not_fail(write_yaml: Callable[..., Path]) -> None:
    path = write_yaml("""
        apiVersion: gateway.networking.k8s.io/v1alpha2
        kind: TCPRoute
        metadata: {name: echo}
        spec:
          rules:
          - backendRefs: [{name: echo, port: 9000}]
        """)
    out = run_validate(path)
    assert out.returncode == 0
    assert "warning:" in out.stdout


def test_missing_file_is_an_error(tmp_path: Path) -> None:
    out = run_validate(tmp_path / "nope.yaml")
    assert out.returncode == 1
    assert "no such file" in out.stderr


def test_what_the_main_job_validates_is_clean() -> None:
    """scripts/run.sh stops at its first command that fails: what it validates must pass."""
    script = (EXAMPLES.parent / "scripts" / "run.sh").read_text()
    targets = re.findall(r"validate -f (\S+)", script)
    assert targets, "run.sh validates what it runs"
    out = run_validate(*(EXAMPLES.parent / t for t in targets))
    assert out.returncode == 0, out.stdout + out.stderr
