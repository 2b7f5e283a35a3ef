"""Controls: plain SQL files with a metadata header, run over a snapshot.

A control file (``queries/<id>.sql``) starts with ``-- key: value`` comment lines
(id, title, severity, description, remediation, references, frameworks; an indented
``--   ...`` line continues the previous value) followed by one SELECT that returns at least
``resource, status, reason, account_id, region``. Any other column is kept as an extra
dimension of the finding.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field, replace
from importlib import resources
from pathlib import Path
from typing import Any, Iterable, Iterator, Mapping

import apsw
import apsw.ext

from .errors import UserError
from .frameworks import Requirement, parse_frameworks
from .shard import Shard, json_list, note_shard, shard_of
from .sql import _has_statement, run_query, sql_message

STATUSES = ("ok", "alarm", "info", "skip", "error")
STATUS_ORDER = ("error", "alarm", "info", "skip", "ok")  # worst first
SEVERITIES = ("critical", "high", "medium", "low", "info")
REQUIRED_COLUMNS = ("resource", "status", "reason", "account_id", "region")
HEADER_KEYS = ("id", "title", "severity", "description", "remediation", "references", "frameworks")

_HEADER_LINE = re.compile(r"^--\s?(\w+):\s*(.*)$")
_CONTINUATION = re.compile(r"^--\s{2,}(\S.*)$")


@dataclass(frozen=True)
class Control:
    id: str
    title: str
    severity: str
    description: str
    remediation: str
    references: tuple[str, ...]
    sql: str
    source: str  # where the control was read from
    # The framework requirements it gathers evidence for (its header's frameworks: line).
    frameworks: tuple[Requirement, ...] = ()

    @property
    def summary(self) -> tuple[str, str, str, str]:
        return (self.id, self.title, self.severity, self.description)


@dataclass(frozen=True)
class Finding:
    control: Control
    resource: str
    status: str
    reason: str
    account_id: str
    region: str
    dimensions: dict[str, Any] = field(default_factory=dict)
    # When the estate was observed (the collect run's finish) and that run's id.
    collected_at: str | None = None
    run_id: str | None = None
    # An accepted exception (check --exceptions) covers it: it keeps its status, is shown as
    # muted with why, and a muted alarm (or an error an entry names) does not fail the check.
    muted: int = 0
    mute_reason: str | None = None

    @property
    def requirements(self) -> tuple[Requirement, ...]:
        return self.control.frameworks


def parse_control(text: str, source: str) -> Control:
    """Parse one control file; a malformed one is a :class:`UserError` naming the file."""
    meta: dict[str, str] = {}
    last_key = None
    body_start = 0
    lines = text.splitlines()
    for number, line in enumerate(lines):
        if not line.strip():
            body_start = number + 1
            continue
        if not line.startswith("--"):
            break
        continuation = _CONTINUATION.match(line)
        header = _HEADER_LINE.match(line)
        if continuation and last_key:
            meta[last_key] += " " + continuation.group(1).strip()
        elif header:
            last_key = header.group(1).lower()
            meta[last_key] = header.group(2).strip()
        else:  # any other comment ends the value: only an indented line right after continues it
            last_key = None
        body_start = number + 1
    sql = "\n".join(lines[body_start:]).strip()
    missing = [k for k in ("id", "title", "severity", "description") if not meta.get(k)]
    if missing:
        raise UserError(f"control {source}: missing header field(s) {', '.join(missing)}")
    severity = meta["severity"].lower()
    if severity not in SEVERITIES:
        raise UserError(f"control {source}: severity must be one of {', '.join(SEVERITIES)}, not {meta['severity']!r}")
    if not sql:
        raise UserError(f"control {source}: no SQL after the header")
    references = tuple(r.strip() for r in meta.get("references", "").split() if r.strip())
    return Control(
        id=meta["id"],
        title=meta["title"],
        severity=severity,
        description=meta["description"],
        remediation=meta.get("remediation", ""),
        references=references,
        sql=sql,
        source=source,
        frameworks=parse_frameworks(meta.get("frameworks", ""), source),
    )


def bundled_controls() -> list[Control]:
    folder = resources.files("bedrock_sql.queries")
    return [
        parse_control(entry.read_text(encoding="utf-8"), f"bedrock_sql/queries/{entry.name}")
        for entry in sorted(folder.iterdir(), key=lambda e: e.name)
        if entry.name.endswith(".sql")
    ]


def load_controls(extra_dirs: Iterable[str | Path] = ()) -> list[Control]:
    """The bundled controls plus those in ``extra_dirs``; ids must be unique."""
    controls = bundled_controls()
    for folder in extra_dirs:
        path = Path(folder)
        if not path.is_dir():
            raise UserError(f"--queries {folder}: not a directory")
        files = sorted(path.glob("*.sql"))
        if not files:
            raise UserError(f"--queries {folder}: no .sql control files there")
        controls.extend(parse_control(f.read_text(encoding="utf-8"), str(f)) for f in files)
    seen: dict[str, str] = {}
    for control in controls:
        if control.id in seen:
            raise UserError(f"control id {control.id!r} is defined twice: {seen[control.id]} and {control.source}")
        seen[control.id] = control.source
    return controls


def select_controls(
    controls: list[Control], ids: Iterable[str] = (), severity: str | None = None
) -> list[Control]:
    """The controls named by ``ids`` (all when none), at ``severity`` or above."""
    by_id = {c.id: c for c in controls}
    ids = list(ids)
    unknown = [i for i in ids if i not in by_id]
    if unknown:
        raise UserError(f"unknown control {unknown[0]!r}: `bedrock-sql controls` lists them")
    chosen = [by_id[i] for i in dict.fromkeys(ids)] if ids else list(controls)
    if severity:
        severity = severity.lower()
        if severity not in SEVERITIES:
            raise UserError(f"--severity must be one of {', '.join(SEVERITIES)}")
        floor = SEVERITIES.index(severity)
        chosen = [c for c in chosen if SEVERITIES.index(c.severity) <= floor]
    return chosen


# --- the snapshot's run: what dates the evidence ------------------------------------------


@dataclass(frozen=True)
class SnapshotRun:
    """The collect run that produced a snapshot: its findings are dated by it.

    A merged snapshot (``bedrock-sql merge``) holds one run per shard: there each finding is
    dated by the run of its own account (:meth:`of_account`), and ``run_id``/``collected_at``
    are the latest run's.
    """

    run_id: str
    collected_at: str  # the run's finished_at, ISO-8601 UTC
    # Merged snapshots only: account ID -> (run_id, collected_at) of the run that collected it;
    # and shard index -> the same, for accounts no run names (unreachable ones, recorded in
    # bedrock_sql_errors by their shard's run).
    by_account: Mapping[str, tuple[str, str]] = field(default_factory=dict)
    by_shard: Mapping[int, tuple[str, str]] = field(default_factory=dict)

    def of_account(self, account_id: str) -> tuple[str, str]:
        """(run_id, collected_at) of the run that collected ``account_id``."""
        if account_id in self.by_account:
            return self.by_account[account_id]
        if self.by_shard and isinstance(account_id, str):
            shard = self.by_shard.get(shard_of(account_id, len(self.by_shard)))
            if shard:
                return shard
        return self.run_id, self.collected_at


def snapshot_run(connection: apsw.Connection) -> SnapshotRun | None:
    """The snapshot's collect run, or None when bedrock_sql_runs holds none.

    A collect writes exactly one run row. A merged snapshot holds several: the latest
    finished one dates the snapshot (as `remediate` reads it), and each account's findings
    are dated by the run whose ``accounts`` name it (the earliest, should two name it).
    """
    try:
        rows = connection.execute(
            "SELECT run_id, finished_at, accounts, notes FROM bedrock_sql_runs WHERE finished_at IS NOT NULL "
            "ORDER BY finished_at DESC"
        ).fetchall()
    except apsw.Error as exc:
        raise UserError(f"cannot read the snapshot's collect run: {sql_message(exc)}") from None
    if not rows:
        return None
    latest = SnapshotRun(run_id=str(rows[0][0]), collected_at=str(rows[0][1]))
    if len(rows) == 1:
        return latest
    by_account: dict[str, tuple[str, str]] = {}
    shards: dict[Shard, tuple[str, str]] = {}
    for run_id, finished_at, accounts, notes in rows:  # latest first: the earliest run wins
        run = (str(run_id), str(finished_at))
        by_account.update((account, run) for account in json_list(accounts))
        shard = note_shard(json_list(notes))
        if shard:
            shards[shard] = run
    counts = {shard.count for shard in shards}
    # A whole set of shards: any account, named by a run or not, belongs to one of them.
    whole = len(shards) == len(rows) and len(counts) == 1 and len(shards) == next(iter(counts))
    by_shard = {shard.index: run for shard, run in shards.items()} if whole else {}
    return replace(latest, by_account=by_account, by_shard=by_shard)


# --- running controls ------------------------------------------------------------------------


@dataclass(frozen=True)
class PreparedControl:
    """A control whose SQL compiled: its columns, and its one SELECT (to wrap in another)."""

    control: Control
    columns: tuple[str, ...]
    select: str


def prepare_control(connection: apsw.Connection, control: Control) -> PreparedControl:
    """Compile the control's SQL without running it; a bad control is a :class:`UserError`."""
    where = f"control {control.id} ({control.source})"
    try:
        info = apsw.ext.query_info(connection, control.sql)
    except apsw.AuthError:
        raise UserError(f"{where}: the snapshot is read-only: only SELECT (and reading PRAGMAs) is allowed") from None
    except apsw.Error as exc:
        raise UserError(f"{where}: SQL error: {sql_message(exc)}") from None
    if info.query_remaining and _has_statement(info.query_remaining):
        raise UserError(f"{where}: give one SQL statement")
    columns = tuple(name for name, _type in (info.description or ()))
    missing = [c for c in REQUIRED_COLUMNS if c not in columns]
    if missing:
        raise UserError(f"{where}: its SELECT lacks column(s) {', '.join(missing)}")
    # Without its final semicolon the statement nests in a FROM (...); a trailing line
    # comment stays inside the parentheses because they sit on lines of their own.
    select = info.first_query.strip().rstrip(";")
    return PreparedControl(control, columns, select)


def iter_findings(
    connection: apsw.Connection, prepared: PreparedControl, run: SnapshotRun | None
) -> Iterator[Finding]:
    """The control's findings one by one, in the order its SQL gives them."""
    yield from _findings(connection, prepared, prepared.control.sql, run)


def worst_first(
    connection: apsw.Connection, prepared: PreparedControl, run: SnapshotRun | None
) -> Iterator[Finding]:
    """The control's findings ordered by SQLite, worst status first (then by resource):
    its sorter spills to temporary files, so any number of rows is sorted in bounded memory."""
    yield from _findings(connection, prepared, worst_first_sql(prepared), run)


def worst_first_sql(prepared: PreparedControl) -> str:
    """The control's SELECT in check's order (``serve`` shows its rows in the same order)."""
    ranks = " ".join(f"WHEN '{status}' THEN {rank}" for rank, status in enumerate(STATUS_ORDER))
    # Within a status, models in use (served by a throughput or deployment) come first.
    # Unknown (NULL: what serves it could not be listed) ranks with in use: it may be.
    in_use_first = "coalesce(in_use, 1) DESC, " if "in_use" in prepared.columns else ""
    return (
        f"SELECT * FROM (\n{prepared.select}\n) "
        f"ORDER BY CASE status {ranks} END, {in_use_first}resource, account_id, region"
    )


def status_counts(connection: apsw.Connection, prepared: PreparedControl) -> dict[str, int]:
    """How many findings of each status the control gives, counted by SQLite."""
    control = prepared.control
    result = _run(control, connection, f"SELECT status, count(*) FROM (\n{prepared.select}\n) GROUP BY status")
    counts = new_counts()
    for status, count in _control_rows(control, result.rows):
        _check_status(control, status)
        counts[status] += count
        counts["total"] += count
    return counts


def _run(control: Control, connection: apsw.Connection, sql: str):
    try:
        return run_query(connection, sql)
    except UserError as exc:
        raise UserError(f"control {control.id} ({control.source}): {exc}") from None


def _findings(
    connection: apsw.Connection, prepared: PreparedControl, sql: str, run: SnapshotRun | None
) -> Iterator[Finding]:
    control = prepared.control
    result = _run(control, connection, sql)
    index = {name: i for i, name in enumerate(result.columns)}
    dimensions = [(name, i) for name, i in index.items() if name not in REQUIRED_COLUMNS]
    status_at, resource_at, reason_at = index["status"], index["resource"], index["reason"]
    account_at, region_at = index["account_id"], index["region"]
    collected_at, run_id = (run.collected_at, run.run_id) if run else (None, None)
    per_account = run is not None and bool(run.by_account or run.by_shard)  # a merged snapshot
    for row in _control_rows(control, result.rows):
        _check_status(control, row[status_at])
        if per_account:
            run_id, collected_at = run.of_account(row[account_at])
        yield Finding(
            control=control,
            resource=row[resource_at],
            status=row[status_at],
            reason=row[reason_at],
            account_id=row[account_at],
            region=row[region_at],
            dimensions={name: row[i] for name, i in dimensions},
            collected_at=collected_at,
            run_id=run_id,
        )


def _control_rows(control: Control, rows: Iterator[tuple]) -> Iterator[tuple]:
    """The rows, with an error half-way through (bad JSON, say) naming the control."""
    try:
        yield from rows
    except UserError as exc:
        raise UserError(f"control {control.id} ({control.source}): {exc}") from None


def _check_status(control: Control, status: Any) -> None:
    if status not in STATUSES:
        raise UserError(f"control {control.id}: status {status!r} is not one of {', '.join(STATUSES)}")


def run_control(connection: apsw.Connection, control: Control, run: SnapshotRun | None = None) -> list[Finding]:
    """Every finding of one control, in a list (``check`` streams them instead)."""
    return list(iter_findings(connection, prepare_control(connection, control), run))


def run_controls(connection: apsw.Connection, controls: list[Control]) -> list[Finding]:
    """Every finding of ``controls``, dated by the snapshot's run (when it records one)."""
    run = snapshot_run(connection)
    return [finding for control in controls for finding in run_control(connection, control, run)]


# --- counting -------------------------------------------------------------------------------


def muted_key(status: str) -> str:
    """The counts key of the muted findings of ``status`` (they count in ``status`` too)."""
    return f"muted_{status}"


def new_counts() -> dict[str, int]:
    return {"total": 0, **{s: 0 for s in STATUSES}, **{muted_key(s): 0 for s in STATUSES}}


def count(counts: dict[str, int], finding: Finding) -> None:
    counts["total"] += 1
    counts[finding.status] += 1
    if finding.muted:
        counts[muted_key(finding.status)] += 1


def summarize(findings: Iterable[Finding]) -> dict[str, int]:
    counts = new_counts()
    for finding in findings:
        count(counts, finding)
    return counts


def exit_code(counts: Mapping[str, int]) -> int:
    """From the counts of each status: 2 when any finding is error (error wins), 1 when any
    is alarm, else 0 (ok, info and skip are no alarm). Muted findings (an accepted
    exception covers them) do not count."""
    def unmuted(status: str) -> int:
        return counts.get(status, 0) - counts.get(muted_key(status), 0)

    return 2 if unmuted("error") else 1 if unmuted("alarm") else 0
