"""Judging: `controls`, `check` (and its exports, exceptions, Security Hub), `diff`."""

from __future__ import annotations

import shutil
import sys
import tempfile
from pathlib import Path

import click

from ..accounts import resolve_scope
from ..aws import AwsOptions
from ..diff import DIFF_FORMATS, FAIL_ON
from ..errors import UserError
from ..exceptions import ExceptionFile, load_exceptions
from ..progress import collect_with_progress
from ..render import FORMATS, markdown_text, render, terminal_text
from ..report import CHECK_FORMATS
from ..sql import snapshot_connection
from .app import EXIT_PARTIAL, aws_options, cli, db_option, exit_on_overrun, queries_option, timeout_option


def exceptions_option(what_they_do_not: str):
    """--exceptions FILE (env BEDROCK_SQL_EXCEPTIONS), for check and diff."""
    return click.option(
        "--exceptions", "exceptions_file", envvar="BEDROCK_SQL_EXCEPTIONS", type=click.Path(dir_okay=False),
        metavar="FILE", help=f"Accepted risks (YAML or JSON): the findings they cover are shown muted and do not "
                             f"{what_they_do_not} until the entry expires (env BEDROCK_SQL_EXCEPTIONS).")


def load_exceptions_file(path: str, controls) -> ExceptionFile:
    """The exceptions file, read and checked before anything is written; its warnings said."""
    exceptions = load_exceptions(path, [c.id for c in controls])
    for warning in exceptions.warnings():
        click.echo(terminal_text(f"bedrock-sql: warning: {warning}"), err=True)  # names resources
    return exceptions


@cli.command("controls")
@queries_option
@click.option("--output", "-o", "fmt", type=click.Choice(FORMATS), default="table", show_default=True)
@click.option("--long", "long_", is_flag=True,
              help="On a terminal, also the framework requirements each control serves and its description "
                   "(always there when piped, and in every other format).")
def controls_command(query_dirs, fmt, long_):
    """The controls `check` runs: id, severity, title; and the framework requirements each
    serves and its description with --long, in every format but the table, or piped."""
    from ..controls import load_controls
    from ..frameworks import summary_text

    controls = load_controls(query_dirs)
    # The table on a terminal is the short list (the descriptions run to hundreds of characters).
    if long_ or fmt != "table" or not sys.stdout.isatty():
        render(["id", "title", "severity", "frameworks", "description"],
               [(c.id, c.title, c.severity, summary_text(c.frameworks), c.description) for c in controls], fmt,
               sys.stdout)
    else:
        render(["id", "severity", "title"], [(c.id, c.severity, c.title) for c in controls], fmt, sys.stdout)


@cli.command("check")
@db_option
@click.argument("control_ids", nargs=-1, metavar="[CONTROL_ID]...")
@click.option("--severity", type=click.Choice(["critical", "high", "medium", "low", "info"], case_sensitive=False),
              help="Only controls of this severity or higher.")
@click.option("--output", "-o", "fmt", type=click.Choice(CHECK_FORMATS), default="table", show_default=True)
@click.option("--export", "exports", multiple=True, metavar="FILE",
              help="Also write the results to FILE; the format follows the name: "
                   ".csv .json .jsonl .md .asff.json .ocsf.json .html (repeatable).")
@click.option("--wide", is_flag=True,
              help="With --output table on a terminal: every value whole (by default the table fits the terminal's "
                   "width: long reasons and resources cut with …, ARNs without their account and region).")
@click.option("--show", is_flag=True,
              help="With --export: also print the table on stdout (without --output, --export writes only the files).")
@click.option("--live", is_flag=True, help="Collect from AWS now (into a throw-away snapshot) instead of reading --db.")
@exceptions_option("fail the check")
@click.option("--framework", metavar="NAME",
              help="Only the controls mapped to this framework (e.g. nist-800-53-rev5; `bedrock-sql controls` lists them).")
@click.option("--to-security-hub", is_flag=True,
              help="Also import the findings into AWS Security Hub (BatchImportFindings), each into its own account "
                   "and region, reached with the AWS options (as for collect).")
@click.option("--dry-run", is_flag=True,
              help="With --to-security-hub: send nothing; print the calls that would be made on stdout "
                   "(a JSON line each: account_id, region, findings).")
@queries_option
@timeout_option
@aws_options
@click.pass_context
def check_command(ctx, control_ids, severity, fmt, exports, wide, show, live, exceptions_file, framework,
                  to_security_hub, dry_run, query_dirs, timeout, aws: AwsOptions):
    """Run controls (all, or those named) and report ok/alarm/info/skip/error.

    Exit code: 0 when all pass, 1 when any row is alarm, 2 when any is error (rows an
    accepted exception of --exceptions mutes do not count).
    """
    from ..controls import exit_code, load_controls, select_controls
    from ..report import MACHINE_FORMATS, Output, export_files, export_format, fit_summary, run_check, status_summary

    every_control = load_controls(query_dirs)
    controls = select_controls(every_control, control_ids, severity)
    if framework:
        from ..frameworks import select_framework

        controls = select_framework(controls, framework, every_control)
    # Read and checked before any finding is written.
    exceptions = load_exceptions_file(exceptions_file, every_control) if exceptions_file else None
    export_formats = [(path, export_format(path)) for path in exports]
    for path, _ in export_formats:  # say so now, not after every control has run
        if not Path(path).absolute().parent.is_dir():
            raise UserError(f"--export {path}: no directory {Path(path).absolute().parent}")
    if dry_run and not to_security_hub:
        raise UserError("--dry-run goes with --to-security-hub (it shows what would be sent)")
    if dry_run and ctx.get_parameter_source("fmt") != click.core.ParameterSource.DEFAULT:
        raise UserError("--dry-run writes the findings it would send on stdout: leave out --output "
                        "(--export FILE still writes a report)")
    if wide and fmt != "table":
        raise UserError(f"--wide goes with --output table (--output {fmt} is never cut)")
    if not controls:
        chosen = " and ".join(filter(None, [f"severity {severity} or higher" if severity else "",
                                            f"framework {framework}" if framework else ""]))
        click.echo(f"bedrock-sql: note: no control has {chosen}", err=True)
    machine = fmt in MACHINE_FORMATS or dry_run  # stdout carries data only: summaries go to stderr
    # `check --export FILE` writes the file, not also the table: that needs --show (or --output).
    files_only = exports and not show and ctx.get_parameter_source("fmt") == click.core.ParameterSource.DEFAULT
    terminal = sys.stdout.isatty()
    # On a terminal the table (and brief's summary) fits its width unless --wide; piped or
    # redirected, it is whole. A Markdown document is never re-flowed.
    width = shutil.get_terminal_size().columns if terminal and not wide and fmt in ("table", "brief") else None
    stdout = [] if dry_run or files_only else [Output(fmt, sys.stdout, colour=terminal, width=width)]
    # Reached before any finding is written: a credentials problem is said at once.
    scope = resolve_scope(aws) if live or (to_security_hub and not dry_run) else None
    hub = None

    def check_and_send(connection):
        nonlocal hub
        checked = run_check(connection, controls, [*stdout, *export_outputs], exceptions)
        if to_security_hub:
            from ..securityhub import to_security_hub as send

            hub = send(connection, controls, scope, max_workers=aws.max_workers, exceptions=exceptions,
                       preview=sys.stdout if dry_run else None)
        return checked

    # Findings stream to stdout and every export as the controls run (nothing is held).
    with export_files(export_formats) as export_outputs:
        if live:
            with tempfile.TemporaryDirectory(prefix="bedrock-sql-live-") as folder:
                db = Path(folder) / "live.db"
                collect_with_progress(scope, db, aws.max_workers, quiet=machine,
                                       destination="a throw-away snapshot for --live")
                with snapshot_connection(db, timeout=timeout, on_overrun=exit_on_overrun) as connection:
                    result = check_and_send(connection)
        else:
            with snapshot_connection(ctx.obj["db"], timeout=timeout, on_overrun=exit_on_overrun) as connection:
                result = check_and_send(connection)
    # Said only now: export_files has moved every file into place.
    judged = f"findings of {len(controls)} control{'s' if len(controls) != 1 else ''}"
    for path in exports:
        click.echo(terminal_text(f"bedrock-sql: wrote {path} ({judged})"), err=True)
    # After a Markdown report on stdout the line is part of that document: Markdown-safe there.
    inert = markdown_text if fmt == "markdown" and not machine else terminal_text
    summary = status_summary(result.counts, result.run, result.expired, inert=inert)
    click.echo(summary if machine else fit_summary(summary, width), err=machine)
    if hub is not None:
        for line in hub.lines():  # AWS's answers name resources: inert like any data
            click.echo(terminal_text(line), err=True)
    # Findings that did not reach Security Hub: no verdict CI may read as delivered.
    ctx.exit(EXIT_PARTIAL if hub is not None and hub.failed else exit_code(result.counts))


@cli.command("diff")
@click.argument("old", type=click.Path(path_type=Path))
@click.argument("new", type=click.Path(path_type=Path))
@click.option("--output", "-o", "fmt", type=click.Choice(DIFF_FORMATS), default="table", show_default=True)
@click.option("--all", "include_all", is_flag=True, help="Also show unchanged and out-of-scope rows.")
@click.option("--fail-on", "fail_on", multiple=True, type=click.Choice(list(FAIL_ON)),
              help="Exit 1 when some row not muted has this change (repeatable).")
@exceptions_option("count for --fail-on")
@queries_option
@timeout_option
@click.pass_context
def diff_command(ctx, old, new, fmt, include_all, fail_on, exceptions_file, query_dirs, timeout):
    """What changed from snapshot OLD (the last audit) to NEW: every control's verdict on
    every resource, before and after (new alarm, fixed, regressed, ...), and the keys and
    models that changed. Worst first; unchanged rows only with --all."""
    from ..controls import load_controls
    from ..diff import MACHINE_FORMATS, compare_snapshots, summary_line, write_diff

    controls = load_controls(query_dirs)
    exceptions = load_exceptions_file(exceptions_file, controls) if exceptions_file else None
    with compare_snapshots(old, new, controls, timeout=timeout, exceptions=exceptions,
                           on_overrun=exit_on_overrun) as comparison:
        for note in comparison.notes:  # accounts and runs read from the snapshots
            click.echo(terminal_text(f"bedrock-sql: note: {note}"), err=True)
        write_diff(comparison, fmt, sys.stdout, include_all=include_all, colour=sys.stdout.isatty())
    click.echo(summary_line(comparison, include_all=include_all,
                            inert=markdown_text if fmt == "markdown" else terminal_text), err=fmt in MACHINE_FORMATS)
    ctx.exit(1 if comparison.failing(fail_on) else 0)
