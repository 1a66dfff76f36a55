"""The READMEs match the repository: the files their examples name exist, every command in
their shell blocks runs from the repository root with the same `heddle`, and what they say
the example changes do (validate, fail at a line) holds."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from heddle.api.loader import load_paths

ROOT = Path(__file__).resolve().parents[2]
READMES = [ROOT / "README.md", *sorted((ROOT / "examples").glob("*/README.md"))]
HEDDLE = ".venv/bin/heddle"


def shell_lines(readme: Path) -> list[str]:
    """The commands of the README's ```sh blocks, comments dropped."""
    blocks = re.findall(r"```sh\n(.*?)```", readme.read_text(), re.DOTALL)
    lines = [line.split("  #")[0].strip() for block in blocks for line in block.splitlines()]
    return [line for line in lines if line and not line.startswith("#")]


@pytest.mark.parametrize("readme", READMES, ids=lambda p: str(p.relative_to(ROOT)))
def test_every_example_path_a_readme_names_exists(readme: Path) -> None:
    named = set(re.findall(r"examples/[\w./-]*[\w/]", readme.read_text()))
    assert named, "no example named"
    copied = {f"{words[2].rstrip('/')}/{Path(words[1]).name}"
              for words in map(str.split, shell_lines(readme)) if words[0] == "cp"}
    assert sorted(p for p in named - copied if not (ROOT / p).exists()) == []


@pytest.mark.parametrize("readme", [p for p in READMES if shell_lines(p)],
                         ids=lambda p: str(p.relative_to(ROOT)))
def test_every_command_runs_from_the_repository_root_with_one_heddle(readme: Path) -> None:
    for line in shell_lines(readme):
        words = line.split()
        if "heddle" in words[0]:
            assert words[0] == HEDDLE, line
        if words[0] in ("cp", "cat"):
            assert (ROOT / words[1]).exists(), line
        assert not re.search(r"\b[A-Z]{2,}\b(?!=)", line.replace("$N", "")) or (
            "=" in words[0]), f"a placeholder in {line!r}"


def test_the_bookinfo_readmes_say_apply_for_istios_files() -> None:
    for readme in (ROOT / "README.md", ROOT / "examples" / "bookinfo" / "README.md"):
        text = readme.read_text()
        assert "copy any file" not in text
        assert re.search(r"heddle\s+apply -f`? any file of Istio's|heddle apply -f \$N/",
                         text), readme


def test_the_hello_extra_changes_do_what_the_readme_says() -> None:
    extra = ROOT / "examples" / "hello-extra"
    good = load_paths([extra / "backend-3.yaml", extra / "all-to-v2.yaml"])
    assert good.errors == [] and len(good.resources) == 2
    [error] = load_paths([extra / "broken-route.yaml"]).errors
    assert error.position is not None and (error.position.line, error.position.column) == (
        10, 7)
    assert "broken-route.yaml:10:7" in (ROOT / "README.md").read_text()
    address = next(line for line in (extra / "backend-3.yaml").read_text().splitlines()
                   if "address:" in line).split()[-1]
    assert address not in (ROOT / "examples" / "hello" / "mesh.yaml").read_text()
