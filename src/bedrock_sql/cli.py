"""The ``bedrock-sql`` command line: parses options, calls the library, renders results.

Every user mistake ends as one line on stderr and exit code 2 (see :func:`main`).
"""

from __future__ import annotations

import functools
import os
import sys
import tempfile
import threading
import time
from pathlib import Path

import click

from . import __version__
from .accounts import resolve_scope
from .aws import DEFAULT_MAX_WORKERS, AwsOptions
from .engine import ErrorLog, ErrorRecord
from .errors import UserError
from .render import FORMATS, render
from .report import CHECK_FORMATS
from .snapshot import CollectResult, collect
from .sql import run_query, snapshot_connection, live_connection

EXIT_OK, EXIT_PARTIAL, EXIT_USAGE = 0, 2, 2


def aws_options(fn):
    """The AWS options shared by collect, live query and remediate (DESIGN.md).

    Only parsing here: :func:`bedrock_sql.accounts.resolve_scope` validates and resolves them.
    """
    options = [
        click.option("--profile", "profiles", multiple=True, metavar="NAME", help="AWS profile to scan (repeatable, one account each)."),
        click.option("--region", "regions", multiple=True, metavar="NAME", help="Region to scan (repeatable). Default: the session's region."),
        click.option("--all-regions", is_flag=True, help="Every region where Bedrock is offered and the account has enabled."),
        click.option("--role-arn", "role_arns", multiple=True, metavar="ARN", help="Role to assume in each account (repeatable)."),
        click.option("--external-id", metavar="ID", help="External ID for the roles of --role-arn, --org-role, --accounts-file."),
        click.option("--org-role", metavar="NAME",
                     help="Assume role NAME in every active account of the AWS Organization (run from the management or a delegated administrator account)."),
        click.option("--org-exclude", "org_exclude", multiple=True, metavar="ID", help="An account --org-role skips (repeatable)."),
        click.option("--accounts-file", type=click.Path(dir_okay=False), metavar="FILE",
                     help="CSV or JSON: account_id, role_arn or profile, regions (optional) of each account to audit."),
        click.option("--endpoint-url", metavar="URL", help="Custom AWS endpoint (AWS_ENDPOINT_URL works too)."),
        click.option("--max-workers", type=click.IntRange(min=1), default=DEFAULT_MAX_WORKERS, show_default=True, help="Concurrent AWS calls."),
    ]
    for option in reversed(options):
        fn = option(fn)

    @functools.wraps(fn)
    def wrapper(*args, profiles, regions, all_regions, role_arns, external_id, org_role, org_exclude, accounts_file,
                endpoint_url, max_workers, **kwargs):
        kwargs["aws"] = AwsOptions(
            profiles=tuple(profiles),
            regions=tuple(regions),
            all_regions=all_regions,
            role_arns=tuple(role_arns),
            external_id=external_id,
            endpoint_url=endpoint_url,
            max_workers=max_workers,
            org_role=org_role,
            org_exclude=tuple(org_exclude),
            accounts_file=accounts_file,
        )
        return fn(*args, **kwargs)

    return wrapper


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="bedrock-sql")
@click.option(
    "--db",
    default="bedrock.db",
    show_default=True,
    envvar="BEDROCK_SQL_DB",
    type=click.Path(dir_okay=False),
    help="The snapshot file (env BEDROCK_SQL_DB).",
)
@click.pass_context
def cli(ctx, db):
    """Prove that Amazon Bedrock custom models are encrypted with KMS customer-managed
    keys, across every account and region, with SQL."""
    ctx.obj = {"db": Path(db)}


# --- collect --------------------------------------------------------------------------


@cli.command("collect")
@aws_options
@click.option("--quiet", "-q", is_flag=True, help="No progress bar or summary.")
@click.pass_context
def collect_command(ctx, aws: AwsOptions, quiet: bool):
    """Snapshot custom models, customization jobs, KMS keys and aliases into --db."""
    db = ctx.obj["db"]
    result = _collect_with_progress(resolve_scope(aws), db, aws.max_workers, quiet)
    ctx.exit(EXIT_PARTIAL if result.errors else EXIT_OK)


def _collect_with_progress(scope, db: Path, max_workers: int, quiet: bool, destination: str | None = None) -> CollectResult:
    from .providers import TABLES

    started = time.monotonic()
    with _progress(len(scope.units) * len(TABLES), not quiet and sys.stderr.isatty()) as advance:
        result = collect(scope, db, max_workers=max_workers, on_unit_done=advance)
    if not quiet:
        _print_collect_summary(result, time.monotonic() - started, destination or str(result.path))
    return result


class _progress:
    """A click progress bar on stderr, advanced from worker threads; silent when piped."""

    def __init__(self, length: int, enabled: bool):
        self.bar = (
            click.progressbar(length=length, label="Collecting", file=sys.stderr, show_pos=True)
            if enabled
            else None
        )
        self.lock = threading.Lock()

    def __enter__(self):
        if self.bar:
            self.bar.__enter__()
        return self.advance

    def advance(self, table_name, unit):
        if self.bar:
            with self.lock:
                self.bar.update(1)

    def __exit__(self, *exc):
        if self.bar:
            self.bar.__exit__(*exc)


def _print_collect_summary(result: CollectResult, seconds: float, destination: str) -> None:
    counts = ", ".join(f"{n} {name}" for name, n in result.row_counts.items())
    echo = functools.partial(click.echo, err=True)
    echo(
        f"Collected {counts} from {len(result.scope.accounts)} account(s) and "
        f"{len(result.scope.regions)} region(s) in {seconds:.1f}s ({result.api_calls} API calls) -> {destination}"
    )
    for note in result.scope.notes:
        echo(f"Note: {note}")
    failed = result.scope.failed_accounts
    if failed:
        echo(f"Partial snapshot: {len(failed)} account(s) could not be reached (recorded in bedrock_sql_errors "
             "for every table and region; the controls answer error there):")
        for account in failed[:10]:
            echo(f"  {account}")
        if len(failed) > 10:
            echo(f"  ... and {len(failed) - 10} more")
    unreached = {a.account_id for a in failed}
    errors = [e for e in result.errors if e.account_id not in unreached]
    if errors:
        echo(f"Partial snapshot: {len(errors)} AWS call(s) failed (see table bedrock_sql_errors):")
        _echo_errors(errors)


def _echo_errors(errors: list[ErrorRecord], limit: int = 10) -> None:
    for record in errors[:limit]:
        what = f" {record.resource}" if record.resource else ""
        click.echo(
            f"  {record.account_id}/{record.region} {record.table_name}: {record.operation}{what}: "
            f"{record.error_code}: {record.message}",
            err=True,
        )
    if len(errors) > limit:
        click.echo(f"  ... and {len(errors) - limit} more", err=True)


# --- query ----------------------------------------------------------------------------


@cli.command("query")
@click.argument("sql", required=False)
@click.option("-f", "--file", "sql_file", type=click.File("r"), help="Read the SQL from FILE.")
@click.option("--output", "-o", "fmt", type=click.Choice(FORMATS), default="table", show_default=True)
@click.option("--live", is_flag=True, help="Answer from AWS through the virtual tables, not the snapshot.")
@aws_options
@click.pass_context
def query_command(ctx, sql, sql_file, fmt, live, aws: AwsOptions):
    """Run one read-only SQL statement (SQL, -f FILE, or - for stdin)."""
    if sql and sql_file:
        raise UserError("give the SQL as an argument or with -f, not both")
    if sql == "-":
        sql = sys.stdin.read()
    elif sql_file:
        sql = sql_file.read()
    if not sql:
        raise UserError("no SQL given: bedrock-sql query 'SELECT ...' (or -f FILE, or - for stdin)")
    if live:
        errors = ErrorLog()
        with live_connection(aws, errors) as connection:
            result = run_query(connection, sql)
            render(result.columns, result.rows, fmt, sys.stdout)
        if errors:
            click.echo(f"warning: {len(errors)} AWS call(s) failed; these results are incomplete:", err=True)
            _echo_errors(errors.records())
            ctx.exit(EXIT_PARTIAL)
        return
    with snapshot_connection(ctx.obj["db"]) as connection:
        result = run_query(connection, sql)
        render(result.columns, result.rows, fmt, sys.stdout)


# --- shell, tables, schema ------------------------------------------------------------


@cli.command("shell")
@click.pass_context
def shell_command(ctx):
    """Interactive SQL shell (apsw's) on the snapshot, read-only."""
    import apsw.shell

    with snapshot_connection(ctx.obj["db"]) as connection:
        shell = apsw.shell.Shell(db=connection)
        shell.cmdloop(intro=f"bedrock-sql {__version__} - read-only snapshot {ctx.obj['db']}. .tables, .schema, .help; .quit to leave.")


@cli.command("tables")
@click.option("--output", "-o", "fmt", type=click.Choice(FORMATS), default="table", show_default=True)
@click.pass_context
def tables_command(ctx, fmt):
    """The snapshot's tables with their row counts."""
    from .snapshot import table_counts

    with snapshot_connection(ctx.obj["db"]) as connection:
        render(["table", "rows"], table_counts(connection), fmt, sys.stdout)


@cli.command("schema")
@click.argument("table", required=False)
@click.option("--output", "-o", "fmt", type=click.Choice(FORMATS), default="table", show_default=True)
def schema_command(table, fmt):
    """Columns, types and descriptions of every table (or of TABLE)."""
    from .catalog import schema_rows

    render(["table", "column", "type", "description"], schema_rows(table), fmt, sys.stdout)


# --- controls and check --------------------------------------------------------------

queries_option = click.option(
    "--queries",
    "query_dirs",
    multiple=True,
    type=click.Path(file_okay=False),
    metavar="DIR",
    help="Add your own controls from DIR (same format as the bundled ones; repeatable).",
)


@cli.command("controls")
@queries_option
@click.option("--output", "-o", "fmt", type=click.Choice(FORMATS), default="table", show_default=True)
def controls_command(query_dirs, fmt):
    """The controls `check` runs: id, title, severity, description."""
    from .controls import load_controls

    controls = load_controls(query_dirs)
    render(["id", "title", "severity", "description"], [c.summary for c in controls], fmt, sys.stdout)


@cli.command("check")
@click.argument("control_ids", nargs=-1, metavar="[CONTROL_ID]...")
@click.option("--severity", type=click.Choice(["critical", "high", "medium", "low", "info"], case_sensitive=False),
              help="Only controls of this severity or higher.")
@click.option("--output", "-o", "fmt", type=click.Choice(CHECK_FORMATS), default="table", show_default=True)
@click.option("--export", "exports", multiple=True, metavar="FILE",
              help="Also write the results to FILE; the format follows the name: "
                   ".csv .json .jsonl .md .asff.json .ocsf.json (repeatable).")
@click.option("--live", is_flag=True, help="Collect from AWS now (into a throw-away snapshot) instead of reading --db.")
@queries_option
@aws_options
@click.pass_context
def check_command(ctx, control_ids, severity, fmt, exports, live, query_dirs, aws: AwsOptions):
    """Run controls (all, or those named) and report ok/alarm/info/skip/error.

    Exit code: 0 when all pass, 1 when any row is alarm, 2 when any is error.
    """
    from .controls import exit_code, load_controls, run_controls, select_controls
    from .report import MACHINE_FORMATS, export_format, summary_line, write_report

    controls = select_controls(load_controls(query_dirs), control_ids, severity)
    export_formats = [(path, export_format(path)) for path in exports]
    for path, _ in export_formats:  # say so now, not after every control has run
        if not Path(path).absolute().parent.is_dir():
            raise UserError(f"--export {path}: no directory {Path(path).absolute().parent}")
    if not controls:
        click.echo(f"bedrock-sql: note: no control has severity {severity} or higher", err=True)
    if live:
        with tempfile.TemporaryDirectory(prefix="bedrock-sql-live-") as folder:
            db = Path(folder) / "live.db"
            scope = resolve_scope(aws)
            _collect_with_progress(scope, db, aws.max_workers, quiet=fmt in MACHINE_FORMATS,
                                   destination="a throw-away snapshot for --live")
            with snapshot_connection(db) as connection:
                findings = run_controls(connection, controls)
    else:
        with snapshot_connection(ctx.obj["db"]) as connection:
            findings = run_controls(connection, controls)

    write_report(findings, controls, fmt, sys.stdout, colour=sys.stdout.isatty())
    for path, export_fmt in export_formats:
        try:
            # 0600 like the snapshot: findings map the estate's models and keys too.
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
            with open(fd, "w", encoding="utf-8", newline="") as handle:
                write_report(findings, controls, export_fmt, handle)
        except OSError as exc:
            raise UserError(f"--export {path}: {exc.strerror}") from None
    click.echo(summary_line(findings), err=fmt in MACHINE_FORMATS)
    ctx.exit(exit_code(findings))


# --- remediate ------------------------------------------------------------------------


@cli.command("remediate")
@click.option("--model", "models", multiple=True, metavar="ARN",
              help="Remediate this model (repeatable). Default: every model failing bedrock_custom_model_encrypted_with_cmk.")
@click.option("--kms-key", "kms_keys", multiple=True, metavar="ARN",
              help="An existing customer-managed key for the new models (repeatable: one per region).")
@click.option("--create-key", is_flag=True, help="Create one key per account and region (needs --alias).")
@click.option("--alias", metavar="alias/NAME", help="The alias of the keys --create-key creates (an existing one is reused).")
@click.option("--key-admin-role", "key_admin_roles", multiple=True, metavar="ARN",
              help="A role that administers the new keys (repeatable).")
@click.option("--suffix", default="-cmk", show_default=True, help="Appended to the names of the new jobs and models.")
@click.option("--output", "-o", "fmt", type=click.Choice(["script", "json"]), default="script", show_default=True,
              help="script: a bash script of AWS CLI commands (and key policies) in --out-dir; json: the steps on stdout.")
@click.option("--out-dir", type=click.Path(file_okay=False), default=".", show_default=True,
              help="Where the script and key policies are written.")
@click.option("--force", is_flag=True, help="Overwrite the script and key policies in --out-dir.")
@click.option("--apply", "apply_", is_flag=True, help="Carry out the plan in AWS now (after a confirmation).")
@click.option("--yes", "-y", is_flag=True, help="With --apply: do not ask for confirmation.")
@aws_options
@click.pass_context
def remediate_command(ctx, models, kms_keys, create_key, alias, key_admin_roles, suffix, fmt, out_dir, force, apply_, yes,
                      aws: AwsOptions):
    """Plan (default) or --apply the fix for models without a customer-managed key: a CMK,
    and each model's customization job started again with it. Nothing changes in AWS
    without --apply, and nothing is ever deleted."""
    import json

    from .remediate import LiveAws, apply_plan, apply_report, describe_plan, plan_json, plan_remediation, write_script

    if apply_:
        given = [name for name in ("fmt", "out_dir", "force") if ctx.get_parameter_source(name) != click.core.ParameterSource.DEFAULT]
        if given:
            raise UserError(f"--apply acts in AWS and writes no plan: leave out --{given[0].replace('fmt', 'output').replace('_', '-')}")
        if not yes and not sys.stdin.isatty():
            raise UserError("--apply changes AWS: confirm on a terminal, or pass --yes")
    live = LiveAws(aws)
    with snapshot_connection(ctx.obj["db"]) as connection:
        plan = plan_remediation(
            connection,
            models=models,
            kms_key=kms_keys,
            create_key=create_key,
            alias=alias,
            key_admin_roles=key_admin_roles,
            suffix=suffix,
            regions=aws.regions,
            source_job_lookup=live.job,
            key_lookup=live.key if apply_ else None,
            snapshot=str(ctx.obj["db"]),
        )
    for warning in plan.warnings:
        click.echo(f"bedrock-sql: warning: {warning}", err=True)
    if plan.empty:
        click.echo(f"bedrock-sql: {plan.nothing_message}", err=True)
        if fmt == "json" and not apply_:
            click.echo("[]")
        return
    if apply_:
        click.echo("\n".join(describe_plan(plan)))
        if not yes and not click.confirm("Create these in AWS?", default=False):
            click.echo("Nothing changed in AWS.", err=True)
            ctx.exit(1)
        result = apply_plan(plan, live, on_event=click.echo)
        click.echo("\n".join(apply_report(plan, result)))
        return
    if fmt == "json":
        click.echo(json.dumps(plan_json(plan), indent=2))
        return
    written = write_script(plan, out_dir, force=force)
    click.echo("\n".join(describe_plan(plan)))
    click.echo(f"Wrote {written[0]}" + (f" and {len(written) - 1} key policy file(s) beside it" if len(written) > 1 else "") + ".")
    click.echo(f"Review it, then run: bash {written[0]}   (or: bedrock-sql remediate ... --apply)")


# --- demo -----------------------------------------------------------------------------


@cli.command("demo")
@click.pass_context
def demo_command(ctx):
    """Collect a simulated AWS estate (moto, offline) and show what an analyst looks at first."""
    from .demo import run_demo

    db = ctx.obj["db"]
    if ctx.parent.get_parameter_source("db") == click.core.ParameterSource.DEFAULT:
        db = Path("bedrock-demo.db")  # never overwrite a real snapshot with simulated data
    ctx.exit(run_demo(db, sys.stdout))


# --- entry point ----------------------------------------------------------------------


def _one_line(message: str) -> str:
    """The message on one line: SQLite quotes the rest of a multi-line query in some errors
    (an unterminated string, say), which would otherwise spill over several lines."""
    return " ".join(part.strip() for part in message.splitlines() if part.strip())


def main(argv: list[str] | None = None) -> None:
    """Run the CLI; user mistakes become one line on stderr and exit 2."""
    try:
        code = cli.main(args=argv, prog_name="bedrock-sql", standalone_mode=False)
    except click.exceptions.Exit as exc:
        code = exc.exit_code
    except click.exceptions.NoArgsIsHelpError as exc:  # plain `bedrock-sql`: show the help
        click.echo(exc.ctx.get_help())
        code = 0
    except click.UsageError as exc:
        message = _one_line(exc.format_message())
        if "--db" in message and "No such option" in message:
            message += " (--db is a global option: bedrock-sql --db PATH COMMAND ...)"
        click.echo(f"bedrock-sql: error: {message}", err=True)
        code = EXIT_USAGE
    except click.ClickException as exc:
        click.echo(f"bedrock-sql: error: {_one_line(exc.format_message())}", err=True)
        code = exc.exit_code
    except UserError as exc:
        click.echo(f"bedrock-sql: error: {_one_line(str(exc))}", err=True)
        code = EXIT_USAGE
    except (click.Abort, KeyboardInterrupt):
        # Ctrl-C (click reports it as Abort). The partial snapshot is already gone; exit
        # now rather than wait for AWS calls still in flight in worker threads.
        click.echo("bedrock-sql: interrupted", err=True)
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(130)
    except BrokenPipeError:
        # `bedrock-sql query ... | head`: the reader left; that is not an error.
        sys.stderr.close()
        code = 0
    sys.exit(code or 0)


if __name__ == "__main__":
    main()
