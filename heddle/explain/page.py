"""A page of `heddle describe` / `heddle explain`: a title and titled sections of lines, as
JSON for the debug API and as text for a terminal. Light: the CLI renders it."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any


@dataclass
class Section:
    title: str
    lines: list[str] = field(default_factory=list)


@dataclass
class Page:
    title: str
    sections: list[Section] = field(default_factory=list)
    # For `explain`: the verdict in one sentence, and facts a test or script may read.
    summary: str = ""
    facts: dict[str, Any] = field(default_factory=dict)

    def section(self, title: str) -> Section:
        found = Section(title)
        self.sections.append(found)
        return found

    def to_json(self) -> dict[str, Any]:
        return {"title": self.title, "summary": self.summary, "facts": self.facts,
                "sections": [{"title": s.title, "lines": s.lines} for s in self.sections]}


def render(page: dict[str, Any]) -> str:
    """The page as text: the title, the summary, then each section with its lines indented
    (an empty section says `none`)."""
    out = [str(page["title"])]
    if page.get("summary"):
        out.append(f"  => {page['summary']}")
    for section in page.get("sections", []):
        out.append("")
        out.append(f"{section['title']}:")
        lines = section.get("lines") or ["none"]
        out += [f"  {line}" for line in lines]
    return "\n".join(out) + "\n"
