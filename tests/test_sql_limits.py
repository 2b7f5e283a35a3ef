"""What one ad-hoc statement may use: SQLite's length and heap limits, and a --timeout that
fires within a second of its deadline, also inside a long function.

Each statement runs in the real CLI, in a subprocess of its own that reports its peak RSS
(``resource.getrusage(RUSAGE_CHILDREN)`` of a small runner, so that no other child of the
test process counts). Memory and time bounds are generous: they tell "bounded" from "takes
the machine" (without the limits ``SELECT hex(zeroblob(4e8))`` took 9.8 GB), not a
measurement -- benchmarks/bench_statement_guard.py measures.
"""

from __future__ import annotations

import io
import json
import subprocess
import sys
import threading
import time
from pathlib import Path

import apsw
import pytest

from bedrock_sql import sql
from bedrock_sql.aws import AwsOptions
from bedrock_sql.demo import run_demo
from bedrock_sql.engine import ErrorLog
from bedrock_sql.sql import (
    MAX_VALUE_BYTES,
    StatementGuard,
    StatementTimeout,
    live_connection,
    run_query,
    snapshot_connection,
)
from e2e_helpers import cli_command, cli_env, describe, run_cli

MB = 1024 * 1024
# Peak RSS of a CLI whose statement fails on the length limit: the interpreter (~45 MB)
# plus a value or two at the limit (64 MiB each), never the gigabytes of the value asked for.
LENGTH_FAILURE_PEAK = 400 * MB
TIMEOUT = 1.0
# A statement stopped by --timeout 1 ends within about 1.5 s of the start (interpreter start
# included); 4 s leaves room for a loaded CI machine, and is far below a statement that
# ran on (the ones below take minutes to hours).
STOPPED_WITHIN = 4.0

RUNNER = """
import json, resource, subprocess, sys, time
started = time.monotonic()
# Its own timeout, so that the CLI dies with the runner (subprocess.run kills it on expiry).
result = subprocess.run(sys.argv[1:], capture_output=True, text=True, timeout=300)
print(json.dumps({
    "returncode": result.returncode, "stdout": result.stdout[-2000:], "stderr": result.stderr,
    "seconds": time.monotonic() - started,
    "peak": resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss * 1024,
}))
"""


@pytest.fixture(scope="module")
def demo_db(tmp_path_factory: pytest.TempPathFactory) -> Path:
    db = tmp_path_factory.mktemp("limits") / "demo.db"
    run_demo(db, io.StringIO())
    return db


def measured(args: list[str], cwd: Path) -> dict:
    """Run ``bedrock-sql ARGS``; its exit code, output, wall time and peak RSS (bytes)."""
    runner = subprocess.run(
        [sys.executable, "-c", RUNNER, *cli_command(*args)],
        cwd=cwd, env=cli_env(), capture_output=True, text=True, timeout=600,
    )
    assert runner.returncode == 0, runner.stderr
    return json.loads(runner.stdout)


def one_error_line(result: dict) -> str:
    lines = result["stderr"].splitlines()
    assert len(lines) == 1 and lines[0].startswith("bedrock-sql: error: "), result["stderr"]
    assert "Traceback" not in result["stderr"]
    return lines[0]


# --- the length limit -------------------------------------------------------------------------

# Each makes (or would make) one string or BLOB far over the limit.
OVERSIZED = {
    "hex of a 400 MB blob": "SELECT hex(zeroblob(4e8))",
    "a 1 GB blob": "SELECT zeroblob(1e9)",
    "a 100 MB random blob": "SELECT length(randomblob(1e8))",
    "printf padding": "SELECT length(printf('%.*c', 1e9, 'x'))",
    "replace that doubles": "SELECT length(replace(printf('%.*c', 4e7, 'x'), 'x', 'yy'))",
    "group_concat of generated rows": (
        "WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n LIMIT 200000) "
        "SELECT length(group_concat(printf('%.1000c', 'x'))) FROM n"
    ),
}


@pytest.mark.parametrize("sql_text", OVERSIZED.values(), ids=OVERSIZED.keys())
def test_a_value_over_the_length_limit_is_one_line_and_takes_little_memory(demo_db: Path, sql_text: str) -> None:
    result = measured(["--db", str(demo_db), "query", sql_text], demo_db.parent)
    assert result["returncode"] == 2, result
    assert one_error_line(result) == "bedrock-sql: error: SQL error: string or blob too big"
    assert result["peak"] < LENGTH_FAILURE_PEAK, f"peak RSS {result['peak'] / MB:.0f} MB"


def test_values_up_to_what_aws_returns_and_far_more_are_fine(demo_db: Path) -> None:
    # A key policy is at most 32 KB: values a thousand times that still work.
    result = run_cli(["--db", str(demo_db), "query", "-o", "csv",
                      "SELECT length(printf('%.*c', 32 * 1024 * 1000, 'x')) AS n"], cwd=demo_db.parent, env=cli_env())
    assert (result.returncode, result.stdout.split()) == (0, ["n", str(32 * 1024 * 1000)]), describe(result)


def test_many_values_at_the_limit_hit_the_heap_limit(demo_db: Path) -> None:
    # Each value is under the length limit; twenty of them in one row are 1.2 GB of SQLite's
    # heap, which the hard heap limit refuses.
    row = ", ".join(["zeroblob(6e7) || x'00'"] * 20)
    result = measured(["--db", str(demo_db), "query", "-o", "csv", f"SELECT {row}"], demo_db.parent)
    assert result["returncode"] == 2, result
    assert one_error_line(result) == "bedrock-sql: error: SQL error: out of memory"
    assert result["peak"] < sql.HEAP_LIMIT_BYTES + 300 * MB, f"peak RSS {result['peak'] / MB:.0f} MB"


def test_sql_cannot_lift_the_limits(demo_db: Path) -> None:
    for statement in ("PRAGMA hard_heap_limit = 0", "PRAGMA soft_heap_limit = 0"):
        result = run_cli(["--db", str(demo_db), "query", statement], cwd=demo_db.parent, env=cli_env())
        assert result.returncode == 2 and "read-only" in result.stderr, (statement, describe(result))
    with snapshot_connection(demo_db) as connection:
        assert apsw.hard_heap_limit(-1) == sql.HEAP_LIMIT_BYTES


def test_the_heap_limit_is_only_ever_lowered(demo_db: Path) -> None:
    previous = apsw.hard_heap_limit(-1)
    try:
        apsw.hard_heap_limit(sql.HEAP_LIMIT_BYTES // 2)  # an embedder's stricter limit stays
        with snapshot_connection(demo_db):
            assert apsw.hard_heap_limit(-1) == sql.HEAP_LIMIT_BYTES // 2
    finally:
        apsw.hard_heap_limit(0)
        apsw.hard_heap_limit(previous)


def test_every_ad_hoc_connection_has_the_limits(demo_db: Path, moto_url: str, tmp_path: Path) -> None:
    with snapshot_connection(demo_db) as connection:
        assert connection.limit(apsw.SQLITE_LIMIT_LENGTH, -1) == MAX_VALUE_BYTES
        assert connection.limit(apsw.SQLITE_LIMIT_SQL_LENGTH, -1) == MAX_VALUE_BYTES
    options = AwsOptions(regions=("us-east-1",), endpoint_url=moto_url)
    with live_connection(options, ErrorLog()) as connection:
        assert connection.limit(apsw.SQLITE_LIMIT_LENGTH, -1) == MAX_VALUE_BYTES
        with pytest.raises(sql.UserError, match="string or blob too big"):
            list(run_query(connection, "SELECT hex(zeroblob(4e8))").rows)
    # check: a control that makes a value too big is one line, like query.
    (tmp_path / "big.sql").write_text(
        "-- id: big\n-- title: Too big\n-- severity: low\n-- description: d.\n"
        "SELECT hex(zeroblob(4e8)) AS resource, 'ok' AS status, 'r.' AS reason, "
        "'123456789012' AS account_id, 'us-east-1' AS region\n"
    )
    result = run_cli(["--db", str(demo_db), "check", "--queries", str(tmp_path), "big"], cwd=tmp_path, env=cli_env())
    assert result.returncode == 2 and "string or blob too big" in result.stderr, describe(result)
    assert "Traceback" not in result.stderr
    # (The shell and serve: tests/test_shell.py and tests/test_serve.py.)


# --- --timeout fires within a second of its deadline ------------------------------------------

SLOW = {
    # SQLite's own loop: the progress handler's checkpoints stop it.
    "endless recursive CTE": "WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n) SELECT count(*) FROM n",
    "big ORDER BY over generated rows": (  # sorted before the first row comes out
        "WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n LIMIT 100000000) "
        "SELECT i FROM n ORDER BY random()"
    ),
    # Our slowest SQL function, in Python, on distinct policies (its cache never hits).
    "policy analysis over many rows": (
        "WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n LIMIT 100000000) "
        "SELECT count(policy_public_statements('{\"Statement\":[{\"Sid\":\"' || i || '\",\"Effect\":\"Allow\","
        "\"Principal\":\"*\",\"Action\":\"kms:*\",\"Resource\":\"*\"}]}')) FROM n"
    ),
    # One call of one of SQLite's C functions, quadratic and checking nothing: hours at this
    # size. Only the guard's overrun exit ends it.
    "one long C call (instr)": (
        "SELECT instr(printf('%.*c', 20000000, 'a'), printf('%.*c', 10000000, 'a') || 'b')"
    ),
}


@pytest.mark.parametrize("sql_text", SLOW.values(), ids=SLOW.keys())
def test_timeout_stops_within_a_second_of_its_deadline(demo_db: Path, sql_text: str) -> None:
    result = measured(["--db", str(demo_db), "query", "--timeout", str(TIMEOUT), sql_text], demo_db.parent)
    assert result["returncode"] == 2, result
    assert one_error_line(result).startswith("bedrock-sql: error: query stopped after 1s (--timeout 1)")
    assert TIMEOUT <= result["seconds"] < STOPPED_WITHIN, f"stopped after {result['seconds']:.1f}s"


def test_timeout_stops_a_streaming_output_within_a_second(demo_db: Path) -> None:
    # Rows of a few MB each, written as they come: SIGALRM reaches the writing too.
    result = measured(["--db", str(demo_db), "query", "-o", "csv", "--timeout", str(TIMEOUT),
                       "WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n) "
                       "SELECT printf('%.*c', 4000000, 'x') FROM n"], demo_db.parent)
    assert result["returncode"] == 2, result
    assert "query stopped after 1s" in one_error_line(result)
    assert TIMEOUT <= result["seconds"] < STOPPED_WITHIN, f"stopped after {result['seconds']:.1f}s"


def test_the_timer_interrupts_sqlite_where_no_checkpoint_or_alarm_reaches(demo_db: Path) -> None:
    """Off the main thread there is no SIGALRM; without the progress handler, only the
    timer's sqlite3_interrupt can stop the statement, and it reads as the timeout."""
    outcome: dict = {}

    def run() -> None:
        with snapshot_connection(demo_db, timeout=0.3) as connection:
            connection.set_progress_handler(None)  # as if no checkpoint came (one long step)
            started = time.monotonic()
            try:
                # Half a minute of work, when nothing stops it.
                list(run_query(connection, "WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n "
                                           "LIMIT 300000000) SELECT count(*) FROM n").rows)
            except BaseException as exc:  # noqa: BLE001 -- reported to the test's thread
                outcome["error"] = exc
            outcome["seconds"] = time.monotonic() - started

    thread = threading.Thread(target=run)
    thread.start()
    thread.join(120)
    assert isinstance(outcome.get("error"), StatementTimeout), outcome
    assert outcome["seconds"] < 0.3 + 3, outcome


def test_on_overrun_is_called_only_for_a_statement_still_running(demo_db: Path) -> None:
    overruns: list[StatementTimeout] = []
    with snapshot_connection(demo_db, timeout=0.2, on_overrun=overruns.append) as connection:
        # Stopped at a checkpoint: no overrun.
        with pytest.raises(StatementTimeout):
            list(run_query(connection, "WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n) "
                                       "SELECT count(*) FROM n").rows)
        time.sleep(sql.OVERRUN_GRACE + 0.3)
        assert overruns == []
        # Stuck in one C call past the grace: on_overrun hears of it (while the call runs on).
        with pytest.raises(StatementTimeout):
            list(run_query(connection, "SELECT instr(printf('%.*c', 600000, 'a'), printf('%.*c', 300000, 'a') || 'b')").rows)
        assert len(overruns) == 1 and "stopped after 0.2s" in str(overruns[0])


def test_the_guard_does_not_keep_its_connection_alive(demo_db: Path) -> None:
    import gc
    import weakref

    connection = apsw.Connection(":memory:")
    StatementGuard(connection, 5)
    alive = weakref.ref(connection)
    connection.close()
    del connection
    gc.collect()
    assert alive() is None


_STUCK_CONTROL = """-- id: stuck_in_one_c_call
-- title: A control stuck in one of SQLite's C functions
-- severity: low
-- description: One instr() call, quadratic, that checks nothing for hours.
-- remediation: None.
SELECT 'x' AS resource, 'ok' AS status, 'Never reached.' AS reason, account_id, region
FROM aws_bedrock_custom_model
WHERE instr(printf('%.*c', 20000000, 'a'), printf('%.*c', 10000000, 'a') || 'b') = 0
"""


@pytest.mark.parametrize("command", ["check", "diff"])
def test_check_and_diff_timeouts_end_a_statement_stuck_in_one_c_call(demo_db: Path, tmp_path: Path, command: str) -> None:
    # check and diff run controls (a --queries DIR control here) under the same guard as
    # query: the overrun exit must reach them too, or --timeout 1 waits for hours.
    (tmp_path / "stuck_in_one_c_call.sql").write_text(_STUCK_CONTROL)
    tail = [str(demo_db), str(demo_db)] if command == "diff" else []
    result = measured(["--db", str(demo_db), command, "--queries", str(tmp_path), "--timeout", str(TIMEOUT), *tail,
                       *(["stuck_in_one_c_call"] if command == "check" else [])], tmp_path)
    assert result["returncode"] == 2, result
    assert "--timeout 1" in one_error_line(result)
    assert TIMEOUT <= result["seconds"] < STOPPED_WITHIN, f"stopped after {result['seconds']:.1f}s"
