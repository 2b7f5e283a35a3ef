"""Tests for bedrock_sql.render: every format, NULLs, CSV injection, streaming, inert text
(terminal escapes, Markdown rendered by real renderers)."""

import base64
import csv
import io
import json
import re
import unicodedata

from html.parser import HTMLParser

import cmarkgfm
import pytest
from cmarkgfm.cmark import Options as CmarkOptions
from hypothesis import example, given, settings
from hypothesis import strategies as st
from markdown_it import MarkdownIt

from bedrock_sql.render import FORMATS, Styled, markdown_text, neutralize_csv_cell, render, terminal_text

COLUMNS = ["arn", "account", "n", "ratio", "note", "blob"]
ROWS = [
    (
        "arn:aws:bedrock:us-east-1:012345678901:custom-model/m1",
        "012345678901",
        7,
        1.5,
        "héllo, \"world\"",
        b"\x00\xffbin",
    ),
    ("arn:aws:bedrock:eu-west-1:000000000001:custom-model/m2", "000000000001", -3, 0.25, None, None),
]


def run(fmt, rows=ROWS, columns=COLUMNS):
    out = io.StringIO()
    count = render(columns, rows, fmt, out)
    return count, out.getvalue()


def b64(data):
    return base64.b64encode(data).decode("ascii")


# --- round trips -----------------------------------------------------------


def test_csv_round_trip():
    count, text = run("csv")
    assert count == 2
    parsed = list(csv.reader(io.StringIO(text)))
    assert parsed == [
        COLUMNS,
        [ROWS[0][0], "012345678901", "7", "1.5", "héllo, \"world\"", b64(b"\x00\xffbin")],
        [ROWS[1][0], "000000000001", "-3", "0.25", "", ""],  # NULL -> empty field
    ]
    assert "\r" not in text and text.endswith("\n")


def expected_objects():
    return [
        {
            "arn": ROWS[0][0],
            "account": "012345678901",
            "n": 7,
            "ratio": 1.5,
            "note": "héllo, \"world\"",
            "blob": b64(b"\x00\xffbin"),
        },
        {
            "arn": ROWS[1][0],
            "account": "000000000001",
            "n": -3,
            "ratio": 0.25,
            "note": None,
            "blob": None,
        },
    ]


def test_json_round_trip():
    count, text = run("json")
    assert count == 2
    parsed = json.loads(text)
    assert parsed == expected_objects()
    assert list(parsed[0]) == COLUMNS  # column order kept
    assert text.startswith("[") and text.endswith("]\n")


def test_jsonl_round_trip():
    count, text = run("jsonl")
    assert count == 2
    lines = text.splitlines()
    assert len(lines) == 2
    assert [json.loads(line) for line in lines] == expected_objects()
    assert text.endswith("\n")


def test_json_non_finite_float_stays_valid_json():
    _, text = run("json", rows=[(float("inf"),)], columns=["x"])
    assert json.loads(text) == [{"x": "inf"}]


def test_table_keeps_strings_verbatim_and_blanks_null():
    count, text = run("table")
    assert count == 2
    lines = text.splitlines()
    assert lines[0].startswith("+-") and lines[-1].startswith("+-")
    header = [c.strip() for c in lines[1].strip("|").split("|")]
    assert header == COLUMNS
    # disable_numparse: a leading-zero account id is not turned into 12345678901.
    assert "| 012345678901 " in text
    assert "| 000000000001 " in text
    second = [c.strip() for c in lines[4].strip("|").split("|")]
    assert second[4:] == ["", ""]  # NULL note and NULL blob are empty cells
    assert "None" not in text
    assert b64(b"\x00\xffbin") in text


def test_markdown_round_trip_and_null():
    count, text = run("markdown")
    assert count == 2
    lines = text.splitlines()
    assert len(lines) == 4
    assert lines[1].replace("|", "").strip("-: ") == ""  # separator row
    cells = [[c.strip() for c in line.strip().strip("|").split("|")] for line in lines]
    assert cells[0] == COLUMNS
    assert cells[2][1] == "012345678901"
    assert cells[3][4:] == ["", ""]
    assert "None" not in text


def test_markdown_escapes_pipes_and_newlines():
    _, text = run("markdown", rows=[("a|b", "line1\nline2\r\nline3")], columns=["x|y", "z"])
    lines = text.splitlines()
    assert len(lines) == 3  # newlines did not split the row
    assert "x\\|y" in lines[0]
    assert "a\\|b" in lines[2]
    assert "line1<br>line2<br>line3" in lines[2]
    # Splitting on unescaped pipes still yields exactly two cells per row.
    unescaped = lines[2].replace("\\|", "").strip().strip("|").split("|")
    assert len(unescaped) == 2


def test_line_format():
    count, text = run("line", rows=[(1, None), ("x", b"\x01")], columns=["id", "longname"])
    assert count == 2
    assert text == (
        "      id = 1\n"
        "longname = \n"  # NULL shows an empty value
        "\n"
        "      id = x\n"
        "longname = " + b64(b"\x01") + "\n"
    )


# --- NULLs -------------------------------------------------------------------


def test_all_null_row_every_format():
    cols = ["a", "b"]
    rows = [(None, None)]
    assert list(csv.reader(io.StringIO(run("csv", rows, cols)[1]))) == [cols, ["", ""]]
    assert json.loads(run("json", rows, cols)[1]) == [{"a": None, "b": None}]
    assert json.loads(run("jsonl", rows, cols)[1]) == {"a": None, "b": None}
    assert run("line", rows, cols)[1] == "a = \nb = \n"
    for fmt in ("table", "markdown"):
        text = run(fmt, rows, cols)[1]
        assert "None" not in text and "null" not in text.lower()
        data_line = [ln for ln in text.splitlines() if ln.startswith("|")][-1]
        assert data_line.replace("|", "").strip() == ""


# --- CSV injection ---------------------------------------------------------------


@pytest.mark.parametrize("trigger", ["=", "+", "-", "@", "\t", "\r", "\0"])
def test_neutralize_every_trigger(trigger):
    value = trigger + "HYPERLINK(\"http://evil\")"
    assert neutralize_csv_cell(value) == "'" + value


# Measured with LibreOffice Calc 7.4's CSV import ("Evaluate formulas" on): it drops NULs, and
# with "Trim spaces" it evaluates " =1+1" -- so a trigger after spaces or NULs is a formula too
# (and after a line break, to be safe: it did not evaluate "\n=1+1", another importer may).
@pytest.mark.parametrize("value", [" =1+1", "   @SUM(1;1)", " \0=1+1", "\0 =1+1", "\n=1+1", " -1+1", " +A1"])
def test_neutralize_a_trigger_after_what_an_importer_drops(value):
    assert neutralize_csv_cell(value) == "'" + value


@pytest.mark.parametrize(
    # Full-width U+FF1D and "=" after a no-break or ideographic space are text to LibreOffice
    # (measured): left alone, as is any '=' that is not at the start.
    "value", ["abc", "", "a=b", "'=1", "\uff1d1+1", "\u00a0=1", "\u3000=1", "x =1", 5, -3, -2.5, 0.0, None, b"=x"]
)
def test_neutralize_leaves_harmless_values(value):
    assert neutralize_csv_cell(value) == value
    assert type(neutralize_csv_cell(value)) is type(value)


def test_csv_neutralizes_cells_and_headers():
    rows = [("=1+1", "+x", "-y", "@z", "\tt", "\rr", -3, "safe")]
    cols = ["=h", "b", "c", "d", "e", "f", "g", "h"]
    parsed = list(csv.reader(io.StringIO(run("csv", rows, cols)[1], newline="")))
    assert parsed[0][0] == "'=h"
    assert parsed[1] == ["'=1+1", "'+x", "'-y", "'@z", "'\tt", "'\rr", "-3", "safe"]


def test_csv_quotes_embedded_line_breaks():
    rows = [("a\rb", "c\nd", "e\r\nf")]
    text = run("csv", rows, ["x", "y", "z"])[1]
    assert text == 'x,y,z\n"a\rb","c\nd","e\r\nf"\n'  # every line break quoted
    assert list(csv.reader(io.StringIO(text, newline=""))) == [["x", "y", "z"], list(rows[0])]


def test_csv_neutralizes_base64_of_blob():
    blob = b"\xf8"  # base64 "+A==" starts with a trigger character
    assert b64(blob).startswith("+")
    parsed = list(csv.reader(io.StringIO(run("csv", [(blob,)], ["b"])[1])))
    assert parsed[1] == ["'" + b64(blob)]


def test_other_formats_do_not_neutralize():
    assert json.loads(run("json", [("=1",)], ["x"])[1]) == [{"x": "=1"}]


# --- streaming -----------------------------------------------------------------


class OneShot:
    """An iterable that can be iterated once and records how far it got."""

    def __init__(self, n):
        self.n = n
        self.produced = 0
        self.used = False

    def __iter__(self):
        assert not self.used, "rows iterated twice"
        self.used = True
        for i in range(self.n):
            self.produced += 1
            yield (i, f"name-{i}", None if i % 2 else i / 2)


@pytest.mark.parametrize("fmt", ["csv", "jsonl", "json", "line"])
def test_generator_of_10000_rows(fmt):
    rows = OneShot(10_000)
    count, text = run(fmt, rows=rows, columns=["i", "name", "half"])
    assert count == 10_000 and rows.produced == 10_000
    if fmt == "csv":
        parsed = list(csv.DictReader(io.StringIO(text)))
        assert len(parsed) == 10_000
        assert parsed[9_999] == {"i": "9999", "name": "name-9999", "half": ""}
        assert parsed[4] == {"i": "4", "name": "name-4", "half": "2.0"}
    elif fmt == "jsonl":
        objs = [json.loads(line) for line in text.splitlines()]
        assert len(objs) == 10_000
        assert objs[-1] == {"i": 9999, "name": "name-9999", "half": None}
    elif fmt == "json":
        objs = json.loads(text)
        assert len(objs) == 10_000 and objs[4]["half"] == 2.0
    else:
        assert text.count("\n\n") == 9_999


@pytest.mark.parametrize("fmt", ["csv", "jsonl", "json", "line"])
def test_streaming_formats_write_before_input_ends(fmt):
    """The first row reaches `out` before the generator is exhausted."""
    out = io.StringIO()
    seen_output = []

    def rows():
        yield ("first",)
        seen_output.append(out.getvalue())
        yield ("second",)

    assert render(["c"], rows(), fmt, out) == 2
    assert "first" in seen_output[0]


# --- duplicate column names -------------------------------------------------------


@pytest.mark.parametrize("fmt", ["json", "jsonl"])
def test_duplicate_columns_are_disambiguated(fmt):
    cols = ["x", "x", "y", "x"]
    text = run(fmt, [(1, 2, 3, 4)], cols)[1]
    obj = json.loads(text)[0] if fmt == "json" else json.loads(text)
    assert obj == {"x": 1, "x_2": 2, "y": 3, "x_3": 4}
    assert list(obj) == ["x", "x_2", "y", "x_3"]


def test_duplicate_suffix_never_collides_with_real_column():
    cols = ["x", "x", "x_2"]
    obj = json.loads(run("jsonl", [(1, 2, 3)], cols)[1])
    assert obj == {"x": 1, "x_3": 2, "x_2": 3}  # the real x_2 keeps its name


def test_duplicate_columns_kept_verbatim_in_csv():
    parsed = list(csv.reader(io.StringIO(run("csv", [(1, 2)], ["x", "x"])[1])))
    assert parsed == [["x", "x"], ["1", "2"]]


# --- zero rows -------------------------------------------------------------------------


@pytest.mark.parametrize("fmt", FORMATS)
def test_zero_rows(fmt):
    count, text = run(fmt, rows=iter(()), columns=["a", "b"])
    assert count == 0
    if fmt == "csv":
        assert list(csv.reader(io.StringIO(text))) == [["a", "b"]]
    elif fmt == "json":
        assert text == "[]\n" and json.loads(text) == []
    elif fmt in ("jsonl", "line"):
        assert text == ""
    else:  # table and markdown still show the header
        assert len(text.splitlines()) >= 2
        header = [ln for ln in text.splitlines() if "a" in ln][0]
        assert [c.strip() for c in header.strip().strip("|").split("|")] == ["a", "b"]


# --- errors ------------------------------------------------------------------------------


def test_unknown_format_lists_formats():
    with pytest.raises(ValueError) as exc:
        render(["a"], [], "xml", io.StringIO())
    for fmt in FORMATS:
        assert fmt in str(exc.value)


def test_row_length_mismatch_is_an_error():
    with pytest.raises(ValueError, match="row 2"):
        render(["a", "b"], [(1, 2), (1,)], "jsonl", io.StringIO())


def test_formats_constant():
    assert FORMATS == ("table", "csv", "json", "jsonl", "markdown", "line")


class _Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_table_on_a_terminal_wraps_to_its_width(monkeypatch):
    import os
    import shutil

    monkeypatch.setattr(shutil, "get_terminal_size", lambda fallback=None: os.terminal_size((80, 24)))
    out = _Terminal()
    render(["resource", "reason"], [("arn:" + "x" * 90, "word " * 30)], "table", out)
    assert max(len(line) for line in out.getvalue().splitlines()) <= 80
    assert "x" * 20 in out.getvalue()  # wrapped, not truncated
    assert out.getvalue().count("word") == 30


def test_our_colours_take_no_room_in_a_fitted_table(monkeypatch):
    import os
    import shutil

    import click

    from bedrock_sql.render import Styled

    # 20 + 40 columns of text fit 80 columns: the escape sequences of a coloured cell must not
    # count, or the table is wrapped (a grid of rules) for nothing.
    monkeypatch.setattr(shutil, "get_terminal_size", lambda fallback=None: os.terminal_size((80, 24)))
    out = _Terminal()
    render(["status", "reason"], [(Styled(click.style("ALARM", fg="red", bold=True)), "r" * 60)], "table", out)
    assert "r" * 60 in out.getvalue() and "+===" not in out.getvalue()


def test_table_piped_keeps_values_on_one_line():
    out = io.StringIO()
    render(["resource"], [("arn:" + "x" * 300,)], "table", out)
    assert "arn:" + "x" * 300 in out.getvalue()


def test_numbers_are_right_aligned_in_tables():
    out = io.StringIO()
    render(["n", "s"], [(1, "a"), (22, "b")], "table", out)
    assert "|  1 | a   |" in out.getvalue() or "|   1 | a   |" in out.getvalue()


# --- pages: table and markdown in bounded memory ---------------------------------------------


@pytest.fixture
def small_pages(monkeypatch):
    import bedrock_sql.render as render_module

    monkeypatch.setattr(render_module, "PAGE_ROWS", 3)
    return 3


def test_a_result_of_one_page_is_one_table_as_before(small_pages):
    rows = [(i, f"name-{i}") for i in range(small_pages)]
    _, text = run("table", rows=rows, columns=["i", "name"])
    assert text.count(" name ") == 1 and sum(line.startswith("+-") for line in text.splitlines()) == 2
    assert "\n\n" not in text
    for i in range(small_pages):
        assert f"name-{i}" in text


def test_a_long_table_is_one_table_a_page_each_with_its_header(small_pages):
    count, text = run("table", rows=((i, f"name-{i}") for i in range(7)), columns=["i", "name"])
    assert count == 7
    tables = text.split("\n\n")
    assert len(tables) == 3  # 3 + 3 + 1 rows
    for table, expected in zip(tables, ([0, 1, 2], [3, 4, 5], [6])):
        lines = table.strip().splitlines()
        assert [c.strip() for c in lines[1].strip("|").split("|")] == ["i", "name"]
        body = [line for line in lines[3:-1]]
        assert [int(line.strip("|").split("|")[0]) for line in body] == expected


def test_a_long_markdown_table_has_its_header_once_and_every_row(small_pages):
    count, text = run("markdown", rows=((i, f"a|b {i}") for i in range(8)), columns=["i", "name"])
    lines = text.splitlines()
    assert count == 8 and len(lines) == 2 + 8
    assert [c.strip() for c in lines[0].strip("|").split("|")] == ["i", "name"]
    assert set(lines[1]) <= set("|-: ")
    assert [line.split("|")[1].strip() for line in lines[2:]] == [str(i) for i in range(8)]
    assert all(line.count("|") == 4 for line in lines[2:])  # the escaped pipe stays in its cell


@pytest.mark.parametrize("fmt", ["table", "markdown"])
def test_paged_formats_write_a_page_before_the_input_ends(small_pages, fmt):
    """Memory is bounded by a page: the first page is out before the rows are all read."""
    out = io.StringIO()
    seen_output = []

    def rows():
        for i in range(small_pages + 1):
            yield (f"row-{i}",)
        seen_output.append(out.getvalue())
        yield ("last",)

    assert render(["c"], rows(), fmt, out) == small_pages + 2
    assert "row-0" in seen_output[0] and "row-2" in seen_output[0]
    assert "last" in out.getvalue()


# --- inert text: terminals --------------------------------------------------------------------------
#
# Resource data is hostile: an ESC sequence in a key description would clear the screen, retitle
# the terminal or make a hyperlink; CR, backspace and DEL write over what was shown; bidi
# overrides and zero-width characters reorder or hide text. terminal_text shows each as its
# escape, and a backslash doubled, so the text shown reads back to exactly one value.

@pytest.mark.parametrize(("value", "shown"), [
    ("\x1b[2J", r"\x1b[2J"),  # CSI: clear the screen
    ("\x1b]0;pwned\x07", r"\x1b]0;pwned\x07"),  # OSC title, ended by BEL
    ("\x1b]8;;https://e.example/\x1b\\link\x1b]8;;\x1b\\", r"\x1b]8;;https://e.example/\x1b\\link\x1b]8;;\x1b\\"),
    ("\x9b31m", r"\x9b31m"),  # C1 CSI
    ("\x85", r"\x85"),  # C1 NEL: a line break to some terminals
    ("ok\rALARM\x08\x7f", r"ok\rALARM\x08\x7f"),  # overwrite what was shown
    ("\x00\x0b\x0c\x1c", r"\x00\x0b\x0c\x1c"),  # other C0 controls (VT, FF, FS split lines in Python)
    ("a\tb", r"a\tb"),  # a tab would misalign the table
    ("\u202eevil\u202c", r"\u202eevil\u202c"),  # bidi override: reorders what a reviewer sees
    ("\u2066x\u2069\u200e\u061c", r"\u2066x\u2069\u200e\u061c"),  # isolates and marks
    ("prod\u200bmodel\ufeff", r"prod\u200bmodel\ufeff"),  # zero-width: "prodmodel" that is not
    ("tag\U000e0041", r"tag\U000e0041"),  # Unicode tag characters: invisible text
    ("a\u2028b\u2029", r"a\u2028b\u2029"),  # line/paragraph separators
    ("a\u00a0b", r"a\xa0b"),  # a no-break space passes for a space
    ("C:\\x1b", r"C:\\x1b"),  # a literal backslash is doubled: it cannot pose as an escape
    ("héllo, 名前 🙂", "héllo, 名前 🙂"),  # printable text is unchanged
])
def test_terminal_text_shows_each_unsafe_character_as_its_escape(value, shown):
    assert terminal_text(value) == shown


def test_terminal_text_line_breaks_stay_only_when_asked():
    assert terminal_text("a\nb\r\nc") == r"a\nb\r\nc"
    assert terminal_text("a\nb\r\nc", multiline=True) == "a\nb\\r\nc"
    assert terminal_text(None) == "" and terminal_text(b"\x1b") == "Gw==" and terminal_text(7) == "7"


def test_terminal_text_passes_our_own_styling():
    styled = Styled("\x1b[31mALARM\x1b[0m")
    assert terminal_text(styled) is styled


def _unsafe(text):
    return [c for c in text if unicodedata.category(c) in ("Cc", "Cf", "Zl", "Zp", "Cs")]


@settings(max_examples=500)
@given(st.text())
@example("\\x1b")
@example("\x1b")
def test_terminal_text_is_printable_and_reads_back_to_the_value(value):
    shown = terminal_text(value)
    assert _unsafe(shown) == [] and shown.isprintable()
    # Unambiguous: Python's own escape decoding gives back exactly the value, so two values
    # never look alike (the literal text "\x1b" shows as "\\x1b").
    assert shown.encode("latin-1", "backslashreplace").decode("unicode_escape") == value
    multiline = terminal_text(value, multiline=True)
    assert _unsafe(multiline.replace("\n", "")) == [] and multiline.count("\n") == value.count("\n")


HOSTILE_CELLS = ["\x1b[2J\x1b]0;t\x07", "a\u202eb", "x\ry", "tab\there"]


@pytest.mark.parametrize("fmt", ["table", "line"])
def test_table_and_line_show_escapes_in_cells_and_headers(fmt):
    _, text = run(fmt, rows=[tuple(HOSTILE_CELLS)], columns=["h\x1b[2J", "b", "c", "d"])
    assert _unsafe(text.replace("\n", "")) == []
    for shown in (r"\x1b[2J\x1b]0;t\x07", r"a\u202eb", r"x\ry", r"tab\there", r"h\x1b[2J"):
        assert shown in text


def test_table_keeps_our_colours_and_escapes_the_datas():
    out = io.StringIO()
    render(["status", "reason"], [(Styled("\x1b[31mALARM\x1b[0m"), "\x1b[32mfake ok\x1b[0m")], "table", out)
    assert "\x1b[31mALARM\x1b[0m" in out.getvalue() and r"\x1b[32mfake ok\x1b[0m" in out.getvalue()
    assert out.getvalue().count("\x1b") == 2


def test_a_table_with_a_line_break_in_a_cell_puts_a_rule_between_rows():
    # psql's layout has no rule between rows: a cell's second line "| forged | ok |" would read
    # as a row. A page holding a line break gets tabulate's "grid" layout instead.
    _, text = run("table", rows=[("real\n| forged | ok |", "alarm"), ("other", "alarm")], columns=["resource", "status"])
    lines = text.splitlines()
    assert [line[0] for line in lines] == ["+", "|", "+", "|", "|", "+", "|", "+"]
    assert lines[4].startswith("| | forged | ok |") and "alarm" not in lines[4]
    # One-line values keep the compact psql layout.
    assert run("table", rows=[("a", 1)], columns=["x", "n"])[1].splitlines()[2].startswith("|-")


def test_a_wrapped_table_on_a_terminal_puts_a_rule_between_rows(monkeypatch):
    import os
    import shutil

    monkeypatch.setattr(shutil, "get_terminal_size", lambda fallback=None: os.terminal_size((60, 24)))
    out = _Terminal()
    render(["resource", "reason"], [("arn:" + "x" * 20, "forged " * 20), ("b", "c")], "table", out)
    lines = out.getvalue().splitlines()
    # A wrapped cell's later lines could be shaped like rows as well: each row ends at a rule.
    assert max(map(len, lines)) <= 60 and sum(line.startswith("+-") for line in lines) == 3


def test_line_format_indents_the_later_lines_of_a_value():
    _, text = run("line", rows=[("x\nid = forged", 1)], columns=["id", "longname"])
    assert text == (
        "      id = x\n"
        "           id = forged\n"  # past the names: not a field of its own
        "longname = 1\n"
    )


# --- inert text: Markdown ----------------------------------------------------------------------------
#
# A Markdown report is rendered by GitHub, GitLab, an IDE: text from the data must not become
# HTML (<img onerror>, <script>), a link or image (a tracking pixel, a javascript: link), emphasis
# or a code span that hides or restyles text, math, a mention, or a broken table. Checked with two
# real renderers: cmark-gfm (GitHub's own, with its table, autolink, strikethrough and tagfilter
# extensions) and markdown-it-py (CommonMark + GFM tables), each letting raw HTML through as the
# most permissive renderers do; the cell's visible text must be the value (as terminal_text
# shows it: a Markdown file is read in terminals too), and line breaks <br>.


def _render_markdown(renderer, text):
    if renderer == "cmark-gfm":
        return cmarkgfm.github_flavored_markdown_to_html(text, options=CmarkOptions.CMARK_OPT_UNSAFE)
    return MarkdownIt("commonmark", {"html": True}).enable("table").render(text)


def _table_of(rendered):
    """The tags of the rendered page, and each cell's visible text (a <br> as a line break)."""

    class Cells(HTMLParser):
        def __init__(self):
            super().__init__(convert_charrefs=True)
            self.tags, self.cells, self.attributes, self.inside = [], [], [], False
            self.links, self.in_link = [], False  # [href, text] of each <a>

        def handle_starttag(self, tag, attrs):
            self.tags.append(tag)
            if tag == "a":
                self.links.append([dict(attrs).get("href"), ""])
                self.in_link = True
                attrs = [(name, value) for name, value in attrs if name != "href"]
            self.attributes += attrs
            if tag in ("td", "th"):
                self.cells.append("")
                self.inside = True
            elif tag == "br" and self.inside:
                self.cells[-1] += "\n"

        def handle_endtag(self, tag):
            if tag in ("td", "th"):
                self.inside = False
            self.in_link = self.in_link and tag != "a"

        def handle_data(self, data):
            if self.inside:
                self.cells[-1] += data
            if self.in_link:
                self.links[-1][1] += data

    cells = Cells()
    cells.feed(rendered)
    cells.close()
    return cells


def _shown(value):
    """What a cell must show: each line as terminal_text shows it, trimmed as a cell is."""
    return "\n".join(terminal_text(line) for line in re.split(r"\r\n|\r|\n", value)).strip(" ")


MARKDOWN_ATTACKS = [
    "<img src=x onerror=alert(1)>", "<script>alert(2)</script>", "</td></tr></table><b>x</b>",
    "[click](javascript:alert(3))", "![pixel](https://attacker.example/p.png)", "[ref]: https://e.example",
    "<https://attacker.example>", "https://attacker.example/x", "www.attacker.example", "HTTP://E.EXAMPLE",
    "ftp://e.example/f", "`code | span`", "*hidden* _hidden_ **x** ~~struck~~", "$\\color{white}{hidden}$",
    "a | b | c", "\\| escaped pipe", "trailing backslash \\", "&lt;already&gt; &amp; &#60;b&#62;",
    "@team #123", "# heading", "> quote", "- item", "1. item", "---", "line1\nline2\r\nline3\rline4",
    "[^1] footnote", "<!-- comment -->", "\x1b[2J\u202e", "|", "\\", "", "   ",
    "owner@example.com", "[mail](mailto:x@e.example)",
]


@pytest.mark.parametrize("renderer", ["cmark-gfm", "markdown-it"])
@pytest.mark.parametrize("value", MARKDOWN_ATTACKS)
def test_a_markdown_cell_shows_its_text_and_makes_no_markup(renderer, value):
    _assert_inert_cell(renderer, value)


def _assert_inert_cell(renderer, value):
    _, text = run("markdown", rows=[(value, "next")], columns=["value", "other"])
    table = _table_of(_render_markdown(renderer, text))
    # bedrock-sql's own table and line breaks, nothing else; no attribute (src, on*, style) at
    # all (markdown-it marks a column's alignment with style="text-align"; tabulate asks for none).
    assert set(table.tags) <= {"table", "thead", "tbody", "tr", "th", "td", "br", "a"}, table.tags
    assert table.attributes == []
    # The one link left: GitHub makes an e-mail address a mailto: (or xmpp:) link after escapes
    # are undone, so no escape prevents it without changing the text. It fetches nothing and its
    # text is its target: nothing else may be a link.
    for href, text in table.links:
        assert href in (text, "mailto:" + text) and href.startswith(("mailto:", "xmpp:")), (href, text)
    assert table.cells == ["value", "other", _shown(value), "next"]


@settings(max_examples=300, deadline=None)
@given(st.one_of(st.text(), st.text(alphabet="\\`*_~[]()!|<>&$@#:/.w \t\n\r\x1b=-+'\"e")))
def test_any_markdown_cell_shows_its_text_and_makes_no_markup(value):
    for renderer in ("cmark-gfm", "markdown-it"):
        _assert_inert_cell(renderer, value)


def test_markdown_text_escapes_markup_in_a_sentence():
    # The line before a check or diff report names the snapshot's run: Markdown-safe too.
    assert markdown_text("<b>[x](y)</b>") == r"&lt;b&gt;\[x\](y)&lt;/b&gt;"
    assert markdown_text("a\nb") == "a<br>b"


@pytest.mark.parametrize("value", ["$\\color{white}{hidden}$", "$$x$$", "@org/team", "#123", "GH-1 #1"])
def test_github_only_syntax_is_escaped_too(value):
    # GitHub renders $math$ (MathJax's \color and \huge restyle or hide text), @mentions (they
    # notify people) and #references, which neither renderer above does: so check the escape
    # itself, a backslash before each (the renderers above show it as the bare character).
    assert re.findall(r"(?<!\\)[$@#]", markdown_text(value)) == []


# --- machine formats read in a terminal --------------------------------------------------

from hypothesis import given, strategies as st  # noqa: E402

from bedrock_sql.render import inert_json  # noqa: E402


@given(st.text())
def test_inert_json_is_the_same_json_and_prints_nothing_a_terminal_acts_on(text: str) -> None:
    import json as _json

    dumped = inert_json(_json.dumps({"v": text}, ensure_ascii=False))
    assert _json.loads(dumped) == {"v": text}  # lossless: the same JSON value
    raw = [c for c in dumped if not c.isprintable() and not c.isspace()]
    assert not raw, f"raw {[hex(ord(c)) for c in raw]} in {dumped!r}"


@pytest.mark.parametrize("fmt", ["json", "jsonl"])
def test_json_output_escapes_c1_and_bidi_characters(fmt: str) -> None:
    out = io.StringIO()
    render(["v"], [("a\x9b31m\u202eb\x7f",)], fmt, out)
    assert not any(c in out.getvalue() for c in "\x9b\u202e\x7f"), repr(out.getvalue())
    assert "\\u009b" in out.getvalue() and "\\u202e" in out.getvalue()


class _Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_csv_on_a_terminal_shows_escapes_and_stays_exact_in_a_pipe() -> None:
    value = "x\x1b[2J\x1b]0;owned\x07\x9b"
    shown, piped = _Terminal(), io.StringIO()
    render(["v"], [(value,)], "csv", shown)
    render(["v"], [(value,)], "csv", piped)
    assert not any(c in shown.getvalue() for c in "\x1b\x07\x9b"), repr(shown.getvalue())
    assert "\\x1b[2J" in shown.getvalue()
    assert piped.getvalue() == f"v\n{value}\n"  # data for programs: exact
