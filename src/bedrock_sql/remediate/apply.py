"""Carrying out a remediation plan in AWS with boto3.

:class:`LiveAws` reaches each account of the plan with the same options as collect (it
also answers the plan's live look-ups); :func:`apply_plan` runs the steps, idempotently and
without ever deleting anything, after a preflight that refuses what AWS holds now and the
snapshot did not show; :func:`apply_report` says what was done and what is left.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field, replace
from typing import Any, Callable

from ..accounts import Scope, resolve_scope
from ..aws import ApiError, AwsOptions, Unit, UnitApi
from .. import identifiers
from ..errors import UserError
from ..providers.base import arn_account, arn_region
from ..render import terminal_text
from .keys import ALIAS_TAG, PLAN_TAG, created_key_tags, key_problem
from .parts import Placeholder, Plan, Step, Unavailable, Variable
from .plan import next_steps
from .validate import plan_problems

# --------------------------------------------------------------------------- live AWS


class LiveAws:
    """AWS access for remediate, resolved only when first needed (same options as collect).

    Plans need it only for a source job missing from the snapshot; ``--apply`` for every
    step, each run with the credentials of its account.
    """

    def __init__(self, options: AwsOptions, scope: Scope | None = None):
        self.options = options
        self._scope = scope
        self._failure: str | None = None

    def scope(self, region: str) -> Scope:
        if self._scope is None:
            options = self.options
            if not options.regions:
                # The plan says where to act; the region here only names the STS endpoint.
                options = replace(options, regions=(region,), all_regions=False)
            self._scope = resolve_scope(options)
        return self._scope

    def api(self, account_id: str, region: str) -> UnitApi:
        scope = self.scope(region)
        for account in scope.accounts:
            if account.account_id == account_id:
                return UnitApi(scope.factory, Unit(account=account, account_id=account_id, region=region))
        for failed in getattr(scope, "failed_accounts", ()):
            if failed.account_id == account_id:
                raise UserError(f"the plan acts in account {account_id}, which could not be reached: {failed}")
        reached = ", ".join(a.account_id for a in scope.accounts) or "none"
        raise UserError(
            f"the plan acts in account {account_id}, but the AWS options reach only {reached}: "
            "add --profile or --role-arn for it"
        )

    def job(self, account_id: str, region: str, name: str) -> dict[str, Any] | None:
        """GetModelCustomizationJob (and its tags), or None when it does not exist."""
        from ..providers.bedrock_model_customization_job import get_job

        return self._get(get_job, account_id, region, name)

    def import_job(self, account_id: str, region: str, name: str) -> dict[str, Any] | None:
        """GetModelImportJob (and its tags), or None when it does not exist."""
        from ..providers.bedrock_model_import_job import get_import_job

        return self._get(get_import_job, account_id, region, name)

    def _get(self, get: Callable[[UnitApi, str], Any], account_id: str, region: str, name: str) -> dict[str, Any] | None:
        if self._failure:
            raise Unavailable(self._failure)
        try:
            api = self.api(account_id, region)
        except UserError as exc:
            if self._scope is None:
                self._failure = str(exc)  # no credentials: do not try again for every job
            raise Unavailable(str(exc)) from None
        try:
            return get(api, name)
        except ApiError as exc:
            raise Unavailable(f"{exc.code}: {exc.message}") from None

    def key(self, arn: str) -> dict[str, Any] | None:
        """DescribeKey, as the columns of aws_kms_key; None when there is no such key."""
        region, account_id = arn_region(arn), arn_account(arn)
        assert region is not None and account_id is not None
        scope = self.scope(region)
        ids = [a.account_id for a in scope.accounts]
        api = self.api(account_id if account_id in ids else ids[0], region)
        try:
            meta = api.call("kms", "describe_key", KeyId=arn)["KeyMetadata"]
        except ApiError as exc:
            if exc.code == "NotFoundException":
                return None
            raise UserError(f"cannot describe --kms-key {arn}: {exc.code}: {exc.message}") from None
        return _key_columns(meta, account_id, region)


def _key_columns(meta: dict[str, Any], account_id: str, region: str) -> dict[str, Any]:
    deletion = meta.get("DeletionDate")
    return {
        "arn": meta["Arn"],
        "id": meta.get("KeyId"),
        "key_manager": meta.get("KeyManager"),
        "key_state": meta.get("KeyState"),
        "key_spec": meta.get("KeySpec") or meta.get("CustomerMasterKeySpec"),
        "key_usage": meta.get("KeyUsage"),
        "deletion_date": deletion.isoformat() if hasattr(deletion, "isoformat") else deletion,
        "account_id": account_id,
        "region": region,
        "policy": None,
    }


# --------------------------------------------------------------------------- apply


@dataclass
class ApplyResult:
    created_keys: list[tuple[str, str, str]] = field(default_factory=list)  # (account, region, arn)
    reused_keys: list[tuple[str, str, str]] = field(default_factory=list)
    created_aliases: list[tuple[str, str, str]] = field(default_factory=list)  # (account, region, alias)
    started_jobs: list[tuple[str, str, str, str]] = field(default_factory=list)  # (model arn, region, job name, job arn)
    existing_jobs: list[tuple[str, str, str, str]] = field(default_factory=list)
    rotation_enabled: list[str] = field(default_factory=list)
    done: list[str] = field(default_factory=list)  # what each step did, in a few words

    @property
    def created_anything(self) -> bool:
        return bool(self.created_keys or self.created_aliases or self.started_jobs or self.rotation_enabled)


@dataclass
class _FoundKey:
    """A key the preflight found for a CreateKey step: the alias's key, or one left unnamed."""

    meta: dict[str, Any]
    named: bool  # True: the alias names it; False: an earlier run created it but never named it


def _resolve(value: Any, values: dict[str, str]) -> Any:
    """Each :class:`Variable` replaced with what an earlier step returned. A str is data and
    stays as it is, whatever it looks like (``${HOME}`` is sent as those seven characters)."""
    if isinstance(value, Variable):
        if value.name not in values:  # plan_problems refuses such a plan before anything runs
            raise UserError(f"internal: {value.name} is used before a step sets it")
        return values[value.name]
    if isinstance(value, Placeholder):
        raise UserError(f"internal: a {type(value).__name__} in a step that runs")
    if isinstance(value, dict):
        return {k: _resolve(v, values) for k, v in value.items()}
    if isinstance(value, list):
        return [_resolve(v, values) for v in value]
    return value


def apply_plan(plan: Plan, live: LiveAws, *, on_event: Callable[[str], None] | None = None) -> ApplyResult:
    """Carry out the plan's steps with boto3. Idempotent; never deletes anything.

    A key whose alias already exists is reused (not created again), and so is a key an
    earlier run created but could not name; a job that already exists with this plan's
    client request token is reported, not started again. The first failure stops the run
    with a :class:`UserError` naming the steps done before it; running again skips them.
    """
    event = on_event or (lambda message: None)

    def say(message: str) -> None:  # names and ARNs come from the estate and AWS: inert on a terminal
        event(terminal_text(message))

    result = ApplyResult()
    # The whole plan must be able to run before its first change: a step that could not run
    # after a key was created and a job started would leave them behind.
    problems = plan_problems(plan)
    if problems:
        more = f" (and {len(problems) - 1} more problem(s))" if len(problems) > 1 else ""
        raise UserError(f"the plan cannot run: {problems[0]}{more} (nothing changed)")
    for account_id in plan.account_ids:  # every account reachable before anything changes
        live.api(account_id, plan.regions[0] if plan.regions else "us-east-1")
    found = _preflight(plan, live)
    values: dict[str, str] = {}
    for step in plan.steps:
        api = live.api(step.account_id, step.region)
        where = f"{step.account_id}/{step.region}"
        try:
            result.done.append(_apply_step(step, api, where, values, found, result, say))
        except (ApiError, UserError) as exc:
            failed = f"{exc.operation} in {where} failed: {exc.code}: {exc.message}" if isinstance(exc, ApiError) else str(exc)
            if not result.done:
                raise UserError(f"{failed.rstrip('.')} (nothing changed)") from None
            raise UserError(
                f"{failed.rstrip('.')}. Done before it: {'; '.join(result.done)}. "
                "Run the same command again once this is fixed: done steps are skipped"
            ) from None
    return result


def _preflight(plan: Plan, live: LiveAws) -> dict[str, _FoundKey]:
    """Refuse, before anything changes, what AWS holds now and the snapshot did not show:
    an alias naming an unusable key, a reused key that became unusable, a job name someone
    else's job already has. Returns the keys found for the plan's CreateKey steps."""
    found: dict[str, _FoundKey] = {}
    for key in plan.keys:
        if not key.create and key.arn and key.account_id in plan.account_ids:
            _check_reused_key(live.api(key.account_id, key.region), key.arn, f"{key.account_id}/{key.region}")
    for step in plan.steps:
        api = live.api(step.account_id, step.region)
        where = f"{step.account_id}/{step.region}"
        try:
            if step.operation == "CreateKey":
                existing = _find_key(api, step, where)
                if existing is not None:
                    found[next(iter(step.outputs))] = existing
            elif step.operation == "CreateModelCustomizationJob":
                job = _get_job(api, step.params["jobName"])
                if job is not None and job.get("clientRequestToken") != step.params.get("clientRequestToken"):
                    raise UserError(
                        f"a job named {step.params['jobName']} already exists in {where} and this plan did not start "
                        "it (different client request token): choose another --suffix (nothing changed)"
                    )
            elif step.operation == "CreateModelImportJob":
                _existing_import(api, step, where)
            elif step.operation == "CreateModelCopyJob":
                _existing_copy(api, step, where)
        except ApiError as exc:
            raise UserError(f"{exc.operation} in {where} failed: {exc.code}: {exc.message} (nothing changed)") from None
    return found


def _check_reused_key(api: UnitApi, arn: str, where: str) -> None:
    """The plan reuses an existing key: it must still exist and be usable."""
    try:
        meta = _describe_key(api, arn)
    except ApiError as exc:
        raise UserError(f"{exc.operation} in {where} failed: {exc.code}: {exc.message} (nothing changed)") from None
    if meta is None:
        raise UserError(f"key {arn} no longer exists in {where}: collect again and make a new plan (nothing changed)")
    problem = key_problem(_key_columns(meta, api.account_id, api.region))
    if problem:
        raise UserError(f"the plan's key {arn} {problem} (nothing changed)")


def _find_key(api: UnitApi, step: Step, where: str) -> _FoundKey | None:
    """The key a CreateKey step must not create again: the one its alias names (refused
    when unusable), or one an earlier run created for it but never named."""
    alias = step.alias or ""
    named = _describe_key(api, alias)
    if named is not None:
        problem = key_problem(_key_columns(named, step.account_id, step.region))
        if problem:
            raise UserError(
                f"{alias} already exists in {where}, but its key {named['Arn']} "
                f"{problem.split(': ', 1)[0]}: fix that key, or choose another --alias (nothing changed)"
            )
        return _FoundKey(named, named=True)
    unnamed = _unnamed_key(api, step, where)
    return _FoundKey(unnamed, named=False) if unnamed is not None else None


def _unnamed_key(api: UnitApi, step: Step, where: str) -> dict[str, Any] | None:
    """A key an earlier run created for the step's alias but never named (CreateAlias failed
    after CreateKey): it bears the alias and plan tags and no alias names it. Reusing it is
    what keeps a failed run from leaving an orphan key behind on every retry."""
    alias, plan_id = created_key_tags(step)
    named = {a.get("TargetKeyId") for a in api.paginate("kms", "list_aliases", "Aliases")}
    for listed in api.paginate("kms", "list_keys", "Keys"):
        if listed["KeyId"] in named:
            continue
        try:
            tags = {t["TagKey"]: t["TagValue"] for t in api.paginate("kms", "list_resource_tags", "Tags", KeyId=listed["KeyId"])}
        except ApiError as exc:
            if exc.code == "NotFoundException":  # deleted since ListKeys
                continue
            raise
        if tags.get(ALIAS_TAG) != alias:
            continue
        meta = _describe_key(api, listed["KeyArn"])
        if meta is None or meta.get("KeyState") == "PendingDeletion":  # being deleted: no orphan
            continue
        if tags.get(PLAN_TAG) != plan_id:
            raise UserError(
                f"key {meta['Arn']} in {where} was created for {alias} by another plan ({PLAN_TAG} {tags.get(PLAN_TAG)}) "
                f"and no alias names it: name it {alias} to reuse it, or schedule its deletion, then run again (nothing changed)"
            )
        problem = key_problem(_key_columns(meta, step.account_id, step.region))
        if problem:
            raise UserError(
                f"key {meta['Arn']} in {where}, created for {alias} by an earlier run, {problem.split(': ', 1)[0]}: "
                "fix that key, or choose another --alias (nothing changed)"
            )
        return meta
    return None


def _apply_step(step: Step, api: UnitApi, where: str, values: dict, found: dict[str, _FoundKey], result: ApplyResult, say) -> str:
    """Carry out one step; returns what it did, in a few words."""
    params = _resolve(step.params, values)
    if step.operation == "CreateKey":
        var = next(iter(step.outputs))
        key = found.get(var)
        if key is not None:
            arn = key.meta["Arn"]
            if not identifiers.is_valid("kms_key_arn", arn):
                raise UserError(f"DescribeKey in {where} answered {str(arn)[:100]!r}, which is no KMS key ARN")
            values[var] = arn
            result.reused_keys.append((step.account_id, step.region, arn))
            if key.named:
                say(f"{where}: {step.alias} already exists: reusing key {arn} (nothing created)")
                _warn_policy(api, arn, step, say, where)
                return f"reused key {arn} ({step.alias})"
            say(f"{where}: reusing key {arn}, which an earlier run created for {step.alias} but could not name")
            return f"reused unnamed key {arn}"
        arn = api.call("kms", "create_key", idempotent=False, **params)["KeyMetadata"]["Arn"]
        if not identifiers.is_valid("kms_key_arn", arn):  # what later steps send on must be a key ARN
            raise UserError(f"CreateKey in {where} answered {str(arn)[:100]!r}, which is no KMS key ARN")
        values[var] = arn
        result.created_keys.append((step.account_id, step.region, arn))
        say(f"{where}: created key {arn}")
        return f"created key {arn}"
    if step.operation == "CreateAlias":
        var = step.params["TargetKeyId"]
        if isinstance(var, Variable) and var.name in found and found[var.name].named:
            return f"{params['AliasName']} already named the key"
        api.call("kms", "create_alias", idempotent=False, **params)
        result.created_aliases.append((step.account_id, step.region, params["AliasName"]))
        say(f"{where}: created alias {params['AliasName']} -> {params['TargetKeyId']}")
        return f"created alias {params['AliasName']}"
    if step.operation == "EnableKeyRotation":
        status = api.call("kms", "get_key_rotation_status", KeyId=params["KeyId"])
        if status.get("KeyRotationEnabled"):
            return f"rotation of {params['KeyId']} already on"
        api.call("kms", "enable_key_rotation", **params)
        result.rotation_enabled.append(params["KeyId"])
        say(f"{where}: enabled automatic rotation of {params['KeyId']}")
        return f"enabled rotation of {params['KeyId']}"
    if step.operation == "CreateModelCustomizationJob":
        name = params["jobName"]
        existing = _get_job(api, name)
        if existing is not None:
            if existing.get("clientRequestToken") != params.get("clientRequestToken"):
                raise UserError(
                    f"a job named {name} already exists in {where} and this plan did not start it "
                    "(different client request token): choose another --suffix"
                )
            result.existing_jobs.append((step.model_arn or "", step.region, name, existing["jobArn"]))
            say(f"{where}: job {name} already exists: {existing['jobArn']} (nothing started)")
            return f"job {name} already existed"
        arn = api.call("bedrock", "create_model_customization_job", idempotent=False, **params)["jobArn"]
        result.started_jobs.append((step.model_arn or "", step.region, name, arn))
        say(f"{where}: started job {name}: {arn}")
        return f"started job {name}"
    if step.operation in ("CreateModelImportJob", "CreateModelCopyJob"):
        importing = step.operation == "CreateModelImportJob"
        name = params["jobName"] if importing else params["targetModelName"]
        what = f"import job {name}" if importing else f"copy {name}"
        existing_arn = _existing_import(api, step, where) if importing else _existing_copy(api, step, where)
        if existing_arn is not None:
            result.existing_jobs.append((step.model_arn or "", step.region, name, existing_arn))
            say(f"{where}: {what} already exists: {existing_arn} (nothing started)")
            return f"{what} already existed"
        operation = "create_model_import_job" if importing else "create_model_copy_job"
        arn = api.call("bedrock", operation, idempotent=False, **params)["jobArn"]
        result.started_jobs.append((step.model_arn or "", step.region, name, arn))
        say(f"{where}: started {what}: {arn}")
        return f"started {what}"
    raise UserError(f"internal: no way to apply {step.operation}")


def _existing_import(api: UnitApi, step: Step, where: str) -> str | None:
    """The ARN of the import job an earlier run of this plan started (same job and model
    name), None when there is none; refused when the name is someone else's job."""
    try:
        job = api.call("bedrock", "get_model_import_job", jobIdentifier=step.params["jobName"])
    except ApiError as exc:
        if exc.code == "ResourceNotFoundException":
            return None
        raise
    if job.get("importedModelName") != step.params["importedModelName"]:
        raise UserError(
            f"an import job named {step.params['jobName']} already exists in {where} and this plan did not start it "
            f"(it imported {job.get('importedModelName')}): choose another --suffix (nothing changed)"
        )
    return job["jobArn"]


def _existing_copy(api: UnitApi, step: Step, where: str) -> str | None:
    """The ARN of the copy job an earlier run of this plan started (a model of the new name,
    copied from the same source), None when there is no such model; refused when a model
    of that name exists that no copy of the source made."""
    name, source = step.params["targetModelName"], step.params["sourceModelArn"]
    try:
        api.call("bedrock", "get_custom_model", modelIdentifier=name)
    except ApiError as exc:
        if exc.code == "ResourceNotFoundException":
            return None
        raise
    for job in api.paginate("bedrock", "list_model_copy_jobs", "modelCopyJobSummaries", sourceModelArnEquals=source):
        if job.get("targetModelName") == name:
            return job["jobArn"]
    raise UserError(
        f"a model named {name} already exists in {where} and no copy of {source} made it: "
        "choose another --suffix (nothing changed)"
    )


def _describe_key(api: UnitApi, key_id: str) -> dict[str, Any] | None:
    """DescribeKey (of a key id, ARN or alias); None only when KMS says there is no such key."""
    try:
        return api.call("kms", "describe_key", KeyId=key_id)["KeyMetadata"]
    except ApiError as exc:
        if exc.code == "NotFoundException":
            return None
        raise


def _get_job(api: UnitApi, name: str) -> dict[str, Any] | None:
    try:
        return api.call("bedrock", "get_model_customization_job", jobIdentifier=name)
    except ApiError as exc:
        if exc.code in ("ResourceNotFoundException", "ValidationException"):
            return None
        raise


def _warn_policy(api: UnitApi, arn: str, step: Step, say, where: str) -> None:
    """Say so when a reused key's policy does not name the roles the plan's jobs run as."""
    try:
        policy = api.call("kms", "get_key_policy", KeyId=arn, PolicyName="default").get("Policy") or ""
    except ApiError:
        return
    wanted = json.loads(step.params["Policy"])
    roles = {
        principal
        for statement in wanted["Statement"]
        if statement["Sid"] == "Allow use of the key"
        for principal in statement["Principal"]["AWS"]
    }
    missing = sorted(r for r in roles if r not in policy)
    if missing:
        say(f"{where}: warning: the policy of key {arn} does not name {', '.join(missing)}; make sure the role(s) may use it")


def apply_report(plan: Plan, result: ApplyResult) -> list[str]:
    """The closing lines of an apply: the new jobs, whether anything was created, what is left."""
    lines = []
    jobs = result.started_jobs + result.existing_jobs
    if result.started_jobs:
        lines.append(f"Started {len(result.started_jobs)} job(s):")
        lines.extend(f"  {terminal_text(arn)}" for *_, arn in result.started_jobs)
    if not result.created_anything:
        lines.append("Nothing created: every key, alias and job of this plan already exists.")
    customization = {(s.model_arn, s.params["jobName"]) for s in plan.job_steps}
    started = [
        (region, name, _model_name(plan, model_arn, name)) for model_arn, region, name, _ in jobs if (model_arn, name) in customization
    ]
    lines.extend(next_steps(plan, started))
    return lines


def _model_name(plan: Plan, model_arn: str, job_name: str) -> str:
    for step in plan.job_steps:
        if step.params["jobName"] == job_name and step.model_arn == model_arn:
            return step.params["customModelName"]
    return job_name
