"""The Powerpipe AWS compliance mod's KMS controls run on a bedrock-sql snapshot.

The four queries below are the mod's (turbot/steampipe-mod-aws-compliance,
``conformance_pack/kms.pp`` at commit a1d0b446ef9b96ea64980859fc063d70da20778e), turned from
PostgreSQL into SQLite and otherwise unchanged. The dialect changes, and only those:

- ``jsonb_array_elements(x) as s`` -> ``json_each(x) as s``, and ``s -> ...`` -> ``s.value -> ...``;
- ``x ? '*'`` -> ``EXISTS (SELECT 1 FROM json_each(x) WHERE value = '*')``;
- ``extract(day from deletion_date - current_timestamp)`` -> ``cast(days_until(deletion_date) as integer)``;
- the mod's HCL template locals (``${local.tag_dimensions_sql}`` ...) are left out.

A seeded estate of keys (collected from moto with ``--kms-keys all``, as a user running the
mod's account-wide KMS queries collects AWS) must get the verdicts Steampipe gives, written out
by hand per key.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from bedrock_sql import snapshot
from bedrock_sql.accounts import resolve_scope
from bedrock_sql.aws import AwsOptions
from bedrock_sql.sql import run_query, snapshot_connection
from helpers import World, deny, fast_regions, world  # noqa: F401

KMS_KEY_NOT_PENDING_DELETION = """
    select
      arn as resource,
      case
        when key_state = 'PendingDeletion' then 'alarm'
        else 'ok'
      end as status,
      case
        when key_state = 'PendingDeletion' then title || ' scheduled for deletion and will be deleted in ' || cast(days_until(deletion_date) as integer) || ' day(s).'
        else title || ' not scheduled for deletion.'
      end as reason
    from
      aws_kms_key
    where
      key_manager = 'CUSTOMER';
"""

KMS_CMK_ROTATION_ENABLED = """
    select
      arn as resource,
      case
        when origin = 'EXTERNAL' then 'skip'
        when customer_master_key_spec <> 'SYMMETRIC_DEFAULT' then 'skip'
        when key_state = 'PendingDeletion' then 'skip'
        when key_state = 'Disabled' then 'skip'
        when not key_rotation_enabled then 'alarm'
        else 'ok'
      end as status,
      case
        when origin = 'EXTERNAL' then title || ' has imported key material.'
        when customer_master_key_spec <> 'SYMMETRIC_DEFAULT' then title || ' is non-symmetric customer key.'
        when key_state = 'PendingDeletion' then title || ' is pending deletion.'
        when key_state = 'Disabled' then title || ' is disabled.'
        when not key_rotation_enabled then title || ' key rotation disabled.'
        else title || ' key rotation enabled.'
      end as reason
    from
      aws_kms_key
    where
      key_manager = 'CUSTOMER';
"""


def _restricted(operator: str, key: str) -> str:
    # The mod's four lines per condition key, as written there (the '?' operator in SQLite).
    return f"""
        and (
          s.value -> 'Condition' -> '{operator}' -> '{key}' is null
          or exists (select 1 from json_each(s.value -> 'Condition' -> '{operator}' -> '{key}') where value = '*')
        )"""


def _not_equal(key: str) -> str:
    return f"""
        and s.value -> 'Condition' -> 'StringEquals' -> '{key}' is null
        and s.value -> 'Condition' -> 'StringEqualsIgnoreCase' -> '{key}' is null"""


KMS_CMK_POLICY_PROHIBIT_PUBLIC_ACCESS = f"""
    with wildcard_action_policies as (
      select
        arn,
        count(*) as statements_num
      from
        aws_kms_key,
        json_each(policy_std -> 'Statement') as s
      where
        s.value ->> 'Effect' = 'Allow'
        -- kms:CallerAccount
        {_not_equal('kms:calleraccount')}{_restricted('StringLike', 'kms:calleraccount')}
        -- aws:SourceOwner
        {_not_equal('aws:sourceowner')}{_restricted('StringLike', 'aws:sourceowner')}
        -- aws:SourceAccount
        {_not_equal('aws:sourceaccount')}{_restricted('StringLike', 'aws:sourceaccount')}
        -- aws:PrincipalOrgID
        {_not_equal('aws:principalorgid')}{_restricted('StringLike', 'aws:principalorgid')}
        -- aws:PrincipalAccount
        {_not_equal('aws:principalaccount')}{_restricted('StringLike', 'aws:principalaccount')}
        -- aws:PrincipalArn
        {_not_equal('aws:principalarn')}{_restricted('StringLike', 'aws:principalarn')}
        {_restricted('ArnEquals', 'aws:principalarn')}{_restricted('ArnLike', 'aws:principalarn')}
        -- aws:SourceArn
        {_not_equal('aws:sourcearn')}{_restricted('StringLike', 'aws:sourcearn')}
        {_restricted('ArnEquals', 'aws:sourcearn')}{_restricted('ArnLike', 'aws:sourcearn')}
        and (
          s.value -> 'Principal' -> 'AWS' = '["*"]'
          or s.value ->> 'Principal' = '*'
        )
      group by
        arn
    )
    select
      k.arn as resource,
      case
        when p.arn is null then 'ok'
        else 'alarm'
      end status,
      case
        when p.arn is null then title || ' does not allow public access.'
        else title || ' contains ' || coalesce(p.statements_num, 0) ||
        ' statements that allow public access.'
      end as reason
    from
      aws_kms_key as k
      left join wildcard_action_policies as p on p.arn = k.arn
    where
      key_manager = 'CUSTOMER';
"""

KMS_CMK_UNUSED = """
    select
      arn as resource,
      case
        when not enabled and key_state = 'PendingDeletion' then 'ok'
        when not enabled and key_state <> 'PendingDeletion' then 'alarm'
        else 'ok'
      end as status,
      case
        when not enabled and key_state = 'PendingDeletion' then title || ' scheduled for deletion in ' || cast(days_until(deletion_date) as integer) || ' day(s).'
        when not enabled and key_state <> 'PendingDeletion' then title || ' is unused.'
        else title || ' is in use.'
      end as reason
    from
      aws_kms_key
    where
      key_manager = 'CUSTOMER';
"""

ACCOUNT = "123456789012"


def _policy(*statements: dict) -> dict:
    root = {
        "Sid": "Enable IAM User Permissions",
        "Effect": "Allow",
        "Principal": {"AWS": f"arn:aws:iam::{ACCOUNT}:root"},
        "Action": "kms:*",
        "Resource": "*",
    }
    return {"Version": "2012-10-17", "Statement": [root, *statements]}


def _everyone(principal, condition: dict | None = None, sid: str = "Everyone") -> dict:
    statement = {"Sid": sid, "Effect": "Allow", "Principal": principal, "Action": "kms:Decrypt", "Resource": "*"}
    if condition:
        statement["Condition"] = condition
    return statement


# alias -> (how to make the key, Steampipe's verdict per mod query)
KEYS = {
    "alias/rotated": (dict(rotation=True), dict(rotation="ok", public="ok", pending="ok", unused="ok")),
    "alias/not-rotated": (dict(), dict(rotation="alarm", public="ok", pending="ok", unused="ok")),
    "alias/disabled": (dict(rotation=True, disable=True), dict(rotation="skip", public="ok", pending="ok", unused="alarm")),
    "alias/going": (dict(rotation=True, delete=True), dict(rotation="skip", public="ok", pending="alarm", unused="ok")),
    "alias/rsa": (dict(KeySpec="RSA_2048"), dict(rotation="skip", public="ok", pending="ok", unused="ok")),
    "alias/rotation-denied": (dict(rotation=True, deny_rotation=True), dict(rotation="alarm", public="ok", pending="ok", unused="ok")),
    "alias/open-aws-star": (
        dict(rotation=True, policy=_policy(_everyone({"AWS": "*"}))),
        dict(rotation="ok", public="alarm", pending="ok", unused="ok"),
    ),
    "alias/open-star": (
        dict(rotation=True, policy=_policy(_everyone("*"))),
        dict(rotation="ok", public="alarm", pending="ok", unused="ok"),
    ),
    "alias/open-over-tls": (
        dict(rotation=True, policy=_policy(_everyone({"AWS": ["*"]}, {"Bool": {"aws:SecureTransport": "true"}}))),
        dict(rotation="ok", public="alarm", pending="ok", unused="ok"),
    ),
    "alias/caller-account": (
        dict(rotation=True, policy=_policy(_everyone({"AWS": "*"}, {"StringEquals": {"kms:CallerAccount": ACCOUNT}}))),
        dict(rotation="ok", public="ok", pending="ok", unused="ok"),
    ),
    "alias/org-mixed-case": (
        dict(rotation=True, policy=_policy(_everyone({"AWS": "*"}, {"StringEquals": {"AWS:PrincipalOrgID": "o-abc123"}}))),
        dict(rotation="ok", public="ok", pending="ok", unused="ok"),
    ),
    "alias/caller-like-star": (
        dict(rotation=True, policy=_policy(_everyone({"AWS": "*"}, {"StringLike": {"kms:CallerAccount": "*"}}))),
        dict(rotation="ok", public="alarm", pending="ok", unused="ok"),
    ),
}
QUERIES = {
    "rotation": KMS_CMK_ROTATION_ENABLED,
    "public": KMS_CMK_POLICY_PROHIBIT_PUBLIC_ACCESS,
    "pending": KMS_KEY_NOT_PENDING_DELETION,
    "unused": KMS_CMK_UNUSED,
}


@pytest.fixture(scope="module")
def mod_estate(world: World, tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict[str, str]]:
    """A region of keys, one per case, collected into a snapshot; returns (db, alias -> arn)."""
    region = "ap-southeast-2"
    kms = world.session.client("kms", region_name=region)
    arns: dict[str, str] = {}
    for alias, (make, _verdicts) in KEYS.items():
        create = {k: v for k, v in make.items() if k in ("KeySpec",)}
        if "KeySpec" in create:
            create["KeyUsage"] = "ENCRYPT_DECRYPT"
        if "policy" in make:
            create["Policy"] = json.dumps(make["policy"])
        meta = kms.create_key(Description=alias, **create)["KeyMetadata"]
        kms.create_alias(AliasName=alias, TargetKeyId=meta["KeyId"])
        if make.get("rotation"):
            kms.enable_key_rotation(KeyId=meta["KeyId"])
        if make.get("disable"):
            kms.disable_key(KeyId=meta["KeyId"])
        if make.get("delete"):
            kms.schedule_key_deletion(KeyId=meta["KeyId"], PendingWindowInDays=7)
        arns[alias] = meta["Arn"]
    with fast_regions():
        scope = resolve_scope(AwsOptions(regions=(region,)))
    denied_key = arns["alias/rotation-denied"].split("/")[-1]
    deny(scope, "kms", "GetKeyRotationStatus", when=lambda params, _context: params.get("KeyId") == denied_key)
    db = tmp_path_factory.mktemp("mod") / "bedrock.db"
    # The mod judges every key of the account, not only those Bedrock resources name.
    snapshot.collect(scope, db, kms_keys="all")
    return db, arns


def _verdicts(db: Path, sql: str) -> dict[str, tuple[str, str]]:
    with snapshot_connection(db) as connection:
        result = run_query(connection, sql)
        return {row[0]: (row[1], row[2]) for row in result.rows}


@pytest.mark.parametrize("query", sorted(QUERIES))
def test_mod_query_gives_steampipes_verdicts(mod_estate, query: str) -> None:
    db, arns = mod_estate
    got = _verdicts(db, QUERIES[query])
    expected = {arns[alias]: verdicts[query] for alias, (_make, verdicts) in KEYS.items()}
    names = {arn: alias for alias, arn in arns.items()}
    assert {names[arn]: status for arn, (status, _reason) in got.items() if arn in names} == {
        alias: verdicts[query] for alias, (_make, verdicts) in KEYS.items()
    }
    for arn, (_status, reason) in got.items():
        assert reason and reason.endswith("."), reason  # a NULL column would have emptied it


def test_mod_reasons_read_right(mod_estate) -> None:
    db, arns = mod_estate
    pending = _verdicts(db, KMS_KEY_NOT_PENDING_DELETION)[arns["alias/going"]][1]
    assert pending in (
        "alias/going scheduled for deletion and will be deleted in 6 day(s).",
        "alias/going scheduled for deletion and will be deleted in 7 day(s).",
    )
    public = _verdicts(db, KMS_CMK_POLICY_PROHIBIT_PUBLIC_ACCESS)[arns["alias/open-star"]][1]
    assert public == "alias/open-star contains 1 statements that allow public access."


def test_a_failed_rotation_status_is_never_read_as_on(mod_estate) -> None:
    db, arns = mod_estate
    key = arns["alias/rotation-denied"]
    with snapshot_connection(db) as connection:
        (enabled,) = run_query(connection, "SELECT key_rotation_enabled FROM aws_kms_key WHERE arn = ?", (key,)).rows
        errors = list(run_query(
            connection, "SELECT operation, error_code FROM bedrock_sql_errors WHERE resource = ?", (key,)
        ).rows)
    assert enabled == (0,)  # the mod says alarm, never ok
    assert errors == [("GetKeyRotationStatus", "AccessDeniedException")]


def test_steampipe_shapes(mod_estate) -> None:
    db, arns = mod_estate
    with snapshot_connection(db) as connection:
        rows = list(run_query(
            connection,
            "SELECT arn, aliases, policy_std, tags_src, customer_master_key_spec, aws_account_id, title "
            "FROM aws_kms_key WHERE arn = ?",
            (arns["alias/open-star"],),
        ).rows)
    arn, aliases, policy_std, tags_src, spec, account, title = rows[0]
    (alias,) = json.loads(aliases)
    assert set(alias) == {"AliasArn", "AliasName", "TargetKeyId", "CreationDate", "LastUpdatedDate"}
    assert alias["AliasName"] == "alias/open-star" and alias["TargetKeyId"] == arn.split("/")[-1]
    assert alias["AliasArn"].endswith(":alias/open-star")  # moto gives no dates: null, as Steampipe writes them
    everyone = json.loads(policy_std)["Statement"][1]
    # Steampipe lower-cases actions (IAM reads them case-insensitively) and sorts every list.
    assert everyone["Principal"] == {"AWS": ["*"]} and everyone["Action"] == ["kms:decrypt"]
    assert json.loads(tags_src) == []
    assert (spec, account, title) == ("SYMMETRIC_DEFAULT", ACCOUNT, "alias/open-star")
