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

import hashlib
import json
import re
import uuid
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Any, Callable, Sequence

from ..errors import UserError
from ..providers.base import arn_account, arn_region
from ..sql import run_query

SEED_CONTROL = "bedrock_custom_model_encrypted_with_cmk"
DEFAULT_SUFFIX = "-cmk"

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
            found = _query(
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


def _source_job(connection, target: Target, lookup: JobLookup | None) -> dict[str, Any] | str:
    """The job that produced ``target`` (a dict), or why there is none (a str)."""
    row = target.row
    if (row.get("customization_type") or "").upper() == "IMPORTED":
        return "imported"
    job_arn, job_name = row.get("job_arn"), row.get("job_name")
    if not job_arn and not job_name:
        return "no-job"
    job_region = arn_region(job_arn or "")
    if job_region is not None and (job_region, arn_account(job_arn)) != (target.region, target.account_id):
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
        raise UserError(f"--kms-key needs a key or alias ARN (arn:aws:kms:REGION:ACCOUNT:key/ID or ...:alias/NAME), not {arn!r}")
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
        job_region = arn_region(row.get("job_arn") or "")
        if job_region is not None:
            found = _query(connection, f"SELECT output_model_arn FROM {JOBS} WHERE arn = ?", (row["job_arn"],))
            if found and found[0]["output_model_arn"]:
                source_arn = found[0]["output_model_arn"]
        origin = (
            f"was copied from another account or region (its job {row['job_arn']} ran in {arn_account(row['job_arn'])}/{job_region})"
            if why == "copied" and job_region is not None
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
    regions = sorted({s.region for s in plan.steps} | {m.region for m in plan.manual_steps})
    where = "".join(f" --region {r}" for r in regions)
    lines.append(f"  {n}. Collect again and check: bedrock-sql collect{where} && bedrock-sql check {SEED_CONTROL}")
    return lines
