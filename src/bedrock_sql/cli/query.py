"""Reading the snapshot: `query` (or `--live`), `shell`, `tables`, `schema`."""

from __future__ import annotations

import sys

import click

from .. import __version__
from ..aws import AwsOptions
from ..engine import ErrorLog
from ..errors import UserError
from ..progress import echo_errors
from ..render import FORMATS, render
from ..sql import live_connection, run_query, snapshot_connection
from .app import EXIT_PARTIAL, EXIT_USAGE, aws_options, cli, db_option, exit_on_overrun, timeout_option


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


@cli.command("query", cls=_SqlArgumentCommand)
@db_option
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
        with live_connection(aws, errors, timeout=timeout, on_overrun=exit_on_overrun) as connection:
            result = run_query(connection, sql)
            render(result.columns, result.rows, fmt, sys.stdout)
        if errors:
            click.echo(f"warning: {len(errors)} AWS call(s) failed; these results are incomplete:", err=True)
            echo_errors(errors.records())
            ctx.exit(EXIT_PARTIAL)
        return
    with snapshot_connection(ctx.obj["db"], timeout=timeout, on_overrun=exit_on_overrun) as connection:
        result = run_query(connection, sql)
        render(result.columns, result.rows, fmt, sys.stdout)


@cli.command("shell")
@db_option
@click.pass_context
def shell_command(ctx):
    """Interactive SQL shell (apsw's) on the snapshot, read-only: dot-commands that write,
    open, load or run anything (.shell, .output, .backup, .open, .load, .py...) are refused."""
    from ..shell import run_shell

    with snapshot_connection(ctx.obj["db"]) as connection:
        code = run_shell(connection, f"bedrock-sql {__version__} - read-only snapshot {ctx.obj['db']}. "
                                     ".tables, .schema, .help; .quit to leave.\n")
    ctx.exit(code)


@cli.command("tables")
@db_option
@click.option("--output", "-o", "fmt", type=click.Choice(FORMATS), default="table", show_default=True)
@click.pass_context
def tables_command(ctx, fmt):
    """The snapshot's tables with their row counts."""
    from ..snapshot import table_counts

    with snapshot_connection(ctx.obj["db"]) as connection:
        render(["table", "rows"], table_counts(connection), fmt, sys.stdout)


@cli.command("schema")
@click.argument("table", required=False)
@click.option("--output", "-o", "fmt", type=click.Choice(FORMATS), default="table", show_default=True)
def schema_command(table, fmt):
    """Columns, types and descriptions of every table (or of TABLE)."""
    from ..catalog import schema_rows

    render(["table", "column", "type", "description"], schema_rows(table), fmt, sys.stdout)
