"""Reporting `check` results: grouped tables, brief lists, CSV/JSON rows, ASFF and OCSF.

Tabular formats go through :mod:`bedrock_sql.render` (the one place cells are formatted and
CSV is made formula-safe); this module shapes findings into rows and adds what is specific
to a compliance report (grouping, colour, summary, audit formats, dating).

Every format streams: :func:`run_check` hands each control's findings to every output as
SQLite produces them and counts the statuses on the way, so memory does not grow with the
estate. Findings are dated by the snapshot's collect run (``collected_at``, ``run_id``),
never by when `check` ran.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
import textwrap
from contextlib import contextmanager
from dataclasses import dataclass
from itertools import islice
from pathlib import Path
from typing import Callable, Iterable, Iterator, Mapping, Sequence, TextIO

import apsw
import click

from .controls import (
    SEVERITIES,
    STATUS_ORDER,
    STATUSES,
    Control,
    Finding,
    SnapshotRun,
    count,
    iter_findings,
    muted_key,
    new_counts,
    prepare_control,
    snapshot_run,
    status_counts,
    summarize,
    worst_first,
)
from .errors import UserError
from .exceptions import ExceptionFile
from .frameworks import requirement_labels
from .render import PAGE_ROWS, Styled, inert_json, markdown_text, render, row_writer, terminal_text

CHECK_FORMATS = ("table", "brief", "csv", "json", "jsonl", "markdown", "asff", "ocsf", "html")
# Formats whose stdout must stay parseable: their summary goes to stderr (html: the page is
# the whole of stdout).
MACHINE_FORMATS = {"csv", "json", "jsonl", "asff", "ocsf", "html"}
# --export: the format follows the file name (longest suffix first).
EXPORT_SUFFIXES = (
    (".asff.json", "asff"),
    (".ocsf.json", "ocsf"),
    (".jsonl", "jsonl"),
    (".json", "json"),
    (".csv", "csv"),
    (".md", "markdown"),
    (".html", "html"),
    (".htm", "html"),
)

BASE_COLUMNS = ("control_id", "control_title", "severity", "status", "reason", "resource", "account_id", "region")
# When the evidence was true: the collect run the findings were judged on.
EVIDENCE_COLUMNS = ("collected_at", "run_id")
# The audit cycle: an accepted exception covers the finding (muted 0/1 and why), and the
# framework requirements its control serves ("framework:id": a JSON array in json/jsonl,
# joined by "; " in csv and markdown).
AUDIT_COLUMNS = ("muted", "mute_reason", "requirements")
GROUPED_COLUMNS = ("status", "resource", "reason", "account_id", "region")
STATUS_COLOURS = {"ok": "green", "alarm": "red", "error": "magenta", "info": "cyan", "skip": "bright_black"}


def export_format(path: str) -> str:
    name = Path(path).name.lower()
    for suffix, fmt in EXPORT_SUFFIXES:
        if name.endswith(suffix):
            return fmt
    allowed = " ".join(s for s, _ in EXPORT_SUFFIXES)
    raise UserError(f"--export {path}: cannot tell the format from the name (use one of {allowed})")


@dataclass(frozen=True)
class Output:
    """Where one format of the report goes."""

    fmt: str
    out: TextIO
    colour: bool = False
    # The grouped table fits this many columns (a terminal's width: cells cut with "…", ARNs
    # shortened); None: every value whole (a pipe, a file, or --wide).
    width: int | None = None


@dataclass(frozen=True)
class CheckResult:
    counts: dict[str, int]  # total, each status, and the muted of each (controls.muted_key)
    run: SnapshotRun
    expired: int = 0  # exceptions that have expired (they muted nothing)


# --- the streaming check -----------------------------------------------------------------


def run_check(
    connection: apsw.Connection,
    controls: Sequence[Control],
    outputs: Sequence[Output],
    exceptions: ExceptionFile | None = None,
) -> CheckResult:
    """Run ``controls`` on the snapshot and write their findings to every output.

    With ``exceptions``, each finding an active entry covers is muted (see
    :mod:`bedrock_sql.exceptions`) before it is counted or written.

    Formats in control order (all but ``table``) get each finding as SQLite produces it, in
    one pass. The grouped table needs the controls worst first, so every control's counts,
    before its first line, and each control's rows worst first: it is written in a second
    pass, ordered by SQLite (see :func:`bedrock_sql.controls.worst_first`). Re-running the
    SQL is simpler than spilling findings to a file of our own (to create private, fill
    and always remove), and it is sound: a snapshot is never written in place (collect
    renames a new file over it; this connection keeps reading the file it opened), so both
    passes see the same rows. With the table alone, the first pass only counts, in SQL.
    """
    run = snapshot_run(connection)
    if run is None:
        raise UserError(
            "the snapshot records no collect run (bedrock_sql_runs is empty), so its findings cannot be "
            "dated: run bedrock-sql collect"
        )
    prepared = [prepare_control(connection, control) for control in controls]
    columns = flat_columns(name for p in prepared for name in p.columns)
    in_order = [_writer(output, columns, run, connection=connection, controls=controls)
                for output in outputs if output.fmt != "table"]
    mute = exceptions.muter(connection).apply if exceptions and exceptions.active else None
    per_control: dict[str, dict[str, int]] = {}
    for item in prepared:
        if in_order or mute:  # muting is per finding: SQL alone cannot count it
            counts = new_counts()
            for finding in iter_findings(connection, item, run):
                finding = mute(finding) if mute else finding
                count(counts, finding)
                for writer in in_order:
                    writer.write(finding)
        else:
            counts = status_counts(connection, item)
        per_control[item.control.id] = counts
    for writer in in_order:
        writer.close()

    by_id = {item.control.id: item for item in prepared}

    def rows_of(control: Control) -> Iterable[Finding]:
        rows = worst_first(connection, by_id[control.id], run)
        return map(mute, rows) if mute else rows

    for output in outputs:
        if output.fmt == "table":
            _write_grouped(
                [(item.control, per_control[item.control.id]) for item in prepared],
                rows_of,
                output.out,
                output.colour,
                output.width,
            )
    total = new_counts()
    for counts in per_control.values():
        for name, number in counts.items():
            total[name] += number
    return CheckResult(total, run, expired=len(exceptions.expired) if exceptions else 0)


@contextmanager
def export_files(exports: Sequence[tuple[str, str]]) -> Iterator[list[Output]]:
    """Outputs for ``--export`` (path, format) pairs, each moved into place only once the
    whole check has succeeded.

    Each is written to a temporary file beside its target (created 0600, like the snapshot:
    findings map the estate's models and keys), so a check that fails half-way leaves no
    half-written export and an earlier export whole.
    """
    staged: list[tuple[Path, Path, _ExportFile]] = []
    try:
        for path, _fmt in exports:
            target = Path(path)
            try:
                fd, partial = tempfile.mkstemp(dir=target.absolute().parent, prefix=f".{target.name}.", suffix=".partial")
            except OSError as exc:
                raise UserError(f"--export {path}: {exc.strerror}") from None
            staged.append((target, Path(partial), _ExportFile(path, open(fd, "w", encoding="utf-8", newline=""))))
        yield [Output(fmt, handle) for (_, _, handle), (_, fmt) in zip(staged, exports)]
        for target, partial, handle in staged:
            handle.close()
            try:
                os.replace(partial, target)
            except OSError as exc:
                raise UserError(f"--export {target}: {exc.strerror}") from None
    finally:
        for _, partial, handle in staged:
            handle.discard()
            partial.unlink(missing_ok=True)


class _ExportFile:
    """A text file whose write errors (a full disk, say) are one line naming the export."""

    def __init__(self, path: str, handle: TextIO):
        self.path = path
        self.handle = handle

    def write(self, text: str) -> int:
        try:
            return self.handle.write(text)
        except OSError as exc:
            raise UserError(f"--export {self.path}: {exc.strerror}") from None

    def close(self) -> None:
        try:
            self.handle.close()
        except OSError as exc:
            raise UserError(f"--export {self.path}: {exc.strerror}") from None

    def discard(self) -> None:
        try:
            self.handle.close()
        except OSError:
            pass  # already failing: the partial file is removed


# --- summaries ----------------------------------------------------------------------------


def status_summary(counts: Mapping[str, int], run: SnapshotRun | None, expired: int = 0, *,
                   inert: Callable[[object], str] = terminal_text) -> str:
    """The summary line: the count of each status (and of its muted findings, when any),
    expired exceptions, and the collect run it judged. The run's fields are read from the
    snapshot: ``inert`` makes them safe where the line goes (:func:`markdown_text` after a
    Markdown report; a terminal otherwise)."""
    text = "Summary: total " + str(counts["total"]) + "".join(f", {_counted(counts, s)}" for s in STATUSES)
    if expired:
        text += f"; {expired} exception{'s' if expired != 1 else ''} expired"
    return text + (f"; snapshot collected {inert(run.collected_at)}, run {inert(run.run_id)}" if run else "")


def fit_summary(line: str, width: int | None) -> str:
    """The summary line in lines of at most ``width`` (a terminal's): broken after its "; "
    (then, if need be, at spaces), later lines indented. With ``width`` None, as it is."""
    if width is None or len(line) <= width:
        return line
    lines: list[str] = []
    for part in line.split("; "):
        if lines and len(lines[-1]) + 2 + len(part) <= width:
            lines[-1] += "; " + part
            continue
        if lines:
            lines[-1] += ";"
        lines.extend(textwrap.wrap(part, width, initial_indent="  " if lines else "", subsequent_indent="  ",
                                   break_long_words=True, break_on_hyphens=False) or [""])
    return "\n".join(lines)


def _counted(counts: Mapping[str, int], status: str, *, first: str = "name") -> str:
    """'alarm 2 (1 muted)', or '2 alarm (1 muted)' with first='count'."""
    said = f"{status} {counts[status]}" if first == "name" else f"{counts[status]} {status}"
    muted = counts.get(muted_key(status), 0)
    return said + (f" ({muted} muted)" if muted else "")


def summary_line(findings: Sequence[Finding]) -> str:
    return status_summary(summarize(findings), _run_of(findings))


def control_summary_rows(findings: Sequence[Finding], controls: Sequence[Control]) -> list[tuple]:
    """One row per control: id, severity, then the count of each status."""
    rows = []
    for control in controls:
        counts = summarize(f for f in findings if f.control.id == control.id)
        rows.append((control.id, control.severity, *(counts[s] for s in STATUSES)))
    return rows


def _run_of(findings: Iterable[Finding]) -> SnapshotRun | None:
    for finding in findings:
        if finding.run_id and finding.collected_at:
            return SnapshotRun(finding.run_id, finding.collected_at)
    return None


# --- findings held in a list (the demo) -----------------------------------------------------


def write_report(
    findings: Sequence[Finding], controls: Sequence[Control], fmt: str, out: TextIO, *, colour: bool = False,
    width: int | None | str = "terminal",
) -> None:
    """Write ``findings`` in ``fmt`` to ``out`` (no summary: see :func:`summary_line`).

    The table fits ``width`` columns; by default the terminal's when ``out`` is one (whole
    otherwise); None: whole.

    For findings already in memory; ``check`` streams through :func:`run_check` instead.
    """
    if width == "terminal":
        width = shutil.get_terminal_size().columns if getattr(out, "isatty", lambda: False)() else None
    if fmt == "table":
        by_control: dict[str, list[Finding]] = {c.id: [] for c in controls}
        for finding in findings:
            by_control.setdefault(finding.control.id, []).append(finding)
        _write_grouped(
            [(c, summarize(by_control[c.id])) for c in controls],
            lambda control: sorted(by_control[control.id], key=lambda f: STATUS_ORDER.index(f.status)),
            out,
            colour,
            width,
        )
        return
    writer = _writer(Output(fmt, out, colour), flat_columns(n for f in findings for n in f.dimensions), _run_of(findings))
    for finding in findings:
        writer.write(finding)
    writer.close()


# --- formats ---------------------------------------------------------------------------------


def flat_columns(dimensions: Iterable[str]) -> list[str]:
    """Flat rows (Powerpipe-like): the base columns, the evidence columns, the audit
    columns, then every extra dimension of the controls, in the order they first appear."""
    fixed = (*BASE_COLUMNS, *EVIDENCE_COLUMNS, *AUDIT_COLUMNS)
    return [*fixed, *(name for name in dict.fromkeys(dimensions) if name not in fixed)]


def _writer(output: Output, columns: list[str], run: SnapshotRun | None, *,
            connection: apsw.Connection | None = None, controls: Sequence[Control] = ()):
    if output.fmt == "html":  # it reads the snapshot's runs and errors: only run_check gives it one
        from .html_report import HtmlReport

        if connection is None:
            raise ValueError("the html format is written by run_check (it reads the snapshot)")
        return HtmlReport(output.out, connection, controls, run)
    if output.fmt == "brief":
        return _Brief(output.out, output.colour)
    if output.fmt in ("asff", "ocsf"):
        from .findings import asff_finding, ocsf_event

        return _JsonArray(output.out, asff_finding if output.fmt == "asff" else ocsf_event)
    if output.fmt == "markdown" and run:
        # The run's fields come from the snapshot (a merged shard may hold anything): inert too.
        output.out.write(f"Findings of the snapshot collected {markdown_text(run.collected_at)} "
                         f"(run {markdown_text(run.run_id)}).\n\n")
    return _FlatRows(output.fmt, output.out, columns)


class _FlatRows:
    def __init__(self, fmt: str, out: TextIO, columns: list[str]):
        self.writer = row_writer(fmt, columns, out)
        self.dimensions = columns[len(BASE_COLUMNS) + len(EVIDENCE_COLUMNS) + len(AUDIT_COLUMNS):]
        self.as_array = fmt in ("json", "jsonl")  # requirements: an array there, text elsewhere
        self.for_people = fmt == "markdown"  # a muted status says so in the status cell

    def write(self, f: Finding) -> None:
        requirements = requirement_labels(f.requirements)
        status = f"{f.status} (muted)" if f.muted and self.for_people else f.status
        self.writer.write((
            f.control.id, f.control.title, f.control.severity, status, f.reason, f.resource, f.account_id, f.region,
            f.collected_at, f.run_id,
            f.muted, f.mute_reason, requirements if self.as_array else "; ".join(requirements),
            *(f.dimensions.get(name) for name in self.dimensions),
        ))

    def close(self) -> None:
        self.writer.close()


class _JsonArray:
    """One JSON array, written element by element; the text is what ``json.dump(list,
    indent=2)`` would give."""

    def __init__(self, out: TextIO, convert: Callable[[Finding], dict]):
        self.out = out
        self.convert = convert
        self.count = 0

    def write(self, finding: Finding) -> None:
        document = inert_json(json.dumps(self.convert(finding), indent=2, ensure_ascii=False))
        self.out.write(("[\n" if not self.count else ",\n") + textwrap.indent(document, "  "))
        self.count += 1

    def close(self) -> None:
        self.out.write("\n]\n" if self.count else "[]\n")


class _Brief:
    """Only what needs attention: one line per alarm or error (a muted one says so, and why
    it was accepted)."""

    def __init__(self, out: TextIO, colour: bool):
        self.out = out
        self.colour = colour

    def write(self, f: Finding) -> None:
        if f.status in ("alarm", "error"):
            # One line per finding, whatever the data holds: terminal_text turns a line break
            # into a visible \n (so no value can forge a finding's line) and defuses escapes.
            accepted = f"  [accepted: {terminal_text(f.mute_reason)}]" if f.muted else ""
            label = _status(f.status, self.colour, muted=bool(f.muted))
            self.out.write(f"{label:5}  {terminal_text(f.control.id)}  {terminal_text(f.resource)}  "
                           f"{terminal_text(f.reason)}{accepted}\n")

    def close(self) -> None:
        pass


def _status(status: str, colour: bool, muted: bool = False) -> str:
    """ALARM, or 'ALARM (muted)' (dim on a terminal: an accepted risk). Coloured, it is
    :class:`Styled`: the table keeps our escape sequences (and only ours)."""
    label = status.upper() + (" (muted)" if muted else "")
    if not colour:
        return label
    if muted:
        return Styled(click.style(label, fg=STATUS_COLOURS[status], dim=True))
    return Styled(click.style(label, fg=STATUS_COLOURS[status], bold=status in ("alarm", "error")))


def _write_grouped(
    controls: list[tuple[Control, Mapping[str, int]]],
    rows_of: Callable[[Control], Iterable[Finding]],
    out: TextIO,
    colour: bool,
    width: int | None = None,
) -> None:
    """One section per control, worst first; in each, its findings worst first. With
    ``width``, every line fits it (:func:`_fitted_rows`)."""

    def worst(item: tuple[Control, Mapping[str, int]]) -> tuple:
        control, counts = item
        return (
            min((STATUS_ORDER.index(s) for s in STATUSES if counts[s]), default=len(STATUS_ORDER)),
            SEVERITIES.index(control.severity),
            control.id,
        )

    for control, counts in sorted(controls, key=worst):
        heading = f"{control.id} [{control.severity}] {control.title}"
        heading = terminal_text(heading if width is None else _cut(heading, width))  # --queries files too
        out.write((click.style(heading, bold=True) if colour else heading) + "\n")
        out.write(
            "  " + ", ".join(_counted(counts, s, first="count") for s in STATUSES if counts[s])
            + ("\n" if counts["total"] else "no resources\n")
        )
        if counts["total"]:
            rows = (
                (_status(f.status, colour, muted=bool(f.muted)), f.resource,
                 f"{f.reason} [accepted: {f.mute_reason}]" if f.muted else f.reason, f.account_id, f.region)
                for f in rows_of(control)
            )
            if width is None:  # every value whole, on one line, even on a terminal (--wide)
                render(GROUPED_COLUMNS, rows, "table", _Whole(out))
            else:
                first = True
                while page := list(islice(rows, PAGE_ROWS)):  # as render pages: one table a page
                    if not first:
                        out.write("\n")
                    render(GROUPED_COLUMNS, _fitted_rows(page, width), "table", out)
                    first = False
        out.write("\n")


# --- a table that fits the terminal -------------------------------------------------------------


class _Whole:
    """``out`` as render sees a pipe: it lays each value out whole, on one line."""

    def __init__(self, out: TextIO):
        self.write = out.write

    @staticmethod
    def isatty() -> bool:
        return False

ELLIPSIS = "…"
_NARROWEST = 8  # a cut cell keeps at least this much (with its "…")
_REASON_AT_LEAST = 24  # the reason's room before the resource is cut too


def _shown(value: object) -> int:
    """How wide ``value`` is on the terminal, once the table has made it inert."""
    if isinstance(value, Styled):
        return len(click.unstyle(value))
    return len(terminal_text(value))


def _cut(value: str, width: int, *, keep: str = "start") -> str:
    """``value`` (raw data: the table makes it inert) cut to ``width`` shown characters, the
    cut part an ``…``: its start kept, or with ``keep="end"`` its end (an ARN's name)."""
    if _shown(value) <= width:
        return value
    room, used, kept = max(width - 1, 0), 0, 0
    for char in (value if keep == "start" else reversed(value)):
        used += len(terminal_text(char))
        if used > room:
            break
        kept += 1
    return value[:kept] + ELLIPSIS if keep == "start" else ELLIPSIS + value[len(value) - kept:]


def short_arn(resource: object, account_id: object, region: object) -> object:
    """An ARN of the row's own account and region without its prefix (``…:custom-model/NAME``):
    the account and region have columns of their own. Anything else as it is."""
    if isinstance(resource, str) and resource.startswith("arn:"):
        parts = resource.split(":", 5)
        if len(parts) == 6 and parts[3] == (region or "") and parts[4] == (account_id or "") and parts[3] and parts[4]:
            return ELLIPSIS + ":" + parts[5]
    return resource


def _fitted_rows(page: list[tuple], width: int) -> list[tuple]:
    """The rows of one table (status, resource, reason, account_id, region) cut to fit
    ``width``: ARNs shortened, then the reason cut (its start kept) and, if that is not
    enough, the resource (its end kept), each with an ``…``. Status, account and region stay
    whole."""
    rows = [(status, short_arn(resource, account, region), reason, account, region)
            for status, resource, reason, account, region in page]
    # tabulate pads a header by two (its MIN_PADDING): "| status   |".
    widths = [max([len(name) + 2] + [_shown(row[i]) for row in rows]) for i, name in enumerate(GROUPED_COLUMNS)]
    budget = width - 3 * len(GROUPED_COLUMNS) - 1  # psql borders: "| " ... " |" between columns
    room = budget - widths[0] - widths[3] - widths[4]  # for the resource and the reason
    resource_width, reason_width = widths[1], widths[2]
    if resource_width + reason_width <= room:
        return rows
    # The resource names what the row is about: whole if the reason keeps a readable start.
    if room - resource_width >= _REASON_AT_LEAST:
        resource_cap = resource_width
    else:
        resource_cap = max(room - _REASON_AT_LEAST, room // 2, _NARROWEST)
    reason_cap = max(room - resource_cap, _NARROWEST)
    return [(status, _cut(resource, resource_cap, keep="end") if isinstance(resource, str) else resource,
             _cut(reason, reason_cap) if isinstance(reason, str) else reason, account, region)
            for status, resource, reason, account, region in rows]
