"""Relative links in README.md and docs/*.md resolve to files of the repository (and their
`#anchors` to headings); links out of the repository go to public sites only."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
DOCUMENTS = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]

_FENCE = re.compile(r"^\s*(```|~~~)")
_INLINE_CODE = re.compile(r"`[^`]*`")
_LINK = re.compile(r"!?\[(?:[^\[\]]|\[[^\]]*\])*\]\(\s*<?([^)\s>]+)>?(?:\s+\"[^\"]*\")?\s*\)")
_REFERENCE = re.compile(r"^\s*\[[^\]]+\]:\s*<?(\S+?)>?(?:\s+\"[^\"]*\")?\s*$")
_HEADING = re.compile(r"^(#{1,6})\s+(.*?)\s*#*\s*$")


def _prose_lines(text: str) -> list[str]:
    """The lines outside fenced code blocks."""
    lines, fenced = [], False
    for line in text.splitlines():
        if _FENCE.match(line):
            fenced = not fenced
        elif not fenced:
            lines.append(line)
    return lines


def links(path: Path) -> list[str]:
    """Every link target of a Markdown file (inline, image and reference style)."""
    found = []
    for line in _prose_lines(path.read_text(encoding="utf-8")):
        found += _LINK.findall(_INLINE_CODE.sub("", line))
        reference = _REFERENCE.match(line)
        if reference:
            found.append(reference.group(1))
    return found


def anchors(path: Path) -> set[str]:
    """GitHub's anchors of a Markdown file's headings."""
    seen: dict[str, int] = {}
    out = set()
    for line in _prose_lines(path.read_text(encoding="utf-8")):
        heading = _HEADING.match(line)
        if not heading:
            continue
        text = re.sub(r"\[([^\]]*)\]\([^)]*\)", r"\1", heading.group(2)).replace("`", "")
        slug = re.sub(r"[^\w\- ]", "", text.lower()).replace(" ", "-")
        n = seen.get(slug, 0)
        seen[slug] = n + 1
        out.add(slug if n == 0 else f"{slug}-{n}")
    return out


def broken(path: Path, root: Path = ROOT) -> list[str]:
    """The link targets of `path` that do not resolve inside the repository `root`."""
    problems = []
    for target in links(path):
        if re.match(r"^(https?|mailto):", target):
            continue
        if re.match(r"^[a-z][a-z0-9+.-]*:", target):
            problems.append(f"{target}: only public http(s) links may leave the repository")
            continue
        file_part, _, anchor = target.partition("#")
        resolved = (path.parent / file_part).resolve() if file_part else path
        if not resolved.is_relative_to(root):
            problems.append(f"{target}: outside the repository")
        elif not resolved.exists():
            problems.append(f"{target}: no such file")
        elif anchor and resolved.suffix == ".md" and anchor not in anchors(resolved):
            problems.append(f"{target}: no heading #{anchor} in {resolved.name}")
    return problems


@pytest.mark.parametrize("path", DOCUMENTS, ids=lambda p: str(p.relative_to(ROOT)))
def test_relative_links_resolve(path: Path) -> None:
    assert not broken(path), broken(path)


def test_a_broken_link_is_caught(tmp_path: Path) -> None:
    assert any(t.startswith("../schemas/") for t in links(ROOT / "docs" / "analytics.md"))
    (tmp_path / "README.md").write_text("# Read me\n", encoding="utf-8")
    (tmp_path / "docs").mkdir()
    page = tmp_path / "docs" / "page.md"
    page.write_text(
        "# Title\n[a](missing.md) [b](../README.md#no-such-heading) [c](#title)\n"
        "[d](../../outside.md) [e](../README.md#read-me) [f](file:///etc/passwd)\n"
        "```\n[not a link](nowhere.md)\n```\n",
        encoding="utf-8",
    )
    assert [p.split(": ")[0] for p in broken(page, tmp_path)] == [
        "missing.md",
        "../README.md#no-such-heading",
        "../../outside.md",
        "file:///etc/passwd",
    ]
