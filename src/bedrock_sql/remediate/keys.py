"""The customer-managed key of each account and region: an existing key, or one to create.

:func:`existing_keys` checks the keys given with ``--kms-key``; :func:`new_keys` reuses the
key an existing alias names or plans a new one, whose policy :func:`key_policy` writes and
whose steps :func:`key_steps` returns. A new key is tagged with its alias and the plan's id
for it (:data:`ALIAS_TAG`, :data:`PLAN_TAG`), so that a run which created it but could not
name it finds it again (:mod:`.script`, :mod:`.apply`); :func:`key_problem` says why a key
cannot serve.
"""

from __future__ import annotations

import hashlib
import json
import re
from typing import Any, Sequence

from .. import identifiers
from ..errors import UserError
from ..providers.base import arn_region
from .parts import ALIASES, KEYS, KeyChoice, KeyLookup, Plan, Step, Target, Variable, query_rows

#: What the key administrators may do (the KMS console's default key policy).
KEY_ADMIN_ACTIONS = [
    "kms:Create*",
    "kms:Describe*",
    "kms:Enable*",
    "kms:List*",
    "kms:Put*",
    "kms:Update*",
    "kms:Revoke*",
    "kms:Disable*",
    "kms:Get*",
    "kms:Delete*",
    "kms:TagResource",
    "kms:UntagResource",
    "kms:ScheduleKeyDeletion",
    "kms:CancelKeyDeletion",
    "kms:RotateKeyOnDemand",
]
#: What the key users (the customization jobs' service roles) may do with the key.
KEY_USER_ACTIONS = ["kms:Encrypt", "kms:Decrypt", "kms:ReEncrypt*", "kms:GenerateDataKey*", "kms:DescribeKey"]
#: Grants, only for AWS services acting for the key users (kms:GrantIsForAWSResource).
KEY_GRANT_ACTIONS = ["kms:CreateGrant", "kms:ListGrants", "kms:RevokeGrant"]

KEY_DESCRIPTION = "Customer managed key for Amazon Bedrock custom models (bedrock-sql remediate)"
KEY_TAGS = [{"TagKey": "created-by", "TagValue": "bedrock-sql"}]
#: Tags on every key a plan creates, so that a run which created the key but failed to name
#: it (CreateAlias denied, credentials expired) finds that key again instead of creating a
#: second one: the alias the key is for, and the plan's id for it (:func:`key_plan_id`).
ALIAS_TAG = "bedrock-sql:alias"
PLAN_TAG = "bedrock-sql:plan"

# ASCII only: without re.ASCII, \w and \d also take Unicode letters and digits ("role/ｅｖｉｌ", "١٢٣..."),
# which IAM never names a role with.
ROLE_ARN = re.compile(r"arn:aws(-[a-z]+)*:iam::([0-9]{12}):role/[\w+=,.@/-]+", re.ASCII)
_KEY_ARN = re.compile(r"arn:(aws[a-z-]*):kms:([a-z0-9-]+):([0-9]{12}):(key|alias)/(.+)", re.ASCII)


def _key_row(connection, arn: str, key_lookup: KeyLookup | None) -> dict[str, Any]:
    """The aws_kms_key row of a key ARN (or alias ARN), from the snapshot or live."""
    match = _KEY_ARN.fullmatch(arn)
    if not match:
        raise UserError(f"--kms-key needs a key or alias ARN (arn:aws:kms:REGION:ACCOUNT:key/ID or ...:alias/NAME), not {arn!r}")
    partition, region, account, kind, name = match.groups()
    key_arn = arn
    if kind == "alias":
        if name.startswith("aws/"):
            raise UserError(f"--kms-key {arn} is an AWS managed key: the rule needs a customer-managed key")
        aliases = query_rows(
            connection,
            f"SELECT target_key_id FROM {ALIASES} WHERE account_id = ? AND region = ? AND alias_name = ?",
            (account, region, f"alias/{name}"),
        )
        if aliases and aliases[0]["target_key_id"]:
            key_arn = f"arn:{partition}:kms:{region}:{account}:key/{aliases[0]['target_key_id']}"
            if not identifiers.is_valid("kms_key_arn", key_arn):
                raise UserError(
                    f"--kms-key {arn}: the snapshot's alias names {aliases[0]['target_key_id'][:80]!r}, "
                    "which is no KMS key id (the snapshot was altered)"
                )
        elif key_lookup is None:
            raise UserError(f"--kms-key {arn}: no such alias in the snapshot (run bedrock-sql collect --kms-keys all, or give the key's ARN)")
    rows = query_rows(connection, f"SELECT * FROM {KEYS} WHERE arn = ?", (key_arn,))
    if rows:
        return rows[0]
    if key_lookup is None:
        raise UserError(f"--kms-key {arn} is not in the snapshot (by default a collect keeps only the keys Bedrock resources name): run "
                        "bedrock-sql collect --kms-keys all (or --apply, which describes it live)")
    row = key_lookup(key_arn)
    if row is None:
        raise UserError(f"--kms-key {arn} does not exist (DescribeKey found no such key)")
    return row


def key_problem(row: dict[str, Any]) -> str | None:
    """Why no customization job may use this key ("is disabled: ..."), or None when it may."""
    if row.get("key_manager") == "AWS":
        return "is an AWS managed key: the rule needs a customer-managed key"
    state = row.get("key_state")
    if state == "PendingDeletion":
        when = f" on {row['deletion_date']}" if row.get("deletion_date") else ""
        return f"is pending deletion{when}: cancel the deletion or choose another key"
    if state == "Disabled":
        return "is disabled: enable it (aws kms enable-key) or choose another key"
    if state != "Enabled":
        return f"is in state {state}, not Enabled: a customization job cannot use it"
    home = arn_region(row.get("arn") or "")
    if home and row.get("region") and home != row["region"]:
        return f"is in {home}, not {row['region']}: a customization job needs a key in its own region"
    spec, usage = row.get("key_spec") or "SYMMETRIC_DEFAULT", row.get("key_usage") or "ENCRYPT_DECRYPT"
    if (spec, usage) != ("SYMMETRIC_DEFAULT", "ENCRYPT_DECRYPT"):
        return f"is a {spec} {usage} key: Bedrock needs a symmetric encryption key (SYMMETRIC_DEFAULT, ENCRYPT_DECRYPT)"
    return None


def _refuse_key(row: dict[str, Any], given: str) -> None:
    """Refuse a --kms-key no customization job may use, with the reason."""
    problem = key_problem(row)
    if problem:
        name = given if given == row["arn"] else f"{given} ({row['arn']})"
        raise UserError(f"--kms-key {name} {problem}")


def existing_keys(
    connection, kms_keys: list[str], targets: list[Target], key_lookup: KeyLookup | None, plan: Plan
) -> dict[tuple[str, str], KeyChoice]:
    by_region: dict[str, KeyChoice] = {}
    for given in dict.fromkeys(kms_keys):
        row = _key_row(connection, given, key_lookup)
        _refuse_key(row, given)
        region = row["region"]
        if region in by_region:
            raise UserError(f"two --kms-key in {region} ({by_region[region].arn} and {row['arn']}): give one key per region")
        policy = row.get("policy")
        by_region[region] = KeyChoice(
            account_id=row["account_id"],
            region=region,
            arn=row["arn"],
            policy_text=policy if isinstance(policy, str) or policy is None else json.dumps(policy),
        )
    keys: dict[tuple[str, str], KeyChoice] = {}
    for target in targets:
        key = by_region.get(target.region)
        if key is None:
            elsewhere = ", ".join(f"{k.arn} is in {r}" for r, k in sorted(by_region.items()))
            raise UserError(
                f"--kms-key: model {target.model_name} is in {target.region} but {elsewhere}; a customization job "
                "needs a key in its own region (repeat --kms-key, one key per region)"
            )
        keys[(target.account_id, target.region)] = key
    return keys


def new_keys(
    connection,
    alias: str,
    admin_roles: Sequence[str],
    targets: list[Target],
    sources: dict[str, dict[str, Any] | str],
    plan: Plan,
) -> dict[tuple[str, str], KeyChoice]:
    """One key per account and region: an existing key with ``alias``, or a new one."""
    accounts = {t.account_id for t in targets}
    keys: dict[tuple[str, str], KeyChoice] = {}
    for account_id, region in sorted({(t.account_id, t.region) for t in targets}):
        unit_targets = [t for t in targets if (t.account_id, t.region) == (account_id, region)]
        partition = unit_targets[0].partition
        # Key users: the service roles of this unit's jobs, of this account only (the planner
        # makes a manual step of a model whose role is refused: key_user_problem).
        users = sorted(
            {
                s["roleArn"]
                for t in unit_targets
                if isinstance(s := sources[t.model_arn], dict) and s.get("roleArn")
                and key_user_problem(s["roleArn"], account_id) is None
            }
        )
        # Administrators: the roles of this account, and roles of accounts the plan does not
        # touch (a central key-administration account); never another target account's roles.
        admins = sorted({r for r in admin_roles if _role_account(r) == account_id or _role_account(r) not in accounts})
        existing = query_rows(
            connection,
            f"SELECT k.* FROM {ALIASES} a JOIN {KEYS} k ON k.account_id = a.account_id AND k.region = a.region "
            f"AND k.id = a.target_key_id WHERE a.account_id = ? AND a.region = ? AND a.alias_name = ?",
            (account_id, region, alias),
        )
        if existing:
            row = existing[0]
            problem = key_problem(row)
            if problem:
                raise UserError(
                    f"--alias {alias} already exists in {account_id}/{region}, but its key {row['arn']} "
                    f"{problem.split(': ', 1)[0]}: fix that key, or choose another --alias"
                )
            if row.get("key_rotation_enabled") == 0:
                plan.warnings.append(f"{alias} in {account_id}/{region} names existing key {row['arn']}, whose automatic rotation is off")
            key = KeyChoice(
                account_id=account_id,
                region=region,
                arn=row["arn"],
                alias=alias,
                users=users,
                admins=admins,
                policy_text=row.get("policy") or "",
            )
        else:
            key = KeyChoice(
                account_id=account_id,
                region=region,
                variable=key_variable(account_id, region),
                alias=alias,
                users=users,
                admins=admins,
                policy=key_policy(account_id, partition, admins=admins, users=users),
            )
        keys[(account_id, region)] = key
    return keys


def _role_account(role_arn: str) -> str:
    match = ROLE_ARN.fullmatch(role_arn)
    return match.group(2) if match else ""


def key_user_problem(role_arn: Any, account_id: str) -> str | None:
    """Why a source job's service role cannot be a key user of the key this plan creates for
    ``account_id``, or None when it can.

    A new key serves every model of its account and region, so its users are that account's
    roles only, as its administrators are (:func:`new_keys`): a role of another account named
    by one member's job would get the use of every model's key there.
    """
    if not isinstance(role_arn, str) or not ROLE_ARN.fullmatch(role_arn):
        return f"its service role {str(role_arn)[:200]!r} is no IAM role ARN (arn:aws:iam::ACCOUNT:role/NAME)"
    owner = _role_account(role_arn)
    if owner != account_id:
        return (
            f"its service role {role_arn} belongs to account {owner}, not {account_id}: the new key of "
            f"{account_id} lets only {account_id}'s roles use it (as it lets only them administer it), so give "
            "that role the use of the key yourself (or use a role of this account) and run the job by hand"
        )
    return None


def key_variable(account_id: str, region: str) -> str:
    """The variable holding the ARN of the key created for a unit (a shell variable name)."""
    if not identifiers.is_valid("account_id", account_id) or not identifiers.is_valid("region", region):
        raise UserError(f"no key variable for {account_id!r}/{region!r}: not an account id and region")
    return f"KEY_ARN_{account_id}_{region.replace('-', '_')}"


def key_policy(account_id: str, partition: str = "aws", *, admins: Sequence[str] = (), users: Sequence[str] = ()) -> dict[str, Any]:
    """The key policy of a CMK for Bedrock custom models.

    Four statements: the account root (kms:*, so IAM policies keep working -- the caller of
    a copy job is allowed the key through its IAM policy), the key administrators, the key
    users (the customization and import jobs' service roles) and grants for
    the same roles only when an AWS service asks for them (kms:GrantIsForAWSResource).
    A statement without principals is left out.
    """
    statements: list[dict[str, Any]] = [
        {
            "Sid": "Enable IAM User Permissions",
            "Effect": "Allow",
            "Principal": {"AWS": f"arn:{partition}:iam::{account_id}:root"},
            "Action": "kms:*",
            "Resource": "*",
        }
    ]
    if admins:
        statements.append(
            {
                "Sid": "Allow access for Key Administrators",
                "Effect": "Allow",
                "Principal": {"AWS": sorted(set(admins))},
                "Action": list(KEY_ADMIN_ACTIONS),
                "Resource": "*",
            }
        )
    if users:
        statements.append(
            {
                "Sid": "Allow use of the key",
                "Effect": "Allow",
                "Principal": {"AWS": sorted(set(users))},
                "Action": list(KEY_USER_ACTIONS),
                "Resource": "*",
            }
        )
        statements.append(
            {
                "Sid": "Allow attachment of persistent resources",
                "Effect": "Allow",
                "Principal": {"AWS": sorted(set(users))},
                "Action": list(KEY_GRANT_ACTIONS),
                "Resource": "*",
                "Condition": {"Bool": {"kms:GrantIsForAWSResource": "true"}},
            }
        )
    return {"Version": "2012-10-17", "Id": "bedrock-custom-models", "Statement": statements}


def key_plan_id(key: KeyChoice) -> str:
    """What identifies the key a plan creates: its account, region, alias and key policy.

    The same plan (or a plan made again from a newer snapshot that asks for the same
    key) has the same id, so a key it left without an alias is its own to reuse; a key
    with another policy is not.
    """
    request = json.dumps([key.account_id, key.region, key.alias, key.policy], sort_keys=True)
    return hashlib.sha256(request.encode()).hexdigest()[:16]


def created_key_tags(step: Step) -> tuple[str, str]:
    """The (alias, plan id) a CreateKey step tags its key with."""
    tags = {t["TagKey"]: t["TagValue"] for t in step.params["Tags"]}
    return tags[ALIAS_TAG], tags[PLAN_TAG]


def key_steps(key: KeyChoice) -> list[Step]:
    unit = f"{key.account_id}/{key.region}"
    assert key.policy is not None and key.variable is not None
    notes = [f"A customer-managed key for the custom models of {unit}, named {key.alias}."]
    notes.append(
        "Key users (the service roles of the customization and import jobs): " + ", ".join(key.users) + "."
        if key.users
        else "No key users: no model here has a customization or import job to re-run."
    )
    notes.append(
        "Key administrators: " + ", ".join(key.admins) + "."
        if key.admins
        else "No --key-admin-role for this account: the key is administered through IAM policies (the account root statement)."
    )
    ref = Variable(key.variable)
    return [
        Step(
            service="kms",
            operation="CreateKey",
            region=key.region,
            account_id=key.account_id,
            params={
                "Policy": json.dumps(key.policy, indent=2),
                "Description": KEY_DESCRIPTION,
                "KeyUsage": "ENCRYPT_DECRYPT",
                "KeySpec": "SYMMETRIC_DEFAULT",
                "Tags": [
                    *(dict(t) for t in KEY_TAGS),
                    {"TagKey": ALIAS_TAG, "TagValue": key.alias},
                    {"TagKey": PLAN_TAG, "TagValue": key_plan_id(key)},
                ],
            },
            comment=" ".join(notes),
            outputs={key.variable: "KeyMetadata.Arn"},
            alias=key.alias,
        ),
        Step(
            service="kms",
            operation="CreateAlias",
            region=key.region,
            account_id=key.account_id,
            params={"AliasName": key.alias, "TargetKeyId": ref},
            comment=f"Name the key {key.alias}.",
        ),
        Step(
            service="kms",
            operation="EnableKeyRotation",
            region=key.region,
            account_id=key.account_id,
            params={"KeyId": ref},
            comment="Rotate the key material automatically (every year).",
        ),
    ]
