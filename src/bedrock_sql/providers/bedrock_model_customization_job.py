"""aws_bedrock_model_customization_job: the jobs that produce custom models.

A job names the key its output model will be encrypted with (``outputModelKmsKeyArn``), so
jobs still running show tomorrow's unencrypted models today. Jobs are fetched by name:
GetModelCustomizationJob accepts a name or an ARN in AWS, and names work everywhere.
"""

from __future__ import annotations

from ..aws import UnitApi
from .base import TEXT, Column, ListFilter, Table
from .bedrock import get_with_tags, one_of


def list_jobs(api: UnitApi, params: dict):
    return api.paginate("bedrock", "list_model_customization_jobs", **params)


def get_job(api: UnitApi, identifier: str):
    arn = identifier if identifier.startswith("arn:") else None
    name = identifier.split("model-customization-job/", 1)[-1] if arn else identifier
    return get_with_tags(api, "get_model_customization_job", "jobArn", tags_of=arn, jobIdentifier=name)


JOB_STATUSES = ("InProgress", "Completed", "Failed", "Stopping", "Stopped")


TABLE = Table(
    name="aws_bedrock_model_customization_job",
    description="Amazon Bedrock model customization jobs, with the key each one encrypts its output model with.",
    service="bedrock",
    columns=[
        Column("arn", TEXT, "The ARN of the customization job.", "jobArn"),
        Column("job_name", TEXT, "The name of the job.", "jobName"),
        Column("status", TEXT, "InProgress, Completed, Failed, Stopping or Stopped.", "status"),
        Column("status_details", TEXT, "JSON: per-stage status (validation, data processing, training).", "statusDetails"),
        Column("base_model_arn", TEXT, "The ARN of the base model.", "baseModelArn"),
        Column("output_model_name", TEXT, "The name of the model the job produces.", lambda i: i.get("outputModelName") or i.get("customModelName")),
        Column("output_model_arn", TEXT, "The ARN of the model the job produces.", lambda i: i.get("outputModelArn") or i.get("customModelArn")),
        Column(
            "output_model_kms_key_arn",
            TEXT,
            "The KMS key the output model is encrypted with; NULL when Bedrock's own key is used.",
            "outputModelKmsKeyArn",
        ),
        Column("role_arn", TEXT, "The IAM service role the job runs as.", "roleArn"),
        Column("customization_type", TEXT, "FINE_TUNING, CONTINUED_PRE_TRAINING, DISTILLATION or REINFORCEMENT_FINE_TUNING.", "customizationType"),
        Column("hyper_parameters", TEXT, "JSON object of hyperparameters.", "hyperParameters"),
        Column("training_data_config", TEXT, "JSON: the training data location.", "trainingDataConfig"),
        Column("validation_data_config", TEXT, "JSON: the validation data location.", "validationDataConfig"),
        Column("output_data_config", TEXT, "JSON: the output location.", "outputDataConfig"),
        Column("training_metrics", TEXT, "JSON: the training metrics (e.g. trainingLoss).", "trainingMetrics"),
        Column("validation_metrics", TEXT, "JSON array: the validation metrics (e.g. validationLoss per validator).", "validationMetrics"),
        Column("vpc_config", TEXT, "JSON: subnets and security groups; NULL when the job runs outside a VPC.", "vpcConfig"),
        Column("customization_config", TEXT, "JSON: customization settings (e.g. distillation teacher).", "customizationConfig"),
        Column("client_request_token", TEXT, "The idempotency token the job was created with.", "clientRequestToken"),
        Column("creation_time", TEXT, "When the job was created (ISO-8601 UTC).", "creationTime"),
        Column("last_modified_time", TEXT, "When the job last changed (ISO-8601 UTC).", "lastModifiedTime"),
        Column("end_time", TEXT, "When the job ended (ISO-8601 UTC).", "endTime"),
        Column("failure_message", TEXT, "Why the job failed, if it did.", "failureMessage"),
        Column("tags", TEXT, "JSON object of the job's tags.", "tags"),
    ],
    list_items=list_jobs,
    hydrate_item=lambda api, summary: get_job(api, summary["jobArn"]),  # its tags during its get
    get_item=get_job,
    get_columns=("arn", "job_name"),
    list_filters=(
        *ListFilter.time_range("creation_time", after="creationTimeAfter", before="creationTimeBefore"),
        ListFilter("status", "=", "statusEquals", one_of(*JOB_STATUSES)),
    ),
    indexes=("arn", "output_model_arn", "output_model_kms_key_arn"),
    title="job_name",
    arn="arn",
)
