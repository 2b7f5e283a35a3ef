"""Which KMS keys and aliases a collect needs: ``collect --kms-keys needed`` (the default).

Only the keys that Bedrock resources name decide a verdict: a model's key, a job's output
key, an import's or a copy's target key. Real accounts hold many unrelated keys; listing and
describing every one of them in every region (four calls per customer-managed key) is most
of a collect's calls at organization scale. So by default the collector

1. collects the Bedrock tables;
2. lists the aliases of the units (account x region) that hold a Bedrock resource, and of
   the units an alias ARN names -- a resource may name its key by alias;
3. reads each key named (resolved through those aliases) by ARN in its own account and
   region: DescribeKey, and for a customer-managed key its rotation, policy and tags.

A named key that no longer exists is noted as gone, as a listed key would be; a key that
cannot be read is an error against it, so every control on its models answers ``error``.
``collect --kms-keys all`` keeps the full inventory (every key and alias of every unit).
The run's notes say which mode filled ``aws_kms_key``.
"""

from __future__ import annotations

import apsw

from .providers import TABLES

KMS_KEY_MODES = ("needed", "all")
DEFAULT_KMS_KEY_MODE = "needed"

#: Every column of a Bedrock table that names a KMS key (ARN, alias ARN, alias name or key
#: ID). A test checks that each ``*kms_key_arn`` column of a provider is here.
KEY_REFERENCES: dict[str, tuple[str, ...]] = {
    "aws_bedrock_custom_model": ("model_kms_key_arn",),
    "aws_bedrock_imported_model": ("model_kms_key_arn",),
    "aws_bedrock_model_customization_job": ("output_model_kms_key_arn",),
    "aws_bedrock_model_import_job": ("imported_model_kms_key_arn",),
    "aws_bedrock_model_copy_job": ("target_model_kms_key_arn",),
}

BEDROCK_TABLES = tuple(name for name, table in TABLES.items() if table.service == "bedrock")

NOTE_NEEDED = (
    "aws_kms_key: only the keys Bedrock resources name ({keys}), and aws_kms_alias: the aliases of "
    "the {units} account/region(s) holding Bedrock resources (collect --kms-keys all for every key and alias)"
)
NOTE_ALL = "aws_kms_key, aws_kms_alias: every key and alias of every account and region (--kms-keys all)"


def _references(schema: str) -> str:
    return "\nUNION\n".join(
        f"SELECT {column} AS ref, account_id, region, partition FROM {schema}.{table} WHERE {column} IS NOT NULL"
        for table, columns in KEY_REFERENCES.items()
        for column in columns
    )


def _arn_field(expression: str, index: int) -> str:
    return f"""json_extract('["' || replace({expression}, ':', '","') || '"]', '$[{index}]')"""


def alias_units(connection: apsw.Connection, schema: str) -> set[tuple[str, str]]:
    """(account, region) of every Bedrock resource, and of every alias ARN one names."""
    bedrock = "\nUNION\n".join(f"SELECT account_id, region FROM {schema}.{table}" for table in BEDROCK_TABLES)
    alias_arns = (
        f"SELECT {_arn_field('ref', 4)}, {_arn_field('ref', 3)} FROM ({_references(schema)}) "
        "WHERE ref LIKE 'arn:%:kms:%:alias/%'"
    )
    return {tuple(row) for row in connection.execute(f"{bedrock}\nUNION\n{alias_arns}")}


def key_arns(connection: apsw.Connection, schema: str) -> list[str]:
    """The ARN of every key a Bedrock resource names, resolved through the collected aliases.

    A reference by alias whose alias was not collected (its listing failed: recorded) or
    does not exist resolves to nothing: the views then say the key is unknown.
    """
    key_arn = "'arn:' || {p}.partition || ':kms:' || {p}.region || ':' || {p}.account_id || ':key/' || {id}"
    sql = f"""
SELECT DISTINCT key_arn FROM (
  SELECT CASE
    WHEN r.ref LIKE 'arn:%:kms:%:key/%' THEN r.ref
    WHEN r.ref LIKE 'arn:%:kms:%:alias/%' THEN
      (SELECT {key_arn.format(p='a', id='a.target_key_id')} FROM {schema}.aws_kms_alias a
       WHERE a.arn = r.ref AND a.target_key_id IS NOT NULL)
    WHEN r.ref LIKE 'alias/%' THEN
      (SELECT {key_arn.format(p='a', id='a.target_key_id')} FROM {schema}.aws_kms_alias a
       WHERE a.alias_name = r.ref AND a.account_id = r.account_id AND a.region = r.region
         AND a.target_key_id IS NOT NULL)
    WHEN r.ref NOT LIKE 'arn:%' THEN {key_arn.format(p='r', id='r.ref')}
  END AS key_arn
  FROM ({_references(schema)}) r
)
WHERE key_arn IS NOT NULL
ORDER BY key_arn
"""
    return [row[0] for row in connection.execute(sql)]



_NEEDED_MARK = "aws_kms_key: only the keys Bedrock resources name"


def every_key_collected(connection: apsw.Connection, schema: str = "main") -> bool:
    """Whether the snapshot holds every key of its scope: written with ``--kms-keys all``, or
    by a version that knew no other way. False when a run collected only the keys needed."""
    for (notes,) in connection.execute(f"SELECT notes FROM {schema}.bedrock_sql_runs"):
        if notes and _NEEDED_MARK in notes:
            return False
    return True
