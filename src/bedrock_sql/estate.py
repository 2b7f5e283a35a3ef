"""A simulated AWS estate of Bedrock custom models, customization jobs and KMS keys.

Used by ``bedrock-sql demo`` and by the tests. Everything is seeded through boto3
against moto -- either ``moto.mock_aws`` in process or a ``moto.server.ThreadedMotoServer``
running in *this* process (pass its URL as ``endpoint_url``) -- and then moto's backend
objects are "nudged" where the public API cannot express a case:

* moto gives every custom model (and job) a synthetic ``...-kms-key`` ARN; we set the
  real one, or ``None`` for a Bedrock-owned key, on every seeded model and job;
* moto's jobs stay ``InProgress``; we set ``Completed`` / ``Failed`` / ``Stopped``;
* moto's KMS keys are always customer managed; we mark AWS-managed ones;
* timestamps of jobs and models are set to fixed, realistic values.

The nudges write moto's in-process backends, so a moto server in another process
cannot be seeded with this module. moto itself is imported lazily: importing this
module works without moto installed; calling the seeders needs it (``pip install
bedrock-sql[demo]``).

Everything here is deterministic apart from what moto generates itself (KMS key ids,
KMS creation/deletion dates, request ids).
"""

from __future__ import annotations

import json
import uuid
from collections import Counter
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any, Iterable, Mapping, Sequence

if TYPE_CHECKING:  # pragma: no cover
    import boto3

DEFAULT_ACCOUNT_ID = "123456789012"
#: The account that owns the keys of ``foreign_account_key`` models; nothing in it is seeded.
FOREIGN_ACCOUNT_ID = "999999999999"
DEFAULT_REGIONS = ("us-east-1", "eu-west-1")

#: How a model is encrypted; every value appears in :func:`seed_demo_estate`.
CASES = (
    "cmk",  # an enabled customer-managed key
    "bedrock_owned",  # no modelKmsKeyArn: the key Bedrock owns
    "aws_managed",  # alias/aws/bedrock, KeyManager AWS
    "disabled_key",  # a customer-managed key in state Disabled
    "pending_deletion_key",  # a customer-managed key in state PendingDeletion
    "foreign_account_key",  # a key in FOREIGN_ACCOUNT_ID, not visible from the estate
)

KEY_MANAGERS = ("CUSTOMER", "AWS")
KEY_STATES = ("Enabled", "Disabled", "PendingDeletion")
JOB_STATUSES = ("InProgress", "Completed", "Failed", "Stopped")

TITAN_EXPRESS = "amazon.titan-text-express-v1:0:8k"
TITAN_LITE = "amazon.titan-text-lite-v1:0:4k"
LLAMA_8B = "meta.llama3-1-8b-instruct-v1:0"

FINE_TUNING_HYPER_PARAMETERS = {"epochCount": "2", "batchSize": "1", "learningRate": "0.00001"}
PRE_TRAINING_HYPER_PARAMETERS = {
    "epochCount": "1",
    "batchSize": "1",
    "learningRate": "0.000005",
    "learningRateWarmupSteps": "5",
}

# moto stores Bedrock timestamps as naive "YYYY-MM-DD HH:MM:SS" text (meant as UTC here).
_MOTO_TIME_FORMAT = "%Y-%m-%d %H:%M:%S"
_EPOCH = datetime(2026, 1, 5, 9, 0, 0)


# --------------------------------------------------------------------------- results


@dataclass
class SeededModel:
    """A custom model as a test expects to find it in the snapshot."""

    account_id: str
    region: str
    model_name: str
    model_arn: str
    job_name: str
    job_arn: str
    kms_key_arn: str | None  # None = Bedrock-owned key (modelKmsKeyArn absent)
    case: str  # one of CASES


@dataclass
class SeededKey:
    """A KMS key created in the estate."""

    account_id: str
    region: str
    key_id: str
    arn: str
    key_manager: str  # CUSTOMER | AWS
    key_state: str  # Enabled | Disabled | PendingDeletion
    alias: str | None
    rotation: bool = False
    description: str = ""


@dataclass
class Estate:
    """Everything :func:`seed_demo_estate` created.

    ``jobs`` holds one dict per customization job (see :func:`_job_record` for the keys),
    including jobs that never produced a model (Failed, Stopped, InProgress).
    """

    models: list[SeededModel] = field(default_factory=list)
    keys: list[SeededKey] = field(default_factory=list)
    jobs: list[dict[str, Any]] = field(default_factory=list)

    @property
    def regions(self) -> list[str]:
        return sorted({m.region for m in self.models} | {j["region"] for j in self.jobs})

    @property
    def account_ids(self) -> list[str]:
        return sorted({m.account_id for m in self.models} | {k.account_id for k in self.keys})

    def by_case(self, case: str) -> list[SeededModel]:
        """Models encrypted the way ``case`` (one of :data:`CASES`) describes."""
        if case not in CASES:
            raise ValueError(f"unknown case {case!r}; expected one of {', '.join(CASES)}")
        return [m for m in self.models if m.case == case]

    def models_in(self, region: str) -> list[SeededModel]:
        return [m for m in self.models if m.region == region]

    def model(self, model_name: str, region: str | None = None) -> SeededModel:
        return _only(
            [m for m in self.models if m.model_name == model_name and region in (None, m.region)],
            f"model {model_name!r}",
        )

    def key(self, alias: str, region: str) -> SeededKey:
        """The key an alias (``alias/...``) names in a region."""
        return _only([k for k in self.keys if k.alias == alias and k.region == region], f"key {alias!r} in {region}")

    def key_by_arn(self, arn: str) -> SeededKey | None:
        return next((k for k in self.keys if k.arn == arn), None)

    def job(self, job_name: str, region: str | None = None) -> dict[str, Any]:
        return _only(
            [j for j in self.jobs if j["job_name"] == job_name and region in (None, j["region"])],
            f"job {job_name!r}",
        )

    def jobs_with_status(self, status: str) -> list[dict[str, Any]]:
        return [j for j in self.jobs if j["status"] == status]


def _only(items: list, what: str):
    if len(items) != 1:
        raise LookupError(f"{what}: expected exactly one, found {len(items)}")
    return items[0]


# --------------------------------------------------------------------------- specs


@dataclass(frozen=True)
class _JobSpec:
    """One customization job (and, when it completed, its model)."""

    job_name: str
    model_name: str
    base_model: str = TITAN_EXPRESS
    customization_type: str = "FINE_TUNING"
    key_arn: str | None = None  # customModelKmsKeyId, and the model's key
    case: str = "bedrock_owned"
    vpc: bool = False
    tags: Mapping[str, str] | None = None
    status: str = "Completed"
    failure_message: str | None = None
    created: datetime = _EPOCH
    duration: timedelta = timedelta(hours=3, minutes=12)
    validation: bool = True

    @property
    def hyper_parameters(self) -> dict[str, str]:
        if self.customization_type == "CONTINUED_PRE_TRAINING":
            return dict(PRE_TRAINING_HYPER_PARAMETERS)
        return dict(FINE_TUNING_HYPER_PARAMETERS)


# --------------------------------------------------------------------------- clients


def _client(session: "boto3.Session", service: str, region: str, endpoint_url: str | None):
    kwargs: dict[str, Any] = {"region_name": region}
    if endpoint_url:
        kwargs["endpoint_url"] = endpoint_url
    return session.client(service, **kwargs)


def _arn_parts(arn: str) -> tuple[str, str, str]:
    """(partition, region, account) of an ARN."""
    parts = arn.split(":", 5)
    return parts[1], parts[3], parts[4]


def _check_account(arn: str, expected: str) -> str:
    account = _arn_parts(arn)[2]
    if account != expected:
        raise ValueError(
            f"the session acts in account {account}, not account_id={expected}: "
            "pass the account the session's credentials belong to"
        )
    return account


def _bedrock_backend(account_id: str, region: str):
    from moto.bedrock.models import bedrock_backends

    return bedrock_backends[account_id][region]


def _kms_backend(account_id: str, region: str):
    from moto.kms.models import kms_backends

    return kms_backends[account_id][region]


# --------------------------------------------------------------------------- jobs


def role_arn(account_id: str, partition: str = "aws") -> str:
    return f"arn:{partition}:iam::{account_id}:role/BedrockCustomizationRole"


def _bucket(account_id: str, region: str) -> str:
    return f"s3://acme-ml-{account_id}-{region}"


def _vpc_config(region: str) -> dict[str, list[str]]:
    suffix = {"us-east-1": "1e1", "eu-west-1": "e71"}.get(region, "0a0")
    return {
        "subnetIds": [f"subnet-0a1b2c3d4e5f6{suffix}a", f"subnet-0a1b2c3d4e5f6{suffix}b"],
        "securityGroupIds": [f"sg-0f9e8d7c6b5a4{suffix}c"],
    }


def _create_job(bedrock, spec: _JobSpec, *, account_id: str, region: str) -> tuple[dict[str, Any], SeededModel | None]:
    """Create one customization job through the API, then make moto tell the truth.

    Returns the job record and, when the job completed, its model.
    """
    if spec.status not in JOB_STATUSES:
        raise ValueError(f"unknown job status {spec.status!r}")
    if spec.case not in CASES:
        raise ValueError(f"unknown case {spec.case!r}")
    prefix = f"{_bucket(account_id, region)}/bedrock/{spec.job_name}"
    request: dict[str, Any] = {
        "jobName": spec.job_name,
        "customModelName": spec.model_name,
        "roleArn": role_arn(account_id, bedrock.meta.partition),
        # Deterministic (botocore would otherwise fill in a random uuid).
        "clientRequestToken": f"{spec.job_name}-{region}",
        "baseModelIdentifier": spec.base_model,
        "customizationType": spec.customization_type,
        "hyperParameters": spec.hyper_parameters,
        "trainingDataConfig": {"s3Uri": f"{prefix}/train.jsonl"},
        "outputDataConfig": {"s3Uri": f"{prefix}/output/"},
    }
    if spec.validation:
        request["validationDataConfig"] = {"validators": [{"s3Uri": f"{prefix}/validation.jsonl"}]}
    if spec.key_arn:
        request["customModelKmsKeyId"] = spec.key_arn
    if spec.vpc:
        request["vpcConfig"] = _vpc_config(region)
    if spec.tags:
        tag_list = [{"key": k, "value": v} for k, v in spec.tags.items()]
        request["jobTags"] = tag_list
        request["customModelTags"] = tag_list

    job_arn = bedrock.create_model_customization_job(**request)["jobArn"]
    _check_account(job_arn, account_id)

    backend = _bedrock_backend(account_id, region)
    job = backend.model_customization_jobs[spec.job_name]
    created = spec.created.strftime(_MOTO_TIME_FORMAT)
    ended = (spec.created + spec.duration).strftime(_MOTO_TIME_FORMAT)

    job.status = spec.status
    job.failure_message = spec.failure_message if spec.status == "Failed" else None
    job.creation_time = created
    job.last_modified_time = ended if spec.status != "InProgress" else created
    job.end_time = ended if spec.status != "InProgress" else None
    job.output_model_kms_key_arn = spec.key_arn  # moto: a synthetic "...-kms-key" ARN
    job.output_model_name = spec.model_name  # moto: "<model>-<job>"

    seeded: SeededModel | None = None
    if spec.status == "Completed":
        model = backend.custom_models[spec.model_name]
        model.model_kms_key_arn = spec.key_arn  # moto: a synthetic "...-kms-key" ARN
        model.creation_time = ended
        job.output_model_arn = model.model_arn  # moto: ".../custom-model/<model>-<job>"
        seeded = SeededModel(
            account_id=account_id,
            region=region,
            model_name=spec.model_name,
            model_arn=model.model_arn,
            job_name=spec.job_name,
            job_arn=job_arn,
            kms_key_arn=spec.key_arn,
            case=spec.case,
        )
    else:
        # Only a completed job leaves a model behind.
        job.output_model_arn = None
        bedrock.delete_custom_model(modelIdentifier=spec.model_name)
    return _job_record(spec, account_id, region, job_arn, seeded), seeded


def _job_record(spec: _JobSpec, account_id: str, region: str, job_arn: str, model: SeededModel | None) -> dict[str, Any]:
    return {
        "account_id": account_id,
        "region": region,
        "job_name": spec.job_name,
        "job_arn": job_arn,
        "status": spec.status,
        "model_name": spec.model_name,
        "model_arn": model.model_arn if model else None,
        "base_model": spec.base_model,
        "customization_type": spec.customization_type,
        "kms_key_arn": spec.key_arn,
        "case": spec.case,
        "vpc": spec.vpc,
        "tags": dict(spec.tags or {}),
        "failure_message": spec.failure_message if spec.status == "Failed" else None,
    }


def _case_of_key(key: SeededKey | None) -> str:
    if key is None:
        return "bedrock_owned"
    if key.key_manager == "AWS":
        return "aws_managed"
    return {"Disabled": "disabled_key", "PendingDeletion": "pending_deletion_key"}.get(key.key_state, "cmk")


def _case_of_arn(key_arn: str | None, account_id: str) -> str:
    """The case of any key ARN, read from moto's KMS backend (the key's manager and state)."""
    if key_arn is None:
        return "bedrock_owned"
    _, region, owner = _arn_parts(key_arn)
    if owner != account_id:
        return "foreign_account_key"
    key_id = key_arn.rsplit("/", 1)[-1]
    key = _kms_backend(account_id, region).keys.get(key_id)
    if key is None:
        raise ValueError(f"no KMS key {key_arn} in the simulated estate")
    seeded = SeededKey(account_id, region, key.id, key.arn, key.key_manager, key.key_state, None)
    return _case_of_key(seeded)


def seed_models(
    session: "boto3.Session",
    region: str,
    count: int,
    *,
    key_arn: str | None = None,
    prefix: str = "model",
    account_id: str = DEFAULT_ACCOUNT_ID,
    vpc: bool = False,
    endpoint_url: str | None = None,
) -> list[SeededModel]:
    """Create ``count`` completed fine-tuning jobs and their models in one region.

    Model ``i`` is named ``{prefix}-{i:04d}`` (job ``{prefix}-{i:04d}-job``); every model
    is encrypted with ``key_arn`` (None: the Bedrock-owned key). The models' ``case``
    follows from the key: its account, manager and state as moto holds them now.
    """
    bedrock = _client(session, "bedrock", region, endpoint_url)
    case = _case_of_arn(key_arn, account_id)
    models = []
    for i in range(count):
        spec = _JobSpec(
            job_name=f"{prefix}-{i:04d}-job",
            model_name=f"{prefix}-{i:04d}",
            key_arn=key_arn,
            case=case,
            vpc=vpc,
            created=_EPOCH + timedelta(minutes=i),
        )
        _, model = _create_job(bedrock, spec, account_id=account_id, region=region)
        models.append(model)
    return models


# --------------------------------------------------------------------------- keys


def key_policy(account_id: str, partition: str = "aws", *, bedrock_role: bool = False) -> dict[str, Any]:
    """The key policy remediation writes: the account root, plus (optionally) the
    customization role as key user."""
    from .remediate import key_policy as cmk_policy

    users = [role_arn(account_id, partition)] if bedrock_role else []
    return cmk_policy(account_id, partition, users=users)


def create_key(
    session: "boto3.Session",
    region: str,
    *,
    account_id: str = DEFAULT_ACCOUNT_ID,
    manager: str = "CUSTOMER",
    state: str = "Enabled",
    alias: str | None = None,
    rotation: bool = False,
    description: str = "Customer managed key for Amazon Bedrock custom models",
    tags: Mapping[str, str] | None = None,
    policy: Mapping[str, Any] | None = None,
    deletion_window_days: int = 30,
    endpoint_url: str | None = None,
) -> SeededKey:
    """Create a symmetric KMS key, then give it an alias, rotation, manager and state.

    ``state`` is reached with the real APIs (``DisableKey``, ``ScheduleKeyDeletion``);
    ``manager="AWS"`` is a backend nudge (moto creates only customer-managed keys).
    """
    if manager not in KEY_MANAGERS:
        raise ValueError(f"manager must be one of {KEY_MANAGERS}, not {manager!r}")
    if state not in KEY_STATES:
        raise ValueError(f"state must be one of {KEY_STATES}, not {state!r}")
    kms = _client(session, "kms", region, endpoint_url)
    request: dict[str, Any] = {"Description": description, "KeyUsage": "ENCRYPT_DECRYPT", "KeySpec": "SYMMETRIC_DEFAULT"}
    if tags:
        request["Tags"] = [{"TagKey": k, "TagValue": v} for k, v in tags.items()]
    if policy is not None:
        request["Policy"] = json.dumps(policy)
    meta = kms.create_key(**request)["KeyMetadata"]
    key_id, arn = meta["KeyId"], meta["Arn"]
    _check_account(arn, account_id)

    if alias:
        kms.create_alias(AliasName=alias, TargetKeyId=key_id)
    if rotation:  # before any disabling: rotation cannot be changed on a disabled key
        kms.enable_key_rotation(KeyId=key_id)
    if manager == "AWS":
        _kms_backend(account_id, region).keys[key_id].key_manager = "AWS"
    # moto's DisableKey/ScheduleKeyDeletion need the bare key id (an ARN raises KeyError).
    if state == "Disabled":
        kms.disable_key(KeyId=key_id)
    elif state == "PendingDeletion":
        kms.schedule_key_deletion(KeyId=key_id, PendingWindowInDays=deletion_window_days)
    return SeededKey(
        account_id=account_id,
        region=region,
        key_id=key_id,
        arn=arn,
        key_manager=manager,
        key_state=state,
        alias=alias,
        rotation=rotation,
        description=description,
    )


def foreign_key_arn(region: str, *, account_id: str = FOREIGN_ACCOUNT_ID, partition: str = "aws") -> str:
    """A deterministic ARN of a key in another account (never created anywhere)."""
    key_id = uuid.uuid5(uuid.NAMESPACE_URL, f"bedrock-sql-demo/{account_id}/{region}")
    return f"arn:{partition}:kms:{region}:{account_id}:key/{key_id}"


# --------------------------------------------------------------------------- demo estate

@dataclass(frozen=True)
class _DemoKey:
    alias: str
    description: str
    state: str = "Enabled"
    manager: str = "CUSTOMER"
    rotation: bool = False
    first_region_only: bool = False

    @property
    def customer(self) -> bool:
        return self.manager == "CUSTOMER"


CMK = "alias/bedrock/custom-models"
LEGACY_CMK = "alias/bedrock/legacy-models"
RETIRED_CMK = "alias/bedrock/retired-models"
DECOMMISSIONED_CMK = "alias/bedrock/decommissioned"
AWS_MANAGED = "alias/aws/bedrock"
FOREIGN = "foreign"  # a key reference meaning foreign_key_arn(region)

_DEMO_KEYS = (
    _DemoKey(CMK, "Bedrock custom models (CMK, rotated)", rotation=True),
    _DemoKey(LEGACY_CMK, "Bedrock custom models (legacy CMK)"),
    _DemoKey(RETIRED_CMK, "Bedrock custom models (retired)", state="Disabled", rotation=True),
    _DemoKey(DECOMMISSIONED_CMK, "Bedrock custom models (decommissioned)", state="PendingDeletion", first_region_only=True),
    _DemoKey(
        AWS_MANAGED,
        "Default key that protects my Bedrock data when no other key is defined",
        manager="AWS",
        rotation=True,  # AWS managed keys rotate every year
    ),
)


@dataclass(frozen=True)
class _DemoJob:
    job_name: str  # ends with -YYYY-MM: the month the job ran
    model_name: str
    key: str | None  # an alias of _DEMO_KEYS, FOREIGN, or None (Bedrock-owned key)
    base_model: str = TITAN_EXPRESS
    customization_type: str = "FINE_TUNING"
    vpc: bool = False
    tags: Mapping[str, str] | None = None
    status: str = "Completed"
    failure_message: str | None = None


def _team(team: str, env: str | None = None) -> dict[str, str]:
    return {"team": team, **({"env": env} if env else {})}


_CPT = "CONTINUED_PRE_TRAINING"

# The first region: 9 models, an InProgress and a Failed job.
_FIRST_REGION_JOBS = (
    _DemoJob("support-chat-ft-2026-10", "support-chat-v3", CMK, vpc=True, tags=_team("support", "prod")),
    _DemoJob("claims-summarizer-ft-2026-09", "claims-summarizer-v2", CMK, LLAMA_8B, vpc=True, tags=_team("claims", "prod")),
    _DemoJob("legal-corpus-cpt-2026-08", "legal-corpus-base-v1", LEGACY_CMK, customization_type=_CPT, tags=_team("legal")),
    _DemoJob("marketing-copy-ft-2026-07", "marketing-copy-v1", None, TITAN_LITE, tags=_team("marketing", "dev")),
    _DemoJob("hr-policy-qa-ft-2026-06", "hr-policy-qa-v1", None, LLAMA_8B),
    _DemoJob("fraud-notes-ft-2026-05", "fraud-notes-v4", AWS_MANAGED, vpc=True, tags=_team("risk")),
    _DemoJob("archive-search-cpt-2026-03", "archive-search-v1", RETIRED_CMK, customization_type=_CPT),
    _DemoJob("churn-explainer-ft-2026-02", "churn-explainer-v2", DECOMMISSIONED_CMK, LLAMA_8B, tags=_team("growth")),
    _DemoJob(
        "partner-catalog-ft-2026-09",
        "partner-catalog-v1",
        FOREIGN,
        LLAMA_8B,
        vpc=True,
        tags={"team": "partners", "owner": "shared-services"},
    ),
    _DemoJob(
        "support-chat-ft-2026-11", "support-chat-v4", CMK, vpc=True, tags=_team("support", "prod"), status="InProgress"
    ),
    _DemoJob(
        "legal-corpus-cpt-2026-11",
        "legal-corpus-base-v2",
        None,
        customization_type=_CPT,
        tags=_team("legal"),
        status="Failed",
        failure_message="Training data validation failed: 3 records in train.jsonl are not valid JSON lines.",
    ),
)
# Every other region: 8 models and a Stopped job.
_OTHER_REGION_JOBS = (
    _DemoJob("support-chat-eu-ft-2026-10", "support-chat-eu-v3", CMK, vpc=True, tags=_team("support", "prod")),
    _DemoJob("sales-emails-ft-2026-10", "sales-emails-v2", CMK, LLAMA_8B, vpc=True),
    _DemoJob("invoice-extractor-ft-2026-08", "invoice-extractor-v2", LEGACY_CMK, LLAMA_8B, tags=_team("finance")),
    _DemoJob("gdpr-redactor-ft-2026-09", "gdpr-redactor-v1", None, tags=_team("privacy", "prod")),
    _DemoJob("product-docs-cpt-2026-07", "product-docs-base-v2", None, customization_type=_CPT),
    _DemoJob("ticket-router-ft-2026-06", "ticket-router-v1", AWS_MANAGED, LLAMA_8B, tags=_team("support")),
    _DemoJob("pricing-faq-ft-2026-04", "pricing-faq-v1", RETIRED_CMK, TITAN_LITE),
    _DemoJob("supplier-risk-ft-2026-09", "supplier-risk-v1", FOREIGN, LLAMA_8B, vpc=True, tags=_team("procurement")),
    _DemoJob("invoice-extractor-ft-2026-11", "invoice-extractor-v3", None, LLAMA_8B, tags=_team("finance"), status="Stopped"),
)


def _job_created(job_name: str, index: int) -> datetime:
    """A creation time in the month the job's name ends with (``...-YYYY-MM``)."""
    year, month = (int(x) for x in job_name.rsplit("-", 2)[-2:])
    return datetime(year, month, 3 + index, 9 + index % 8, 15, 0)


def seed_demo_estate(
    session: "boto3.Session",
    *,
    regions: Sequence[str] = DEFAULT_REGIONS,
    account_id: str = DEFAULT_ACCOUNT_ID,
    endpoint_url: str | None = None,
) -> Estate:
    """Seed the demo estate: keys, aliases, customization jobs and custom models.

    The first region gets 9 models (and an InProgress and a Failed job), every other
    region 8 models (and a Stopped job); together they cover every case in
    :data:`CASES`. Customer keys let the customization role use them and carry a
    ``purpose`` tag. Run it once per account (sessions acting in different accounts).
    """
    if not regions:
        raise ValueError("seed_demo_estate needs at least one region")
    estate = Estate()
    for position, region in enumerate(regions):
        partition = session.get_partition_for_region(region)
        keys = {
            spec.alias: create_key(
                session,
                region,
                account_id=account_id,
                manager=spec.manager,
                state=spec.state,
                alias=spec.alias,
                rotation=spec.rotation,
                description=spec.description,
                tags={"purpose": "bedrock-custom-models"} if spec.customer else None,
                policy=key_policy(account_id, partition, bedrock_role=True) if spec.customer else None,
                endpoint_url=endpoint_url,
            )
            for spec in _DEMO_KEYS
            if position == 0 or not spec.first_region_only
        }
        estate.keys.extend(keys.values())

        bedrock = _client(session, "bedrock", region, endpoint_url)
        for index, demo in enumerate(_FIRST_REGION_JOBS if position == 0 else _OTHER_REGION_JOBS):
            if demo.key == FOREIGN:
                key_arn, case = foreign_key_arn(region, partition=partition), "foreign_account_key"
            else:
                key = keys[demo.key] if demo.key else None
                key_arn, case = (key.arn if key else None), _case_of_key(key)
            spec = _JobSpec(
                job_name=demo.job_name,
                model_name=demo.model_name,
                base_model=demo.base_model,
                customization_type=demo.customization_type,
                key_arn=key_arn,
                case=case,
                vpc=demo.vpc,
                tags=demo.tags,
                status=demo.status,
                failure_message=demo.failure_message,
                created=_job_created(demo.job_name, index),
                validation=demo.customization_type == "FINE_TUNING",
            )
            job, model = _create_job(bedrock, spec, account_id=account_id, region=region)
            estate.jobs.append(job)
            if model:
                estate.models.append(model)
    return estate


def estate_summary(estate: Estate) -> dict[str, Any]:
    """Counts for a human: models per case, jobs per status, keys per state."""

    def count(values: Iterable[str]) -> dict[str, int]:
        return dict(sorted(Counter(values).items()))

    return {
        "regions": estate.regions,
        "models": len(estate.models),
        "models_by_case": count(m.case for m in estate.models),
        "jobs_by_status": count(j["status"] for j in estate.jobs),
        "keys_by_state": count(f"{k.key_manager}/{k.key_state}" for k in estate.keys),
    }


__all__ = [
    "AWS_MANAGED",
    "CASES",
    "CMK",
    "DECOMMISSIONED_CMK",
    "LEGACY_CMK",
    "RETIRED_CMK",
    "DEFAULT_ACCOUNT_ID",
    "DEFAULT_REGIONS",
    "FOREIGN_ACCOUNT_ID",
    "Estate",
    "SeededKey",
    "SeededModel",
    "create_key",
    "estate_summary",
    "foreign_key_arn",
    "key_policy",
    "role_arn",
    "seed_demo_estate",
    "seed_models",
]
