"""aws_bedrock_provisioned_model_throughput: Provisioned Throughput, what serves a model.

A custom model answers requests only through a provisioned throughput (or a custom model
deployment): this table says which models are in use (``model_arn``) and which one a
throughput is being moved to (``desired_model_arn``). ListProvisionedModelThroughputs gives
summaries; one GetProvisionedModelThroughput adds ``failureMessage``; tags come from
ListTagsForResource.
"""

from __future__ import annotations

from ..aws import UnitApi
from .base import INTEGER, TEXT, Column, ListFilter, Table
from .bedrock import MODEL_TABLES, get_with_tags, one_of


def list_throughputs(api: UnitApi, params: dict):
    return api.paginate("bedrock", "list_provisioned_model_throughputs", **params)


def get_throughput(api: UnitApi, identifier: str):
    # GetProvisionedModelThroughput takes the name or the ARN.
    return get_with_tags(api, "get_provisioned_model_throughput", "provisionedModelArn", provisionedModelId=identifier)


THROUGHPUT_STATUSES = ("Creating", "InService", "Updating", "Failed")

TABLE = Table(
    name="aws_bedrock_provisioned_model_throughput",
    description="Amazon Bedrock Provisioned Throughput: which model each one serves, and which it is moving to.",
    service="bedrock",
    columns=[
        Column("arn", TEXT, "The ARN of the provisioned throughput.", "provisionedModelArn"),
        Column("provisioned_model_name", TEXT, "The name of the provisioned throughput.", "provisionedModelName"),
        Column("model_arn", TEXT, "The ARN of the model it serves (custom or foundation model).", "modelArn"),
        Column("desired_model_arn", TEXT, "The ARN of the model it is being updated to serve (= model_arn when no update runs).", "desiredModelArn"),
        Column("foundation_model_arn", TEXT, "The ARN of the foundation model behind the served model.", "foundationModelArn"),
        Column("model_units", INTEGER, "The model units allocated.", "modelUnits"),
        Column("desired_model_units", INTEGER, "The model units requested by an update.", "desiredModelUnits"),
        Column("status", TEXT, "Creating, InService, Updating or Failed.", "status"),
        Column("commitment_duration", TEXT, "OneMonth or SixMonths; NULL without a commitment.", "commitmentDuration"),
        Column("commitment_expiration_time", TEXT, "When the commitment ends (ISO-8601 UTC).", "commitmentExpirationTime"),
        Column("failure_message", TEXT, "Why it failed, if it did.", "failureMessage"),
        Column("creation_time", TEXT, "When it was created (ISO-8601 UTC).", "creationTime"),
        Column("last_modified_time", TEXT, "When it last changed (ISO-8601 UTC).", "lastModifiedTime"),
        Column("tags", TEXT, "JSON object of its tags.", "tags"),
    ],
    list_items=list_throughputs,
    hydrate_item=lambda api, summary: get_throughput(api, summary["provisionedModelArn"]),
    get_item=get_throughput,
    get_columns=("arn", "provisioned_model_name"),
    list_filters=(
        *ListFilter.time_range("creation_time", after="creationTimeAfter", before="creationTimeBefore"),
        ListFilter("status", "=", "statusEquals", one_of(*THROUGHPUT_STATUSES)),
        ListFilter("model_arn", "=", "modelArnEquals"),
        ListFilter("provisioned_model_name", "=", "nameContains"),
    ),
    indexes=("arn", "model_arn", "desired_model_arn"),
    context_of=MODEL_TABLES,
    title="provisioned_model_name",
    arn="arn",
)
