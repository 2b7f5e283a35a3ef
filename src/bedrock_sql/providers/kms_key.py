"""aws_kms_key: KMS keys, with what decides whether they protect a model well.

DescribeKey for every key; rotation status, key policy and tags only for customer-managed
keys (AWS managed keys need none of those calls). Aliases come from one paginated
ListAliases per region, not one call per key.

The columns and JSON shapes are Steampipe's (its AWS plugin's aws_kms_key), so its
compliance mod's KMS queries run here after a dialect change only; ``key_spec`` is ours.
The differences, on purpose, are listed in the README ("Coming from Steampipe").
"""

from __future__ import annotations

import json
from collections import defaultdict

from ..aws import ApiError, UnitApi
from ..policy import PolicyError, canonical
from .base import INTEGER, TEXT, Column, Table, tags_to_dict
from .kms_alias import KEY_TABLE, region_aliases

NOT_FOUND = {"NotFoundException"}
# Automatic rotation applies to symmetric keys whose material KMS generated, in a state that
# allows it. For another key, GetKeyRotationStatus answering one of these means "does not
# apply" (key_rotation_enabled NULL); for a rotatable key it is an error like any other.
ROTATION_NOT_APPLICABLE = {"UnsupportedOperationException", "KMSInvalidStateException"}
ROTATABLE_STATES = {"Enabled", "Disabled"}


def list_keys(api: UnitApi, params: dict):
    aliases: dict[str, list[dict]] = defaultdict(list)
    for alias in region_aliases(api, KEY_TABLE):  # one ListAliases serves aws_kms_alias too
        if alias.get("TargetKeyId"):
            aliases[alias["TargetKeyId"]].append(alias)
    for key in api.paginate("kms", "list_keys", **params):
        # ListKeys names the ARN KeyArn, DescribeKey Arn: give the summary the column's
        # field, so a key whose DescribeKey fails keeps its arn (and its error its resource).
        yield {**key, "Arn": key.get("KeyArn"), "aliases": aliases_by_name(aliases.get(key["KeyId"], []))}


# ListAliases' AliasListEntry: Steampipe writes each one whole, a member AWS left out as null.
ALIAS_FIELDS = ("AliasArn", "AliasName", "TargetKeyId", "CreationDate", "LastUpdatedDate")


def aliases_by_name(aliases: list[dict]) -> list[dict]:
    # Steampipe keeps ListAliases' order (its title is the first alias); AWS documents none,
    # so order by name for a title that does not change between collects.
    entries = ({name: alias.get(name) for name in ALIAS_FIELDS} for alias in aliases)
    return sorted(entries, key=lambda alias: alias["AliasName"])


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
        item["policy"] = api.optional(lambda: _policy(api, meta["KeyId"]), resource=arn)
        if item["policy"] is not None:
            item["policy_std"] = _canonical(api, item["policy"], arn)
        tags = api.optional(lambda: list(api.paginate("kms", "list_resource_tags", KeyId=meta["KeyId"])), resource=arn)
        if tags is not None:
            item["tags_src"] = [{"TagKey": t["TagKey"], "TagValue": t["TagValue"]} for t in tags]
            item["tags"] = tags_to_dict(tags, key="TagKey", value="TagValue")
    elif meta.get("KeyManager") == "AWS":
        # AWS rotates every AWS managed key once a year, and that cannot be turned off
        # (GetKeyRotationStatus answers true): known without a call per key.
        item["rotation"] = True
    return item


def _policy(api: UnitApi, key_id: str) -> dict:
    text = api.call("kms", "get_key_policy", KeyId=key_id, PolicyName="default", require=("Policy",))["Policy"]
    try:
        return json.loads(text)
    except ValueError as exc:  # an answer that is no policy is a failure, never "no policy"
        raise ApiError("GetKeyPolicy", "InvalidPolicyDocument", f"the key policy is not JSON: {exc}") from None


def _canonical(api: UnitApi, document: dict, arn: str) -> dict | None:
    """Steampipe's policy_std; a document it cannot read is recorded against the key."""
    try:
        return canonical(document)
    except PolicyError as exc:
        api.record(ApiError("GetKeyPolicy", "InvalidPolicyDocument", str(exc)), resource=arn)
        return None


def _rotation(api: UnitApi, meta: dict, arn: str):
    """Whether automatic rotation is on; None where it does not apply.

    A failure is recorded against the key and reads as False, never None: a query ported
    from Steampipe (``when not key_rotation_enabled then 'alarm' else 'ok'``) must not
    take an unknown status for "on". Our controls answer ``error`` from the recorded row.
    """
    try:
        return api.call(
            "kms", "get_key_rotation_status", KeyId=meta["KeyId"], require=("KeyRotationEnabled",)
        )["KeyRotationEnabled"]
    except ApiError as exc:
        if exc.code in ROTATION_NOT_APPLICABLE and not _rotatable(meta):
            return None
        api.record(exc, resource=arn)
        return False


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
            lambda: aliases_by_name(list(api.paginate("kms", "list_aliases", KeyId=item["KeyId"]))),
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
        Column(
            "customer_master_key_spec",
            TEXT,
            "The key spec under its former name (Steampipe's column; KMS still returns both).",
            "CustomerMasterKeySpec",
        ),
        Column("description", TEXT, "The key's description.", "Description"),
        Column("aws_account_id", TEXT, "The account that owns the key (DescribeKey's AWSAccountId).", "AWSAccountId"),
        Column("creation_date", TEXT, "When the key was created (ISO-8601 UTC).", "CreationDate"),
        Column("deletion_date", TEXT, "When a key pending deletion will be deleted (ISO-8601 UTC).", "DeletionDate"),
        Column(
            "valid_to",
            TEXT,
            "When imported key material expires (ISO-8601 UTC); NULL when it does not.",
            "ValidTo",
        ),
        Column("multi_region", INTEGER, "1 for a multi-Region key.", "MultiRegion"),
        Column(
            "multi_region_configuration",
            TEXT,
            "JSON: for a multi-Region key, its type (PRIMARY or REPLICA), primary key and replicas.",
            "MultiRegionConfiguration",
        ),
        Column(
            "key_rotation_enabled",
            INTEGER,
            "1 when automatic rotation is on (always for AWS managed keys); 0 when it is off, or when "
            "GetKeyRotationStatus failed (bedrock_sql_errors then names the key); NULL only where "
            "rotation does not apply (imported material, custom key stores, asymmetric and HMAC keys).",
            "rotation",
        ),
        Column("policy", TEXT, "JSON: the key policy as written (customer-managed keys only).", "policy"),
        Column(
            "policy_std",
            TEXT,
            "JSON: the key policy in Steampipe's canonical form: Statement an array, Principal an "
            "object of arrays (\"*\" is {\"AWS\": [\"*\"]}), Action/Resource arrays, condition keys "
            "lower-cased, condition values arrays.",
            "policy_std",
        ),
        Column(
            "aliases",
            TEXT,
            "JSON array of the key's aliases as ListAliases gives them "
            "(AliasArn, AliasName, TargetKeyId, CreationDate, LastUpdatedDate), by name.",
            "aliases",
        ),
        Column("tags_src", TEXT, "JSON array of the key's tags as KMS lists them ([{TagKey, TagValue}]).", "tags_src"),
        Column("tags", TEXT, "JSON object of the key's tags (customer-managed keys only).", "tags"),
    ],
    list_items=list_keys,
    hydrate_item=lambda api, summary: describe_key(api, summary["KeyId"]),
    get_item=get_key,
    get_columns=("arn", "id"),
    indexes=("arn", "id"),
    title=lambda item: ((item.get("aliases") or [{}])[0]).get("AliasName") or item.get("KeyId"),
    arn="arn",
)
