"""The conformance runner's command: which scenarios, where the corpus is, and the report."""

from __future__ import annotations

import argparse
import fnmatch
import sys
from pathlib import Path

from heddle.conformance import report
from heddle.conformance.runner import run
from heddle.conformance.scenarios import load_all

DEFAULT_CORPUS = Path("../shared/corpus/gateway-api/conformance")


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="heddle conformance",
        description="Run the Gateway API conformance scenarios (HTTPRoute, GRPCRoute, GAMMA) "
                    "against a local Heddle mesh and print pass / fail / skip per scenario and the "
                    "supported-features report.")
    p.add_argument("--corpus", type=Path, default=DEFAULT_CORPUS,
                   help="the upstream conformance folder (base/ and tests/)")
    p.add_argument("--run", action="append", default=[], metavar="PATTERN",
                   help="only scenarios whose name matches (a glob; repeatable)")
    p.add_argument("--subnet", default="127.0.77.",
                   help="the loopback /24 for the backends and gateways, as 127.A.B.")
    p.add_argument("--workdir", type=Path, default=None,
                   help="keep the mesh's directory and HEDDLE_HOME here (default: a temp dir)")
    p.add_argument("--report", type=Path, default=None,
                   help="also write the ConformanceReport YAML to this file")
    return p


def main(argv: list[str] | None = None) -> None:
    args = parser().parse_args(argv)
    if not (args.corpus / "base" / "manifests.yaml").is_file():
        sys.exit(f"error: {args.corpus}: no base/manifests.yaml (the Gateway API conformance "
                 "folder of the shared corpus); give it with --corpus")
    if not (args.subnet.startswith("127.") and args.subnet.count(".") == 3
            and args.subnet.endswith(".")):
        sys.exit(f"error: --subnet {args.subnet!r}: write a loopback /24 as 127.A.B.")
    scenarios = load_all()
    if args.run:
        scenarios = [s for s in scenarios if any(fnmatch.fnmatch(s.name, p) for p in args.run)]
        if not scenarios:
            sys.exit(f"error: no scenario matches {', '.join(args.run)}")
    outcomes = run(scenarios, args.corpus, args.subnet,
                   log=lambda line: print(line, flush=True), workdir=args.workdir)
    print()
    print(report.summary(scenarios, outcomes))
    text = report.conformance_report(scenarios, outcomes)
    print(text)
    if args.report is not None:
        args.report.write_text(text)
    sys.exit(1 if any(o.result == "fail" for o in outcomes) else 0)
