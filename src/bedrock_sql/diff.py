"""`bedrock-sql diff OLD NEW`: what changed between two snapshots (the last audit and this one).

Every control runs on both snapshots. Each (control, account, region, resource) seen in
either gives one row, ``before`` and ``after`` its status in OLD and in NEW, and a ``change``
(new alarm, fixed, regressed, unknown, ...; every change and inventory row is defined in
:mod:`bedrock_sql.diff_changes`).

With accepted exceptions (``diff --exceptions FILE``, the file of ``check --exceptions``), a
NEW finding an active entry covers keeps its change and gains ``muted`` = 1 and
``mute_reason``, as ``check`` would show it; a muted row does not count for ``--fail-on``.
OLD's findings are not muted (the file says what is accepted now), nor are inventory rows
(entries name controls). Every row carries ``muted`` and ``mute_reason`` in csv and json.

Memory stays bounded: each control's findings stream, one control at a time, from its
snapshot into a private temporary SQLite database (on disk; SQLite keeps a bounded cache),
which pairs both sides in SQL; the rows come back ordered worst first by SQLite's sorter.
"""

from __future__ import annotations

import itertools
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Iterable, Iterator, Sequence, TextIO

import apsw
import click

from .controls import STATUS_ORDER, Control, SnapshotRun, iter_findings, prepare_control, snapshot_run
from .diff_changes import (
    BEDROCK_OWNED, CHANGES, FAIL_ON, HIDDEN_CHANGES, INVENTORY, control_change, control_reason, inventory_change,
    inventory_reason, listed_in,
)
from .errors import UserError
from .exceptions import ExceptionFile, Muter
from .kms_need import every_key_collected, key_arns as needed_key_arns
from .render import markdown_text, render, terminal_text
from .shard import json_list
from .snapshot_file import not_a_snapshot
from .sql import StatementTimeout, snapshot_connection

DIFF_FORMATS = ("table", "csv", "json", "jsonl", "markdown")
MACHINE_FORMATS = {"csv", "json", "jsonl"}
COLUMNS = ("control", "resource", "before", "after", "change", "account_id", "region", "reason", "muted", "mute_reason")
_SIDES = ("OLD", "NEW")


# --- the comparison --------------------------------------------------------------------------


@dataclass(frozen=True)
class Side:
    """One snapshot of the comparison."""

    label: str  # "OLD" or "NEW"
    path: Path
    run: SnapshotRun
    accounts: frozenset[str]
    regions: frozenset[str]
    pairs: frozenset[tuple[str, str]]  # the (account, region) units its runs collected

    def describe(self) -> str:
        return f"{self.path} collected {self.run.collected_at} (run {self.run.run_id})"


@dataclass
class Comparison:
    """Two snapshots compared: the counts of every change, notes, and the rows (streamed)."""

    old: Side
    new: Side
    counts: dict[str, int]
    notes: list[str]
    _work: apsw.Connection
    muted: dict[str, int] = field(default_factory=dict)  # change -> its rows an exception mutes
    muting: bool = False  # exceptions were given

    def rows(self, include_all: bool = False) -> Iterator[tuple]:
        """Rows of :data:`COLUMNS`, worst change first (then by control, account, region,
        resource); unchanged and out-of-scope rows only with ``include_all``."""
        hidden = "" if include_all else "WHERE change NOT IN (" + ", ".join(f"'{c}'" for c in HIDDEN_CHANGES) + ")"
        yield from self._work.execute(
            f"SELECT {', '.join(COLUMNS)} FROM diff {hidden} ORDER BY rank, control, account_id, region, resource"
        )

    def failing(self, fail_on: Iterable[str]) -> list[str]:
        """The changes of ``fail_on`` (--fail-on names) that some row not muted has."""
        return [FAIL_ON[name] for name in dict.fromkeys(fail_on)
                if self.counts[FAIL_ON[name]] > self.muted.get(FAIL_ON[name], 0)]


@contextmanager
def compare_snapshots(
    old_path: str | Path, new_path: str | Path, controls: Sequence[Control], *, timeout: float | None = None,
    exceptions: ExceptionFile | None = None, on_overrun: Callable[[StatementTimeout], None] | None = None,
) -> Iterator[Comparison]:
    """Compare snapshot ``old_path`` (the earlier audit) with ``new_path`` on ``controls``.

    Both are opened read-only; either one not a readable bedrock-sql snapshot with a collect
    run is a :class:`UserError`. Each statement stops after ``timeout`` seconds (``on_overrun``:
    see :class:`~bedrock_sql.sql.StatementGuard`).
    ``exceptions`` mutes the NEW findings its active entries cover (see the module doc).
    """
    with ExitStack() as stack:
        connections = [stack.enter_context(_open(label, Path(path), timeout, on_overrun)) for label, path in zip(_SIDES, (old_path, new_path))]
        sides = [_side(label, Path(path), connection)
                 for label, path, connection in zip(_SIDES, (old_path, new_path), connections)]
        work = apsw.Connection("")  # private, on disk (deleted on close): bounded memory
        stack.callback(work.close)
        _create_work_tables(work)
        for number, (side, connection) in enumerate(zip(sides, connections)):
            muter = exceptions.muter(connection) if exceptions is not None and number == 1 else None
            _observe(work, number, side, connection, controls, muter)
        _pair(work)
        counts = dict.fromkeys(CHANGES, 0)
        muted = dict.fromkeys(CHANGES, 0)
        for change, total, muted_rows in work.execute("SELECT change, count(*), sum(muted) FROM diff GROUP BY change"):
            counts[change], muted[change] = total, muted_rows
        yield Comparison(sides[0], sides[1], counts, _notes(*sides), work, muted, exceptions is not None)


@contextmanager
def _open(label: str, path: Path, timeout: float | None, on_overrun) -> Iterator[apsw.Connection]:
    if not path.is_file():
        raise UserError(f"{label} {path}: no such snapshot" + (" (a directory)" if path.is_dir() else ""))
    reason = not_a_snapshot(path) or ("an empty file" if path.stat().st_size == 0 else None)
    if reason:
        raise UserError(f"{label} {path} is not a bedrock-sql snapshot ({reason})")
    with snapshot_connection(path, timeout=timeout, on_overrun=on_overrun) as connection:
        yield connection


def _side(label: str, path: Path, connection: apsw.Connection) -> Side:
    run = snapshot_run(connection)
    if run is None:
        raise UserError(f"{label} {path} records no finished collect run (bedrock_sql_runs), so it cannot be dated")
    accounts: set[str] = set()
    regions: set[str] = set()
    pairs: set[tuple[str, str]] = set()
    for run_accounts, run_regions in connection.execute("SELECT accounts, regions FROM bedrock_sql_runs"):
        run_accounts, run_regions = json_list(run_accounts), json_list(run_regions)
        accounts.update(run_accounts)
        regions.update(run_regions)
        pairs.update(itertools.product(run_accounts, run_regions))
    return Side(label, path, run, frozenset(accounts), frozenset(regions), frozenset(pairs))


def _create_work_tables(work: apsw.Connection) -> None:
    work.execute("""
        CREATE TABLE observation(
          side INTEGER NOT NULL,   -- 0 OLD, 1 NEW
          kind TEXT NOT NULL,      -- 'control' or 'inventory'
          facet TEXT NOT NULL,     -- the control id; or key, rotation, model
          account_id, region, resource,
          table_name TEXT,         -- the table listing the resource (NULL: cannot be told)
          value TEXT,              -- the status; or the key state, rotation on/off, model key
          note TEXT,               -- the finding's reason; or the key's or model's name
          named INTEGER NOT NULL,  -- 0 for a key no model of this side names
          mute_reason TEXT         -- NEW's findings an accepted exception covers: why
        );
        CREATE TABLE scope(side INTEGER, account_id TEXT, region TEXT, PRIMARY KEY (side, account_id, region)) WITHOUT ROWID;
        CREATE TABLE listing_error(side INTEGER, table_name TEXT, account_id TEXT, region TEXT, cause TEXT);
        CREATE INDEX listing_error_unit ON listing_error(side, account_id, region);
        CREATE TABLE diff(rank INTEGER, control, resource, before, after, change TEXT, account_id, region, reason TEXT,
                          muted INTEGER, mute_reason TEXT);
        -- A side collected with --kms-keys needed (the default) holds only the keys its Bedrock
        -- resources name: a key missing there that it does not name was not looked at.
        CREATE TABLE needed_keys_side(side INTEGER PRIMARY KEY);
        CREATE TABLE named_key(side INTEGER, arn TEXT, PRIMARY KEY (side, arn)) WITHOUT ROWID;
    """)


_KEYS_SQL = """
SELECT k.account_id, k.region, k.arn, k.key_state, k.key_rotation_enabled, coalesce(k.title, k.arn),
       k.arn IN (SELECT key_arn FROM bedrock_model_encryption WHERE key_arn IS NOT NULL)
FROM aws_kms_key k
"""
_MODELS_SQL = "SELECT account_id, region, arn, table_name, model_name, key_reference FROM bedrock_model"


def _observe(work: apsw.Connection, number: int, side: Side, connection: apsw.Connection,
             controls: Sequence[Control], muter: Muter | None = None) -> None:
    """Copy what ``side`` says into the work database: its scope, failed listings, every
    control's findings (one control at a time, streamed; muted by ``muter``), and its keys
    and models."""
    insert = "INSERT INTO observation VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"
    mute = muter.apply if muter is not None else (lambda finding: finding)
    with work:
        work.executemany("INSERT INTO scope VALUES (?, ?, ?)", ((number, a, r) for a, r in side.pairs))
        work.executemany(
            "INSERT INTO listing_error VALUES (?, ?, ?, ?, ?)",
            ((number, *row) for row in connection.execute("SELECT table_name, account_id, region, cause FROM bedrock_listing_error")),
        )
        for control in controls:
            prepared = prepare_control(connection, control)
            work.executemany(insert, (
                (number, "control", control.id, f.account_id, f.region, f.resource, listed_in(f.resource), f.status,
                 f.reason, 1, f.mute_reason if f.muted else None)
                for f in map(mute, iter_findings(connection, prepared, None))
            ))
        if not every_key_collected(connection):
            work.execute("INSERT INTO needed_keys_side VALUES (?)", (number,))
            work.executemany("INSERT OR IGNORE INTO named_key VALUES (?, ?)",
                             ((number, arn) for arn in needed_key_arns(connection, "main")))
        for account, region, arn, state, rotation, title, named in connection.execute(_KEYS_SQL):
            facts = [("key", state)] + ([("rotation", "on" if rotation else "off")] if rotation is not None else [])
            work.executemany(insert, (
                (number, INVENTORY, facet, account, region, arn, "aws_kms_key", value, title, int(bool(named)), None)
                for facet, value in facts
            ))
        work.executemany(insert, (
            (number, INVENTORY, "model", account, region, arn, table, key or BEDROCK_OWNED, name, 1, None)
            for account, region, arn, table, name, key in connection.execute(_MODELS_SQL)
        ))


def _unlisted(side: int) -> str:
    """SQL: why side ``side`` could not list the pair's resource (NULL when it could)."""
    return f"""(SELECT min(e.table_name || ': ' || e.cause) FROM listing_error e
               WHERE e.side = {side} AND e.account_id = p.account_id AND e.region = p.region
                 AND (p.table_name IS NULL OR e.table_name = p.table_name))"""


def _uncollected_key(side: int, present: str) -> str:
    """SQL: the pair's key is absent from ``side`` because that side did not collect it."""
    return f"""(NOT p.{present} AND EXISTS (SELECT 1 FROM needed_keys_side n WHERE n.side = {side})
            AND NOT EXISTS (SELECT 1 FROM named_key k WHERE k.side = {side} AND k.arn = p.resource))"""


# Each (kind, facet, account, region, resource) with what OLD and NEW say of it. A control
# giving one resource several rows is judged by its worst (bare columns of min() come from
# the row holding the minimum). Keys no model names on either side are left out.
_PAIRS_SQL = f"""
WITH judged AS (
  SELECT side, kind, facet, account_id, region, resource, table_name, value, note, named, mute_reason,
         min(CASE value {' '.join(f"WHEN '{s}' THEN {rank}" for rank, s in enumerate(STATUS_ORDER))} ELSE 9 END)
  FROM observation GROUP BY side, kind, facet, account_id, region, resource
), paired AS (
  SELECT kind, facet, account_id, region, resource, max(table_name) AS table_name,
         max(side = 0) AS in_old, max(side = 1) AS in_new,
         max(CASE side WHEN 0 THEN value END) AS before, max(CASE side WHEN 1 THEN value END) AS after,
         max(CASE side WHEN 0 THEN note END) AS old_note, max(CASE side WHEN 1 THEN note END) AS new_note,
         max(CASE side WHEN 1 THEN mute_reason END) AS mute_reason
  FROM judged GROUP BY kind, facet, account_id, region, resource HAVING max(named)
)
SELECT p.*,
       EXISTS (SELECT 1 FROM scope s WHERE s.side = 0 AND s.account_id = p.account_id AND s.region = p.region)
         AND EXISTS (SELECT 1 FROM scope s WHERE s.side = 1 AND s.account_id = p.account_id AND s.region = p.region),
       {_unlisted(0)}, {_unlisted(1)}
FROM paired p
WHERE NOT (p.kind = '{INVENTORY}' AND p.facet IN ('key', 'rotation')
           AND ({_uncollected_key(0, "in_old")} OR {_uncollected_key(1, "in_new")}))
"""


def _pair(work: apsw.Connection) -> None:
    """Judge every pair and write the rows of ``diff`` (as the pairs are read: SQLite writes
    one table of a database while it reads others)."""
    rank = {change: number for number, change in enumerate(CHANGES)}
    rows = filter(None, (_diff_row(*pair) for pair in work.execute(_PAIRS_SQL)))
    with work:
        work.executemany("INSERT INTO diff VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                         ((rank[row[4]], *row) for row in rows))


def _diff_row(kind, facet, account, region, resource, table, in_old, in_new, before, after, old_note, new_note,
              mute_reason, in_scope, old_unlisted, new_unlisted) -> tuple | None:
    """One row of :data:`COLUMNS` for a pair; None when there is nothing to say."""
    scope = bool(in_scope)
    if kind == "control":
        change = control_change(before, after, in_scope=scope, old_unlisted=bool(old_unlisted),
                                new_unlisted=bool(new_unlisted))
        reason = control_reason(change, account, region, old_note, new_note, old_unlisted, new_unlisted)
        return facet, resource, before, after, change, account, region, reason, int(mute_reason is not None), mute_reason
    change = inventory_change(facet, before, after, in_old=bool(in_old), in_new=bool(in_new), in_scope=scope,
                              old_unlisted=bool(old_unlisted), new_unlisted=bool(new_unlisted))
    if change is None:
        return None
    reason = inventory_reason(change, facet, new_note or old_note, before, after, account, region,
                               old_unlisted, new_unlisted, bool(in_old), bool(in_new))
    return (INVENTORY, resource, before if in_old else None, after if in_new else None, change, account, region, reason,
            0, None)


def _notes(old: Side, new: Side) -> list[str]:
    """What the reader must know about what was compared: differing scopes, swapped files."""
    notes = []
    if old.pairs != new.pairs:
        parts = []
        for label, mine, theirs in (("OLD", old, new), ("NEW", new, old)):
            accounts, regions = sorted(mine.accounts - theirs.accounts), sorted(mine.regions - theirs.regions)
            if accounts:
                parts.append(f"accounts only in {label}: {', '.join(accounts)}")
            if regions:
                parts.append(f"regions only in {label}: {', '.join(regions)}")
        if not parts:  # the same accounts and regions, combined differently (merged shards)
            for label, mine, theirs in (("OLD", old, new), ("NEW", new, old)):
                units = sorted(f"{a}/{r}" for a, r in mine.pairs - theirs.pairs)
                if units:
                    parts.append(f"account/regions only in {label}: {', '.join(units)}")
        both = old.pairs & new.pairs
        notes.append(
            f"the snapshots cover different scopes; compared: {len(both)} account/region(s) collected by both "
            f"({len({a for a, _ in both})} account(s), {len({r for _, r in both})} region(s)); " + "; ".join(parts)
            + "; resources only one snapshot could see are 'out of scope' (shown with --all)"
        )
    if old.run.run_id == new.run.run_id:
        notes.append(f"OLD and NEW hold the same collect run ({old.run.run_id}): nothing can have changed")
    elif old.run.collected_at > new.run.collected_at:
        notes.append(f"OLD was collected after NEW ({old.run.collected_at} > {new.run.collected_at}): are they swapped?")
    return notes


# --- output -----------------------------------------------------------------------------------


def summary_line(comparison: Comparison, *, include_all: bool = False,
                 inert: Callable[[object], str] = terminal_text) -> str:
    """Counts of each change (zero ones left out) and the two snapshots' collection times.
    The snapshots' paths and runs are made safe by ``inert`` (:func:`markdown_text` after a
    Markdown diff; a terminal otherwise)."""
    counts = comparison.counts
    shown = [f"{change} {counts[change]}" + (f" ({comparison.muted[change]} muted)" if comparison.muted.get(change) else "")
             for change in CHANGES if counts[change]]
    text = f"Diff: {sum(counts.values())} row(s)" + (": " + ", ".join(shown) if shown else "")
    if not include_all and any(counts[change] for change in HIDDEN_CHANGES):
        text += f" ({' and '.join(HIDDEN_CHANGES)} rows are shown with --all)"
    return text + f"; OLD {inert(comparison.old.describe())}; NEW {inert(comparison.new.describe())}"


def write_diff(comparison: Comparison, fmt: str, out: TextIO, *, include_all: bool = False, colour: bool = False) -> None:
    """The rows in ``fmt``: ``table`` is one table per change, worst first; every other
    format one flat list (``markdown`` after a line naming the two snapshots). csv and json
    carry ``muted`` and ``mute_reason`` always; table and markdown, which people read, only
    when exceptions were given: ``after`` then says "(muted)" and ``mute_reason`` why."""
    rows = comparison.rows(include_all)
    if fmt in MACHINE_FORMATS:
        render(COLUMNS, rows, fmt, out)
        return
    shown = [c for c in COLUMNS if c != "muted" and (comparison.muting or c != "mute_reason")]
    rows = (_for_people(row)[:len(shown)] for row in rows)
    if fmt == "markdown":
        out.write(f"Changes from {markdown_text(comparison.old.describe())} to "
                  f"{markdown_text(comparison.new.describe())}.\n\n")
        render(shown, rows, fmt, out)
        return
    columns = [c for c in shown if c != "change"]
    for change, group in itertools.groupby(rows, key=lambda row: row[4]):
        muted = comparison.muted.get(change)
        heading = f"{change} ({comparison.counts[change]}" + (f", {muted} muted)" if muted else ")")
        out.write((click.style(heading, bold=True) if colour else heading) + "\n")
        render(columns, (row[:4] + row[5:] for row in group), "table", out)
        out.write("\n")


def _for_people(row: tuple) -> tuple:
    """The row of :data:`COLUMNS` without ``muted`` (mute_reason last); a muted ``after`` says so."""
    *values, muted, mute_reason = row
    if muted:
        values[3] = f"{values[3]} (muted)"
    return (*values, mute_reason)
