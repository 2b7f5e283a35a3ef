"""`collect` (a new snapshot from AWS) and `merge` (shard snapshots folded into one)."""

from __future__ import annotations

import functools

import click

from ..accounts import resolve_scope
from ..aws import AwsOptions
from ..kms_need import DEFAULT_KMS_KEY_MODE, KMS_KEY_MODES
from ..model_context import DEFAULT_MODEL_CONTEXT, MODEL_CONTEXT_MODES
from ..progress import collect_with_progress
from ..shard import Shard, parse_shard
from .app import EXIT_OK, EXIT_PARTIAL, aws_options, cli, db_option


@cli.command("collect")
@db_option
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
    from ..snapshot_file import check_replaceable

    db = ctx.obj["db"]
    check_replaceable(db, force=force)  # before any AWS call: say so at once (collect checks again)
    scope = resolve_scope(aws, shard)
    result = collect_with_progress(scope, db, aws.max_workers, quiet, force=force, kms_keys=kms_keys,
                                   model_context=model_context)
    ctx.exit(EXIT_PARTIAL if result.errors else EXIT_OK)


@cli.command("merge")
@click.argument("out", type=click.Path(dir_okay=False))
@click.argument("snapshots", nargs=-1, required=True, type=click.Path(dir_okay=False), metavar="SNAPSHOT...")
@click.option("--force", is_flag=True,
              help="Merge even snapshots that hold the same account, come from different bedrock-sql versions, "
                   "or are an incomplete set of shards.")
def merge_command(out, snapshots, force):
    """Fold snapshots (the N shards of collect --shard I/N) into one snapshot OUT: every
    table, every run and every recorded error. OUT is replaced only once whole."""
    from ..merge import merge_snapshots

    echo = functools.partial(click.echo, err=True)
    result = merge_snapshots(out, list(snapshots), force=force, echo=echo)
    counts = ", ".join(f"{n} {name}" for name, n in result.row_counts.items())
    echo(f"Merged {result.inputs} snapshot(s) ({result.runs} run(s), {result.accounts} account(s)): {counts}, "
         f"{result.errors} recorded error(s) -> {result.path}")
    for name, dropped in result.dropped.items():
        echo(f"Note: {name}: {dropped} row(s) of accounts held twice were dropped (one row per key: the first snapshot's)")
