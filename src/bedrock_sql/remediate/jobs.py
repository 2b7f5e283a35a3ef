"""The customization job that re-creates a model: its source job, new names and request.

:func:`source_job` finds the job that produced a model (in the snapshot, or live);
:func:`job_step` copies its configuration into a new ``CreateModelCustomizationJob`` with
the customer-managed key, under names :func:`new_name` derives and a client request token
:func:`request_token` makes deterministic.
"""

from __future__ import annotations

import hashlib
import uuid
from typing import Any

from ..errors import UserError
from ..providers.base import arn_account, arn_region
from . import validate
from .parts import (
    JOBS, MODEL_OPERATIONS, MODELS, JobLookup, KeyChoice, Plan, Step, Target, Unavailable, json_value, query_rows, tag_list,
)

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


def _job_from_row(row: dict[str, Any]) -> dict[str, Any]:
    """A snapshot job row in GetModelCustomizationJob's shape (plus a ``tags`` dict)."""
    return {
        "jobArn": row["arn"],
        "jobName": row["job_name"],
        "roleArn": row["role_arn"],
        "baseModelArn": row["base_model_arn"],
        "customizationType": row["customization_type"],
        "hyperParameters": json_value(row["hyper_parameters"]),
        "trainingDataConfig": json_value(row["training_data_config"]),
        "validationDataConfig": json_value(row["validation_data_config"]),
        "outputDataConfig": json_value(row["output_data_config"]),
        "vpcConfig": json_value(row["vpc_config"]),
        "customizationConfig": json_value(row["customization_config"]),
        "outputModelArn": row["output_model_arn"],
        "tags": json_value(row["tags"]) or {},
    }


def source_job(connection, target: Target, lookup: JobLookup | None) -> dict[str, Any] | str:
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
    found = query_rows(
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


def input_shape(operation: str):
    """The request shape of a Bedrock operation in botocore's service model."""
    return validate.input_shape("bedrock", operation)


def _job_input_shape():
    return input_shape("CreateModelCustomizationJob")


class NameNotDerivable(UserError):
    """No valid name for a new job or model follows from the old one and the suffix: that
    resource gets a manual step saying why (the planner catches it), the plan goes on."""


def new_name(name: str, suffix: str, member: str = "jobName", operation: str = "CreateModelCustomizationJob") -> str:
    """``name + suffix``, shortened (with a hash, to stay unique) to the member's maximum
    length, and valid for ``member`` of ``operation`` (length and pattern in botocore's
    service model); :class:`NameNotDerivable` when it is not (``evil-`` + ``-cmk``)."""
    limit = validate.member_max("bedrock", operation, member, _NAME_LIMIT)
    original = name if isinstance(name, str) else str(name)
    candidate = original + suffix
    if len(candidate) > limit:
        digest = hashlib.sha256(original.encode("utf-8", "surrogatepass")).hexdigest()[:8]
        keep = limit - len(suffix) - len(digest) - 1
        candidate = f"{original[:keep].rstrip('-_.+')}-{digest}{suffix}"
    problem = validate.member_problem("bedrock", operation, member, candidate)
    if problem:
        what = "job" if member == "jobName" else "deployment" if member == "modelDeploymentName" else "model"
        raise NameNotDerivable(
            f"the new {what} name {candidate[:100]!r} (from {original[:100]!r} and --suffix {suffix!r}) {problem} "
            f"({operation} {member}), so no {what} name can be derived from it"
        )
    return candidate


def request_token(source_job_arn: str, suffix: str, key: KeyChoice) -> str:
    """The clientRequestToken of a new job: the same plan always asks for the same job."""
    key_ref = key.arn or f"alias:{key.account_id}:{key.region}:{key.alias}"
    return str(uuid.uuid5(uuid.NAMESPACE_URL, f"bedrock-sql/remediate/{source_job_arn}/{suffix}/{key_ref}"))


def job_step(connection, target: Target, job: dict[str, Any], key: KeyChoice, suffix: str) -> Step:
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
            value = tag_list(job.get("tags"))
        elif member == "customModelTags":
            value = tag_list(json_value(target.row.get("tags")))
        else:
            value = copied.get(member)
        if value not in (None, {}, []):
            params[member] = value

    now = target.encryption
    comment = (
        f"Model {target.model_name} ({target.model_arn}) is {now}. Re-run its "
        f"{job.get('customizationType') or 'FINE_TUNING'} job {job['jobName']} as {job_name}, "
        f"producing model {model_name} encrypted with {key.alias or key.arn}."
    )
    existing = query_rows(
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
    taken = query_rows(
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
        new_model_name=model_name,
    )


def check_unique_names(plan: Plan) -> None:
    """No two steps of the plan may give one name to two jobs, or to two models, in a region."""
    seen: dict[tuple[str, str, str, str], str] = {}
    steps = [*plan.model_steps, *(m for m in plan.manual_steps if m.operation in MODEL_OPERATIONS)]
    for step in steps:
        names = {"job": step.params.get("jobName"), "model": getattr(step, "new_model_name", None) or _model_name(step.params)}
        for what, name in names.items():
            if not isinstance(name, str) or not name:  # a FillIn: the human names it
                continue
            key = (step.account_id, step.region, what, name)
            if key in seen:
                raise UserError(f"two models would both get the name {name} in {key[0]}/{key[1]}: rename one, or choose another --suffix")
            seen[key] = step.model_arn or ""


def _model_name(params: dict[str, Any]) -> str | None:
    """The new model's name in a request of any of the model-making operations."""
    for member in ("customModelName", "importedModelName", "targetModelName", "modelName"):
        if isinstance(params.get(member), str) and params[member]:
            return params[member]
    return None
