"""Pull facts out of a rendered report: section ids and ``data-k`` cells, by run."""

from __future__ import annotations

from html.parser import HTMLParser


class _Facts(HTMLParser):
    def __init__(self):
        super().__init__()
        self.sections: list[str] = []
        self.facts: dict[tuple[str | None, str], list[str]] = {}
        self._stack: list[tuple[str, str | None, str | None]] = []  # (tag, run, key)
        self._open: list[tuple[str | None, str, list[str]]] = []

    def handle_starttag(self, tag, attrs):
        a = dict(attrs)
        if tag == "section" and a.get("id"):
            self.sections.append(a["id"])
        inherited = next((r for _, r, _ in reversed(self._stack) if r), None)
        run = a.get("data-run") or inherited
        self._stack.append((tag, run, a.get("data-k")))
        if a.get("data-k"):
            self._open.append((run, a["data-k"], []))

    def handle_endtag(self, tag):
        while self._stack:
            t, _, key = self._stack.pop()
            if key:
                run, k, parts = self._open.pop()
                self.facts.setdefault((run, k), []).append(" ".join("".join(parts).split()))
            if t == tag:
                break

    def handle_data(self, data):
        for _, _, parts in self._open:
            parts.append(data)


def parse(html: str) -> _Facts:
    parser = _Facts()
    parser.feed(html)
    parser.close()
    return parser


def number(text: str) -> float:
    """'1,234.5 req/s' -> 1234.5"""
    return float(text.split()[0].replace(",", ""))
