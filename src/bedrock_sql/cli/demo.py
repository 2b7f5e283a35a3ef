"""`demo`: collect a simulated estate offline and show it."""

from __future__ import annotations

import sys
from pathlib import Path

import click

from ..errors import UserError
from .app import cli


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
    from ..demo import DEMO_DB, run_demo

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
