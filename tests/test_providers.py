"""Providers: the columns DESIGN.md promises, the values they hold, the calls they make,
and how a failure costs only what it must (moto in process, through the live tables)."""

from __future__ import annotations

import json
import sqlite3
from datetime import datetime, timezone

import pytest

from bedrock_sql.estate import (
    AWS_MANAGED,
    CMK,
    DEFAULT_ACCOUNT_ID,
    Estate,
    create_key,
    seed_models,
)
from bedrock_sql.providers import TABLES
from bedrock_sql.providers.base import INTEGER, TEXT, to_sql
from bedrock_sql.snapshot import collect
from helpers import (  # noqa: F401 - fixtures
    ISO_UTC,
    REGIONS,
    World,
    client_error,
    demo,
    deny,
    live,
    make_live,
    parse_json,
    region_of,
    scratch,
    world,
)

COMMON = ["account_id", "region", "partition", "title", "akas"]

# DESIGN.md, "Tables": the contract every query and control relies on.
DESIGN_COLUMNS = {
    "aws_bedrock_custom_model": [
        "arn", "model_name", "job_arn", "job_name", "base_model_arn", "base_model_name",
        "customization_type", "model_status", "owner_account_id", "model_kms_key_arn",
        "creation_time", "hyper_parameters", "training_data_config", "validation_data_config",
        "output_data_config", "training_metrics", "validation_metrics", "customization_config",
        "failure_message", "tags",
    ],
    "aws_bedrock_model_customization_job": [
        "arn", "job_name", "status", "status_details", "base_model_arn", "output_model_name",
        "output_model_arn", "output_model_kms_key_arn", "role_arn", "customization_type",
        "hyper_parameters", "training_data_config", "validation_data_config", "output_data_config",
        "vpc_config", "customization_config", "client_request_token", "creation_time",
        "last_modified_time", "end_time", "failure_message", "tags",
    ],
    "aws_kms_key": [
        "arn", "id", "key_manager", "key_state", "enabled", "origin", "key_usage", "key_spec",
        "description", "creation_date", "deletion_date", "multi_region", "key_rotation_enabled",
        "policy", "aliases", "tags",
        # issue 10: Steampipe's columns and shapes
        "customer_master_key_spec", "aws_account_id", "valid_to", "multi_region_configuration",
        "policy_std", "tags_src",
    ],
    "aws_kms_alias": ["alias_name", "arn", "target_key_id", "creation_date", "last_updated_date"],
    # issue 9: the whole custom-model estate
    "aws_bedrock_imported_model": [
        "arn", "model_name", "job_arn", "job_name", "model_data_source", "model_architecture",
        "model_kms_key_arn", "instruct_supported", "custom_model_units", "creation_time", "tags",
    ],
    "aws_bedrock_model_import_job": [
        "arn", "job_name", "status", "imported_model_arn", "imported_model_name",
        "imported_model_kms_key_arn", "role_arn", "model_data_source", "vpc_config", "failure_message",
        "creation_time", "last_modified_time", "end_time",
    ],
    "aws_bedrock_model_copy_job": [
        "arn", "status", "source_account_id", "source_model_arn", "source_model_name", "target_model_arn",
        "target_model_name", "target_model_kms_key_arn", "target_model_tags", "failure_message", "creation_time",
    ],
    "aws_bedrock_provisioned_model_throughput": [
        "arn", "provisioned_model_name", "model_arn", "desired_model_arn", "foundation_model_arn",
        "model_units", "desired_model_units", "status", "commitment_duration", "commitment_expiration_time",
        "creation_time", "last_modified_time", "tags",
    ],
    "aws_bedrock_custom_model_deployment": [
        "arn", "model_deployment_name", "model_arn", "status", "description", "update_details",
        "created_at", "last_updated_at", "failure_message", "tags",
    ],
}
BOOLEAN_COLUMNS = {
    "aws_kms_key": {"enabled", "multi_region", "key_rotation_enabled"},
    "aws_bedrock_imported_model": {"instruct_supported"},
}
COUNT_COLUMNS = {"aws_bedrock_provisioned_model_throughput": {"model_units", "desired_model_units"}}
TIMESTAMP_COLUMNS = {
    "aws_bedrock_custom_model": ["creation_time"],
    "aws_bedrock_model_customization_job": ["creation_time", "last_modified_time", "end_time"],
    "aws_kms_key": ["creation_date", "deletion_date"],
    "aws_kms_alias": ["creation_date", "last_updated_date"],
}
JSON_OBJECT_COLUMNS = {
    "aws_bedrock_custom_model": ["hyper_parameters", "training_data_config", "output_data_config", "tags"],
    "aws_bedrock_model_customization_job": ["hyper_parameters", "training_data_config", "output_data_config", "tags"],
    "aws_kms_key": [],  # policy and tags only for customer keys: checked separately
    "aws_kms_alias": [],
}


# --- the declared schema ------------------------------------------------------------------


def test_table_names_are_the_designed_ones() -> None:
    assert set(TABLES) == set(DESIGN_COLUMNS)


@pytest.mark.parametrize("name", sorted(DESIGN_COLUMNS))
def test_every_designed_column_exists_with_its_type(name: str) -> None:
    table = TABLES[name]
    names = table.column_names
    assert len(names) == len(set(names)), f"{name} declares a column twice"
    missing = [c for c in DESIGN_COLUMNS[name] + COMMON if c not in names]
    assert not missing, f"{name} lacks {missing}"
    assert names[-len(COMMON):] == COMMON
    types = {c.name: c.type for c in table.all_columns}
    booleans = BOOLEAN_COLUMNS.get(name, set())
    for column in DESIGN_COLUMNS[name] + COMMON:
        expected = INTEGER if column in booleans | COUNT_COLUMNS.get(name, set()) else TEXT
        assert types[column] == expected, f"{name}.{column} is {types[column]}, not {expected}"
    # Every column says what it means (schema shows it).
    assert all(c.description.strip() for c in table.all_columns)
    if "arn" in names:
        assert table.arn == "arn"


@pytest.mark.parametrize("name", sorted(DESIGN_COLUMNS))
def test_live_table_declares_the_same_typed_columns(name: str, live) -> None:
    info = live.conn.execute(f"PRAGMA table_info({name})").fetchall()
    assert [(r[1], r[2]) for r in info] == [(c.name, c.type) for c in TABLES[name].all_columns]


def test_to_sql_conversions() -> None:
    assert to_sql(True) == 1 and to_sql(False) == 0
    assert to_sql(datetime(2026, 11, 28, 13, 0, 0, 123, tzinfo=timezone.utc)) == "2026-11-28T13:00:00Z"
    assert to_sql({"b": 1, "a": [True, None]}) == '{"a":[true,null],"b":1}'
    assert to_sql(None) is None and to_sql(3) == 3 and to_sql("x") == "x"


# --- values -------------------------------------------------------------------------------


def test_custom_model_rows_match_the_estate(demo: Estate, live) -> None:
    rows = {r["arn"]: r for r in live.rows("SELECT * FROM aws_bedrock_custom_model")}
    assert set(rows) == {m.model_arn for m in demo.models}
    for seeded in demo.models:
        row = rows[seeded.model_arn]
        assert row["model_kms_key_arn"] == seeded.kms_key_arn, seeded.case
        if seeded.case == "bedrock_owned":
            assert row["model_kms_key_arn"] is None
        assert row["model_name"] == seeded.model_name
        assert row["job_arn"] == seeded.job_arn and row["job_name"] == seeded.job_name
        assert (row["account_id"], row["region"], row["partition"]) == (DEFAULT_ACCOUNT_ID, seeded.region, "aws")
        assert row["title"] == seeded.model_name
        assert parse_json(row["akas"]) == [seeded.model_arn]
        assert ISO_UTC.match(row["creation_time"]), row["creation_time"]
        job = demo.job(seeded.job_name, seeded.region)
        assert parse_json(row["tags"]) == job["tags"]
        assert row["customization_type"] == job["customization_type"]
        hyper = parse_json(row["hyper_parameters"])
        assert isinstance(hyper, dict) and hyper["epochCount"] in ("1", "2")
        assert parse_json(row["training_data_config"])["s3Uri"].endswith("/train.jsonl")
        assert row["base_model_arn"].endswith(job["base_model"])
        assert row["base_model_name"] == job["base_model"]
    # Every case is present, and the synthetic ARNs moto would invent never leak.
    assert not [r for r in rows.values() if (r["model_kms_key_arn"] or "").endswith("-kms-key")]
    assert sum(r["model_kms_key_arn"] is None for r in rows.values()) == len(demo.by_case("bedrock_owned")) > 0


def test_seed_models_exact_key_arn(world: World) -> None:
    full, empty = next(world.scratch), next(world.scratch)
    key = create_key(world.session, full, alias="alias/t")
    seed_models(world.session, full, 2, key_arn=key.arn, prefix="cmk")
    seed_models(world.session, full, 2, prefix="owned")
    handle = make_live((full, empty))
    try:
        got = dict(handle.conn.execute("SELECT model_name, model_kms_key_arn FROM aws_bedrock_custom_model").fetchall())
        assert got == {"cmk-0000": key.arn, "cmk-0001": key.arn, "owned-0000": None, "owned-0001": None}
        assert handle.calls("ListCustomModels", empty) == 1  # the empty region was still scanned
        assert handle.calls("GetCustomModel", full) == 4
    finally:
        handle.close()


def test_job_rows_match_the_estate(demo: Estate, live) -> None:
    rows = {(r["region"], r["job_name"]): r for r in live.rows("SELECT * FROM aws_bedrock_model_customization_job")}
    assert set(rows) == {(j["region"], j["job_name"]) for j in demo.jobs}
    for job in demo.jobs:
        row = rows[(job["region"], job["job_name"])]
        assert row["arn"] == job["job_arn"]
        assert row["status"] == job["status"]
        assert row["output_model_kms_key_arn"] == job["kms_key_arn"]
        assert row["output_model_name"] == job["model_name"]
        assert row["output_model_arn"] == job["model_arn"]
        assert row["failure_message"] == job["failure_message"]
        if job["vpc"]:
            vpc = parse_json(row["vpc_config"])
            assert vpc["subnetIds"] and vpc["securityGroupIds"]
        else:
            assert row["vpc_config"] is None
        assert parse_json(row["tags"]) == job["tags"]
        assert parse_json(row["hyper_parameters"])
        for column in ("creation_time", "last_modified_time"):
            assert ISO_UTC.match(row[column]), (column, row[column])
        if job["status"] == "InProgress":
            assert row["end_time"] is None
        else:
            assert ISO_UTC.match(row["end_time"])
        assert row["title"] == job["job_name"] and parse_json(row["akas"]) == [job["job_arn"]]


def test_generic_value_formats_in_every_table(demo: Estate, live) -> None:
    for name in TIMESTAMP_COLUMNS:  # the tables the demo estate fills (the others: test_new_tables)
        rows = live.rows(f"SELECT * FROM {name}")
        assert rows, name
        for row in rows:
            for column in TIMESTAMP_COLUMNS[name]:
                assert row[column] is None or ISO_UTC.match(row[column]), (name, column, row[column])
            for column in JSON_OBJECT_COLUMNS[name]:
                assert isinstance(parse_json(row[column]), dict), (name, column)
            akas = parse_json(row["akas"])
            assert isinstance(akas, list) and (not row.get("arn") or akas == [row["arn"]])
            for column in BOOLEAN_COLUMNS.get(name, ()):
                assert row[column] in (0, 1, None), (name, column, row[column])
            assert row["account_id"] == DEFAULT_ACCOUNT_ID and row["region"] in REGIONS
            assert row["partition"] == "aws" and row["title"]


def test_kms_key_rows_and_calls(demo: Estate, live) -> None:
    rows = {r["arn"]: r for r in live.rows("SELECT * FROM aws_kms_key")}
    assert set(rows) == {k.arn for k in demo.keys}
    customer = [k for k in demo.keys if k.key_manager == "CUSTOMER"]
    aws_managed = [k for k in demo.keys if k.key_manager == "AWS"]
    assert customer and aws_managed
    for key in demo.keys:
        row = rows[key.arn]
        assert row["id"] == key.key_id
        assert row["key_manager"] == key.key_manager
        assert row["key_state"] == key.key_state
        assert row["enabled"] == (1 if key.key_state == "Enabled" else 0)
        assert [a["AliasName"] for a in parse_json(row["aliases"])] == [key.alias]
        assert parse_json(row["aliases"])[0]["TargetKeyId"] == key.key_id
        assert row["title"] == key.alias
        assert row["aws_account_id"] == row["account_id"]
        assert row["customer_master_key_spec"] == "SYMMETRIC_DEFAULT"
        assert row["description"] == key.description
        assert ISO_UTC.match(row["creation_date"])
        if key.key_state == "PendingDeletion":
            assert ISO_UTC.match(row["deletion_date"])
        else:
            assert row["deletion_date"] is None
        if key.key_manager == "CUSTOMER":
            assert row["key_rotation_enabled"] == int(key.rotation)
            policy = parse_json(row["policy"])
            assert policy["Statement"] and isinstance(policy, dict)
            assert parse_json(row["tags"]) == {"purpose": "bedrock-custom-models"}
            assert parse_json(row["tags_src"]) == [{"TagKey": "purpose", "TagValue": "bedrock-custom-models"}]
            assert isinstance(parse_json(row["policy_std"])["Statement"], list)
        else:
            assert row["key_rotation_enabled"] == 1  # AWS rotates AWS managed keys every year
            assert row["policy"] is None and row["tags"] is None and row["policy_std"] is None

    # Detail calls only for customer keys; DescribeKey for all; aliases once per region.
    n_customer = len(customer)
    assert live.calls("DescribeKey") == len(demo.keys)
    assert live.calls("GetKeyRotationStatus") == n_customer
    assert live.calls("GetKeyPolicy") == n_customer
    assert live.calls("ListResourceTags") == n_customer
    for region in REGIONS:
        assert live.calls("ListAliases", region) == 1
        assert live.calls("ListKeys", region) == 1


def test_aws_managed_keys_make_no_detail_calls(world: World, scratch: str) -> None:
    for i in range(3):
        create_key(world.session, scratch, manager="AWS", alias=f"alias/aws/managed{i}")
    handle = make_live((scratch,))
    try:
        rows = handle.rows("SELECT key_manager, key_rotation_enabled, policy, tags FROM aws_kms_key")
        assert len(rows) == 3 and {r["key_manager"] for r in rows} == {"AWS"}
        assert all(r["key_rotation_enabled"] == 1 and r["policy"] is None and r["tags"] is None for r in rows)
        assert handle.calls("DescribeKey") == 3
        for operation in ("GetKeyRotationStatus", "GetKeyPolicy", "ListResourceTags"):
            assert handle.calls(operation) == 0, operation
        assert handle.calls("ListAliases") == 1
    finally:
        handle.close()


def test_many_keys_list_aliases_once_per_region(world: World) -> None:
    first, second = next(world.scratch), next(world.scratch)
    for i in range(6):
        create_key(world.session, first, alias=f"alias/k{i}", rotation=i % 2 == 0)
    create_key(world.session, second, alias="alias/other")
    handle = make_live((first, second))
    try:
        rows = handle.rows("SELECT title, aliases, key_rotation_enabled FROM aws_kms_key WHERE region = ? ORDER BY title", (first,))
        assert [r["title"] for r in rows] == [f"alias/k{i}" for i in range(6)]
        assert [[a["AliasName"] for a in parse_json(r["aliases"])] for r in rows] == [[f"alias/k{i}"] for i in range(6)]
        assert [r["key_rotation_enabled"] for r in rows] == [1, 0, 1, 0, 1, 0]
        assert handle.calls("ListAliases", first) == 1 and handle.calls("ListAliases", second) == 0
        assert handle.calls("GetKeyRotationStatus") == 6
        handle.reset_calls()
        assert len(handle.rows("SELECT id FROM aws_kms_key")) == 7
        assert handle.calls("ListAliases", first) == 1 and handle.calls("ListAliases", second) == 1
    finally:
        handle.close()


def test_key_without_alias_is_titled_by_id(world: World, scratch: str) -> None:
    key = create_key(world.session, scratch)
    handle = make_live((scratch,))
    try:
        row = handle.rows("SELECT id, title, aliases FROM aws_kms_key")[0]
        assert row == {"id": key.key_id, "title": key.key_id, "aliases": "[]"}
    finally:
        handle.close()


def test_alias_rows(demo: Estate, live) -> None:
    rows = live.rows("SELECT * FROM aws_kms_alias")
    mine = {(r["region"], r["alias_name"]): r for r in rows if not r["alias_name"].startswith("alias/aws/")}
    expected = {(k.region, k.alias): k for k in demo.keys if not k.alias.startswith("alias/aws/")}
    assert set(mine) == set(expected)
    for where, key in expected.items():
        row = mine[where]
        assert row["target_key_id"] == key.key_id
        assert row["arn"] == f"arn:aws:kms:{key.region}:{DEFAULT_ACCOUNT_ID}:{key.alias}"
        assert row["title"] == key.alias and parse_json(row["akas"]) == [row["arn"]]
    # The AWS managed alias of the estate is listed once per region (not duplicated).
    for region in REGIONS:
        assert sum(1 for r in rows if r["region"] == region and r["alias_name"] == AWS_MANAGED) == 1


# --- failures cost only what they must ----------------------------------------------------


def test_get_custom_model_denied_keeps_the_listed_row(demo: Estate) -> None:
    victim = demo.model("support-chat-v3")  # a CMK model in us-east-1
    handle = make_live()
    try:
        denied = deny(
            handle.scope,
            "bedrock",
            "GetCustomModel",
            when=lambda params, ctx: params.get("modelIdentifier") == victim.model_arn,
        )
        rows = {r["arn"]: r for r in handle.rows("SELECT * FROM aws_bedrock_custom_model")}
        assert denied, "the denial never triggered"
        # The model still appears, from its listing, without the detail it could not get.
        assert set(rows) == {m.model_arn for m in demo.models}
        row = rows[victim.model_arn]
        assert row["model_name"] == victim.model_name and row["region"] == victim.region
        assert row["model_kms_key_arn"] is None  # unknown, and the error says so
        # The failure is recorded against that model.
        records = handle.errors.records()
        assert len(records) == 1
        record = records[0]
        assert record.table_name == "aws_bedrock_custom_model"
        assert record.operation == "GetCustomModel"
        assert record.error_code == "AccessDeniedException"
        assert record.resource == victim.model_arn
        assert (record.account_id, record.region) == (DEFAULT_ACCOUNT_ID, victim.region)
        assert ISO_UTC.match(record.occurred_at)
        # Every other model is complete.
        for seeded in demo.models:
            if seeded is victim:
                continue
            assert rows[seeded.model_arn]["model_kms_key_arn"] == seeded.kms_key_arn
            assert rows[seeded.model_arn]["tags"] is not None
    finally:
        handle.close()


def test_tags_denied_keeps_the_model_details(demo: Estate) -> None:
    victim = demo.model("claims-summarizer-v2")
    handle = make_live()
    try:
        deny(handle.scope, "bedrock", "ListTagsForResource", when=lambda p, c: p.get("resourceARN") == victim.model_arn)
        rows = {r["arn"]: r for r in handle.rows("SELECT arn, model_kms_key_arn, tags FROM aws_bedrock_custom_model")}
        assert rows[victim.model_arn]["model_kms_key_arn"] == victim.kms_key_arn
        assert rows[victim.model_arn]["tags"] is None
        [record] = handle.errors.records()
        assert (record.operation, record.resource) == ("ListTagsForResource", victim.model_arn)
    finally:
        handle.close()


def test_list_custom_models_denied_in_one_region(demo: Estate) -> None:
    handle = make_live()
    try:
        deny(handle.scope, "bedrock", "ListCustomModels", when=lambda p, ctx: region_of(ctx) == "eu-west-1")
        rows = handle.rows("SELECT arn, region, model_kms_key_arn FROM aws_bedrock_custom_model")
        assert {r["region"] for r in rows} == {"us-east-1"}
        expected = {m.model_arn: m.kms_key_arn for m in demo.models_in("us-east-1")}
        assert {r["arn"]: r["model_kms_key_arn"] for r in rows} == expected
        [record] = handle.errors.records()
        assert record.region == "eu-west-1" and record.account_id == DEFAULT_ACCOUNT_ID
        assert record.table_name == "aws_bedrock_custom_model"
        assert record.operation == "ListCustomModels"
        assert record.error_code == "AccessDeniedException"
        assert record.resource is None
        assert handle.calls("GetCustomModel", "eu-west-1") == 0
    finally:
        handle.close()


def test_describe_key_denied_keeps_the_listed_key(demo: Estate) -> None:
    victim = demo.key(CMK, "eu-west-1")
    handle = make_live()
    try:
        deny(handle.scope, "kms", "DescribeKey", when=lambda p, c: p.get("KeyId") == victim.key_id)
        rows = {r["id"]: r for r in handle.rows("SELECT id, arn, key_manager, aliases FROM aws_kms_key")}
        assert set(rows) == {k.key_id for k in demo.keys}
        row = rows[victim.key_id]
        assert row["arn"] == victim.arn and row["key_manager"] is None
        assert [a["AliasName"] for a in parse_json(row["aliases"])] == [CMK]
        [record] = handle.errors.records()
        assert (record.table_name, record.operation, record.resource) == ("aws_kms_key", "DescribeKey", victim.arn)
    finally:
        handle.close()


def test_throttling_is_retried_not_recorded(demo: Estate, monkeypatch) -> None:
    monkeypatch.setattr("bedrock_sql.aws.backoff_delay", lambda attempt: 0.0)
    handle = make_live()
    try:
        state = {"n": 0}

        def flaky(params, context=None, **_):
            state["n"] += 1
            if state["n"] <= 3:
                raise client_error("ThrottlingException", "GetCustomModel", "Rate exceeded")

        handle.scope.accounts[0].session.events.register("provide-client-params.bedrock.GetCustomModel", flaky)
        rows = handle.rows("SELECT arn, model_kms_key_arn FROM aws_bedrock_custom_model")
        assert {r["arn"]: r["model_kms_key_arn"] for r in rows} == {m.model_arn: m.kms_key_arn for m in demo.models}
        assert handle.errors.records() == []
        assert state["n"] == len(demo.models) + 3  # three throttled attempts were retried
    finally:
        handle.close()


def test_every_table_keeps_one_row_per_arn() -> None:
    for name, table in TABLES.items():
        assert table.key == ("arn",), name


def test_json_values_are_real_utf8() -> None:
    assert to_sql({"team": "équipe", "owner": "株式会社"}) == '{"owner":"株式会社","team":"équipe"}'
    assert "\\u" not in to_sql(["café"])


# --- nothing vanishes: only a genuine not-found drops a listed resource --------------------


@pytest.mark.parametrize("code", ["ValidationException", "InternalServerException", "AccessDeniedException"])
def test_any_get_failure_but_not_found_keeps_the_model_with_an_error(demo: Estate, code: str, monkeypatch) -> None:
    monkeypatch.setattr("bedrock_sql.aws.backoff_delay", lambda attempt: 0.0)
    victim = demo.model("support-chat-v3")
    handle = make_live()
    try:
        deny(handle.scope, "bedrock", "GetCustomModel", code=code,
             when=lambda params, ctx: params.get("modelIdentifier") == victim.model_arn)
        rows = {r["arn"]: r for r in handle.rows("SELECT arn, model_name FROM aws_bedrock_custom_model")}
        assert set(rows) == {m.model_arn for m in demo.models}  # nothing vanished
        [record] = handle.errors.records()
        assert (record.operation, record.error_code, record.resource) == ("GetCustomModel", code, victim.model_arn)
    finally:
        handle.close()


def test_a_model_deleted_between_list_and_get_is_noted(demo: Estate, tmp_path) -> None:
    victim = demo.model("support-chat-v3")
    handle = make_live()
    try:
        deny(handle.scope, "bedrock", "GetCustomModel", code="ResourceNotFoundException",
             when=lambda params, ctx: params.get("modelIdentifier") == victim.model_arn)
        result = collect(handle.scope, tmp_path / "s.db")
    finally:
        handle.close()
    assert result.errors == [] and result.status == "complete"
    assert result.row_counts["aws_bedrock_custom_model"] == len(demo.models) - 1
    note = f"aws_bedrock_custom_model: 1 resource(s) listed but gone before their details were read: {victim.model_arn}"
    assert note in result.scope.notes
    with sqlite3.connect(tmp_path / "s.db") as conn:
        assert note in json.loads(conn.execute("SELECT notes FROM bedrock_sql_runs").fetchone()[0])


def test_a_key_deleted_between_list_and_get_is_noted(demo: Estate, tmp_path) -> None:
    victim = demo.key(CMK, "eu-west-1")
    handle = make_live()
    try:
        deny(handle.scope, "kms", "DescribeKey", code="NotFoundException",
             when=lambda params, ctx: params.get("KeyId") == victim.key_id)
        result = collect(handle.scope, tmp_path / "s.db", kms_keys="all")  # the key is listed, then gone
    finally:
        handle.close()
    assert result.errors == []
    assert f"aws_kms_key: 1 resource(s) listed but gone before their details were read: {victim.arn}" in result.scope.notes


def test_rotation_unsupported_on_a_rotatable_key_is_an_error(demo: Estate) -> None:
    victim = demo.key(CMK, "us-east-1")  # symmetric, AWS_KMS, Enabled: rotation applies
    handle = make_live(("us-east-1",))
    try:
        deny(handle.scope, "kms", "GetKeyRotationStatus", code="UnsupportedOperationException",
             when=lambda params, ctx: params.get("KeyId") == victim.key_id)
        row = handle.rows("SELECT key_rotation_enabled FROM aws_kms_key WHERE arn = ?", (victim.arn,))[0]
        assert row["key_rotation_enabled"] == 0  # unknown reads as off, never as on (and is recorded)
        [record] = handle.errors.records()
        assert (record.operation, record.error_code, record.resource) == (
            "GetKeyRotationStatus", "UnsupportedOperationException", victim.arn)
    finally:
        handle.close()


def test_rotation_that_does_not_apply_is_null_without_error(world: World, scratch: str) -> None:
    kms = world.session.client("kms", region_name=scratch)
    kms.create_key(KeySpec="RSA_2048", KeyUsage="SIGN_VERIFY")  # rotation never applies to it
    handle = make_live((scratch,))
    try:
        denied = deny(handle.scope, "kms", "GetKeyRotationStatus", code="UnsupportedOperationException")
        rows = handle.rows("SELECT key_spec, key_rotation_enabled FROM aws_kms_key")
        assert rows == [{"key_spec": "RSA_2048", "key_rotation_enabled": None}]
        assert denied and handle.errors.records() == []
    finally:
        handle.close()


def test_aliases_denied_on_a_key_get_cost_only_the_aliases(demo: Estate) -> None:
    victim = demo.key(CMK, "us-east-1")
    handle = make_live()
    try:
        deny(handle.scope, "kms", "ListAliases", when=lambda params, ctx: params.get("KeyId") == victim.key_id)
        [row] = handle.rows("SELECT arn, key_manager, aliases FROM aws_kms_key WHERE id = ?", (victim.key_id,))
        assert (row["arn"], row["key_manager"], row["aliases"]) == (victim.arn, "CUSTOMER", None)
        [record] = handle.errors.records()
        assert (record.operation, record.resource) == ("ListAliases", victim.arn)
    finally:
        handle.close()
