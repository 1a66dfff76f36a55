"""`heddle convert ingress`: Kubernetes Ingresses for ingress-nginx as Gateway API resources."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import TYPE_CHECKING

from heddle.cli.common import CliError, Commands, Parser, command, echo

if TYPE_CHECKING:
    from heddle.convert.ingress import Manifest


def register(commands: Commands) -> None:
    convert = command(commands, "convert", _usage,
                      "Convert other controllers' configuration to what Heddle reads.")
    kinds = convert.add_subparsers(metavar="KIND", parser_class=Parser)
    ingress = command(kinds, "ingress", ingress_command,
                      "Kubernetes Ingresses (with ingress-nginx's annotations) to Gateway API "
                      "Gateways and routes; lists what could not be converted, and why.")
    ingress.add_argument("-f", "--filename", dest="files", type=Path, action="append",
                         required=True, metavar="PATH",
                         help="A YAML file or a directory of them; repeatable.")
    ingress.add_argument("-o", "--output-dir", dest="output_dir", type=Path, metavar="DIR",
                         help="Write one file per Gateway (with its routes) into DIR instead "
                              "of printing to stdout.")
    ingress.add_argument("--gateway-class", default="heddle", metavar="NAME",
                         help="gatewayClassName of the Gateways written (default: heddle).")
    ingress.add_argument("--default-ingress-class", default="nginx", metavar="NAME",
                         help="The class of Ingresses that name none (default: nginx).")


def _usage(args: argparse.Namespace) -> int:
    args.parser.error("say what to convert: `heddle convert ingress -f PATH`")
    return 2


def ingress_command(args: argparse.Namespace) -> int:
    from heddle.api.files import UnreadableConfig, read_config_text, yaml_files
    from heddle.api.yaml_documents import YamlDocument, read_documents
    from heddle.convert.findings import Verdict
    from heddle.convert.ingress import ConvertOptions, convert
    from heddle.convert.output import manifests_yaml

    paths: list[Path] = args.files
    for path in paths:
        if not path.exists():
            raise CliError(f"{path}: no such file or directory")
    documents: list[YamlDocument] = []
    failed = False
    for path in yaml_files(paths):
        try:
            docs, problems = read_documents(read_config_text(path), str(path))
        except UnreadableConfig as err:
            docs, problems = [], [err.diagnostic]
        for problem in problems:
            echo(str(problem), err=True)
            failed = True
        documents += docs
    result = convert(documents, ConvertOptions(args.gateway_class, args.default_ingress_class))
    if not result.ingresses:
        raise CliError(f"no Ingress (networking.k8s.io/v1 or v1beta1) in "
                       f"{', '.join(map(str, paths))}")
    for finding in result.findings:
        echo(str(finding), err=True)
    if args.output_dir:
        _write_dir(args.output_dir, result.manifests, manifests_yaml)
    else:
        sys.stdout.write(manifests_yaml(result.manifests))
    lost = result.not_converted()
    kinds = {k: sum(1 for m in result.manifests if m["kind"] == k)
             for k in ("Gateway", "HTTPRoute", "GRPCRoute")}
    notes = sum(1 for f in result.findings if f.verdict is Verdict.NOTE)
    echo(f"{len(result.ingresses)} Ingresses to "
         + ", ".join(f"{n} {k}" for k, n in kinds.items() if n)
         + f": {len(result.ingresses) - len(lost)} converted cleanly, {len(lost)} with "
         f"something not converted ({sum(len(f) for f in lost.values())} in all, listed "
         f"above), {notes} notes", err=True)
    return 1 if failed else 0


def _write_dir(directory: Path, manifests: tuple[Manifest, ...],
               to_yaml: Callable[[Iterable[Manifest]], str]) -> None:
    """One file per Gateway, NAMESPACE-GATEWAY.yaml, holding it and the routes attached."""
    by_gateway: dict[tuple[str, str], list[Manifest]] = {}
    for manifest in manifests:
        meta = manifest["metadata"]
        gateway = (meta["name"] if manifest["kind"] == "Gateway"
                   else manifest["spec"]["parentRefs"][0]["name"])
        by_gateway.setdefault((meta.get("namespace", ""), gateway), []).append(manifest)
    directory.mkdir(parents=True, exist_ok=True)
    for (namespace, gateway), items in sorted(by_gateway.items()):
        path = directory / (f"{namespace}-{gateway}.yaml" if namespace else f"{gateway}.yaml")
        path.write_text(to_yaml(items))
        echo(f"wrote {path}", err=True)
