"""Planning the remediation of the seed rule from a snapshot.

This module turns a snapshot into a :class:`Plan` -- ordered :class:`Step` objects, each an
AWS API call with its exact parameters (``params`` is what boto3 takes), plus
:class:`ManualStep` objects for models no customization job produced: which models fail
(the targets), which key each account and region gets (an existing key, or one to create
with :func:`key_policy`), and the customization job that re-creates each model. It also
says what a plan does (:func:`plan_json`, :func:`describe_plan`, :func:`next_steps`).
Planning reads only the snapshot (and, for a source job missing from it,
``GetModelCustomizationJob``); it creates, changes and deletes nothing.
"""

from __future__ import annotations

import re
from typing import Any, Sequence

from ..errors import UserError
from .jobs import check_unique_names, job_step, source_job
from .keys import ROLE_ARN, existing_keys, key_steps, new_keys
from .manual import manual_step
from .parts import DEFAULT_SUFFIX, MODELS, SEED_CONTROL, JobLookup, KeyLookup, Plan, Target, query_rows

_ALIAS = re.compile(r"alias/[a-zA-Z0-9/_-]{1,250}")
_SUFFIX = re.compile(r"[A-Za-z0-9]+(-[A-Za-z0-9]+)*|-[A-Za-z0-9]+(-[A-Za-z0-9]+)*")


# --------------------------------------------------------------------------- planning


def plan_remediation(
    connection,
    *,
    models: Sequence[str] = (),
    kms_key: str | Sequence[str] | None = None,
    create_key: bool = False,
    alias: str | None = None,
    key_admin_roles: Sequence[str] = (),
    suffix: str = DEFAULT_SUFFIX,
    regions: Sequence[str] = (),
    source_job_lookup: JobLookup | None = None,
    key_lookup: KeyLookup | None = None,
    snapshot: str = "",
) -> Plan:
    """Plan the remediation of the failing models (or of ``models``) from a snapshot.

    Pure planning: reads the snapshot, and calls ``source_job_lookup`` only for a source
    job the snapshot lacks and ``key_lookup`` only for a ``kms_key`` it lacks. Every
    mistake in the options is a :class:`UserError` with a one-line reason.
    """
    kms_keys = [kms_key] if isinstance(kms_key, str) else list(kms_key or ())
    _check_options(kms_keys, create_key, alias, key_admin_roles, suffix)
    plan = Plan(snapshot=snapshot, collected_at=_collected_at(connection))
    plan.targets = _targets(connection, models, regions, plan)
    if not plan.targets:
        where = f" in {', '.join(regions)}" if regions else ""
        plan.nothing_message = (
            f"nothing to remediate: no model fails {SEED_CONTROL}{where} in {snapshot or 'the snapshot'}."
        )
        return plan

    sources = {t.model_arn: source_job(connection, t, source_job_lookup) for t in plan.targets}
    if kms_keys:
        keys = existing_keys(connection, kms_keys, plan.targets, key_lookup, plan)
    else:
        keys = new_keys(connection, alias or "", key_admin_roles, plan.targets, sources, plan)
    plan.keys = sorted({id(k): k for k in keys.values()}.values(), key=lambda k: (k.account_id, k.region))

    for unit in sorted({(t.account_id, t.region) for t in plan.targets}):
        key = keys[unit]
        if key.create and (key.account_id, key.region) == unit:
            plan.steps.extend(key_steps(key))
        for target in sorted((t for t in plan.targets if (t.account_id, t.region) == unit), key=lambda t: t.model_name):
            source = sources[target.model_arn]
            if isinstance(source, dict):
                plan.steps.append(job_step(connection, target, source, key, suffix))
            else:
                plan.manual_steps.append(manual_step(connection, target, source, key, suffix))
    check_unique_names(plan)
    return plan


def _check_options(kms_keys: list[str], create_key: bool, alias: str | None, admins: Sequence[str], suffix: str) -> None:
    if kms_keys and create_key:
        raise UserError("use either --kms-key ARN or --create-key, not both")
    if not kms_keys and not create_key:
        raise UserError("choose the key: --kms-key ARN (an existing customer-managed key) or --create-key --alias alias/NAME")
    if create_key and not alias:
        raise UserError("--create-key needs --alias alias/NAME: the name the new key(s) will have")
    if alias is not None and not create_key:
        raise UserError("--alias names a key that --create-key creates; with --kms-key leave it out")
    if admins and not create_key:
        raise UserError("--key-admin-role goes into the policy of a key that --create-key creates; with --kms-key leave it out")
    if alias is not None:
        if not alias.startswith("alias/"):
            raise UserError(f"--alias must start with alias/ (for example alias/bedrock-models), not {alias!r}")
        if alias.startswith("alias/aws/"):
            raise UserError(f"--alias {alias}: names under alias/aws/ are reserved for AWS managed keys")
        if not _ALIAS.fullmatch(alias):
            raise UserError(f"--alias {alias!r}: use letters, digits, '/', '_' and '-' after alias/ (at most 256 characters)")
    for role in admins:
        if not ROLE_ARN.fullmatch(role):
            raise UserError(f"--key-admin-role needs an IAM role ARN (arn:aws:iam::ACCOUNT:role/NAME), not {role!r}")
    if not suffix:
        raise UserError("--suffix must not be empty: the new job and model need names of their own")
    if not _SUFFIX.fullmatch(suffix) or len(suffix) > 20:
        raise UserError(f"--suffix {suffix!r}: use letters, digits and single hyphens (at most 20 characters), e.g. -cmk")


def _collected_at(connection) -> str | None:
    try:
        rows = query_rows(connection, "SELECT finished_at FROM bedrock_sql_runs ORDER BY finished_at DESC LIMIT 1")
    except UserError:
        return None
    return rows[0]["finished_at"] if rows else None


def _targets(connection, models: Sequence[str], regions: Sequence[str], plan: Plan) -> list[Target]:
    from ..controls import load_controls, run_control

    control = next(c for c in load_controls() if c.id == SEED_CONTROL)
    findings = {f.resource: f for f in run_control(connection, control)}
    unreadable = [f for f in findings.values() if f.status == "error"]
    if unreadable and not models:
        plan.warnings.append(
            f"{len(unreadable)} model(s) or account/region(s) could not be checked ({unreadable[0].reason[:-1]}); "
            "they are not in this plan: run bedrock-sql collect again once they are readable"
        )
    if models:
        rows = []
        for ident in dict.fromkeys(models):
            found = query_rows(
                connection, f"SELECT * FROM {MODELS} WHERE arn = ? OR (? NOT LIKE 'arn:%' AND model_name = ?)", (ident, ident, ident)
            )
            if not found:
                raise UserError(
                    f"unknown model {ident!r}: no custom model with that ARN or name in {plan.snapshot or 'the snapshot'} "
                    "(bedrock-sql collect, then query aws_bedrock_custom_model)"
                )
            if len(found) > 1:
                raise UserError(f"--model {ident!r} names {len(found)} models in different accounts or regions: give its ARN")
            row = found[0]
            finding = findings.get(row["arn"])
            if finding is not None and finding.status == "ok":
                plan.warnings.append(f"{row['model_name']} already passes {SEED_CONTROL}; planned anyway because --model names it")
            rows.append((row, finding.reason if finding else "named by --model."))
    else:
        failing = [f for f in findings.values() if f.status == "alarm" and (not regions or f.region in regions)]
        rows = []
        for finding in failing:
            found = query_rows(connection, f"SELECT * FROM {MODELS} WHERE arn = ?", (finding.resource,))
            if found:
                rows.append((found[0], finding.reason))
    return [
        Target(
            model_arn=row["arn"],
            model_name=row["model_name"],
            account_id=row["account_id"],
            region=row["region"],
            partition=row.get("partition") or "aws",
            reason=reason,
            row=row,
        )
        for row, reason in rows
    ]

# --------------------------------------------------------------------------- output


def plan_json(plan: Plan) -> list[dict[str, Any]]:
    """The plan as a JSON-ready list: API steps in order, then the manual steps."""
    return [s.as_json() for s in plan.steps] + [m.as_json() for m in plan.manual_steps]


def describe_plan(plan: Plan) -> list[str]:
    """A few lines saying what the plan does, for a human about to confirm it."""
    units = sorted({(t.account_id, t.region) for t in plan.targets})
    creates = [k for k in plan.keys if k.create]
    lines = [
        f"Plan: re-create {len(plan.targets)} custom model(s) with a customer-managed key in "
        f"{len({u[0] for u in units})} account(s) and {len({u[1] for u in units})} region(s): "
        f"{len(creates)} key(s) to create, {len(plan.job_steps)} customization job(s) to start, "
        f"{len(plan.manual_steps)} manual step(s)."
    ]
    for account_id, region in units:
        key = next((k for k in plan.keys if (k.account_id, k.region) == (account_id, region)), None)
        if key is None:
            key = next(k for k in plan.keys if k.region == region)
        what = f"new key {key.alias}" if key.create else f"key {key.alias + ' = ' if key.alias else ''}{key.arn}"
        lines.append(f"  {account_id}/{region}: {what}")
        for step in plan.job_steps:
            if (step.account_id, step.region) == (account_id, region):
                old = next(t.model_name for t in plan.targets if t.model_arn == step.model_arn)
                lines.append(
                    f"    {old} -> {step.params['customModelName']} (job {step.params['jobName']}, "
                    f"{step.params.get('customizationType', 'FINE_TUNING')})"
                )
        for manual in plan.manual_steps:
            if (manual.account_id, manual.region) == (account_id, region):
                lines.append(f"    {manual.model_name}: manual ({manual.operation})")
    return lines


def next_steps(plan: Plan, started: Sequence[tuple[str, str, str]] = ()) -> list[str]:
    """What is left to the user once the jobs are started: (region, job name, model name)."""
    jobs = list(started) or [(s.region, s.params["jobName"], s.params["customModelName"]) for s in plan.job_steps]
    lines = ["Left to do (bedrock-sql never deletes anything):"]
    n = 1
    if jobs:
        lines.append(f"  {n}. Wait for each job to complete (status Completed), e.g.:")
        lines.extend(
            f"       aws bedrock get-model-customization-job --region {r} --job-identifier {j} --query status --output text"
            for r, j, _ in jobs
        )
        n += 1
        lines.append(f"  {n}. Check that each new model names the CMK:")
        lines.extend(
            f"       aws bedrock get-custom-model --region {r} --model-identifier {m} --query modelKmsKeyArn --output text"
            for r, _, m in jobs
        )
        n += 1
        lines.append(
            f"  {n}. Move provisioned throughput to the new model: aws bedrock list-provisioned-model-throughputs "
            "--model-arn-equals OLD_MODEL_ARN, then update-provisioned-model-throughput --provisioned-model-id ID "
            "--desired-model-id NEW_MODEL_ARN."
        )
        n += 1
        lines.append(f"  {n}. Point applications (model ids, inference configurations) at the new model ARN.")
        n += 1
        lines.append(
            f"  {n}. Then delete the old model: aws bedrock delete-custom-model --model-identifier OLD_MODEL_ARN."
        )
        n += 1
    for manual in plan.manual_steps:
        lines.append(f"  {n}. Manual, {manual.account_id}/{manual.region}: {manual.reason}")
        n += 1
    regions = sorted({s.region for s in plan.steps} | {m.region for m in plan.manual_steps})
    where = "".join(f" --region {r}" for r in regions)
    lines.append(f"  {n}. Collect again and check: bedrock-sql collect{where} && bedrock-sql check {SEED_CONTROL}")
    return lines
