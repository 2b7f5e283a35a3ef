"""aws_bedrock_model_import_job: the Custom Model Import jobs that create imported models.

The job keeps what a re-import needs (``modelDataSource``, ``roleArn``, ``vpcConfig``) and
the key it gave the model (``importedModelKmsKeyArn``). ListModelImportJobs gives summaries;
one GetModelImportJob per job adds the rest; tags come from ListTagsForResource.
"""

from __future__ import annotations

from ..aws import UnitApi
from .base import TEXT, Column, ListFilter, Table
from .bedrock import MODEL_TABLES, get_with_tags, one_of


def list_import_jobs(api: UnitApi, params: dict):
    return api.paginate("bedrock", "list_model_import_jobs", **params)


def get_import_job(api: UnitApi, identifier: str):
    # GetModelImportJob takes the job's name or ARN.
    return get_with_tags(api, "get_model_import_job", "jobArn", jobIdentifier=identifier)


IMPORT_JOB_STATUSES = ("InProgress", "Completed", "Failed")

TABLE = Table(
    name="aws_bedrock_model_import_job",
    description="Amazon Bedrock model import jobs, with the key each one gave its imported model.",
    service="bedrock",
    columns=[
        Column("arn", TEXT, "The ARN of the import job.", "jobArn"),
        Column("job_name", TEXT, "The name of the import job.", "jobName"),
        Column("status", TEXT, "InProgress, Completed or Failed.", "status"),
        Column("imported_model_arn", TEXT, "The ARN of the model the job imported.", "importedModelArn"),
        Column("imported_model_name", TEXT, "The name of the model the job imported.", "importedModelName"),
        Column(
            "imported_model_kms_key_arn",
            TEXT,
            "The KMS key the imported model is encrypted with; NULL when Bedrock's own key is used.",
            "importedModelKmsKeyArn",
        ),
        Column("role_arn", TEXT, "The IAM service role the job runs as.", "roleArn"),
        Column("model_data_source", TEXT, "JSON: where the model's files were imported from (s3DataSource.s3Uri).", "modelDataSource"),
        Column("vpc_config", TEXT, "JSON: subnets and security groups; NULL when the job runs outside a VPC.", "vpcConfig"),
        Column("failure_message", TEXT, "Why the job failed, if it did.", "failureMessage"),
        Column("creation_time", TEXT, "When the job was created (ISO-8601 UTC).", "creationTime"),
        Column("last_modified_time", TEXT, "When the job last changed (ISO-8601 UTC).", "lastModifiedTime"),
        Column("end_time", TEXT, "When the job ended (ISO-8601 UTC).", "endTime"),
        Column("tags", TEXT, "JSON object of the job's tags.", "tags"),
    ],
    list_items=list_import_jobs,
    hydrate_item=lambda api, summary: get_import_job(api, summary["jobArn"]),
    get_item=get_import_job,
    get_columns=("arn", "job_name"),
    list_filters=(
        *ListFilter.time_range("creation_time", after="creationTimeAfter", before="creationTimeBefore"),
        ListFilter("status", "=", "statusEquals", one_of(*IMPORT_JOB_STATUSES)),
        ListFilter("job_name", "=", "nameContains"),
    ),
    indexes=("arn", "imported_model_arn", "imported_model_kms_key_arn"),
    context_of=MODEL_TABLES,
    title="job_name",
    arn="arn",
)
