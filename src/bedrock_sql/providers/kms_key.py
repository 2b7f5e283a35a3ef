"""aws_kms_key: KMS keys, with what decides whether they protect a model well.

DescribeKey for every key; rotation status, key policy and tags only for customer-managed
keys (AWS managed keys need none of those calls). Aliases come from one paginated
ListAliases per region, not one call per key.
"""

from __future__ import annotations

import json
from collections import defaultdict

from ..aws import ApiError, UnitApi
from .base import INTEGER, TEXT, Column, Table, tags_to_dict
from .kms_alias import KEY_TABLE, region_aliases

NOT_FOUND = {"NotFoundException"}
# Automatic rotation applies to symmetric keys whose material KMS generated, in a state that
# allows it. For another key, GetKeyRotationStatus answering one of these means "does not
# apply" (key_rotation_enabled NULL); for a rotatable key it is an error like any other.
ROTATION_NOT_APPLICABLE = {"UnsupportedOperationException", "KMSInvalidStateException"}
ROTATABLE_STATES = {"Enabled", "Disabled"}


def list_keys(api: UnitApi, params: dict):
    aliases: dict[str, list[str]] = defaultdict(list)
    for alias in region_aliases(api, KEY_TABLE):  # one ListAliases serves aws_kms_alias too
        if alias.get("TargetKeyId"):
            aliases[alias["TargetKeyId"]].append(alias["AliasName"])
    for key in api.paginate("kms", "list_keys", **params):
        # ListKeys names the ARN KeyArn, DescribeKey Arn: give the summary the column's
        # field, so a key whose DescribeKey fails keeps its arn (and its error its resource).
        yield {**key, "Arn": key.get("KeyArn"), "aliases": sorted(aliases.get(key["KeyId"], []))}


def describe_key(api: UnitApi, key_id: str):
    """DescribeKey, plus rotation, policy and tags for a customer-managed key."""
    try:
        meta = api.call("kms", "describe_key", KeyId=key_id, require=("KeyMetadata.KeyId", "KeyMetadata.Arn"))
    except ApiError as exc:
        if exc.code in NOT_FOUND:  # deleted between list and get, or no such key here
            return None
        raise
    meta = meta["KeyMetadata"]
    item = dict(meta)
    arn = meta["Arn"]
    if meta.get("KeyManager") == "CUSTOMER":
        item["rotation"] = _rotation(api, meta, arn)
        item["policy"] = api.optional(
            lambda: json.loads(
                api.call("kms", "get_key_policy", KeyId=meta["KeyId"], PolicyName="default", require=("Policy",))[
                    "Policy"
                ]
            ),
            resource=arn,
        )
        item["tags"] = api.optional(
            lambda: tags_to_dict(
                list(api.paginate("kms", "list_resource_tags", KeyId=meta["KeyId"])),
                key="TagKey",
                value="TagValue",
            ),
            resource=arn,
        )
    return item


def _rotation(api: UnitApi, meta: dict, arn: str):
    """Whether automatic rotation is on; None where it does not apply or could not be read
    (then the failure is recorded against the key)."""
    try:
        return api.call(
            "kms", "get_key_rotation_status", KeyId=meta["KeyId"], require=("KeyRotationEnabled",)
        )["KeyRotationEnabled"]
    except ApiError as exc:
        if exc.code in ROTATION_NOT_APPLICABLE and not _rotatable(meta):
            return None
        api.record(exc, resource=arn)
        return None


def _rotatable(meta: dict) -> bool:
    return (
        meta.get("KeySpec", "SYMMETRIC_DEFAULT") == "SYMMETRIC_DEFAULT"
        and meta.get("Origin", "AWS_KMS") == "AWS_KMS"
        and meta.get("KeyState") in ROTATABLE_STATES
    )


def get_key(api: UnitApi, key_id: str):
    item = describe_key(api, key_id)
    if item is not None:
        # The key's own aliases (a get lists no region): losing them costs only that column.
        item["aliases"] = api.optional(
            lambda: sorted(a["AliasName"] for a in api.paginate("kms", "list_aliases", KeyId=item["KeyId"])),
            resource=item["Arn"],
        )
    return item


TABLE = Table(
    name=KEY_TABLE,
    description="AWS KMS keys: who manages them, their state, rotation and key policy.",
    service="kms",
    columns=[
        Column("arn", TEXT, "The ARN of the key.", "Arn"),
        Column("id", TEXT, "The key ID.", "KeyId"),
        Column("key_manager", TEXT, "CUSTOMER for customer-managed keys, AWS for AWS managed keys.", "KeyManager"),
        Column("key_state", TEXT, "Enabled, Disabled, PendingDeletion, PendingImport, Unavailable...", "KeyState"),
        Column("enabled", INTEGER, "1 when the key is enabled.", "Enabled"),
        Column("origin", TEXT, "AWS_KMS, EXTERNAL (imported material), AWS_CLOUDHSM or EXTERNAL_KEY_STORE.", "Origin"),
        Column("key_usage", TEXT, "ENCRYPT_DECRYPT, SIGN_VERIFY, GENERATE_VERIFY_MAC...", "KeyUsage"),
        Column("key_spec", TEXT, "SYMMETRIC_DEFAULT, RSA_2048, HMAC_256...", "KeySpec"),
        Column("description", TEXT, "The key's description.", "Description"),
        Column("creation_date", TEXT, "When the key was created (ISO-8601 UTC).", "CreationDate"),
        Column("deletion_date", TEXT, "When a key pending deletion will be deleted (ISO-8601 UTC).", "DeletionDate"),
        Column("multi_region", INTEGER, "1 for a multi-Region key.", "MultiRegion"),
        Column(
            "key_rotation_enabled",
            INTEGER,
            "1 when automatic rotation is on; NULL for AWS managed keys and where rotation does not apply.",
            "rotation",
        ),
        Column("policy", TEXT, "JSON: the key policy (customer-managed keys only).", "policy"),
        Column("aliases", TEXT, "JSON array of the key's alias names.", "aliases"),
        Column("tags", TEXT, "JSON object of the key's tags (customer-managed keys only).", "tags"),
    ],
    list_items=list_keys,
    hydrate_item=lambda api, summary: describe_key(api, summary["KeyId"]),
    get_item=get_key,
    get_columns=("arn", "id"),
    indexes=("arn", "id"),
    title=lambda item: (item.get("aliases") or [None])[0] or item.get("KeyId"),
    arn="arn",
)
