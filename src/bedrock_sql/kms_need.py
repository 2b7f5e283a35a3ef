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

import functools
from dataclasses import replace
from typing import Callable, Iterable, Iterator

import apsw

from .aws import ApiError, UnitApi, offered
from .engine import Engine, ScanPlan
from .providers import TABLES
from .providers.base import Table
from .providers.kms_alias import ALIAS_TABLE, KEY_TABLE, drop_handoff
from .providers.kms_key import ALIAS_FIELDS, aliases_by_name
from .providers.kms_key import describe_key, get_key

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


def _present(connection: apsw.Connection, schema: str) -> set[str]:
    """The tables of database ``schema`` (a collect of some tables only has no others)."""
    return {name for (name,) in connection.execute(f"SELECT name FROM {schema}.sqlite_schema WHERE type = 'table'")}


def _references(connection: apsw.Connection, schema: str) -> str:
    present = _present(connection, schema)
    return "\nUNION\n".join(
        f"SELECT {column} AS ref, account_id, region, partition FROM {schema}.{table} WHERE {column} IS NOT NULL"
        for table, columns in KEY_REFERENCES.items()
        if table in present
        for column in columns
    ) or "SELECT NULL AS ref, NULL AS account_id, NULL AS region, NULL AS partition WHERE 0"


def _arn_field(expression: str, index: int) -> str:
    return f"""json_extract('["' || replace({expression}, ':', '","') || '"]', '$[{index}]')"""


def alias_units(connection: apsw.Connection, schema: str) -> set[tuple[str, str]]:
    """(account, region) of every Bedrock resource, and of every alias ARN one names."""
    present = _present(connection, schema)
    bedrock = "\nUNION\n".join(
        f"SELECT account_id, region FROM {schema}.{table}" for table in BEDROCK_TABLES if table in present
    ) or "SELECT NULL, NULL WHERE 0"
    alias_arns = (
        f"SELECT {_arn_field('ref', 4)}, {_arn_field('ref', 3)} FROM ({_references(connection, schema)}) "
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
  FROM ({_references(connection, schema)}) r
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


# --- the by-need collect --------------------------------------------------------------------

KMS_TABLES = (KEY_TABLE, ALIAS_TABLE)
Store = Callable[[Iterable[tuple[Table, tuple]]], None]


def listed_tables(tables: dict[str, Table], mode: str) -> dict[str, Table]:
    """The tables listed in every unit of the scope (what progress counts): all of them with
    ``--kms-keys all``; by need, all but the KMS tables, which are read where needed only."""
    if mode == "all":
        return tables
    return {name: table for name, table in tables.items() if name not in KMS_TABLES}


def collect_by_need(connection: apsw.Connection, engine: Engine, tables: dict[str, Table], store: Store,
                    schema: str = "snapshot", *, context_by_need: bool = False) -> list[str]:
    """Fill database ``schema`` (its tables created) in three steps (see the module's doc),
    handing each step's ``(table, row)`` to ``store``, which must have written them when it
    returns (the next step reads them). Returns the run's notes. ``context_by_need``: see
    :meth:`Engine.scan_all`."""
    store(engine.scan_all(listed_tables(tables, "needed").values(), context_by_need=context_by_need))
    if not any(name in tables for name in KMS_TABLES):
        return []

    wanted = alias_units(connection, schema)
    units = [u for u in engine.scope.units if (u.account_id, u.region) in wanted and offered("kms", u.region)]
    if ALIAS_TABLE in tables:
        # Each unit's listing is handed over to aws_kms_key's listing of the unit
        # (kms_alias.region_aliases); none follows here, so it is dropped at once.
        alias_table = tables[ALIAS_TABLE]
        listing = replace(alias_table, list_items=functools.partial(_list_aliases_kept, alias_table.list_items))
        store(engine.scan_all([listing], units))
        _alias_failures_cost_keys(engine, units)

    named = key_arns(connection, schema)
    scoped = {(u.account_id, u.region) for u in engine.scope.units}
    # A key outside the scanned accounts and regions is not read: a listing would not have
    # seen it either (the views say its key is unknown).
    readable = [arn for arn in named if _arn_unit(arn) in scoped]
    if KEY_TABLE in tables:
        reader = replace(tables[KEY_TABLE], get_item=_key_reader(connection, schema, engine, units))
        store((reader, row) for row in engine.scan(reader, ScanPlan(get_keys=readable)))

    notes = [NOTE_NEEDED.format(keys=f"{len(readable)} key(s)", units=len(units))]
    if len(readable) < len(named):
        notes.append(f"aws_kms_key: {len(named) - len(readable)} key(s) named by Bedrock resources are outside the "
                     f"accounts and regions collected, and were not read: {_shown(sorted(set(named) - set(readable)))}")
    missing = _named_but_not_found(connection, schema, engine, readable)
    if missing:
        notes.append(f"aws_kms_key: {len(missing)} key(s) named by Bedrock resources but not found "
                     f"(DescribeKey: no such key): {_shown(missing)}")
    return notes


def _list_aliases_kept(list_items: Callable, api: UnitApi, params: dict) -> Iterator[dict]:
    try:
        yield from list_items(api, params)
    finally:
        drop_handoff(api, KEY_TABLE)


def _alias_failures_cost_keys(engine: Engine, units: list) -> None:
    """A unit whose aliases could not be listed cannot say which key an alias names there:
    its aws_kms_key is incomplete, and recorded so (the failure --kms-keys all records too,
    its key listing reading the aliases first), so the controls answer error, not "no key"."""
    by_unit = {(u.account_id, u.region): u for u in units}
    for record in engine.errors.records():
        unit = by_unit.get((record.account_id, record.region))
        if record.table_name == ALIAS_TABLE and record.resource is None and unit is not None:
            engine.errors.add(unit, KEY_TABLE, ApiError(record.operation, record.error_code, record.message))


def _arn_unit(arn: str) -> tuple[str, str]:
    parts = arn.split(":")
    return parts[4], parts[3]


def _key_reader(connection: apsw.Connection, schema: str, engine: Engine, listed: list) -> Callable:
    """aws_kms_key's get, taking a key's ``aliases`` from the aliases just collected where
    its unit's listing succeeded (no ListAliases per key); elsewhere (a key in a unit holding
    no Bedrock resource, or whose listing failed) the table's own get lists them by key."""
    failed = {(e.account_id, e.region) for e in engine.errors.records() if e.table_name == ALIAS_TABLE and not e.resource}
    known = {(u.account_id, u.region) for u in listed} - failed
    aliases: dict[tuple[str, str, str], list[dict]] = {}
    for account, region, *alias in connection.execute(
        f"SELECT account_id, region, arn, alias_name, target_key_id, creation_date, last_updated_date "
        f"FROM {schema}.{ALIAS_TABLE} WHERE target_key_id IS NOT NULL"
    ):
        entry = dict(zip(ALIAS_FIELDS, alias))  # the SELECT names them in this order
        aliases.setdefault((account, region, entry["TargetKeyId"]), []).append(entry)

    def read(api: UnitApi, key: str):
        if (api.account_id, api.region) not in known:
            return get_key(api, key)
        item = describe_key(api, key)
        if item is not None:
            item["aliases"] = aliases_by_name(aliases.get((api.account_id, api.region, item["KeyId"]), []))
        return item

    return read


def _named_but_not_found(connection: apsw.Connection, schema: str, engine: Engine, arns: list[str]) -> list[str]:
    """The keys read by ARN that are neither stored nor recorded as failed: DescribeKey found none."""
    stored = {arn for (arn,) in connection.execute(f"SELECT arn FROM {schema}.{KEY_TABLE}")}
    failed = {e.resource for e in engine.errors.records() if e.table_name == KEY_TABLE}
    failed_units = {(e.account_id, e.region) for e in engine.errors.records()
                    if e.table_name == KEY_TABLE and not e.resource}
    return [arn for arn in arns if arn not in stored and arn not in failed and _arn_unit(arn) not in failed_units]


def _shown(items: list[str], limit: int = 10) -> str:
    return ", ".join(items[:limit]) + (f" and {len(items) - limit} more" if len(items) > limit else "")
