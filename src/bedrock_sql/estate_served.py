"""Seeding the rest of the custom-model estate: imported models, copies, and what serves models.

Everything goes through the Bedrock API (CreateModelImportJob, CreateModelCopyJob,
CreateProvisionedModelThroughput, CreateCustomModelDeployment) -- answered by
:mod:`bedrock_sql.simulated_bedrock` under moto, in process or over HTTP -- so seeding
exercises the simulation over the wire too. Used by ``bedrock-sql demo`` and the tests.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Mapping, Sequence

from .estate import DEFAULT_ACCOUNT_ID, CMK, Estate, SeededModel, _client, role_arn

if TYPE_CHECKING:  # pragma: no cover
    import boto3


def _tag_list(tags: Mapping[str, str] | None) -> list[dict[str, str]]:
    return [{"key": k, "value": v} for k, v in (tags or {}).items()]


def import_model(bedrock: Any, model_name: str, *, account_id: str = DEFAULT_ACCOUNT_ID,
                 job_name: str | None = None, kms_key: str | None = None,
                 s3_uri: str | None = None, vpc_config: dict | None = None,
                 tags: Mapping[str, str] | None = None) -> dict[str, str]:
    """CreateModelImportJob; returns ``{"job_arn", "job_name", "model_arn", "model_name"}``.

    ``kms_key`` is any form the API takes (key ID, key ARN, alias name, alias ARN); None
    leaves the model on Bedrock's own key.
    """
    job_name = job_name or f"{model_name}-import"
    request: dict[str, Any] = {
        "jobName": job_name,
        "importedModelName": model_name,
        "roleArn": role_arn(account_id, bedrock.meta.partition),
        "modelDataSource": {"s3DataSource": {"s3Uri": s3_uri or f"s3://acme-ml-{account_id}/imports/{model_name}/"}},
    }
    if kms_key:
        request["importedModelKmsKeyId"] = kms_key
    if vpc_config:
        request["vpcConfig"] = vpc_config
    if tags:
        request["importedModelTags"] = _tag_list(tags)
    job_arn = bedrock.create_model_import_job(**request)["jobArn"]
    job = bedrock.get_model_import_job(jobIdentifier=job_arn)
    return {"job_arn": job_arn, "job_name": job_name, "model_arn": job["importedModelArn"], "model_name": model_name}


def copy_model(bedrock: Any, source_model_arn: str, target_model_name: str, *, kms_key: str | None = None,
               tags: Mapping[str, str] | None = None) -> dict[str, str]:
    """CreateModelCopyJob in ``bedrock``'s region; returns ``{"job_arn", "target_model_arn"}``."""
    request: dict[str, Any] = {"sourceModelArn": source_model_arn, "targetModelName": target_model_name}
    if kms_key:
        request["modelKmsKeyId"] = kms_key
    if tags:
        request["targetModelTags"] = _tag_list(tags)
    job_arn = bedrock.create_model_copy_job(**request)["jobArn"]
    return {"job_arn": job_arn, "target_model_arn": bedrock.get_model_copy_job(jobArn=job_arn)["targetModelArn"]}


def provision_throughput(bedrock: Any, name: str, model_id: str, *, model_units: int = 1,
                         commitment: str | None = None, tags: Mapping[str, str] | None = None) -> str:
    """CreateProvisionedModelThroughput serving ``model_id``; returns its ARN."""
    request: dict[str, Any] = {"provisionedModelName": name, "modelId": model_id, "modelUnits": model_units}
    if commitment:
        request["commitmentDuration"] = commitment
    if tags:
        request["tags"] = _tag_list(tags)
    return bedrock.create_provisioned_model_throughput(**request)["provisionedModelArn"]


def deploy_model(bedrock: Any, name: str, model_arn: str, *, description: str | None = None,
                 tags: Mapping[str, str] | None = None) -> str:
    """CreateCustomModelDeployment serving ``model_arn``; returns its ARN."""
    request: dict[str, Any] = {"modelDeploymentName": name, "modelArn": model_arn}
    if description:
        request["description"] = description
    if tags:
        request["tags"] = _tag_list(tags)
    return bedrock.create_custom_model_deployment(**request)["customModelDeploymentArn"]


@dataclass
class ServedEstate:
    """What :func:`seed_served_estate` created (ARNs), for a test or the demo's printout."""

    imported_models: list[dict[str, str]] = field(default_factory=list)
    copies: list[dict[str, str]] = field(default_factory=list)
    throughputs: list[str] = field(default_factory=list)
    deployments: list[str] = field(default_factory=list)


def seed_served_estate(session: "boto3.Session", estate: Estate, *, regions: Sequence[str],
                       account_id: str = DEFAULT_ACCOUNT_ID, endpoint_url: str | None = None) -> ServedEstate:
    """On top of :func:`~bedrock_sql.estate.seed_demo_estate`: in the first region an imported
    model on Bedrock's own key and one with the CMK, and a provisioned throughput serving a
    non-compliant custom model; in the second region (if any) a copy, made without a key,
    of a first-region model. The copy is a custom model: it joins ``estate.models``.
    """
    served = ServedEstate()
    first = regions[0]
    bedrock = _client(session, "bedrock", first, endpoint_url)
    served.imported_models.append(import_model(bedrock, "contracts-llama-import-v1", account_id=account_id, tags={"team": "legal"}))
    served.imported_models.append(import_model(bedrock, "support-mistral-import-v1", account_id=account_id, kms_key=CMK, tags={"team": "support"}))
    owned = [m for m in estate.models if m.region == first and m.case == "bedrock_owned"]
    if owned:
        served.throughputs.append(
            provision_throughput(bedrock, f"{owned[-1].model_name}-pt", owned[-1].model_arn, tags={"team": "hr"})
        )
    if len(regions) > 1 and owned:
        source = owned[0]
        target = _client(session, "bedrock", regions[1], endpoint_url)
        copy = copy_model(target, source.model_arn, f"{source.model_name}-copy", tags={"copied-from": first})
        served.copies.append(copy)
        estate.models.append(
            SeededModel(account_id=account_id, region=regions[1], model_name=f"{source.model_name}-copy",
                        model_arn=copy["target_model_arn"], job_name=source.job_name, job_arn=source.job_arn,
                        kms_key_arn=None, case="bedrock_owned")
        )
    return served
