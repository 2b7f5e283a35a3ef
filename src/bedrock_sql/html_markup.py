"""Pieces of the HTML report's markup: escaping, numbers, tables, SVG bars and charts.

Every value reaches the page through :func:`esc` (text and attributes) or :func:`script_json`
(the data the page's script reads); nothing here fetches or links anything but a control's
http(s) references.
"""

from __future__ import annotations

import base64
import hashlib
import html
import json
import re
from importlib import resources
from typing import Any, Iterable, Mapping

from .controls import STATUS_ORDER, muted_key

SEGMENTS = (*STATUS_ORDER, "muted")  # the parts of a bar: each status unmuted, then every muted finding

esc = html.escape
_BREAK_AFTER = re.compile(r"([:/_])(?=.)")


def cell_text(value: Any) -> str:
    """A value from SQLite as text: NULL is empty."""
    return "" if value is None else str(value)


def script_json(value: Any) -> str:
    """JSON text safe inside a ``<script>`` element: ``<``, ``>`` and ``&`` are written as
    ``\\u003c`` and so on, so no value (``</script>``, ``<!--``) can end the element."""
    text = json.dumps(value, ensure_ascii=False, separators=(",", ":"))
    return text.replace("&", "\\u0026").replace("<", "\\u003c").replace(">", "\\u003e")


def template(name: str) -> str:
    return resources.files("bedrock_sql").joinpath("templates", name).read_text(encoding="utf-8")


def csp_hash(text: str) -> str:
    return "'sha256-" + base64.b64encode(hashlib.sha256(text.encode("utf-8")).digest()).decode("ascii") + "'"


def web_link(url: str) -> str:
    """A reference as a link when it is an http(s) URL; any other text (``javascript:``...) as text."""
    if url.lower().startswith(("https://", "http://")) and not any(c.isspace() for c in url):
        return f'<a href="{esc(url)}" rel="noopener noreferrer">{esc(url)}</a>'
    return esc(url)


def breakable(text: str) -> str:
    """Escaped text that may break after ``:``, ``/`` and ``_`` (ARNs, control ids), not mid-word."""
    return _BREAK_AFTER.sub(r"\1<wbr>", esc(text))


def number(n: int) -> str:
    return f"{n:,}"


def plural(n: int, word: str) -> str:
    return f"{number(n)} {word}{'' if n == 1 else 's'}"


def listing(values: list[str], *, code: bool = False) -> str:
    """Values, comma-separated; past 12 the rest fold into a <details>."""
    if not values:
        return "none recorded"
    wrap = (lambda v: f"<code>{esc(v)}</code>") if code else esc
    shown = ", ".join(wrap(v) for v in values[:12])
    if len(values) <= 12:
        return shown
    rest = ", ".join(wrap(v) for v in values[12:])
    return f"{shown} <details><summary>and {number(len(values) - 12)} more ({number(len(values))} in all)</summary>{rest}</details>"


def stacked_table(caption: str, headers: Iterable[str], rows: Iterable[list[str]]) -> str:
    """A table of cells already in HTML; at phone width each row is a card, each cell labelled."""
    headers = list(headers)
    head = "".join(f'<th scope="col">{name}</th>' for name in headers)
    body = "".join("<tr>" + "".join(f'<td data-label="{name}">{cell}</td>' for name, cell in zip(headers, row))
                   + "</tr>\n" for row in rows)
    return (f'<div class="table-wrap"><table class="stack"><caption class="visually-hidden">{esc(caption)}</caption>'
            f"<thead><tr>{head}</tr></thead><tbody>\n{body}</tbody></table></div>\n")


def filter_link(n: int, filters: Mapping[str, str]) -> str:
    """A count that, clicked, shows its findings in the table (a plain jump without JavaScript)."""
    if not n:
        return "0"
    attributes = "".join(f' data-{name}="{esc(value)}"' for name, value in filters.items())
    return f'<a href="#findings" data-filter="1"{attributes}>{number(n)}</a>'


def segments(counts: Mapping[str, int]) -> list[tuple[str, int]]:
    parts = [(s, counts[s] - counts[muted_key(s)]) for s in STATUS_ORDER]
    parts.append(("muted", sum(counts[muted_key(s)] for s in STATUS_ORDER)))
    return [(name, n) for name, n in parts if n]


def bar(counts: Mapping[str, int]) -> str:
    """A 100% stacked bar of one row's counts (decorative: the row's cells hold the numbers)."""
    total = counts["total"]
    if not total:
        return ""
    x, rects = 0.0, []
    for name, n in segments(counts):
        width = 100.0 * n / total
        rects.append(f'<rect class="fill-{name}" x="{x:.3f}" y="0" width="{width:.3f}" height="10">'
                     f"<title>{name}: {number(n)}</title></rect>")
        x += width
    return (f'<svg class="bar" viewBox="0 0 100 10" preserveAspectRatio="none" aria-hidden="true" focusable="false">'
            f'{"".join(rects)}</svg>')


def status_chart(counts: Mapping[str, int]) -> str:
    """A bar per status (and one for the muted), labelled with its name and count."""
    rows = [(s, counts[s]) for s in STATUS_ORDER] + [("muted", sum(counts[muted_key(s)] for s in STATUS_ORDER))]
    top = max((n for _, n in rows), default=0) or 1
    height = 26 * len(rows) + 4
    parts = []
    for i, (name, n) in enumerate(rows):
        y = 4 + 26 * i
        width = 0 if not n else max(2.0, 440.0 * n / top)
        parts.append(f'<text x="0" y="{y + 14}">{name}</text><rect class="fill-{name}" x="70" y="{y}" width="{width:.1f}" '
                     f'height="18"/><text x="{76 + width:.1f}" y="{y + 14}">{number(n)}</text>')
    description = ", ".join(f"{name} {number(n)}" for name, n in rows)
    return (f'<svg class="chart" viewBox="0 0 640 {height}" role="img" aria-labelledby="status-chart-title status-chart-desc">'
            f'<title id="status-chart-title">Findings by status</title><desc id="status-chart-desc">{description}</desc>'
            f'{"".join(parts)}</svg>')


def legend() -> str:
    return ('<ul class="legend" aria-label="Colours of the bars">'
            + "".join(f'<li class="legend-{name}">{name if name != "muted" else "muted (accepted risk, any status)"}</li>'
                      for name in SEGMENTS) + "</ul>\n")
