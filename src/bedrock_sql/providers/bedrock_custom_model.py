"""aws_bedrock_custom_model: Bedrock custom models and the key that encrypts each one.

ListCustomModels gives summaries; one GetCustomModel per model adds ``modelKmsKeyArn``
(absent when Bedrock's own key is used) and the training configuration; tags come from
ListTagsForResource.
"""

from __future__ import annotations

from ..aws import UnitApi
from .base import TEXT, Column, ListFilter, Table
from .bedrock import get_with_tags


def list_custom_models(api: UnitApi, params: dict):
    return api.paginate("bedrock", "list_custom_models", **params)


def get_custom_model(api: UnitApi, identifier: str):
    return get_with_tags(api, "get_custom_model", "modelArn", modelIdentifier=identifier)


def _base_model_name(item: dict):
    # The listing names the base model; GetCustomModel only gives its ARN.
    if item.get("baseModelName"):
        return item["baseModelName"]
    arn = item.get("baseModelArn") or ""
    return arn.rsplit("/", 1)[-1] or None


TABLE = Table(
    name="aws_bedrock_custom_model",
    description="Amazon Bedrock custom models (fine-tuned, continued pre-training, distilled), "
    "with the KMS key that encrypts each one.",
    service="bedrock",
    columns=[
        Column("arn", TEXT, "The ARN of the custom model.", "modelArn"),
        Column("model_name", TEXT, "The name of the custom model.", "modelName"),
        Column("job_arn", TEXT, "The ARN of the customization job that produced the model.", "jobArn"),
        Column("job_name", TEXT, "The name of the customization job that produced the model.", "jobName"),
        Column("base_model_arn", TEXT, "The ARN of the base model the model was customized from.", "baseModelArn"),
        Column("base_model_name", TEXT, "The name of the base model.", _base_model_name),
        Column("customization_type", TEXT, "FINE_TUNING, CONTINUED_PRE_TRAINING, DISTILLATION, REINFORCEMENT_FINE_TUNING or IMPORTED (made by CreateCustomModel).", "customizationType"),
        Column("model_status", TEXT, "Active, Creating or Failed.", "modelStatus"),
        Column("owner_account_id", TEXT, "The account that owns the model.", "ownerAccountId"),
        Column(
            "model_kms_key_arn",
            TEXT,
            "The ARN of the KMS key that encrypts the model; NULL when Bedrock's own key is used.",
            "modelKmsKeyArn",
        ),
        Column("creation_time", TEXT, "When the model was created (ISO-8601 UTC).", "creationTime"),
        Column("hyper_parameters", TEXT, "JSON object of the customization hyperparameters.", "hyperParameters"),
        Column("training_data_config", TEXT, "JSON: where the training data came from.", "trainingDataConfig"),
        Column("validation_data_config", TEXT, "JSON: where the validation data came from.", "validationDataConfig"),
        Column("output_data_config", TEXT, "JSON: where the job wrote its output.", "outputDataConfig"),
        Column("training_metrics", TEXT, "JSON: the training metrics.", "trainingMetrics"),
        Column("validation_metrics", TEXT, "JSON array: the validation metrics.", "validationMetrics"),
        Column("customization_config", TEXT, "JSON: customization settings (e.g. distillation teacher).", "customizationConfig"),
        Column("failure_message", TEXT, "Why the model failed, if it did.", "failureMessage"),
        Column("tags", TEXT, "JSON object of the model's tags.", "tags"),
    ],
    list_items=list_custom_models,
    hydrate_item=lambda api, summary: get_custom_model(api, summary["modelArn"]),
    get_item=get_custom_model,
    get_columns=("arn", "model_name"),
    list_filters=(
        *ListFilter.time_range("creation_time", after="creationTimeAfter", before="creationTimeBefore"),
        ListFilter("base_model_arn", "=", "baseModelArnEquals"),
    ),
    indexes=("arn", "model_kms_key_arn", "job_arn"),
    title="model_name",
    arn="arn",
)

