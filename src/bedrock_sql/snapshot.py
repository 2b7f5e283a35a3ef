"""The snapshot: one SQLite file, written atomically by the collector, read-only to queries.

Layout: one plain table per provider (typed columns, one row per key -- a UNIQUE index --,
indexes on the join keys), plus ``bedrock_sql_errors`` (every AWS failure that cost data: a
resource that could not be read is an error there, never missing) and ``bedrock_sql_runs``
(whose notes name resources deleted between list and get, and duplicates dropped).
"""

from __future__ import annotations

import functools
import glob
import json
import os
import re
import socket
import stat
import tempfile
import uuid
from dataclasses import dataclass, replace
from datetime import datetime, timezone
from pathlib import Path
from typing import Callable, Iterable
from urllib.parse import quote

import apsw

from . import __version__
from .accounts import Scope, record_failed_accounts
from .aws import DEFAULT_MAX_WORKERS, Unit
from .engine import ERROR_COLUMNS, Engine, ErrorLog, ErrorRecord
from .errors import UserError
from .gc_tuning import fewer_gc_passes
from .kms_need import DEFAULT_KMS_KEY_MODE, KMS_KEY_MODES, NOTE_ALL, collect_by_need
from .model_context import DEFAULT_MODEL_CONTEXT, context_by_need, context_notes
from .providers import TABLES
from .providers.base import TEXT, Column, Table, iso_utc
from .snapshot_file import check_replaceable, mark_as_snapshot, own_file
from .vtable import register

ERRORS_TABLE = "bedrock_sql_errors"
RUNS_TABLE = "bedrock_sql_runs"

ERROR_TABLE_COLUMNS = [
    Column("account_id", TEXT, "The account whose call failed."),
    Column("region", TEXT, "The region whose call failed."),
    Column("table_name", TEXT, "The table that lost data."),
    Column("operation", TEXT, "The AWS API that failed (e.g. ListCustomModels)."),
    Column("error_code", TEXT, "The AWS error code (e.g. AccessDeniedException)."),
    Column("message", TEXT, "The error message."),
    Column("occurred_at", TEXT, "When it failed (ISO-8601 UTC)."),
    Column("resource", TEXT, "The resource whose details failed; NULL when the whole listing failed."),
]
assert tuple(c.name for c in ERROR_TABLE_COLUMNS) == ERROR_COLUMNS

RUN_TABLE_COLUMNS = [
    Column("run_id", TEXT, "A unique id for the collect run."),
    Column("started_at", TEXT, "When the run started (ISO-8601 UTC)."),
    Column("finished_at", TEXT, "When the run finished (ISO-8601 UTC)."),
    Column("status", TEXT, "complete, or partial when some calls failed (see bedrock_sql_errors)."),
    Column("accounts", TEXT, "JSON array of the account IDs scanned."),
    Column("regions", TEXT, "JSON array of the regions scanned."),
    Column("tool_version", TEXT, "The bedrock-sql version that collected."),
    Column("api_calls", "INTEGER", "How many AWS API calls the run made to collect (STS and Organizations calls made to reach the accounts are not counted)."),
    Column("notes", TEXT, "JSON array of things worth knowing (e.g. regions without Bedrock, skipped accounts)."),
]

# Descriptions of the bookkeeping tables, for `schema`.
META_TABLES: dict[str, tuple[str, list[Column]]] = {
    ERRORS_TABLE: ("Every AWS failure that cost data; controls read it to answer error.", ERROR_TABLE_COLUMNS),
    RUNS_TABLE: ("The collect run that produced this snapshot.", RUN_TABLE_COLUMNS),
}


def _create_sql(name: str, columns: list[Column]) -> str:
    return f"CREATE TABLE {name}(" + ", ".join(f'"{c.name}" {c.type}' for c in columns) + ")"


@dataclass
class CollectResult:
    path: Path
    row_counts: dict[str, int]
    errors: list[ErrorRecord]
    scope: Scope
    api_calls: int

    @property
    def status(self) -> str:
        return "partial" if self.errors else "complete"

    def failed_units(self) -> list[str]:
        return sorted({f"{e.account_id}/{e.region} {e.table_name} ({e.operation}: {e.error_code})" for e in self.errors})


def _now() -> str:
    return iso_utc(datetime.now(timezone.utc))


# The partial file's name: ".NAME.HOST.PID.partial". HOST and PID say whose collect it is, so
# one killed is cleaned up by the next (_remove_stale_partials). Anyone can guess that name and
# create it first; then ".NAME.HOST.PID.RANDOM.partial" is used (mkstemp's), which nobody can.
_PARTIAL_SUFFIX = ".partial"
# What follows "HOST.": the PID, then mkstemp's random letters when the plain name was taken.
_PARTIAL_TAIL = re.compile(r"([0-9]+)(?:\.[a-z0-9_]+)?", re.ASCII)


def _host() -> str:
    """This machine's name as it goes into a file name: a host name may hold any byte but
    NUL, and a '/' would put the partial file in another folder."""
    return re.sub(r"[^A-Za-z0-9._-]", "_", socket.gethostname(), flags=re.ASCII) or "localhost"


def _partial_prefix(target: Path) -> str:
    return f".{target.name}.{_host()}.{os.getpid()}."


def _partial_pid(name: str, target: Path, host: str) -> int | None:
    """The PID in ``name`` when it is a partial file of ``target`` written on ``host``, else None."""
    head = f".{target.name}.{host}."
    if not (name.startswith(head) and name.endswith(_PARTIAL_SUFFIX)):
        return None
    match = _PARTIAL_TAIL.fullmatch(name[len(head) : -len(_PARTIAL_SUFFIX)])
    return int(match.group(1)) if match else None


def _running(pid: int) -> bool:
    """Whether process ``pid`` exists (0, our process group to kill(), counts as running)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True  # alive, someone else's
    except OverflowError:
        return False  # past any PID the system can have
    return True


def _remove_stale_partials(target: Path) -> None:
    """Remove partial files left by this user's collects that were killed (their process is gone).

    Only regular files the user owns are removed: a name someone else made (a directory, a
    symlink, another user's file, in a shared folder) is theirs, left alone and no error.
    """
    host, me = _host(), os.geteuid()
    # Escaped: a snapshot named like "audit[1].db" must not be read as a glob pattern.
    for leftover in target.parent.glob(f".{glob.escape(target.name)}.*{_PARTIAL_SUFFIX}"):
        pid = _partial_pid(leftover.name, target, host)
        if pid is None or _running(pid):
            continue
        try:
            info = os.lstat(leftover)
            if stat.S_ISREG(info.st_mode) and info.st_uid == me:
                leftover.unlink()
        except OSError:
            pass  # gone meanwhile, or not ours to remove: it only takes room


def _stamp(partial: Path, target: Path) -> None:
    """Mark the partial file as a bedrock-sql snapshot (see :mod:`bedrock_sql.snapshot_file`)."""
    try:
        mark_as_snapshot(partial)
    except apsw.Error as exc:
        partial.unlink(missing_ok=True)
        raise UserError(f"cannot write a snapshot at {target}: {_sqlite_message(exc)}") from None


def collect(
    scope: Scope,
    db_path: str | os.PathLike,
    *,
    max_workers: int = DEFAULT_MAX_WORKERS,
    tables: dict[str, Table] = TABLES,
    on_unit_done: Callable[[str, Unit], None] | None = None,
    force: bool = False,
    errors: ErrorLog | None = None,
    kms_keys: str = DEFAULT_KMS_KEY_MODE,
    model_context: str = DEFAULT_MODEL_CONTEXT,
) -> CollectResult:
    """Collect every table from ``scope`` into a new snapshot at ``db_path``.

    ``kms_keys``: "needed" (only the keys and aliases Bedrock resources name, see
    :mod:`bedrock_sql.kms_need`) or "all" (every key and alias of every unit).
    ``model_context``: "needed" (import and copy jobs, provisioned throughputs and custom
    model deployments listed where models are, see :mod:`bedrock_sql.model_context`) or "all".

    The new snapshot is written to a partial file beside the target (created 0600: it maps
    an estate's keys and models) and renamed over it only once complete, so an interrupted
    or killed collect leaves the previous snapshot whole. An existing ``db_path`` that is
    not a bedrock-sql snapshot is refused (:class:`UserError`) unless ``force``.
    """
    by_need = context_by_need(model_context)  # a bad mode fails before anything is written
    target = Path(db_path).absolute()
    replaceable = functools.partial(check_replaceable, db_path, force=force)
    partial = open_partial(target, replaceable)

    errors = errors if errors is not None else ErrorLog()  # given: progress counts them as they come
    # Accounts that could not be reached: one row per table and region, as a failed listing.
    record_failed_accounts(scope, errors, tables)
    engine = Engine(scope, errors, max_workers=max_workers, on_unit_done=on_unit_done)
    started = _now()
    try:
        with fewer_gc_passes():
            counts, notes, records, api_calls = _collect_into(partial, scope, engine, errors, tables, kms_keys,
                                                              by_need, started)
        publish(partial, target, replaceable)
    except BaseException:
        # Give up at once: do not wait for calls still in flight (Ctrl-C must be prompt).
        engine.interrupt()
        partial.unlink(missing_ok=True)
        raise
    engine.close()
    # The summary prints the scope's notes: the run's own (duplicates, vanished) join them.
    return CollectResult(target, counts, records, replace(scope, notes=notes), api_calls)


def _collect_into(partial: Path, scope: Scope, engine: Engine, errors: ErrorLog, tables: dict[str, Table],
                  kms_keys: str, by_need: bool, started: str):
    """Fill the partial snapshot from the live tables; its counts, notes, errors and calls."""
    # NOFOLLOW: ATTACH opens with the connection's flags, and must not write through a symlink
    # put at the partial file's name since it was made.
    connection = apsw.Connection(":memory:", flags=apsw.SQLITE_OPEN_READWRITE | apsw.SQLITE_OPEN_NOFOLLOW)
    register(connection, engine, tables)
    try:
        connection.execute("ATTACH ? AS snapshot", (own_file(partial),))
    except apsw.CantOpenError:
        raise UserError(f"cannot write a snapshot: {partial} was replaced (by a symlink?) as collect began") from None
    # The partial file is thrown away on failure, so no journal is needed while writing.
    # One statement each, fetched: apsw runs a script's next statement only once the
    # rows of the one before (journal_mode answers one) have been read.
    connection.execute("PRAGMA snapshot.journal_mode=OFF").fetchall()
    connection.execute("PRAGMA snapshot.synchronous=OFF").fetchall()
    with connection:
        counts, kms_notes = _write_tables(connection, engine, tables, kms_keys, by_need)
        notes = [*scope.notes, *kms_notes, *context_notes(engine, tables), *_run_notes(engine, tables, counts)]
        create_meta_tables(connection, "snapshot")
        records = errors.records()
        connection.executemany(
            f"INSERT INTO snapshot.{ERRORS_TABLE} VALUES ({', '.join('?' * len(ERROR_COLUMNS))})",
            [r.as_row() for r in records],
        )
        api_calls = scope.factory.total_calls()
        connection.execute(
            f"INSERT INTO snapshot.{RUNS_TABLE} VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
            (
                str(uuid.uuid4()),
                started,
                _now(),
                "partial" if records else "complete",
                json.dumps(sorted(a.account_id for a in scope.accounts)),
                json.dumps(scope.regions),
                __version__,
                api_calls,
                json.dumps(notes, ensure_ascii=False),
            ),
        )
        finish_snapshot(connection, "snapshot", tables)
    connection.execute("DETACH snapshot")
    connection.close()
    return counts, notes, records, api_calls


def open_partial(target: Path, replaceable: Callable[[], None]) -> Path:
    """A new, empty snapshot file beside ``target`` (absolute) to write into: created 0600
    (it maps an estate's keys and models) and stamped as bedrock-sql's. ``replaceable()``
    raises :class:`UserError` when ``target`` must not be replaced (asked again by
    :func:`publish`). Collect and merge write this way; the caller removes the file on failure.
    """
    if not target.parent.is_dir():
        raise UserError(f"cannot write a snapshot at {target}: no directory {target.parent}")
    replaceable()
    _remove_stale_partials(target)
    try:
        partial = _create_partial(target)
    except OSError as exc:
        raise UserError(f"cannot write a snapshot at {target}: {exc.strerror}") from None
    _stamp(partial, target)
    return partial


def _create_partial(target: Path) -> Path:
    """A new empty file, 0600, beside ``target``, made by us alone (O_EXCL: a name planted
    there, a symlink included, is never opened or followed)."""
    prefix = _partial_prefix(target)
    try:
        name = str(target.with_name(prefix[:-1] + _PARTIAL_SUFFIX))
        fd = os.open(name, os.O_CREAT | os.O_EXCL | os.O_WRONLY | os.O_NOFOLLOW | os.O_CLOEXEC, 0o600)
    except FileExistsError:
        # Taken: by a killed collect whose PID this process now has, or by someone blocking it.
        # mkstemp draws random names (and draws again while they are taken): nobody can guess it.
        fd, name = tempfile.mkstemp(dir=target.parent, prefix=prefix, suffix=_PARTIAL_SUFFIX)
    try:
        os.fchmod(fd, 0o600)  # whatever the umask: SQLite must write it, nobody else read it
    except OSError:
        os.unlink(name)
        raise
    finally:
        os.close(fd)
    return Path(name)


def publish(partial: Path, target: Path, replaceable: Callable[[], None]) -> None:
    """Move the complete ``partial`` file over ``target``, durably."""
    _fsync(partial)
    # Checked again: a file that is no snapshot may have appeared there while we wrote.
    replaceable()
    os.replace(partial, target)
    _fsync(target.parent)


def create_table(connection: apsw.Connection, schema: str, table: Table) -> None:
    """``table`` in database ``schema``, with the UNIQUE index that keeps one row per key."""
    connection.execute(table.create_sql(f"{schema}.{table.name}"))
    columns = ", ".join(f'"{c}"' for c in table.key)
    connection.execute(f"CREATE UNIQUE INDEX {schema}.key_{table.name} ON {table.name}({columns})")


def create_meta_tables(connection: apsw.Connection, schema: str) -> None:
    for name, (_, columns) in META_TABLES.items():
        connection.execute(_create_sql(f"{schema}.{name}", columns))


def finish_snapshot(connection: apsw.Connection, schema: str, tables: dict[str, Table] = TABLES) -> None:
    """The join indexes and the views, once the rows of database ``schema`` are in."""
    for table in tables.values():
        for column in table.indexes:
            if (column,) == table.key:
                continue  # its UNIQUE index serves the joins
            connection.execute(f"CREATE INDEX {schema}.idx_{table.name}_{column} ON {table.name}({column})")
    connection.execute(f"CREATE INDEX {schema}.idx_{ERRORS_TABLE}_unit ON {ERRORS_TABLE}(account_id, region)")
    from .views import write_views  # here: views imports this module

    write_views(connection, schema)  # for SQLite tools that open the file themselves


def _write_tables(
    connection: apsw.Connection, engine: Engine, tables: dict[str, Table], kms_keys: str = DEFAULT_KMS_KEY_MODE,
    context_by_need: bool = True,
) -> tuple[dict[str, int], list[str]]:
    """Create every table in the snapshot, one row per key, and fill them.

    With ``kms_keys="all"`` every table of a unit is collected at the same time
    (:meth:`Engine.scan_all`); by need, the Bedrock tables first, then the KMS aliases and
    keys they name (:func:`kms_need.collect_by_need`); ``context_by_need``: the tables
    describing models listed where models are (:mod:`model_context`). Rows are written as they come, in batches. The UNIQUE index exists before the first row, so a
    resource AWS answers twice (listed on two pages while the listing moved) is stored once:
    the first row is kept, and the count of dropped duplicates goes to the run's notes
    (:func:`_run_notes`). Returns the rows stored per table, and the notes saying which
    KMS keys were collected.
    """
    inserts = {}
    for table in tables.values():
        create_table(connection, "snapshot", table)
        marks = ", ".join("?" * len(table.column_names))
        inserts[table.name] = f"INSERT OR IGNORE INTO snapshot.{table.name} VALUES ({marks})"
    counts = dict.fromkeys(tables, 0)
    batches: dict[str, list[tuple]] = {name: [] for name in tables}

    def write(name: str) -> None:
        before = connection.total_changes()
        connection.executemany(inserts[name], batches[name])
        counts[name] += connection.total_changes() - before
        batches[name].clear()

    def store(rows: Iterable[tuple[Table, tuple]]) -> None:
        for table, row in rows:
            batch = batches[table.name]
            batch.append(row)
            if len(batch) >= _WRITE_BATCH:
                write(table.name)
        for name in tables:
            write(name)

    if kms_keys == "all":
        store(engine.scan_all(tables.values(), context_by_need=context_by_need))
        return counts, [NOTE_ALL]
    if kms_keys != "needed":
        raise ValueError(f"kms_keys must be one of {KMS_KEY_MODES}, not {kms_keys!r}")
    return counts, collect_by_need(connection, engine, tables, store, context_by_need=context_by_need)


_WRITE_BATCH = 500  # rows per INSERT batch: few statements, little held


def _run_notes(engine: Engine, tables: dict[str, Table], counts: dict[str, int]) -> list[str]:
    """What the run found worth telling beside its rows: resources listed but deleted before
    their details were read, and duplicate answers dropped (never silent)."""
    notes = []
    for name, resources in sorted(engine.vanished.items()):
        shown = ", ".join(sorted(resources)[:10]) + (f" and {len(resources) - 10} more" if len(resources) > 10 else "")
        notes.append(f"{name}: {len(resources)} resource(s) listed but gone before their details were read: {shown}")
    for name, stored in counts.items():
        dropped = engine.rows_streamed[name] - stored
        if dropped > 0:
            key = ", ".join(tables[name].key)
            notes.append(f"{name}: {dropped} duplicate row(s) answered by AWS were dropped (one row per {key} is kept)")
    return notes


def _fsync(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


# --- reading ------------------------------------------------------------------------------

_READ_ONLY_ACTIONS = {
    apsw.SQLITE_SELECT,
    apsw.SQLITE_READ,
    apsw.SQLITE_FUNCTION,
    apsw.SQLITE_RECURSIVE,
}


# Pragmas whose argument names what to read (a table, an index), not a value to set:
# `PRAGMA table_info(t)`, `SELECT * FROM pragma_table_info('t')`.
_READING_PRAGMAS = frozenset(
    {
        "table_info",
        "table_xinfo",
        "index_list",
        "index_info",
        "index_xinfo",
        "foreign_key_list",
        "foreign_key_check",
        "integrity_check",
        "quick_check",
    }
)


def _read_only_authorizer(action, arg1, arg2, database, trigger):
    """Refuse anything but reading, even on temp objects or ATTACHed files.

    The file is also opened read-only; the authorizer makes the refusal explicit and
    covers what read-only mode alone would allow (ATTACH of another, writable file).
    """
    if action in _READ_ONLY_ACTIONS:
        return apsw.SQLITE_OK
    if action == apsw.SQLITE_PRAGMA and (arg2 is None or (arg1 or "").lower() in _READING_PRAGMAS):
        return apsw.SQLITE_OK  # reading a pragma, not setting one
    if action == apsw.SQLITE_TRANSACTION:
        return apsw.SQLITE_OK
    return apsw.SQLITE_DENY


def open_snapshot(db_path: str | os.PathLike) -> apsw.Connection:
    """Open a snapshot read-only, or raise :class:`UserError` saying what to do."""
    path = Path(db_path)
    if not path.is_file():
        from .demo import missing_snapshot_hint  # here: demo imports this module

        raise UserError(f"no snapshot at {path}: run bedrock-sql collect{missing_snapshot_hint(path)}")
    uri = f"file:{quote(str(path.absolute()))}?mode=ro"
    try:
        connection = apsw.Connection(uri, flags=apsw.SQLITE_OPEN_READONLY | apsw.SQLITE_OPEN_URI)
        connection.execute(f"SELECT 1 FROM {RUNS_TABLE} LIMIT 1").fetchall()
    except apsw.Error as exc:
        raise UserError(
            f"{path} is not a readable bedrock-sql snapshot ({_sqlite_message(exc)}): point --db at a snapshot, "
            f"or collect one elsewhere (collect does not replace a file that is no snapshot unless given --force)"
        ) from None
    connection.authorizer = _read_only_authorizer
    return connection


def _sqlite_message(exc: apsw.Error) -> str:
    return str(exc).split(": ", 1)[-1] if ": " in str(exc) else str(exc)


def table_counts(connection: apsw.Connection) -> list[tuple[str, int]]:
    names = [
        row[0]
        for row in connection.execute(
            "SELECT name FROM sqlite_schema WHERE type = 'table' AND name NOT LIKE 'sqlite_%' ORDER BY name"
        )
    ]
    return [(name, connection.execute(f'SELECT count(*) FROM "{name}"').fetchone()[0]) for name in names]
