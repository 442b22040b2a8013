"""HTML to readable plain text, for mail that has no text/plain part (stdlib only).

Bounded: anyone can mail an account, and the stdlib parser is quadratic on some input
(120 KB of `</` took 5 s on Python 3.11, issue 22). At most `MAX_HTML_CHARS` are parsed,
for at most `TIME_LIMIT` seconds; past either, the text found so far is the text.
"""

from __future__ import annotations

import re
import time
from html.parser import HTMLParser

_BLOCKS = frozenset(
    {
        "p", "div", "br", "tr", "li", "ul", "ol", "table", "blockquote", "pre", "hr",
        "h1", "h2", "h3", "h4", "h5", "h6", "section", "article", "header", "footer",
    }
)  # fmt: skip
_INVISIBLE = frozenset({"script", "style", "head", "title", "template", "noscript"})
MAX_HTML_CHARS = 512 * 1024
TIME_LIMIT = 0.5  # seconds of parsing per document


class _OutOfTime(Exception):
    pass


class _TextExtractor(HTMLParser):
    """Collects visible text; every handler checks the deadline, and the parser calls one
    at least once per pass over its input, so a slow document stops near the deadline."""

    def __init__(self, deadline: float) -> None:
        super().__init__(convert_charrefs=True)
        self.parts: list[str] = []
        self._hidden = 0
        self._deadline = deadline

    def _on_time(self) -> None:
        if time.monotonic() > self._deadline:
            raise _OutOfTime

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self._on_time()
        if tag in _INVISIBLE:
            self._hidden += 1
        elif tag in _BLOCKS:
            self.parts.append("\n")
        if tag == "li":
            self.parts.append("- ")

    def handle_endtag(self, tag: str) -> None:
        self._on_time()
        if tag in _INVISIBLE:
            self._hidden = max(0, self._hidden - 1)
        elif tag in _BLOCKS:
            self.parts.append("\n")

    def handle_data(self, data: str) -> None:
        self._on_time()
        if not self._hidden:
            self.parts.append(data)


def html_to_text(
    html: str, *, max_chars: int = MAX_HTML_CHARS, time_limit: float = TIME_LIMIT
) -> str:
    """Visible text of `html`: scripts and styles dropped, blocks on their own lines,
    runs of white space folded, at most one blank line in a row."""
    parser = _TextExtractor(time.monotonic() + time_limit)
    try:
        parser.feed(html[:max_chars])
        parser.close()
    except _OutOfTime:
        pass  # the text found so far
    text = "".join(parser.parts).replace("\xa0", " ")
    lines = [re.sub(r"[ \t\r\f\v]+", " ", line).strip() for line in text.split("\n")]
    return re.sub(r"\n{3,}", "\n\n", "\n".join(lines)).strip()
