"""aws_bedrock_imported_model: models brought in by Custom Model Import, and their key.

ListImportedModels never returns these through ListCustomModels, so an imported model
encrypted with Bedrock's own key is invisible to a custom-model audit. One
GetImportedModel per model adds ``modelKmsKeyArn`` (absent when Bedrock's own key is used),
the import job and the data source; tags come from ListTagsForResource.
"""

from __future__ import annotations

from ..aws import UnitApi
from .base import INTEGER, TEXT, Column, ListFilter, Table
from .bedrock import get_with_tags


def list_imported_models(api: UnitApi, params: dict):
    return api.paginate("bedrock", "list_imported_models", **params)


def get_imported_model(api: UnitApi, identifier: str):
    # GetImportedModel takes the model's name or ARN.
    return get_with_tags(api, "get_imported_model", "modelArn", modelIdentifier=identifier)


TABLE = Table(
    name="aws_bedrock_imported_model",
    description="Amazon Bedrock imported models (Custom Model Import), with the KMS key that encrypts each one.",
    service="bedrock",
    columns=[
        Column("arn", TEXT, "The ARN of the imported model.", "modelArn"),
        Column("model_name", TEXT, "The name of the imported model.", "modelName"),
        Column("job_arn", TEXT, "The ARN of the import job that created the model.", "jobArn"),
        Column("job_name", TEXT, "The name of the import job that created the model.", "jobName"),
        Column("model_data_source", TEXT, "JSON: where the model's files were imported from (s3DataSource.s3Uri).", "modelDataSource"),
        Column("model_architecture", TEXT, "The model's architecture (e.g. llama3, mistral).", "modelArchitecture"),
        Column(
            "model_kms_key_arn",
            TEXT,
            "The ARN of the KMS key that encrypts the model; NULL when Bedrock's own key is used.",
            "modelKmsKeyArn",
        ),
        Column("instruct_supported", INTEGER, "1 when the model supports instruct (chat) prompts.", "instructSupported"),
        Column("custom_model_units", TEXT, "JSON: the custom model units per model copy and their version.", "customModelUnits"),
        Column("creation_time", TEXT, "When the model was imported (ISO-8601 UTC).", "creationTime"),
        Column("tags", TEXT, "JSON object of the model's tags.", "tags"),
    ],
    list_items=list_imported_models,
    hydrate_item=lambda api, summary: get_imported_model(api, summary["modelArn"]),
    get_item=get_imported_model,
    get_columns=("arn", "model_name"),
    list_filters=(
        *ListFilter.time_range("creation_time", after="creationTimeAfter", before="creationTimeBefore"),
        ListFilter("model_name", "=", "nameContains"),
    ),
    indexes=("arn", "model_kms_key_arn", "job_arn"),
    title="model_name",
    arn="arn",
)
