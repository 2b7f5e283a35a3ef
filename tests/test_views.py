"""The shared SQL vocabulary (src/bedrock_sql/views.py) and the controls built on it.

Hand-built snapshots (tests/snapshot_builder.py): the key named in each of the four forms
the API accepts, in_use/served_by through a throughput's model_arn and desired_model_arn
and a deployment, every verdict of the imported-model control, copies judged like any
custom model. Then the views on every kind of connection: snapshot, live, shell.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from bedrock_sql.aws import AwsOptions
from bedrock_sql.catalog import schema_rows
from bedrock_sql.controls import bundled_controls, prepare_control, run_control, snapshot_run, worst_first
from bedrock_sql.engine import ErrorLog
from bedrock_sql.sql import live_connection, run_query, snapshot_connection
from bedrock_sql.views import VIEWS
from snapshot_builder import (
    ACCOUNT, DEPLOYMENTS, FOREIGN_ACCOUNT, IMPORTED_MODELS, IMPORTED_SEED, KEYS, MODELS, POLICY, ROTATION, SEED,
    THROUGHPUTS, USABLE, SnapshotBuilder, key_arn,
)

CONTROLS = {c.id: c for c in bundled_controls()}
FOREIGN_KEY = key_arn("0f0f0f0f-0000-4000-8000-000000000001", account_id=FOREIGN_ACCOUNT)
KEY_ID = "1234abcd-12ab-34cd-56ef-1234567890ab"


@pytest.fixture
def snap(tmp_path: Path) -> SnapshotBuilder:
    builder = SnapshotBuilder(tmp_path / "snapshot.db")
    builder.add_run()
    return builder


def findings(path: Path, control_id: str) -> dict:
    with snapshot_connection(path) as connection:
        found = run_control(connection, CONTROLS[control_id])
    assert len({f.resource for f in found}) == len(found), "a resource reported twice"
    return {f.resource: f for f in found}


def rows(path: Path, sql: str) -> list[dict]:
    with snapshot_connection(path) as connection:
        result = run_query(connection, sql)
        return [dict(zip(result.columns, row)) for row in result.rows]


def encryption(path: Path) -> dict[str, dict]:
    return {row["arn"]: row for row in rows(path, "SELECT * FROM bedrock_model_encryption")}


def assert_verdict(found: dict, resource: str, status: str, *names: str):
    finding = found[resource]
    assert finding.status == status, (resource, finding.status, finding.reason)
    assert finding.reason.endswith(".") and "None" not in finding.reason, finding.reason
    for name in names:
        assert name in finding.reason, (name, finding.reason)
    return finding


# --- the key in each of its four forms ----------------------------------------------------


FORMS = {
    "key_arn": lambda key: key["arn"],
    "alias_arn": lambda key: f"arn:aws:kms:us-east-1:{ACCOUNT}:alias/models",
    "alias_name": lambda key: "alias/models",
    "key_id": lambda key: KEY_ID,
}


@pytest.mark.parametrize("form", FORMS)
@pytest.mark.parametrize("add", ["add_model", "add_imported_model"])
def test_a_customer_managed_key_in_every_form_is_ok(snap: SnapshotBuilder, form: str, add: str) -> None:
    key = snap.add_key("alias/models", id=KEY_ID)
    snap.add_alias("alias/models", KEY_ID)
    model = getattr(snap, add)("m-" + form, model_kms_key_arn=FORMS[form](key))

    row = encryption(snap.path)[model["arn"]]
    assert row["key_reference_form"] == form
    assert (row["key_arn"], row["key_id"], row["key_manager"]) == (key["arn"], KEY_ID, "CUSTOMER")
    assert (row["key_alias_name"], row["key_alias_arn"]) == ("alias/models", f"arn:aws:kms:us-east-1:{ACCOUNT}:alias/models")
    assert row["key_account_id"] == ACCOUNT
    control = SEED if add == "add_model" else IMPORTED_SEED
    assert_verdict(findings(snap.path, control), model["arn"], "ok", "m-" + form, key["arn"])
    if add == "add_model":  # the neighbours resolve the key the same way
        assert_verdict(findings(snap.path, USABLE), model["arn"], "ok", "Enabled")
        assert_verdict(findings(snap.path, ROTATION), model["arn"], "ok")
        assert_verdict(findings(snap.path, POLICY), model["arn"], "ok")


@pytest.mark.parametrize("form", FORMS)
def test_an_aws_managed_key_in_every_form_is_alarm(snap: SnapshotBuilder, form: str) -> None:
    key = snap.add_key("alias/models", id=KEY_ID, key_manager="AWS")
    snap.add_alias("alias/models", KEY_ID)
    model = snap.add_model("m", model_kms_key_arn=FORMS[form](key))
    assert_verdict(findings(snap.path, SEED), model["arn"], "alarm", "AWS managed key")


def test_an_alias_that_names_no_key_is_error_and_a_failed_alias_listing_says_so(snap: SnapshotBuilder) -> None:
    dangling = snap.add_model("dangling", model_kms_key_arn="alias/nothing-here")
    west = snap.add_model("unlisted", region="eu-west-1", model_kms_key_arn="alias/models")
    snap.add_error(table_name="aws_kms_alias", operation="ListAliases", region="eu-west-1")
    found = findings(snap.path, SEED)
    assert_verdict(found, dangling["arn"], "error", "alias/nothing-here")
    assert_verdict(found, west["arn"], "error", "ListAliases", f"{ACCOUNT}/eu-west-1")


# --- the imported-model control -----------------------------------------------------------


def test_imported_model_control_every_verdict(snap: SnapshotBuilder) -> None:
    cmk = snap.add_key("alias/imports")
    aws_managed = snap.add_key("alias/aws/bedrock", key_manager="AWS")
    ok = snap.add_imported_model("with-cmk", model_kms_key_arn=cmk["arn"])
    owned = snap.add_imported_model("bedrock-owned")
    managed = snap.add_imported_model("aws-managed", model_kms_key_arn=aws_managed["arn"])
    foreign = snap.add_imported_model("foreign-key", model_kms_key_arn=FOREIGN_KEY)
    denied = snap.add_imported_model("details-denied", model_kms_key_arn=cmk["arn"])
    snap.add_error(table_name=IMPORTED_MODELS, operation="GetImportedModel", resource=denied["arn"])
    tags = snap.add_imported_model("tags-denied", model_kms_key_arn=cmk["arn"])
    snap.add_error(table_name=IMPORTED_MODELS, operation="ListTagsForResource", resource=tags["arn"])
    snap.add_error(table_name=IMPORTED_MODELS, operation="ListImportedModels", region="eu-west-1")
    # Custom models and their errors say nothing about imported models, and the reverse.
    custom = snap.add_model("custom", model_kms_key_arn=None)
    snap.add_error(table_name=MODELS, operation="ListCustomModels", region="ap-south-1")

    found = findings(snap.path, IMPORTED_SEED)
    assert set(found) == {ok["arn"], owned["arn"], managed["arn"], foreign["arn"], denied["arn"], tags["arn"],
                          f"{ACCOUNT}/eu-west-1"}
    assert_verdict(found, ok["arn"], "ok", "with-cmk", "alias/imports")
    assert_verdict(found, owned["arn"], "alarm", "bedrock-owned", "Bedrock-owned key")
    assert_verdict(found, managed["arn"], "alarm", "AWS managed key", "alias/aws/bedrock")
    assert_verdict(found, foreign["arn"], "info", FOREIGN_ACCOUNT)
    assert_verdict(found, denied["arn"], "error", "GetImportedModel", "AccessDeniedException")
    assert_verdict(found, tags["arn"], "ok")
    listing = assert_verdict(found, f"{ACCOUNT}/eu-west-1", "error", "imported models", "ListImportedModels")
    assert (listing.region, listing.dimensions["in_use"], listing.dimensions["served_by"]) == ("eu-west-1", 0, "[]")
    assert custom["arn"] not in found and custom["arn"] in findings(snap.path, SEED)
    assert f"{ACCOUNT}/eu-west-1" not in findings(snap.path, SEED)


def test_imported_model_key_unlisted_is_error(snap: SnapshotBuilder) -> None:
    model = snap.add_imported_model("keys-unlisted", model_kms_key_arn=key_arn(KEY_ID))
    snap.add_error(table_name=KEYS, operation="ListKeys")
    assert_verdict(findings(snap.path, IMPORTED_SEED), model["arn"], "error", "ListKeys")


# --- in_use and served_by -----------------------------------------------------------------


def test_served_by_throughput_model_and_desired_model_and_deployment(snap: SnapshotBuilder) -> None:
    old = snap.add_model("old")  # served by a throughput that is being moved off it
    new = snap.add_model("new")  # the throughput's desired model, and a deployment's
    idle = snap.add_model("idle")
    imported = snap.add_imported_model("imported")
    moving = snap.add_throughput(old["arn"], "moving", desired_model_arn=new["arn"])
    deployment = snap.add_deployment(new["arn"], "serving-new")
    serving_imported = snap.add_throughput(imported["arn"], "serving-imported")
    snap.add_throughput(None, "foundation-only")

    rows_by_arn = encryption(snap.path)
    assert (rows_by_arn[old["arn"]]["in_use"], json.loads(rows_by_arn[old["arn"]]["served_by"])) == (1, [moving["arn"]])
    assert json.loads(rows_by_arn[new["arn"]]["served_by"]) == sorted([moving["arn"], deployment["arn"]])
    assert (rows_by_arn[idle["arn"]]["in_use"], rows_by_arn[idle["arn"]]["served_by"]) == (0, "[]")
    assert json.loads(rows_by_arn[imported["arn"]]["served_by"]) == [serving_imported["arn"]]

    custom = findings(snap.path, SEED)
    f = assert_verdict(custom, old["arn"], "alarm", "Bedrock-owned key", "in use by", moving["arn"])
    assert (f.dimensions["in_use"], json.loads(f.dimensions["served_by"])) == (1, [moving["arn"]])
    assert_verdict(custom, new["arn"], "alarm", moving["arn"], deployment["arn"])
    f = assert_verdict(custom, idle["arn"], "alarm")
    assert "in use" not in f.reason and f.dimensions["in_use"] == 0
    assert_verdict(findings(snap.path, IMPORTED_SEED), imported["arn"], "alarm", serving_imported["arn"])


@pytest.mark.parametrize(("table", "operation"), [(THROUGHPUTS, "ListProvisionedModelThroughputs"),
                                                  (DEPLOYMENTS, "ListCustomModelDeployments")])
def test_in_use_is_unknown_not_0_when_what_serves_models_could_not_be_listed(
    snap: SnapshotBuilder, table: str, operation: str
) -> None:
    """A failed throughput (or deployment) listing in a model's unit: nothing seen serving it
    proves nothing, so in_use is NULL (unknown), never 0 -- in the view and in both CMK rules'
    rows. What was seen serving a model still counts (1), and another unit's failure is no
    concern of this one (0)."""
    cmk = snap.add_key("alias/cmk")
    unseen = snap.add_model("unseen")  # Bedrock-owned key, nothing listed serving it
    fine = snap.add_model("fine", model_kms_key_arn=cmk["arn"])
    served = snap.add_model("served")
    seen_by = snap.add_deployment(served["arn"]) if table == THROUGHPUTS else snap.add_throughput(served["arn"])
    imported = snap.add_imported_model("imported-unseen")
    elsewhere = snap.add_model("elsewhere", region="eu-west-1")
    snap.add_error(table_name=table, operation=operation)  # us-east-1 only

    by_arn = encryption(snap.path)
    for model in (unseen, fine, imported):
        row = by_arn[model["arn"]]
        assert row["in_use"] is None, (model["arn"], row["in_use"])
        assert row["serving_error"] == f"{operation} failed with AccessDeniedException", row
    assert (by_arn[served["arn"]]["in_use"], json.loads(by_arn[served["arn"]]["served_by"])) == (1, [seen_by["arn"]])
    assert (by_arn[elsewhere["arn"]]["in_use"], by_arn[elsewhere["arn"]]["serving_error"]) == (0, None)

    custom = findings(snap.path, SEED)
    for model in (unseen, fine):
        assert custom[model["arn"]].dimensions["in_use"] is None, custom[model["arn"]].dimensions
    f = assert_verdict(custom, unseen["arn"], "alarm", "whether it is in use is unknown", operation)
    assert "in use by" not in f.reason
    assert custom[served["arn"]].dimensions["in_use"] == 1
    assert custom[elsewhere["arn"]].dimensions["in_use"] == 0
    f = assert_verdict(findings(snap.path, IMPORTED_SEED), imported["arn"], "alarm", "whether it is in use is unknown")
    assert f.dimensions["in_use"] is None, f.dimensions


def test_in_use_alarms_sort_first(snap: SnapshotBuilder) -> None:
    cmk = snap.add_key("alias/cmk")
    snap.add_model("a-idle")  # first by name, but idle
    snap.add_model("b-fine", model_kms_key_arn=cmk["arn"])
    served = snap.add_model("z-served")
    snap.add_throughput(served["arn"])
    with snapshot_connection(snap.path) as connection:
        in_sql_order = run_control(connection, CONTROLS[SEED])
        prepared = prepare_control(connection, CONTROLS[SEED])
        grouped = list(worst_first(connection, prepared, snapshot_run(connection)))
    for ordered in (in_sql_order, grouped):
        assert [(f.status, f.resource.rsplit("/", 1)[-1]) for f in ordered] == [
            ("alarm", "z-served"), ("alarm", "a-idle"), ("ok", "b-fine")]


# --- copies and models made by CreateCustomModel -----------------------------------------


def test_a_copy_is_judged_like_any_custom_model(snap: SnapshotBuilder) -> None:
    cmk = snap.add_key("alias/cmk")
    source = snap.add_model("source", model_kms_key_arn=cmk["arn"])
    copy = snap.add_model("copy", region="eu-west-1", customization_type="FINE_TUNING")
    snap.add_copy_job(source["arn"], copy["arn"], region="eu-west-1")
    created = snap.add_model("created", customization_type="IMPORTED")
    kinds = {row["arn"]: row["kind"] for row in rows(snap.path, "SELECT arn, kind FROM bedrock_model")}
    assert kinds == {source["arn"]: "customization", copy["arn"]: "copy", created["arn"]: "created"}
    found = findings(snap.path, SEED)
    assert_verdict(found, source["arn"], "ok")
    assert_verdict(found, copy["arn"], "alarm", "copy", "Bedrock-owned key")
    assert_verdict(found, created["arn"], "alarm", "created")
    copy_denied = snap.add_model("copy-denied", model_kms_key_arn=cmk["arn"])
    snap.add_copy_job(source["arn"], copy_denied["arn"])
    snap.add_error(table_name=MODELS, operation="GetCustomModel", resource=copy_denied["arn"])
    assert_verdict(findings(snap.path, SEED), copy_denied["arn"], "error", "GetCustomModel")


# --- the views on every connection, and in `schema` ------------------------------------------


def test_views_columns_match_their_documentation(snap: SnapshotBuilder) -> None:
    with snapshot_connection(snap.path) as connection:
        for name, (_description, columns, _sql) in VIEWS.items():
            actual = [row[1] for row in connection.execute(f"PRAGMA table_info({name})")]
            assert actual == [c.name for c in columns], name
    documented = {(table, column) for table, column, _type, _text in schema_rows()}
    assert ("bedrock_model_encryption", "served_by") in documented
    assert [r[1] for r in schema_rows("bedrock_listing_error")] == [c.name for c in VIEWS["bedrock_listing_error"][1]]


def test_views_exist_on_a_live_connection(aws) -> None:
    kms = aws.client("kms")
    key = kms.create_key()["KeyMetadata"]
    kms.create_alias(AliasName="alias/live-models", TargetKeyId=key["KeyId"])
    errors = ErrorLog()
    with live_connection(AwsOptions(regions=("us-east-1",)), errors) as connection:
        result = run_query(connection, "SELECT count(*) FROM bedrock_model_encryption")
        assert list(result.rows) == [(0,)]
        listing = run_query(connection, "SELECT count(*) FROM bedrock_listing_error")
        assert list(listing.rows) == [(0,)]
        for name in VIEWS:
            assert list(run_query(connection, f"SELECT count(*) >= 0 FROM {name}").rows) == [(1,)], name


def test_views_exist_in_the_shell(snap: SnapshotBuilder) -> None:
    model = snap.add_model("shell-model")
    snap.add_throughput(model["arn"], "pt-shell")
    result = subprocess.run(
        [sys.executable, "-m", "bedrock_sql", "--db", str(snap.path), "shell"],
        input="SELECT model_name, in_use FROM bedrock_model_encryption;\n",
        capture_output=True, text=True, timeout=60,
    )
    assert result.returncode == 0, result.stderr
    assert "shell-model" in result.stdout and "1" in result.stdout.split("shell-model", 1)[1]


def test_a_snapshot_without_a_newer_table_answers_error_not_a_clean_pass(tmp_path: Path) -> None:
    """A snapshot written before aws_bedrock_imported_model existed: the imported-model
    control says, for each account and region, that the table was not collected."""
    snap = SnapshotBuilder(tmp_path / "old.db")
    snap.add_run(accounts=[ACCOUNT], regions=["us-east-1", "eu-west-1"], tool_version="0.1.0")
    snap.add_model("old-model")
    import sqlite3

    with sqlite3.connect(snap.path) as db:
        for table in ("aws_bedrock_imported_model", "aws_bedrock_provisioned_model_throughput"):
            db.execute(f"DROP TABLE {table}")
    db.close()
    found = findings(snap.path, IMPORTED_SEED)
    assert set(found) == {f"{ACCOUNT}/us-east-1", f"{ACCOUNT}/eu-west-1"}
    assert_verdict(found, f"{ACCOUNT}/us-east-1", "error", "did not collect aws_bedrock_imported_model", "0.1.0")
    assert_verdict(findings(snap.path, SEED), snap.path and encryption(snap.path).popitem()[0], "alarm")


def test_collect_writes_the_views_into_the_snapshot(aws, tmp_path: Path) -> None:
    """Tools that open the file themselves (sqlite3, Datasette) see the views too."""
    import sqlite3

    from bedrock_sql.accounts import resolve_scope
    from bedrock_sql.snapshot import collect

    path = tmp_path / "collected.db"
    collect(resolve_scope(AwsOptions(regions=("us-east-1",))), path, max_workers=2)
    with sqlite3.connect(path) as db:
        names = {name for (name,) in db.execute("SELECT name FROM sqlite_schema WHERE type = 'view'")}
        assert names == set(VIEWS)
        assert db.execute("SELECT count(*) FROM bedrock_model_encryption").fetchone() == (0,)
    db.close()
