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

import json
import re
from typing import Any, Sequence

from ..errors import UserError
from ..identifiers import check_snapshot_identifiers
from ..render import terminal_text
from . import shell
from .copies import copy_source, copy_step
from .imports import created_model_step, import_manual_step, import_source, import_step
from .jobs import NameNotDerivable, check_unique_names, job_step, source_job
from .keys import ROLE_ARN, existing_keys, key_steps, key_user_problem, new_keys
from .manual import manual_step, refused_step, unnamed_step
from .parts import (
    CONTROLS,
    COPY_JOBS,
    DEFAULT_SUFFIX,
    IMPORTED_MODELS,
    MODELS,
    FillIn,
    JobLookup,
    KeyLookup,
    Lookup,
    ManualStep,
    Placeholder,
    Plan,
    Step,
    Target,
    Variable,
    query_rows,
)
from .served import served_follow_ups, unknown_serving
from .validate import request_problems

_ALIAS = re.compile(r"alias/[a-zA-Z0-9/_-]{1,250}", re.ASCII)
_SUFFIX = re.compile(r"[A-Za-z0-9]+(-[A-Za-z0-9]+)*|-[A-Za-z0-9]+(-[A-Za-z0-9]+)*", re.ASCII)
# The operation that makes each kind of target again.
_OPERATION = {
    "customization": "CreateModelCustomizationJob",
    "imported": "CreateModelImportJob",
    "copy": "CreateModelCopyJob",
    "created": "CreateCustomModel",
}


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
    import_job_lookup: JobLookup | None = None,
    key_lookup: KeyLookup | None = None,
    snapshot: str = "",
) -> Plan:
    """Plan the remediation of the failing models (or of ``models``) from a snapshot.

    Pure planning: reads the snapshot, and calls ``source_job_lookup`` /
    ``import_job_lookup`` only for a customization / import job the snapshot lacks and
    ``key_lookup`` only for a ``kms_key`` it lacks. Every mistake in the options is a
    :class:`UserError` with a one-line reason.
    """
    kms_keys = [kms_key] if isinstance(kms_key, str) else list(kms_key or ())
    _check_options(kms_keys, create_key, alias, key_admin_roles, suffix)
    # The script branches on account ids and regions and names ARNs: a snapshot whose
    # identifiers are not as AWS spells them was altered, and is refused before any is used.
    check_snapshot_identifiers(connection, where=snapshot or "the snapshot")
    plan = Plan(snapshot=snapshot, collected_at=_collected_at(connection))
    plan.targets = _targets(connection, models, regions, plan)
    if not plan.targets:
        where = f" in {', '.join(regions)}" if regions else ""
        plan.nothing_message = (
            f"nothing to remediate: no model fails {' or '.join(CONTROLS)}{where} in {snapshot or 'the snapshot'}."
        )
        return plan

    sources = {t.model_arn: _source(connection, t, source_job_lookup, import_job_lookup) for t in plan.targets}
    if kms_keys:
        keys = existing_keys(connection, kms_keys, plan.targets, key_lookup, plan)
    else:
        keys = new_keys(connection, alias or "", key_admin_roles, plan.targets, sources, plan)
    plan.keys = sorted({id(k): k for k in keys.values()}.values(), key=lambda k: (k.account_id, k.region))
    # A job whose service role is no IAM role ARN, or -- when this plan creates the key -- is
    # another account's role, is not run for the user: its model gets a manual step with the
    # reason, and the role is not in any key policy (new_keys leaves it out).
    refused = {}
    for t in plan.targets:
        source = sources[t.model_arn]
        if t.kind not in ("customization", "imported") or not isinstance(source, dict):
            continue  # a copy job runs as its caller: it has no role
        creating = keys[(t.account_id, t.region)].create
        problem = key_user_problem(source.get("roleArn"), t.account_id)
        if problem and (creating or not ROLE_ARN.fullmatch(str(source.get("roleArn")))):
            refused[t.model_arn] = problem

    # Copies last: a copy whose source this plan re-creates is copied from the replacement.
    made: dict[str, Step | ManualStep] = {}
    for target in sorted(plan.targets, key=lambda t: _copy_depth(t, plan.targets, sources)):
        key, source = keys[(target.account_id, target.region)], sources[target.model_arn]
        try:
            step = _make(connection, target, source, key, suffix, made)
        except NameNotDerivable as exc:
            # One model's name never fails the plan of every other model.
            step = unnamed_step(target, _operation(target, source), str(exc), key)
        if isinstance(step, Step):
            why = refused.get(target.model_arn)
            if why is None:
                problems = request_problems(step.service, step.operation, step.params,
                                            account_id=step.account_id, region=step.region)
                if problems:
                    why = f"{step.operation} would refuse its request: {problems[0]}"
            if why is not None:
                step = refused_step(step, target, why, key)
        made[target.model_arn] = step

    for unit in sorted({(t.account_id, t.region) for t in plan.targets}):
        key = keys[unit]
        if key.create and (key.account_id, key.region) == unit:
            plan.steps.extend(key_steps(key))
        for target in sorted((t for t in plan.targets if (t.account_id, t.region) == unit), key=lambda t: t.model_name):
            step = made[target.model_arn]
            if isinstance(step, Step):
                plan.steps.append(step)
            elif step.follow_up:
                plan.follow_ups.append(step)
            else:
                plan.manual_steps.append(step)
    replacements = [(t, _new_model_name(made[t.model_arn])) for t in sorted(plan.targets, key=lambda t: t.model_name)]
    plan.follow_ups.extend(served_follow_ups(connection, replacements, suffix))
    plan.warnings.extend(unknown_serving(connection, plan.targets))
    check_unique_names(plan)
    return plan


def _make(connection, target: Target, source: Any, key, suffix: str, made: dict[str, Step | ManualStep]) -> Step | ManualStep:
    """The step that makes ``target`` again (a manual one when no API call can)."""
    if target.kind == "copy" and isinstance(source, dict):
        fixed = {arn: _new_model_name(step) for arn, step in made.items()}
        return copy_step(connection, target, source, key, suffix, fixed)
    if target.kind == "imported":
        if isinstance(source, dict):
            return import_step(connection, target, source, key, suffix)
        return import_manual_step(target, source, key, suffix)
    if target.kind == "created":
        return created_model_step(target, key, suffix)
    if isinstance(source, dict):
        return job_step(connection, target, source, key, suffix)
    return manual_step(connection, target, source, key, suffix)


def _operation(target: Target, source: Any) -> str:
    """The API that makes ``target`` again, for a manual step about it."""
    if target.kind == "customization" and source in ("copied", "no-job"):
        return "CreateModelCopyJob"
    if target.kind == "customization" and source == "imported":
        return "CreateCustomModel"
    return _OPERATION.get(target.kind, "CreateModelCustomizationJob")


def _source(connection, target: Target, job_lookup: JobLookup | None, import_lookup: JobLookup | None):
    """What re-creates ``target``: its customization, import or copy job (a dict), or why none can (a str)."""
    if target.kind == "imported":
        return import_source(connection, target, import_lookup)
    if target.kind == "copy":
        return copy_source(connection, target) or "copied"
    if target.kind == "created":
        return "created"
    return source_job(connection, target, job_lookup)


def _copy_depth(target: Target, targets: list[Target], sources: dict[str, Any]) -> int:
    """How many planned copies stand between ``target`` and a model that is no copy: a
    source is planned before the copies made from it."""
    by_arn = {t.model_arn: t for t in targets}
    depth = 0
    while target.kind == "copy" and isinstance(sources[target.model_arn], dict) and depth <= len(targets):
        source = by_arn.get(sources[target.model_arn]["source_model_arn"])
        if source is None:
            break
        target, depth = source, depth + 1
    return depth


def _new_model_name(step: Step | ManualStep) -> str | FillIn:
    """The name of the model ``step`` makes (a FillIn when a human chooses it)."""
    if isinstance(step, Step) and step.new_model_name:
        return step.new_model_name
    params = step.params
    return next(params[m] for m in ("customModelName", "importedModelName", "targetModelName", "modelName") if m in params)


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
    """The models to re-create: those that fail either CMK rule (or ``models``), plus the
    failing same-account source of any copy among them (fixed first, then copied)."""
    from ..controls import load_controls, run_control

    controls = {c.id: c for c in load_controls() if c.id in CONTROLS}
    findings = {f.resource: f for control_id in CONTROLS for f in run_control(connection, controls[control_id])}
    unreadable = [f for f in findings.values() if f.status == "error"]
    if unreadable and not models:
        plan.warnings.append(
            f"{len(unreadable)} model(s) or account/region(s) could not be checked ({unreadable[0].reason[:-1]}); "
            "they are not in this plan: run bedrock-sql collect again once they are readable"
        )
    rows: list[tuple[dict[str, Any], str]] = []
    if models:
        for ident in dict.fromkeys(models):
            found = query_rows(
                connection,
                "SELECT * FROM bedrock_model WHERE arn = ? OR (? NOT LIKE 'arn:%' AND model_name = ?)",
                (ident, ident, ident),
            )
            if not found:
                raise UserError(
                    f"unknown model {ident!r}: no custom or imported model with that ARN or name in "
                    f"{plan.snapshot or 'the snapshot'} (bedrock-sql collect, then query bedrock_model)"
                )
            if len(found) > 1:
                raise UserError(f"--model {ident!r} names {len(found)} models in different accounts or regions: give its ARN")
            finding = findings.get(found[0]["arn"])
            if finding is not None and finding.status == "ok":
                plan.warnings.append(
                    f"{found[0]['model_name']} already passes {finding.control.id}; planned anyway because --model names it"
                )
            rows.append((found[0], finding.reason if finding else "named by --model."))
    else:
        for finding in findings.values():
            if finding.status == "alarm" and (not regions or finding.region in regions):
                found = query_rows(connection, "SELECT * FROM bedrock_model WHERE arn = ?", (finding.resource,))
                if found:
                    rows.append((found[0], finding.reason))
    targets = [_target(connection, row, reason) for row, reason in rows]
    _add_failing_sources(connection, targets, findings, plan)
    return targets


def _target(connection, model: dict[str, Any], reason: str) -> Target:
    """A Target from a bedrock_model row: the full row of its own table, and its kind."""
    table = IMPORTED_MODELS if model["table_name"] == IMPORTED_MODELS else MODELS
    row = query_rows(connection, f"SELECT * FROM {table} WHERE arn = ?", (model["arn"],))[0]
    return Target(
        model_arn=row["arn"],
        model_name=row["model_name"],
        account_id=row["account_id"],
        region=row["region"],
        partition=row.get("partition") or "aws",
        reason=reason,
        row=row,
        kind=model["kind"],
    )


def _add_failing_sources(connection, targets: list[Target], findings: dict, plan: Plan) -> None:
    """A copy is made again from its source; a same-account source that fails a rule is
    re-created first (and a copy of it is then copied from the replacement)."""
    planned = {t.model_arn for t in targets}
    pending = [t for t in targets if t.kind == "copy"]
    while pending:
        copy = pending.pop()
        sources = query_rows(
            connection,
            f"SELECT m.*, c.source_model_arn FROM {COPY_JOBS} c JOIN bedrock_model m ON m.arn = c.source_model_arn "
            "WHERE c.target_model_arn = ? AND m.account_id = ? ORDER BY c.creation_time DESC LIMIT 1",
            (copy.model_arn, copy.account_id),
        )
        if not sources or sources[0]["arn"] in planned:
            continue
        finding = findings.get(sources[0]["arn"])
        if finding is None or finding.status != "alarm":
            continue
        source = _target(connection, sources[0], finding.reason)
        targets.append(source)
        planned.add(source.model_arn)
        plan.warnings.append(
            f"{copy.model_name} is a copy of {source.model_name}, which fails {finding.control.id} too: "
            f"the plan re-creates {source.model_name} first, and the copy is made from its replacement"
        )
        if source.kind == "copy":
            pending.append(source)

# --------------------------------------------------------------------------- output


def plan_json(plan: Plan) -> list[dict[str, Any]]:
    """The plan as a JSON-ready list: API steps in order, then the manual steps, then the
    follow-ups to run once the new models are Active (``follow_up``: true). A placeholder is
    an object (``{"variable": NAME}``, ``{"lookup": ..., "command": [...]}``, ``{"fill_in":
    ...}``) at a path the entry's ``placeholders`` lists; every string is data, as it is."""
    return [s.as_json() for s in plan.steps] + [m.as_json() for m in [*plan.manual_steps, *plan.follow_ups]]


_WHAT = {
    "CreateModelCustomizationJob": "job {jobName}, {customizationType}",
    "CreateModelImportJob": "import job {jobName}",
    "CreateModelCopyJob": "copy from {sourceModelArn}",
}


def describe_plan(plan: Plan) -> list[str]:
    """A few lines saying what the plan does, for a human about to confirm it (inert on a
    terminal: model names come from the estate)."""
    units = sorted({(t.account_id, t.region) for t in plan.targets})
    creates = [k for k in plan.keys if k.create]
    count = {op: sum(s.operation == op for s in plan.steps) for op in _WHAT}
    lines = [
        f"Plan: re-create {len(plan.targets)} model(s) with a customer-managed key in "
        f"{len({u[0] for u in units})} account(s) and {len({u[1] for u in units})} region(s): "
        f"{len(creates)} key(s) to create, {count['CreateModelCustomizationJob']} customization job(s), "
        f"{count['CreateModelImportJob']} import job(s) and {count['CreateModelCopyJob']} copy job(s) to start, "
        f"{len(plan.manual_steps)} manual step(s), {len(plan.follow_ups)} follow-up(s) once the new models are Active."
    ]
    for account_id, region in units:
        key = next((k for k in plan.keys if (k.account_id, k.region) == (account_id, region)), None)
        if key is None:
            key = next(k for k in plan.keys if k.region == region)
        what = f"new key {key.alias}" if key.create else f"key {key.alias + ' = ' if key.alias else ''}{key.arn}"
        lines.append(f"  {account_id}/{region}: {what}")
        for step in plan.model_steps:
            if (step.account_id, step.region) == (account_id, region):
                old = next(t.model_name for t in plan.targets if t.model_arn == step.model_arn)
                how = _WHAT[step.operation].format_map({"customizationType": "FINE_TUNING", **step.params})
                lines.append(f"    {old} -> {step.new_model_name} ({how})")
        for manual in [*plan.manual_steps, *plan.follow_ups]:
            if (manual.account_id, manual.region) == (account_id, region):
                when = "follow-up" if manual.follow_up else "manual"
                lines.append(f"    {manual.model_name}: {when} ({manual.operation})")
    return [terminal_text(line) for line in lines]


def cli_option(member: str) -> str:
    """``--custom-model-kms-key-id``: the AWS CLI's option for a request member."""
    from botocore import xform_name

    option = xform_name(member, "-")
    if not re.fullmatch(r"[a-z0-9]+(-[a-z0-9]+)*", option, re.ASCII):
        raise ValueError(f"internal: no AWS CLI option for member {member!r}")
    return "--" + option


def _json_default(value: Any) -> Any:
    if isinstance(value, FillIn):
        return value.text  # inside a manual step's JSON argument: the human replaces it
    raise TypeError(f"internal: {type(value).__name__} inside a JSON argument")


def cli_argument(value: Any, *, manual: bool = False) -> str:
    """One request value as one shell word (:mod:`.shell`), dispatching on its type.

    A :class:`Variable` is the script's variable (``"$NAME"``), a :class:`Lookup` the output
    of its command (``"$(aws ...)"``), a :class:`FillIn` its ``<...>`` text; any str is a
    literal, exactly quoted, whatever it looks like. In a ``manual`` step (shown, never run), a
    value bash cannot hold (a NUL character) is shown as what it is instead of refused.
    """
    if isinstance(value, Variable):
        return str(shell.Expand(value.name))
    if isinstance(value, Lookup):
        return shell.substitution(value.command)
    if isinstance(value, FillIn):
        return shell.quote(value.text)
    if isinstance(value, Placeholder):
        raise TypeError(f"internal: no rendering of {type(value).__name__}")
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (int, float)):
        return shell.quote(str(value))
    if isinstance(value, str):
        try:
            return shell.quote(value)
        except shell.NotRepresentable as exc:
            if not manual:
                raise
            return shell.quote(f"<a value that cannot be shown here: {exc}; see --output json>")
    return shell.quote(json.dumps(value, separators=(",", ":"), default=_json_default))


def cli_command(step: Step | ManualStep) -> str:
    """The step as one AWS CLI command line: every value one exactly quoted word (a
    :class:`Lookup` becomes ``"$(COMMAND)"``, never text that merely looks like one)."""
    from botocore import xform_name

    words = [shell.quote(w) for w in ("aws", step.service, xform_name(step.operation, "-"), "--region", step.region)]
    manual = isinstance(step, ManualStep)
    for name, value in step.params.items():
        words += [cli_option(name), cli_argument(value, manual=manual)]
    return " ".join(words)


def _aws(*argv: str) -> str:
    """A command line for a human to run (each argument quoted as the script would)."""
    return " ".join(shell.quote(a) for a in argv)


def next_steps(plan: Plan, started: Sequence[tuple[str, str, str]] = ()) -> list[str]:
    """What is left to the user once the jobs are started: (region, job name, model name)."""
    jobs = list(started) or [(s.region, s.params["jobName"], s.params["customModelName"]) for s in plan.job_steps]
    imports = [s for s in plan.steps if s.operation == "CreateModelImportJob"]
    copies = [s for s in plan.steps if s.operation == "CreateModelCopyJob"]
    lines = ["Left to do (bedrock-sql never deletes anything):"]
    n = 1
    if jobs or imports or copies:
        lines.append(f"  {n}. Wait for each job to complete (status Completed), e.g.:")
        lines.extend(
            "       " + _aws("aws", "bedrock", "get-model-customization-job", "--region", r, "--job-identifier", j,
                             "--query", "status", "--output", "text")
            for r, j, _ in jobs
        )
        lines.extend(
            "       " + _aws("aws", "bedrock", "get-model-import-job", "--region", s.region, "--job-identifier",
                             s.params["jobName"], "--query", "status", "--output", "text")
            for s in imports
        )
        lines.extend(
            "       " + _aws("aws", "bedrock", "list-model-copy-jobs", "--region", s.region, "--target-model-name-contains",
                             s.params["targetModelName"], "--query", "modelCopyJobSummaries[].status", "--output", "text")
            for s in copies
        )
        n += 1
        lines.append(f"  {n}. Check that each new model names the CMK:")
        lines.extend(
            "       " + _aws("aws", "bedrock", "get-custom-model", "--region", r, "--model-identifier", m,
                             "--query", "modelKmsKeyArn", "--output", "text")
            for r, _, m in jobs
        )
        lines.extend(
            "       " + _aws("aws", "bedrock", "get-imported-model", "--region", s.region, "--model-identifier",
                             s.new_model_name or "", "--query", "modelKmsKeyArn", "--output", "text")
            for s in imports
        )
        lines.extend(
            "       " + _aws("aws", "bedrock", "get-custom-model", "--region", s.region, "--model-identifier",
                             s.new_model_name or "", "--query", "modelKmsKeyArn", "--output", "text")
            for s in copies
        )
        n += 1
    for manual in plan.manual_steps:
        # Reasons quote the estate's names: inert on a terminal. Commands are left as they are
        # (quote() makes them printable ASCII-safe already) so that they can be pasted.
        lines.append(f"  {n}. Manual, {manual.account_id}/{manual.region}: {terminal_text(manual.reason)}")
        n += 1
    if plan.follow_ups:
        lines.append(
            f"  {n}. Once each new model is Active (never before; neither --apply nor the script does this), "
            "move what serves the old models and make the copies of re-created sources:"
        )
        for follow_up in plan.follow_ups:
            lines.append(f"       # {terminal_text(follow_up.reason)}")
            lines.append(f"       {cli_command(follow_up)}")
        n += 1
    elif plan.model_steps:
        lines.append(f"  {n}. Nothing in the snapshot serves the old models (no provisioned throughput or deployment).")
        n += 1
    if plan.model_steps or plan.manual_steps:
        lines.append(f"  {n}. Point applications (model ids, inference configurations) at the new models.")
        n += 1
        lines.append(
            f"  {n}. Then delete the old model(s): aws bedrock delete-custom-model (or delete-imported-model) "
            "--model-identifier OLD_MODEL_ARN."
        )
        n += 1
    regions = sorted({s.region for s in plan.steps} | {m.region for m in [*plan.manual_steps, *plan.follow_ups]})
    where = "".join(" --region " + shell.quote(r) for r in regions)
    lines.append(f"  {n}. Collect again and check: bedrock-sql collect{where} && bedrock-sql check {' '.join(CONTROLS)}")
    return lines
