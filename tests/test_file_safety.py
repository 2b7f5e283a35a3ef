"""Files are safe: collect replaces only bedrock-sql snapshots (or nothing), demo only its
own snapshots, and neither ever writes beside a file it refuses (no -journal, no -wal).

In process with moto (``world``), except the tests that run the CLI as a subprocess against
the moto server: the demo's, and those where another local user plants names or swaps files.
"""

from __future__ import annotations

import json
import os
import sqlite3
import stat
import subprocess
import sys
from pathlib import Path
from typing import Callable

import pytest

from bedrock_sql import snapshot
from bedrock_sql.accounts import resolve_scope
from bedrock_sql.aws import AwsOptions
from bedrock_sql.demo import DEMO_NOTE, check_demo_target, is_demo_snapshot
from bedrock_sql.errors import UserError
from bedrock_sql.estate import seed_models
from bedrock_sql.snapshot_file import APPLICATION_ID, check_replaceable, not_a_snapshot
from e2e_helpers import AwsProxy, AwsRequest, cli_env, describe, run_cli
from helpers import World, fast_regions, world  # noqa: F401
from helpers import run_main as run
from snapshot_builder import SnapshotBuilder

OTHER_APPLICATION_ID = 0x4D504244


def scope_for(regions=("us-east-1",)):
    with fast_regions():
        return resolve_scope(AwsOptions(regions=regions))


def application_id(path: Path) -> int:
    with sqlite3.connect(f"file:{path}?mode=ro", uri=True) as db:
        return db.execute("PRAGMA application_id").fetchone()[0]


def state(directory: Path) -> dict[str, tuple[bytes, int]]:
    """Every file in ``directory``: (content, mtime in ns). Equal states: nothing touched."""
    return {p.name: (p.read_bytes(), p.stat().st_mtime_ns) for p in sorted(directory.iterdir()) if p.is_file()}


# --- what is not a snapshot ----------------------------------------------------------------


def _sqlite(path: Path, *statements: str) -> Path:
    db = sqlite3.connect(path)
    for statement in statements:
        db.execute(statement)
    db.commit()
    db.close()
    return path


def text_file(path: Path) -> Path:
    path.write_text("meeting notes\n" * 50)
    return path


def other_application(path: Path) -> Path:
    return _sqlite(path, f"PRAGMA application_id = {OTHER_APPLICATION_ID}", "CREATE TABLE bedrock_sql_runs(x)",
                   "INSERT INTO bedrock_sql_runs VALUES (1)")


def plain_sqlite(path: Path) -> Path:
    return _sqlite(path, "CREATE TABLE expenses(amount)", "INSERT INTO expenses VALUES (12)")


def wal_sqlite(path: Path) -> Path:
    """Another application's database in WAL mode (opening it writable would create -wal/-shm)."""
    return _sqlite(path, "PRAGMA journal_mode=WAL", "CREATE TABLE expenses(amount)", "INSERT INTO expenses VALUES (12)")


def marked_but_empty(path: Path) -> Path:
    """Our application id, but no runs table: not a snapshot bedrock-sql finished writing."""
    return _sqlite(path, f"PRAGMA application_id = {APPLICATION_ID}", "CREATE TABLE t(x)")


def truncated_snapshot(path: Path) -> Path:
    builder = SnapshotBuilder(path)
    for n in range(200):
        builder.add_model(f"model-{n:03d}")
    whole = path.read_bytes()
    path.write_bytes(whole[: len(whole) // 2])
    return path


NOT_SNAPSHOTS: dict[str, tuple[Callable[[Path], Path], str]] = {
    "text": (text_file, "not a SQLite database"),
    "other-application": (other_application, "another application"),
    "plain-sqlite": (plain_sqlite, "did not write"),
    "wal-sqlite": (wal_sqlite, "did not write"),
    "marked-without-runs-table": (marked_but_empty, "did not write"),
    "truncated-snapshot": (truncated_snapshot, "truncated"),
}


@pytest.mark.parametrize("kind", NOT_SNAPSHOTS)
def test_collect_refuses_a_file_that_is_not_a_snapshot(world: World, tmp_path: Path, kind: str) -> None:
    make, why = NOT_SNAPSHOTS[kind]
    path = make(tmp_path / "precious.db")
    before = state(tmp_path)
    with pytest.raises(UserError) as refused:
        snapshot.collect(scope_for(), path)
    message = str(refused.value)
    assert message.startswith(f"refusing to replace {path}: not a bedrock-sql snapshot"), message
    assert why in message and "--force" in message
    assert state(tmp_path) == before  # byte-identical, same mtime, no -journal/-wal/partial beside it


def test_collect_refuses_a_directory_even_with_force(world: World, tmp_path: Path) -> None:
    folder = tmp_path / "bedrock.db"
    folder.mkdir()
    for force in (False, True):
        with pytest.raises(UserError, match="not a bedrock-sql snapshot \\(a directory\\)"):
            snapshot.collect(scope_for(), folder, force=force)
    assert list(tmp_path.iterdir()) == [folder] and list(folder.iterdir()) == []


def test_force_replaces_a_file_that_is_not_a_snapshot(world: World, tmp_path: Path) -> None:
    path = text_file(tmp_path / "notes.db")
    result = snapshot.collect(scope_for(), path, force=True)
    assert result.status == "complete"
    assert application_id(path) == APPLICATION_ID
    assert not_a_snapshot(path) is None


def legacy_snapshot(path: Path) -> Path:
    """A snapshot from before the application id: recognised by its bedrock_sql_runs table."""
    SnapshotBuilder(path).add_run()
    return _sqlite(path, "PRAGMA application_id = 0")


REPLACEABLE: dict[str, Callable[[Path], Path]] = {
    "absent": lambda path: path,
    "empty-file": lambda path: (path.touch(), path)[1],
    "snapshot": lambda path: (SnapshotBuilder(path).add_run(), path)[1],
    "legacy-snapshot": legacy_snapshot,
}


@pytest.mark.parametrize("kind", REPLACEABLE)
def test_collect_replaces_snapshots_and_empty_files(world: World, tmp_path: Path, kind: str) -> None:
    path = REPLACEABLE[kind](tmp_path / "bedrock.db")
    assert not_a_snapshot(path) is None
    result = snapshot.collect(scope_for(), path)
    assert result.status == "complete"
    assert application_id(path) == APPLICATION_ID  # what collect writes is marked as ours
    assert sorted(p.name for p in tmp_path.iterdir()) == ["bedrock.db"]


def test_collected_snapshot_is_recognised(world: World, tmp_path: Path) -> None:
    path = tmp_path / "bedrock.db"
    snapshot.collect(scope_for(), path)
    assert application_id(path) == APPLICATION_ID
    check_replaceable(path)  # no error
    snapshot.collect(scope_for(), path)  # and the next collect replaces it


# --- the CLI -------------------------------------------------------------------------------


def one_error_line(err: str) -> str:
    lines = err.splitlines()
    assert len(lines) == 1 and lines[0].startswith("bedrock-sql: error: "), err
    return lines[0]


def test_cli_collect_refuses_at_once_and_force_overrides(
    world: World, capsys, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    notes = text_file(tmp_path / "notes.txt")
    before = state(tmp_path)
    # No credentials: the refusal comes before any AWS call (else: "no AWS credentials").
    for name in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN"):
        monkeypatch.delenv(name, raising=False)
    code, out, err = run(capsys, "--db", notes, "collect", "--region", "us-east-1")
    assert code == 2, err
    line = one_error_line(err)
    assert f"refusing to replace {notes}: not a bedrock-sql snapshot (not a SQLite database)" in line
    assert "Traceback" not in err and out == ""
    assert state(tmp_path) == before
    monkeypatch.undo()  # credentials back (world's)

    code, out, err = run(capsys, "--db", notes, "collect", "--region", "us-east-1", "--force", "--quiet")
    assert code == 0, err
    assert application_id(notes) == APPLICATION_ID


# --- demo ----------------------------------------------------------------------------------


def demo_snapshot(path: Path) -> Path:
    SnapshotBuilder(path).add_run(notes=[DEMO_NOTE])
    return path


def test_demo_replaces_only_its_own_snapshots(tmp_path: Path) -> None:
    assert not is_demo_snapshot(legacy_snapshot(tmp_path / "legacy.db"))
    check_demo_target(tmp_path / "absent.db")
    check_demo_target(REPLACEABLE["empty-file"](tmp_path / "empty.db"))
    check_demo_target(demo_snapshot(tmp_path / "demo.db"))
    real = SnapshotBuilder(tmp_path / "real.db")
    real.add_run(notes=["regions without Bedrock: none"])
    with pytest.raises(UserError, match=r"refusing to replace .*real.db: not a demo snapshot \(a bedrock-sql snapshot of a real estate\)"):
        check_demo_target(real.path)
    with pytest.raises(UserError, match="not a demo snapshot \\(not a SQLite database\\)"):
        check_demo_target(text_file(tmp_path / "notes.txt"))


def test_missing_snapshot_hints_at_the_demo_file(capsys, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    code, _, err = run(capsys, "tables")
    assert code == 2 and "demo" not in one_error_line(err)  # no demo file: no hint

    demo_snapshot(tmp_path / "bedrock-demo.db")
    for command in (["tables"], ["query", "SELECT 1"], ["check"]):
        code, out, err = run(capsys, *command)
        assert code == 2, err
        line = one_error_line(err)
        assert line.startswith("bedrock-sql: error: no snapshot at bedrock.db: run bedrock-sql collect"), line
        assert f"bedrock-sql --db bedrock-demo.db {command[0]}" in line
    with pytest.raises(UserError) as missing:
        snapshot.open_snapshot(tmp_path / "elsewhere" / "bedrock-demo.db")
    assert "--db bedrock-demo.db" in str(missing.value)  # the one in the working directory exists


def test_demo_never_writes_the_users_snapshot(server_session, moto_url: str, tmp_path: Path) -> None:
    """The reproduction: ``BEDROCK_SQL_DB=real.db bedrock-sql demo`` replaced real.db."""
    seed_models(server_session, "us-east-1", 2, endpoint_url=moto_url)
    collected = run_cli(["--db", "real.db", "collect", "--region", "us-east-1"], cwd=tmp_path, env=cli_env(moto_url), timeout=120)
    assert collected.returncode == 0, describe(collected)
    real = tmp_path / "real.db"
    before = (real.read_bytes(), real.stat().st_mtime_ns)

    # Whatever AWS region the user has, the demo's estate is its own.
    demo_env = cli_env(credentials=False, AWS_REGION="ap-south-1")
    demo_db = tmp_path / "bedrock-demo.db"
    for args, env in ((["demo"], dict(demo_env, BEDROCK_SQL_DB="real.db")), (["--db", "real.db", "demo"], demo_env)):
        result = run_cli(args, cwd=tmp_path, env=env, timeout=120)
        assert result.returncode == 0, describe(result)
        assert "bedrock-sql --db bedrock-demo.db query" in result.stderr
        assert "Traceback" not in result.stderr
        assert (real.read_bytes(), real.stat().st_mtime_ns) == before
        assert is_demo_snapshot(demo_db)
    with sqlite3.connect(f"file:{demo_db}?mode=ro", uri=True) as db:
        (regions,) = db.execute("SELECT regions FROM bedrock_sql_runs").fetchone()
    assert json.loads(regions) == ["eu-west-1", "us-east-1"]

    for args in (["demo", "real.db"], ["demo", "--db", "real.db"]):  # the demo's own file: refused
        refused = run_cli(args, cwd=tmp_path, env=demo_env)
        assert refused.returncode == 2, describe(refused)
        assert refused.stderr.splitlines() == [
            "bedrock-sql: error: refusing to replace real.db: not a demo snapshot (a bedrock-sql snapshot of a real "
            "estate); give the demo another file: bedrock-sql demo PATH"
        ]
        assert (real.read_bytes(), real.stat().st_mtime_ns) == before

    elsewhere = run_cli(["demo", "--db", "mine.db"], cwd=tmp_path, env=demo_env, timeout=120)
    assert elsewhere.returncode == 0, describe(elsewhere)
    assert is_demo_snapshot(tmp_path / "mine.db") and "bedrock-sql --db mine.db query" in elsewhere.stderr
    assert sorted(p.name for p in tmp_path.iterdir()) == ["bedrock-demo.db", "mine.db", "real.db"]
    assert os.stat(real).st_mtime_ns == before[1]


# --- names planted by another local user, and files swapped while collect runs ---------------

# Plants the names a collect run as this very process would use, then becomes that collect
# (exec keeps the PID, which the partial file's name holds): argv = VICTIM, CLI arguments...
_PLANT_THEN_COLLECT = """
import os, socket, sys
from pathlib import Path
host, victim = socket.gethostname(), sys.argv[1]
Path(f".bedrock.db.{host}.{os.getpid()}.partial").symlink_to(victim)
dead = int(Path("/proc/sys/kernel/pid_max").read_text()) + 1
Path(f".bedrock.db.{host}.{dead}.partial").mkdir()  # a stale partial's name, as a folder
os.execv(sys.executable, [sys.executable, "-m", "bedrock_sql", *sys.argv[2:]])
"""


def test_cli_collect_is_not_blocked_by_a_planted_partial_name(server_session, moto_url: str, tmp_path: Path) -> None:
    """Another local user creates the partial file's name first (it is guessable: host and
    PID), as a symlink to a file of the user's, and a folder at a stale partial's name. It was
    "File exists" (exit 2) and a traceback (exit 1); now the collect takes a name nobody can
    guess, follows nothing and leaves what others made alone."""
    seed_models(server_session, "us-east-1", 2, endpoint_url=moto_url)
    victim = tmp_path / "victim.txt"
    victim.write_text("keep me\n")
    work = tmp_path / "work"
    work.mkdir()
    result = subprocess.run([sys.executable, "-c", _PLANT_THEN_COLLECT, str(victim), "collect", "--region", "us-east-1"],
                            cwd=work, env=cli_env(moto_url), capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, describe(result)
    assert "Traceback" not in result.stderr
    assert victim.read_text() == "keep me\n"
    planted = sorted(p for p in work.iterdir() if p.name != "bedrock.db")
    assert len(planted) == 2 and all(p.name.endswith(".partial") for p in planted), planted  # untouched:
    assert sorted("link" if p.is_symlink() else "folder" if p.is_dir() else "file" for p in planted) == ["folder", "link"]
    assert application_id(work / "bedrock.db") == APPLICATION_ID


def test_cli_collect_refuses_a_target_replaced_while_it_runs(server_session, moto_url: str, tmp_path: Path) -> None:
    """Checked at the start, and again just before the rename: the user (or anyone) saves a
    file that is no snapshot at --db while the collect runs. Exit 2, one line, that file kept."""
    seed_models(server_session, "us-east-1", 2, endpoint_url=moto_url)
    db = tmp_path / "bedrock.db"
    planted: list[str] = []

    def save_notes_at_db_once(request: AwsRequest):
        if request.service == "bedrock" and not planted:
            planted.append(request.operation or "?")
            staged = tmp_path / "notes.staged"
            staged.write_text("meeting notes\n")
            os.replace(staged, db)  # whole at once: the collect never sees half a file
        return None  # forwarded to moto as usual

    with AwsProxy(moto_url, rule=save_notes_at_db_once) as proxy:
        result = run_cli(["--db", "bedrock.db", "collect", "--region", "us-east-1"], cwd=tmp_path,
                         env=cli_env(proxy.url), timeout=120)
    assert planted, "no Bedrock request reached the proxy"
    assert result.returncode == 2, describe(result)
    assert "Traceback" not in result.stderr
    assert result.stderr.splitlines()[-1] == (
        "bedrock-sql: error: refusing to replace bedrock.db: not a bedrock-sql snapshot (not a SQLite database); "
        "to replace it anyway: bedrock-sql --db bedrock.db collect --force"
    ), result.stderr
    assert db.read_text() == "meeting notes\n"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["bedrock.db"]  # no partial file left


def test_check_export_replaces_a_planted_symlink_not_its_target(tmp_path: Path, capsys) -> None:
    """``check --export FILE`` writes a new file (0600) and renames it over FILE: a symlink
    planted at FILE is replaced, what it points at is never opened."""
    snap = SnapshotBuilder(tmp_path / "s.db")
    snap.add_model("m1")
    snap.add_run()
    victim = tmp_path / "victim.txt"
    victim.write_text("keep me\n")
    victim.chmod(0o644)
    exports = {name: tmp_path / name for name in ("findings.csv", "findings.json", "report.html")}
    for path in exports.values():
        path.symlink_to(victim)
    code, _, err = run(capsys, "--db", snap.path, "check", *(a for p in exports.values() for a in ("--export", p)))
    assert code == 1, err  # the model uses the Bedrock owned key: alarm
    assert victim.read_text() == "keep me\n" and stat.S_IMODE(victim.stat().st_mode) == 0o644
    for path in exports.values():
        assert not path.is_symlink() and path.stat().st_size > 0
        assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert not [p for p in tmp_path.iterdir() if p.name.endswith(".partial")]
