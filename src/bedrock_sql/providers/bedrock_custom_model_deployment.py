"""aws_bedrock_custom_model_deployment: on-demand deployments of custom models.

Like a provisioned throughput, a deployment serves a custom model (``model_arn``);
``update_details`` names a model it is being moved to. ListCustomModelDeployments gives
summaries; one GetCustomModelDeployment adds the description and update; tags come from
ListTagsForResource.
"""

from __future__ import annotations

from ..aws import UnitApi
from .base import TEXT, Column, ListFilter, Table
from .bedrock import MODEL_TABLES, get_with_tags, one_of


def list_deployments(api: UnitApi, params: dict):
    return api.paginate("bedrock", "list_custom_model_deployments", **params)


def get_deployment(api: UnitApi, identifier: str):
    # GetCustomModelDeployment takes the name or the ARN.
    return get_with_tags(
        api, "get_custom_model_deployment", "customModelDeploymentArn", customModelDeploymentIdentifier=identifier
    )


DEPLOYMENT_STATUSES = ("Creating", "Active", "Failed")

TABLE = Table(
    name="aws_bedrock_custom_model_deployment",
    description="Amazon Bedrock custom model deployments (on-demand): which custom model each one serves.",
    service="bedrock",
    columns=[
        Column("arn", TEXT, "The ARN of the deployment.", "customModelDeploymentArn"),
        Column(
            "model_deployment_name",
            TEXT,
            "The name of the deployment.",
            lambda i: i.get("modelDeploymentName") or i.get("customModelDeploymentName"),
        ),
        Column("model_arn", TEXT, "The ARN of the custom model it serves.", "modelArn"),
        Column("status", TEXT, "Creating, Active or Failed.", "status"),
        Column("description", TEXT, "The deployment's description.", "description"),
        Column("update_details", TEXT, "JSON: a model update in progress (modelArn, updateStatus); NULL when none.", "updateDetails"),
        Column("created_at", TEXT, "When it was created (ISO-8601 UTC).", "createdAt"),
        Column("last_updated_at", TEXT, "When it last changed (ISO-8601 UTC).", "lastUpdatedAt"),
        Column("failure_message", TEXT, "Why it failed, if it did.", "failureMessage"),
        Column("tags", TEXT, "JSON object of its tags.", "tags"),
    ],
    list_items=list_deployments,
    hydrate_item=lambda api, summary: get_deployment(api, summary["customModelDeploymentArn"]),
    get_item=get_deployment,
    get_columns=("arn", "model_deployment_name"),
    list_filters=(
        *ListFilter.time_range("created_at", after="createdAfter", before="createdBefore"),
        ListFilter("status", "=", "statusEquals", one_of(*DEPLOYMENT_STATUSES)),
        ListFilter("model_arn", "=", "modelArnEquals"),
        ListFilter("model_deployment_name", "=", "nameContains"),
    ),
    indexes=("arn", "model_arn"),
    context_of=MODEL_TABLES,
    title="model_deployment_name",
    arn="arn",
)
