"""The collector and the snapshot file: contents, types, indexes, bookkeeping, atomicity,
and read-only access (moto in process)."""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
import socket
import sqlite3
import stat
from pathlib import Path

import pytest

from bedrock_sql import __version__, snapshot
from bedrock_sql.accounts import resolve_scope
from bedrock_sql.aws import AwsOptions
from bedrock_sql.errors import UserError
from bedrock_sql.estate import DEFAULT_ACCOUNT_ID, Estate
from bedrock_sql.providers import TABLES
from bedrock_sql.providers import bedrock_custom_model
from bedrock_sql.sql import run_query
from helpers import ISO_UTC, REGIONS, World, deny, demo, fast_regions, region_of, world  # noqa: F401

ALL_TABLES = sorted([*TABLES, snapshot.ERRORS_TABLE, snapshot.RUNS_TABLE])


def scope_for(regions=REGIONS):
    with fast_regions():
        return resolve_scope(AwsOptions(regions=regions))


def digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def leftovers(directory: Path) -> list[str]:
    return sorted(p.name for p in directory.iterdir() if p.name.endswith(".partial"))


def expected_alias_count(world: World) -> int:
    total = 0
    for region in REGIONS:
        kms = world.session.client("kms", region_name=region)
        total += sum(len(page["Aliases"]) for page in kms.get_paginator("list_aliases").paginate())
    return total


@pytest.fixture(scope="module")
def clean(world: World, tmp_path_factory: pytest.TempPathFactory):
    """One complete collect of the demo estate, shared by the read-only tests."""
    path = tmp_path_factory.mktemp("clean") / "bedrock.db"
    result = snapshot.collect(scope_for(), path)
    return path, result


def test_row_counts_match_the_estate(world: World, clean) -> None:
    path, result = clean
    estate = world.estate
    expected = {
        "aws_bedrock_custom_model": len(estate.models),
        "aws_bedrock_model_customization_job": len(estate.jobs),
        "aws_kms_key": len(estate.keys),
        "aws_kms_alias": expected_alias_count(world),
    }
    # This estate has no imported models, copies, throughput or deployments.
    expected.update({name: 0 for name in TABLES if name not in expected})
    assert result.row_counts == expected
    assert result.status == "complete" and result.errors == []
    connection = snapshot.open_snapshot(path)
    try:
        counts = dict(snapshot.table_counts(connection))
    finally:
        connection.close()
    assert sorted(counts) == ALL_TABLES
    assert {name: counts[name] for name in expected} == expected
    assert counts[snapshot.ERRORS_TABLE] == 0 and counts[snapshot.RUNS_TABLE] == 1


def test_values_survive_the_trip(demo: Estate, clean) -> None:
    path, _ = clean
    connection = snapshot.open_snapshot(path)
    try:
        got = dict(connection.execute("SELECT arn, model_kms_key_arn FROM aws_bedrock_custom_model").fetchall())
        assert got == {m.model_arn: m.kms_key_arn for m in demo.models}
        # JSON columns are usable with SQLite's JSON operators.
        teams = connection.execute(
            "SELECT count(*) FROM aws_bedrock_custom_model WHERE tags ->> '$.team' = 'support'"
        ).fetchone()[0]
        assert teams == sum(1 for j in demo.jobs if j["model_arn"] and j["tags"].get("team") == "support")
    finally:
        connection.close()


def test_file_is_private(clean) -> None:
    path, _ = clean
    assert stat.S_IMODE(path.stat().st_mode) == 0o600


def test_replacing_a_world_readable_file_makes_it_private(world: World, tmp_path: Path) -> None:
    path = tmp_path / "bedrock.db"
    snapshot.collect(scope_for(("us-east-1",)), path)
    path.chmod(0o644)  # an older snapshot someone opened up (or copied with a loose umask)
    snapshot.collect(scope_for(("us-east-1",)), path)
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert leftovers(tmp_path) == []


def test_columns_are_typed_like_the_providers(clean) -> None:
    path, _ = clean
    connection = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
    try:
        for name, table in TABLES.items():
            info = connection.execute(f"PRAGMA table_info({name})").fetchall()
            assert [(r[1], r[2]) for r in info] == [(c.name, c.type) for c in table.all_columns], name
        for name, (_description, columns) in snapshot.META_TABLES.items():
            info = connection.execute(f"PRAGMA table_info({name})").fetchall()
            assert [(r[1], r[2]) for r in info] == [(c.name, c.type) for c in columns], name
        # The stored values have the declared types (no INTEGER column holds text).
        for name, table in TABLES.items():
            for column in table.all_columns:
                kinds = {
                    r[0]
                    for r in connection.execute(f'SELECT DISTINCT typeof("{column.name}") FROM {name}')
                }
                allowed = {"null", "integer"} if column.type == "INTEGER" else {"null", "text"}
                assert kinds <= allowed, (name, column.name, kinds)
    finally:
        connection.close()


def test_join_keys_are_indexed(clean) -> None:
    path, _ = clean
    connection = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
    try:
        for name, table in TABLES.items():
            assert table.indexes, name
            indexed = set()
            for index in connection.execute(f"PRAGMA index_list({name})").fetchall():
                columns = [r[2] for r in connection.execute(f"PRAGMA index_info({index[1]})")]
                indexed.add(columns[0])
            assert set(table.indexes) <= indexed, (name, table.indexes, indexed)
        assert "arn" in TABLES["aws_kms_key"].indexes
        assert "model_kms_key_arn" in TABLES["aws_bedrock_custom_model"].indexes
        plan = connection.execute(
            "EXPLAIN QUERY PLAN SELECT * FROM aws_bedrock_custom_model m "
            "LEFT JOIN aws_kms_key k ON k.arn = m.model_kms_key_arn"
        ).fetchall()
        assert any("USING INDEX" in row[-1] and "k" in row[-1] for row in plan), plan
    finally:
        connection.close()


def test_runs_row(clean) -> None:
    path, result = clean
    connection = snapshot.open_snapshot(path)
    try:
        rows = connection.execute(f"SELECT * FROM {snapshot.RUNS_TABLE}").fetchall()
    finally:
        connection.close()
    assert len(rows) == 1
    run = dict(zip([c.name for c in snapshot.RUN_TABLE_COLUMNS], rows[0]))
    assert run["status"] == "complete"
    assert json.loads(run["accounts"]) == [DEFAULT_ACCOUNT_ID]
    assert json.loads(run["regions"]) == sorted(REGIONS)
    assert run["tool_version"] == __version__
    assert ISO_UTC.match(run["started_at"]) and ISO_UTC.match(run["finished_at"])
    assert run["started_at"] <= run["finished_at"]
    assert run["run_id"] and run["api_calls"] == result.api_calls > 0


def test_file_is_plain_sqlite_without_virtual_tables(clean) -> None:
    path, _ = clean
    connection = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
    try:
        schema = connection.execute("SELECT type, name, sql FROM sqlite_schema").fetchall()
        assert not [s for s in schema if s[2] and "VIRTUAL" in s[2].upper()]
        assert sorted(s[1] for s in schema if s[0] == "table") == ALL_TABLES
        assert connection.execute("SELECT count(*) FROM aws_kms_key").fetchone()[0] > 0
        assert connection.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
    finally:
        connection.close()


# --- read-only ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    "statement",
    [
        "INSERT INTO aws_kms_key (id) VALUES ('x')",
        "DELETE FROM aws_bedrock_custom_model",
        "UPDATE aws_bedrock_custom_model SET model_kms_key_arn = NULL",
        "DROP TABLE aws_kms_key",
        "DROP INDEX idx_aws_kms_key_arn",
        "CREATE TABLE x(a)",
        "CREATE TEMP TABLE x(a)",
        "CREATE VIEW v AS SELECT 1",
        "ALTER TABLE aws_kms_key ADD COLUMN c",
        "ATTACH DATABASE '{dir}/other.db' AS other",
        "PRAGMA writable_schema=1",
        "PRAGMA writable_schema=ON",
        "PRAGMA query_only=0",
        "PRAGMA user_version=7",
        "PRAGMA main.journal_mode=DELETE",
        "PRAGMA journal_mode=DELETE",
        "VACUUM",
        "VACUUM INTO '{dir}/copy.db'",
        "REINDEX",
        "ANALYZE",
        "REPLACE INTO bedrock_sql_runs (run_id) VALUES ('x')",
    ],
)
def test_writes_are_refused_and_the_file_is_untouched(clean, tmp_path: Path, statement: str) -> None:
    path, _ = clean
    before = digest(path)
    sql = statement.format(dir=tmp_path)
    connection = snapshot.open_snapshot(path)
    try:
        with pytest.raises(UserError) as caught:
            result = run_query(connection, sql)
            list(result.rows)
        assert "\n" not in str(caught.value) and str(caught.value)
        # Still usable for reading afterwards.
        assert list(run_query(connection, "SELECT count(*) FROM aws_kms_key").rows)[0][0] > 0
    finally:
        connection.close()
    assert digest(path) == before
    assert list(tmp_path.iterdir()) == []  # nothing written beside it either
    assert leftovers(path.parent) == []


def test_reading_statements_are_allowed(clean) -> None:
    path, _ = clean
    connection = snapshot.open_snapshot(path)
    try:
        # Reading pragmas, with or without an argument naming what to read.
        columns = [r[1] for r in run_query(connection, "PRAGMA table_info(aws_kms_key)").rows]
        assert columns == TABLES["aws_kms_key"].column_names
        assert [r[1] for r in run_query(connection, "SELECT * FROM pragma_table_info('aws_kms_alias')").rows] == (
            TABLES["aws_kms_alias"].column_names
        )
        assert list(run_query(connection, "PRAGMA index_list(aws_kms_key)").rows)
        assert list(run_query(connection, "PRAGMA table_list").rows)
        assert list(run_query(connection, "PRAGMA integrity_check").rows) == [("ok",)]
        assert list(run_query(connection, "WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i+1 FROM n WHERE i<3) SELECT count(*) FROM n").rows) == [(3,)]
        result = run_query(connection, "SELECT json_extract(akas, '$[0]') AS aka FROM aws_kms_key LIMIT 1")
        assert result.columns == ["aka"]
    finally:
        connection.close()


def test_missing_and_corrupt_snapshots_are_user_errors(tmp_path: Path) -> None:
    with pytest.raises(UserError, match="no snapshot at .*run bedrock-sql collect"):
        snapshot.open_snapshot(tmp_path / "absent.db")
    bad = tmp_path / "bad.db"
    bad.write_text("this is not a database\n" * 100)
    with pytest.raises(UserError, match="not a readable bedrock-sql snapshot"):
        snapshot.open_snapshot(bad)
    other = tmp_path / "other.db"
    sqlite3.connect(other).execute("CREATE TABLE t(a)").connection.commit()
    with pytest.raises(UserError, match="not a readable bedrock-sql snapshot"):
        snapshot.open_snapshot(other)


# --- partial runs -------------------------------------------------------------------------


def test_denied_region_makes_a_partial_snapshot(demo: Estate, tmp_path: Path) -> None:
    scope = scope_for()
    deny(scope, "bedrock", "ListCustomModels", when=lambda p, ctx: region_of(ctx) == "eu-west-1")
    path = tmp_path / "bedrock.db"
    result = snapshot.collect(scope, path)
    assert result.status == "partial"
    assert result.row_counts["aws_bedrock_custom_model"] == len(demo.models_in("us-east-1"))
    assert result.row_counts["aws_kms_key"] == len(demo.keys)  # other tables unharmed
    connection = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
    try:
        errors = connection.execute(f"SELECT * FROM {snapshot.ERRORS_TABLE}").fetchall()
        run_status = connection.execute(f"SELECT status FROM {snapshot.RUNS_TABLE}").fetchone()[0]
        regions = {r[0] for r in connection.execute("SELECT region FROM aws_bedrock_custom_model")}
    finally:
        connection.close()
    assert run_status == "partial"
    assert regions == {"us-east-1"}
    assert len(errors) == 1
    error = dict(zip([c.name for c in snapshot.ERROR_TABLE_COLUMNS], errors[0]))
    assert error["account_id"] == DEFAULT_ACCOUNT_ID and error["region"] == "eu-west-1"
    assert error["table_name"] == "aws_bedrock_custom_model"
    assert error["operation"] == "ListCustomModels"
    assert error["error_code"] == "AccessDeniedException"
    assert error["message"] and ISO_UTC.match(error["occurred_at"])
    assert error["resource"] is None
    assert stat.S_IMODE(path.stat().st_mode) == 0o600


# --- atomicity ----------------------------------------------------------------------------


def _failing_tables(after: int = 2) -> dict:
    def list_then_fail(api, params):
        for n, item in enumerate(bedrock_custom_model.list_custom_models(api, params)):
            if n == after:
                raise RuntimeError("simulated crash mid-collect")
            yield item

    tables = dict(TABLES)
    tables["aws_bedrock_custom_model"] = dataclasses.replace(TABLES["aws_bedrock_custom_model"], list_items=list_then_fail)
    return tables


def test_crash_mid_collect_leaves_the_previous_snapshot(world: World, tmp_path: Path) -> None:
    path = tmp_path / "bedrock.db"
    snapshot.collect(scope_for(), path)
    before = digest(path)
    with pytest.raises(RuntimeError, match="simulated crash"):
        snapshot.collect(scope_for(), path, tables=_failing_tables())
    assert digest(path) == before
    assert leftovers(tmp_path) == []
    assert sorted(p.name for p in tmp_path.iterdir()) == ["bedrock.db"]
    # And the next collect works normally.
    result = snapshot.collect(scope_for(), path)
    assert result.status == "complete" and digest(path) != before


def test_crash_on_first_collect_leaves_nothing(world: World, tmp_path: Path) -> None:
    with pytest.raises(RuntimeError):
        snapshot.collect(scope_for(), tmp_path / "bedrock.db", tables=_failing_tables(after=0))
    assert list(tmp_path.iterdir()) == []


def test_interrupt_mid_collect_leaves_the_previous_snapshot(world: World, tmp_path: Path) -> None:
    path = tmp_path / "bedrock.db"
    snapshot.collect(scope_for(("us-east-1",)), path)
    before = digest(path)

    def interrupted(api, params):
        yield from []
        raise KeyboardInterrupt

    tables = dict(TABLES)
    # Listed in us-east-1 by either --kms-keys mode (it holds Bedrock resources).
    tables["aws_kms_alias"] = dataclasses.replace(TABLES["aws_kms_alias"], list_items=interrupted)
    with pytest.raises(BaseException):
        snapshot.collect(scope_for(("us-east-1",)), path, tables=tables)
    assert digest(path) == before
    assert leftovers(tmp_path) == []


def test_stale_partial_of_a_dead_process_is_removed(world: World, tmp_path: Path) -> None:
    path = tmp_path / "bedrock.db"
    dead_pid = int(Path("/proc/sys/kernel/pid_max").read_text()) + 1  # never a live process
    host = socket.gethostname()
    stale = tmp_path / f".bedrock.db.{host}.{dead_pid}.partial"
    stale.write_bytes(b"half a snapshot")
    alive = tmp_path / f".bedrock.db.{host}.1.partial"  # pid 1 always exists
    alive.write_bytes(b"someone else's collect")
    elsewhere = tmp_path / f".bedrock.db.other-host.{dead_pid}.partial"
    elsewhere.write_bytes(b"another machine's collect")
    other_db = tmp_path / f".other.db.{host}.{dead_pid}.partial"
    other_db.write_bytes(b"another snapshot's collect")
    snapshot.collect(scope_for(("us-east-1",)), path)
    assert not stale.exists()
    assert alive.exists() and elsewhere.exists() and other_db.exists()
    assert path.is_file()


@pytest.mark.parametrize("name", ["audit[1].db", "a*b?.db"])
def test_stale_partial_is_removed_whatever_the_file_name(world: World, tmp_path: Path, name: str) -> None:
    dead_pid = int(Path("/proc/sys/kernel/pid_max").read_text()) + 1
    stale = tmp_path / f".{name}.{socket.gethostname()}.{dead_pid}.partial"
    stale.write_bytes(b"half a snapshot")
    snapshot.collect(scope_for(("us-east-1",)), tmp_path / name)
    assert not stale.exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == [name]


def test_collect_into_a_missing_directory_is_a_user_error(world: World, tmp_path: Path) -> None:
    with pytest.raises(UserError, match="no directory"):
        snapshot.collect(scope_for(("us-east-1",)), tmp_path / "nope" / "bedrock.db")
    assert list(tmp_path.iterdir()) == []


def _dead_pid() -> int:
    return int(Path("/proc/sys/kernel/pid_max").read_text()) + 1  # never a live process


def test_stale_partials_are_recognised_in_both_name_forms(world: World, tmp_path: Path) -> None:
    """A killed collect's partial is ".NAME.HOST.PID.partial", or ".NAME.HOST.PID.RANDOM.partial"
    when the plain name was taken: both are cleaned up, names that only look alike are not."""
    host, dead = socket.gethostname(), _dead_pid()
    removed = [tmp_path / f".bedrock.db.{host}.{dead}.partial", tmp_path / f".bedrock.db.{host}.{dead}.k3j_9x0a.partial",
               tmp_path / f".bedrock.db.{host}.{'9' * 30}.partial"]  # past any PID (os.kill: OverflowError)
    kept = [tmp_path / f".bedrock.db.{host}.١٢٣.partial",  # digits to str.isdigit(), no PID
            tmp_path / f".bedrock.db.{host}.0.partial",  # os.kill(0) asks about our own group: alive
            tmp_path / f".bedrock.db.{host}.{dead}.UPPER.partial",  # not mkstemp's letters
            tmp_path / f".bedrock.db.{host}x.{dead}.partial"]  # another host
    for path in [*removed, *kept]:
        path.write_bytes(b"half a snapshot")
    snapshot.collect(scope_for(("us-east-1",)), tmp_path / "bedrock.db")
    assert [p for p in removed if p.exists()] == []
    assert [p for p in kept if not p.exists()] == []


def test_stale_partial_names_someone_else_made_are_left_alone(world: World, tmp_path: Path) -> None:
    """Only this user's own regular files are removed. A directory or a symlink at a stale
    partial's name (planted, say, in a shared folder) was a traceback (IsADirectoryError), or
    the removal of someone else's file: now left as it is, and the collect goes on."""
    host, dead = socket.gethostname(), _dead_pid()
    victim = tmp_path / "victim.txt"
    victim.write_text("keep me\n")
    folder = tmp_path / f".bedrock.db.{host}.{dead}.partial"
    folder.mkdir()
    (folder / "inside").write_text("theirs\n")
    link = tmp_path / f".bedrock.db.{host}.{dead}.abcdefgh.partial"
    link.symlink_to(victim)
    theirs = tmp_path / f".bedrock.db.{host}.{dead}.zzzzzzzz.partial"
    theirs.write_bytes(b"another user's collect")
    other_user = os.geteuid() == 0
    if other_user:
        os.chown(theirs, 4242, -1)
    result = snapshot.collect(scope_for(("us-east-1",)), tmp_path / "bedrock.db")
    assert result.status == "complete"
    assert (folder / "inside").read_text() == "theirs\n" and link.is_symlink() and victim.read_text() == "keep me\n"
    assert theirs.exists() == other_user  # ours (not root): a stale partial of ours, removed


@pytest.mark.parametrize("planted", ["symlink", "dangling-symlink", "directory", "file"])
def test_a_planted_partial_name_neither_blocks_nor_is_followed(world: World, tmp_path: Path, planted: str) -> None:
    """Anyone who can write the folder can guess ".bedrock.db.HOST.PID.partial" and create it
    first: it blocked the collect before ("File exists"). The collect takes a random name then."""
    victim = tmp_path / "victim.txt"
    victim.write_text("keep me\n")
    name = tmp_path / f".bedrock.db.{socket.gethostname()}.{os.getpid()}.partial"
    if planted == "symlink":
        name.symlink_to(victim)
    elif planted == "dangling-symlink":
        name.symlink_to(tmp_path / "created-through-the-link")
    elif planted == "directory":
        name.mkdir()
    else:
        name.write_bytes(b"theirs")
    path = tmp_path / "bedrock.db"
    result = snapshot.collect(scope_for(("us-east-1",)), path)
    assert result.status == "complete" and path.is_file() and not path.is_symlink()
    assert victim.read_text() == "keep me\n" and not (tmp_path / "created-through-the-link").exists()
    assert os.path.lexists(name)  # left as it was
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(["bedrock.db", "victim.txt", name.name])


def test_the_partial_file_is_0600_whatever_the_umask(world: World, tmp_path: Path) -> None:
    old = os.umask(0o277)  # open(..., 0o600) alone would make it 0400 (unwritable but for root)
    try:
        snapshot.collect(scope_for(("us-east-1",)), tmp_path / "bedrock.db")
    finally:
        os.umask(old)
    assert stat.S_IMODE((tmp_path / "bedrock.db").stat().st_mode) == 0o600


def test_a_partial_file_that_cannot_be_made_is_one_user_error(world: World, tmp_path: Path, monkeypatch) -> None:
    real_open = os.open

    def denied(path, *args, **kwargs):  # a folder we may not write (root may write any: simulated)
        if str(path).startswith(str(tmp_path)):
            raise PermissionError(13, "Permission denied")
        return real_open(path, *args, **kwargs)

    monkeypatch.setattr(snapshot.os, "open", denied)
    with pytest.raises(UserError, match=f"^cannot write a snapshot at {tmp_path / 'bedrock.db'}: Permission denied$"):
        snapshot.collect(scope_for(("us-east-1",)), tmp_path / "bedrock.db")
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("after", ["_create_partial", "_stamp"])
def test_a_partial_file_swapped_for_a_symlink_is_not_written_through(world: World, tmp_path: Path, monkeypatch,
                                                                     after: str) -> None:
    """The partial file is made exclusively, then opened again by name (to stamp it, to
    ATTACH it): whoever can write the folder could put a symlink there in between. SQLite
    would write a whole snapshot into an empty file it points to; NOFOLLOW refuses instead."""
    victim = tmp_path / "elsewhere" / "empty-but-mine.txt"
    victim.parent.mkdir()
    victim.touch()
    real = getattr(snapshot, after)

    def then_swap(*args, **kwargs):
        made = real(*args, **kwargs)
        partial = made if after == "_create_partial" else args[0]
        partial.unlink()
        partial.symlink_to(victim)
        return made

    monkeypatch.setattr(snapshot, after, then_swap)
    with pytest.raises(UserError, match="^cannot write a snapshot"):
        snapshot.collect(scope_for(("us-east-1",)), tmp_path / "bedrock.db")
    assert victim.stat().st_size == 0
    assert not (tmp_path / "bedrock.db").exists()


def test_collect_into_a_folder_reached_through_a_symlink(world: World, tmp_path: Path) -> None:
    """Only the file's own name must not be a symlink: folders may be (macOS's /tmp, a home
    folder on another disk)."""
    (tmp_path / "real").mkdir()
    (tmp_path / "linked").symlink_to(tmp_path / "real")
    result = snapshot.collect(scope_for(("us-east-1",)), tmp_path / "linked" / "bedrock.db")
    assert result.status == "complete"
    assert sorted(p.name for p in (tmp_path / "real").iterdir()) == ["bedrock.db"]
