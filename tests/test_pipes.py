"""A reader that stops early (`| head`): `query` exits 0 without a traceback, `check` never
reads as "all clear" (its verdict is unknown), both as subprocesses writing to a real pipe."""

from __future__ import annotations

import subprocess
from pathlib import Path

from e2e_helpers import cli_command, cli_env
from snapshot_builder import SnapshotBuilder

MANY_ROWS = "WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c LIMIT 2000000) SELECT x FROM c"


def snapshot(tmp_path: Path) -> Path:
    snap = SnapshotBuilder(tmp_path / "s.db")
    snap.add_run()
    for n in range(3000):  # enough findings to overflow a pipe's buffer
        snap.add_model(f"model-{n}", model_kms_key_arn=None)
    snap.close()
    return snap.path


def read_a_line_then_leave(args: list[str], cwd: Path) -> tuple[int, str]:
    """Run the CLI, read one line of its stdout, close the pipe; its exit code and stderr."""
    proc = subprocess.Popen(cli_command(*args), cwd=cwd, env=cli_env(), stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)
    assert proc.stdout is not None and proc.stderr is not None
    assert proc.stdout.readline()
    proc.stdout.close()
    err = proc.stderr.read()
    return proc.wait(timeout=60), err


def test_query_whose_reader_leaves_exits_0_quietly(tmp_path: Path) -> None:
    db = snapshot(tmp_path)
    for fmt in ("csv", "jsonl", "table"):
        code, err = read_a_line_then_leave(["--db", str(db), "query", "-o", fmt, MANY_ROWS], tmp_path)
        assert code == 0, err
        assert err == ""


def test_check_whose_reader_leaves_gives_no_verdict(tmp_path: Path) -> None:
    db = snapshot(tmp_path)
    code, err = read_a_line_then_leave(["--db", str(db), "check", "-o", "csv"], tmp_path)
    assert code == 2
    assert err.splitlines() == ["bedrock-sql: error: stdout was closed before every finding was written: no verdict"]
