"""Controls: plain SQL files with a metadata header, run over a snapshot.

A control file (``queries/<id>.sql``) starts with ``-- key: value`` comment lines
(id, title, severity, description, remediation, references; an indented ``--   ...`` line
continues the previous value) followed by one SELECT that returns at least
``resource, status, reason, account_id, region``. Any other column is kept as an extra
dimension of the finding.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any, Iterable

import apsw

from .errors import UserError
from .sql import run_query

STATUSES = ("ok", "alarm", "info", "skip", "error")
SEVERITIES = ("critical", "high", "medium", "low", "info")
REQUIRED_COLUMNS = ("resource", "status", "reason", "account_id", "region")
HEADER_KEYS = ("id", "title", "severity", "description", "remediation", "references")

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


def run_control(connection: apsw.Connection, control: Control) -> list[Finding]:
    try:
        result = run_query(connection, control.sql)
        rows = list(result.rows)
    except UserError as exc:
        raise UserError(f"control {control.id} ({control.source}): {exc}") from None
    missing = [c for c in REQUIRED_COLUMNS if c not in result.columns]
    if missing:
        raise UserError(f"control {control.id} ({control.source}): its SELECT lacks column(s) {', '.join(missing)}")
    index = {name: i for i, name in enumerate(result.columns)}
    findings = []
    for row in rows:
        status = row[index["status"]]
        if status not in STATUSES:
            raise UserError(f"control {control.id}: status {status!r} is not one of {', '.join(STATUSES)}")
        findings.append(
            Finding(
                control=control,
                resource=row[index["resource"]],
                status=status,
                reason=row[index["reason"]],
                account_id=row[index["account_id"]],
                region=row[index["region"]],
                dimensions={
                    name: row[i] for name, i in index.items() if name not in REQUIRED_COLUMNS
                },
            )
        )
    return findings


def run_controls(connection: apsw.Connection, controls: list[Control]) -> list[Finding]:
    return [finding for control in controls for finding in run_control(connection, control)]


def summarize(findings: Iterable[Finding]) -> dict[str, int]:
    counts = {"total": 0, **{s: 0 for s in STATUSES}}
    for finding in findings:
        counts["total"] += 1
        counts[finding.status] += 1
    return counts


def exit_code(findings: Iterable[Finding]) -> int:
    """2 when any finding is error (error wins), 1 when any is alarm, else 0."""
    statuses = {f.status for f in findings}
    return 2 if "error" in statuses else 1 if "alarm" in statuses else 0
