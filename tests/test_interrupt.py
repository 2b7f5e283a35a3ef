"""Ctrl-C and --timeout stop a running SQL statement: in `query`, `check` and `shell`, on the
snapshot and live on AWS.

SQLite runs a statement in C, where Python's own SIGINT handling never gets a turn, so each
test makes sure the CLI is busy *inside* the statement before it signals (its CPU time keeps
growing after it opened the snapshot, or an AWS call it waits for is held by the proxy). A
statement that does not stop fails the test through ``proc.wait(timeout=...)``, never
through a measured duration.
"""

from __future__ import annotations

import io
import os
import pty
import select
import signal
import subprocess
import threading
import time
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

import boto3
import pytest

from bedrock_sql.aws import AwsOptions
from bedrock_sql.demo import run_demo
from bedrock_sql.engine import ErrorLog
from bedrock_sql.estate import seed_models
from bedrock_sql.sql import StatementTimeout, live_connection, run_query, snapshot_connection
from e2e_helpers import AwsProxy, AwsRequest, cli_command, cli_env, describe, run_cli, start_cli
from helpers import run_main

ENDLESS = "WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n)"
ENDLESS_COUNT = f"{ENDLESS} SELECT count(*) FROM n"  # busy in C, no row until the end
STOPS_WITHIN = 20  # seconds: generous; a statement that ignores the signal never ends at all

# Knowing that a process is busy in its statement takes Linux's /proc (its CPU time, its files).
needs_proc = pytest.mark.skipif(not Path("/proc/self/stat").exists(), reason="reads /proc/PID")


@pytest.fixture(scope="module")
def demo_db(tmp_path_factory: pytest.TempPathFactory) -> Path:
    db = tmp_path_factory.mktemp("interrupt") / "demo.db"
    run_demo(db, io.StringIO())
    return db


@pytest.fixture
def runaway_control(tmp_path: Path) -> Path:
    """A folder of controls holding one that never ends."""
    folder = tmp_path / "controls"
    folder.mkdir()
    (folder / "runaway.sql").write_text(
        "-- id: runaway\n-- title: Never ends\n-- severity: high\n-- description: Counts forever.\n"
        "-- remediation: None.\n"
        f"{ENDLESS}\nSELECT 'r' AS resource, 'ok' AS status, 'Counted.' AS reason, "
        "'123456789012' AS account_id, 'us-east-1' AS region FROM n WHERE i < 0\n"
    )
    return folder


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of a process so far."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def wait_until_busy(pid: int, baseline: float, *, more: float = 0.5, timeout: float = 30) -> None:
    """Wait until the process has used ``more`` CPU seconds since ``baseline``: it is computing."""
    deadline = time.monotonic() + timeout
    while cpu_seconds(pid) < baseline + more:
        assert time.monotonic() < deadline, "the process never got busy"
        time.sleep(0.05)


def wait_until_open(process: subprocess.Popen, path: Path, timeout: float = 30) -> None:
    """Wait until the process holds ``path`` open (it has opened the snapshot)."""
    fds = Path(f"/proc/{process.pid}/fd")
    deadline = time.monotonic() + timeout
    while True:
        assert process.poll() is None, f"the CLI ended early: {process.communicate()}"
        try:
            if any(os.path.realpath(fd) == str(path.resolve()) for fd in fds.iterdir()):
                return
        except FileNotFoundError:  # an fd closed while we listed them
            pass
        assert time.monotonic() < deadline, f"the CLI never opened {path}"
        time.sleep(0.02)


def busy_in_sql(process: subprocess.Popen, db: Path) -> None:
    """Wait until the CLI runs its statement: it opened the snapshot, then kept computing."""
    wait_until_open(process, db)
    wait_until_busy(process.pid, cpu_seconds(process.pid))


def interrupt(process: subprocess.Popen) -> tuple[int, str, str]:
    """Ctrl-C; the exit code and output, once the process ended (or a failure if it does not)."""
    process.send_signal(signal.SIGINT)
    try:
        out, err = process.communicate(timeout=STOPS_WITHIN)
    except subprocess.TimeoutExpired:
        process.kill()
        out, err = process.communicate()
        pytest.fail(f"still running {STOPS_WITHIN}s after Ctrl-C\n{err}")
    return process.returncode, out, err


def assert_interrupted(code: int, out: str, err: str) -> None:
    assert code == 130, (code, out, err)
    # click closes the terminal's "^C" echo with a newline first.
    assert err.strip() == "bedrock-sql: interrupted", err
    assert out == ""


def assert_timed_out(result: subprocess.CompletedProcess, seconds: str) -> str:
    assert result.returncode == 2, describe(result)
    lines = result.stderr.splitlines()
    assert len(lines) == 1, describe(result)
    assert lines[0].startswith("bedrock-sql: error: "), lines[0]
    assert f"stopped after {seconds}s (--timeout {seconds})" in lines[0], lines[0]
    return lines[0]


# --- Ctrl-C -------------------------------------------------------------------------------


@needs_proc
def test_ctrl_c_stops_a_runaway_query(demo_db: Path, tmp_path: Path) -> None:
    process = start_cli(["--db", str(demo_db), "query", ENDLESS_COUNT], cwd=tmp_path, env=cli_env())
    busy_in_sql(process, demo_db)
    assert_interrupted(*interrupt(process))


@needs_proc
def test_ctrl_c_stops_a_runaway_control(demo_db: Path, tmp_path: Path, runaway_control: Path) -> None:
    process = start_cli(
        ["--db", str(demo_db), "check", "runaway", "--queries", str(runaway_control)], cwd=tmp_path, env=cli_env()
    )
    busy_in_sql(process, demo_db)
    assert_interrupted(*interrupt(process))


@needs_proc
def test_ctrl_c_in_the_shell_returns_to_its_prompt(demo_db: Path) -> None:
    """apsw's shell stops the statement on KeyboardInterrupt; our checkpoints make it come."""
    controller, terminal = pty.openpty()
    process = subprocess.Popen(
        cli_command("--db", str(demo_db), "shell"), stdin=terminal, stdout=terminal, stderr=terminal,
        env=cli_env(TERM="dumb"), close_fds=True,
    )
    os.close(terminal)
    seen = bytearray()

    def read_until(marker: bytes, timeout: float = STOPS_WITHIN) -> None:
        deadline = time.monotonic() + timeout
        while marker not in seen:
            remaining = deadline - time.monotonic()
            ready, _, _ = select.select([controller], [], [], max(remaining, 0))
            assert ready, f"no {marker!r} within {timeout}s; the shell said: {bytes(seen)!r}"
            seen.extend(os.read(controller, 4096))

    try:
        read_until(b"sqlite> ")
        idle = cpu_seconds(process.pid)
        del seen[:]
        os.write(controller, ENDLESS_COUNT.encode() + b";\n")
        wait_until_busy(process.pid, idle)
        process.send_signal(signal.SIGINT)  # what the terminal sends on Ctrl-C
        read_until(b"sqlite> ")  # the prompt is back
        del seen[:]
        os.write(controller, b"SELECT 6 * 7 AS answer;\n")
        read_until(b"42")  # and the shell still answers
        os.write(controller, b".quit\n")
        assert process.wait(timeout=STOPS_WITHIN) == 0
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
        os.close(controller)


# --- --timeout ----------------------------------------------------------------------------


def test_timeout_stops_a_runaway_query(demo_db: Path, tmp_path: Path) -> None:
    result = run_cli(["--db", str(demo_db), "query", "--timeout", "1", ENDLESS_COUNT], cwd=tmp_path, env=cli_env())
    assert_timed_out(result, "1")
    assert result.stdout == ""


def test_timeout_after_streamed_rows_says_they_are_incomplete(demo_db: Path, tmp_path: Path) -> None:
    """csv streams: the rows written before the stop stay on stdout, and exit 2 and the
    line on stderr tell the consumer they are not the whole result."""
    result = run_cli(
        ["--db", str(demo_db), "query", "-o", "csv", "--timeout", "0.5", f"{ENDLESS} SELECT i FROM n"],
        cwd=tmp_path, env=cli_env(),
    )
    line = assert_timed_out(result, "0.5")
    assert "incomplete" in line
    rows = result.stdout.splitlines()
    assert rows[0] == "i" and rows[1:4] == ["1", "2", "3"]


def test_timeout_stops_a_runaway_control(demo_db: Path, tmp_path: Path, runaway_control: Path) -> None:
    result = run_cli(
        ["--db", str(demo_db), "check", "--timeout", "1", "--queries", str(runaway_control), "runaway", "-o", "csv"],
        cwd=tmp_path, env=cli_env(),
    )
    line = assert_timed_out(result, "1")
    assert "control runaway" in line


def test_timeout_leaves_quick_statements_alone(demo_db: Path, tmp_path: Path) -> None:
    result = run_cli(
        ["--db", str(demo_db), "query", "-o", "csv", "--timeout", "30", "SELECT count(*) AS n FROM aws_kms_key"],
        cwd=tmp_path, env=cli_env(),
    )
    assert result.returncode == 0, describe(result)
    assert result.stdout.splitlines() == ["n", "9"]


@pytest.mark.parametrize("command", ["query", "check"])
@pytest.mark.parametrize("value", ["0", "-1", "soon", "nan", "inf", "1e300"])
def test_timeout_must_be_a_positive_number(capsys, demo_db: Path, command: str, value: str) -> None:
    args = ["--db", demo_db, command, "--timeout", value] + (["SELECT 1"] if command == "query" else [])
    code, out, err = run_main(capsys, *args)
    assert code == 2 and out == ""
    assert len(err.splitlines()) == 1 and "--timeout" in err, err


# --- in process: the guard itself -----------------------------------------------------------


@contextmanager
def watchdog(connection) -> Iterator[threading.Event]:
    """Interrupt the connection's statement should it still run after ``STOPS_WITHIN`` s.

    In process, nothing else could end a statement the guard fails to stop (pytest-timeout's
    alarm waits for SQLite like any signal handler): the test fails on the event instead.
    """
    bitten = threading.Event()

    def bite() -> None:
        bitten.set()
        connection.interrupt()

    timer = threading.Timer(STOPS_WITHIN, bite)
    timer.start()
    try:
        yield bitten
    finally:
        timer.cancel()
        timer.join()


def test_a_timed_out_connection_answers_the_next_statement(demo_db: Path) -> None:
    before = signal.getsignal(signal.SIGALRM)
    with snapshot_connection(demo_db, timeout=0.3) as connection:
        with watchdog(connection) as bitten, pytest.raises(StatementTimeout, match=r"stopped after 0.3s"):
            list(run_query(connection, ENDLESS_COUNT).rows)
        assert not bitten.is_set(), "the statement ran on until the watchdog interrupted it"
        assert list(run_query(connection, "SELECT 1").rows) == [(1,)]
    # The alarm handler is given back (pytest-timeout's, when it runs with the signal method).
    assert signal.getsignal(signal.SIGALRM) == before


def test_an_alarm_that_is_not_ours_goes_to_its_owner(demo_db: Path) -> None:
    """SIGALRM may belong to someone else (pytest-timeout): their alarm reaches them even
    while a statement of ours is timed, and stops it their way."""

    class TheirAlarm(Exception):
        pass

    def theirs(signum, frame):
        raise TheirAlarm()

    previous = signal.signal(signal.SIGALRM, theirs)
    try:
        with snapshot_connection(demo_db, timeout=60) as connection:
            signal.setitimer(signal.ITIMER_REAL, 0.3)
            with watchdog(connection) as bitten, pytest.raises(TheirAlarm):
                list(run_query(connection, ENDLESS_COUNT).rows)
            assert not bitten.is_set(), "their alarm waited until the watchdog interrupted the statement"
            assert signal.getsignal(signal.SIGALRM) is theirs
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)


# --- live: the statement waits on AWS -------------------------------------------------------


class HoldListings:
    """A proxy rule holding every ListCustomModels request until released (or 60 s)."""

    def __init__(self) -> None:
        self.held = threading.Event()
        self.release = threading.Event()
        self.holding = 0  # requests held right now
        self._lock = threading.Lock()

    def __call__(self, request: AwsRequest):
        if request.operation == "ListCustomModels":
            with self._lock:
                self.holding += 1
            self.held.set()
            self.release.wait(60)
            with self._lock:
                self.holding -= 1
        return None


@pytest.fixture
def held_listing(server_session: boto3.Session, moto_url: str):
    seed_models(server_session, "us-east-1", 2, endpoint_url=moto_url)
    rule = HoldListings()
    with AwsProxy(moto_url, rule) as proxy:
        try:
            yield proxy, rule
        finally:
            rule.release.set()


LIVE_QUERY = ["query", "--live", "--region", "us-east-1", "SELECT count(*) FROM aws_bedrock_custom_model"]


def test_ctrl_c_stops_a_live_query_waiting_on_aws(held_listing, tmp_path: Path) -> None:
    proxy, rule = held_listing
    process = start_cli(LIVE_QUERY, cwd=tmp_path, env=cli_env(proxy.url))
    try:
        assert rule.held.wait(30), "the query never listed the models"
        # The call stays held: the CLI must not wait for it to come back.
        assert_interrupted(*interrupt(process))
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()


def test_timeout_stops_a_live_query_waiting_on_aws(held_listing, tmp_path: Path) -> None:
    proxy, rule = held_listing
    result = run_cli(["query", "--timeout", "1", *LIVE_QUERY[1:]], cwd=tmp_path, env=cli_env(proxy.url),
                     timeout=STOPS_WITHIN + 10)
    assert rule.held.is_set()
    assert_timed_out(result, "1")
    assert result.stdout == ""


def test_a_live_timeout_gives_up_the_aws_work(held_listing, monkeypatch: pytest.MonkeyPatch) -> None:
    """In process: the statement stops, and the engine behind it stops calling AWS."""
    import bedrock_sql.sql as sql_module

    proxy, rule = held_listing
    scopes = []
    resolve = sql_module.resolve_scope
    monkeypatch.setattr(sql_module, "resolve_scope", lambda options: scopes.append(resolve(options)) or scopes[-1])
    options = AwsOptions(regions=("us-east-1", "eu-west-1"), endpoint_url=proxy.url)
    # Should the timeout not act while the statement waits, AWS answers after a while and
    # the statement ends without it.
    answer_late = threading.Timer(STOPS_WITHIN, rule.release.set)
    answer_late.start()
    try:
        with pytest.raises(StatementTimeout):
            with live_connection(options, ErrorLog(), timeout=0.5) as connection:
                list(run_query(connection, "SELECT count(*) FROM aws_bedrock_custom_model").rows)
        assert rule.holding, "the statement stopped only once AWS answered"
    finally:
        answer_late.cancel()
    (scope,) = scopes
    assert scope.factory.stopping.is_set()  # backoffs and queued calls give up at once
