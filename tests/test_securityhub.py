"""``check --to-security-hub``: findings imported into AWS Security Hub, over HTTP.

The CLI runs as a subprocess against the moto server (through :class:`AwsProxy`, which
counts the calls and injects faults). What landed is read back with GetFindings, per
account and region, and compared with what ``check --output asff`` says the findings are.

moto 5.2's Security Hub needs no EnableSecurityHub before BatchImportFindings, keeps the
findings of each account and region apart (the account of the credentials that sent them),
and updates a finding it holds by Id; it ignores GetFindings' Filters (the tests filter)
and rejects only findings without resources, which bedrock-sql never builds -- so a
per-finding rejection is injected into its answer by the proxy.
"""

from __future__ import annotations

import io
import json
import math
import shutil
import sqlite3
import time
from datetime import datetime, timezone
from pathlib import Path
from typing import Callable

import boto3
import pytest

from bedrock_sql.controls import Control, Finding
from bedrock_sql.estate import create_key, seed_models
from bedrock_sql.findings import finding_uid
from bedrock_sql.securityhub import SHOWN_FAILURES, dry_run
from conftest import reset_moto_server
from e2e_helpers import (ACCOUNT_ID, AwsProxy, AwsRequest, CannedResponse, Rule, cli_env, deny, describe, run_cli,
                         throttle)

REGIONS = ("us-east-1", "eu-west-1")
REGION_ARGS = tuple(arg for region in REGIONS for arg in ("--region", region))
SEED = "bedrock_custom_model_encrypted_with_cmk"
A, B = "111111111111", "222222222222"
REJECTED = ("/owned-0003", "/owned-0007", "/owned-0011")  # models whose findings Security Hub rejects
KEYS = {"aws_access_key_id": "testing", "aws_secret_access_key": "testing"}


# --------------------------------------------------------------------------- helpers


def session_in(url: str, account_id: str = ACCOUNT_ID) -> boto3.Session:
    """Credentials acting in ``account_id`` on the moto server (moto's default account: as is)."""
    if account_id == ACCOUNT_ID:
        return boto3.Session(**KEYS, aws_session_token="testing", region_name="us-east-1")
    sts = boto3.client("sts", region_name="us-east-1", endpoint_url=url, **KEYS)
    creds = sts.assume_role(RoleArn=role(account_id, "Seeder"), RoleSessionName="seed")["Credentials"]
    return boto3.Session(aws_access_key_id=creds["AccessKeyId"], aws_secret_access_key=creds["SecretAccessKey"],
                         aws_session_token=creds["SessionToken"], region_name="us-east-1")


def role(account_id: str, name: str = "BedrockSqlAudit") -> str:
    return f"arn:aws:iam::{account_id}:role/{name}"


def hub_findings(url: str, region: str, account_id: str = ACCOUNT_ID) -> list[dict]:
    """Every finding Security Hub holds in ``account_id`` and ``region`` (GetFindings, all pages)."""
    client = session_in(url, account_id).client("securityhub", region_name=region, endpoint_url=url)
    return [f for page in client.get_paginator("get_findings").paginate() for f in page["Findings"]]


def expected_asff(cwd: Path, env: dict, *args: str) -> list[dict]:
    """What the findings are, as ``check --output asff`` writes them."""
    result = run_cli(["check", "--output", "asff", *args], cwd=cwd, env=env)
    assert result.returncode in (0, 1), describe(result)
    return json.loads(result.stdout)


def by_region(findings: list[dict]) -> dict[tuple[str, str], dict[str, dict]]:
    grouped: dict[tuple[str, str], dict[str, dict]] = {}
    for finding in findings:
        grouped.setdefault((finding["AwsAccountId"], finding["Region"]), {})[finding["Id"]] = finding
    return grouped


def import_calls(proxy: AwsProxy) -> list[AwsRequest]:
    return [r for r in proxy.requests if r.operation == "BatchImportFindings"]


def sent_ids(request: AwsRequest) -> list[str]:
    return [f["Id"] for f in json.loads(request.body)["Findings"]]


def failure_lines(stderr: str) -> list[str]:
    return [line for line in stderr.splitlines() if line.startswith("bedrock-sql: Security Hub: ")]


def collect(cwd: Path, env: dict, *args: str, db: str = "bedrock.db") -> None:
    result = run_cli(["--db", db, "collect", *args], cwd=cwd, env=env, timeout=120)
    assert result.returncode == 0, describe(result)


def finished_at(db: Path) -> str:
    with sqlite3.connect(f"file:{db}?mode=ro", uri=True) as connection:
        return connection.execute("SELECT max(finished_at) FROM bedrock_sql_runs").fetchone()[0]


def answer_failing(choose: Callable[[list[dict]], list[dict]]) -> Rule:
    """A proxy rule: BatchImportFindings goes to moto, and its answer then says that the
    findings ``choose(findings)`` returns failed (as Security Hub answers a rejection)."""

    def rule(request: AwsRequest) -> CannedResponse | None:
        if request.operation != "BatchImportFindings":
            return None
        rejected = {f["Id"] for f in choose(json.loads(request.body)["Findings"])}

        def rewrite(body: bytes) -> bytes:
            answer = json.loads(body)
            answer["FailedFindings"] = [
                {"Id": i, "ErrorCode": "InvalidInput", "ErrorMessage": "Finding is invalid (injected)"} for i in sorted(rejected)
            ]
            answer["FailedCount"] = len(rejected)
            answer["SuccessCount"] -= len(rejected)
            return json.dumps(answer).encode()

        return CannedResponse(200, rewrite_body=rewrite)

    return rule


# --------------------------------------------------------------------------- the estate, collected once


@pytest.fixture(scope="module")
def estate(moto_server: str, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A snapshot of one account: 60 models in us-east-1 (more than 100 findings there: two
    calls), two in eu-west-1. Tests copy it; moto's state is reset by each test's moto_url."""
    reset_moto_server(moto_server)
    session = session_in(moto_server)
    key = create_key(session, "us-east-1", endpoint_url=moto_server)
    seed_models(session, "us-east-1", 30, key_arn=key.arn, prefix="cmk", endpoint_url=moto_server)
    seed_models(session, "us-east-1", 30, prefix="owned", endpoint_url=moto_server)
    seed_models(session, "eu-west-1", 2, prefix="owned", endpoint_url=moto_server)
    folder = tmp_path_factory.mktemp("securityhub-estate")
    collect(folder, cli_env(moto_server), *REGION_ARGS)
    return folder / "bedrock.db"


@pytest.fixture
def workdir(estate: Path, moto_url: str, tmp_path: Path) -> Path:
    """A folder holding a copy of the estate's snapshot, Security Hub empty."""
    shutil.copy(estate, tmp_path / "bedrock.db")
    return tmp_path


# --------------------------------------------------------------------------- tests


def test_findings_land_in_their_region_with_stable_ids_in_batches_of_100(workdir: Path, moto_url: str) -> None:
    expected = by_region(expected_asff(workdir, cli_env(moto_url)))
    assert set(expected) == {(ACCOUNT_ID, r) for r in REGIONS}
    assert len(expected[(ACCOUNT_ID, "us-east-1")]) > 100  # the premise: more than one call there

    with AwsProxy(moto_url) as proxy:
        result = run_cli(["check", "--to-security-hub", "--output", "brief", *REGION_ARGS], cwd=workdir,
                         env=cli_env(proxy.url))
    assert result.returncode == 1, describe(result)  # the estate's alarms; every import landed
    total = sum(len(ids) for ids in expected.values())
    assert f"Security Hub: imported {total} finding(s) into 1 account(s)/2 region(s)" in result.stderr, describe(result)
    assert "failed 0." in result.stderr and not failure_lines(result.stderr)

    for (account, region), findings in expected.items():
        landed = {f["Id"]: f for f in hub_findings(moto_url, region)}
        assert landed.keys() == findings.keys(), region
        for finding_id, finding in landed.items():
            assert finding["AwsAccountId"] == account and finding["Region"] == region
            assert finding["ProductArn"] == f"arn:aws:securityhub:{region}:{account}:product/{account}/default"
            assert finding["Compliance"] == findings[finding_id]["Compliance"]
        calls = [r for r in import_calls(proxy) if r.region == region]
        assert len(calls) == math.ceil(len(findings) / 100), region
        assert all(len(sent_ids(call)) <= 100 for call in calls)
        assert sorted(i for call in calls for i in sent_ids(call)) == sorted(findings), "each finding sent once"

    # An ok finding is PASSED, an alarm FAILED: the seed control's verdict per model.
    seed = {f["Resources"][0]["Id"].rsplit("/", 1)[-1]: f["Compliance"]["Status"]
            for f in hub_findings(moto_url, "us-east-1") if f["GeneratorId"] == f"bedrock-sql/{SEED}"}
    assert {status for name, status in seed.items() if name.startswith("cmk-")} == {"PASSED"}
    assert {status for name, status in seed.items() if name.startswith("owned-")} == {"FAILED"}
    assert len(seed) == 60


def test_rerun_updates_the_findings_and_an_ok_closes_the_failure(moto_url: str, tmp_path: Path) -> None:
    session = session_in(moto_url)
    key = create_key(session, "us-east-1", endpoint_url=moto_url)
    (model,) = seed_models(session, "us-east-1", 1, prefix="owned", endpoint_url=moto_url)
    env = cli_env(moto_url)
    collect(tmp_path, env, "--region", "us-east-1")
    args = ["check", "--to-security-hub", "--region", "us-east-1", "--output", "brief"]
    first = run_cli(args, cwd=tmp_path, env=env)
    assert first.returncode == 1, describe(first)
    before = {f["Id"]: f for f in hub_findings(moto_url, "us-east-1")}
    seed_id = next(i for i, f in before.items() if f["GeneratorId"] == f"bedrock-sql/{SEED}")
    assert before[seed_id]["Compliance"]["Status"] == "FAILED"
    assert before[seed_id]["Resources"][0]["Id"] == model.model_arn

    # The model is fixed (its key is now the CMK); a later collect sees it.
    from moto.bedrock.models import bedrock_backends

    bedrock_backends[ACCOUNT_ID]["us-east-1"].custom_models[model.model_name].model_kms_key_arn = key.arn
    first_collected = finished_at(tmp_path / "bedrock.db")
    while datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ") <= first_collected:
        time.sleep(0.05)  # the next collect is dated a later second (snapshots are dated to the second)
    collect(tmp_path, env, "--region", "us-east-1")
    second = run_cli(args, cwd=tmp_path, env=env)
    assert second.returncode == 1 and "failed 0." in second.stderr, describe(second)  # its job still alarms

    after = {f["Id"]: f for f in hub_findings(moto_url, "us-east-1")}
    assert after.keys() == before.keys(), "a rerun updates the findings, it adds none"
    assert after[seed_id]["Compliance"]["Status"] == "PASSED"
    for finding_id in after:
        assert after[finding_id]["UpdatedAt"] > before[finding_id]["UpdatedAt"]
        assert after[finding_id]["UpdatedAt"] == finished_at(tmp_path / "bedrock.db").replace("Z", ".000Z")


def test_rejected_findings_are_listed_capped_and_exit_2(workdir: Path, moto_url: str) -> None:
    # us-east-1: the findings of three models rejected; eu-west-1: every finding rejected.
    def choose(findings: list[dict]) -> list[dict]:
        if findings[0]["Region"] == "eu-west-1":
            return findings
        return [f for f in findings if f["Resources"][0]["Id"].endswith(REJECTED)]

    expected = by_region(expected_asff(workdir, cli_env(moto_url)))
    east, west = expected[(ACCOUNT_ID, "us-east-1")], expected[(ACCOUNT_ID, "eu-west-1")]
    rejected_east = [i for i, f in east.items() if f["Resources"][0]["Id"].endswith(REJECTED)]
    assert rejected_east and len(west) + len(rejected_east) > SHOWN_FAILURES  # the premise: the list is capped

    with AwsProxy(moto_url, rule=answer_failing(choose)) as proxy:
        result = run_cli(["check", "--to-security-hub", "--output", "brief", *REGION_ARGS], cwd=workdir,
                         env=cli_env(proxy.url))
    assert result.returncode == 2, describe(result)
    failed = len(west) + len(rejected_east)
    imported = len(east) - len(rejected_east)
    assert f"imported {imported} finding(s) into 1 account(s)/1 region(s)" in result.stderr, describe(result)
    assert f"failed {failed}." in result.stderr
    lines = failure_lines(result.stderr)
    listed, more = lines[:-1], lines[-1]
    assert len(listed) == SHOWN_FAILURES
    assert more == f"bedrock-sql: Security Hub: ... and {failed - SHOWN_FAILURES} more finding(s) not imported"
    for line in listed:
        finding_id = line.split(": finding ", 1)[1].split(" ", 1)[0]
        assert finding_id in west or finding_id in rejected_east, line
        assert line.endswith("InvalidInput: Finding is invalid (injected)"), line


def test_a_call_that_fails_fails_its_findings_and_a_throttled_one_is_retried(workdir: Path, moto_url: str) -> None:
    expected = by_region(expected_asff(workdir, cli_env(moto_url)))
    east, west = expected[(ACCOUNT_ID, "us-east-1")], expected[(ACCOUNT_ID, "eu-west-1")]
    # Security Hub not enabled in eu-west-1; in us-east-1 the first two calls are throttled.
    rule_west = deny("securityhub", "BatchImportFindings", "eu-west-1", code="InvalidAccessException",
                     message=f"Account {ACCOUNT_ID} is not subscribed to AWS Security Hub")
    rule_east = throttle("securityhub", "BatchImportFindings", "us-east-1", times=2)
    with AwsProxy(moto_url, rule=lambda request: rule_west(request) or rule_east(request)) as proxy:
        result = run_cli(["check", "--to-security-hub", "--output", "brief", *REGION_ARGS], cwd=workdir,
                         env=cli_env(proxy.url, BEDROCK_SQL_BACKOFF_BASE="0.01"))
    assert result.returncode == 2, describe(result)
    assert f"imported {len(east)} finding(s) into 1 account(s)/1 region(s)" in result.stderr, describe(result)
    assert f"failed {len(west)}." in result.stderr
    assert failure_lines(result.stderr) == [
        f"bedrock-sql: Security Hub: {ACCOUNT_ID}/eu-west-1: {len(west)} finding(s): BatchImportFindings: "
        f"InvalidAccessException: Account {ACCOUNT_ID} is not subscribed to AWS Security Hub "
        "(is Security Hub enabled in this account and region?)"
    ]
    assert {f["Id"] for f in hub_findings(moto_url, "us-east-1")} == east.keys()
    assert hub_findings(moto_url, "eu-west-1") == []
    east_calls = [r for r in import_calls(proxy) if r.region == "us-east-1"]
    assert len(east_calls) == math.ceil(len(east) / 100) + 2  # each throttled call was sent again


def test_an_answer_that_does_not_add_up_fails_its_batch(workdir: Path, moto_url: str) -> None:
    def rule(request: AwsRequest) -> CannedResponse | None:
        if request.operation == "BatchImportFindings" and request.region == "eu-west-1":
            return CannedResponse(200, rewrite_body=lambda body: json.dumps({**json.loads(body), "SuccessCount": 0}).encode())
        return None

    west = by_region(expected_asff(workdir, cli_env(moto_url)))[(ACCOUNT_ID, "eu-west-1")]
    with AwsProxy(moto_url, rule=rule) as proxy:
        result = run_cli(["check", "--to-security-hub", "--output", "brief", *REGION_ARGS], cwd=workdir,
                         env=cli_env(proxy.url))
    assert result.returncode == 2, describe(result)
    assert (f"{ACCOUNT_ID}/eu-west-1: {len(west)} finding(s): InvalidResponse: BatchImportFindings answered "
            f"SuccessCount 0, FailedCount 0 and 0 FailedFindings for {len(west)} finding(s) sent") in result.stderr


def test_findings_outside_the_aws_options_are_listed_not_dropped(workdir: Path, moto_url: str) -> None:
    west = by_region(expected_asff(workdir, cli_env(moto_url)))[(ACCOUNT_ID, "eu-west-1")]
    result = run_cli(["check", "--to-security-hub", "--output", "brief", "--region", "us-east-1"], cwd=workdir,
                     env=cli_env(moto_url))
    assert result.returncode == 2, describe(result)
    assert failure_lines(result.stderr) == [
        f"bedrock-sql: Security Hub: {ACCOUNT_ID}/eu-west-1: {len(west)} finding(s): NotInScope: region eu-west-1 "
        "is not among the regions the AWS options reach (us-east-1): give the --region/--all-regions the snapshot "
        "was collected with"
    ]
    assert hub_findings(moto_url, "eu-west-1") == []


def test_two_accounts_through_role_arns_land_in_their_own_accounts(moto_url: str, tmp_path: Path) -> None:
    for account in (A, B):
        session = session_in(moto_url, account)
        seed_models(session, "us-east-1", 2, prefix=f"m{account[:3]}", account_id=account, endpoint_url=moto_url)
    env = cli_env(moto_url)
    roles = ("--role-arn", role(A), "--role-arn", role(B), "--region", "us-east-1")
    collect(tmp_path, env, *roles)
    expected = by_region(expected_asff(tmp_path, env))
    assert set(expected) == {(A, "us-east-1"), (B, "us-east-1")}

    result = run_cli(["check", "--to-security-hub", "--output", "brief", *roles], cwd=tmp_path, env=env)
    assert result.returncode == 1, describe(result)
    assert "into 2 account(s)/1 region(s)" in result.stderr and "failed 0." in result.stderr, describe(result)
    for account in (A, B):
        landed = hub_findings(moto_url, "us-east-1", account)
        assert {f["Id"] for f in landed} == expected[(account, "us-east-1")].keys()
        assert {f["AwsAccountId"] for f in landed} == {account}
    assert hub_findings(moto_url, "us-east-1") == []  # nothing in the account that assumed the roles


def test_live_check_sends_what_it_collected(moto_url: str, tmp_path: Path) -> None:
    seed_models(session_in(moto_url), "us-east-1", 2, prefix="owned", endpoint_url=moto_url)
    result = run_cli(["check", "--live", "--to-security-hub", "--region", "us-east-1", "--output", "json"],
                     cwd=tmp_path, env=cli_env(moto_url))
    assert result.returncode == 1, describe(result)
    rows = json.loads(result.stdout)  # stdout stays the report alone
    assert rows and "failed 0." in result.stderr, describe(result)
    landed = {f["Id"] for f in hub_findings(moto_url, "us-east-1")}
    assert len(landed) == len(rows)
    assert all(f"bedrock-sql/{row['control_id']}/" in " ".join(landed) for row in rows)
    assert not (tmp_path / "bedrock.db").exists()


def test_dry_run_prints_the_calls_and_sends_nothing(workdir: Path, moto_url: str) -> None:
    expected = by_region(expected_asff(workdir, cli_env(moto_url)))
    with AwsProxy(moto_url) as proxy:
        result = run_cli(["check", "--to-security-hub", "--dry-run", *REGION_ARGS], cwd=workdir, env=cli_env(proxy.url))
    assert result.returncode == 1, describe(result)
    assert proxy.requests == []  # not even STS: a dry run needs no AWS access
    calls = [json.loads(line) for line in result.stdout.splitlines()]
    got: dict[tuple[str, str], dict[str, dict]] = {}
    for call in calls:
        assert 1 <= len(call["findings"]) <= 100
        for finding in call["findings"]:
            assert (finding["AwsAccountId"], finding["Region"]) == (call["account_id"], call["region"])
            got.setdefault((call["account_id"], call["region"]), {})[finding["Id"]] = finding
    assert got == expected  # exactly the ASFF check --output asff gives
    total = sum(len(v) for v in expected.values())
    assert len(calls) == sum(math.ceil(len(v) / 100) for v in expected.values())
    for (account, region), findings in expected.items():
        assert f"  {account}/{region}: {len(findings)} finding(s)" in result.stderr
    assert (f"Security Hub (dry run): would import {total} finding(s) into 1 account(s)/2 region(s) in {len(calls)} "
            "call(s), failed 0; nothing was sent.") in result.stderr
    assert hub_findings(moto_url, "us-east-1") == [] and hub_findings(moto_url, "eu-west-1") == []


def test_an_accepted_exception_is_sent_suppressed(workdir: Path, moto_url: str) -> None:
    accepted = f"arn:aws:bedrock:us-east-1:{ACCOUNT_ID}:custom-model/owned-0003"
    (workdir / "exceptions.json").write_text(json.dumps({"exceptions": [
        {"control": SEED, "resource": accepted, "reason": "Legacy model, retired in Q3.", "expires": "2999-12-31"}]}))
    result = run_cli(["check", "--to-security-hub", "--dry-run", "--exceptions", "exceptions.json", *REGION_ARGS],
                     cwd=workdir, env=cli_env(moto_url))
    assert result.returncode == 1, describe(result)  # the other owned models still alarm
    sent = [f for line in result.stdout.splitlines() for f in json.loads(line)["findings"]]
    suppressed = [f for f in sent if f["Workflow"]["Status"] == "SUPPRESSED"]
    assert [(f["GeneratorId"], f["Resources"][0]["Id"]) for f in suppressed] == [(f"bedrock-sql/{SEED}", accepted)]
    assert suppressed[0]["Compliance"]["Status"] == "FAILED"  # still failing: accepted, not fixed
    assert "Legacy model, retired in Q3." in suppressed[0]["Note"]["Text"]


@pytest.mark.parametrize(
    "args, message",
    [
        (["--dry-run"], "--dry-run goes with --to-security-hub"),
        (["--to-security-hub", "--dry-run", "--output", "json"], "leave out --output"),
    ],
)
def test_dry_run_usage_errors(args: list[str], message: str, tmp_path: Path) -> None:
    result = run_cli(["check", *args], cwd=tmp_path, env=cli_env(None))
    assert result.returncode == 2, describe(result)
    assert result.stderr.startswith("bedrock-sql: error: ") and message in result.stderr
    assert len(result.stderr.splitlines()) == 1 and result.stdout == ""


def test_a_finding_without_account_or_region_is_a_failure_not_a_crash() -> None:
    control = Control(id="c", title="Title", severity="high", description="Description.", remediation="",
                      references=(), sql="SELECT 1", source="test")
    good = Finding(control=control, resource="arn:aws:kms:us-east-1:123456789012:key/k", status="ok", reason="Fine.",
                   account_id=ACCOUNT_ID, region="us-east-1", collected_at="2026-01-05T09:00:00Z")
    bad = Finding(control=control, resource="somewhere", status="alarm", reason="Bad.", account_id=None, region=None,
                  collected_at="2026-01-05T09:00:00Z")
    out = io.StringIO()
    report = dry_run([good, bad], out)
    (call,) = [json.loads(line) for line in out.getvalue().splitlines()]
    assert [f["Id"] for f in call["findings"]] == [finding_uid(good)]
    assert report.failed == 1 and "has no account_id or region" in str(report.failures[0])
