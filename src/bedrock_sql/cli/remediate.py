"""`remediate`: plan, or --apply, the fix for models without a customer-managed key."""

from __future__ import annotations

import sys

import click

from ..aws import AwsOptions
from ..errors import UserError
from ..render import terminal_text
from ..sql import snapshot_connection
from .app import aws_options, cli, db_option


# The two usual first plans, as the hint of a `remediate` without a key choice shows them.
NEW_KEYS = "bedrock-sql remediate --create-key --alias alias/bedrock-models"
EXISTING_KEY = "bedrock-sql remediate --kms-key ARN"


@cli.command("remediate")
@db_option
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

    from ..remediate import LiveAws, apply_plan, apply_report, describe_plan, plan_json, plan_remediation, write_script

    if not kms_keys and not create_key:  # a first plan: show the two usual ways to ask for one
        raise UserError(f"choose the key, e.g. {NEW_KEYS} (a new CMK in each account and region), or {EXISTING_KEY} "
                        "(an existing customer-managed key; repeat it, one per region)")
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
    # Warnings name the estate's models and what AWS answered: inert on a terminal.
    for warning in plan.warnings:
        click.echo(f"bedrock-sql: warning: {terminal_text(warning)}", err=True)
    if plan.empty:
        click.echo(f"bedrock-sql: {terminal_text(plan.nothing_message)}", err=True)
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
    script = terminal_text(str(written[0]))
    click.echo(f"Wrote {script}" + (f" and {len(written) - 1} key policy file(s) beside it" if len(written) > 1 else "") + ".")
    click.echo(f"Review it, then run: bash {script}   (or: bedrock-sql remediate ... --apply)")
