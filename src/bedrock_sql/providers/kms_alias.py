"""aws_kms_alias: KMS aliases, from one paginated ListAliases per region.

Each region also lists about 14 ``alias/aws/*`` aliases whose AWS managed keys do not
exist until a service first uses them; they are listed as AWS reports them.
"""

from __future__ import annotations

from ..aws import UnitApi
from .base import TEXT, Column, ListFilter, Table


def list_aliases(api: UnitApi, params: dict):
    return api.paginate("kms", "list_aliases", "Aliases", **params)


TABLE = Table(
    name="aws_kms_alias",
    description="AWS KMS aliases and the keys they point at.",
    service="kms",
    columns=[
        Column("alias_name", TEXT, "The alias, e.g. alias/bedrock-models.", "AliasName"),
        Column("arn", TEXT, "The ARN of the alias.", "AliasArn"),
        Column("target_key_id", TEXT, "The ID of the key the alias points at.", "TargetKeyId"),
        Column("creation_date", TEXT, "When the alias was created (ISO-8601 UTC).", "CreationDate"),
        Column("last_updated_date", TEXT, "When the alias last changed (ISO-8601 UTC).", "LastUpdatedDate"),
    ],
    list_items=list_aliases,
    list_filters=(ListFilter("target_key_id", "=", "KeyId"),),
    indexes=("target_key_id", "alias_name"),
    title="alias_name",
    arn="arn",
)
