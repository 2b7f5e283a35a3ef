"""`serve`: browse the snapshot in Datasette."""

from __future__ import annotations

import functools

import click

from .app import cli, db_option, queries_option


@cli.command("serve")
@db_option
@click.option("--host", default="127.0.0.1", show_default=True,
              help="Address to listen on (any but the loopback lets others read the snapshot).")
@click.option("--port", type=click.IntRange(0, 65535), default=8001, show_default=True,  # as Datasette's
              help="Port to listen on (0: any free port; the address is printed).")
@click.option("--allow-host", "allow_hosts", multiple=True, metavar="NAME[:PORT]",
              help="Also answer requests for NAME (a name or address others reach it by, e.g. with --host 0.0.0.0; "
                   "repeatable). Requests for any other Host are refused (403), against DNS rebinding.")
@queries_option
@click.pass_context
def serve_command(ctx, host, port, allow_hosts, query_dirs):
    """Browse the snapshot in Datasette, read-only: every table with its descriptions, every
    control as a canned query named by its id (the rows check gives) and every example
    query. Answers only requests for its own address (and localhost), and --allow-host.
    Needs the extra: pip install 'bedrock-sql[serve]' (from a checkout: pip install
    '.[serve]'). Ctrl-C stops it."""
    from ..serve import serve

    serve(ctx.obj["db"], host=host, port=port, query_dirs=query_dirs, allow_hosts=allow_hosts,
          echo=functools.partial(click.echo, err=True))
