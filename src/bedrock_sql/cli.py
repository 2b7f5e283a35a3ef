"""The ``bedrock-sql`` command line: parses options, calls the library, renders results.

Every user mistake ends as one line on stderr and exit code 2 (see :func:`main`).
"""

from __future__ import annotations

import functools
import os
import sys
import tempfile
from pathlib import Path

import click

from . import __version__
from .accounts import resolve_scope
from .aws import DEFAULT_MAX_WORKERS, ApiError, AwsOptions
from .engine import ErrorLog
from .errors import BOTOCORE_FAILURES, UserError, api_call_of, aws_failure_message
from .render import FORMATS, render
from .shard import Shard, parse_shard
from .report import CHECK_FORMATS
from .diff import DIFF_FORMATS, FAIL_ON
from .kms_need import DEFAULT_KMS_KEY_MODE, KMS_KEY_MODES
from .model_context import DEFAULT_MODEL_CONTEXT, MODEL_CONTEXT_MODES
from .progress import collect_with_progress, echo_errors
from .sql import StatementTimeout, checked_timeout, live_connection, run_query, snapshot_connection

EXIT_OK, EXIT_PARTIAL, EXIT_USAGE = 0, 2, 2
EXIT_INTERRUPTED = 130  # 128 + SIGINT, as shells report Ctrl-C
# A failed AWS call or network failure (after the retries): one line and exit 2, never a traceback.
AWS_FAILURES = (*BOTOCORE_FAILURES, ApiError)


def is_aws_failure(exc: BaseException) -> bool:
    """One of :data:`AWS_FAILURES`, or anything raised inside a botocore call: its parsers
    raise KeyError and the like on answers that are not AWS's (an HTML page)."""
    return not isinstance(exc, UserError) and (isinstance(exc, AWS_FAILURES) or api_call_of(exc) is not None)


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
        try:
            return fn(*args, **kwargs)
        except Exception as exc:
            # An AWS or network failure the library let through (an HTML answer to STS, say):
            # one line naming the endpoint when it is a custom one, exit 2.
            if not is_aws_failure(exc):
                raise
            raise UserError(aws_failure_message(exc, endpoint_url or os.environ.get("AWS_ENDPOINT_URL"))) from exc

    return wrapper


class _ReaderLeft(Exception):
    """stdout's reader went away (``bedrock-sql query ... | head``); args: the command."""


class _Group(click.Group):
    def invoke(self, ctx: click.Context):
        # click answers a broken pipe itself with exit 1 (the code that means "alarm"): take
        # it first, as something click does not catch, and let main() exit 0.
        try:
            return super().invoke(ctx)
        except BrokenPipeError:
            raise _ReaderLeft(ctx.invoked_subcommand) from None


@click.group(cls=_Group, context_settings={"help_option_names": ["-h", "--help"]})
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
@click.option("--force", is_flag=True, help="Replace --db even if it is not a bedrock-sql snapshot.")
@click.option("--shard", metavar="I/N", callback=lambda ctx, param, text: parse_shard(text) if text is not None else None,
              help="Collect only shard I of N (0 <= I < N): the accounts whose SHA-256 of the account ID, modulo N, "
                   "is I. Merge the N snapshots with bedrock-sql merge.")
@click.option("--kms-keys", "kms_keys", type=click.Choice(KMS_KEY_MODES), default=DEFAULT_KMS_KEY_MODE,
              show_default=True,
              help="needed: only the KMS keys Bedrock resources name, and the aliases of the accounts and regions "
                   "holding them (the verdicts are the same); all: every key and alias of every account and region.")
@click.option("--model-context", "model_context", type=click.Choice(MODEL_CONTEXT_MODES),
              default=DEFAULT_MODEL_CONTEXT, show_default=True,
              help="needed: list import and copy jobs, provisioned throughputs and custom model deployments only in "
                   "the accounts and regions holding custom or imported models (the verdicts are the same); all: in "
                   "every account and region.")
@click.pass_context
def collect_command(ctx, aws: AwsOptions, quiet: bool, force: bool, shard: Shard | None, kms_keys: str,
                    model_context: str):
    """Snapshot custom, imported and copied models, their jobs, what serves them, KMS keys
    and aliases into --db."""
    from .snapshot_file import check_replaceable

    db = ctx.obj["db"]
    check_replaceable(db, force=force)  # before any AWS call: say so at once (collect checks again)
    scope = resolve_scope(aws, shard)
    result = collect_with_progress(scope, db, aws.max_workers, quiet, force=force, kms_keys=kms_keys,
                                   model_context=model_context)
    ctx.exit(EXIT_PARTIAL if result.errors else EXIT_OK)


# --- merge ----------------------------------------------------------------------------


@cli.command("merge")
@click.argument("out", type=click.Path(dir_okay=False))
@click.argument("snapshots", nargs=-1, required=True, type=click.Path(dir_okay=False), metavar="SNAPSHOT...")
@click.option("--force", is_flag=True,
              help="Merge even snapshots that hold the same account, come from different bedrock-sql versions, "
                   "or are an incomplete set of shards.")
def merge_command(out, snapshots, force):
    """Fold snapshots (the N shards of collect --shard I/N) into one snapshot OUT: every
    table, every run and every recorded error. OUT is replaced only once whole."""
    from .merge import merge_snapshots

    echo = functools.partial(click.echo, err=True)
    result = merge_snapshots(out, list(snapshots), force=force, echo=echo)
    counts = ", ".join(f"{n} {name}" for name, n in result.row_counts.items())
    echo(f"Merged {result.inputs} snapshot(s) ({result.runs} run(s), {result.accounts} account(s)): {counts}, "
         f"{result.errors} recorded error(s) -> {result.path}")
    for name, dropped in result.dropped.items():
        echo(f"Note: {name}: {dropped} row(s) of accounts held twice were dropped (one row per key: the first snapshot's)")


# --- query ----------------------------------------------------------------------------


class _SqlArgumentCommand(click.Command):
    """A command whose SQL argument may start with ``-`` (a ``-- comment`` line).

    click reads any word starting with ``-`` as an option. No option contains whitespace
    and SQL that starts with a line comment must (the comment ends at a newline), so such
    a word, unless it is an option's value, is the SQL: a leading space makes click see an
    argument, and means nothing to SQLite. (``query -- SQL`` works too, as in any command.)
    """

    def parse_args(self, ctx: click.Context, args: list[str]) -> list[str]:
        takes_value = {
            name
            for param in self.params
            if isinstance(param, click.Option) and not param.is_flag and not param.count
            for name in param.opts
        }
        marked: list[str] = []
        for position, arg in enumerate(args):
            if arg == "--":
                marked.extend(args[position:])
                break
            is_value = position > 0 and args[position - 1] in takes_value
            if arg.startswith("-") and any(c.isspace() for c in arg) and not is_value \
                    and arg.split("=", 1)[0] not in takes_value:
                arg = " " + arg
            marked.append(arg)
        return super().parse_args(ctx, marked)


timeout_option = click.option(
    "--timeout",
    type=float,
    callback=lambda ctx, param, seconds: checked_timeout(seconds),  # now, not after a --live collect
    metavar="SECONDS",
    help="Stop any SQL statement that runs longer than SECONDS (exit 2). Ctrl-C stops one at any time (exit 130).",
)


@cli.command("query", cls=_SqlArgumentCommand)
@click.argument("sql", required=False)
@click.option("-f", "--file", "sql_file", type=click.File("r"), help="Read the SQL from FILE.")
@click.option("--output", "-o", "fmt", type=click.Choice(FORMATS), default="table", show_default=True)
@click.option("--live", is_flag=True, help="Answer from AWS through the virtual tables, not the snapshot.")
@timeout_option
@aws_options
@click.pass_context
def query_command(ctx, sql, sql_file, fmt, live, timeout, aws: AwsOptions):
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
        with live_connection(aws, errors, timeout=timeout) as connection:
            result = run_query(connection, sql)
            render(result.columns, result.rows, fmt, sys.stdout)
        if errors:
            click.echo(f"warning: {len(errors)} AWS call(s) failed; these results are incomplete:", err=True)
            echo_errors(errors.records())
            ctx.exit(EXIT_PARTIAL)
        return
    with snapshot_connection(ctx.obj["db"], timeout=timeout) as connection:
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
    """The controls `check` runs: id, title, severity, the framework requirements each
    serves, description."""
    from .controls import load_controls
    from .frameworks import summary_text

    controls = load_controls(query_dirs)
    render(["id", "title", "severity", "frameworks", "description"],
           [(c.id, c.title, c.severity, summary_text(c.frameworks), c.description) for c in controls], fmt, sys.stdout)


@cli.command("check")
@click.argument("control_ids", nargs=-1, metavar="[CONTROL_ID]...")
@click.option("--severity", type=click.Choice(["critical", "high", "medium", "low", "info"], case_sensitive=False),
              help="Only controls of this severity or higher.")
@click.option("--output", "-o", "fmt", type=click.Choice(CHECK_FORMATS), default="table", show_default=True)
@click.option("--export", "exports", multiple=True, metavar="FILE",
              help="Also write the results to FILE; the format follows the name: "
                   ".csv .json .jsonl .md .asff.json .ocsf.json .html (repeatable).")
@click.option("--live", is_flag=True, help="Collect from AWS now (into a throw-away snapshot) instead of reading --db.")
@click.option("--exceptions", "exceptions_file", envvar="BEDROCK_SQL_EXCEPTIONS", type=click.Path(dir_okay=False),
              metavar="FILE", help="Accepted risks (YAML or JSON): the findings they cover are shown muted and do not "
                                   "fail the check until the entry expires (env BEDROCK_SQL_EXCEPTIONS).")
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
def check_command(ctx, control_ids, severity, fmt, exports, live, exceptions_file, framework, to_security_hub, dry_run,
                  query_dirs, timeout, aws: AwsOptions):
    """Run controls (all, or those named) and report ok/alarm/info/skip/error.

    Exit code: 0 when all pass, 1 when any row is alarm, 2 when any is error (rows an
    accepted exception of --exceptions mutes do not count).
    """
    from .controls import exit_code, load_controls, select_controls
    from .report import MACHINE_FORMATS, Output, export_files, export_format, run_check, status_summary

    every_control = load_controls(query_dirs)
    controls = select_controls(every_control, control_ids, severity)
    if framework:
        from .frameworks import select_framework

        controls = select_framework(controls, framework, every_control)
    exceptions = None
    if exceptions_file:  # read and checked before any finding is written
        from .exceptions import load_exceptions

        exceptions = load_exceptions(exceptions_file, [c.id for c in every_control])
        for warning in exceptions.warnings():
            click.echo(f"bedrock-sql: warning: {warning}", err=True)
    export_formats = [(path, export_format(path)) for path in exports]
    for path, _ in export_formats:  # say so now, not after every control has run
        if not Path(path).absolute().parent.is_dir():
            raise UserError(f"--export {path}: no directory {Path(path).absolute().parent}")
    if dry_run and not to_security_hub:
        raise UserError("--dry-run goes with --to-security-hub (it shows what would be sent)")
    if dry_run and ctx.get_parameter_source("fmt") != click.core.ParameterSource.DEFAULT:
        raise UserError("--dry-run writes the findings it would send on stdout: leave out --output "
                        "(--export FILE still writes a report)")
    if not controls:
        chosen = " and ".join(filter(None, [f"severity {severity} or higher" if severity else "",
                                            f"framework {framework}" if framework else ""]))
        click.echo(f"bedrock-sql: note: no control has {chosen}", err=True)
    machine = fmt in MACHINE_FORMATS or dry_run  # stdout carries data only: summaries go to stderr
    stdout = [] if dry_run else [Output(fmt, sys.stdout, colour=sys.stdout.isatty())]
    # Reached before any finding is written: a credentials problem is said at once.
    scope = resolve_scope(aws) if live or (to_security_hub and not dry_run) else None
    hub = None

    def check_and_send(connection):
        nonlocal hub
        checked = run_check(connection, controls, [*stdout, *export_outputs], exceptions)
        if to_security_hub:
            from .securityhub import to_security_hub as send

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
                with snapshot_connection(db, timeout=timeout) as connection:
                    result = check_and_send(connection)
        else:
            with snapshot_connection(ctx.obj["db"], timeout=timeout) as connection:
                result = check_and_send(connection)
    click.echo(status_summary(result.counts, result.run, result.expired), err=machine)
    if hub is not None:
        for line in hub.lines():
            click.echo(line, err=True)
    # Findings that did not reach Security Hub: no verdict CI may read as delivered.
    ctx.exit(EXIT_PARTIAL if hub is not None and hub.failed else exit_code(result.counts))


# --- diff -----------------------------------------------------------------------------


@cli.command("diff")
@click.argument("old", type=click.Path(path_type=Path))
@click.argument("new", type=click.Path(path_type=Path))
@click.option("--output", "-o", "fmt", type=click.Choice(DIFF_FORMATS), default="table", show_default=True)
@click.option("--all", "include_all", is_flag=True, help="Also show unchanged and out-of-scope rows.")
@click.option("--fail-on", "fail_on", multiple=True, type=click.Choice(list(FAIL_ON)),
              help="Exit 1 when some row has this change (repeatable).")
@queries_option
@timeout_option
@click.pass_context
def diff_command(ctx, old, new, fmt, include_all, fail_on, query_dirs, timeout):
    """What changed from snapshot OLD (the last audit) to NEW: every control's verdict on
    every resource, before and after (new alarm, fixed, regressed, ...), and the keys and
    models that changed. Worst first; unchanged rows only with --all."""
    from .controls import load_controls
    from .diff import MACHINE_FORMATS, compare_snapshots, summary_line, write_diff

    controls = load_controls(query_dirs)
    with compare_snapshots(old, new, controls, timeout=timeout) as comparison:
        for note in comparison.notes:
            click.echo(f"bedrock-sql: note: {note}", err=True)
        write_diff(comparison, fmt, sys.stdout, include_all=include_all, colour=sys.stdout.isatty())
    click.echo(summary_line(comparison, include_all=include_all), err=fmt in MACHINE_FORMATS)
    ctx.exit(1 if comparison.failing(fail_on) else 0)


# --- remediate ------------------------------------------------------------------------


@cli.command("remediate")
@click.option("--model", "models", multiple=True, metavar="ARN",
              help="Remediate this model, custom or imported (repeatable). Default: every model failing "
                   "bedrock_custom_model_encrypted_with_cmk or bedrock_imported_model_encrypted_with_cmk.")
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
    and each model made again with it (its customization job re-run, an imported model
    imported again, a copy copied again). Nothing changes in AWS without --apply, what
    serves the old models is never moved, and nothing is ever deleted."""
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
            import_job_lookup=live.import_job,
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
            # Declining is an answer, not a failure: exit 0 (1 means "alarm" to CI).
            click.echo("Nothing changed in AWS.", err=True)
            return
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


# --- serve ----------------------------------------------------------------------------


@cli.command("serve")
@click.option("--host", default="127.0.0.1", show_default=True,
              help="Address to listen on (any but the loopback lets others read the snapshot).")
@click.option("--port", type=click.IntRange(0, 65535), default=8001, show_default=True,  # as Datasette's
              help="Port to listen on (0: any free port; the address is printed).")
@queries_option
@click.pass_context
def serve_command(ctx, host, port, query_dirs):
    """Browse the snapshot in Datasette, read-only: every table with its descriptions, every
    control as a canned query named by its id (the rows check gives) and every example
    query. Needs the extra: pip install 'bedrock-sql[serve]'. Ctrl-C stops it."""
    from .serve import serve

    serve(ctx.obj["db"], host=host, port=port, query_dirs=query_dirs, echo=functools.partial(click.echo, err=True))


# --- demo -----------------------------------------------------------------------------


@cli.command("demo")
@click.argument("path", required=False, type=click.Path(dir_okay=False, path_type=Path))
# `demo --db PATH` (after the command) means PATH too: the global --db, given before the
# command, is the user's real snapshot, and simulated data never goes there.
@click.option("--db", "db_after", hidden=True, type=click.Path(dir_okay=False, path_type=Path))
@click.pass_context
def demo_command(ctx, path: Path | None, db_after: Path | None):
    """Collect a simulated AWS estate (moto, offline) into PATH (default bedrock-demo.db)
    and show what an analyst looks at first. Never writes the snapshot of the global --db
    or of BEDROCK_SQL_DB."""
    from .demo import DEMO_DB, run_demo

    if path and db_after:
        raise UserError("give the demo's file once: bedrock-sql demo PATH")
    db = path or db_after or DEMO_DB
    code = run_demo(db, sys.stdout)
    click.echo(
        f"bedrock-sql: demo wrote {db} (never your --db or BEDROCK_SQL_DB snapshot); "
        f"query it with: bedrock-sql --db {db} query \"SELECT * FROM aws_bedrock_custom_model\"",
        err=True,
    )
    ctx.exit(code)


# --- entry point ----------------------------------------------------------------------


def _one_line(message: str) -> str:
    """The message on one line: SQLite quotes the rest of a multi-line query in some errors
    (an unterminated string, say), which would otherwise spill over several lines."""
    return " ".join(part.strip() for part in message.splitlines() if part.strip())


def _exit_now(line: str, code: int) -> None:
    """Say ``line`` and exit at once, without waiting for AWS calls still in flight in worker
    threads (a stopped live query or collect abandons them). Never returns: not for in-process
    tests."""
    for stream in (sys.stdout, sys.stderr):  # the rows already written first, then the line
        try:
            if stream is sys.stderr:
                click.echo(line, err=True)
            stream.flush()
        except (OSError, ValueError):  # a reader that left (`| head`), a closed stream
            pass
    os._exit(code)


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
    except StatementTimeout as exc:
        _exit_now(f"bedrock-sql: error: {_one_line(str(exc))}", EXIT_USAGE)
    except UserError as exc:
        click.echo(f"bedrock-sql: error: {_one_line(str(exc))}", err=True)
        code = EXIT_USAGE
    except (click.Abort, KeyboardInterrupt):
        # Ctrl-C (click reports it as Abort). The partial snapshot is already gone.
        _exit_now("bedrock-sql: interrupted", EXIT_INTERRUPTED)
    except (BrokenPipeError, _ReaderLeft) as exc:
        # `bedrock-sql query ... | head`: the reader left; that is not an error. Point stdout
        # at /dev/null so the flush at interpreter exit cannot fail again (and exit 1).
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        code = 0
        if exc.args and exc.args[0] == "check":
            # Not every finding was judged and written: exit 0 would read as "all clear".
            click.echo("bedrock-sql: error: stdout was closed before every finding was written: no verdict", err=True)
            code = EXIT_USAGE
    except AWS_FAILURES as exc:
        # Outside the AWS commands, whose own mapping (aws_options) also knows --endpoint-url.
        click.echo(f"bedrock-sql: error: {aws_failure_message(exc, os.environ.get('AWS_ENDPOINT_URL'))}", err=True)
        code = EXIT_USAGE
    sys.exit(code or 0)


if __name__ == "__main__":
    main()
