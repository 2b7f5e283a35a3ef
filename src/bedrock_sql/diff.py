"""`bedrock-sql diff OLD NEW`: what changed between two snapshots (the last audit and this one).

Every control runs on both snapshots. Each (control, account, region, resource) seen in
either gives one row: ``before`` and ``after`` are its status in OLD and in NEW (NULL where
it is absent; a control giving one resource several rows counts its worst), and ``change``
says what happened:

=================  ============================================================================
regressed          ``ok``, ``info`` or ``skip`` before, ``alarm`` now.
new alarm          ``alarm`` now, and OLD did not report it: absent from OLD, or ``error`` there
                   (it could not be judged), or absent because OLD's listing of it failed.
error appeared     ``error`` now; before absent, or anything but ``error``.
unknown            absent from NEW because NEW's listing of its table, in its account and
                   region, failed (``bedrock_listing_error``): whether it still exists is
                   unknown. Never "removed". (Inventory rows: present on one side only, and
                   the other side's listing failed; or a value one side could not read.)
still failing      ``alarm`` both times, or ``error`` both times.
resource removed   absent from NEW (its listing there succeeded); OLD said anything but ``error``.
resource added     absent from OLD (its listing there succeeded), ``ok``, ``info`` or ``skip`` now.
status changed     between ``ok``, ``info`` and ``skip`` (e.g. a model's key moved to another
                   account: ok -> info).
error cleared      ``error`` before (or absent because OLD's listing failed); now ``ok``, ``info``
                   or ``skip``, or absent (the row of a failed listing, resource
                   ``account/region``, goes once the listing works). Not "fixed": OLD never
                   showed it failing.
fixed              ``alarm`` before, ``ok``, ``info`` or ``skip`` now.
out of scope       present on one side only, in an account/region that only one snapshot
                   collected (``bedrock_sql_runs.accounts`` x ``regions``): not comparable.
unchanged          the same status both times.
=================  ============================================================================

Inventory changes that matter come as extra rows, with ``control`` = ``inventory``, the ARN as
``resource`` and the values as ``before``/``after``: for the KMS keys that encrypt a model in
either snapshot (``bedrock_model_encryption.key_arn``; other keys of the account are no
concern of this audit) ``key disabled`` (Enabled -> Disabled), ``key enabled``
(Disabled -> Enabled), ``key pending deletion`` (-> PendingDeletion), ``key deletion
cancelled`` (PendingDeletion -> Enabled/Disabled), ``key state changed`` (any other state
change), ``rotation turned off``/``rotation turned on`` (``key_rotation_enabled``), ``key
deleted``/``key added``; for every model (custom and imported) ``model key changed``
(``model_kms_key_arn``; "Bedrock-owned key" for none), ``model deleted``/``model added``;
and ``unknown``, ``out of scope``, ``unchanged`` as above.

Memory stays bounded: each control's findings stream, one control at a time, from its
snapshot into a private temporary SQLite database (on disk; SQLite keeps a bounded cache),
which pairs both sides in SQL; the rows come back ordered worst first by SQLite's sorter.
"""

from __future__ import annotations

import itertools
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Iterable, Iterator, Sequence, TextIO

import apsw
import click

from .controls import STATUS_ORDER, Control, SnapshotRun, iter_findings, prepare_control, snapshot_run
from .errors import UserError
from .kms_need import every_key_collected, key_arns as needed_key_arns
from .render import render
from .shard import json_list
from .snapshot_file import not_a_snapshot
from .sql import snapshot_connection

# Every change, worst first: the order of the table's groups and of every format's rows.
CHANGES = (
    "regressed", "new alarm", "error appeared", "unknown", "still failing",
    "key pending deletion", "key disabled", "key deleted", "rotation turned off", "model key changed", "key state changed",
    "resource removed", "model deleted", "resource added", "model added", "key added", "status changed",
    "error cleared", "key deletion cancelled", "key enabled", "rotation turned on", "fixed",
    "out of scope", "unchanged",
)
# Shown only with --all.
HIDDEN_CHANGES = ("out of scope", "unchanged")
# --fail-on NAME -> the change it fails on.
FAIL_ON = {"regressed": "regressed", "new-alarm": "new alarm"}
DIFF_FORMATS = ("table", "csv", "json", "jsonl", "markdown")
MACHINE_FORMATS = {"csv", "json", "jsonl"}
COLUMNS = ("control", "resource", "before", "after", "change", "account_id", "region", "reason")
INVENTORY = "inventory"
BEDROCK_OWNED = "Bedrock-owned key"

# The table that lists a resource, from its ARN's (service, resource type): a resource absent
# from NEW is "unknown", not removed, when that listing failed in its account and region.
_LISTED_IN = {
    ("bedrock", "custom-model"): "aws_bedrock_custom_model",
    ("bedrock", "model-customization-job"): "aws_bedrock_model_customization_job",
    ("bedrock", "imported-model"): "aws_bedrock_imported_model",
    ("bedrock", "model-import-job"): "aws_bedrock_model_import_job",
    ("bedrock", "model-copy-job"): "aws_bedrock_model_copy_job",
    ("bedrock", "provisioned-model"): "aws_bedrock_provisioned_model_throughput",
    ("bedrock", "custom-model-deployment"): "aws_bedrock_custom_model_deployment",
    ("kms", "key"): "aws_kms_key",
    ("kms", "alias"): "aws_kms_alias",
}
_KEY_STATE_CHANGES = {
    ("Enabled", "Disabled"): "key disabled",
    ("Disabled", "Enabled"): "key enabled",
    ("PendingDeletion", "Enabled"): "key deletion cancelled",
    ("PendingDeletion", "Disabled"): "key deletion cancelled",
}
_SIDES = ("OLD", "NEW")


def listed_in(resource: object) -> str | None:
    """The table whose listing yields ``resource`` (an ARN); None when it cannot be told,
    and then a failed listing of any table in its account and region counts."""
    parts = resource.split(":", 5) if isinstance(resource, str) else []
    if len(parts) != 6 or parts[0] != "arn":
        return None
    kind = parts[5].split("/", 1)[0]
    return _LISTED_IN.get((parts[2], kind))


# --- what a pair of observations means -------------------------------------------------------


def control_change(
    before: str | None, after: str | None, *, in_scope: bool = True, old_unlisted: bool = False,
    new_unlisted: bool = False,
) -> str:
    """The change of one control's verdict on one resource (see the module docstring)."""
    if after is None:
        if not in_scope:
            return "out of scope"
        if new_unlisted:
            return "unknown"
        # A failed listing's own row (resource "account/region") goes once the listing works.
        return "error cleared" if before == "error" else "resource removed"
    if before is None:
        if not in_scope:
            return "out of scope"
        if not old_unlisted:
            return {"alarm": "new alarm", "error": "error appeared"}.get(after, "resource added")
        before = "error"  # OLD could not list it: it was not judged
    if after == "alarm":
        return {"alarm": "still failing", "error": "new alarm"}.get(before, "regressed")
    if after == "error":
        return "still failing" if before == "error" else "error appeared"
    if before == "alarm":
        return "fixed"
    if before == "error":
        return "error cleared"
    return "unchanged" if before == after else "status changed"


def inventory_change(
    facet: str, before: str | None, after: str | None, *, in_old: bool, in_new: bool, in_scope: bool = True,
    old_unlisted: bool = False, new_unlisted: bool = False,
) -> str | None:
    """The change of one inventory fact (``facet``: key, rotation or model); None when there
    is nothing to say: a rotation status that did not change, or is known on one side only
    (the key's own row says that it is unchanged, or why)."""
    if not (in_old and in_new):
        if facet == "rotation":
            return None
        if not in_scope:
            return "out of scope"
        if (in_old and new_unlisted) or (in_new and old_unlisted):
            return "unknown"
        return f"{facet} deleted" if in_old else f"{facet} added"
    if before == after:
        return None if facet == "rotation" else "unchanged"  # one unchanged row per key: its state's
    if before is None or after is None:
        return "unknown"  # the value could not be read on one side
    if facet == "rotation":
        return f"rotation turned {after}"
    if facet == "model":
        return "model key changed"
    if after in ("PendingDeletion", "PendingReplicaDeletion"):
        return "key pending deletion"
    return _KEY_STATE_CHANGES.get((before, after), "key state changed")


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

    def rows(self, include_all: bool = False) -> Iterator[tuple]:
        """Rows of :data:`COLUMNS`, worst change first (then by control, account, region,
        resource); unchanged and out-of-scope rows only with ``include_all``."""
        hidden = "" if include_all else "WHERE change NOT IN (" + ", ".join(f"'{c}'" for c in HIDDEN_CHANGES) + ")"
        yield from self._work.execute(
            f"SELECT {', '.join(COLUMNS)} FROM diff {hidden} ORDER BY rank, control, account_id, region, resource"
        )

    def failing(self, fail_on: Iterable[str]) -> list[str]:
        """The changes of ``fail_on`` (--fail-on names) that some row has."""
        return [FAIL_ON[name] for name in dict.fromkeys(fail_on) if self.counts[FAIL_ON[name]]]


@contextmanager
def compare_snapshots(
    old_path: str | Path, new_path: str | Path, controls: Sequence[Control], *, timeout: float | None = None
) -> Iterator[Comparison]:
    """Compare snapshot ``old_path`` (the earlier audit) with ``new_path`` on ``controls``.

    Both are opened read-only; either one not a readable bedrock-sql snapshot with a collect
    run is a :class:`UserError`. Each statement stops after ``timeout`` seconds.
    """
    with ExitStack() as stack:
        connections = [stack.enter_context(_open(label, Path(path), timeout)) for label, path in zip(_SIDES, (old_path, new_path))]
        sides = [_side(label, Path(path), connection)
                 for label, path, connection in zip(_SIDES, (old_path, new_path), connections)]
        work = apsw.Connection("")  # private, on disk (deleted on close): bounded memory
        stack.callback(work.close)
        _create_work_tables(work)
        for number, (side, connection) in enumerate(zip(sides, connections)):
            _observe(work, number, side, connection, controls)
        _pair(work)
        counts = dict.fromkeys(CHANGES, 0)
        counts.update(work.execute("SELECT change, count(*) FROM diff GROUP BY change"))
        yield Comparison(sides[0], sides[1], counts, _notes(*sides), work)


@contextmanager
def _open(label: str, path: Path, timeout: float | None) -> Iterator[apsw.Connection]:
    if not path.is_file():
        raise UserError(f"{label} {path}: no such snapshot" + (" (a directory)" if path.is_dir() else ""))
    reason = not_a_snapshot(path) or ("an empty file" if path.stat().st_size == 0 else None)
    if reason:
        raise UserError(f"{label} {path} is not a bedrock-sql snapshot ({reason})")
    with snapshot_connection(path, timeout=timeout) as connection:
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
          named INTEGER NOT NULL   -- 0 for a key no model of this side names
        );
        CREATE TABLE scope(side INTEGER, account_id TEXT, region TEXT, PRIMARY KEY (side, account_id, region)) WITHOUT ROWID;
        CREATE TABLE listing_error(side INTEGER, table_name TEXT, account_id TEXT, region TEXT, cause TEXT);
        CREATE INDEX listing_error_unit ON listing_error(side, account_id, region);
        CREATE TABLE diff(rank INTEGER, control, resource, before, after, change TEXT, account_id, region, reason TEXT);
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
             controls: Sequence[Control]) -> None:
    """Copy what ``side`` says into the work database: its scope, failed listings, every
    control's findings (one control at a time, streamed), and its keys and models."""
    insert = "INSERT INTO observation VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"
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
                 f.reason, 1)
                for f in iter_findings(connection, prepared, None)
            ))
        if not every_key_collected(connection):
            work.execute("INSERT INTO needed_keys_side VALUES (?)", (number,))
            work.executemany("INSERT OR IGNORE INTO named_key VALUES (?, ?)",
                             ((number, arn) for arn in needed_key_arns(connection, "main")))
        for account, region, arn, state, rotation, title, named in connection.execute(_KEYS_SQL):
            facts = [("key", state)] + ([("rotation", "on" if rotation else "off")] if rotation is not None else [])
            work.executemany(insert, (
                (number, INVENTORY, facet, account, region, arn, "aws_kms_key", value, title, int(bool(named)))
                for facet, value in facts
            ))
        work.executemany(insert, (
            (number, INVENTORY, "model", account, region, arn, table, key or BEDROCK_OWNED, name, 1)
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
  SELECT side, kind, facet, account_id, region, resource, table_name, value, note, named,
         min(CASE value {' '.join(f"WHEN '{s}' THEN {rank}" for rank, s in enumerate(STATUS_ORDER))} ELSE 9 END)
  FROM observation GROUP BY side, kind, facet, account_id, region, resource
), paired AS (
  SELECT kind, facet, account_id, region, resource, max(table_name) AS table_name,
         max(side = 0) AS in_old, max(side = 1) AS in_new,
         max(CASE side WHEN 0 THEN value END) AS before, max(CASE side WHEN 1 THEN value END) AS after,
         max(CASE side WHEN 0 THEN note END) AS old_note, max(CASE side WHEN 1 THEN note END) AS new_note
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
        work.executemany("INSERT INTO diff VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)", ((rank[row[4]], *row) for row in rows))


def _diff_row(kind, facet, account, region, resource, table, in_old, in_new, before, after, old_note, new_note,
              in_scope, old_unlisted, new_unlisted) -> tuple | None:
    """One row of :data:`COLUMNS` for a pair; None when there is nothing to say."""
    scope = bool(in_scope)
    if kind == "control":
        change = control_change(before, after, in_scope=scope, old_unlisted=bool(old_unlisted),
                                new_unlisted=bool(new_unlisted))
        reason = _control_reason(change, account, region, old_note, new_note, old_unlisted, new_unlisted)
        return facet, resource, before, after, change, account, region, reason
    change = inventory_change(facet, before, after, in_old=bool(in_old), in_new=bool(in_new), in_scope=scope,
                              old_unlisted=bool(old_unlisted), new_unlisted=bool(new_unlisted))
    if change is None:
        return None
    reason = _inventory_reason(change, facet, new_note or old_note, before, after, account, region,
                               old_unlisted, new_unlisted, bool(in_old), bool(in_new))
    return INVENTORY, resource, before if in_old else None, after if in_new else None, change, account, region, reason


def _control_reason(change, account, region, old_note, new_note, old_unlisted, new_unlisted) -> str:
    if change == "unknown":
        return (f"The new snapshot could not list {account}/{region} ({new_unlisted}), so whether this resource "
                f"still exists is unknown. Before: {old_note}")
    if change == "resource removed":
        return f"No longer in the new snapshot. Before: {old_note}"
    if change == "out of scope":
        only = "old" if new_note is None else "new"
        return f"Only the {only} snapshot covers {account}/{region}. {old_note or new_note}"
    if old_unlisted and old_note is None:
        return f"{new_note} (The old snapshot could not list {account}/{region}: {old_unlisted}.)"
    return new_note


def _inventory_reason(change, facet, name, before, after, account, region, old_unlisted, new_unlisted, in_old,
                      in_new) -> str:
    thing = f"Model {name}" if facet == "model" else f"Key {name}"
    if change == "out of scope":
        return f"{thing}: only the {'old' if in_old else 'new'} snapshot covers {account}/{region}."
    if change == "unknown" and not (in_old and in_new):
        side, cause = ("new", new_unlisted) if in_old else ("old", old_unlisted)
        return f"{thing}: the {side} snapshot could not list {account}/{region} ({cause}), so it cannot be compared."
    if change == "unknown":
        return f"{thing}: its {'key' if facet == 'model' else 'state'} could not be read in the {'new' if after is None else 'old'} snapshot."
    if facet == "rotation":
        return f"Automatic rotation of key {name} is {after}" + ("." if change == "unchanged" else f" (was {before}).")
    if change.endswith("deleted"):
        return f"{thing} is no longer in the new snapshot (it was {_value(facet, before)})."
    if change.endswith("added"):
        return f"{thing} is new ({_value(facet, after)})."
    if change == "unchanged":
        return f"{thing} is {_value(facet, after)}."
    return f"{thing} was {_value(facet, before)}; now {_value(facet, after)}."


def _value(facet: str, value: str | None) -> str:
    if facet != "model":
        return str(value)
    return "encrypted with the Bedrock-owned key" if value == BEDROCK_OWNED else f"encrypted with key {value}"


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


def summary_line(comparison: Comparison, *, include_all: bool = False) -> str:
    """Counts of each change (zero ones left out) and the two snapshots' collection times."""
    counts = comparison.counts
    shown = [f"{change} {counts[change]}" for change in CHANGES if counts[change]]
    text = f"Diff: {sum(counts.values())} row(s)" + (": " + ", ".join(shown) if shown else "")
    if not include_all and any(counts[change] for change in HIDDEN_CHANGES):
        text += f" ({' and '.join(HIDDEN_CHANGES)} rows are shown with --all)"
    return text + f"; OLD {comparison.old.describe()}; NEW {comparison.new.describe()}"


def write_diff(comparison: Comparison, fmt: str, out: TextIO, *, include_all: bool = False, colour: bool = False) -> None:
    """The rows in ``fmt``: ``table`` is one table per change, worst first; every other
    format one flat list (``markdown`` after a line naming the two snapshots)."""
    rows = comparison.rows(include_all)
    if fmt != "table":
        if fmt == "markdown":
            out.write(f"Changes from {comparison.old.describe()} to {comparison.new.describe()}.\n\n")
        render(COLUMNS, rows, fmt, out)
        return
    columns = [c for c in COLUMNS if c != "change"]
    for change, group in itertools.groupby(rows, key=lambda row: row[4]):
        heading = f"{change} ({comparison.counts[change]})"
        out.write((click.style(heading, bold=True) if colour else heading) + "\n")
        render(columns, (row[:4] + row[5:] for row in group), "table", out)
        out.write("\n")
