"""``bedrock-sql merge OUT SNAPSHOT...``: fold snapshots -- the shards of a ``collect --shard``
run on several machines -- into one.

Every provider table, ``bedrock_sql_errors`` and ``bedrock_sql_runs`` (every run kept: each
account's findings are dated by its own run, see :func:`bedrock_sql.controls.snapshot_run`)
are copied with ATTACH + INSERT ... SELECT, one input at a time (SQLite attaches at most 10
files at once). OUT is written as collect writes a snapshot: to a partial file renamed over
it once whole, 0600, stamped with bedrock-sql's application id, with the same indexes and
views; an interrupted merge leaves OUT untouched.

What would make the merged snapshot lie is refused, one line each (:class:`UserError`):
inputs that are not snapshots, an OUT that is no snapshot, an input lacking a table or column
this version writes, an input holding an account id, region, partition or ARN that is not as
AWS spells it (a shard is a file anyone could have edited, and the remediation script branches
on those values: :func:`bedrock_sql.identifiers.check_snapshot_identifiers`), or a forged tool
version. Unless ``force``: the same account in two inputs, different tool versions, an
incomplete set of shards. With ``force`` overlapping rows keep the first
input's row (each table's UNIQUE key; INSERT OR IGNORE) and the merge says how many were
dropped.
"""

from __future__ import annotations

import functools
import os
import re
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable
from urllib.parse import quote

import apsw

from . import __version__
from .errors import UserError
from .identifiers import check_snapshot_identifiers
from .providers import TABLES
from .shard import Shard, json_list, note_shard
from .snapshot import (
    ERRORS_TABLE,
    META_TABLES,
    RUNS_TABLE,
    _sqlite_message,
    create_meta_tables,
    create_table,
    finish_snapshot,
    open_partial,
    open_snapshot,
    publish,
)
from .snapshot_file import WRITE_OWN_FILE, not_a_snapshot, own_file

Echo = Callable[[str], None]


@dataclass
class _Run:
    run_id: str
    tool_version: str
    accounts: list[str]
    shard: Shard | None


@dataclass
class _Input:
    """One snapshot to merge, as read before anything is written."""

    path: Path
    runs: list[_Run]
    accounts: set[str]  # collected (runs.accounts) or failed (bedrock_sql_errors)
    columns: dict[str, list[str]]  # table -> the columns this version writes and the input has
    extra: list[str] = field(default_factory=list)  # tables and "table.column"s this version does not know

    @property
    def shards(self) -> list[Shard]:
        return [run.shard for run in self.runs if run.shard]

    def describe(self) -> str:
        what = ", ".join(f"shard {s}" for s in self.shards) or "not a shard"
        versions = ", ".join(sorted({r.tool_version for r in self.runs}))
        return f"{self.path}: {what}, {len(self.runs)} run(s), {len(self.accounts)} account(s), bedrock-sql {versions}"


@dataclass
class MergeResult:
    path: Path
    inputs: int
    runs: int
    accounts: int
    row_counts: dict[str, int]
    errors: int
    dropped: dict[str, int]  # table -> overlapping rows dropped (with force)


def merge_snapshots(out: str | os.PathLike, inputs: list[str | os.PathLike], *, force: bool = False,
                    echo: Echo = lambda line: None) -> MergeResult:
    """Merge the snapshots ``inputs`` into a new snapshot at ``out`` (see the module's doc).

    ``echo`` receives progress lines and, with ``force``, what did not fit.
    """
    if not inputs:
        raise UserError("merge needs at least one snapshot to read")
    target = Path(out).absolute()
    replaceable = functools.partial(_check_out, Path(out))
    replaceable()  # before reading the inputs: say so at once
    _check_distinct([Path(p) for p in inputs])
    read = [_read_input(Path(p)) for p in inputs]
    for problem in _problems(read):
        if not force:
            raise UserError(f"{problem}; pass --force to merge anyway")
        echo(f"warning: {problem}; merging anyway (--force)")
    for item in read:
        if item.extra:
            echo(f"Note: {item.path}: table(s) and column(s) this version does not know are left out: {', '.join(item.extra)}")

    partial = open_partial(target, replaceable)
    try:
        counts, errors, dropped = _write(partial, read, echo, where=str(out))
        publish(partial, target, replaceable)
    except BaseException:
        partial.unlink(missing_ok=True)
        raise
    return MergeResult(
        path=target,
        inputs=len(read),
        runs=len({run.run_id for item in read for run in item.runs}),
        accounts=len(set().union(*(item.accounts for item in read))),
        row_counts=counts,
        errors=errors,
        dropped=dropped,
    )


# --- refusals --------------------------------------------------------------------------------


def _check_out(out: Path) -> None:
    reason = not_a_snapshot(out)
    if reason:
        raise UserError(f"refusing to replace {out}: not a bedrock-sql snapshot ({reason}); choose another OUT")


def _check_distinct(paths: list[Path]) -> None:
    seen: dict[tuple[int, int], Path] = {}
    for path in paths:
        try:
            stat = path.stat()
        except OSError:
            continue  # _read_input says what is wrong with it
        first = seen.setdefault((stat.st_dev, stat.st_ino), path)
        if first is not path:
            raise UserError(f"{path} is given twice ({first} is the same file)")


def _read_input(path: Path) -> _Input:
    reason = not_a_snapshot(path) if path.is_file() else None
    if reason:
        raise UserError(f"{path} is not a bedrock-sql snapshot ({reason})")
    connection = open_snapshot(path)  # a missing file or one without bedrock_sql_runs: one line
    try:
        # First: the accounts and versions read below go into messages, and the rows into OUT.
        check_snapshot_identifiers(connection, where=str(path))
        runs = [
            _Run(str(run_id), str(version), json_list(accounts), note_shard(json_list(notes)))
            for run_id, version, accounts, notes in connection.execute(
                f"SELECT run_id, tool_version, accounts, notes FROM {RUNS_TABLE} ORDER BY started_at"
            )
        ]
        if not runs:
            raise UserError(f"{path} records no collect run (bedrock_sql_runs is empty): nothing to merge")
        for run in runs:
            if not _VERSION.fullmatch(run.tool_version):
                raise UserError(f"{path} is refused: bedrock_sql_runs has tool_version {run.tool_version[:100]!r}, "
                                "no bedrock-sql version (a snapshot holds what collect wrote; this one was altered)")
        failed = [row[0] for row in connection.execute(f"SELECT DISTINCT account_id FROM {ERRORS_TABLE}")]
        columns, extra = {}, []
        schema = _schema()
        tables = [row[0] for row in connection.execute("SELECT name FROM sqlite_schema WHERE type = 'table'")]
        extra.extend(_shown(name) for name in tables if name not in schema and not name.startswith("sqlite_"))
        for name, expected in schema.items():
            present = [row[1] for row in connection.execute(f'PRAGMA table_info("{name}")')]
            missing = [c for c in expected if c not in present]
            if missing:
                lacks = f"table {name}" if not present else f"column(s) {', '.join(missing)} of {name}"
                raise UserError(
                    f"{path} (bedrock-sql {runs[-1].tool_version}) lacks {lacks}: collect it again with this version"
                )
            columns[name] = expected
            extra.extend(f"{name}.{_shown(c)}" for c in present if c not in expected)
    except apsw.Error as exc:
        raise UserError(f"{path} is not a readable bedrock-sql snapshot ({_sqlite_message(exc)})") from None
    finally:
        connection.close()
    accounts = {a for run in runs for a in run.accounts} | {a for a in failed if a}
    return _Input(path, runs, accounts, columns, extra)


# A version as bedrock-sql writes it (PEP 440: 0.1.0, 1.2.0rc1, 0.1.dev3+g1234abc).
_VERSION = re.compile(r"[0-9A-Za-z][0-9A-Za-z.+!_-]{0,63}", re.ASCII)
_PLAIN_NAME = re.compile(r"[A-Za-z0-9_]+", re.ASCII)


def _shown(name: str) -> str:
    """A table or column name of an input, for a message: escaped unless plain (the name is
    the input's, and may hold ESC or a newline)."""
    return name if _PLAIN_NAME.fullmatch(name) else ascii(name)


def _schema() -> dict[str, list[str]]:
    """Every table a snapshot of this version holds, with its columns."""
    schema = {name: [c.name for c in table.all_columns] for name, table in TABLES.items()}
    schema.update({name: [c.name for c in columns] for name, (_, columns) in META_TABLES.items()})
    return schema


def _problems(inputs: list[_Input]) -> list[str]:
    """What keeps ``inputs`` from making one honest snapshot without --force."""
    problems = []
    owner: dict[str, Path] = {}
    overlaps: dict[tuple[Path, Path], list[str]] = {}
    for item in inputs:
        for account in sorted(item.accounts):
            first = owner.setdefault(account, item.path)
            if first != item.path:
                overlaps.setdefault((first, item.path), []).append(account)
    for (first, second), accounts in overlaps.items():
        shown = ", ".join(accounts[:5]) + (f" and {len(accounts) - 5} more" if len(accounts) > 5 else "")
        problems.append(f"{first} and {second} both hold account(s) {shown}")
    versions: dict[str, Path] = {}
    for item in inputs:
        for run in item.runs:
            versions.setdefault(run.tool_version, item.path)
    if len(versions) > 1:
        listed = ", ".join(f"{version} ({path})" for version, path in versions.items())
        problems.append(f"the snapshots were collected by different bedrock-sql versions: {listed}")
    elif __version__ not in versions:  # its tables and columns may not be this version's
        problems.append(f"the snapshots were collected by bedrock-sql {next(iter(versions))}, this is {__version__}")
    problems.extend(_shard_problems(inputs))
    return problems


def _shard_problems(inputs: list[_Input]) -> list[str]:
    """A set of shards must be whole: every index of one N, once each, and nothing else."""
    runs = [(item.path, run.shard) for item in inputs for run in item.runs]
    shards = [(path, shard) for path, shard in runs if shard]
    if not shards:
        return []  # snapshots of separate collects (say, two Organizations): no set to complete
    problems = []
    unsharded = sorted({str(path) for path, shard in runs if shard is None})
    if unsharded:
        problems.append(f"{', '.join(unsharded)} collected without --shard, but {shards[0][0]} is shard {shards[0][1]}")
    counts = Counter(shard.count for _, shard in shards)
    if len(counts) > 1:
        listed = ", ".join(f"{path} is shard {shard}" for path, shard in shards)
        problems.append(f"the shards split the accounts in different numbers of shards: {listed}")
        return problems
    (count,) = counts
    where: dict[int, Path] = {}
    for path, shard in shards:
        first = where.setdefault(shard.index, path)
        if first != path:
            problems.append(f"shard {shard} is both {first} and {path}")
    # Named up to ten: the count comes from a note in the inputs, and may be huge.
    missing, absent = [], count - len(where)
    for index in range(count):
        if len(missing) == min(absent, 10):
            break
        if index not in where:
            missing.append(str(Shard(index, count)))
    if missing:
        more = f" and {absent - len(missing)} more" if absent > len(missing) else ""
        problems.append(
            f"shard(s) {', '.join(missing)}{more} missing: the merged snapshot would lack their accounts "
            f"(merge all {count} shards)"
        )
    return problems


# --- writing ---------------------------------------------------------------------------------


def _write(partial: Path, inputs: list[_Input], echo: Echo, where: str) -> tuple[dict[str, int], int, dict[str, int]]:
    """Fill ``partial`` from ``inputs``: (rows of each provider table, error rows, rows dropped).

    A SQLite failure (an input damaged past its header, a full disk) is a :class:`UserError`
    naming the input being read and ``where`` (OUT).
    """
    doing = f"into {where}"
    try:
        # Never through a symlink put at the partial file's name since it was made (WRITE_OWN_FILE).
        connection = apsw.Connection(own_file(partial), flags=WRITE_OWN_FILE | apsw.SQLITE_OPEN_URI)
    except apsw.Error as exc:
        raise UserError(f"cannot merge {doing}: {_sqlite_message(exc)}") from None
    try:
        # The partial file is thrown away on failure: no journal needed (as collect writes).
        connection.execute("PRAGMA journal_mode=OFF").fetchall()
        connection.execute("PRAGMA synchronous=OFF").fetchall()
        for table in TABLES.values():
            create_table(connection, "main", table)
        create_meta_tables(connection, "main")
        dropped: Counter[str] = Counter()
        for item in inputs:
            echo(f"Merging {item.describe()}")
            doing = f"{item.path} into {where}"
            # immutable: the input is only read, and no -journal or lock is made beside it.
            # Resolved: the connection refuses symlinks (NOFOLLOW), and an input may well be one.
            connection.execute("ATTACH ? AS merged_input", (f"file:{quote(os.path.realpath(item.path))}?mode=ro&immutable=1",))
            # Checked again as attached: the file read by _read_input may have been replaced since.
            check_snapshot_identifiers(connection, schema="merged_input", where=str(item.path))
            with connection:
                for name in TABLES:
                    dropped[name] += _copy(connection, name, item.columns[name], "INSERT OR IGNORE")
                _copy(connection, ERRORS_TABLE, item.columns[ERRORS_TABLE], "INSERT")
                # A run given twice (with --force) is kept once.
                _copy(connection, RUNS_TABLE, item.columns[RUNS_TABLE], "INSERT",
                      f"WHERE run_id NOT IN (SELECT run_id FROM main.{RUNS_TABLE})")
            connection.execute("DETACH merged_input")
        doing = f"into {where}"
        with connection:
            finish_snapshot(connection, "main")
        counts = {name: _count(connection, name) for name in TABLES}
        errors = _count(connection, ERRORS_TABLE)
    except apsw.Error as exc:
        raise UserError(f"cannot merge {doing}: {_sqlite_message(exc)}") from None
    finally:
        connection.close()
    return counts, errors, {name: n for name, n in dropped.items() if n}


def _copy(connection: apsw.Connection, table: str, columns: list[str], verb: str, where: str = "") -> int:
    """Copy ``table`` from the attached input; returns the rows that were not stored."""
    names = ", ".join(f'"{c}"' for c in columns)
    offered = _count(connection, table, "merged_input")
    connection.execute(f"{verb} INTO main.{table} ({names}) SELECT {names} FROM merged_input.{table} {where}")
    return offered - connection.changes()


def _count(connection: apsw.Connection, table: str, schema: str = "main") -> int:
    return connection.execute(f"SELECT count(*) FROM {schema}.{table}").fetchone()[0]
