"""The bundled controls, on hand-built snapshots: every status each one can give.

Each control's header lists the statuses it gives and when; every case is built here
row by row (tests/snapshot_builder.py) and the exact status of each resource is asserted,
with a reason that is a sentence naming the key or the cause.
"""

from __future__ import annotations

import io
from pathlib import Path

import pytest

from bedrock_sql import estate as estate_module
from bedrock_sql.controls import REQUIRED_COLUMNS, STATUSES, Finding, bundled_controls, load_controls, run_control
from bedrock_sql.sql import run_query, snapshot_connection
from snapshot_builder import (
    ACCOUNT, FOREIGN_ACCOUNT, IMPORTED_MODELS, IMPORTED_SEED, JOB_CMK, JOB_VPC, JOBS, KEYS, MODELS, POLICY, REGION,
    ROTATION, SEED, USABLE, SnapshotBuilder, key_arn,
)

ALL_IDS = {SEED, IMPORTED_SEED, USABLE, ROTATION, POLICY, JOB_CMK, JOB_VPC}
MODEL_CONTROLS = (SEED, USABLE, ROTATION, POLICY)
JOB_CONTROLS = (JOB_CMK, JOB_VPC)

CONTROLS = {c.id: c for c in bundled_controls()}
FOREIGN_KEY = key_arn("0f0f0f0f-0000-4000-8000-000000000001", account_id=FOREIGN_ACCOUNT)


# --- helpers ------------------------------------------------------------------------------


@pytest.fixture
def snap(tmp_path: Path) -> SnapshotBuilder:
    builder = SnapshotBuilder(tmp_path / "snapshot.db")
    builder.add_run()
    return builder


def run(path: Path, control_id: str) -> list[Finding]:
    with snapshot_connection(path) as connection:
        return run_control(connection, CONTROLS[control_id])


def by_resource(path: Path, control_id: str) -> dict[str, Finding]:
    """The findings of one control by resource; a resource must appear exactly once."""
    findings = run(path, control_id)
    resources = [f.resource for f in findings]
    duplicates = sorted({r for r in resources if resources.count(r) > 1})
    assert not duplicates, f"{control_id}: resources reported more than once: {duplicates}"
    for finding in findings:
        assert finding.status in STATUSES
        assert_sentence(finding.reason)
    return {f.resource: f for f in findings}


def assert_sentence(reason, *names: str) -> None:
    assert isinstance(reason, str) and reason.strip(), f"reason is empty: {reason!r}"
    assert reason.endswith("."), f"reason does not end with a period: {reason!r}"
    assert "None" not in reason and "  " not in reason, reason
    for name in names:
        assert name in reason, f"{name!r} not named in reason {reason!r}"


def assert_finding(findings: dict[str, Finding], resource: str, status: str, *names: str) -> Finding:
    assert resource in findings, f"no finding for {resource}; got {sorted(findings)}"
    finding = findings[resource]
    assert finding.status == status, f"{resource}: {finding.status} ({finding.reason}), expected {status}"
    assert_sentence(finding.reason, *names)
    return finding


# --- the control files themselves ---------------------------------------------------------


def test_the_bundled_controls_and_their_headers() -> None:
    assert set(CONTROLS) == ALL_IDS
    assert CONTROLS[SEED].severity == "high"
    for control in CONTROLS.values():
        assert control.title and control.description and control.remediation
        # References are URLs only: the status legend under the header is not part of them.
        assert control.references, control.id
        assert all(r.startswith("https://") for r in control.references), (control.id, control.references)


# --- bedrock_custom_model_encrypted_with_cmk (the seed rule) ------------------------------


def test_seed_rule_ok_alarm_info(snap: SnapshotBuilder) -> None:
    cmk = snap.add_key("alias/bedrock/custom-models")
    aws_managed = snap.add_key("alias/aws/bedrock", key_manager="AWS")
    ok = snap.add_model("with-cmk", model_kms_key_arn=cmk["arn"])
    owned = snap.add_model("bedrock-owned", model_kms_key_arn=None)
    managed = snap.add_model("aws-managed", model_kms_key_arn=aws_managed["arn"])
    foreign = snap.add_model("foreign-key", model_kms_key_arn=FOREIGN_KEY)

    findings = by_resource(snap.path, SEED)
    assert len(findings) == 4
    f = assert_finding(findings, ok["arn"], "ok", "with-cmk", "alias/bedrock/custom-models")
    assert (f.account_id, f.region) == (ACCOUNT, "us-east-1")
    assert f.dimensions["kms_key_arn"] == cmk["arn"]
    assert_finding(findings, owned["arn"], "alarm", "bedrock-owned", "Bedrock-owned key")
    assert_finding(findings, managed["arn"], "alarm", "aws-managed", "AWS managed key", "alias/aws/bedrock")
    assert_finding(findings, foreign["arn"], "info", "foreign-key", FOREIGN_ACCOUNT)


def test_seed_rule_model_detail_error_is_error_never_ok(snap: SnapshotBuilder) -> None:
    cmk = snap.add_key("alias/cmk")
    # The key is known and customer managed, but GetCustomModel failed for this model.
    hidden = snap.add_model("details-denied", model_kms_key_arn=cmk["arn"])
    # What the collector keeps when GetCustomModel fails: the summary, without a key.
    summary_only = snap.add_model("details-throttled", model_kms_key_arn=None)
    fine = snap.add_model("fine", model_kms_key_arn=cmk["arn"])
    snap.add_error(table_name=MODELS, operation="GetCustomModel", resource=hidden["arn"])
    snap.add_error(table_name=MODELS, operation="GetCustomModel", resource=summary_only["arn"],
                   error_code="ThrottlingException", message="Rate exceeded")

    findings = by_resource(snap.path, SEED)
    assert_finding(findings, hidden["arn"], "error", "details-denied", "GetCustomModel", "AccessDeniedException")
    assert_finding(findings, summary_only["arn"], "error", "details-throttled", "GetCustomModel", "ThrottlingException")
    assert_finding(findings, fine["arn"], "ok")


def test_seed_rule_listing_error_gives_an_error_row_for_the_account_region(snap: SnapshotBuilder) -> None:
    cmk = snap.add_key("alias/cmk")
    model = snap.add_model("east", model_kms_key_arn=cmk["arn"])
    snap.add_error(table_name=MODELS, operation="ListCustomModels", region="eu-west-1", resource=None)
    # An error of another table in another region says nothing about models.
    snap.add_error(table_name=JOBS, operation="ListModelCustomizationJobs", region="ap-south-1")

    findings = by_resource(snap.path, SEED)
    assert set(findings) == {model["arn"], f"{ACCOUNT}/eu-west-1"}
    assert_finding(findings, model["arn"], "ok")
    row = assert_finding(findings, f"{ACCOUNT}/eu-west-1", "error", "ListCustomModels", "AccessDeniedException",
                         f"{ACCOUNT}/eu-west-1")
    assert (row.account_id, row.region) == (ACCOUNT, "eu-west-1")


def test_seed_rule_same_account_key_missing(snap: SnapshotBuilder) -> None:
    # us-east-1: the key is not in the snapshot because ListKeys failed for the unit.
    missing_east = key_arn("11111111-1111-4111-8111-111111111111")
    east = snap.add_model("keys-unlisted", model_kms_key_arn=missing_east)
    snap.add_error(table_name=KEYS, operation="ListKeys", resource=None)
    # eu-west-1: the key is simply not there (no error): its manager is unknown, never ok.
    missing_west = key_arn("22222222-2222-4222-8222-222222222222", region="eu-west-1")
    west = snap.add_model("key-gone", region="eu-west-1", model_kms_key_arn=missing_west)

    findings = by_resource(snap.path, SEED)
    assert_finding(findings, east["arn"], "error", "keys-unlisted", "ListKeys", f"{ACCOUNT}/us-east-1")
    assert_finding(findings, west["arn"], "error", "key-gone", missing_west)


def test_seed_rule_ignores_models_owned_by_another_account(snap: SnapshotBuilder) -> None:
    mine = snap.add_model("mine")
    shared = snap.add_model("shared-with-me", owner_account_id=FOREIGN_ACCOUNT)
    for control_id in MODEL_CONTROLS:
        findings = by_resource(snap.path, control_id)
        assert mine["arn"] in findings, control_id
        assert shared["arn"] not in findings, control_id


def test_seed_rule_tag_read_failure_does_not_hide_the_key(snap: SnapshotBuilder) -> None:
    """ListTagsForResource failing costs tags, not the key: the verdict stays what the key says."""
    cmk = snap.add_key("alias/cmk")
    ok = snap.add_model("tags-denied-cmk", model_kms_key_arn=cmk["arn"])
    owned = snap.add_model("tags-denied-owned", model_kms_key_arn=None)
    for model in (ok, owned):
        snap.add_error(table_name=MODELS, operation="ListTagsForResource", resource=model["arn"])
    findings = by_resource(snap.path, SEED)
    assert_finding(findings, ok["arn"], "ok", "alias/cmk")
    assert_finding(findings, owned["arn"], "alarm", "Bedrock-owned key")


# --- bedrock_custom_model_cmk_usable --------------------------------------------------------


def test_usable_every_status(snap: SnapshotBuilder) -> None:
    models = {}
    for state in ("Enabled", "Disabled", "PendingDeletion", "PendingImport", "Unavailable"):
        key = snap.add_key(f"alias/{state.lower()}", key_state=state)
        models[state] = snap.add_model(f"model-{state.lower()}", model_kms_key_arn=key["arn"])
    deleted_key = key_arn("33333333-3333-4333-8333-333333333333")
    deleted = snap.add_model("model-key-deleted", model_kms_key_arn=deleted_key)
    owned = snap.add_model("model-bedrock-owned")
    foreign = snap.add_model("model-foreign", model_kms_key_arn=FOREIGN_KEY)

    findings = by_resource(snap.path, USABLE)
    assert len(findings) == 8
    assert_finding(findings, models["Enabled"]["arn"], "ok", "alias/enabled", "Enabled")
    assert_finding(findings, models["Disabled"]["arn"], "alarm", "alias/disabled", "Disabled")
    pending = assert_finding(findings, models["PendingDeletion"]["arn"], "alarm", "alias/pendingdeletion",
                             "pending deletion", "2026-12-28T12:00:00Z")
    assert pending.dimensions["key_state"] == "PendingDeletion"
    assert_finding(findings, models["PendingImport"]["arn"], "alarm", "alias/pendingimport", "PendingImport")
    assert_finding(findings, models["Unavailable"]["arn"], "alarm", "alias/unavailable", "Unavailable")
    assert_finding(findings, deleted["arn"], "alarm", deleted_key, "no longer exists")
    assert_finding(findings, owned["arn"], "skip", "model-bedrock-owned", "Bedrock-owned key")
    assert_finding(findings, foreign["arn"], "info", FOREIGN_ACCOUNT)


def test_usable_errors(snap: SnapshotBuilder) -> None:
    key = snap.add_key("alias/cmk")
    denied = snap.add_model("details-denied", model_kms_key_arn=key["arn"])
    snap.add_error(table_name=MODELS, operation="GetCustomModel", resource=denied["arn"])
    # The key is missing, but the keys of the unit could not be listed: unknown, not "deleted".
    unlisted_key = key_arn("44444444-4444-4444-8444-444444444444", region="eu-west-1")
    unlisted = snap.add_model("keys-unlisted", region="eu-west-1", model_kms_key_arn=unlisted_key)
    snap.add_error(table_name=KEYS, operation="ListKeys", region="eu-west-1")
    snap.add_error(table_name=MODELS, operation="ListCustomModels", region="ap-northeast-1")

    findings = by_resource(snap.path, USABLE)
    assert_finding(findings, denied["arn"], "error", "details-denied", "GetCustomModel")
    assert_finding(findings, unlisted["arn"], "error", unlisted_key, "ListKeys")
    assert_finding(findings, f"{ACCOUNT}/ap-northeast-1", "error", "ListCustomModels")


# --- bedrock_custom_model_cmk_rotation_enabled ---------------------------------------------


def test_rotation_every_status(snap: SnapshotBuilder) -> None:
    on = snap.add_key("alias/rotated", key_rotation_enabled=1)
    off = snap.add_key("alias/not-rotated", key_rotation_enabled=0)
    aws_managed = snap.add_key("alias/aws/bedrock", key_manager="AWS")
    external = snap.add_key("alias/imported", origin="EXTERNAL", key_rotation_enabled=None)
    rsa = snap.add_key("alias/rsa", key_spec="RSA_2048", key_usage="ENCRYPT_DECRYPT", key_rotation_enabled=None)
    unread = snap.add_key("alias/unread", key_rotation_enabled=None)
    snap.add_error(table_name=KEYS, operation="GetKeyRotationStatus", resource=unread["arn"])
    models = {
        name: snap.add_model(f"model-{name}", model_kms_key_arn=key["arn"] if key else None)
        for name, key in {
            "on": on, "off": off, "aws": aws_managed, "external": external, "rsa": rsa, "unread": unread, "owned": None,
        }.items()
    }
    foreign = snap.add_model("model-foreign", model_kms_key_arn=FOREIGN_KEY)
    detail = snap.add_model("model-detail-error", model_kms_key_arn=on["arn"])
    snap.add_error(table_name=MODELS, operation="GetCustomModel", resource=detail["arn"])
    snap.add_error(table_name=MODELS, operation="ListCustomModels", region="eu-west-1")

    findings = by_resource(snap.path, ROTATION)
    assert len(findings) == 10
    assert_finding(findings, models["on"]["arn"], "ok", "alias/rotated", "on")
    assert_finding(findings, models["off"]["arn"], "alarm", "alias/not-rotated", "off")
    assert_finding(findings, models["aws"]["arn"], "skip", "alias/aws/bedrock", "AWS managed")
    assert_finding(findings, models["external"]["arn"], "skip", "alias/imported", "EXTERNAL")
    assert_finding(findings, models["rsa"]["arn"], "skip", "alias/rsa", "RSA_2048")
    assert_finding(findings, models["unread"]["arn"], "error", "alias/unread", "GetKeyRotationStatus")
    assert_finding(findings, models["owned"]["arn"], "skip", "Bedrock-owned key")
    assert_finding(findings, foreign["arn"], "info", FOREIGN_ACCOUNT)
    assert_finding(findings, detail["arn"], "error", "GetCustomModel")
    assert_finding(findings, f"{ACCOUNT}/eu-west-1", "error", "ListCustomModels")


def test_rotation_pending_deletion_key_without_status_is_skip(snap: SnapshotBuilder) -> None:
    # KMS refuses GetKeyRotationStatus on a key pending deletion (KMSInvalidStateException):
    # the collector stores NULL and records nothing.
    key = snap.add_key("alias/going", key_state="PendingDeletion", key_rotation_enabled=None)
    model = snap.add_model("model-going", model_kms_key_arn=key["arn"])
    findings = by_resource(snap.path, ROTATION)
    assert_finding(findings, model["arn"], "skip", "alias/going", "pending deletion")


def test_key_errors_never_duplicate_a_model(snap: SnapshotBuilder) -> None:
    """A unit-wide key error and a key-level error together still give one row per model."""
    unread = snap.add_key("alias/unread", key_rotation_enabled=None)
    model = snap.add_model("model-unread", model_kms_key_arn=unread["arn"])
    missing = snap.add_model("model-missing-key", model_kms_key_arn=key_arn("55555555-5555-4555-8555-555555555555"))
    snap.add_error(table_name=KEYS, operation="GetKeyRotationStatus", resource=unread["arn"])
    snap.add_error(table_name=KEYS, operation="ListKeys", resource=None)
    snap.add_error(table_name=KEYS, operation="GetKeyPolicy", resource=missing["model_kms_key_arn"])
    for control_id in MODEL_CONTROLS:
        findings = by_resource(snap.path, control_id)  # asserts one row per resource
        assert {model["arn"], missing["arn"]} <= set(findings), control_id
    assert_finding(by_resource(snap.path, ROTATION), model["arn"], "error", "GetKeyRotationStatus")
    assert by_resource(snap.path, USABLE)[missing["arn"]].status == "error"


# --- the rules on a model's key judge imported models too ---------------------------------


def test_key_rules_judge_imported_models(snap: SnapshotBuilder) -> None:
    """An imported model's CMK is judged like a custom model's: usable, rotated, not public."""
    good = snap.add_key("alias/good")
    going = snap.add_key("alias/going", key_state="PendingDeletion", key_rotation_enabled=None)
    unrotated = snap.add_key("alias/unrotated", key_rotation_enabled=0)
    public = snap.add_key("alias/public", policy=_policy(ROOT, {"Sid": "OpenToAll", "Effect": "Allow", "Principal": "*",
                                                                "Action": "kms:*", "Resource": "*"}))
    models = {name: snap.add_imported_model(f"imported-{name}", model_kms_key_arn=key["arn"])
              for name, key in (("good", good), ("going", going), ("unrotated", unrotated), ("public", public))}
    owned = snap.add_imported_model("imported-owned", model_kms_key_arn=None)
    unreadable = snap.add_imported_model("imported-unreadable", model_kms_key_arn=None)
    snap.add_error(table_name=IMPORTED_MODELS, operation="GetImportedModel", resource=unreadable["arn"])

    usable, rotation, policy = (by_resource(snap.path, c) for c in (USABLE, ROTATION, POLICY))
    assert_finding(usable, models["good"]["arn"], "ok", "alias/good", "imported-good")
    assert_finding(usable, models["going"]["arn"], "alarm", "alias/going", "pending deletion")
    assert_finding(rotation, models["good"]["arn"], "ok", "alias/good")
    assert_finding(rotation, models["unrotated"]["arn"], "alarm", "alias/unrotated", "imported-unrotated")
    assert_finding(policy, models["good"]["arn"], "ok", "alias/good")
    assert_finding(policy, models["public"]["arn"], "alarm", "alias/public", "OpenToAll")
    for findings in (usable, rotation, policy):
        assert_finding(findings, owned["arn"], "skip", "imported-owned", "Bedrock-owned key")
        assert_finding(findings, unreadable["arn"], "error", "imported-unreadable", "GetImportedModel")


def test_key_rules_give_one_error_row_when_both_model_listings_fail(snap: SnapshotBuilder) -> None:
    snap.add_error(table_name=IMPORTED_MODELS, operation="ListImportedModels")
    snap.add_error(table_name=MODELS, operation="ListCustomModels", region="eu-west-1")
    snap.add_error(table_name=IMPORTED_MODELS, operation="ListImportedModels", region="eu-west-1")
    for control_id in (USABLE, ROTATION, POLICY):
        findings = by_resource(snap.path, control_id)  # asserts one row per resource
        assert_finding(findings, f"{ACCOUNT}/{REGION}", "error", "imported models", "ListImportedModels")
        both = assert_finding(findings, f"{ACCOUNT}/eu-west-1", "error", "custom and imported models",
                              "ListCustomModels", "ListImportedModels")
        assert both.region == "eu-west-1"
    # The seed rules each keep their own table's failure.
    assert f"{ACCOUNT}/{REGION}" not in by_resource(snap.path, SEED)
    assert_finding(by_resource(snap.path, IMPORTED_SEED), f"{ACCOUNT}/{REGION}", "error", "ListImportedModels")


# --- bedrock_customization_job_output_encrypted_with_cmk -----------------------------------


def test_job_output_cmk_every_status(snap: SnapshotBuilder) -> None:
    cmk = snap.add_key("alias/cmk")
    aws_managed = snap.add_key("alias/aws/bedrock", key_manager="AWS")
    stopped = snap.add_job("job-stopped", status="Stopped")
    failed = snap.add_job("job-failed", status="Failed", output_model_kms_key_arn=None)
    no_key = snap.add_job("job-no-key", status="InProgress", output_model_kms_key_arn=None)
    customer = snap.add_job("job-cmk", output_model_kms_key_arn=cmk["arn"])
    managed = snap.add_job("job-aws", output_model_kms_key_arn=aws_managed["arn"])
    foreign = snap.add_job("job-foreign", output_model_kms_key_arn=FOREIGN_KEY)
    gone_key = key_arn("66666666-6666-4666-8666-666666666666")
    gone = snap.add_job("job-key-gone", output_model_kms_key_arn=gone_key)
    # GetModelCustomizationJob failed: the collector keeps the listing's summary (no key).
    detail = snap.add_job("job-detail-error", status="InProgress", output_model_kms_key_arn=None)
    snap.add_error(table_name=JOBS, operation="GetModelCustomizationJob", resource=detail["arn"])
    snap.add_error(table_name=JOBS, operation="ListModelCustomizationJobs", region="eu-west-1")

    findings = by_resource(snap.path, JOB_CMK)
    assert len(findings) == 9
    assert_finding(findings, stopped["arn"], "skip", "job-stopped", "Stopped")
    assert_finding(findings, failed["arn"], "skip", "job-failed", "Failed")
    assert_finding(findings, no_key["arn"], "alarm", "job-no-key", "Bedrock-owned key")
    assert_finding(findings, customer["arn"], "ok", "job-cmk", "alias/cmk")
    assert_finding(findings, managed["arn"], "alarm", "job-aws", "AWS managed key", "alias/aws/bedrock")
    assert_finding(findings, foreign["arn"], "info", "job-foreign", FOREIGN_ACCOUNT)
    assert_finding(findings, gone["arn"], "error", "job-key-gone", gone_key)
    assert_finding(findings, detail["arn"], "error", "job-detail-error", "GetModelCustomizationJob")
    row = assert_finding(findings, f"{ACCOUNT}/eu-west-1", "error", "ListModelCustomizationJobs")
    assert row.region == "eu-west-1"


# --- bedrock_customization_job_in_vpc ------------------------------------------------------


def test_job_in_vpc_every_status(snap: SnapshotBuilder) -> None:
    in_vpc = snap.add_job(
        "job-vpc", vpc_config={"subnetIds": ["subnet-0a1", "subnet-0b2"], "securityGroupIds": ["sg-01"]}
    )
    no_vpc = snap.add_job("job-no-vpc", vpc_config=None)
    empty = snap.add_job("job-empty-vpc", vpc_config={"subnetIds": [], "securityGroupIds": []})
    detail = snap.add_job("job-detail-error", vpc_config=None)
    snap.add_error(table_name=JOBS, operation="GetModelCustomizationJob", resource=detail["arn"])
    snap.add_error(table_name=JOBS, operation="ListModelCustomizationJobs", region="eu-west-1")
    # Model errors say nothing about jobs.
    snap.add_error(table_name=MODELS, operation="ListCustomModels", region="ap-south-1")

    findings = by_resource(snap.path, JOB_VPC)
    assert set(findings) == {in_vpc["arn"], no_vpc["arn"], empty["arn"], detail["arn"], f"{ACCOUNT}/eu-west-1"}
    assert_finding(findings, in_vpc["arn"], "ok", "job-vpc", "subnet-0a1", "subnet-0b2")
    assert_finding(findings, no_vpc["arn"], "alarm", "job-no-vpc", "without a VPC")
    assert_finding(findings, empty["arn"], "alarm", "job-empty-vpc")
    assert_finding(findings, detail["arn"], "error", "job-detail-error", "GetModelCustomizationJob")
    assert_finding(findings, f"{ACCOUNT}/eu-west-1", "error", "ListModelCustomizationJobs")


@pytest.mark.parametrize("status", ["Stopped", "Stopping", "Failed"])
def test_both_job_controls_skip_a_job_that_trains_no_model(snap: SnapshotBuilder, status: str) -> None:
    # Neither network nor key settings matter for a job that produces nothing: the two job
    # controls agree (the VPC one used to alarm where the key one skipped).
    job = snap.add_job(f"job-{status.lower()}", status=status, vpc_config=None, output_model_kms_key_arn=None)
    for control_id in JOB_CONTROLS:
        assert_finding(by_resource(snap.path, control_id), job["arn"], "skip", job["job_name"], status)


def test_job_tag_read_failure_does_not_hide_the_job(snap: SnapshotBuilder) -> None:
    cmk = snap.add_key("alias/cmk")
    job = snap.add_job("job-tags-denied", output_model_kms_key_arn=cmk["arn"],
                       vpc_config={"subnetIds": ["subnet-1"], "securityGroupIds": ["sg-1"]})
    snap.add_error(table_name=JOBS, operation="ListTagsForResource", resource=job["arn"])
    assert_finding(by_resource(snap.path, JOB_CMK), job["arn"], "ok", "alias/cmk")
    assert_finding(by_resource(snap.path, JOB_VPC), job["arn"], "ok", "subnet-1")


# --- bedrock_custom_model_cmk_policy_not_public -------------------------------------------


def _policy(*statements) -> dict:
    return {"Version": "2012-10-17", "Statement": list(statements)}


ROOT = {"Sid": "Root", "Effect": "Allow", "Principal": {"AWS": f"arn:aws:iam::{ACCOUNT}:root"},
        "Action": "kms:*", "Resource": "*"}


def test_policy_not_public_every_status(snap: SnapshotBuilder) -> None:
    cases = {
        "star": _policy(ROOT, {"Sid": "OpenToAll", "Effect": "Allow", "Principal": "*", "Action": "kms:*", "Resource": "*"}),
        "aws-star": _policy({"Sid": "AwsStar", "Effect": "Allow", "Principal": {"AWS": "*"},
                             "Action": "kms:Decrypt", "Resource": "*"}),
        "aws-list": _policy({"Sid": "ListWithStar", "Effect": "Allow",
                             "Principal": {"AWS": [f"arn:aws:iam::{ACCOUNT}:role/Admin", "*"]},
                             "Action": "kms:Decrypt", "Resource": "*"}),
        "conditioned": _policy(ROOT, {"Sid": "ViaBedrock", "Effect": "Allow", "Principal": {"AWS": "*"},
                                      "Action": ["kms:Decrypt", "kms:GenerateDataKey"], "Resource": "*",
                                      "Condition": {"StringEquals": {"kms:CallerAccount": ACCOUNT,
                                                                     "kms:ViaService": "bedrock.us-east-1.amazonaws.com"}}}),
        "deny-star": _policy(ROOT, {"Sid": "DenyAll", "Effect": "Deny", "Principal": "*", "Action": "kms:*", "Resource": "*"}),
        "single-public": {"Version": "2012-10-17",
                          "Statement": {"Sid": "SingleOpen", "Effect": "Allow", "Principal": "*",
                                        "Action": "kms:*", "Resource": "*"}},
        "single-private": {"Version": "2012-10-17", "Statement": ROOT},
        "default": None,  # the builder's default: the account root only
    }
    models = {}
    for name, policy in cases.items():
        key = snap.add_key(f"alias/{name}", **({"policy": policy} if policy is not None else {}))
        models[name] = snap.add_model(f"model-{name}", model_kms_key_arn=key["arn"])
    aws_managed = snap.add_key("alias/aws/bedrock", key_manager="AWS")
    models["aws"] = snap.add_model("model-aws", model_kms_key_arn=aws_managed["arn"])
    unreadable = snap.add_key("alias/unreadable", policy=None)
    snap.add_error(table_name=KEYS, operation="GetKeyPolicy", resource=unreadable["arn"])
    models["unreadable"] = snap.add_model("model-unreadable", model_kms_key_arn=unreadable["arn"])
    no_policy = snap.add_key("alias/no-policy", policy=None)
    models["no-policy"] = snap.add_model("model-no-policy", model_kms_key_arn=no_policy["arn"])
    models["owned"] = snap.add_model("model-owned")
    foreign = snap.add_model("model-foreign", model_kms_key_arn=FOREIGN_KEY)
    detail = snap.add_model("model-detail-error", model_kms_key_arn=None)
    snap.add_error(table_name=MODELS, operation="GetCustomModel", resource=detail["arn"])
    snap.add_error(table_name=MODELS, operation="ListCustomModels", region="eu-west-1")

    findings = by_resource(snap.path, POLICY)
    assert len(findings) == len(models) + 3
    f = lambda name: models[name]["arn"]  # noqa: E731
    assert_finding(findings, f("star"), "alarm", "alias/star", "model-star", "OpenToAll")
    assert "Root" not in findings[f("star")].reason
    assert_finding(findings, f("aws-star"), "alarm", "alias/aws-star", "AwsStar")
    assert_finding(findings, f("aws-list"), "alarm", "alias/aws-list", "ListWithStar")
    assert_finding(findings, f("conditioned"), "ok", "alias/conditioned")
    assert_finding(findings, f("deny-star"), "ok", "alias/deny-star")
    assert_finding(findings, f("single-public"), "alarm", "alias/single-public", "SingleOpen")
    assert_finding(findings, f("single-private"), "ok", "alias/single-private")
    assert_finding(findings, f("default"), "ok", "alias/default")
    assert_finding(findings, f("aws"), "skip", "alias/aws/bedrock", "AWS managed")
    assert_finding(findings, f("unreadable"), "error", "alias/unreadable", "could not be read")
    assert_finding(findings, f("no-policy"), "error", "alias/no-policy")
    assert_finding(findings, f("owned"), "skip", "Bedrock-owned key")
    assert_finding(findings, foreign["arn"], "info", FOREIGN_ACCOUNT)
    assert_finding(findings, detail["arn"], "error", "GetCustomModel")
    assert_finding(findings, f"{ACCOUNT}/eu-west-1", "error", "ListCustomModels")


def test_policy_names_every_public_statement(snap: SnapshotBuilder) -> None:
    policy = _policy(
        ROOT,
        {"Sid": "First", "Effect": "Allow", "Principal": "*", "Action": "kms:Decrypt", "Resource": "*"},
        {"Effect": "Allow", "Principal": {"AWS": "*"}, "Action": "kms:Encrypt", "Resource": "*"},
    )
    key = snap.add_key("alias/two-open", policy=policy)
    model = snap.add_model("model-two-open", model_kms_key_arn=key["arn"])
    assert_finding(by_resource(snap.path, POLICY), model["arn"], "alarm", "\"First\" (#2)", "statement #3")


def _open_to_all(condition: dict | None = None) -> dict:
    statement = {"Sid": "Everyone", "Effect": "Allow", "Principal": {"AWS": "*"},
                 "Action": ["kms:Decrypt", "kms:GenerateDataKey"], "Resource": "*"}
    return _policy(ROOT, {**statement, **({"Condition": condition} if condition else {})})


@pytest.mark.parametrize(
    "condition, status",
    [
        # Conditions that say nothing about who the caller is: still everyone (issue 10's false pass).
        ({"Bool": {"aws:SecureTransport": "true"}}, "alarm"),
        ({"IpAddress": {"aws:SourceIp": "203.0.113.0/24"}}, "alarm"),
        ({"StringEquals": {"kms:ViaService": "bedrock.us-east-1.amazonaws.com"}}, "alarm"),
        ({"StringEquals": {"kms:EncryptionContext:aws:bedrock:arn": "arn:aws:bedrock:us-east-1:1:x"}}, "alarm"),
        ({"StringLike": {"kms:CallerAccount": "*"}}, "alarm"),  # a wildcard value names nobody
        # Conditions that tie the caller to known accounts or an organization.
        ({"StringEquals": {"kms:CallerAccount": ACCOUNT}}, "ok"),
        ({"StringEquals": {"aws:PrincipalOrgID": "o-a1b2c3d4e5"}}, "ok"),
        ({"StringEqualsIgnoreCase": {"AWS:PrincipalAccount": [ACCOUNT]}}, "ok"),
        ({"ArnLike": {"aws:PrincipalArn": f"arn:aws:iam::{ACCOUNT}:role/*"}}, "ok"),
    ],
    ids=["tls", "source-ip", "via-service", "encryption-context", "caller-like-star",
         "caller-account", "org-id", "principal-account-ignorecase", "principal-arn-like"],
)
def test_policy_public_unless_a_condition_names_the_caller(snap: SnapshotBuilder, condition, status) -> None:
    key = snap.add_key("alias/shared", policy=_open_to_all(condition))
    model = snap.add_model("model-shared", model_kms_key_arn=key["arn"])
    finding = assert_finding(by_resource(snap.path, POLICY), model["arn"], status, "alias/shared", "model-shared")
    if status == "alarm":  # the reason names the statement and why it is public
        assert "Everyone" in finding.reason and "*" in finding.reason, finding.reason


def test_policy_that_is_no_policy_document_is_an_error(snap: SnapshotBuilder) -> None:
    key = snap.add_key("alias/odd", policy={"Version": "2012-10-17", "Statement": "not a statement"})
    model = snap.add_model("model-odd", model_kms_key_arn=key["arn"])
    assert_finding(by_resource(snap.path, POLICY), model["arn"], "error", "alias/odd")


def test_rotation_status_failure_is_an_error_not_off(snap: SnapshotBuilder) -> None:
    # What the collector stores when GetKeyRotationStatus fails: 0 (so no ported query reads
    # it as on) and an error row naming the key.
    key = snap.add_key("alias/unknown-rotation", key_rotation_enabled=0)
    snap.add_error(table_name=KEYS, operation="GetKeyRotationStatus", resource=key["arn"])
    model = snap.add_model("model-unknown-rotation", model_kms_key_arn=key["arn"])
    finding = assert_finding(by_resource(snap.path, ROTATION), model["arn"], "error", "alias/unknown-rotation")
    assert "GetKeyRotationStatus" in finding.reason


# --- every control on an empty snapshot and on the demo snapshot ---------------------------


def test_every_control_on_an_empty_snapshot(snap: SnapshotBuilder) -> None:
    with snapshot_connection(snap.path) as connection:
        for control in load_controls():
            result = run_query(connection, control.sql)
            assert set(REQUIRED_COLUMNS) <= set(result.columns), control.id
            assert list(result.rows) == [], control.id
            assert run_control(connection, control) == []


@pytest.fixture(scope="module")
def demo(tmp_path_factory: pytest.TempPathFactory):
    """The demo snapshot (moto, offline) and the estate seeded for it."""
    from bedrock_sql.demo import run_demo

    seeded = []
    original = estate_module.seed_demo_estate

    def capture(*args, **kwargs):
        seeded.append(original(*args, **kwargs))
        return seeded[-1]

    path = tmp_path_factory.mktemp("demo") / "d.db"
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(estate_module, "seed_demo_estate", capture)
        assert run_demo(path, io.StringIO()) == 0
    assert len(seeded) == 1
    return path, seeded[0]


def test_every_control_on_the_demo_snapshot(demo) -> None:
    path, estate = demo
    with snapshot_connection(path) as connection:
        for control in load_controls():
            result = run_query(connection, control.sql)
            assert set(REQUIRED_COLUMNS) <= set(result.columns), control.id
    for control_id in ALL_IDS:
        findings = by_resource(path, control_id)  # valid statuses, sentences, one row per resource
        assert findings or control_id == IMPORTED_SEED, control_id
        assert not [f for f in findings.values() if f.status == "error"], control_id
    with snapshot_connection(path) as connection:
        imported = {arn for (arn,) in run_query(connection, "SELECT arn FROM aws_bedrock_imported_model").rows}
    assert set(by_resource(path, IMPORTED_SEED)) == imported
    model_arns = {m.model_arn for m in estate.models}
    assert set(by_resource(path, SEED)) == model_arns
    for control_id in (USABLE, ROTATION, POLICY):  # the rules on a model's key judge imported models too
        assert set(by_resource(path, control_id)) == model_arns | imported, control_id
    job_arns = {j["job_arn"] for j in estate.jobs}
    for control_id in JOB_CONTROLS:
        assert set(by_resource(path, control_id)) == job_arns, control_id


def test_seed_rule_on_the_demo_snapshot_follows_the_estate(demo) -> None:
    path, estate = demo
    expected_status = {
        "cmk": "ok",
        "bedrock_owned": "alarm",
        "aws_managed": "alarm",
        "foreign_account_key": "info",
        "disabled_key": "ok",
        "pending_deletion_key": "ok",
    }
    assert {m.case for m in estate.models} == set(expected_status)
    findings = by_resource(path, SEED)
    assert len(findings) == len(estate.models)
    for model in estate.models:
        finding = findings[model.model_arn]
        assert finding.status == expected_status[model.case], (model.model_name, model.case, finding.reason)
        assert model.model_name in finding.reason
        assert (finding.account_id, finding.region) == (model.account_id, model.region)
        if model.case == "foreign_account_key":
            assert estate_module.FOREIGN_ACCOUNT_ID in finding.reason
