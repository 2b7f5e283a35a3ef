"""WHERE pushdown through the virtual tables, proven by counting the AWS calls made,
and checked against the answer SQLite gives on the full (unfiltered) rows."""

from __future__ import annotations

import threading
import time
from datetime import datetime, timezone

import apsw
import pytest

from bedrock_sql.estate import CMK, DEFAULT_ACCOUNT_ID, FOREIGN_ACCOUNT_ID, Estate, seed_models
from bedrock_sql.providers import TABLES
from helpers import (  # noqa: F401 - fixtures
    REGIONS,
    World,
    capture_params,
    demo,
    deny,
    live,
    make_live,
    scratch,
    world,
)

MODELS = "aws_bedrock_custom_model"
JOBS = "aws_bedrock_model_customization_job"


def full_then_filter(handle, table: str, where: str, bindings=(), columns: str = "arn") -> list:
    """What SQLite alone answers: every row of ``table`` copied, then ``where`` applied."""
    scratch_db = apsw.Connection(":memory:")
    scratch_db.execute(TABLES[table].create_sql("t"))
    rows = handle.conn.execute(f"SELECT * FROM {table}").fetchall()
    scratch_db.executemany(f"INSERT INTO t VALUES ({', '.join('?' * len(TABLES[table].column_names))})", rows)
    return sorted(scratch_db.execute(f"SELECT {columns} FROM t WHERE {where}", bindings).fetchall())


# --- gets instead of listings -------------------------------------------------------------


def test_arn_equality_is_one_get(demo: Estate, live) -> None:
    model = demo.model("claims-summarizer-v2")
    rows = live.rows(f"SELECT model_name, model_kms_key_arn FROM {MODELS} WHERE arn = ?", (model.model_arn,))
    assert rows == [{"model_name": model.model_name, "model_kms_key_arn": model.kms_key_arn}]
    assert live.calls("GetCustomModel") == 1
    assert live.calls("GetCustomModel", model.region) == 1
    assert live.calls("ListTagsForResource") == 1
    assert live.calls("ListCustomModels") == 0
    assert live.calls() == 2


def test_arn_in_list_is_one_get_each(demo: Estate, live) -> None:
    first = demo.models_in("us-east-1")[0]
    second = demo.models_in("eu-west-1")[1]
    rows = live.values(f"SELECT model_name FROM {MODELS} WHERE arn IN (?, ?) ORDER BY 1", (first.model_arn, second.model_arn))
    assert rows == sorted([first.model_name, second.model_name])
    assert live.calls("GetCustomModel") == 2
    assert live.calls("GetCustomModel", "us-east-1") == 1 and live.calls("GetCustomModel", "eu-west-1") == 1
    assert live.calls("ListCustomModels") == 0


def test_model_name_is_a_get_in_every_region(demo: Estate, live) -> None:
    model = demo.model("gdpr-redactor-v1")
    assert live.values(f"SELECT arn FROM {MODELS} WHERE model_name = ?", (model.model_name,)) == [model.model_arn]
    assert live.calls("ListCustomModels") == 0
    assert live.calls("GetCustomModel") == len(REGIONS)
    assert live.errors.records() == []  # "not found" in the other region is no error


def test_unknown_arn_is_no_row_and_no_error(live) -> None:
    arn = f"arn:aws:bedrock:us-east-1:{DEFAULT_ACCOUNT_ID}:custom-model/nope"
    assert live.rows(f"SELECT * FROM {MODELS} WHERE arn = ?", (arn,)) == []
    assert live.calls("ListCustomModels") == 0 and live.calls("GetCustomModel") == 1
    assert live.errors.records() == []


def test_a_get_refused_otherwise_than_not_found_is_an_error_not_no_row(demo: Estate, live) -> None:
    """Only ResourceNotFoundException means "not here"; a ValidationException (a key AWS
    will not take, say) is reported, never an empty answer."""
    model = demo.model("gdpr-redactor-v1")
    denied = deny(live.scope, "bedrock", "GetCustomModel", code="ValidationException",
                  when=lambda params, ctx: ctx.get("client_region") == model.region)
    assert live.values(f"SELECT arn FROM {MODELS} WHERE model_name = ?", (model.model_name,)) == []
    assert denied
    [record] = live.errors.records()
    assert (record.region, record.operation, record.error_code, record.resource) == (
        model.region, "GetCustomModel", "ValidationException", model.model_name)


def test_arn_outside_scanned_regions_still_answers(demo: Estate, world: World) -> None:
    model = demo.models_in("eu-west-1")[0]
    handle = make_live(("us-east-1",))
    try:
        assert handle.values(f"SELECT model_name FROM {MODELS} WHERE arn = ?", (model.model_arn,)) == [model.model_name]
        assert handle.calls("GetCustomModel", "eu-west-1") == 1
        assert handle.calls("ListCustomModels") == 0
    finally:
        handle.close()


def test_arn_of_an_account_not_in_scope_calls_nothing(live) -> None:
    arn = f"arn:aws:bedrock:us-east-1:{FOREIGN_ACCOUNT_ID}:custom-model/theirs"
    assert live.rows(f"SELECT * FROM {MODELS} WHERE arn = ?", (arn,)) == []
    assert live.calls() == 0


def test_region_constraint_skips_other_regions(demo: Estate, live) -> None:
    rows = live.values(f"SELECT arn FROM {MODELS} WHERE region = 'eu-west-1'")
    assert sorted(rows) == sorted(m.model_arn for m in demo.models_in("eu-west-1"))
    assert live.calls(region="us-east-1") == 0
    assert live.calls("ListCustomModels", "eu-west-1") == 1
    # An IN list of regions narrows too.
    live.reset_calls()
    assert len(live.values(f"SELECT arn FROM {JOBS} WHERE region IN ('eu-west-1', 'ap-south-1')")) == len(
        [j for j in demo.jobs if j["region"] == "eu-west-1"]
    )
    assert live.calls(region="us-east-1") == 0


def test_region_and_arn_of_another_region_calls_nothing(demo: Estate, live) -> None:
    model = demo.models_in("us-east-1")[0]
    assert live.rows(f"SELECT * FROM {MODELS} WHERE arn = ? AND region = 'eu-west-1'", (model.model_arn,)) == []
    assert live.calls() == 0


def test_account_constraint(demo: Estate, live) -> None:
    assert live.rows(f"SELECT * FROM {MODELS} WHERE account_id = 'other'") == []
    assert live.rows("SELECT * FROM aws_kms_key WHERE account_id = '111122223333'") == []
    assert live.calls() == 0
    assert len(live.values(f"SELECT arn FROM {MODELS} WHERE account_id = ?", (DEFAULT_ACCOUNT_ID,))) == len(demo.models)


# --- jobs ---------------------------------------------------------------------------------


def test_job_name_is_a_get(demo: Estate, live) -> None:
    job = demo.job("fraud-notes-ft-2026-05")
    rows = live.rows(f"SELECT arn, status, vpc_config IS NOT NULL AS in_vpc FROM {JOBS} WHERE job_name = ?", (job["job_name"],))
    assert rows == [{"arn": job["job_arn"], "status": job["status"], "in_vpc": 1}]
    assert live.calls("ListModelCustomizationJobs") == 0
    assert live.calls("GetModelCustomizationJob") == len(REGIONS)
    assert live.errors.records() == []


def test_job_arn_is_one_get(demo: Estate, live) -> None:
    job = demo.job("invoice-extractor-ft-2026-11")
    assert live.values(f"SELECT status FROM {JOBS} WHERE arn = ?", (job["job_arn"],)) == ["Stopped"]
    assert live.calls("GetModelCustomizationJob") == 1 and live.calls("ListModelCustomizationJobs") == 0


def test_job_status_is_pushed_as_status_equals(demo: Estate, live) -> None:
    seen = capture_params(live.scope, "bedrock", "ListModelCustomizationJobs")
    rows = live.values(f"SELECT arn FROM {JOBS} WHERE status = 'Completed'")
    assert sorted(rows) == sorted(j["job_arn"] for j in demo.jobs_with_status("Completed"))
    assert len(seen) == len(REGIONS)
    assert all(params.get("statusEquals") == "Completed" for params in seen)
    # Only completed jobs were hydrated.
    assert live.calls("GetModelCustomizationJob") == len(demo.jobs_with_status("Completed"))


def test_job_status_in_list_is_not_pushed_but_right(demo: Estate, live) -> None:
    seen = capture_params(live.scope, "bedrock", "ListModelCustomizationJobs")
    rows = live.values(f"SELECT arn FROM {JOBS} WHERE status IN ('Failed', 'Stopped')")
    expected = [j["job_arn"] for j in demo.jobs if j["status"] in ("Failed", "Stopped")]
    assert sorted(rows) == sorted(expected) and len(expected) == 2
    assert seen and all("statusEquals" not in p for p in seen)


# --- KMS ----------------------------------------------------------------------------------


def test_kms_key_id_is_a_get(demo: Estate, live) -> None:
    key = demo.key(CMK, "eu-west-1")
    rows = live.rows("SELECT arn, key_manager, aliases ->> '$[0].AliasName' AS alias FROM aws_kms_key WHERE id = ?",
                     (key.key_id,))
    assert rows == [{"arn": key.arn, "key_manager": "CUSTOMER", "alias": CMK}]
    assert live.calls("ListKeys") == 0
    assert live.calls("DescribeKey") == len(REGIONS)  # an id names no region: asked in each
    assert live.errors.records() == []


def test_kms_key_arn_is_one_get(demo: Estate, live) -> None:
    key = demo.key(CMK, "us-east-1")
    assert live.values("SELECT title FROM aws_kms_key WHERE arn = ?", (key.arn,)) == [CMK]
    assert live.calls("DescribeKey") == 1 and live.calls("ListKeys") == 0


def test_alias_target_key_id_is_pushed(demo: Estate, live) -> None:
    key = demo.key(CMK, "us-east-1")
    seen = capture_params(live.scope, "kms", "ListAliases")
    rows = live.rows("SELECT alias_name, region FROM aws_kms_alias WHERE target_key_id = ?", (key.key_id,))
    assert rows == [{"alias_name": CMK, "region": "us-east-1"}]
    assert seen and all(params.get("KeyId") == key.key_id for params in seen)
    # The key does not exist in the other region: that is an empty answer, not a failure
    # (a recorded failure would make a live query report "results incomplete").
    assert live.errors.records() == []


# --- time ranges --------------------------------------------------------------------------


@pytest.mark.parametrize(
    "where",
    [
        "creation_time > '2026-06-15'",
        "creation_time >= '2026-06-15T00:00:00Z' AND creation_time < '2026-09-30T00:00:00Z'",
        "creation_time <= '2026-09-30'",
        "creation_time BETWEEN '2026-03-01' AND '2026-08-20T23:00:00Z'",
    ],
)
def test_creation_time_range_is_pushed_and_exact(where: str, live) -> None:
    seen = capture_params(live.scope, "bedrock", "ListCustomModels")
    got = sorted(live.conn.execute(f"SELECT arn FROM {MODELS} WHERE {where}").fetchall())
    assert seen and all(("creationTimeAfter" in p) == (">" in where or "BETWEEN" in where) for p in seen)
    assert all(("creationTimeBefore" in p) == ("<" in where or "BETWEEN" in where) for p in seen)
    for params in seen:
        for bound in ("creationTimeAfter", "creationTimeBefore"):
            if bound in params:
                assert isinstance(params[bound], datetime) and params[bound].tzinfo is not None
    expected = full_then_filter(live, MODELS, where)
    assert got == expected and 0 < len(expected) < 17


def test_creation_time_bounds_are_widened_by_a_second(live) -> None:
    seen = capture_params(live.scope, "bedrock", "ListCustomModels")
    live.rows(f"SELECT arn FROM {MODELS} WHERE creation_time > '2026-06-15T10:00:00Z' AND creation_time < '2026-06-16'")
    assert seen
    for params in seen:
        assert params["creationTimeAfter"] == datetime(2026, 6, 15, 9, 59, 59, tzinfo=timezone.utc)
        assert params["creationTimeBefore"] == datetime(2026, 6, 16, 0, 0, 1, tzinfo=timezone.utc)


def test_unparseable_time_is_not_pushed(live) -> None:
    seen = capture_params(live.scope, "bedrock", "ListCustomModels")
    got = sorted(live.conn.execute(f"SELECT arn FROM {MODELS} WHERE creation_time > 'last tuesday'").fetchall())
    assert seen and all("creationTimeAfter" not in p for p in seen)
    assert got == full_then_filter(live, MODELS, "creation_time > 'last tuesday'")


def _models_at(world: World, region: str, times: list[str]) -> list:
    """Models whose creation time moto holds as canonical ISO text, so its own (textual)
    after/before comparison is exact and the test sees only what bedrock-sql pushes."""
    from moto.bedrock.models import bedrock_backends

    models = seed_models(world.session, region, len(times), prefix="timed")
    backend = bedrock_backends[DEFAULT_ACCOUNT_ID][region]
    for model, stamp in zip(models, times):
        backend.custom_models[model.model_name].creation_time = stamp
    return models


@pytest.mark.parametrize(
    "where",
    [
        # SQLite's datetime() spells a time with a space: as text, every row of that day
        # compares greater, so SQLite keeps the 13:27 row; a pushed bound must too.
        "creation_time > '2026-09-04 14:00:00'",
        "creation_time > datetime('2026-09-04 14:00:00')",
        # An offset: as text the row at 13:27Z is after 10:00-05:00 (15:00Z in time).
        "creation_time > '2026-09-04T10:00:00-05:00'",
        "creation_time < '2026-09-04T16:00:00+05:00'",
        "creation_time <= '2026-09-04 12:00:00'",
        "creation_time >= '2026-09-04T13:27:00.500Z'",
        # 'Z' right after the minutes sorts after every second of that minute.
        "creation_time < '2026-09-04T13:27Z'",
        "creation_time <= '2026-09-04T13:27'",
        "creation_time > '2026-09-04T13:27'",
    ],
)
def test_pushed_time_bound_never_drops_a_row_sqlite_keeps(world: World, scratch: str, where: str) -> None:
    _models_at(world, scratch, ["2026-09-03T23:59:59Z", "2026-09-04T13:27:00Z", "2026-09-05T00:00:00Z"])
    handle = make_live((scratch,))
    try:
        got = sorted(handle.conn.execute(f"SELECT arn FROM {MODELS} WHERE {where}").fetchall())
        expected = full_then_filter(handle, MODELS, where)
        assert got == expected
    finally:
        handle.close()


# --- joins and early stops ----------------------------------------------------------------


def test_join_models_to_keys_gets_each_key_once(demo: Estate, live) -> None:
    rows = live.rows(
        f"""SELECT m.arn AS model, k.arn AS key, k.key_manager
            FROM {MODELS} m JOIN aws_kms_key k ON k.arn = m.model_kms_key_arn"""
    )
    in_estate = {k.arn: k for k in demo.keys}
    expected = {m.model_arn: m.kms_key_arn for m in demo.models if m.kms_key_arn in in_estate}
    assert {r["model"]: r["key"] for r in rows} == expected
    assert all(r["key_manager"] == in_estate[r["key"]].key_manager for r in rows)
    assert live.calls("ListKeys") == 0
    distinct = set(expected.values())
    assert len(distinct) < len(expected)  # keys are shared, so the cache matters
    assert live.calls("DescribeKey") == len(distinct)
    # The foreign account's keys were never asked for.
    assert live.calls("DescribeKey") == sum(live.calls("DescribeKey", r) for r in REGIONS)


def test_left_join_keeps_models_without_a_visible_key(demo: Estate, live) -> None:
    rows = live.rows(
        f"""SELECT m.model_name, m.model_kms_key_arn, k.key_manager
            FROM {MODELS} m LEFT JOIN aws_kms_key k ON k.arn = m.model_kms_key_arn"""
    )
    assert len(rows) == len(demo.models)
    by_name = {r["model_name"]: r for r in rows}
    for model in demo.models:
        manager = by_name[model.model_name]["key_manager"]
        if model.case in ("bedrock_owned", "foreign_account_key"):
            assert manager is None
        else:
            assert manager == ("AWS" if model.case == "aws_managed" else "CUSTOMER")
    assert live.calls("ListKeys") == 0


def test_limit_stops_early_and_the_engine_closes(world: World, scratch: str) -> None:
    seed_models(world.session, scratch, 60, prefix="bulk")
    handle = make_live((scratch,))
    try:
        rows = handle.values(f"SELECT model_name FROM {MODELS} LIMIT 1")
        assert len(rows) == 1 and rows[0].startswith("bulk-")
    finally:
        closer = threading.Thread(target=handle.close, daemon=True)
        closer.start()
        closer.join(timeout=10)
    assert not closer.is_alive(), "the engine did not close after an early stop"
    time.sleep(0.2)
    # The scan was cancelled: nowhere near one GetCustomModel per model.
    assert handle.calls("GetCustomModel") < 20
    assert handle.calls("ListCustomModels") == 1
