"""Rendering `check` results: grouped tables, brief lists, CSV/JSON rows, ASFF and OCSF.

Tabular formats go through :func:`bedrock_sql.render.render` (the one place cells are
formatted and CSV is made formula-safe); this module only shapes findings into rows and
adds what is specific to a compliance report (grouping, colour, summary, audit formats).
"""

from __future__ import annotations

import json
from datetime import datetime, timezone
from pathlib import Path
from typing import Sequence, TextIO

import click

from .controls import SEVERITIES, STATUSES, Control, Finding, summarize
from .errors import UserError
from .render import render

CHECK_FORMATS = ("table", "brief", "csv", "json", "jsonl", "markdown", "asff", "ocsf")
# Formats whose stdout must stay parseable: their summary goes to stderr.
MACHINE_FORMATS = {"csv", "json", "jsonl", "asff", "ocsf"}
# --export: the format follows the file name (longest suffix first).
EXPORT_SUFFIXES = (
    (".asff.json", "asff"),
    (".ocsf.json", "ocsf"),
    (".jsonl", "jsonl"),
    (".json", "json"),
    (".csv", "csv"),
    (".md", "markdown"),
)

BASE_COLUMNS = ("control_id", "control_title", "severity", "status", "reason", "resource", "account_id", "region")
STATUS_ORDER = ("error", "alarm", "info", "skip", "ok")
STATUS_COLOURS = {"ok": "green", "alarm": "red", "error": "magenta", "info": "cyan", "skip": "bright_black"}


def export_format(path: str) -> str:
    name = Path(path).name.lower()
    for suffix, fmt in EXPORT_SUFFIXES:
        if name.endswith(suffix):
            return fmt
    allowed = " ".join(s for s, _ in EXPORT_SUFFIXES)
    raise UserError(f"--export {path}: cannot tell the format from the name (use one of {allowed})")


def finding_rows(findings: Sequence[Finding]) -> tuple[list[str], list[tuple]]:
    """Flat rows (Powerpipe-like): the base columns, then every extra dimension."""
    dimensions: list[str] = []
    for finding in findings:
        for name in finding.dimensions:
            if name not in dimensions and name not in BASE_COLUMNS:
                dimensions.append(name)
    rows = [
        (
            f.control.id,
            f.control.title,
            f.control.severity,
            f.status,
            f.reason,
            f.resource,
            f.account_id,
            f.region,
            *(f.dimensions.get(name) for name in dimensions),
        )
        for f in findings
    ]
    return [*BASE_COLUMNS, *dimensions], rows


def control_summary_rows(findings: Sequence[Finding], controls: Sequence[Control]) -> list[tuple]:
    """One row per control: id, severity, then the count of each status."""
    rows = []
    for control in controls:
        counts = summarize(f for f in findings if f.control.id == control.id)
        rows.append((control.id, control.severity, *(counts[s] for s in STATUSES)))
    return rows


def summary_line(findings: Sequence[Finding]) -> str:
    counts = summarize(findings)
    return "Summary: " + ", ".join(f"{name} {counts[name]}" for name in ("total", *STATUSES))


def write_report(
    findings: Sequence[Finding], controls: Sequence[Control], fmt: str, out: TextIO, *, colour: bool = False
) -> None:
    """Write ``findings`` in ``fmt`` to ``out`` (no summary: see :func:`summary_line`)."""
    if fmt == "table":
        _write_grouped(findings, controls, out, colour)
    elif fmt == "brief":
        _write_brief(findings, out, colour)
    elif fmt in ("asff", "ocsf"):
        from .findings import to_asff, to_ocsf

        now = datetime.now(timezone.utc)
        documents = to_asff(findings, generated_at=now) if fmt == "asff" else to_ocsf(findings, generated_at=now)
        json.dump(documents, out, indent=2)
        out.write("\n")
    else:
        columns, rows = finding_rows(findings)
        render(columns, rows, fmt, out)


def _status(status: str, colour: bool) -> str:
    label = status.upper()
    return click.style(label, fg=STATUS_COLOURS[status], bold=status in ("alarm", "error")) if colour else label


def _write_grouped(findings: Sequence[Finding], controls: Sequence[Control], out: TextIO, colour: bool) -> None:
    by_control: dict[str, list[Finding]] = {c.id: [] for c in controls}
    for finding in findings:
        by_control.setdefault(finding.control.id, []).append(finding)
    def worst_first(control: Control) -> tuple:
        statuses = {f.status for f in by_control.get(control.id, [])}
        return (
            min((STATUS_ORDER.index(s) for s in statuses), default=len(STATUS_ORDER)),
            SEVERITIES.index(control.severity),
            control.id,
        )

    for control in sorted(controls, key=worst_first):
        results = by_control.get(control.id, [])
        counts = summarize(results)
        heading = f"{control.id} [{control.severity}] {control.title}"
        out.write((click.style(heading, bold=True) if colour else heading) + "\n")
        out.write(
            "  " + ", ".join(f"{counts[s]} {s}" for s in STATUSES if counts[s]) + ("\n" if results else "no resources\n")
        )
        if results:
            worst_first = sorted(results, key=lambda f: STATUS_ORDER.index(f.status))
            rows = [(_status(f.status, colour), f.resource, f.reason, f.account_id, f.region) for f in worst_first]
            render(["status", "resource", "reason", "account_id", "region"], rows, "table", out)
        out.write("\n")


def _write_brief(findings: Sequence[Finding], out: TextIO, colour: bool) -> None:
    for f in findings:
        if f.status in ("alarm", "error"):
            out.write(f"{_status(f.status, colour):5}  {f.control.id}  {f.resource}  {f.reason}\n")
