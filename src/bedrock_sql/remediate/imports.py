"""Models brought in from model files: imported again, or re-created, with the CMK.

- An imported model (Custom Model Import) is imported again: :func:`import_step` copies the
  original import job's ``modelDataSource``, ``roleArn`` and ``vpcConfig`` into a new
  ``CreateModelImportJob`` with ``importedModelKmsKeyId``, under new job and model names
  and a deterministic client request token. :func:`import_source` finds that job in the
  snapshot, else asks ``GetModelImportJob``.
- A model made by ``CreateCustomModel`` (a custom model of type IMPORTED with no job) is
  created again by a human: ``GetCustomModel`` does not return the ``modelSourceConfig``
  it was made from, so :func:`created_model_step` is a manual ``CreateCustomModel`` that
  names the S3 location and role to fill in.
"""

from __future__ import annotations

from typing import Any

from ..errors import UserError
from .jobs import input_shape, new_name, request_token
from .parts import (
    IMPORT_JOBS, IMPORTED_MODELS, FillIn, JobLookup, KeyChoice, ManualStep, Step, Target, Unavailable, json_value, query_rows,
    tag_list,
)

_OPERATION = "CreateModelImportJob"
_PARAM_ORDER = (
    "jobName",
    "importedModelName",
    "roleArn",
    "modelDataSource",
    "vpcConfig",
    "importedModelKmsKeyId",
    "jobTags",
    "importedModelTags",
    "clientRequestToken",
)


def _job_from_row(row: dict[str, Any]) -> dict[str, Any]:
    """A snapshot import job row in GetModelImportJob's shape (plus a ``tags`` dict)."""
    return {
        "jobArn": row["arn"],
        "jobName": row["job_name"],
        "importedModelName": row.get("imported_model_name"),
        "importedModelArn": row.get("imported_model_arn"),
        "roleArn": row.get("role_arn"),
        "modelDataSource": json_value(row.get("model_data_source")),
        "vpcConfig": json_value(row.get("vpc_config")),
        "tags": json_value(row.get("tags")) or {},
    }


def import_source(connection, target: Target, lookup: JobLookup | None) -> dict[str, Any] | str:
    """The import job that made ``target`` (GetModelImportJob's shape), or why there is none."""
    row = target.row
    job_arn, job_name = row.get("job_arn"), row.get("job_name")
    found = query_rows(
        connection,
        f"SELECT * FROM {IMPORT_JOBS} WHERE imported_model_arn = ? OR arn = ? "
        "OR (account_id = ? AND region = ? AND job_name = ?) ORDER BY imported_model_arn = ? DESC LIMIT 1",
        (target.model_arn, job_arn, target.account_id, target.region, job_name, target.model_arn),
    )
    if found:
        job = _job_from_row(found[0])
    else:
        identifier = job_name or job_arn
        if not identifier:
            return "its import job is not recorded on the model"
        if lookup is None:
            return f"its import job {identifier} is not in the snapshot"
        try:
            job = lookup(target.account_id, target.region, identifier)
        except Unavailable as exc:
            return f"its import job {identifier} is not in the snapshot, and GetModelImportJob failed ({exc})"
        if job is None:
            return f"its import job {identifier} no longer exists (GetModelImportJob: not found)"
        job = dict(job)
        job["tags"] = job.get("tags") or {}
    if not job.get("roleArn") or not job.get("modelDataSource"):
        return f"its import job {job['jobName']} does not record its service role or model data source"
    return job


def import_step(connection, target: Target, job: dict[str, Any], key: KeyChoice, suffix: str) -> Step:
    """CreateModelImportJob: the original job's request again, with the CMK."""
    job_name = new_name(job["jobName"], suffix, "jobName", _OPERATION)
    model_name = new_name(target.model_name, suffix, "importedModelName", _OPERATION)
    values = {
        "jobName": job_name,
        "importedModelName": model_name,
        "roleArn": job["roleArn"],
        "modelDataSource": job["modelDataSource"],
        "vpcConfig": job.get("vpcConfig"),
        "importedModelKmsKeyId": key.ref,
        "jobTags": tag_list(job.get("tags")),
        "importedModelTags": tag_list(json_value(target.row.get("tags"))),
        "clientRequestToken": request_token(job.get("jobArn") or job["jobName"], suffix, key),
    }
    members = dict.fromkeys([*_PARAM_ORDER, *input_shape(_OPERATION).members])
    params = {m: values[m] for m in members if values.get(m) not in (None, {}, [])}

    now = target.encryption
    comment = (
        f"Imported model {target.model_name} ({target.model_arn}) is {now}. Import it again from the same model "
        f"files as its import job {job['jobName']} did, as job {job_name}, producing imported model {model_name} "
        f"encrypted with {key.alias or key.arn}."
    )
    existing = query_rows(
        connection,
        f"SELECT arn, imported_model_name FROM {IMPORT_JOBS} WHERE account_id = ? AND region = ? AND job_name = ?",
        (target.account_id, target.region, job_name),
    )
    if existing:
        if existing[0]["imported_model_name"] != model_name:
            raise UserError(
                f"an import job named {job_name} already exists in {target.account_id}/{target.region} and this plan "
                "did not start it (it imported another model): choose another --suffix"
            )
        comment += f" Already started by an earlier apply: {existing[0]['arn']}."
    taken = query_rows(
        connection,
        f"SELECT job_name FROM {IMPORTED_MODELS} WHERE account_id = ? AND region = ? AND model_name = ?",
        (target.account_id, target.region, model_name),
    )
    if taken and taken[0]["job_name"] != job_name:
        raise UserError(
            f"an imported model named {model_name} already exists in {target.account_id}/{target.region}: choose another --suffix"
        )
    return Step(
        service="bedrock",
        operation=_OPERATION,
        region=target.region,
        account_id=target.account_id,
        params=params,
        comment=comment,
        model_arn=target.model_arn,
        new_model_name=model_name,
    )


def import_manual_step(target: Target, why: str, key: KeyChoice, suffix: str) -> ManualStep:
    """A re-import whose original job is unknown: what is known, and ``<...>`` to fill in."""
    row = target.row
    source = json_value(row.get("model_data_source")) or {"s3DataSource": {"s3Uri": FillIn("the S3 location of the model files")}}
    job_name = row.get("job_name") or f"{target.model_name}-import"
    return ManualStep(
        service="bedrock",
        operation=_OPERATION,
        region=target.region,
        account_id=target.account_id,
        params={
            "jobName": new_name(job_name, suffix, "jobName", _OPERATION),
            "importedModelName": new_name(target.model_name, suffix, "importedModelName", _OPERATION),
            "roleArn": FillIn("the service role of the original import job"),
            "modelDataSource": source,
            "importedModelKmsKeyId": key.manual_ref,
        },
        model_arn=target.model_arn,
        model_name=target.model_name,
        reason=(
            f"Imported model {target.model_name} cannot be imported again automatically: {why}. Import it again "
            f"with CreateModelImportJob and importedModelKmsKeyId = {key.alias or key.arn}, giving the service role "
            "(and the VPC configuration, if the original job ran in one)."
        ),
    )


def created_model_step(target: Target, key: KeyChoice, suffix: str) -> ManualStep:
    """CreateCustomModel again, by hand: the model's source is not returned by any API."""
    params: dict[str, Any] = {
        "modelName": new_name(target.model_name, suffix, "modelName", "CreateCustomModel"),
        "modelSourceConfig": {"s3DataSource": {"s3Uri": FillIn("the S3 location of the model files it was created from")}},
        "roleArn": FillIn("a service role that may read those files"),
        "modelKmsKeyArn": key.manual_ref,
    }
    tags = tag_list(json_value(target.row.get("tags")))
    if tags:
        params["modelTags"] = tags
    return ManualStep(
        service="bedrock",
        operation="CreateCustomModel",
        region=target.region,
        account_id=target.account_id,
        params=params,
        model_arn=target.model_arn,
        model_name=target.model_name,
        reason=(
            f"Model {target.model_name} was made by CreateCustomModel (customization type IMPORTED, no job). "
            "GetCustomModel does not return the modelSourceConfig it was made from, so create it again by hand "
            f"with CreateCustomModel, its S3 model files, a role that may read them, and modelKmsKeyArn = "
            f"{key.alias or key.arn} (a key ARN: an alias is not accepted here)."
        ),
    )
