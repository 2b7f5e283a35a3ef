"""Remediation of the seed rule: re-create non-compliant custom models with a CMK.

The key of an existing Bedrock custom model cannot change. The fix for a model that fails
``bedrock_custom_model_encrypted_with_cmk`` is a symmetric KMS customer-managed key (CMK) in
the model's region, whose key policy lets the customization job's service role use it, and
the model customization job re-run with the same configuration plus ``customModelKmsKeyId``.

This module turns a snapshot into a :class:`Plan` -- ordered :class:`Step` objects, each an
AWS API call with its exact parameters (``params`` is what boto3 takes), plus
:class:`ManualStep` objects for models no customization job produced -- and then into a
bash script of AWS CLI commands (:func:`render_script`), a JSON document
(:func:`plan_json`), or changes in AWS (:func:`apply_plan`). Planning reads only the
snapshot (and, for a source job missing from it, ``GetModelCustomizationJob``); nothing is
created, changed or deleted anywhere but in :func:`apply_plan`, and that never deletes.

Keys created by the plan are not known when planning: later steps refer to them with a
placeholder ``${KEY_ARN_<account>_<region>}``, which :func:`apply_plan` replaces with the
ARN ``CreateKey`` returned and the script turns into a shell variable of the same name.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import shlex
import textwrap
import uuid
from dataclasses import dataclass, field, replace
from functools import lru_cache
from pathlib import Path
from typing import Any, Callable, Sequence

from . import __version__
from .aws import ApiError, AwsOptions, Scope, Unit, UnitApi, resolve_scope
from .errors import UserError
from .sql import run_query

SEED_CONTROL = "bedrock_custom_model_encrypted_with_cmk"
DEFAULT_SUFFIX = "-cmk"
SCRIPT_NAME = "bedrock-cmk-remediation.sh"

MODELS = "aws_bedrock_custom_model"
JOBS = "aws_bedrock_model_customization_job"
KEYS = "aws_kms_key"
ALIASES = "aws_kms_alias"

#: What the key administrators may do (the KMS console's default key policy).
KEY_ADMIN_ACTIONS = [
    "kms:Create*",
    "kms:Describe*",
    "kms:Enable*",
    "kms:List*",
    "kms:Put*",
    "kms:Update*",
    "kms:Revoke*",
    "kms:Disable*",
    "kms:Get*",
    "kms:Delete*",
    "kms:TagResource",
    "kms:UntagResource",
    "kms:ScheduleKeyDeletion",
    "kms:CancelKeyDeletion",
    "kms:RotateKeyOnDemand",
]
#: What the key users (the customization jobs' service roles) may do with the key.
KEY_USER_ACTIONS = ["kms:Encrypt", "kms:Decrypt", "kms:ReEncrypt*", "kms:GenerateDataKey*", "kms:DescribeKey"]
#: Grants, only for AWS services acting for the key users (kms:GrantIsForAWSResource).
KEY_GRANT_ACTIONS = ["kms:CreateGrant", "kms:ListGrants", "kms:RevokeGrant"]

KEY_DESCRIPTION = "Customer managed key for Amazon Bedrock custom models (bedrock-sql remediate)"
KEY_TAGS = [{"TagKey": "created-by", "TagValue": "bedrock-sql"}]

_ALIAS = re.compile(r"alias/[a-zA-Z0-9/_-]{1,250}")
_ROLE_ARN = re.compile(r"arn:aws[a-z-]*:iam::(\d{12}):role/[\w+=,.@/-]+")
_KEY_ARN = re.compile(r"arn:(aws[a-z-]*):kms:([a-z0-9-]+):(\d{12}):(key|alias)/(.+)")
_SUFFIX = re.compile(r"[A-Za-z0-9]+(-[A-Za-z0-9]+)*|-[A-Za-z0-9]+(-[A-Za-z0-9]+)*")
_NAME_LIMIT = 63  # jobName and customModelName: at most 63 characters
_JOB_PARAM_ORDER = (
    "jobName",
    "customModelName",
    "roleArn",
    "baseModelIdentifier",
    "customizationType",
    "trainingDataConfig",
    "validationDataConfig",
    "outputDataConfig",
    "hyperParameters",
    "vpcConfig",
    "customizationConfig",
    "customModelKmsKeyId",
    "jobTags",
    "customModelTags",
    "clientRequestToken",
)

# The parts of a source job copied into the new CreateModelCustomizationJob request:
# request parameter -> the job's field (GetModelCustomizationJob's name for it).
_COPIED_FIELDS = {
    "roleArn": "roleArn",
    "baseModelIdentifier": "baseModelArn",
    "customizationType": "customizationType",
    "trainingDataConfig": "trainingDataConfig",
    "validationDataConfig": "validationDataConfig",
    "outputDataConfig": "outputDataConfig",
    "hyperParameters": "hyperParameters",
    "vpcConfig": "vpcConfig",
    "customizationConfig": "customizationConfig",
}


class Unavailable(Exception):
    """A live lookup that cannot answer (no credentials, account out of reach, denied...)."""


#: ``lookup(account_id, region, job_name) -> job`` (GetModelCustomizationJob's fields and a
#: ``tags`` dict) or None when the job does not exist; raises :class:`Unavailable`.
JobLookup = Callable[[str, str, str], "dict[str, Any] | None"]
#: ``lookup(key_arn) -> key`` (the columns of aws_kms_key) or None when the key does not
#: exist; raises :class:`UserError` when it cannot tell.
KeyLookup = Callable[[str], "dict[str, Any] | None"]


# --------------------------------------------------------------------------- the plan


@dataclass
class Step:
    """One AWS API call: ``operation`` is the API's name, ``params`` its exact parameters.

    ``outputs`` maps a variable that later steps refer to (``${NAME}``) to the path of the
    value in this call's response (``KeyMetadata.Arn``).
    """

    service: str
    operation: str
    region: str
    account_id: str
    params: dict[str, Any]
    comment: str = ""
    outputs: dict[str, str] = field(default_factory=dict)
    model_arn: str | None = None  # the model a job step re-creates
    alias: str | None = None  # CreateKey: the alias that will name the key (reused when it exists)

    def as_json(self) -> dict[str, Any]:
        data: dict[str, Any] = {
            "service": self.service,
            "operation": self.operation,
            "region": self.region,
            "account_id": self.account_id,
            "params": self.params,
            "manual": False,
            "comment": self.comment,
        }
        if self.outputs:
            data["outputs"] = self.outputs
        if self.model_arn:
            data["model_arn"] = self.model_arn
        return data


@dataclass
class ManualStep:
    """A model this tool cannot re-create: the alternative API call, for a human to finish.

    ``params`` holds what is known; ``<...>`` marks what the human must fill in.
    """

    service: str
    operation: str
    region: str
    account_id: str
    params: dict[str, Any]
    model_arn: str
    model_name: str
    reason: str

    @property
    def comment(self) -> str:
        return self.reason

    def as_json(self) -> dict[str, Any]:
        return {
            "service": self.service,
            "operation": self.operation,
            "region": self.region,
            "account_id": self.account_id,
            "params": self.params,
            "manual": True,
            "comment": self.reason,
            "model_arn": self.model_arn,
        }


@dataclass
class Target:
    """A model to re-create with a CMK, and why."""

    model_arn: str
    model_name: str
    account_id: str
    region: str
    partition: str
    reason: str
    row: dict[str, Any]


@dataclass
class KeyChoice:
    """The CMK the models of one account and region get: an existing key, or one to create."""

    account_id: str
    region: str
    arn: str | None = None  # known key (--kms-key, or an existing alias's key)
    variable: str | None = None  # a key this plan creates: the variable holding its ARN
    alias: str | None = None
    policy: dict[str, Any] | None = None  # the key policy of a key to create
    users: list[str] = field(default_factory=list)
    admins: list[str] = field(default_factory=list)
    policy_text: str | None = None  # the key policy of an existing key, when known

    @property
    def create(self) -> bool:
        return self.variable is not None

    @property
    def ref(self) -> str:
        """What a request names the key with: its ARN, or the placeholder of a new key."""
        return self.arn if self.arn else "${" + str(self.variable) + "}"

    @property
    def policy_file(self) -> str:
        return f"key-policy-{self.account_id}-{self.region}.json"


@dataclass
class Plan:
    targets: list[Target] = field(default_factory=list)
    keys: list[KeyChoice] = field(default_factory=list)
    steps: list[Step] = field(default_factory=list)
    manual_steps: list[ManualStep] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    snapshot: str = ""
    collected_at: str | None = None
    nothing_message: str = ""

    @property
    def empty(self) -> bool:
        return not self.targets

    @property
    def account_ids(self) -> list[str]:
        return sorted({s.account_id for s in self.steps} | {m.account_id for m in self.manual_steps})

    @property
    def regions(self) -> list[str]:
        return sorted({t.region for t in self.targets})

    @property
    def job_steps(self) -> list[Step]:
        return [s for s in self.steps if s.operation == "CreateModelCustomizationJob"]


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

    sources = {t.model_arn: _source_job(connection, t, source_job_lookup) for t in plan.targets}
    if kms_keys:
        keys = _existing_keys(connection, kms_keys, plan.targets, key_lookup, plan)
    else:
        keys = _new_keys(connection, alias or "", key_admin_roles, plan.targets, sources, plan)
    plan.keys = sorted({id(k): k for k in keys.values()}.values(), key=lambda k: (k.account_id, k.region))

    for unit in sorted({(t.account_id, t.region) for t in plan.targets}):
        key = keys[unit]
        if key.create and (key.account_id, key.region) == unit:
            plan.steps.extend(_key_steps(key))
        for target in sorted((t for t in plan.targets if (t.account_id, t.region) == unit), key=lambda t: t.model_name):
            source = sources[target.model_arn]
            if isinstance(source, dict):
                plan.steps.append(_job_step(connection, target, source, key, suffix))
            else:
                plan.manual_steps.append(_manual_step(connection, target, source, key, suffix))
    _check_unique_names(plan)
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
        if not _ROLE_ARN.fullmatch(role):
            raise UserError(f"--key-admin-role needs an IAM role ARN (arn:aws:iam::ACCOUNT:role/NAME), not {role!r}")
    if not suffix:
        raise UserError("--suffix must not be empty: the new job and model need names of their own")
    if not _SUFFIX.fullmatch(suffix) or len(suffix) > 20:
        raise UserError(f"--suffix {suffix!r}: use letters, digits and single hyphens (at most 20 characters), e.g. -cmk")


def _query(connection, sql: str, params: Sequence[Any] = ()) -> list[dict[str, Any]]:
    result = run_query(connection, sql, tuple(params))
    return [dict(zip(result.columns, row)) for row in result.rows]


def _collected_at(connection) -> str | None:
    try:
        rows = _query(connection, "SELECT finished_at FROM bedrock_sql_runs ORDER BY finished_at DESC LIMIT 1")
    except UserError:
        return None
    return rows[0]["finished_at"] if rows else None


def _targets(connection, models: Sequence[str], regions: Sequence[str], plan: Plan) -> list[Target]:
    from .controls import load_controls, run_control

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
            found = _query(
                connection, f"SELECT * FROM {MODELS} WHERE arn = ? OR (? NOT LIKE 'arn:%' AND model_name = ?)", (ident, ident, ident)
            )
            if not found:
                raise UserError(
                    f"unknown model {ident!r}: no custom model with that ARN in {plan.snapshot or 'the snapshot'} "
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
            found = _query(connection, f"SELECT * FROM {MODELS} WHERE arn = ?", (finding.resource,))
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


def _loads(value: Any) -> Any:
    if value is None or not isinstance(value, str):
        return value
    try:
        return json.loads(value)
    except ValueError:
        return value


def _job_from_row(row: dict[str, Any]) -> dict[str, Any]:
    """A snapshot job row in GetModelCustomizationJob's shape (plus a ``tags`` dict)."""
    return {
        "jobArn": row["arn"],
        "jobName": row["job_name"],
        "roleArn": row["role_arn"],
        "baseModelArn": row["base_model_arn"],
        "customizationType": row["customization_type"],
        "hyperParameters": _loads(row["hyper_parameters"]),
        "trainingDataConfig": _loads(row["training_data_config"]),
        "validationDataConfig": _loads(row["validation_data_config"]),
        "outputDataConfig": _loads(row["output_data_config"]),
        "vpcConfig": _loads(row["vpc_config"]),
        "customizationConfig": _loads(row["customization_config"]),
        "outputModelArn": row["output_model_arn"],
        "tags": _loads(row["tags"]) or {},
    }


def _arn_parts(arn: str | None) -> tuple[str, str, str] | None:
    """(partition, region, account) of an ARN, or None."""
    parts = (arn or "").split(":", 5)
    return (parts[1], parts[3], parts[4]) if len(parts) == 6 and parts[0] == "arn" else None


def _source_job(connection, target: Target, lookup: JobLookup | None) -> dict[str, Any] | str:
    """The job that produced ``target`` (a dict), or why there is none (a str)."""
    row = target.row
    if (row.get("customization_type") or "").upper() == "IMPORTED":
        return "imported"
    job_arn, job_name = row.get("job_arn"), row.get("job_name")
    if not job_arn and not job_name:
        return "no-job"
    parts = _arn_parts(job_arn)
    if parts and (parts[1], parts[2]) != (target.region, target.account_id):
        return "copied"
    found = _query(
        connection,
        f"SELECT * FROM {JOBS} WHERE arn = ? OR (account_id = ? AND region = ? AND job_name = ?) "
        "ORDER BY arn = ? DESC LIMIT 1",
        (job_arn, target.account_id, target.region, job_name, job_arn),
    )
    if found:
        job = _job_from_row(found[0])
    else:
        name = job_name or (job_arn or "").rsplit("/", 1)[-1]
        if lookup is None:
            return "missing-job: not in the snapshot"
        try:
            job = lookup(target.account_id, target.region, name)
        except Unavailable as exc:
            return f"missing-job: not in the snapshot, and GetModelCustomizationJob failed ({exc})"
        if job is None:
            return "missing-job: it no longer exists (GetModelCustomizationJob: not found)"
        job = dict(job)
        job["tags"] = job.get("tags") or {}
    if not job.get("roleArn") or not job.get("baseModelArn"):
        return "missing-job: its service role or base model is not recorded"
    return job


def _key_row(connection, arn: str, key_lookup: KeyLookup | None) -> dict[str, Any]:
    """The aws_kms_key row of a key ARN (or alias ARN), from the snapshot or live."""
    match = _KEY_ARN.fullmatch(arn)
    if not match:
        raise UserError(f"--kms-key needs a key ARN (arn:aws:kms:REGION:ACCOUNT:key/ID), not {arn!r}")
    partition, region, account, kind, name = match.groups()
    key_arn = arn
    if kind == "alias":
        if name.startswith("aws/"):
            raise UserError(f"--kms-key {arn} is an AWS managed key: the rule needs a customer-managed key")
        aliases = _query(
            connection,
            f"SELECT target_key_id FROM {ALIASES} WHERE account_id = ? AND region = ? AND alias_name = ?",
            (account, region, f"alias/{name}"),
        )
        if aliases and aliases[0]["target_key_id"]:
            key_arn = f"arn:{partition}:kms:{region}:{account}:key/{aliases[0]['target_key_id']}"
        elif key_lookup is None:
            raise UserError(f"--kms-key {arn}: no such alias in the snapshot (run bedrock-sql collect, or give the key's ARN)")
    rows = _query(connection, f"SELECT * FROM {KEYS} WHERE arn = ?", (key_arn,))
    if rows:
        return rows[0]
    if key_lookup is None:
        raise UserError(f"--kms-key {arn} is not in the snapshot: run bedrock-sql collect (or --apply, which describes it live)")
    row = key_lookup(key_arn)
    if row is None:
        raise UserError(f"--kms-key {arn} does not exist (DescribeKey found no such key)")
    return row


def _key_problem(row: dict[str, Any]) -> str | None:
    """Why no customization job may use this key ("is disabled: ..."), or None when it may."""
    if row.get("key_manager") == "AWS":
        return "is an AWS managed key: the rule needs a customer-managed key"
    state = row.get("key_state")
    if state == "PendingDeletion":
        when = f" on {row['deletion_date']}" if row.get("deletion_date") else ""
        return f"is pending deletion{when}: cancel the deletion or choose another key"
    if state == "Disabled":
        return "is disabled: enable it (aws kms enable-key) or choose another key"
    if state != "Enabled":
        return f"is in state {state}, not Enabled: a customization job cannot use it"
    spec, usage = row.get("key_spec") or "SYMMETRIC_DEFAULT", row.get("key_usage") or "ENCRYPT_DECRYPT"
    if (spec, usage) != ("SYMMETRIC_DEFAULT", "ENCRYPT_DECRYPT"):
        return f"is a {spec} {usage} key: Bedrock needs a symmetric encryption key (SYMMETRIC_DEFAULT, ENCRYPT_DECRYPT)"
    return None


def _refuse_key(row: dict[str, Any], given: str) -> None:
    """Refuse a --kms-key no customization job may use, with the reason."""
    problem = _key_problem(row)
    if problem:
        name = given if given == row["arn"] else f"{given} ({row['arn']})"
        raise UserError(f"--kms-key {name} {problem}")


def _existing_keys(
    connection, kms_keys: list[str], targets: list[Target], key_lookup: KeyLookup | None, plan: Plan
) -> dict[tuple[str, str], KeyChoice]:
    by_region: dict[str, KeyChoice] = {}
    for given in dict.fromkeys(kms_keys):
        row = _key_row(connection, given, key_lookup)
        _refuse_key(row, given)
        region = row["region"]
        if region in by_region:
            raise UserError(f"two --kms-key in {region} ({by_region[region].arn} and {row['arn']}): give one key per region")
        policy = row.get("policy")
        by_region[region] = KeyChoice(
            account_id=row["account_id"],
            region=region,
            arn=row["arn"],
            policy_text=policy if isinstance(policy, str) or policy is None else json.dumps(policy),
        )
    keys: dict[tuple[str, str], KeyChoice] = {}
    for target in targets:
        key = by_region.get(target.region)
        if key is None:
            elsewhere = ", ".join(f"{k.arn} is in {r}" for r, k in sorted(by_region.items()))
            raise UserError(
                f"--kms-key: model {target.model_name} is in {target.region} but {elsewhere}; a customization job "
                "needs a key in its own region (repeat --kms-key, one key per region)"
            )
        keys[(target.account_id, target.region)] = key
    return keys


def _new_keys(
    connection,
    alias: str,
    admin_roles: Sequence[str],
    targets: list[Target],
    sources: dict[str, dict[str, Any] | str],
    plan: Plan,
) -> dict[tuple[str, str], KeyChoice]:
    """One key per account and region: an existing key with ``alias``, or a new one."""
    accounts = {t.account_id for t in targets}
    keys: dict[tuple[str, str], KeyChoice] = {}
    for account_id, region in sorted({(t.account_id, t.region) for t in targets}):
        unit_targets = [t for t in targets if (t.account_id, t.region) == (account_id, region)]
        partition = unit_targets[0].partition
        users = sorted(
            {s["roleArn"] for t in unit_targets if isinstance(s := sources[t.model_arn], dict) and s.get("roleArn")}
        )
        # Administrators: the roles of this account, and roles of accounts the plan does not
        # touch (a central key-administration account); never another target account's roles.
        admins = sorted({r for r in admin_roles if _role_account(r) == account_id or _role_account(r) not in accounts})
        existing = _query(
            connection,
            f"SELECT k.* FROM {ALIASES} a JOIN {KEYS} k ON k.account_id = a.account_id AND k.region = a.region "
            f"AND k.id = a.target_key_id WHERE a.account_id = ? AND a.region = ? AND a.alias_name = ?",
            (account_id, region, alias),
        )
        if existing:
            row = existing[0]
            problem = _key_problem(row)
            if problem:
                raise UserError(
                    f"--alias {alias} already exists in {account_id}/{region}, but its key {row['arn']} "
                    f"{problem.split(': ', 1)[0]}: fix that key, or choose another --alias"
                )
            if row.get("key_rotation_enabled") == 0:
                plan.warnings.append(f"{alias} in {account_id}/{region} names existing key {row['arn']}, whose automatic rotation is off")
            key = KeyChoice(
                account_id=account_id,
                region=region,
                arn=row["arn"],
                alias=alias,
                users=users,
                admins=admins,
                policy_text=row.get("policy") or "",
            )
        else:
            key = KeyChoice(
                account_id=account_id,
                region=region,
                variable=key_variable(account_id, region),
                alias=alias,
                users=users,
                admins=admins,
                policy=key_policy(account_id, partition, admins=admins, users=users),
            )
        keys[(account_id, region)] = key
    return keys


def _role_account(role_arn: str) -> str:
    match = _ROLE_ARN.fullmatch(role_arn)
    return match.group(1) if match else ""


def key_variable(account_id: str, region: str) -> str:
    """The variable (and placeholder name) holding the ARN of the key created for a unit."""
    return f"KEY_ARN_{account_id}_{region.replace('-', '_')}"


def key_policy(account_id: str, partition: str = "aws", *, admins: Sequence[str] = (), users: Sequence[str] = ()) -> dict[str, Any]:
    """The key policy of a CMK for Bedrock custom models.

    Four statements: the account root (kms:*, so IAM policies keep working), the key
    administrators, the key users (the customization jobs' service roles) and grants for
    the same roles only when an AWS service asks for them (kms:GrantIsForAWSResource).
    A statement without principals is left out.
    """
    statements: list[dict[str, Any]] = [
        {
            "Sid": "Enable IAM User Permissions",
            "Effect": "Allow",
            "Principal": {"AWS": f"arn:{partition}:iam::{account_id}:root"},
            "Action": "kms:*",
            "Resource": "*",
        }
    ]
    if admins:
        statements.append(
            {
                "Sid": "Allow access for Key Administrators",
                "Effect": "Allow",
                "Principal": {"AWS": sorted(set(admins))},
                "Action": list(KEY_ADMIN_ACTIONS),
                "Resource": "*",
            }
        )
    if users:
        statements.append(
            {
                "Sid": "Allow use of the key",
                "Effect": "Allow",
                "Principal": {"AWS": sorted(set(users))},
                "Action": list(KEY_USER_ACTIONS),
                "Resource": "*",
            }
        )
        statements.append(
            {
                "Sid": "Allow attachment of persistent resources",
                "Effect": "Allow",
                "Principal": {"AWS": sorted(set(users))},
                "Action": list(KEY_GRANT_ACTIONS),
                "Resource": "*",
                "Condition": {"Bool": {"kms:GrantIsForAWSResource": "true"}},
            }
        )
    return {"Version": "2012-10-17", "Id": "bedrock-custom-models", "Statement": statements}


def _key_steps(key: KeyChoice) -> list[Step]:
    unit = f"{key.account_id}/{key.region}"
    assert key.policy is not None and key.variable is not None
    notes = [f"A customer-managed key for the custom models of {unit}, named {key.alias}."]
    notes.append(
        "Key users (the source jobs' service roles): " + ", ".join(key.users) + "."
        if key.users
        else "No key users: no model here has a job to re-run; add the role of the import or copy job to the key policy."
    )
    notes.append(
        "Key administrators: " + ", ".join(key.admins) + "."
        if key.admins
        else "No --key-admin-role for this account: the key is administered through IAM policies (the account root statement)."
    )
    ref = "${" + key.variable + "}"
    return [
        Step(
            service="kms",
            operation="CreateKey",
            region=key.region,
            account_id=key.account_id,
            params={
                "Policy": json.dumps(key.policy, indent=2),
                "Description": KEY_DESCRIPTION,
                "KeyUsage": "ENCRYPT_DECRYPT",
                "KeySpec": "SYMMETRIC_DEFAULT",
                "Tags": [dict(t) for t in KEY_TAGS],
            },
            comment=" ".join(notes),
            outputs={key.variable: "KeyMetadata.Arn"},
            alias=key.alias,
        ),
        Step(
            service="kms",
            operation="CreateAlias",
            region=key.region,
            account_id=key.account_id,
            params={"AliasName": key.alias, "TargetKeyId": ref},
            comment=f"Name the key {key.alias}.",
        ),
        Step(
            service="kms",
            operation="EnableKeyRotation",
            region=key.region,
            account_id=key.account_id,
            params={"KeyId": ref},
            comment="Rotate the key material automatically (every year).",
        ),
    ]


def _service_model_pattern(member: str) -> re.Pattern:
    shape = _job_input_shape().members[member]
    return re.compile(shape.metadata["pattern"])


@lru_cache(maxsize=1)
def _job_input_shape():
    import botocore.session

    model = botocore.session.get_session().get_service_model("bedrock")
    return model.operation_model("CreateModelCustomizationJob").input_shape


def new_name(name: str, suffix: str, member: str = "jobName") -> str:
    """``name + suffix``, shortened (with a hash, to stay unique) to Bedrock's 63 characters."""
    candidate = name + suffix
    if len(candidate) > _NAME_LIMIT:
        digest = hashlib.sha256(name.encode()).hexdigest()[:8]
        keep = _NAME_LIMIT - len(suffix) - len(digest) - 1
        candidate = f"{name[:keep].rstrip('-_.+')}-{digest}{suffix}"
    if not _service_model_pattern(member).fullmatch(candidate):
        what = "job" if member == "jobName" else "model"
        raise UserError(
            f"the new {what} name {candidate!r} (from {name!r} and --suffix {suffix!r}) is not a valid "
            f"Bedrock {what} name: choose another --suffix"
        )
    return candidate


def request_token(source_job_arn: str, suffix: str, key: KeyChoice) -> str:
    """The clientRequestToken of a new job: the same plan always asks for the same job."""
    key_ref = key.arn or f"alias:{key.account_id}:{key.region}:{key.alias}"
    return str(uuid.uuid5(uuid.NAMESPACE_URL, f"bedrock-sql/remediate/{source_job_arn}/{suffix}/{key_ref}"))


def _tag_list(tags: Any) -> list[dict[str, str]]:
    if isinstance(tags, dict):
        return [{"key": str(k), "value": str(v)} for k, v in sorted(tags.items())]
    return []


def _job_step(connection, target: Target, job: dict[str, Any], key: KeyChoice, suffix: str) -> Step:
    job_name = new_name(job["jobName"], suffix, "jobName")
    model_name = new_name(target.model_name, suffix, "customModelName")
    token = request_token(job.get("jobArn") or job["jobName"], suffix, key)
    copied = {param: job.get(source) for param, source in _COPIED_FIELDS.items()}
    params: dict[str, Any] = {}
    # The request in the order a human writes it (then any member the API adds), without absent values.
    for member in dict.fromkeys([*_JOB_PARAM_ORDER, *_job_input_shape().members]):
        if member == "jobName":
            value: Any = job_name
        elif member == "customModelName":
            value = model_name
        elif member == "clientRequestToken":
            value = token
        elif member == "customModelKmsKeyId":
            value = key.ref
        elif member == "jobTags":
            value = _tag_list(job.get("tags"))
        elif member == "customModelTags":
            value = _tag_list(_loads(target.row.get("tags")))
        else:
            value = copied.get(member)
        if value not in (None, {}, []):
            params[member] = value

    current = target.row.get("model_kms_key_arn")
    now = f"encrypted with {current}" if current else "encrypted with the Bedrock-owned key"
    comment = (
        f"Model {target.model_name} ({target.model_arn}) is {now}. Re-run its "
        f"{job.get('customizationType') or 'FINE_TUNING'} job {job['jobName']} as {job_name}, "
        f"producing model {model_name} encrypted with {key.alias or key.arn}."
    )
    existing = _query(
        connection,
        f"SELECT arn, client_request_token FROM {JOBS} WHERE account_id = ? AND region = ? AND job_name = ?",
        (target.account_id, target.region, job_name),
    )
    if existing:
        if existing[0]["client_request_token"] != token:
            raise UserError(
                f"a job named {job_name} already exists in {target.account_id}/{target.region} and this plan did not "
                "start it (different key or plan): choose another --suffix"
            )
        comment += f" Already started by an earlier apply: {existing[0]['arn']}."
    taken = _query(
        connection,
        f"SELECT arn, job_name FROM {MODELS} WHERE account_id = ? AND region = ? AND model_name = ?",
        (target.account_id, target.region, model_name),
    )
    if taken and taken[0]["job_name"] != job_name:
        raise UserError(f"a model named {model_name} already exists in {target.account_id}/{target.region}: choose another --suffix")
    policy_text = key.policy_text
    if policy_text is not None and job.get("roleArn") and job["roleArn"] not in policy_text:
        # Printed with the plan: a key policy that does not name the role may still allow it via IAM.
        comment += (
            f" Note: the key policy of {key.arn} does not name {job['roleArn']}; make sure that role may use the key."
        )
    return Step(
        service="bedrock",
        operation="CreateModelCustomizationJob",
        region=target.region,
        account_id=target.account_id,
        params=params,
        comment=comment,
        model_arn=target.model_arn,
    )


def _manual_step(connection, target: Target, why: str, key: KeyChoice, suffix: str) -> ManualStep:
    row = target.row
    model_name = new_name(target.model_name, suffix, "customModelName")
    base = dict(
        service="bedrock",
        region=target.region,
        account_id=target.account_id,
        model_arn=target.model_arn,
        model_name=target.model_name,
    )
    if why == "imported":
        return ManualStep(
            operation="CreateModelImportJob",
            params={
                "jobName": new_name(target.model_name + "-import", suffix, "jobName"),
                "importedModelName": model_name,
                "roleArn": "<the service role of the original import job>",
                "modelDataSource": {"s3DataSource": {"s3Uri": "<the S3 location the model was imported from>"}},
                "importedModelKmsKeyId": key.ref,
            },
            reason=(
                f"Model {target.model_name} was imported, not produced by a customization job, so it cannot be re-run: "
                f"import it again with CreateModelImportJob and importedModelKmsKeyId = {key.alias or key.arn}."
            ),
            **base,
        )
    if why in ("copied", "no-job"):
        source_arn = "<the ARN of the model this one was copied from>"
        parts = _arn_parts(row.get("job_arn"))
        if parts:
            found = _query(connection, f"SELECT output_model_arn FROM {JOBS} WHERE arn = ?", (row["job_arn"],))
            if found and found[0]["output_model_arn"]:
                source_arn = found[0]["output_model_arn"]
        origin = (
            f"was copied from another account or region (its job {row['job_arn']} ran in {parts[2]}/{parts[1]})"
            if why == "copied" and parts
            else "has no customization job on record (an imported or copied model)"
        )
        return ManualStep(
            operation="CreateModelCopyJob",
            params={"sourceModelArn": source_arn, "targetModelName": model_name, "modelKmsKeyId": key.ref},
            reason=(
                f"Model {target.model_name} {origin}, so no job can be re-run here: copy the source model again "
                f"with CreateModelCopyJob and modelKmsKeyId = {key.alias or key.arn} (once the source is itself "
                "remediated, copy its replacement), or re-import it with CreateModelImportJob and importedModelKmsKeyId."
            ),
            **base,
        )
    # The job that produced the model is gone or unreadable: its recorded configuration is on the model.
    detail = why.split(": ", 1)[-1]
    job_name = row.get("job_name") or (row.get("job_arn") or "").rsplit("/", 1)[-1] or target.model_name
    params: dict[str, Any] = {
        "jobName": new_name(job_name, suffix, "jobName"),
        "customModelName": model_name,
        "roleArn": "<the service role the original job ran as>",
        "baseModelIdentifier": row.get("base_model_arn") or "<the base model>",
        "customizationType": row.get("customization_type") or "FINE_TUNING",
        "customModelKmsKeyId": key.ref,
    }
    for param, column in (
        ("trainingDataConfig", "training_data_config"),
        ("validationDataConfig", "validation_data_config"),
        ("outputDataConfig", "output_data_config"),
        ("hyperParameters", "hyper_parameters"),
        ("customizationConfig", "customization_config"),
    ):
        value = _loads(row.get(column))
        if value:
            params[param] = value
    return ManualStep(
        operation="CreateModelCustomizationJob",
        params=params,
        reason=(
            f"The job that produced model {target.model_name} ({row.get('job_arn') or job_name}) is {detail}. "
            "The model still records its base model, data locations and hyperparameters, which this manual step "
            "carries; supply the service role (and the VPC configuration, if the job ran in one) and run the job by hand."
        ),
        **base,
    )


def _check_unique_names(plan: Plan) -> None:
    seen: dict[tuple[str, str, str], str] = {}
    for step in plan.job_steps:
        for member in ("jobName", "customModelName"):
            key = (step.account_id, step.region, step.params[member])
            if key in seen:
                raise UserError(f"two models would both get the name {key[2]} in {key[0]}/{key[1]}: rename one, or choose another --suffix")
            seen[key] = step.model_arn or ""


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
    lines.append(f"  {n}. Collect again and check: bedrock-sql collect && bedrock-sql check {SEED_CONTROL}")
    return lines


# --- the bash script


def _shell_value(value: Any) -> str:
    if isinstance(value, str):
        match = re.fullmatch(r"\$\{(\w+)\}", value)
        if match:
            return f'"${match.group(1)}"'
        return shlex.quote(value)
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (int, float)):
        return str(value)
    return shlex.quote(json.dumps(value, separators=(",", ":")))


def _cli_args(params: dict[str, Any], overrides: dict[str, str] | None = None) -> list[str]:
    from botocore import xform_name

    args = []
    for name, value in params.items():
        rendered = (overrides or {}).get(name)
        args.append(f"--{xform_name(name, '-')} {rendered if rendered is not None else _shell_value(value)}")
    return args


def _comment(text: str, indent: str = "") -> list[str]:
    clean = " ".join(str(text).split())  # one line of text: no newline can end a comment early
    return [f"{indent}# {line}" for line in textwrap.wrap(clean, 96 - len(indent), break_on_hyphens=False, break_long_words=False)]


def _command(head: str, args: list[str], indent: str, tail: str = "") -> list[str]:
    """A command over several lines: ``head`` (already indented), one argument a line."""
    lines = [f"{head} \\"]
    for arg in args:
        lines.append(f"{indent}  {arg} \\")
    if tail:
        lines.append(f"{indent}  {tail}")
    else:
        lines[-1] = lines[-1][:-2]
    return lines


def render_script(plan: Plan) -> tuple[str, dict[str, str]]:
    """The plan as a bash script of AWS CLI commands, and the key policy files it reads.

    Returns ``(script, {file name: content})``; the files go beside the script, which
    finds them through its own directory. The script is safe to run twice: it reuses the
    key an alias already names and skips jobs that already exist.
    """
    files = {k.policy_file: json.dumps(k.policy, indent=2) + "\n" for k in plan.keys if k.create}
    accounts = plan.account_ids
    out = [
        "#!/usr/bin/env bash",
        "# Re-create Amazon Bedrock custom models with a KMS customer-managed key (CMK).",
        "#",
        *_comment(
            f"Written by bedrock-sql {__version__} remediate from snapshot {plan.snapshot or '(unnamed)'}"
            + (f", collected {plan.collected_at}" if plan.collected_at else "")
            + f". {len(plan.targets)} model(s) fail {SEED_CONTROL}: for each, this script starts the "
            "customization job again with the same configuration plus --custom-model-kms-key-id. "
            "It creates nothing twice when run again, and deletes nothing."
        ),
        *_comment(
            f"Account(s): {', '.join(accounts)}. Run it with credentials for each account in turn (e.g. "
            "AWS_PROFILE=...): each run does the steps of the account the credentials belong to."
        ),
        *(_comment("Key policies: the key-policy-*.json files beside this script.") if files else []),
        "set -euo pipefail",
        "",
        'HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"',
        'ACCOUNT_ID="$(aws sts get-caller-identity --query Account --output text)"',
        'case "$ACCOUNT_ID" in',
        f"  {'|'.join(accounts)}) ;;",
        f'  *) echo "This plan is for account(s) {", ".join(accounts)}; these credentials are for account $ACCOUNT_ID." >&2; exit 1 ;;',
        "esac",
    ]
    for account_id in accounts:
        out += ["", f'if [ "$ACCOUNT_ID" = "{account_id}" ]; then', f'  echo "Account {account_id}"']
        regions = sorted({s.region for s in [*plan.steps, *plan.manual_steps] if s.account_id == account_id})
        for region in regions:
            out += ["", f"  # ---- {account_id} {region} " + "-" * max(4, 70 - len(account_id) - len(region))]
            steps = [s for s in plan.steps if (s.account_id, s.region) == (account_id, region)]
            for step in steps:
                out += _script_step(step, files)
            for manual in (m for m in plan.manual_steps if (m.account_id, m.region) == (account_id, region)):
                out += [""] + _comment("MANUAL: " + manual.reason + " Fill in the <...> values:", "  ")
                command = _command(
                    f"aws {manual.service} {_cli_operation(manual.operation)}",
                    [f"--region {manual.region}", *_cli_args(manual.params)],
                    "",
                )
                out += [f"  #   {' '.join(line.split(chr(10)))}" for line in command]
                out.append(f"  echo {shlex.quote(f'Manual step left for {manual.model_name}: see the comment in this script.')}")
        out.append("fi")
    out += ["", "cat <<'NEXT_STEPS'", *next_steps(plan), "NEXT_STEPS", ""]
    return "\n".join(out), files


def _cli_operation(operation: str) -> str:
    from botocore import xform_name

    return xform_name(operation, "-")


def _script_step(step: Step, files: dict[str, str]) -> list[str]:
    indent = "  "
    region = f"--region {step.region}"
    if step.operation == "CreateKey":
        var = next(iter(step.outputs))
        policy_file = f"key-policy-{step.account_id}-{step.region}.json"
        assert policy_file in files
        args = _cli_args(step.params, {"Policy": f'"file://$HERE/{policy_file}"'})
        return [
            "",
            *_comment(step.comment, indent),
            *_comment(f"Reuse the key {step.alias} names if it exists (a second run creates nothing).", indent),
            f'{indent}{var}="$(aws kms describe-key {region} --key-id {shlex.quote(step.alias or "")} '
            '--query KeyMetadata.Arn --output text 2>/dev/null || true)"',
            f'{indent}if [ -z "${var}" ] || [ "${var}" = "None" ]; then',
            *_command(f'{indent}  {var}="$(aws kms create-key', [region, *args], indent + "  ", "--query KeyMetadata.Arn --output text)\""),
        ]
    if step.operation == "CreateAlias":
        var = re.fullmatch(r"\$\{(\w+)\}", step.params["TargetKeyId"]).group(1)
        return [
            f"{indent}  aws kms create-alias {region} {' '.join(_cli_args(step.params))}",
            f'{indent}  echo "Created key ${var} ({step.params["AliasName"]})"',
            f"{indent}else",
            f'{indent}  echo "Reusing key ${var} ({step.params["AliasName"]} already exists)"',
            f"{indent}fi",
        ]
    if step.operation == "EnableKeyRotation":
        return [f"{indent}aws kms enable-key-rotation {region} {' '.join(_cli_args(step.params))}"]
    if step.operation == "CreateModelCustomizationJob":
        job = step.params["jobName"]
        return [
            "",
            *_comment(step.comment, indent),
            f"{indent}if aws bedrock get-model-customization-job {region} --job-identifier {shlex.quote(job)} >/dev/null 2>&1; then",
            f"{indent}  echo {shlex.quote(f'Job {job} already exists: nothing started')}",
            f"{indent}else",
            f"{indent}  echo {shlex.quote(f'Starting job {job}:')}",
            *_command(
                f"{indent}  aws bedrock create-model-customization-job",
                [region, *_cli_args(step.params)],
                indent + "  ",
                "--query jobArn --output text",
            ),
            f"{indent}fi",
        ]
    # Any other step: the plain command.
    head = f"{indent}aws {step.service} {_cli_operation(step.operation)}"
    return ["", *_comment(step.comment, indent), *_command(head, [region, *_cli_args(step.params)], indent)]


def write_script(plan: Plan, out_dir: str | os.PathLike, *, force: bool = False) -> list[Path]:
    """Write the script and its key policies into ``out_dir``; refuse to overwrite unless ``force``.

    The files map the estate (roles, buckets, VPCs), so they are created readable by their
    owner only, like the snapshot. Nothing is written if any file exists (without force).
    """
    script, files = render_script(plan)
    folder = Path(out_dir)
    contents = {SCRIPT_NAME: script, **files}
    if folder.exists() and not folder.is_dir():
        raise UserError(f"--out-dir {folder}: not a directory")
    if not force:
        clash = [name for name in contents if (folder / name).exists()]
        if clash:
            raise UserError(f"{folder / clash[0]} already exists: pass --force to overwrite it, or choose another --out-dir")
    try:
        folder.mkdir(parents=True, exist_ok=True)
        written = []
        for name, text in contents.items():
            path = folder / name
            flags = os.O_WRONLY | os.O_CREAT | os.O_TRUNC | (0 if force else os.O_EXCL)
            fd = os.open(path, flags, 0o700 if name == SCRIPT_NAME else 0o600)
            with os.fdopen(fd, "w", encoding="utf-8") as handle:
                handle.write(text)
            written.append(path)
    except OSError as exc:
        raise UserError(f"cannot write the plan into {folder}: {exc.strerror}") from None
    return written


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
        from .providers.bedrock_model_customization_job import get_job

        if self._failure:
            raise Unavailable(self._failure)
        try:
            api = self.api(account_id, region)
        except UserError as exc:
            if self._scope is None:
                self._failure = str(exc)  # no credentials: do not try again for every job
            raise Unavailable(str(exc)) from None
        try:
            return get_job(api, name)
        except ApiError as exc:
            raise Unavailable(f"{exc.code}: {exc.message}") from None

    def key(self, arn: str) -> dict[str, Any] | None:
        """DescribeKey, as the columns of aws_kms_key; None when there is no such key."""
        parts = _arn_parts(arn)
        assert parts is not None
        _, region, account_id = parts
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
    started_jobs: list[tuple[str, str, str, str]] = field(default_factory=list)  # (model arn, region, job name, job arn)
    existing_jobs: list[tuple[str, str, str, str]] = field(default_factory=list)
    rotation_enabled: list[str] = field(default_factory=list)

    @property
    def created_anything(self) -> bool:
        return bool(self.created_keys or self.started_jobs or self.rotation_enabled)


def _resolve(value: Any, values: dict[str, str]) -> Any:
    """Replace ``${NAME}`` placeholders with what earlier steps returned."""
    if isinstance(value, str):
        match = re.fullmatch(r"\$\{(\w+)\}", value)
        if match:
            if match.group(1) not in values:
                raise UserError(f"internal: ${{{match.group(1)}}} is used before a step sets it")
            return values[match.group(1)]
        return value
    if isinstance(value, dict):
        return {k: _resolve(v, values) for k, v in value.items()}
    if isinstance(value, list):
        return [_resolve(v, values) for v in value]
    return value


def apply_plan(plan: Plan, live: LiveAws, *, on_event: Callable[[str], None] | None = None) -> ApplyResult:
    """Carry out the plan's steps with boto3. Idempotent; never deletes anything.

    A key whose alias already exists is reused (not created again); a job that already
    exists with this plan's client request token is reported, not started again. The first
    failure stops the run with a :class:`UserError` saying what was done before it;
    running again skips what is done.
    """
    say = on_event or (lambda message: None)
    result = ApplyResult()
    for account_id in plan.account_ids:  # every account reachable before anything changes
        live.api(account_id, plan.regions[0] if plan.regions else "us-east-1")
    _preflight(plan, live)
    values: dict[str, str] = {}
    reused: set[str] = set()  # variables of keys that already existed
    done = 0
    for step in plan.steps:
        api = live.api(step.account_id, step.region)
        where = f"{step.account_id}/{step.region}"
        try:
            _apply_step(step, api, where, values, reused, result, say)
        except ApiError as exc:
            raise UserError(
                f"{exc.operation} in {where} failed: {exc.code}: {exc.message} "
                f"({done} step(s) done before it; fix this and run again: done steps are skipped)"
            ) from None
        done += 1
    return result


def _preflight(plan: Plan, live: LiveAws) -> None:
    """Refuse, before anything changes, what AWS holds now and the snapshot did not show:
    an alias naming an unusable key, a job name someone else's job already has."""
    for step in plan.steps:
        api = live.api(step.account_id, step.region)
        where = f"{step.account_id}/{step.region}"
        try:
            if step.operation == "CreateKey":
                existing = _describe_alias(api, step.alias or "")
                problem = existing and _key_problem(_key_columns(existing, step.account_id, step.region))
                if problem:
                    raise UserError(
                        f"{step.alias} already exists in {where}, but its key {existing['Arn']} "
                        f"{problem.split(': ', 1)[0]}: fix that key, or choose another --alias (nothing changed)"
                    )
            elif step.operation == "CreateModelCustomizationJob":
                job = _get_job(api, step.params["jobName"])
                if job is not None and job.get("clientRequestToken") != step.params.get("clientRequestToken"):
                    raise UserError(
                        f"a job named {step.params['jobName']} already exists in {where} and this plan did not start "
                        "it (different client request token): choose another --suffix (nothing changed)"
                    )
        except ApiError as exc:
            raise UserError(f"{exc.operation} in {where} failed: {exc.code}: {exc.message} (nothing changed)") from None


def _apply_step(step: Step, api: UnitApi, where: str, values: dict, reused: set, result: ApplyResult, say) -> None:
    params = _resolve(step.params, values)
    if step.operation == "CreateKey":
        var = next(iter(step.outputs))
        existing = _describe_alias(api, step.alias or "")
        if existing is not None:
            problem = _key_problem(_key_columns(existing, step.account_id, step.region))
            if problem:
                raise UserError(
                    f"{step.alias} already exists in {where}, but its key {existing['Arn']} "
                    f"{problem.split(': ', 1)[0]}: fix that key, or choose another --alias"
                )
            values[var] = existing["Arn"]
            reused.add(var)
            result.reused_keys.append((step.account_id, step.region, existing["Arn"]))
            say(f"{where}: {step.alias} already exists: reusing key {existing['Arn']} (nothing created)")
            _warn_policy(api, existing["Arn"], step, say, where)
            return
        arn = api.call("kms", "create_key", **params)["KeyMetadata"]["Arn"]
        values[var] = arn
        result.created_keys.append((step.account_id, step.region, arn))
        say(f"{where}: created key {arn}")
        return
    if step.operation == "CreateAlias":
        var = re.fullmatch(r"\$\{(\w+)\}", step.params["TargetKeyId"])
        if var and var.group(1) in reused:
            return
        api.call("kms", "create_alias", **params)
        say(f"{where}: created alias {params['AliasName']} -> {params['TargetKeyId']}")
        return
    if step.operation == "EnableKeyRotation":
        status = api.call("kms", "get_key_rotation_status", KeyId=params["KeyId"])
        if status.get("KeyRotationEnabled"):
            return
        api.call("kms", "enable_key_rotation", **params)
        result.rotation_enabled.append(params["KeyId"])
        say(f"{where}: enabled automatic rotation of {params['KeyId']}")
        return
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
            return
        arn = api.call("bedrock", "create_model_customization_job", **params)["jobArn"]
        result.started_jobs.append((step.model_arn or "", step.region, name, arn))
        say(f"{where}: started job {name}: {arn}")
        return
    raise UserError(f"internal: no way to apply {step.operation}")


def _describe_alias(api: UnitApi, alias: str) -> dict[str, Any] | None:
    try:
        return api.call("kms", "describe_key", KeyId=alias)["KeyMetadata"]
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
        lines.append(f"Started {len(result.started_jobs)} customization job(s):")
        lines.extend(f"  {arn}" for *_, arn in result.started_jobs)
    if not result.created_anything:
        lines.append("Nothing created: every key, alias and job of this plan already exists.")
    started = [(region, name, _model_name(plan, model_arn, name)) for model_arn, region, name, _ in jobs]
    lines.extend(next_steps(plan, started))
    return lines


def _model_name(plan: Plan, model_arn: str, job_name: str) -> str:
    for step in plan.job_steps:
        if step.params["jobName"] == job_name and step.model_arn == model_arn:
            return step.params["customModelName"]
    return job_name


__all__ = [
    "ApplyResult",
    "KeyChoice",
    "LiveAws",
    "ManualStep",
    "Plan",
    "SEED_CONTROL",
    "SCRIPT_NAME",
    "Step",
    "Target",
    "Unavailable",
    "apply_plan",
    "apply_report",
    "describe_plan",
    "key_policy",
    "next_steps",
    "plan_json",
    "plan_remediation",
    "render_script",
    "write_script",
]
