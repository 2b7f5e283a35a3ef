"""AWS identifiers, as AWS itself spells them: account ids, regions, partitions, ARNs, key ids.

A snapshot is a file: anyone who can write it (or hand over a shard for ``merge``) can put any
text where an account id or a region belongs. The remediation script branches on those values
(``case "$ACCOUNT_ID"``, ``--region``), so before a snapshot's identifiers reach a plan or a
merged snapshot they are checked against the patterns AWS gives them; a snapshot holding one
that does not match is refused with one line naming the row (:func:`check_snapshot_identifiers`).
Quoting still protects every value that reaches bash (:mod:`bedrock_sql.remediate.shell`): these
checks make sure a value that *branches* is what it claims to be, not merely harmless.

Patterns (ASCII only, whole value):

- account id: 12 digits (STS ``GetCallerIdentity``, every ARN's account field);
- region: ``us-east-1``, ``us-gov-west-1``, ``cn-north-1``, ``eu-isoe-west-1``: botocore's
  partitions' ``regionRegex`` all read "letters-letters-digit(s)";
- partition: ``aws``, ``aws-cn``, ``aws-us-gov``, ``aws-iso``, ``aws-iso-b``..., i.e. ``aws``
  with lower-case suffixes;
- ARN: ``arn:PARTITION:SERVICE:REGION:ACCOUNT:RESOURCE`` with an optional region and account
  and a resource of printable ASCII without spaces (IAM paths allow ``!`` to ``~``);
- KMS key id: a UUID, or ``mrk-`` and 32 hex digits for a multi-Region key.
"""

from __future__ import annotations

import re
from typing import Any

ACCOUNT_ID = re.compile(r"[0-9]{12}", re.ASCII)
REGION = re.compile(r"[a-z]{2}(-[a-z]+)+-[0-9]{1,2}", re.ASCII)
PARTITION = re.compile(r"aws(-[a-z]+)*", re.ASCII)
ARN = re.compile(
    r"arn:(?P<partition>aws(-[a-z]+)*):(?P<service>[a-z0-9-]+):(?P<region>([a-z]{2}(-[a-z]+)+-[0-9]{1,2})?)"
    r":(?P<account>([0-9]{12}|aws)?):(?P<resource>[!-~]+)",
    re.ASCII,
)
KMS_KEY_ID = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}|mrk-[0-9a-f]{32}", re.ASCII)
KMS_KEY_ARN = re.compile(
    r"arn:aws(-[a-z]+)*:kms:[a-z]{2}(-[a-z]+)+-[0-9]{1,2}:[0-9]{12}:key/"
    r"([0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}|mrk-[0-9a-f]{32})",
    re.ASCII,
)

PATTERNS: dict[str, re.Pattern[str]] = {
    "account_id": ACCOUNT_ID,
    "region": REGION,
    "partition": PARTITION,
    "arn": ARN,
    "kms_key_id": KMS_KEY_ID,
    "kms_key_arn": KMS_KEY_ARN,
}

#: The columns of every snapshot table that hold an identifier, and the pattern each must match.
#: ``owner_account_id`` is a model's owner (another account for a shared model).
CHECKED_COLUMNS = {
    "account_id": "account_id",
    "owner_account_id": "account_id",
    "region": "region",
    "partition": "partition",
    "arn": "arn",
}


def is_valid(kind: str, value: Any) -> bool:
    """Whether ``value`` is a whole ``kind`` identifier (a key of :data:`PATTERNS`)."""
    return isinstance(value, str) and PATTERNS[kind].fullmatch(value) is not None


def invalid_reason(kind: str, value: Any) -> str | None:
    """None when ``value`` is a valid ``kind``; otherwise why not, for a one-line message."""
    if is_valid(kind, value):
        return None
    return f"{value!r} is no valid {kind.replace('_', ' ')}"


def check_snapshot_identifiers(connection, *, schema: str = "main", where: str = "the snapshot") -> None:
    """Raise :class:`~bedrock_sql.errors.UserError` naming the first row of any table of
    ``schema`` whose account id, region, partition or ARN is not as AWS spells it.

    Reads distinct values only (an estate has few accounts x regions), so it costs little even
    on a large snapshot. NULL and empty values pass: they are absent, not forged, and a listing
    error of a whole account has no region.
    """
    from .errors import UserError

    tables = [
        name
        for (name,) in connection.execute(
            f"SELECT name FROM {schema}.sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%' ORDER BY name"
        )
    ]
    for table in tables:
        columns = {row[1] for row in connection.execute(f'PRAGMA {schema}.table_info("{table}")')}
        for column, kind in CHECKED_COLUMNS.items():
            if column not in columns:
                continue
            for (value,) in connection.execute(
                f'SELECT DISTINCT "{column}" FROM {schema}."{table}" WHERE "{column}" IS NOT NULL AND "{column}" <> \'\''
            ):
                reason = invalid_reason(kind, value)
                if reason is None:
                    continue
                (rowid,) = connection.execute(
                    f'SELECT rowid FROM {schema}."{table}" WHERE "{column}" = ? LIMIT 1', (value,)
                ).fetchone()
                raise UserError(
                    f"{where} is refused: {table} row {rowid} has {column} {reason[:200]} "
                    "(a snapshot holds what AWS returned; this one was altered)"
                )
