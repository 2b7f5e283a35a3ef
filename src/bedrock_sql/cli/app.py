"""The ``bedrock-sql`` command line's plumbing: the group and its global ``--db``, the
options several commands share, and :func:`main`, where every user mistake ends as one line
on stderr and exit code 2. Each command lives in the module of its idea (collect, query,
check, remediate, serve, demo) and only parses options, calls the library and renders."""

from __future__ import annotations

import functools
import os
import sys
from pathlib import Path

import click

from .. import __version__
from ..aws import DEFAULT_MAX_WORKERS, ApiError, AwsOptions
from ..errors import BOTOCORE_FAILURES, UserError, api_call_of, aws_failure_message
from ..render import terminal_text
from ..sql import StatementTimeout, checked_timeout

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


def _db_after_the_command(ctx: click.Context, param: click.Parameter, value: str | None) -> None:
    if value is not None and not ctx.resilient_parsing:  # after the command: it wins over the global one
        ctx.ensure_object(dict)["db"] = Path(value)


def db_option(fn):
    """``--db PATH`` after the command (``bedrock-sql check --db X``): the global option, one
    meaning, for every command that reads or writes the snapshot (Datasette-style shared
    option). Given both before and after the command, the one after wins; BEDROCK_SQL_DB is
    read by the global option only, so it never overrides an explicit --db."""
    return click.option(
        "--db",
        "db_after",
        default=None,
        expose_value=False,
        is_eager=True,
        type=click.Path(dir_okay=False),
        callback=_db_after_the_command,
        help="The snapshot file (as the global --db; given both, this one wins).",
    )(fn)

timeout_option = click.option(
    "--timeout",
    type=float,
    callback=lambda ctx, param, seconds: checked_timeout(seconds),  # now, not after a --live collect
    metavar="SECONDS",
    help="Stop any SQL statement that runs longer than SECONDS (exit 2). Ctrl-C stops one at any time (exit 130).",
)

queries_option = click.option(
    "--queries",
    "query_dirs",
    multiple=True,
    type=click.Path(file_okay=False),
    metavar="DIR",
    help="Add your own controls from DIR (same format as the bundled ones; repeatable).",
)


# --- entry point ----------------------------------------------------------------------


def _one_line(message: str) -> str:
    """The message on one line: SQLite quotes the rest of a multi-line query in some errors
    (an unterminated string, say), which would otherwise spill over several lines. Inert on
    a terminal (:func:`~bedrock_sql.render.terminal_text`): errors quote paths, SQL and what
    AWS answered, which can name hostile resources."""
    return terminal_text(" ".join(part.strip() for part in message.splitlines() if part.strip()))


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


def exit_on_overrun(timeout: StatementTimeout) -> None:
    """A statement still running past ``--timeout`` (stuck in one long C call, which no
    check reaches): say so as main() does after every timeout, and exit now. Called from
    the statement guard's timer thread (bedrock_sql.sql.StatementGuard)."""
    _exit_now(f"bedrock-sql: error: {_one_line(str(timeout))}", EXIT_USAGE)


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
            command = exc.ctx.info_name if exc.ctx else None
            if command in ("diff", "merge"):
                message += f" ({command} takes its snapshot files as arguments)"
            else:
                message += (" (this command reads no snapshot: --db goes with collect, query, shell, tables, check, "
                            "remediate and serve, before or after the command)")
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
        click.echo(f"bedrock-sql: error: {_one_line(aws_failure_message(exc, os.environ.get('AWS_ENDPOINT_URL')))}",
                   err=True)
        code = EXIT_USAGE
    sys.exit(code or 0)
