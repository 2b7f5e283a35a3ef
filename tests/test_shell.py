"""`bedrock-sql shell`: apsw's shell on the snapshot, read-only.

Read-only in SQL (the snapshot connection's authorizer) and in apsw's dot-commands, which
are Python and could write, open, load or run anything: each refused command is tried as it
would do harm, through the real CLI, with the proof that it did not.
"""

from __future__ import annotations

import hashlib
import io
import sqlite3
import subprocess
import sys

import apsw
import apsw.shell
import pytest

from bedrock_sql import shell as read_only
from bedrock_sql.demo import run_demo
from bedrock_sql.sql import MAX_VALUE_BYTES


@pytest.fixture(scope="module")
def demo_db(tmp_path_factory):
    db = tmp_path_factory.mktemp("shell") / "demo.db"
    run_demo(db, io.StringIO())
    return db


def shell(db, script: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "bedrock_sql", "--db", str(db), "shell"],
        input=script, capture_output=True, text=True, timeout=60,
    )


def test_shell_reads_the_snapshot(demo_db):
    result = shell(demo_db, ".tables\nSELECT count(*) FROM aws_bedrock_custom_model;\n")
    assert result.returncode == 0, result.stderr
    assert "aws_bedrock_custom_model" in result.stdout and "bedrock_sql_errors" in result.stdout
    with sqlite3.connect(f"file:{demo_db}?mode=ro", uri=True) as connection:
        (models,) = connection.execute("SELECT count(*) FROM aws_bedrock_custom_model").fetchone()
    assert models > 0 and f"\n{models}\n" in result.stdout  # the demo estate's models
    # The views the collect wrote into the file are used as they are: .tables names each once.
    assert result.stdout.split().count("bedrock_model_encryption") == 1, result.stdout


def test_shell_cannot_modify_the_snapshot(demo_db):
    before = hashlib.sha256(demo_db.read_bytes()).hexdigest()
    result = shell(demo_db, "DELETE FROM aws_kms_key;\nDROP TABLE aws_kms_alias;\nSELECT count(*) FROM aws_kms_key;\n")
    assert result.stderr.count("not authorized") == 2
    assert "\n9\n" in "\n" + result.stdout  # every key is still there
    assert hashlib.sha256(demo_db.read_bytes()).hexdigest() == before


def test_shell_on_a_missing_snapshot_is_one_line(tmp_path):
    result = shell(tmp_path / "none.db", "")
    assert result.returncode == 2
    assert result.stderr.strip().count("\n") == 0 and "no snapshot at" in result.stderr


# --- read-only: the dot-commands -----------------------------------------------------------------
REFUSED = sorted(name for name, rule in read_only.COMMANDS.items() if not rule.allowed)


def test_every_apsw_command_is_judged() -> None:
    # A command a newer apsw adds fails here until COMMANDS says whether it only reads.
    unjudged = [name for name in read_only.apsw_commands() if name not in read_only.COMMANDS]
    assert unjudged == [], f"judge these apsw shell commands in bedrock_sql/shell.py COMMANDS: {unjudged}"
    for name, rule in read_only.COMMANDS.items():
        assert rule.allowed and not rule.bare_only or rule.reason, name
    # The walk sees what process_command dispatches to: each command of apsw's .help.
    assert {"shell", "py", "output", "backup", "open", "load", "tables", "schema", "mode"} <= set(read_only.apsw_commands())


def test_a_command_nobody_judged_is_refused_not_inherited(monkeypatch) -> None:
    ran = []

    def command_frobnicate(self, cmd):
        """frobnicate: writes somewhere"""
        ran.append(cmd)

    monkeypatch.setattr(apsw.shell.Shell, "command_frobnicate", command_frobnicate, raising=False)
    shell_class = read_only.read_only_shell_class()  # as built when apsw has the command
    errors, output = io.StringIO(), io.StringIO()
    shell = shell_class(db=apsw.Connection(":memory:"), stdin=io.StringIO(".frobnicate now\nselect 1;\n"),
                        stdout=output, stderr=errors)
    shell.cmdloop(intro="")
    assert ran == []
    assert ".frobnicate is refused" in errors.getvalue() and "not known to be read-only" in errors.getvalue()
    assert output.getvalue().strip() == "1"  # and the shell went on


@pytest.fixture
def snapshot(demo_db, tmp_path):
    """A private copy of the demo snapshot in an empty folder, and its fingerprint."""
    db = tmp_path / "snap.db"
    db.write_bytes(demo_db.read_bytes())
    return db, hashlib.sha256(db.read_bytes()).hexdigest()


def shell_in(db, script: str) -> subprocess.CompletedProcess:
    """The shell run in the snapshot's folder, so files it might make land beside it."""
    return subprocess.run(
        [sys.executable, "-m", "bedrock_sql", "--db", str(db), "shell"],
        input=script, capture_output=True, text=True, timeout=60, cwd=db.parent,
    )


# Each refused command, used as it would write, open, load or run something, then what
# would show that it did: a marker file, a reachable other database, a lifted limit.
MARKER = "marker"
SCENARIOS = {
    "autoimport": (f"{MARKER}.csv", ".autoimport rows.csv newtable\nSELECT count(*) FROM newtable;\n"),
    "backup": (MARKER, f".backup {MARKER}\n"),
    "cd": (None, ".cd sub\n.print still-here\n"),
    "close": (None, ".close\nSELECT 'still ' || 'open';\n"),
    "import": (None, ".import rows.csv aws_kms_alias\n"),
    "load": (MARKER, f".load fileio\nSELECT writefile('{MARKER}', 'x');\n"),
    "log": (None, ".log on\n"),
    "open": (MARKER, f".open {MARKER}\nCREATE TABLE t(a);\nINSERT INTO t VALUES (1);\n"),
    "output": (MARKER, f".output {MARKER}\nSELECT 'to stdout';\n"),
    "pages_svg": (MARKER, f".pages-svg {MARKER}\n"),
    "py": (MARKER, f".py open('{MARKER}', 'w').write('x')\n"),
    "read": (MARKER, f".read script.py\n"),
    "restore": (None, ".restore other.db\n"),
    "shell": (MARKER, f".shell touch {MARKER}\n"),
}


def _prepare(folder) -> None:
    (folder / "sub").mkdir()
    (folder / "rows.csv").write_text("a,b\n1,2\n3,4\n")
    (folder / "script.py").write_text(f"open('{MARKER}', 'w').write('x')\n")
    other = sqlite3.connect(folder / "other.db")
    other.execute("CREATE TABLE planted(x)")
    other.commit()
    other.close()


@pytest.mark.parametrize("name", sorted(SCENARIOS))
def test_each_refused_command_is_refused_and_does_nothing(snapshot, name: str) -> None:
    db, fingerprint = snapshot
    _prepare(db.parent)
    before = sorted(p.name for p in db.parent.iterdir())
    marker, script = SCENARIOS[name]
    result = shell_in(db, script + "SELECT count(*) FROM aws_kms_key;\n")
    # Nothing happened: no marker, no copy, no other file; the snapshot's bytes unchanged...
    if marker:
        assert not (db.parent / marker).exists(), result.stderr
    assert sorted(p.name for p in db.parent.iterdir()) == before, result.stderr
    assert hashlib.sha256(db.read_bytes()).hexdigest() == fingerprint
    # ... and the shell said why in one line, and went on, on the snapshot.
    command = "." + name.replace("_", "-")
    refusals = [line for line in result.stderr.splitlines() if "is refused" in line]
    assert refusals == [f"line 1: {command} is refused: bedrock-sql shell is read-only and {command} "
                        f"{read_only.COMMANDS[name].reason}"], result.stderr
    assert "Traceback" not in result.stderr
    assert "\n9\n" in "\n" + result.stdout, result.stdout[-300:]
    assert result.returncode == 0


def test_the_scenarios_cover_exactly_the_refused_commands() -> None:
    # A command newly refused needs a scenario above showing that it then does nothing.
    assert sorted(SCENARIOS) == REFUSED


def test_settings_are_shown_but_not_changed(snapshot) -> None:
    db, fingerprint = snapshot
    script = (
        ".limit\n.limit length 1000000000\nSELECT length(zeroblob(1e8));\n"
        ".dbconfig\n.dbconfig enable_load_extension 1\nSELECT load_extension('fileio');\n"
        "SELECT iso_time('2026-01-01T00:00:00Z');\n"  # opens the functions' own connection
        ".connection\n.connection 1\nATTACH 'attached.db' AS a;\nCREATE TABLE a.t(x);\n"
    )
    result = shell_in(db, script)
    refusals = [line for line in result.stderr.splitlines() if "is refused" in line]
    assert [line.split(":")[1].strip().split()[0] for line in refusals] == [".limit", ".dbconfig", ".connection"], result.stderr
    assert f"length:  {MAX_VALUE_BYTES}" in result.stdout  # shown, and still the limit
    assert "string or blob too big" in result.stderr
    assert "enable_load_extension:  0" in result.stdout or "load_extension:  0" in result.stdout, result.stdout
    assert "not authorized" in result.stderr
    assert "READONLY" in result.stdout  # the connection list shows the snapshot's, read-only
    assert not (db.parent / "attached.db").exists()
    assert hashlib.sha256(db.read_bytes()).hexdigest() == fingerprint


def test_sqlite_shell_commands_apsw_lacks_do_nothing_either(snapshot) -> None:
    db, fingerprint = snapshot
    result = shell_in(db, f".system touch {MARKER}\n.once {MARKER}\nSELECT 1;\n.save {MARKER}\n")
    assert result.stderr.count("Unknown command") == 3, result.stderr
    assert not (db.parent / MARKER).exists()
    assert hashlib.sha256(db.read_bytes()).hexdigest() == fingerprint


def test_reading_commands_still_work(snapshot) -> None:
    db, fingerprint = snapshot
    script = (
        ".headers on\n.mode csv\nSELECT count(*) AS keys FROM aws_kms_key;\n"
        ".mode list\n.separator |\n.nullvalue NULL\nSELECT NULL AS n, 'a' AS b;\n"
        ".tables aws_kms%\n.schema aws_kms_alias\n.indices aws_kms_alias\n.databases\n"
        ".width 5 5\n.show\n.help\n.help backup\n.dump aws_kms_alias\n.version\n"
        ".parameter set region 'us-east-1'\nSELECT count(*) > 0 AS here FROM aws_kms_key WHERE region = $region;\n"
        ".find us-east-1 aws_kms_alias\n.dbinfo\n.pages 0\n.timer off\n.bail off\n.echo off\n.print done\n"
    )
    result = shell_in(db, script)
    assert "is refused" not in result.stderr, result.stderr
    out = result.stdout
    assert "keys\r\n9\r\n" in out or "keys\n9\n" in out, out[:500]
    assert "n|b\nNULL|a\n" in out
    assert "aws_kms_alias" in out and "aws_kms_key" in out and "CREATE TABLE aws_kms_alias" in out
    assert "idx_aws_kms_alias_alias_name" in out
    assert "INSERT INTO aws_kms_alias" in out  # .dump reads
    assert "here\n1\n" in out
    assert "Table aws_kms_alias" in out  # .find
    assert out.rstrip().endswith("done")
    assert ".shell CMD ARGS..." in result.stderr and "(refused here: it runs a system command)" in result.stderr  # .help
    assert result.returncode == 0
    assert hashlib.sha256(db.read_bytes()).hexdigest() == fingerprint


def test_sql_in_the_shell_cannot_write_or_load(snapshot) -> None:
    db, fingerprint = snapshot
    statements = [
        "ATTACH 'attached.db' AS a;",
        "VACUUM INTO 'vacuumed.db';",
        "PRAGMA user_version = 7;",
        "PRAGMA journal_mode = wal;",
        "PRAGMA hard_heap_limit = 0;",
        "SELECT load_extension('fileio');",
        "SELECT writefile('written', 'x');",
        "SELECT readfile('/etc/hostname');",
        "CREATE TEMP TABLE t(x);",
        "INSERT INTO aws_kms_key(arn) VALUES ('x');",
    ]
    result = shell_in(db, "\n".join(statements) + "\nSELECT count(*) FROM aws_kms_key;\n")
    errors = [line for line in result.stderr.splitlines() if not line.startswith(("At Line", "  "))]
    assert len(errors) == len(statements), result.stderr
    assert all(e in ("not authorized", "authorization denied") or e.startswith("no such function") for e in errors), errors
    assert sorted(p.name for p in db.parent.iterdir()) == [db.name]
    assert "\n9\n" in "\n" + result.stdout
    assert hashlib.sha256(db.read_bytes()).hexdigest() == fingerprint


def test_the_shell_has_the_length_limit(snapshot) -> None:
    db, _fingerprint = snapshot
    result = shell_in(db, "SELECT hex(zeroblob(4e8));\nSELECT 'after';\n")
    assert "string or blob too big" in result.stderr and "after" in result.stdout


def test_a_refused_command_under_bail_stops_the_shell_with_exit_2(snapshot) -> None:
    db, _fingerprint = snapshot
    result = shell_in(db, f".bail on\n.shell touch {MARKER}\nSELECT 'not reached';\n")
    assert result.returncode == 2
    assert result.stderr.splitlines() == [
        "line 2: .shell is refused: bedrock-sql shell is read-only and .shell runs a system command"]
    assert "not reached" not in result.stdout and not (db.parent / MARKER).exists()


def test_an_error_under_bail_is_exit_2_without_a_traceback(snapshot) -> None:
    db, _fingerprint = snapshot
    result = shell_in(db, ".bail on\nSELECT nonsense;\nSELECT 'not reached';\n")
    assert result.returncode == 2 and "no such column: nonsense" in result.stderr
    assert "Traceback" not in result.stderr and "not reached" not in result.stdout


# Every output mode apsw has: values reach the terminal through _fmt_text_col in some, through
# apsw's own formatting (json, insert, python, tcl, html) or straight to stdout (box) in others.
_MODES = ["box", "column", "csv", "html", "insert", "json", "jsonl", "line", "list", "python", "qbox", "table", "tabs", "tcl"]
_RAW_CONTROLS = "\x1b\x07\x08\r\x9b\u202e\u2066"


@pytest.mark.parametrize("mode", _MODES)
def test_resource_text_is_inert_in_every_output_mode(snapshot, mode: str) -> None:
    snapshot, _ = snapshot
    hostile = "x\x1b[2J\x1b]0;owned\x07y\r\x08\x9b31m\u202eevil\u2066\nforged-row"
    with sqlite3.connect(snapshot) as connection:
        connection.execute("UPDATE aws_kms_key SET description = ?", (hostile,))
    result = shell_in(snapshot, f".mode {mode}\nSELECT description FROM aws_kms_key LIMIT 1;\nSELECT no_such_column;\n")
    assert result.returncode == 0, result.stderr
    leaked = sorted({hex(ord(c)) for c in result.stdout + result.stderr if c in _RAW_CONTROLS})
    assert not leaked, f".mode {mode} printed raw {leaked}: {result.stdout!r}"
    if mode != "column":  # column mode cuts values at its column width
        assert "owned" in result.stdout and "evil" in result.stdout  # shown, as escapes, not dropped
