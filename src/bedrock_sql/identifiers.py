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
- region: ``us-east-1``, ``us-gov-west-1``, ``cn-north-1``, ``eu-isoe-west-1``,
  ``eusc-de-east-1``: botocore's partitions' ``regionRegex`` all read "letters-letters-digit(s)";
- partition: ``aws``, ``aws-cn``, ``aws-us-gov``, ``aws-iso``, ``aws-iso-b``, ``aws-eusc``...,
  i.e. ``aws`` with lower-case suffixes;
- ARN: ``arn:PARTITION:SERVICE:REGION:ACCOUNT:RESOURCE`` with an optional region and account
  and a resource of printable ASCII without spaces (IAM paths allow ``!`` to ``~``);
- KMS key id: a UUID, or ``mrk-`` and 32 hex digits for a multi-Region key.
"""

from __future__ import annotations

import json
import re
from typing import Any

import apsw

from .errors import UserError

# Pieces shared by the whole-value patterns below, so a region in an ARN is the same region.
_ACCOUNT = r"[0-9]{12}"
# Two letters (``us``, ``cn``) or ``eusc`` (the European Sovereign Cloud, ``eusc-de-east-1``),
# then one or more lower-case words and a number: every ``regionRegex`` of botocore's partitions.
_REGION = r"(?:[a-z]{2}|eusc)(?:-[a-z]+)+-[0-9]{1,2}"
_PARTITION = r"aws(?:-[a-z]+)*"
_KEY_ID = r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}|mrk-[0-9a-f]{32}"

# re.ASCII: without it \d and \w would take '١٢٣' (Arabic-Indic digits) for digits. The
# patterns spell their classes out ([0-9], [a-z]) besides; is_valid uses fullmatch, as '$'
# would accept a value ending in a newline.
ACCOUNT_ID = re.compile(_ACCOUNT, re.ASCII)
REGION = re.compile(_REGION, re.ASCII)
PARTITION = re.compile(_PARTITION, re.ASCII)
ARN = re.compile(
    rf"arn:(?P<partition>{_PARTITION}):(?P<service>[a-z0-9-]+):(?P<region>(?:{_REGION})?)"
    rf":(?P<account>(?:{_ACCOUNT}|aws)?):(?P<resource>[!-~]+)",
    re.ASCII,
)
KMS_KEY_ID = re.compile(_KEY_ID, re.ASCII)
KMS_KEY_ARN = re.compile(rf"arn:{_PARTITION}:kms:{_REGION}:{_ACCOUNT}:key/(?:{_KEY_ID})", re.ASCII)

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
    return f"{_shown_value(value)} is no valid {kind.replace('_', ' ')}"


def _shown_value(value: Any) -> str:
    """``value`` for a one-line message: repr (newlines, ESC and other controls escaped), cut
    when long (a forged value may be megabytes)."""
    shown = repr(value)
    return shown if len(shown) <= 120 else f"{shown[:100]}... ({len(str(value))} characters)"


#: JSON arrays of identifiers: the accounts and regions a collect run scanned. merge prints
#: them (which shards hold an account) and dates findings by them.
CHECKED_JSON_ARRAYS = {
    ("bedrock_sql_runs", "accounts"): "account_id",
    ("bedrock_sql_runs", "regions"): "region",
}

_PLAIN_NAME = re.compile(r"[A-Za-z0-9_]+", re.ASCII)


def _quoted(name: str) -> str:
    """``name`` as an SQL identifier: a table name comes from the (untrusted) file itself, and
    apsw runs every statement of a string, so a name holding a double quote must not end it."""
    return '"' + name.replace('"', '""') + '"'


def _shown(name: str) -> str:
    """A table name for a one-line message: as is when plain, else escaped (no ESC, no newline)."""
    return name if _PLAIN_NAME.fullmatch(name) else ascii(name)


def check_snapshot_identifiers(connection, *, schema: str = "main", where: str = "the snapshot") -> None:
    """Raise :class:`~bedrock_sql.errors.UserError` naming the first row of any table of
    ``schema`` whose account id, region, partition or ARN is not as AWS spells it (and the
    accounts and regions of ``bedrock_sql_runs``, JSON arrays).

    Reads distinct values only (an estate has few accounts x regions), so it costs little even
    on a large snapshot. NULL and empty values pass: they are absent, not forged, and a listing
    error of a whole account has no region. Virtual tables are not read (a forged file could
    declare one whose module does more than read).
    """
    for table, rowid, column, reason in _invalid_identifiers(connection, schema):
        row = f"row {rowid}" if rowid is not None else "a row"
        raise UserError(
            f"{where} is refused: {_shown(table)} {row} has {column} {reason} "
            "(a snapshot holds what AWS returned; this one was altered)"
        )


def _invalid_identifiers(connection, schema: str):
    """(table, rowid or None, column, why) of each invalid identifier in ``schema``."""
    db = _quoted(schema)
    tables = [
        name
        for (name,) in connection.execute(
            f"SELECT name FROM {db}.sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%' "
            "AND upper(coalesce(sql, '')) NOT LIKE 'CREATE VIRTUAL %' ORDER BY name"
        )
    ]
    for table in tables:
        quoted = f"{db}.{_quoted(table)}"
        columns = {row[1] for row in connection.execute(f"PRAGMA {db}.table_info({_quoted(table)})")}
        for column, kind in CHECKED_COLUMNS.items():
            if column not in columns:
                continue
            name = _quoted(column)
            for (value,) in connection.execute(
                f"SELECT DISTINCT {name} FROM {quoted} WHERE {name} IS NOT NULL AND {name} <> ''"
            ):
                reason = invalid_reason(kind, value)
                if reason is not None:
                    yield table, _rowid(connection, quoted, f"{name} = ?", (value,)), column, reason
        for (array_table, column), kind in CHECKED_JSON_ARRAYS.items():
            if array_table != table or column not in columns:
                continue
            name = _quoted(column)
            for (text,) in connection.execute(f"SELECT DISTINCT {name} FROM {quoted} WHERE {name} IS NOT NULL"):
                reason = _invalid_array(kind, text)
                if reason is not None:
                    yield table, _rowid(connection, quoted, f"{name} = ?", (text,)), column, reason


def _invalid_array(kind: str, text: Any) -> str | None:
    """None when ``text`` is a JSON array of valid ``kind`` values; otherwise why not."""
    try:
        values = json.loads(text) if isinstance(text, str) else None
    except (ValueError, RecursionError):  # RecursionError: "[[[[..." nested past Python's stack
        values = None
    if not isinstance(values, list):
        return f"{_shown_value(text)} is no JSON array of {kind.replace('_', ' ')}s"
    for value in values:
        if not is_valid(kind, value):
            return f"holding {_shown_value(value)}, no valid {kind.replace('_', ' ')}"
    return None


def _rowid(connection, table: str, condition: str, bindings: tuple) -> int | None:
    """The rowid of the first row matching ``condition``, or None (a WITHOUT ROWID table)."""
    try:
        row = connection.execute(f"SELECT rowid FROM {table} WHERE {condition} LIMIT 1", bindings).fetchone()
    except apsw.SQLError:
        return None
    return row[0] if row else None
