"""aws_kms_alias: KMS aliases, from one paginated ListAliases per region.

Each region also lists about 14 ``alias/aws/*`` aliases whose AWS managed keys do not
exist until a service first uses them; they are listed as AWS reports them.
"""

from __future__ import annotations

from ..aws import ApiError, UnitApi
from .base import TEXT, Column, ListFilter, Table

# What ListAliases answers when the KeyId filter names no key of this region.
NO_SUCH_KEY = {"NotFoundException", "InvalidArnException"}


def list_aliases(api: UnitApi, params: dict):
    try:
        yield from api.paginate("kms", "list_aliases", "Aliases", **params)
    except ApiError as exc:
        # `WHERE target_key_id = ?` is asked of every region; a region without that key
        # has no aliases for it. That is an empty answer, not a failure to record.
        if params.get("KeyId") and exc.code in NO_SUCH_KEY:
            return
        raise


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
