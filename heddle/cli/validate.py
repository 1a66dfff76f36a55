"""`heddle validate`: check configuration files the way `istioctl validate` does."""

from __future__ import annotations

import argparse
from pathlib import Path

from heddle.cli.common import Commands, command, echo


def register(commands: Commands) -> None:
    parser = command(commands, "validate", validate,
                     "Validate Istio and Gateway API configuration; exit 1 if any error is "
                     "found.")
    parser.add_argument("-f", "--filename", dest="files", type=Path, action="append",
                        required=True, metavar="PATH",
                        help="A YAML file or a directory of them; repeatable.")
    parser.add_argument("-v", "--verbose", action="store_true",
                        help="Also list kept-but-unused kinds.")


def validate(args: argparse.Namespace) -> int:
    from heddle.api.diagnostics import Severity
    from heddle.api.loader import load_paths, yaml_files
    from heddle.model.mesh_config import MeshConfig
    from heddle.model.telemetry import provider_problems

    files: list[Path] = args.files
    missing = [p for p in files if not p.exists()]
    for path in missing:
        echo(f"error: {path}: no such file or directory", err=True)
    result = load_paths([p for p in files if p.exists()])
    # Mesh config (ConfigMap istio-system/istio) is kept as is by the loader; its settings
    # are checked where they are read.
    mesh = MeshConfig.from_objects(result.unmanaged)
    mesh_problems = [*mesh.diagnostics, *provider_problems(mesh, result.resources)]
    shown = [d for d in [*result.diagnostics, *mesh_problems]
             if args.verbose or d.severity is not Severity.INFO]
    for diagnostic in shown:
        echo(str(diagnostic), err=diagnostic.is_error)
    errors = len(result.errors) + len(missing) + sum(1 for d in mesh_problems if d.is_error)
    warnings = sum(1 for d in [*result.diagnostics, *mesh_problems]
                   if d.severity is Severity.WARNING)
    count = len(yaml_files([p for p in files if p.exists()]))
    echo(f"{len(result.resources)} resources in {count} files: "
         f"{errors} errors, {warnings} warnings, {len(result.unmanaged)} kept but not used")
    return 1 if errors else 0
