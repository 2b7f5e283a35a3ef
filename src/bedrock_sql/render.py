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

Resource data is hostile (names, descriptions, tags, key descriptions, policy Sids are
written by whoever can create a resource in one member account), so every format for
people writes it inert:

* table, line (and every line bedrock-sql prints for a person) go through
  :func:`terminal_text`: a character that is not printable -- C0 and C1 controls (ESC, BEL,
  CR, backspace, DEL, 0x80-0x9f), Unicode format characters (bidi overrides and isolates,
  zero-width characters), line and paragraph separators, spaces other than " " -- is shown
  as its Python escape (``\x1b``, ``\r``, ``\u202e``), and a backslash as ``\\``, so no
  text can drive the terminal or pose as another value. Line breaks in a table cell stay
  line breaks (tabulate lays the cell out on several lines); a page holding one is laid out
  with a rule between rows (tabulate's "grid"), so no line of a value can pass for a row.
  In ``line`` format a value's later lines are indented past the names.
* markdown goes through :func:`markdown_text`: the same escapes, then ``< > &`` as HTML
  entities and the Markdown metacharacters backslash-escaped, so a value is shown as
  text by any CommonMark/GFM renderer: no HTML, link, image, emphasis, code span, math or
  broken table.
* csv is made formula-safe by :func:`neutralize_csv_cell`.
"""

from __future__ import annotations

import base64
import csv
import io
import json
import math
import re
import shutil
from collections.abc import Iterable, Sequence
from typing import Any, TextIO

from tabulate import tabulate

FORMATS = ("table", "csv", "json", "jsonl", "markdown", "line")
# Rows the table and markdown formats lay out at once (a few MB of cells).
PAGE_ROWS = 10_000

# OWASP "CSV injection" (and ASVS 5.0 V1.2.10): spreadsheets treat a cell starting with one of
# these as a formula (tab, CR and NUL also count: importers drop them first -- LibreOffice
# 7.4 evaluates "\0=1+1").
_FORMULA_TRIGGERS = ("=", "+", "-", "@", "\t", "\r", "\0")
_FORMULA_STARTS = ("=", "+", "-", "@")
# What an importer may drop before it looks for a formula: LibreOffice's "Trim spaces" CSV
# option evaluates " =1+1" (and " \0=1+1"), so a trigger after these counts too (line breaks
# to be safe: LibreOffice keeps them). Measured there as text, so left alone: a full-width
# U+FF1D, and "=" after a no-break or ideographic space.
_DROPPED_BEFORE_FORMULA = " \t\r\n\0"


def neutralize_csv_cell(value: Any) -> Any:
    """Defuse spreadsheet formula injection in one CSV cell.

    A str starting with '=', '+', '-', '@', tab, carriage return or NUL -- or with one of
    '=', '+', '-', '@' after leading spaces, line breaks and NULs -- gets a leading single
    quote, so spreadsheets show it as text. Anything else, including ints and floats (a
    negative number is harmless), is returned unchanged.
    """
    if isinstance(value, str) and (
        value.startswith(_FORMULA_TRIGGERS) or value.lstrip(_DROPPED_BEFORE_FORMULA).startswith(_FORMULA_STARTS)
    ):
        return "'" + value
    return value


# --- inert text for terminals and Markdown ---------------------------------------------------


class Styled(str):
    """Text bedrock-sql styled itself (``click.style`` colours): :func:`terminal_text` passes
    it through. Never wrap data in it."""


_NAMED_ESCAPES = {"\\": "\\\\", "\t": "\\t", "\n": "\\n", "\r": "\\r"}


def _escape_char(char: str) -> str:
    named = _NAMED_ESCAPES.get(char)
    if named:
        return named
    code = ord(char)
    return f"\\x{code:02x}" if code < 0x100 else f"\\u{code:04x}" if code < 0x10000 else f"\\U{code:08x}"


def _escape_line(text: str) -> str:
    return "".join(c if c.isprintable() and c != "\\" else _escape_char(c) for c in text)


def terminal_text(value: Any, *, multiline: bool = False) -> str:
    """``value`` as text that is inert on a terminal: what every line for a person goes through.

    NULL is empty and bytes are base64 (as in every format). Each character that is not
    printable (:meth:`str.isprintable`: C0/C1 controls such as ESC, BEL, CR, backspace, DEL
    and 0x80-0x9f; Unicode format characters such as the bidi overrides U+202A-U+202E and
    isolates U+2066-U+2069, which reorder what a reviewer sees, and zero-width characters;
    line/paragraph separators; spaces other than " ") becomes its Python escape (``\\x1b``,
    ``\\t``, ``\\r``, ``\\n``, ``\\u202e``), and a backslash ``\\\\``: the result is
    printable, and it reads back to the value exactly (``unicode_escape``), so no value can
    pose as another. With ``multiline`` a line feed stays a line break (the caller lays out
    the lines); otherwise it is ``\\n`` too. :class:`Styled` text is returned as is.
    """
    if isinstance(value, Styled):
        return value
    text = _text(value)
    if text.isprintable() and "\\" not in text:  # the usual case, at C speed
        return text
    if multiline and "\n" in text:
        return "\n".join(_escape_line(line) for line in text.split("\n"))
    return _escape_line(text)


_LINE_BREAK = re.compile(r"\r\n|\r|\n")
# Any of these in a value sends it through markdown_text's escaping (most cells hold none).
_MARKDOWN_SPECIAL = re.compile(r"[\\`*_~\[\]|$@#<>&\r\n]|://|[Ww]{3}\.")
# Markdown (CommonMark and GitHub's extensions) that data could use to make markup: code
# spans, emphasis, strikethrough, links/images/footnotes, table cells, math, @mentions and
# #references; a backslash because it is the escape itself. Before any of these a backslash
# makes the character literal; < > & are entities (no HTML, no <autolink>, no &entity;).
_MARKDOWN_ESCAPES = str.maketrans(
    {**{c: "\\" + c for c in "\\`*~[]|$@#"}, "<": "&lt;", ">": "&gt;", "&": "&amp;"}
)
# "_" makes emphasis only where it does not stand between two letters or digits (CommonMark's
# flanking rules): control_id and account_id stay readable in the raw file.
_UNDERSCORE = re.compile(r"(?<![^\W_])_|_(?![^\W_])")
# GitHub's extended autolinks: "scheme://..." and "www." become links even as plain text. An
# escaped ":" or "." there leaves the text as it was and makes no link. (An e-mail address
# stays an autolink: GitHub finds those after escapes are undone; its text is its target.)
_AUTOLINK = re.compile(r"(?=://)|(?<=[Ww][Ww][Ww])(?=\.)")


def markdown_text(value: Any) -> str:
    """``value`` as Markdown inline text (a table cell, a sentence) that renders as exactly
    its text: :func:`terminal_text` escapes (Markdown files are read in terminals too), HTML
    and Markdown metacharacters escaped, and each line break a ``<br>`` (a cell is one line).
    """
    text = _text(value)
    if text.isprintable() and not _MARKDOWN_SPECIAL.search(text):  # the usual case
        return text
    lines = _LINE_BREAK.split(text)
    escaped = (_AUTOLINK.sub("\\\\", _UNDERSCORE.sub(r"\\_", terminal_text(line).translate(_MARKDOWN_ESCAPES)))
               for line in lines)
    return "<br>".join(escaped)


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


def inert_json(text: str) -> str:
    """JSON text (from ``json.dumps(..., ensure_ascii=False)``) with every character that is not
    printable written as its ``\\uXXXX`` escape: json.dumps escapes C0 itself but leaves DEL, C1
    controls (0x9b is CSI on 8-bit terminals), Unicode format characters (bidi overrides,
    zero-width) and unassigned code points raw. The same JSON value, safe to print
    (``cat findings.json``), non-ASCII names still readable. Line breaks of ``indent`` stay."""
    return "\n".join(line if line.isprintable() else _inert_json_line(line) for line in text.split("\n"))


def _inert_json_line(line: str) -> str:
    return "".join(c if c.isprintable() else json.dumps(c)[1:-1] for c in line)


def _json_line(keys: Sequence[str], row: Sequence[Any]) -> str:
    # ensure_ascii=False keeps non-ASCII names and tags readable; inert_json what is unsafe.
    return inert_json(json.dumps(
        {k: _json_value(v) for k, v in zip(keys, row)},
        ensure_ascii=False,
        allow_nan=False,
    ))


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
        # CSV has no escapes of its own: on a terminal (a person reading, not a pipe or a
        # file) cells are shown as terminal_text shows them, so no value can drive it.
        isatty = getattr(out, "isatty", None)
        self._for_terminal = bool(isatty and isatty())
        self._write_cells(columns)

    def _write_cells(self, cells) -> None:
        self._buffer.seek(0)
        self._buffer.truncate()
        if self._for_terminal:
            cells = [c if c is None else terminal_text(c) for c in cells]
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
    """Like sqlite3's ".mode line": "name = value", names right-aligned. A value's later lines
    are indented past the names, so no line of a value can pass for another column or row."""

    def __init__(self, columns, out):
        super().__init__(columns, out)
        self._names = [terminal_text(c) for c in columns]
        self._width = max((len(n) for n in self._names), default=0)
        self._continued = "\n" + " " * (self._width + 3)

    def _write(self, row):
        if self.count:
            self.out.write("\n")
        for name, value in zip(self._names, row):
            shown = terminal_text(value, multiline=True).replace("\n", self._continued)
            self.out.write(f"{name:>{self._width}} = {shown}\n")


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
        # None is kept so tabulate's missingval applies, and numbers so they align right;
        # text is made inert (bytes are base64: tabulate would ASCII-decode them and fail).
        return [v if v is None or isinstance(v, (int, float)) else terminal_text(v, multiline=True) for v in row]

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
        headers = [terminal_text(c, multiline=True) for c in self.columns]
        widths = _fit_to_terminal(headers, page, self.out)
        # A cell of several lines (a line break, or wrapped to the terminal) is ambiguous in
        # psql's layout, which has no rule between rows: its later lines read as rows of
        # their own, which data could forge. Such a page gets a rule after every row.
        several_lines = widths is not None or any(
            "\n" in cell for row in page for cell in row if isinstance(cell, str)
        ) or any("\n" in h for h in headers)
        text = tabulate(
            page,
            headers=headers,
            tablefmt="grid" if several_lines else "psql",
            missingval="",
            disable_numparse=True,
            colalign=["right" if n else "left" for n in numeric] or None,
            maxcolwidths=widths,
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
        max([_widest_line(h)] + [_widest_line(row[i]) for row in data if row[i] is not None])
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


def _widest_line(value: Any) -> int:
    # Styled text (our colours) is as wide as its text: the escape sequences take no room.
    text = _ANSI_STYLE.sub("", value) if isinstance(value, Styled) else str(value)
    return max(len(line) for line in text.split("\n"))


_ANSI_STYLE = re.compile(r"\x1b\[[0-9;]*m")


def _md_cell(value: Any) -> str:
    # markdown_text: no markup from data, a '|' escaped (it would end the cell) and each
    # line break a <br> (a newline would end the row).
    return markdown_text(value)


_WRITERS: dict[str, type[RowWriter]] = {
    "table": _TableWriter,
    "csv": _CsvWriter,
    "json": _JsonWriter,
    "jsonl": _JsonlWriter,
    "markdown": _MarkdownWriter,
    "line": _LineWriter,
}
