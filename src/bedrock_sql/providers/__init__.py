"""The providers: one module per table, each declaring a :class:`~.base.Table`."""

from . import (
    bedrock_custom_model,
    bedrock_custom_model_deployment,
    bedrock_imported_model,
    bedrock_model_copy_job,
    bedrock_model_customization_job,
    bedrock_model_import_job,
    bedrock_provisioned_model_throughput,
    kms_alias,
    kms_key,
)
from .base import Table

TABLES: dict[str, Table] = {
    module.TABLE.name: module.TABLE
    for module in (
        bedrock_custom_model,
        bedrock_model_customization_job,
        bedrock_imported_model,
        bedrock_model_import_job,
        bedrock_model_copy_job,
        bedrock_provisioned_model_throughput,
        bedrock_custom_model_deployment,
        kms_key,
        kms_alias,
    )
}
