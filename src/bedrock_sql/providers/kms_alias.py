"""aws_kms_alias: KMS aliases, from one paginated ListAliases per region.

Each region also lists about 14 ``alias/aws/*`` aliases whose AWS managed keys do not
exist until a service first uses them; they are listed as AWS reports them.
"""

from __future__ import annotations

import threading
import weakref

from ..aws import ApiError, UnitApi
from .base import TEXT, Column, ListFilter, Table

KEY_TABLE = "aws_kms_key"
ALIAS_TABLE = "aws_kms_alias"

# aws_kms_key needs every alias of a region (its `aliases` column) and aws_kms_alias lists
# the same aliases: a complete, unfiltered listing made for one table is handed to the
# other table's next scan of that unit -- once, then dropped. So a collect (keys, then
# aliases) calls ListAliases once per region, while a later query still lists afresh.
# Kept per client factory, i.e. per command.
_handoff: "weakref.WeakKeyDictionary[object, dict[tuple[str, str, str], list[dict]]]" = weakref.WeakKeyDictionary()
_handoff_lock = threading.Lock()


def region_aliases(api: UnitApi, table: str) -> list[dict]:
    """Every alias of the unit's region, for ``table``: handed over by the other table's
    last listing of this unit, or one paginated ListAliases (then handed over in turn)."""
    owner = getattr(api, "factory", None)
    if owner is None:
        return list(api.paginate("kms", "list_aliases"))
    unit = (api.account_id, api.region)
    with _handoff_lock:
        handed = _handoff.get(owner, {}).pop((table, *unit), None)
    if handed is not None:
        return handed
    aliases = list(api.paginate("kms", "list_aliases"))
    other = ALIAS_TABLE if table == KEY_TABLE else KEY_TABLE
    with _handoff_lock:
        _handoff.setdefault(owner, {})[(other, *unit)] = aliases
    return aliases


def drop_handoff(api: UnitApi, table: str) -> None:
    """Forget the listing of the unit handed over to ``table``, when no scan of ``table``
    will follow to take it (a collect by need lists aliases, never keys): it would be held
    for the whole command."""
    owner = getattr(api, "factory", None)
    if owner is None:
        return
    with _handoff_lock:
        _handoff.get(owner, {}).pop((table, api.account_id, api.region), None)


# What ListAliases answers when the KeyId filter names no key of this region (an id unknown
# here, or the ARN of a key in another region): provably no alias of this region targets it.
NO_SUCH_KEY = {"NotFoundException", "InvalidArnException"}


def list_aliases(api: UnitApi, params: dict):
    if not params:
        yield from region_aliases(api, ALIAS_TABLE)
        return
    try:
        yield from api.paginate("kms", "list_aliases", **params)
    except ApiError as exc:
        # `WHERE target_key_id = ?` is asked of every region; a region without that key
        # has no aliases for it. That is an empty answer, not a failure to record.
        if params.get("KeyId") and exc.code in NO_SUCH_KEY:
            return
        raise


TABLE = Table(
    name=ALIAS_TABLE,
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
