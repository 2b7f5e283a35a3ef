"""The providers: one module per table, each declaring a :class:`~.base.Table`."""

from . import bedrock_custom_model, bedrock_model_customization_job, kms_alias, kms_key
from .base import Table

TABLES: dict[str, Table] = {
    module.TABLE.name: module.TABLE
    for module in (bedrock_custom_model, bedrock_model_customization_job, kms_key, kms_alias)
}
