"""Running an analyst's SQL: one statement, read-only, on the snapshot or live on AWS, stopped
by Ctrl-C or a timeout (:class:`StatementGuard`), within limits of size and memory
(:func:`limit_resources`)."""

from __future__ import annotations

import signal
import threading
import weakref
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Callable, Iterator

import apsw
import apsw.ext

from .accounts import record_failed_accounts, resolve_scope
from .aws import AwsOptions
from .engine import Engine, ErrorLog
from .errors import UserError
from .providers import TABLES
from .snapshot import _read_only_authorizer, open_snapshot
from .sql_functions import install_functions
from .views import install_views
from .vtable import register


@dataclass
class Result:
    columns: list[str]
    rows: Iterator[tuple]


def run_query(connection: apsw.Connection, sql: str, bindings=None) -> Result:
    """Prepare ``sql`` (exactly one statement) and return its columns and a row iterator.

    Bad SQL and refused writes become :class:`UserError` with SQLite's own words.
    """
    if not _has_statement(sql):  # blank, or only comments
        raise UserError("no SQL given")
    try:
        details = apsw.ext.query_info(connection, sql, bindings)
    except apsw.Error as exc:
        raise _sql_error(exc) from None
    if details.query_remaining and _has_statement(details.query_remaining):
        raise UserError("give one SQL statement at a time")
    columns = [name for name, _type in (details.description or ())]
    guard = _GUARDS.get(connection)
    timed = guard is not None and guard.start()
    try:
        cursor = connection.execute(details.first_query, bindings)
    except BaseException as exc:
        if timed:
            guard.stop()
        if isinstance(exc, apsw.Error):
            raise _sql_error(exc, guard) from None
        raise
    return Result(columns, _rows(cursor, guard if timed else None))


def _rows(cursor, timed_by: StatementGuard | None) -> Iterator[tuple]:
    try:
        yield from cursor
    except apsw.Error as exc:  # e.g. a runtime error half-way through (bad json, ...)
        raise _sql_error(exc, timed_by) from None
    finally:  # the statement is over (all read, or abandoned): its clock stops
        if timed_by is not None:
            timed_by.stop()


def _sql_error(exc: apsw.Error, guard: StatementGuard | None = None) -> UserError:
    if isinstance(exc, apsw.InterruptError) and guard is not None and guard.time_is_up:
        return guard.timeout_error()  # the guard's timer interrupted it
    if isinstance(exc, apsw.AuthError):
        # Refused at prepare, or while running (VACUUM INTO attaches its target then).
        return UserError("queries are read-only: only SELECT (and reading PRAGMAs) is allowed")
    return UserError(f"SQL error: {sql_message(exc)}")


def _has_statement(text: str) -> bool:
    """Whether ``text`` holds anything but whitespace, semicolons and comments.

    (``apsw.complete`` is no test of that: it is False for ``SELECT 2`` without a final
    semicolon, which let ``SELECT 1; SELECT 2`` silently drop its second statement.)
    """
    i, n = 0, len(text)
    while i < n:
        if text[i].isspace() or text[i] == ";":
            i += 1
        elif text.startswith("--", i):
            end = text.find("\n", i)
            i = n if end < 0 else end + 1
        elif text.startswith("/*", i):
            end = text.find("*/", i + 2)
            i = n if end < 0 else end + 2
        else:
            return True
    return False


def sql_message(exc: apsw.Error) -> str:
    text = str(exc)
    # apsw prefixes the class name ("SQLError: no such table: x"); keep SQLite's words.
    prefix = f"{type(exc).__name__}: "
    return text[len(prefix):] if text.startswith(prefix) else text


# --- stopping a statement: Ctrl-C and --timeout ----------------------------------------------

# SQLite virtual-machine steps between two checkpoints of a StatementGuard: a fraction of a
# millisecond of work, so Ctrl-C and --timeout act at once; the cost is within the noise of
# a heavy query (benchmarks/bench_statement_guard.py).
CHECKPOINT_STEPS = 10_000

_GUARDS: weakref.WeakKeyDictionary[apsw.Connection, StatementGuard] = weakref.WeakKeyDictionary()


class StatementTimeout(UserError):
    """A statement ran longer than ``--timeout``."""


def checked_timeout(seconds: float | None) -> float | None:
    """``seconds`` if it can time a statement (None: no timeout), else :class:`UserError`."""
    if seconds is not None and not 0 < seconds <= threading.TIMEOUT_MAX:  # NaN fails too
        raise UserError(f"--timeout must be more than 0 and at most {threading.TIMEOUT_MAX:.0f} seconds, not {seconds:g}")
    return seconds


class StatementGuard:
    """Makes the statements of one connection stop on Ctrl-C, and after ``timeout`` seconds each.

    SQLite runs a statement in C with the GIL released, and Python runs its SIGINT handler
    (the one raising KeyboardInterrupt) only when it next executes Python code -- after the
    statement, however long it takes. So a progress handler calls back into Python every
    ``CHECKPOINT_STEPS`` steps: a pending Ctrl-C is raised there, or :class:`StatementTimeout`
    once the timer thread has said time is up, and the exception aborts the statement.

    When time is up the timer thread also

    - interrupts the connection (``sqlite3_interrupt``): SQLite stops the statement at its
      own next check, with no Python involved, so the timeout holds wherever the progress
      handler cannot raise (off the main thread with its checkpoints gone, say);
    - sends SIGALRM to the main thread, whose handler raises there: in Python code that
      runs for long without stepping SQLite (our SQL functions, bedrock_sql.sql_functions,
      rendering rows), and in a ``--live`` statement's wait for AWS answers (the virtual
      tables' row queue). Ctrl-C interrupts that wait by itself. (No interval timer:
      ``ITIMER_REAL`` may belong to someone else, pytest-timeout for one, and an alarm that
      is not ours goes to the handler we replaced. Off the main thread, or without
      ``pthread_kill``, the timeout acts through the checkpoints and the interrupt only.)

    Nothing reaches into a single long call of one of SQLite's C functions: ``instr()`` or
    ``replace()`` of a long needle in a long text is quadratic and checks nothing. The
    length limit (:func:`limit_resources`) bounds those values but not their quadratic time,
    so ``on_overrun``, when given, is called from the timer thread with the
    :class:`StatementTimeout` if the statement is still running ``OVERRUN_GRACE`` seconds
    after its deadline: the CLI then says so and exits, as it does after every timeout
    (a library caller without it waits for the call to return).

    :func:`run_query` starts the clock when it runs a statement and stops it when the rows
    are all read or abandoned.
    """

    def __init__(self, connection: apsw.Connection, timeout: float | None = None,
                 on_overrun: Callable[[StatementTimeout], None] | None = None):
        self.timeout = checked_timeout(timeout)
        self.on_overrun = on_overrun
        self._connection = weakref.ref(connection)  # _GUARDS' value must not keep its key alive
        self._time_is_up = threading.Event()
        self._stopped = threading.Event()  # the running statement's clock was stopped
        self._lock = threading.Lock()  # the timer acts on a statement only while it runs
        self._timer: threading.Timer | None = None
        self._alarm_handler_replaced = False
        self._previous_alarm_handler = None
        connection.set_progress_handler(self._checkpoint, CHECKPOINT_STEPS)
        _GUARDS[connection] = self

    @property
    def time_is_up(self) -> bool:
        return self._time_is_up.is_set()

    def timeout_error(self) -> StatementTimeout:
        return StatementTimeout(
            f"query stopped after {self.timeout:g}s (--timeout {self.timeout:g}); any output before this is incomplete"
        )

    def start(self) -> bool:
        """Start the statement's clock; False when there is none (or it already runs)."""
        if self.timeout is None or self._timer is not None:
            return False
        self._time_is_up.clear()
        self._stopped.clear()
        if hasattr(signal, "pthread_kill") and threading.current_thread() is threading.main_thread():
            self._previous_alarm_handler = signal.signal(signal.SIGALRM, self._on_alarm)
            self._alarm_handler_replaced = True
        self._timer = threading.Timer(self.timeout, self._time_up)
        self._timer.daemon = True
        self._timer.start()
        return True

    def stop(self) -> None:
        with self._lock:  # after this the timer thread interrupts nothing
            timer, self._timer = self._timer, None
            self._stopped.set()
        if timer is None:
            return
        timer.cancel()
        if timer is not threading.current_thread():  # on_overrun may stop it from there
            timer.join()  # after this no alarm of ours can come
        if self._alarm_handler_replaced:
            # signal.signal runs a pending alarm's handler (ours, now a no-op) before it swaps.
            previous = self._previous_alarm_handler
            signal.signal(signal.SIGALRM, previous if previous is not None else signal.SIG_DFL)
            self._alarm_handler_replaced = False

    def _time_up(self) -> None:  # in the timer's thread
        with self._lock:
            if self._stopped.is_set():  # the statement ended just now
                return
            self._time_is_up.set()
            connection = self._connection()
            if connection is not None:
                # No-op unless a statement runs; it cannot reach the next one, which runs
                # only after stop() took the lock.
                connection.interrupt()
            if self._alarm_handler_replaced:
                signal.pthread_kill(threading.main_thread().ident, signal.SIGALRM)
        if self.on_overrun is not None and not self._stopped.wait(OVERRUN_GRACE):
            self.on_overrun(self.timeout_error())  # stuck in one C call: see the class's doc

    def _checkpoint(self) -> bool:
        # Merely running Python code here lets a pending Ctrl-C raise KeyboardInterrupt.
        if self._time_is_up.is_set():
            self._expire()
        return False

    def _on_alarm(self, signum, frame) -> None:
        if self._time_is_up.is_set():
            self._expire()
        elif callable(self._previous_alarm_handler):  # somebody else's alarm
            self._previous_alarm_handler(signum, frame)

    def _expire(self) -> None:
        if self._timer is None:  # the statement ended meanwhile
            return
        self.stop()
        raise self.timeout_error()


# --- what one statement may use ------------------------------------------------------------

# The largest value, in bytes, of any string or BLOB a statement may make or read (and the
# longest statement). The largest value AWS returns into these tables is a KMS key policy,
# at most 32 KB; descriptions are at most 8 KB, 50 tags under 20 KB, Bedrock's
# hyperparameters and data configs a few KB, a snapshot's row a few hundred KB. 64 MiB is
# 2,000 times the largest, and leaves room for aggregates over a large estate
# (group_concat of 500,000 ARNs is about 50 MB). It is what keeps one statement from
# taking the machine: a value costs SQLite its size, and Python up to 15 times that to
# convert and render it (measured: a 100 MB text took 1.5 GB in `query`), so without it
# `SELECT hex(zeroblob(4e8))` took 9.8 GB. A statement over it fails at once with SQLite's
# "string or blob too big".
MAX_VALUE_BYTES = 64 * 1024 * 1024

# SQLite's hard heap limit: allocations past it fail ("out of memory") instead of growing
# the process. It is process-wide (every apsw connection of the process shares it: one
# command runs per process, and a collect's SQLite needs a few MB of page cache), so it
# is only ever lowered to this, never raised past a stricter one set by whoever embeds us.
# It bounds what the length limit does not: many values at the limit in one row or
# expression. Sorts, GROUP BY and DISTINCT stay in a few MB, as SQLite spills them to
# temporary files. No soft heap limit: it never fails an allocation, it only trims page
# caches, so it cannot stop a statement. Python's own memory (the rows a table-format
# output holds before printing) is not SQLite's and not bounded by this.
HEAP_LIMIT_BYTES = 1024 * 1024 * 1024

# How long after its deadline a statement may still run (inside one C call) before the
# guard's on_overrun is called.
OVERRUN_GRACE = 0.5


def limit_resources(connection: apsw.Connection) -> None:
    """The size and memory limits of every ad-hoc statement (query, check, shell, serve's
    preparation, ``--live``) on ``connection``: see :data:`MAX_VALUE_BYTES`,
    :data:`HEAP_LIMIT_BYTES`."""
    connection.limit(apsw.SQLITE_LIMIT_LENGTH, MAX_VALUE_BYTES)
    connection.limit(apsw.SQLITE_LIMIT_SQL_LENGTH, MAX_VALUE_BYTES)
    current = apsw.hard_heap_limit(-1)  # -1 only reads it; 0 is "no limit"
    if current == 0 or current > HEAP_LIMIT_BYTES:
        apsw.hard_heap_limit(HEAP_LIMIT_BYTES)


def install_vocabulary(connection: apsw.Connection) -> None:
    """What every connection speaks besides the tables: the SQL functions (time, key
    policies) and the shared views (bedrock_model_encryption, ...)."""
    install_functions(connection)
    install_views(connection)


@contextmanager
def snapshot_connection(db_path, *, timeout: float | None = None,
                        on_overrun: Callable[[StatementTimeout], None] | None = None) -> Iterator[apsw.Connection]:
    """The snapshot, read-only and within :func:`limit_resources`; each statement stops on
    Ctrl-C, and after ``timeout`` seconds (see :class:`StatementGuard` for ``on_overrun``)."""
    connection = open_snapshot(db_path)
    install_vocabulary(connection)
    limit_resources(connection)
    guard = StatementGuard(connection, timeout, on_overrun)
    try:
        yield connection
    finally:
        guard.stop()
        connection.close()


@contextmanager
def live_connection(
    options: AwsOptions, errors: ErrorLog, *, timeout: float | None = None,
    on_overrun: Callable[[StatementTimeout], None] | None = None,
) -> Iterator[apsw.Connection]:
    """A connection whose tables answer from AWS through the virtual tables.

    Read-only like the snapshot (no ATTACH or VACUUM INTO can write a file), within the
    same limits, and guarded the same way: Ctrl-C or ``timeout`` stops the statement and
    the AWS work behind it.
    """
    scope = resolve_scope(options)
    record_failed_accounts(scope, errors, TABLES)  # accounts that could not be reached
    engine = Engine(scope, errors, max_workers=options.max_workers)
    connection = apsw.Connection(":memory:")
    register(connection, engine, TABLES)
    install_vocabulary(connection)
    connection.authorizer = _read_only_authorizer
    limit_resources(connection)
    guard = StatementGuard(connection, timeout, on_overrun)
    try:
        yield connection
    except BaseException:
        # Ctrl-C, --timeout or an error: give up the queued calls and backoffs now, and do
        # not wait for calls in flight (the CLI exits without them).
        engine.interrupt()
        raise
    finally:
        guard.stop()
        connection.close()
    engine.close()
