"""Tests for bedrock_sql.render: every format, NULLs, CSV injection, streaming."""

import base64
import csv
import io
import json

import pytest

from bedrock_sql.render import FORMATS, neutralize_csv_cell, render

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


@pytest.mark.parametrize("trigger", ["=", "+", "-", "@", "\t", "\r"])
def test_neutralize_every_trigger(trigger):
    value = trigger + "HYPERLINK(\"http://evil\")"
    assert neutralize_csv_cell(value) == "'" + value


@pytest.mark.parametrize(
    "value", ["abc", "", " =1", "a=b", "'=1", 5, -3, -2.5, 0.0, None, b"=x"]
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
