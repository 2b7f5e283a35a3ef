"""`check --export report.html` and `check --output html`: one self-contained audit report.

One HTML file: CSS, JavaScript and SVG charts inline, nothing fetched (a Content Security
Policy in the page forbids it, and lets only the report's own script and style run), so it
opens from an e-mail attachment, offline, from ``file://``.

The summaries (scope, counts per status, per control, per account and per region, in-use
alarms, what could not be read, each control's remediation and references) are HTML written
here, every value through :func:`html.escape`: they read and print without JavaScript. The
findings table is built in the browser (``templates/report.js``: filter, search, sort, pages)
from a JSON document in a ``<script type="application/json">`` element, written by
:func:`script_json` so that no value can close that element; the script puts every value on
the page as text, never as markup.

It streams like every other format: findings are counted as they come, and the table keeps
at most :data:`TABLE_LIMIT` of them -- the most severe (errors, then alarms; unmuted before
muted; models in use first) -- in a bounded heap of compact JSON rows. Counts are always
complete; the page says when the table holds fewer findings than the check gave.
"""

from __future__ import annotations

import heapq
import itertools
from dataclasses import dataclass
from typing import Any, Iterable, Mapping, TextIO

import apsw

from . import __version__
from .controls import STATUS_ORDER, Control, Finding, SnapshotRun, count, muted_key, new_counts
from .errors import UserError
from .frameworks import FRAMEWORKS
from .html_markup import (
    SEGMENTS,
    bar,
    breakable,
    cell_text,
    csp_hash,
    esc,
    filter_link,
    legend,
    listing,
    number,
    plural,
    script_json,
    stacked_table,
    status_chart,
    template,
    web_link,
)
from .shard import json_list
from .snapshot import ERRORS_TABLE, RUNS_TABLE
from .sql import sql_message

# Findings the table holds at most (a few tens of MB of page); the counts are always complete.
TABLE_LIMIT = 50_000
IN_USE_LIMIT = 200  # alarms on models in use listed in their own section
ERROR_ROWS_LIMIT = 1_000  # rows of bedrock_sql_errors listed
# A data row, by position (templates/report.js reads them so).
ROW_FIELDS = ("status", "muted", "control", "resource", "reason", "key", "account_id", "region", "in_use",
              "served_by", "mute_reason")
NOT_APPLICABLE = -1  # in_use of a control whose rows carry none (in_use NULL means unknown)
TABLE_COLUMNS = (("status", "Status"), ("control", "Control"), ("resource", "Resource"), ("reason", "Reason"),
                 ("key", "Key"), ("account", "Account"), ("region", "Region"), ("in_use", "In use"))


def _in_use(finding: Finding) -> int | None:
    """1 in use, 0 not, None unknown (what serves it could not be listed), -1 no such column."""
    if "in_use" not in finding.dimensions:
        return NOT_APPLICABLE
    value = finding.dimensions["in_use"]
    return None if value is None else int(bool(value))


def _served_by(value: Any) -> str:
    items = json_list(value)
    return ", ".join(map(str, items)) if items else ("" if isinstance(value, str) or value is None else str(value))


@dataclass(frozen=True)
class _Run:
    run_id: str
    started_at: str
    finished_at: str
    status: str
    tool_version: str
    accounts: list
    regions: list
    notes: list


class HtmlReport:
    """The HTML format: counts every finding, keeps the most severe for the table, and writes
    the page when the check is done (the summaries come first in it)."""

    def __init__(self, out: TextIO, connection: apsw.Connection, controls: Iterable[Control],
                 run: SnapshotRun | None, *, table_limit: int | None = None):
        self.out = out
        self.connection = connection
        self.controls = list(controls)
        self.index = {control.id: i for i, control in enumerate(self.controls)}
        self.run = run
        self.table_limit = TABLE_LIMIT if table_limit is None else table_limit
        self.total = new_counts()
        self.by_control = {control.id: new_counts() for control in self.controls}
        self.by_account: dict[str, dict[str, int]] = {}
        self.by_region: dict[str, dict[str, int]] = {}
        # (negated priority, JSON row): heap[0] is the least severe finding kept.
        self.kept: list[tuple[tuple[int, ...], str]] = []
        self.sequence = itertools.count()
        self.in_use_alarms: list[Finding] = []
        self.in_use_alarm_count = 0

    def write(self, finding: Finding) -> None:
        account, region = cell_text(finding.account_id), cell_text(finding.region)
        for counts in (self.total, self.by_control[finding.control.id],
                       self.by_account.setdefault(account, new_counts()),
                       self.by_region.setdefault(region, new_counts())):
            count(counts, finding)
        in_use = _in_use(finding)
        if finding.status == "alarm" and not finding.muted and in_use in (1, None):
            self.in_use_alarm_count += 1
            if len(self.in_use_alarms) < IN_USE_LIMIT:
                self.in_use_alarms.append(finding)
        priority = (STATUS_ORDER.index(finding.status), 1 if finding.muted else 0,
                    0 if in_use in (1, None) else 1, next(self.sequence))
        negated = tuple(-p for p in priority)
        if len(self.kept) >= self.table_limit and negated <= self.kept[0][0]:
            return  # no more severe than anything kept: counted only
        row = script_json([
            finding.status, 1 if finding.muted else 0, self.index[finding.control.id], cell_text(finding.resource),
            cell_text(finding.reason), cell_text(finding.dimensions.get("kms_key_arn")), account, region, in_use,
            _served_by(finding.dimensions.get("served_by")), cell_text(finding.mute_reason),
        ])
        if len(self.kept) >= self.table_limit:
            heapq.heapreplace(self.kept, (negated, row))
        else:
            heapq.heappush(self.kept, (negated, row))

    def close(self) -> None:
        css, script = template("report.css"), template("report.js")
        runs = self._runs()
        title = "Bedrock custom-model encryption: audit report"
        policy = (f"default-src 'none'; style-src {csp_hash(css)}; script-src {csp_hash(script)}; "
                  "img-src data:; base-uri 'none'; form-action 'none'")
        write = self.out.write
        write(f'<!DOCTYPE html>\n<html lang="en">\n<head>\n<meta charset="utf-8">\n'
              f'<meta name="viewport" content="width=device-width, initial-scale=1">\n'
              f'<meta http-equiv="Content-Security-Policy" content="{esc(policy)}">\n'
              f'<meta name="referrer" content="no-referrer">\n<meta name="generator" content="bedrock-sql {esc(__version__)}">\n'
              f"<title>{esc(title)}</title>\n<style>{css}</style>\n</head>\n<body>\n"
              '<a class="skip-link" href="#findings">Skip to the findings</a>\n<div class="page">\n')
        write(self._header(title, runs))
        write("<main>\n")
        write(self._summary())
        write(self._in_use_section())
        write(self._counts_section("by-control", "By control", "Control", self._control_rows()))
        write(self._counts_section("by-account", "By account", "Account", self._group_rows(self.by_account, "account")))
        write(self._counts_section("by-region", "By region", "Region", self._group_rows(self.by_region, "region")))
        write(self._errors_section())
        write(self._findings_section())
        write(self._controls_section())
        write("</main>\n")
        write(f'<footer><p>Written by bedrock-sql {esc(__version__)} from the findings of <code>bedrock-sql check</code>. '
              "Findings are dated by the collection, not by when the report was written.</p></footer>\n</div>\n")
        # {"controls": [...], "total": N, "rows": [...]}: the rows, most severe first, one by one.
        head = script_json({"controls": [{"id": c.id, "title": c.title, "severity": c.severity,
                                          "remediation": c.remediation, "references": list(c.references)}
                                         for c in self.controls],
                            "total": self.total["total"]})
        write(f'<script type="application/json" id="report-data">{head[:-1]},"rows":[')
        for position, (_, row) in enumerate(sorted(self.kept, reverse=True)):
            write(("," if position else "") + row)
        write("]}</script>\n")
        write(f"<script>{script}</script>\n</body>\n</html>\n")

    # --- the snapshot's scope and what it could not read ------------------------------------

    def _read(self, sql: str) -> list[tuple]:
        try:
            return self.connection.execute(sql).fetchall()
        except apsw.Error as exc:
            raise UserError(f"the HTML report cannot read the snapshot: {sql_message(exc)}") from None

    def _runs(self) -> list[_Run]:
        rows = self._read(
            f"SELECT run_id, started_at, finished_at, status, tool_version, accounts, regions, notes FROM {RUNS_TABLE} "
            "WHERE finished_at IS NOT NULL ORDER BY finished_at, run_id"
        )
        return [_Run(*(cell_text(v) for v in row[:5]), *(json_list(v) for v in row[5:])) for row in rows]

    def _header(self, title: str, runs: list[_Run]) -> str:
        accounts = sorted({str(a) for run in runs for a in run.accounts})
        regions = sorted({str(r) for run in runs for r in run.regions})
        collected = self.run.collected_at if self.run else ", ".join(r.finished_at for r in runs)
        run_ids = [r.run_id for r in runs]
        versions = sorted({r.tool_version for r in runs if r.tool_version})
        notes = list(dict.fromkeys(str(n) for r in runs for n in r.notes))
        items = [
            ("Accounts", listing(accounts)),
            ("Regions", listing(regions)),
            ("Collected", f"{esc(collected)} (UTC)" + (f", run status {listing(sorted({r.status for r in runs}))}"
                                                     if any(r.status != "complete" for r in runs) else "")),
            ("Run" if len(run_ids) == 1 else f"Runs ({len(run_ids)}, merged)", listing(run_ids, code=True)),
            ("Collected by", listing([f"bedrock-sql {v}" for v in versions])),
            ("Report by", f"bedrock-sql {esc(__version__)}"),
        ]
        if notes:
            items.append(("Notes", "<br>".join(esc(n) for n in notes)))
        scope = "".join(f"<dt>{name}</dt><dd>{value}</dd>" for name, value in items)
        sections = [("summary", "Summary"), ("in-use", "In use"), ("by-control", "By control"),
                    ("by-account", "By account"), ("by-region", "By region"), ("errors", "Not read"),
                    ("findings", "Findings"), ("controls", "Controls")]
        nav = "".join(f'<li><a href="#{key}">{name}</a></li>' for key, name in sections)
        lead = (f"{number(self.total['total'])} findings of {len(self.controls)} controls on the snapshot of "
                f"{plural(len(accounts), 'account')} and {plural(len(regions), 'region')}.")
        return (f'<header class="top">\n<h1>{esc(title)}</h1>\n<p class="lead">{esc(lead)}</p>\n'
                f'<dl class="scope">{scope}</dl>\n<nav class="sections" aria-label="Sections"><ul>{nav}</ul></nav>\n'
                "</header>\n")

    def _errors_section(self) -> str:
        errors = self.total["error"]
        ((failures,),) = self._read(f"SELECT count(*) FROM {ERRORS_TABLE}")
        parts = ['<section id="errors" aria-labelledby="errors-title">\n<h2 id="errors-title">What could not be read</h2>\n']
        if not errors and not failures:
            parts.append('<p class="good">Nothing: every resource was read and judged.</p>\n</section>\n')
            return "".join(parts)
        if errors:
            per_control = [(c, self.by_control[c.id]["error"]) for c in self.controls if self.by_control[c.id]["error"]]
            listed = "".join(f'<li><a href="#findings" data-filter="1" data-status="error" data-control="{self.index[c.id]}">'
                             f"{breakable(c.id)}</a>: {number(n)}</li>" for c, n in per_control)
            parts.append(f'<p class="warn">{plural(errors, "finding")} {"is" if errors == 1 else "are"} <strong>error</strong>: '
                         "a resource, or a whole listing, could not be read, so it was not judged.</p>\n"
                         f"<ul>{listed}</ul>\n")
        if failures:
            rows = self._read(
                f"SELECT account_id, region, table_name, operation, resource, error_code, message, occurred_at "
                f"FROM {ERRORS_TABLE} ORDER BY account_id, region, table_name, operation LIMIT {ERROR_ROWS_LIMIT}"
            )
            table = stacked_table(
                "AWS calls that failed during the collection",
                ("Account", "Region", "Table", "Operation", "Resource", "Error", "Message", "When"),
                ([breakable(cell_text(v)) for v in row] for row in rows),
            )
            more = (f'<p class="note">The first {number(ERROR_ROWS_LIMIT)} of {number(failures)}: '
                    f"<code>bedrock-sql query 'SELECT * FROM {ERRORS_TABLE}'</code> lists them all.</p>\n"
                    if failures > ERROR_ROWS_LIMIT else "")
            parts.append(f"<p>The collection recorded {plural(failures, 'AWS call')} that failed and cost data "
                         f"(<code>{ERRORS_TABLE}</code>):</p>\n{table}{more}")
        parts.append("</section>\n")
        return "".join(parts)

    # --- counts -------------------------------------------------------------------------------

    def _summary(self) -> str:
        total = self.total
        cards = [f'<li class="status-total" data-status="total"><span class="count">{number(total["total"])}</span> '
                 '<span class="label">total</span></li>']
        for status in STATUS_ORDER:
            muted = total[muted_key(status)]
            of_which = f'<span class="of-which">{number(muted)} muted</span>' if muted else ""
            cards.append(f'<li class="status-{status}" data-status="{status}"><span class="count">{number(total[status])}'
                         f'</span> <span class="label">{status}</span>{of_which}</li>')
        muted_total = sum(total[muted_key(s)] for s in STATUS_ORDER)
        cards.append(f'<li class="status-muted" data-status="muted"><span class="count">{number(muted_total)}</span> '
                     '<span class="label">muted</span><span class="of-which">accepted risks</span></li>')
        return ('<section id="summary" aria-labelledby="summary-title">\n<h2 id="summary-title">Summary</h2>\n'
                f'<div class="summary-body"><ul class="totals">{"".join(cards)}</ul>\n'
                f'<div class="summary-chart">{status_chart(total)}\n{legend()}</div></div>\n</section>\n')

    def _in_use_section(self) -> str:
        head = '<section id="in-use" aria-labelledby="in-use-title">\n<h2 id="in-use-title">Fix first: alarms on models in use</h2>\n'
        if not self.in_use_alarm_count:
            return head + '<p class="good">No alarm is on a model that a provisioned throughput or deployment serves.</p>\n</section>\n'
        rows = []
        for f in self.in_use_alarms:
            in_use = _in_use(f)
            served = _served_by(f.dimensions.get("served_by")) if in_use == 1 else "unknown: what serves it could not be listed"
            rows.append(['<span class="badge status-alarm">alarm</span>',
                         f'<a href="#control-{self.index[f.control.id]}">{breakable(f.control.id)}</a>',
                         breakable(cell_text(f.resource)), esc(cell_text(f.reason)), breakable(served)])
        more = (f'<p class="note">The first {number(IN_USE_LIMIT)} of {number(self.in_use_alarm_count)}; the findings '
                "table lists them all first.</p>\n" if self.in_use_alarm_count > IN_USE_LIMIT else "")
        return (head + f"<p>{plural(self.in_use_alarm_count, 'alarm')} on models that serve traffic (or may: "
                "what serves them could not be listed). They are first in the findings table too.</p>\n"
                + stacked_table("Alarms on models in use", ("Status", "Control", "Resource", "Reason", "Served by"), rows)
                + f"{more}</section>\n")

    def _control_rows(self) -> list[tuple[str, str, Mapping[str, int], dict[str, str]]]:
        def worst(control: Control) -> tuple:
            counts = self.by_control[control.id]
            return (min((STATUS_ORDER.index(s) for s in STATUS_ORDER if counts[s]), default=len(STATUS_ORDER)),
                    control.id)

        return [(f'<a href="#control-{self.index[c.id]}">{breakable(c.id)}</a><span class="title">{esc(c.title)}</span>'
                 f' <span class="severity">{esc(c.severity)}</span>',
                 c.id, self.by_control[c.id], {"control": str(self.index[c.id])})
                for c in sorted(self.controls, key=worst)]

    @staticmethod
    def _group_rows(groups: Mapping[str, Mapping[str, int]], name: str) -> list:
        def worst(item: tuple[str, Mapping[str, int]]) -> tuple:
            key, counts = item
            return (-(counts["error"] + counts["alarm"]), key)

        return [(esc(key) or "(none)", key, counts, {name: key}) for key, counts in sorted(groups.items(), key=worst)]

    @staticmethod
    def _counts_section(key: str, title: str, label: str, rows: list) -> str:
        head = (f'<th scope="col">{label}</th><th scope="col" class="num">Total</th>'
                + "".join(f'<th scope="col" class="num">{s}</th>' for s in SEGMENTS)
                + '<th scope="col">Share<span class="visually-hidden"> (chart of the same counts)</span></th>')
        body = []
        for header, _name, counts, filters in rows:
            cells = [f'<td class="num" data-status="total" data-label="total">{filter_link(counts["total"], filters)}</td>']
            for status in SEGMENTS:
                n = sum(counts[muted_key(s)] for s in STATUS_ORDER) if status == "muted" else counts[status]
                zero = ' zero' if not n else ""
                link = filter_link(n, {**filters, "status": status}) if status != "muted" else number(n)
                cells.append(f'<td class="num{zero}" data-status="{status}" data-label="{status}">{link}</td>')
            body.append(f'<tr><th scope="row">{header}</th>{"".join(cells)}<td class="chart-cell">{bar(counts)}</td></tr>\n')
        if not rows:
            body.append(f'<tr><td colspan="{len(SEGMENTS) + 3}">No findings.</td></tr>\n')
        return (f'<section id="{key}" aria-labelledby="{key}-title">\n<h2 id="{key}-title">{title}</h2>\n'
                f'<div class="table-wrap"><table class="counts"><caption class="visually-hidden">Findings {title.lower()}, '
                f'worst first; muted findings count in their status too</caption><thead><tr>{head}</tr></thead><tbody>\n'
                f"{''.join(body)}</tbody></table></div>\n</section>\n")

    # --- the findings table and the controls ------------------------------------------------

    def _findings_section(self) -> str:
        total, kept = self.total["total"], len(self.kept)
        limit_note = (f'<p class="warn">The table holds the {number(kept)} most severe of {number(total)} findings '
                      "(errors, then alarms; in-use models first); every count on this page is complete. "
                      "<code>check --export findings.csv</code> writes them all.</p>\n" if kept < total else "")
        options = {
            "status": [(s, s) for s in STATUS_ORDER],
            "control": [(str(self.index[c.id]), c.id) for c in self.controls],
            "account": [(a, a or "(none)") for a in sorted(self.by_account)],
            "region": [(r, r or "(none)") for r in sorted(self.by_region)],
        }
        selects = "".join(
            f'<div><label for="filter-{name}">{name.capitalize()}</label><select id="filter-{name}" name="{name}">'
            f'<option value="">All</option>'
            + "".join(f'<option value="{esc(value)}">{esc(text)}</option>' for value, text in values)
            + "</select></div>"
            for name, values in options.items()
        )
        # Phone width turns the table into cards, whose column headings cannot be clicked:
        # there the same sorts are a choice in the form (hidden on wider screens).
        sort_choice = ('<div class="sort-choice"><label for="findings-sort">Sort by</label>'
                       '<select id="findings-sort" name="sort">'
                       + "".join(f'<option value="{key}:{direction}"{" selected" if (key, direction) == ("status", 1) else ""}>'
                                 f'{name}, {"ascending" if direction == 1 else "descending"}</option>'
                                 for key, name in TABLE_COLUMNS for direction in (1, -1))
                       + "</select></div>")
        sorted_by = ' aria-sort="ascending"'  # the rows come in the status column's ascending order
        head = "".join(f'<th scope="col" data-sort="{key}"{sorted_by if key == "status" else ""}>'
                       f'<button type="button">{name}</button></th>' for key, name in TABLE_COLUMNS)
        return ('<section id="findings" aria-labelledby="findings-title">\n<h2 id="findings-title">Findings</h2>\n'
                '<p class="note">Most severe first: errors, then alarms (unmuted first, models in use first). '
                "Click a column heading to sort by it (on a narrow screen: Sort by); each finding that needs action says "
                "how to fix it.</p>\n"
                + limit_note
                + f'<form id="filters" class="filters" role="search" aria-label="Filter the findings" hidden>{selects}'
                '<div class="grow"><label for="filter-search">Search</label><input type="search" id="filter-search" '
                'name="search" placeholder="model, key, ARN, reason..." autocomplete="off"></div>'
                + sort_choice +
                '<div><button type="reset">Clear</button></div></form>\n'
                '<p id="findings-count" role="status" aria-live="polite"></p>\n'
                '<noscript><p class="warn">The findings table needs JavaScript. The summaries on this page are complete; '
                "<code>check --export findings.csv</code> lists every finding.</p></noscript>\n"
                '<div class="table-wrap"><table id="findings-table" class="findings stack"><caption class="visually-hidden">'
                f"Findings</caption><thead><tr>{head}</tr></thead><tbody></tbody></table></div>\n"
                '<div class="more"><button type="button" id="show-more" hidden>Show more</button>'
                '<button type="button" id="show-all" hidden>Show all</button></div>\n</section>\n')

    def _controls_section(self) -> str:
        articles = []
        for control in self.controls:
            items = [("Severity", f'<span class="severity">{esc(control.severity)}</span>'),
                     ("Description", esc(control.description))]
            if control.remediation:
                items.append(("Remediation", esc(control.remediation)))
            if control.references:
                items.append(("References", "<br>".join(web_link(r) for r in control.references)))
            if control.frameworks:
                groups: dict[str, list[str]] = {}
                for requirement in control.frameworks:
                    groups.setdefault(requirement.framework, []).append(requirement.id)
                items.append(("Frameworks", "<br>".join(
                    f"{esc(FRAMEWORKS[key].title if key in FRAMEWORKS else key)}: {esc(', '.join(ids))}"
                    for key, ids in groups.items())))
            details = "".join(f"<dt>{name}</dt><dd>{value}</dd>" for name, value in items)
            articles.append(f'<article class="control" id="control-{self.index[control.id]}" aria-labelledby="control-{self.index[control.id]}-title">'
                            f'<h3 id="control-{self.index[control.id]}-title"><code>{esc(control.id)}</code>: {esc(control.title)}</h3>'
                            f"<dl>{details}</dl></article>\n")
        return ('<section id="controls" aria-labelledby="controls-title">\n<h2 id="controls-title">Controls</h2>\n'
                + "".join(articles) + "</section>\n")

