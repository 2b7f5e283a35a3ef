"""aws_bedrock_model_copy_job: the jobs that copy a custom model into another region or account.

A copy is a new custom model (``targetModelArn``, listed by ListCustomModels in the target
region) whose key was chosen at copy time (``targetModelKmsKeyArn``): fixing it means
copying again from ``sourceModelArn`` with a key. ListModelCopyJobs already returns every
field GetModelCopyJob does, so a listing costs no per-job call; copy jobs have no tags of
their own (``target_model_tags`` are the tags given to the copy).
"""

from __future__ import annotations

from ..aws import UnitApi
from .base import TEXT, Column, ListFilter, Table, tags_to_dict
from .bedrock import MODEL_TABLES, get_detail, one_of


def list_copy_jobs(api: UnitApi, params: dict):
    return api.paginate("bedrock", "list_model_copy_jobs", **params)


def get_copy_job(api: UnitApi, identifier: str):
    # GetModelCopyJob takes only the job's ARN: copy jobs have no name.
    return get_detail(api, "get_model_copy_job", "jobArn", jobArn=identifier)


COPY_JOB_STATUSES = ("InProgress", "Completed", "Failed")

TABLE = Table(
    name="aws_bedrock_model_copy_job",
    description="Amazon Bedrock model copy jobs: which custom model was copied from where, and with which key.",
    service="bedrock",
    columns=[
        Column("arn", TEXT, "The ARN of the copy job.", "jobArn"),
        Column("status", TEXT, "InProgress, Completed or Failed.", "status"),
        Column("source_account_id", TEXT, "The account that owns the source model.", "sourceAccountId"),
        Column("source_model_arn", TEXT, "The ARN of the model that was copied.", "sourceModelArn"),
        Column("source_model_name", TEXT, "The name of the model that was copied.", "sourceModelName"),
        Column("target_model_arn", TEXT, "The ARN of the copy (a custom model in this region).", "targetModelArn"),
        Column("target_model_name", TEXT, "The name of the copy.", "targetModelName"),
        Column(
            "target_model_kms_key_arn",
            TEXT,
            "The KMS key the copy is encrypted with; NULL when Bedrock's own key is used.",
            "targetModelKmsKeyArn",
        ),
        Column("target_model_tags", TEXT, "JSON object of the tags given to the copy.", lambda i: tags_to_dict(i.get("targetModelTags"))),
        Column("failure_message", TEXT, "Why the copy failed, if it did.", "failureMessage"),
        Column("creation_time", TEXT, "When the copy job was created (ISO-8601 UTC).", "creationTime"),
    ],
    list_items=list_copy_jobs,
    get_item=get_copy_job,
    get_columns=("arn",),
    list_filters=(
        *ListFilter.time_range("creation_time", after="creationTimeAfter", before="creationTimeBefore"),
        ListFilter("status", "=", "statusEquals", one_of(*COPY_JOB_STATUSES)),
        ListFilter("source_account_id", "=", "sourceAccountEquals"),
        ListFilter("source_model_arn", "=", "sourceModelArnEquals"),
        ListFilter("target_model_name", "=", "targetModelNameContains"),
    ),
    indexes=("arn", "target_model_arn", "source_model_arn", "target_model_kms_key_arn"),
    context_of=MODEL_TABLES,
    title=lambda item: item.get("targetModelName") or item.get("jobArn", "").rsplit("/", 1)[-1],
    arn="arn",
)
