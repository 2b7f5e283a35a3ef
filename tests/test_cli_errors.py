"""The command line in process: every user mistake is exit 2 with one line on stderr, no
traceback and no file written; and the read commands print what they promise."""

from __future__ import annotations

import csv
import io
import json
import stat
from pathlib import Path

import pytest

from bedrock_sql.providers import TABLES
from bedrock_sql import snapshot
from bedrock_sql.estate import seed_models
from helpers import REGIONS, World, deny, fast_regions, region_of, world  # noqa: F401
from helpers import run_main as run

FORMULA_PREFIX = "=SUM(1+1)"


@pytest.fixture(scope="module")
def snap(world: World, tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict[str, int]]:
    """A snapshot of the demo estate plus one model whose name is a spreadsheet formula."""
    seed_models(world.session, "us-east-1", 1, prefix=FORMULA_PREFIX)
    from bedrock_sql.accounts import resolve_scope
    from bedrock_sql.aws import AwsOptions

    path = tmp_path_factory.mktemp("snap") / "bedrock.db"
    with fast_regions():
        scope = resolve_scope(AwsOptions(regions=REGIONS))
    result = snapshot.collect(scope, path)
    assert result.status == "complete"
    counts = dict(result.row_counts, bedrock_sql_errors=0, bedrock_sql_runs=1)
    return path, counts


@pytest.fixture(autouse=True)
def _quick_regions():
    with fast_regions():
        yield


@pytest.fixture
def workdir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """An empty working directory, so a stray default bedrock.db would be seen."""
    work = tmp_path / "work"
    work.mkdir()
    monkeypatch.chdir(work)
    return work


def files_under(directory: Path) -> dict[str, bytes]:
    return {str(p.relative_to(directory)): p.read_bytes() for p in sorted(directory.rglob("*")) if p.is_file()}


def assert_user_error(capsys, directory: Path, *args: str) -> str:
    """Run the CLI; check exit 2, one stderr line, no traceback, no file change; return the line."""
    before = files_under(directory)
    code, out, err = run(capsys, *args)
    assert code == 2, (args, code, out, err)
    lines = err.splitlines()
    assert len(lines) == 1 and lines[0].strip(), (args, err)
    assert "Traceback" not in err and "Traceback" not in out
    assert lines[0].startswith("bedrock-sql: error: "), lines[0]
    assert files_under(directory) == before, f"{args} wrote a file"
    return lines[0]


# --- snapshot problems --------------------------------------------------------------------


def test_query_on_a_missing_snapshot(capsys, workdir: Path) -> None:
    line = assert_user_error(capsys, workdir, "--db", str(workdir / "absent.db"), "query", "SELECT 1")
    assert "no snapshot at" in line and "run bedrock-sql collect" in line
    assert not (workdir / "absent.db").exists()


def test_default_db_missing(capsys, workdir: Path) -> None:
    line = assert_user_error(capsys, workdir, "query", "SELECT 1")
    assert "no snapshot at bedrock.db" in line
    assert not (workdir / "bedrock.db").exists()


@pytest.mark.parametrize("command", [["query", "SELECT 1"], ["tables"]])
def test_corrupt_snapshot(capsys, workdir: Path, command: list[str]) -> None:
    bad = workdir / "bad.db"
    bad.write_text("not a database\n" * 50)
    line = assert_user_error(capsys, workdir, "--db", str(bad), *command)
    assert "not a readable bedrock-sql snapshot" in line
    assert "--force" in line  # plain `collect` would refuse this file: the advice says so
    assert bad.read_text() == "not a database\n" * 50


# --- bad SQL ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "sql, words",
    [
        ("SELEC 1", "syntax error"),
        ("SELECT * FROM nosuchtable", "no such table: nosuchtable"),
        ("SELECT nosuchcolumn FROM aws_kms_key", "no such column: nosuchcolumn"),
        ("DELETE FROM aws_kms_key", "read-only"),
        ("INSERT INTO aws_kms_alias (alias_name) VALUES ('x')", "read-only"),
        ("DROP TABLE aws_bedrock_custom_model", "read-only"),
        ("ATTACH 'elsewhere.db' AS e", "read-only"),
        ("SELECT 1; SELECT 2", "one SQL statement"),
        ("   ", "no SQL given"),
        # An unterminated string in multi-line SQL: SQLite quotes the rest of the input.
        ("SELECT 'abc\nFROM aws_kms_key\nWHERE 1", "unrecognized token"),
        ("SELECT *\nFROM aws_kms_key\nWHERE nosuch\n  = 1", "no such column"),
        ("SELECT json_extract('not json', '$.a')", "malformed JSON"),
    ],
)
def test_bad_sql(capsys, workdir: Path, snap, sql: str, words: str) -> None:
    path, _ = snap
    before = path.read_bytes()
    line = assert_user_error(capsys, workdir, "--db", str(path), "query", sql)
    assert words in line, line
    assert path.read_bytes() == before
    assert not (workdir / "elsewhere.db").exists()


@pytest.mark.parametrize(
    "sql",
    [
        "SELECT count(*) FROM aws_kms_key;",
        "SELECT count(*) FROM aws_kms_key; -- how many keys",
        "SELECT count(*) FROM aws_kms_key;\n/* done */\n;\n",
        "SELECT count(*) -- ; SELECT 2\nFROM aws_kms_key\n",
        "SELECT count(*) FROM aws_kms_key WHERE description != ';SELECT 2'",
    ],
)
def test_one_statement_with_trailing_comments(capsys, snap, sql: str) -> None:
    path, counts = snap
    code, out, err = run(capsys, "--db", str(path), "query", "-o", "csv", sql)
    assert code == 0 and err == ""
    assert out.splitlines()[1] == str(counts["aws_kms_key"])


@pytest.mark.parametrize("sql", ["SELECT 1; SELECT 2", "SELECT 1;\nSELECT 2;", "SELECT 1; /* c */ SELECT 2", "SELECT 1; garbage"])
def test_second_statement_is_refused_not_dropped(capsys, workdir: Path, snap, sql: str) -> None:
    path, _ = snap
    line = assert_user_error(capsys, workdir, "--db", str(path), "query", sql)
    assert "one SQL statement" in line


def test_sql_both_argument_and_file(capsys, workdir: Path, snap) -> None:
    path, _ = snap
    (workdir / "q.sql").write_text("SELECT 1")
    before = files_under(workdir)
    line = assert_user_error(capsys, workdir, "--db", str(path), "query", "SELECT 1", "-f", str(workdir / "q.sql"))
    assert "not both" in line
    assert files_under(workdir) == before


# --- usage --------------------------------------------------------------------------------


def test_schema_of_an_unknown_table(capsys, workdir: Path) -> None:
    line = assert_user_error(capsys, workdir, "schema", "nosuchtable")
    assert "nosuchtable" in line and "aws_bedrock_custom_model" in line


@pytest.mark.parametrize(
    "args, words",
    [
        (["query", "--bogus", "SELECT 1"], "--bogus"),
        (["--bogus", "tables"], "--bogus"),
        (["query", "--output", "xml", "SELECT 1"], "xml"),
        (["nosuchcommand"], "nosuchcommand"),
        (["collect", "--max-workers", "0"], "--max-workers"),
        (["collect", "--max-workers", "many"], "--max-workers"),
        (["query", "-f", "does-not-exist.sql"], "does-not-exist.sql"),
    ],
)
def test_usage_errors(capsys, workdir: Path, world: World, args: list[str], words: str) -> None:
    line = assert_user_error(capsys, workdir, *args)
    assert words in line, line


def test_collect_unknown_region(capsys, workdir: Path, world: World) -> None:
    line = assert_user_error(capsys, workdir, "--db", str(workdir / "b.db"), "collect", "--region", "mars-east-9")
    assert "mars-east-9" in line and "region" in line
    assert not (workdir / "b.db").exists()


def test_collect_region_and_all_regions(capsys, workdir: Path, world: World) -> None:
    line = assert_user_error(capsys, workdir, "collect", "--region", "us-east-1", "--all-regions")
    assert "--all-regions" in line


@pytest.fixture
def no_credentials(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    empty = tmp_path / "empty-aws"
    empty.mkdir()
    (empty / "config").write_text("")
    (empty / "credentials").write_text("")
    for name in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN", "AWS_SECURITY_TOKEN", "AWS_PROFILE"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("AWS_CONFIG_FILE", str(empty / "config"))
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(empty / "credentials"))
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")


@pytest.mark.parametrize(
    "command",
    [["collect", "--region", "us-east-1"], ["query", "--live", "--region", "us-east-1", "SELECT 1"]],
)
def test_no_credentials(capsys, workdir: Path, world: World, no_credentials, command: list[str]) -> None:
    line = assert_user_error(capsys, workdir, "--db", str(workdir / "b.db"), *command)
    assert "no AWS credentials" in line
    assert "aws configure" in line and "AWS_ACCESS_KEY_ID" in line  # says how to fix it


def test_unknown_profile(capsys, workdir: Path, world: World) -> None:
    line = assert_user_error(capsys, workdir, "--db", str(workdir / "b.db"), "collect", "--profile", "nosuch", "--region", "us-east-1")
    assert "nosuch" in line and "profile" in line


# --- what the read commands print ---------------------------------------------------------


def test_csv_output_neutralizes_formulas(capsys, snap) -> None:
    path, _ = snap
    code, out, err = run(
        capsys, "--db", str(path), "query", "--output", "csv",
        "SELECT model_name, title FROM aws_bedrock_custom_model WHERE model_name LIKE '=%'",
    )
    assert code == 0 and err == ""
    rows = list(csv.reader(io.StringIO(out)))
    name = f"{FORMULA_PREFIX}-0000"
    assert rows == [["model_name", "title"], ["'" + name, "'" + name]]
    # The other formats keep the value as it is.
    code, out, _ = run(capsys, "--db", str(path), "query", "--output", "json", "SELECT model_name FROM aws_bedrock_custom_model WHERE model_name LIKE '=%'")
    assert code == 0 and json.loads(out) == [{"model_name": name}]


def test_tables_lists_every_table_with_its_count(capsys, snap) -> None:
    path, counts = snap
    code, out, err = run(capsys, "--db", str(path), "tables", "--output", "csv")
    assert code == 0 and err == ""
    rows = list(csv.DictReader(io.StringIO(out)))
    assert {r["table"]: int(r["rows"]) for r in rows} == counts
    assert len(rows) == len(TABLES) + 2  # every provider's table, errors and runs
    code, out, _ = run(capsys, "--db", str(path), "tables")
    assert code == 0
    for name, count in counts.items():
        assert any(name in line and str(count) in line for line in out.splitlines()), name


def test_schema_describes_model_kms_key_arn(capsys) -> None:
    code, out, err = run(capsys, "schema", "aws_bedrock_custom_model")
    assert code == 0 and err == ""
    [line] = [l for l in out.splitlines() if "model_kms_key_arn" in l]
    assert "TEXT" in line and "NULL when Bedrock's own key is used" in line
    assert "aws_kms_key" not in out
    code, out, _ = run(capsys, "schema", "--output", "json")
    entries = json.loads(out)
    assert {e["table"] for e in entries} >= {"aws_kms_key", "bedrock_sql_errors", "bedrock_sql_runs"}


def test_query_from_stdin(capsys, monkeypatch: pytest.MonkeyPatch, snap) -> None:
    path, counts = snap
    monkeypatch.setattr("sys.stdin", io.StringIO("SELECT count(*) AS n\nFROM aws_bedrock_custom_model;\n"))
    code, out, err = run(capsys, "--db", str(path), "query", "--output", "json", "-")
    assert code == 0 and err == ""
    assert json.loads(out) == [{"n": counts["aws_bedrock_custom_model"]}]


def test_query_from_file(capsys, tmp_path: Path, snap) -> None:
    path, counts = snap
    sql_file = tmp_path / "q.sql"
    sql_file.write_text("-- keys by manager\nSELECT key_manager, count(*) AS n FROM aws_kms_key GROUP BY 1 ORDER BY 1;\n")
    code, out, err = run(capsys, "--db", str(path), "query", "-o", "jsonl", "-f", str(sql_file))
    assert code == 0 and err == ""
    rows = [json.loads(line) for line in out.splitlines()]
    assert [r["key_manager"] for r in rows] == ["AWS", "CUSTOMER"]
    assert sum(r["n"] for r in rows) == counts["aws_kms_key"]


def test_db_from_environment(capsys, monkeypatch: pytest.MonkeyPatch, snap) -> None:
    path, counts = snap
    monkeypatch.setenv("BEDROCK_SQL_DB", str(path))
    code, out, _ = run(capsys, "query", "-o", "csv", "SELECT count(*) FROM aws_kms_key")
    assert code == 0 and out.splitlines()[1] == str(counts["aws_kms_key"])


# --- collect through the CLI ----------------------------------------------------------------


def test_collect_writes_a_private_snapshot(capsys, workdir: Path, world: World) -> None:
    db = workdir / "cli.db"
    code, out, err = run(capsys, "--db", str(db), "collect", "--region", "eu-west-1")
    assert code == 0, err
    assert "Collected" in err and out == ""
    assert stat.S_IMODE(db.stat().st_mode) == 0o600
    code, out, _ = run(capsys, "--db", str(db), "query", "-o", "csv", "SELECT DISTINCT region FROM aws_bedrock_custom_model")
    assert out.splitlines() == ["region", "eu-west-1"]


def test_collect_with_a_failed_unit_exits_2_and_still_lands(capsys, workdir: Path, world: World, monkeypatch) -> None:
    import bedrock_sql.cli.collect

    real = bedrock_sql.cli.collect.resolve_scope

    def denied_scope(options, shard=None):
        scope = real(options, shard)
        deny(scope, "bedrock", "ListCustomModels", when=lambda p, ctx: region_of(ctx) == "us-east-1")
        return scope

    monkeypatch.setattr(bedrock_sql.cli.collect, "resolve_scope", denied_scope)
    db = workdir / "partial.db"
    code, out, err = run(capsys, "--db", str(db), "collect", "--region", "us-east-1", "--region", "eu-west-1")
    assert code == 2
    assert "Traceback" not in err
    assert "ListCustomModels" in err and "AccessDeniedException" in err
    assert db.is_file()
    code, out, _ = run(capsys, "--db", str(db), "query", "-o", "csv", "SELECT region, operation FROM bedrock_sql_errors")
    assert out.splitlines() == ["region,operation", "us-east-1,ListCustomModels"]


# --- SQL that starts with a comment; --live is read-only too ---------------------------------

KEY_COUNT = "SELECT count(*) AS n FROM aws_kms_key"


@pytest.mark.parametrize(
    "sql",
    [f"-- how many keys\n{KEY_COUNT}", f"--no space\n{KEY_COUNT}", f"-- looks like -o json --live\n{KEY_COUNT}",
     f"/* how many keys */ {KEY_COUNT}", f"\n-- after a blank line\n{KEY_COUNT}"],
)
@pytest.mark.parametrize("options_first", [True, False])
def test_sql_starting_with_a_comment(capsys, snap, sql: str, options_first: bool) -> None:
    """click reads a word starting with '-' as an option; SQL opening with `--` is the SQL."""
    path, counts = snap
    args = ["-o", "csv", sql] if options_first else [sql, "-o", "csv"]
    code, out, err = run(capsys, "--db", str(path), "query", *args)
    assert (code, err) == (0, "")
    assert out.splitlines() == ["n", str(counts["aws_kms_key"])]


def test_sql_after_double_dash(capsys, snap) -> None:
    path, counts = snap
    code, out, err = run(capsys, "--db", str(path), "query", "-o", "csv", "--", f"-- note\n{KEY_COUNT}")
    assert (code, err) == (0, "")
    assert out.splitlines() == ["n", str(counts["aws_kms_key"])]


def test_an_option_value_that_looks_like_sql_stays_the_value(capsys, workdir: Path, snap) -> None:
    path, counts = snap
    (workdir / "- my query.sql").write_text(KEY_COUNT)
    code, out, err = run(capsys, "--db", str(path), "query", "-o", "csv", "-f", "- my query.sql")
    assert (code, err) == (0, "")
    assert out.splitlines() == ["n", str(counts["aws_kms_key"])]


@pytest.mark.parametrize("sql", ["-- only a note", "/* only a note */", "-- one\n-- two\n"])
def test_sql_that_is_only_comments(capsys, workdir: Path, snap, sql: str) -> None:
    path, _ = snap
    line = assert_user_error(capsys, workdir, "--db", str(path), "query", sql)
    assert "no SQL given" in line


@pytest.mark.parametrize("sql, would_write", [("ATTACH 'x.db' AS e", "x.db"), ("VACUUM INTO 'y.db'", "y.db")])
@pytest.mark.parametrize("live", [True, False], ids=["live", "snapshot"])
def test_query_writes_no_file(capsys, workdir: Path, world: World, snap, sql: str, would_write: str, live: bool) -> None:
    """Both connections refuse what would write a file beside them (the live one is an
    in-memory database: only its authorizer stands between ATTACH and the disk)."""
    path, _ = snap
    args = ["query", "--live", "--region", "us-east-1", sql] if live else ["--db", str(path), "query", sql]
    line = assert_user_error(capsys, workdir, *args)
    assert "read-only" in line
    assert not (workdir / would_write).exists()


# --- hints that say what to type ---------------------------------------------------------------


def test_remediate_without_a_key_choice_shows_the_two_usual_invocations(capsys, workdir: Path, snap) -> None:
    path, _ = snap
    line = assert_user_error(capsys, workdir, "--db", str(path), "remediate")
    assert "choose the key" in line
    assert "bedrock-sql remediate --create-key --alias alias/bedrock-models" in line
    assert "bedrock-sql remediate --kms-key ARN" in line
    assert list(workdir.iterdir()) == []  # no plan written


def test_remediate_hint_comes_before_any_snapshot_is_read(capsys, workdir: Path) -> None:
    # A newcomer's first try, without a snapshot yet: the example, not "no snapshot".
    line = assert_user_error(capsys, workdir, "remediate")
    assert "--create-key --alias alias/bedrock-models" in line and "--kms-key ARN" in line


def test_missing_extras_name_both_ways_to_install(monkeypatch) -> None:
    import sys

    from bedrock_sql import demo
    from bedrock_sql.errors import UserError
    from bedrock_sql.serve import MISSING_DATASETTE

    assert "pip install 'bedrock-sql[serve]'" in MISSING_DATASETTE and "pip install '.[serve]'" in MISSING_DATASETTE
    monkeypatch.setitem(sys.modules, "moto", None)  # import moto fails
    with pytest.raises(UserError) as raised:
        with demo._simulated_aws():
            pass
    assert "pip install 'bedrock-sql[demo]'" in str(raised.value) and "pip install '.[demo]'" in str(raised.value)
