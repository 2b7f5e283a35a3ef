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
* Every format streams: rows may be a generator of any length. csv, json,
  jsonl and line write each row as it comes; table and markdown lay out
  PAGE_ROWS rows at a time (column widths need the rows): a longer table
  result is several tables, each with its header; markdown writes its header
  once and continues its one table.
"""

from __future__ import annotations

import base64
import csv
import io
import json
import math
import shutil
from collections.abc import Iterable, Sequence
from typing import Any, TextIO

from tabulate import tabulate

FORMATS = ("table", "csv", "json", "jsonl", "markdown", "line")
# Rows the table and markdown formats lay out at once (a few MB of cells).
PAGE_ROWS = 10_000

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
    writer = row_writer(fmt, columns, out)
    for row in rows:
        writer.write(row)
    return writer.close()


def row_writer(fmt: str, columns: Sequence[str], out: TextIO) -> RowWriter:
    """A writer taking rows one at a time (``write``) that ``close`` ends.

    What :func:`render` uses; for a caller feeding several outputs from one pass.
    """
    try:
        writer = _WRITERS[fmt]
    except KeyError:
        raise ValueError(
            f"unknown output format {fmt!r}; choose one of: {', '.join(FORMATS)}"
        ) from None
    return writer(list(columns), out)


# --- helpers -------------------------------------------------------------


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


# --- writers: one class per format ----------------------------------------------


class RowWriter:
    """Writes one result set row by row: any header at creation, the end at ``close``."""

    def __init__(self, columns: list[str], out: TextIO):
        self.columns = columns
        self.out = out
        self.count = 0

    def write(self, row: Sequence[Any]) -> None:
        if len(row) != len(self.columns):
            raise ValueError(f"row {self.count + 1} has {len(row)} values for {len(self.columns)} columns")
        self._write(row)
        self.count += 1

    def _write(self, row: Sequence[Any]) -> None:
        raise NotImplementedError

    def close(self) -> int:
        """End the output (a closing bracket, the last page); return the row count."""
        return self.count


class _CsvWriter(RowWriter):
    def __init__(self, columns, out):
        super().__init__(columns, out)
        # The csv module only quotes fields containing a character of its
        # lineterminator, so with "\n" a bare "\r" inside a cell would be written
        # unquoted and break the file. Format each row with "\r\n" (quotes both)
        # into a small buffer, then swap the terminator for "\n".
        self._buffer = io.StringIO()
        self._csv = csv.writer(self._buffer, lineterminator="\r\n")
        self._write_cells(columns)

    def _write_cells(self, cells) -> None:
        self._buffer.seek(0)
        self._buffer.truncate()
        self._csv.writerow([neutralize_csv_cell(c) for c in cells])
        self.out.write(self._buffer.getvalue()[:-2] + "\n")

    def _write(self, row):
        # Convert bytes first: base64 text may itself start with '+'.
        self._write_cells([_blob(v) for v in row])


class _JsonlWriter(RowWriter):
    def __init__(self, columns, out):
        super().__init__(columns, out)
        self._keys = _unique_keys(columns)

    def _write(self, row):
        self.out.write(_json_line(self._keys, row) + "\n")


class _JsonWriter(_JsonlWriter):
    def __init__(self, columns, out):
        super().__init__(columns, out)
        out.write("[")

    def _write(self, row):
        if self.count:
            self.out.write(",\n")
        self.out.write(_json_line(self._keys, row))

    def close(self):
        self.out.write("]\n")
        return self.count


class _LineWriter(RowWriter):
    """Like sqlite3's ".mode line": "name = value", names right-aligned."""

    def _write(self, row):
        if self.count:
            self.out.write("\n")
        width = max((len(c) for c in self.columns), default=0)
        for name, value in zip(self.columns, row):
            self.out.write(f"{name:>{width}} = {_text(value)}\n")


class _PagedWriter(RowWriter):
    """Formats whose column widths depend on the rows: laid out PAGE_ROWS rows at a time,
    so memory stays bounded whatever the size of the result. A result of one page (the
    usual case) comes out exactly as if it had been laid out whole."""

    def __init__(self, columns, out):
        super().__init__(columns, out)
        self._page: list[list[Any]] = []
        self._pages = 0

    def _write(self, row):
        if len(self._page) == PAGE_ROWS:
            self._flush()
        self._page.append(self._cells(row))

    def close(self):
        if self._page or not self._pages:  # an empty result still shows its header
            self._flush()
        return self.count

    def _flush(self) -> None:
        self._write_page(self._page, first=not self._pages)
        self._pages += 1
        self._page = []

    def _cells(self, row: Sequence[Any]) -> list[Any]:
        raise NotImplementedError

    def _write_page(self, page: list[list[Any]], first: bool) -> None:
        raise NotImplementedError


class _TableWriter(_PagedWriter):
    """psql-style tables: a result longer than a page is one table per page, each with its
    header (a blank line between them)."""

    def _cells(self, row):
        # None is kept so tabulate's missingval applies; bytes would otherwise be
        # ASCII-decoded by tabulate and fail on binary data.
        return [_blob(v) for v in row]

    def _write_page(self, page, first):
        if not first:
            self.out.write("\n")
        # disable_numparse: ARNs, account ids like "012345678901" and version
        # strings must print exactly as stored, not re-formatted as numbers. SQLite's
        # own types say which columns are numbers: those are right-aligned.
        numeric = [
            bool(page) and all(row[i] is None or isinstance(row[i], (int, float)) for row in page)
            and any(row[i] is not None for row in page)
            for i in range(len(self.columns))
        ]
        text = tabulate(
            page,
            headers=self.columns,
            tablefmt="psql",
            missingval="",
            disable_numparse=True,
            colalign=["right" if n else "left" for n in numeric] or None,
            maxcolwidths=_fit_to_terminal(self.columns, page, self.out),
        )
        if text:
            self.out.write(text + "\n")


class _MarkdownWriter(_PagedWriter):
    """GitHub tables: the header once, then every row; later pages continue the first
    (Markdown does not need the columns of a table to line up)."""

    def _cells(self, row):
        return [_md_cell(v) for v in row]

    def _write_page(self, page, first):
        text = tabulate(
            page,
            headers=[_md_cell(c) for c in self.columns],
            tablefmt="github",
            missingval="",
            disable_numparse=True,
        )
        # Each row is one line (_md_cell turns line breaks into <br>): drop the
        # header and its rule from every page but the first.
        lines = text.splitlines()[0 if first else 2:]
        if lines:
            self.out.write("\n".join(lines) + "\n")


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


_WRITERS: dict[str, type[RowWriter]] = {
    "table": _TableWriter,
    "csv": _CsvWriter,
    "json": _JsonWriter,
    "jsonl": _JsonlWriter,
    "markdown": _MarkdownWriter,
    "line": _LineWriter,
}
