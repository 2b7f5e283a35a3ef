"""Render SQL result sets - the one place output formats are implemented.

Values come from SQLite, so a cell is one of None, int, float, str or bytes.

Conventions shared by every format:

* NULL is ``null`` in json/jsonl and an empty field/cell everywhere else.
* bytes (BLOBs) are written as standard base64 text, in every format, so
  binary data never reaches a terminal or a file raw.
* json/jsonl objects need unique keys, so a repeated column name (e.g.
  ``SELECT a.x, b.x``) keeps its first occurrence and later ones become
  ``x_2``, ``x_3``... (skipping any name that is already a real column).
  csv, table, markdown and line keep the names exactly as SQLite gave them.
* Non-finite floats (SQLite can hold +/-Inf) are written to json/jsonl as
  the strings "inf"/"-inf", because JSON has no literal for them.
* csv, json, jsonl and line stream: rows may be a generator of any length.
  table and markdown hold all rows in memory, since column widths need them.
"""

from __future__ import annotations

import base64
import csv
import io
import json
import math
import shutil
from collections.abc import Iterable, Iterator, Sequence
from typing import Any, TextIO

from tabulate import tabulate

FORMATS = ("table", "csv", "json", "jsonl", "markdown", "line")

# OWASP "CSV injection": spreadsheets treat a cell starting with one of these
# as a formula (tab and CR also count, since some importers strip them first).
_FORMULA_TRIGGERS = ("=", "+", "-", "@", "\t", "\r")


def neutralize_csv_cell(value: Any) -> Any:
    """Defuse spreadsheet formula injection in one CSV cell.

    A str starting with '=', '+', '-', '@', tab or carriage return gets a
    leading single quote, so spreadsheets show it as text. Anything else,
    including ints and floats (a negative number is harmless), is returned
    unchanged.
    """
    if isinstance(value, str) and value.startswith(_FORMULA_TRIGGERS):
        return "'" + value
    return value


def render(
    columns: Sequence[str], rows: Iterable[Sequence[Any]], fmt: str, out: TextIO
) -> int:
    """Write ``rows`` to ``out`` in format ``fmt``; return the number of rows.

    ``fmt`` is one of FORMATS; anything else raises ValueError. A row whose
    length differs from ``columns`` raises ValueError rather than silently
    losing or inventing cells. See the module docstring for NULL, BLOB and
    duplicate-column conventions.
    """
    try:
        writer = _WRITERS[fmt]
    except KeyError:
        raise ValueError(
            f"unknown output format {fmt!r}; choose one of: {', '.join(FORMATS)}"
        ) from None
    columns = list(columns)
    return writer(columns, _checked(rows, len(columns)), out)


# --- helpers -------------------------------------------------------------


def _checked(rows: Iterable[Sequence[Any]], width: int) -> Iterator[Sequence[Any]]:
    """Yield rows lazily, refusing any whose length does not match the header."""
    for number, row in enumerate(rows, 1):
        if len(row) != width:
            raise ValueError(f"row {number} has {len(row)} values for {width} columns")
        yield row


def _blob(value: Any) -> Any:
    """bytes -> base64 text; every other value unchanged."""
    if isinstance(value, (bytes, bytearray, memoryview)):
        return base64.b64encode(value).decode("ascii")
    return value


def _text(value: Any) -> str:
    """A cell as display text: NULL is empty, bytes are base64."""
    return "" if value is None else str(_blob(value))


def _json_value(value: Any) -> Any:
    if isinstance(value, float) and not math.isfinite(value):
        return str(value)  # "inf" / "-inf" / "nan": JSON has no literal for these
    return _blob(value)


def _unique_keys(columns: Sequence[str]) -> list[str]:
    """Make column names unique for JSON objects: x, x -> x, x_2."""
    taken = set(columns)  # never rename onto a name that is a real column
    seen: set[str] = set()
    keys = []
    for name in columns:
        if name in seen:
            n = 2
            while f"{name}_{n}" in taken:
                n += 1
            name = f"{name}_{n}"
            taken.add(name)
        seen.add(name)
        keys.append(name)
    return keys


def _json_line(keys: Sequence[str], row: Sequence[Any]) -> str:
    # ensure_ascii=False keeps non-ASCII names and tags readable.
    return json.dumps(
        {k: _json_value(v) for k, v in zip(keys, row)},
        ensure_ascii=False,
        allow_nan=False,
    )


# --- writers: each takes (columns, rows, out) and returns the row count ----


def _write_csv(columns, rows, out) -> int:
    # The csv module only quotes fields containing a character of its
    # lineterminator, so with "\n" a bare "\r" inside a cell would be written
    # unquoted and break the file. Format each row with "\r\n" (quotes both)
    # into a small buffer, then swap the terminator for "\n".
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\r\n")

    def write_row(cells) -> None:
        buf.seek(0)
        buf.truncate()
        writer.writerow([neutralize_csv_cell(c) for c in cells])
        out.write(buf.getvalue()[:-2] + "\n")

    write_row(columns)
    count = 0
    for row in rows:
        # Convert bytes first: base64 text may itself start with '+'.
        write_row([_blob(v) for v in row])
        count += 1
    return count


def _write_json(columns, rows, out) -> int:
    keys = _unique_keys(columns)
    out.write("[")
    count = 0
    for row in rows:
        if count:
            out.write(",\n")
        out.write(_json_line(keys, row))
        count += 1
    out.write("]\n")
    return count


def _write_jsonl(columns, rows, out) -> int:
    keys = _unique_keys(columns)
    count = 0
    for row in rows:
        out.write(_json_line(keys, row) + "\n")
        count += 1
    return count


def _write_table(columns, rows, out) -> int:
    # None is kept so tabulate's missingval applies; bytes would otherwise be
    # ASCII-decoded by tabulate and fail on binary data.
    data = [[_blob(v) for v in row] for row in rows]
    # disable_numparse: ARNs, account ids like "012345678901" and version
    # strings must print exactly as stored, not re-formatted as numbers. SQLite's
    # own types say which columns are numbers: those are right-aligned.
    numeric = [
        bool(data) and all(row[i] is None or isinstance(row[i], (int, float)) for row in data)
        and any(row[i] is not None for row in data)
        for i in range(len(columns))
    ]
    text = tabulate(
        data,
        headers=columns,
        tablefmt="psql",
        missingval="",
        disable_numparse=True,
        colalign=["right" if n else "left" for n in numeric] or None,
        maxcolwidths=_fit_to_terminal(columns, data, out),
    )
    if text:
        out.write(text + "\n")
    return len(data)


def _fit_to_terminal(columns, data, out) -> list[int | None] | None:
    """Column widths that fit the terminal (wrapping the widest columns), or None.

    Only on a terminal: piped or redirected tables keep every value on one line.
    """
    if not columns or not getattr(out, "isatty", lambda: False)():
        return None
    width = shutil.get_terminal_size((120, 24)).columns
    natural = [
        max([len(str(h))] + [len(str(row[i])) for row in data if row[i] is not None])
        for i, h in enumerate(columns)
    ]
    budget = width - 3 * len(columns) - 1  # psql borders: "| " ... " |" between columns
    if sum(natural) <= budget:
        return None
    caps = list(natural)
    while sum(caps) > budget:  # shave the widest column, down to a readable minimum
        widest = max(range(len(caps)), key=lambda i: caps[i])
        if caps[widest] <= 12:
            break
        caps[widest] -= 1
    return [c if c < n else None for c, n in zip(caps, natural)]


def _md_cell(value: Any) -> str:
    # A bare '|' would end the cell and a newline would end the row.
    text = _text(value).replace("|", "\\|")
    return text.replace("\r\n", "<br>").replace("\n", "<br>").replace("\r", "<br>")


def _write_markdown(columns, rows, out) -> int:
    data = [[_md_cell(v) for v in row] for row in rows]
    text = tabulate(
        data,
        headers=[_md_cell(c) for c in columns],
        tablefmt="github",
        missingval="",
        disable_numparse=True,
    )
    if text:
        out.write(text + "\n")
    return len(data)


def _write_line(columns, rows, out) -> int:
    # Like sqlite3's ".mode line": "name = value", names right-aligned.
    width = max((len(c) for c in columns), default=0)
    count = 0
    for row in rows:
        if count:
            out.write("\n")
        for name, value in zip(columns, row):
            out.write(f"{name:>{width}} = {_text(value)}\n")
        count += 1
    return count


_WRITERS = {
    "table": _write_table,
    "csv": _write_csv,
    "json": _write_json,
    "jsonl": _write_jsonl,
    "markdown": _write_markdown,
    "line": _write_line,
}
