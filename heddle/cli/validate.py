"""`heddle validate`: check configuration files the way `istioctl validate` does."""

from __future__ import annotations

from pathlib import Path

import typer


def validate(
    files: list[Path] = typer.Option(  # noqa: B008 - typer declares options this way
        ..., "--filename", "-f", help="A YAML file or a directory of them; repeatable."
    ),
    verbose: bool = typer.Option(False, "--verbose", "-v", help="Also list kept-but-unused kinds."),
) -> None:
    """Validate Istio and Gateway API configuration; exit 1 if any error is found."""
    from heddle.api.diagnostics import Severity
    from heddle.api.loader import load_paths, yaml_files
    from heddle.model.mesh_config import MeshConfig

    missing = [p for p in files if not p.exists()]
    for path in missing:
        typer.echo(f"error: {path}: no such file or directory", err=True)
    result = load_paths([p for p in files if p.exists()])
    # Mesh config (ConfigMap istio-system/istio) is kept as is by the loader; its settings
    # are checked where they are read.
    mesh_problems = list(MeshConfig.from_objects(result.unmanaged).diagnostics)
    shown = [d for d in [*result.diagnostics, *mesh_problems]
             if verbose or d.severity is not Severity.INFO]
    for diagnostic in shown:
        typer.echo(str(diagnostic), err=diagnostic.is_error)
    errors = len(result.errors) + len(missing) + sum(1 for d in mesh_problems if d.is_error)
    warnings = sum(1 for d in result.diagnostics if d.severity is Severity.WARNING)
    count = len(yaml_files([p for p in files if p.exists()]))
    typer.echo(
        f"{len(result.resources)} resources in {count} files: "
        f"{errors} errors, {warnings} warnings, {len(result.unmanaged)} kept but not used"
    )
    if errors:
        raise typer.Exit(code=1)
