"""Resilience, end to end: the CLI against a moto server through a faulty proxy.

- A throttling storm (the first attempt of 60% of all calls answers ThrottlingException)
  must give exactly the snapshot a clean run gives: no row lost, none duplicated, no error.
- A listing throttled beyond ``AWS_MAX_ATTEMPTS`` is recorded, never dropped: the run is
  partial (exit 2) and the seed control answers ``error`` for that region, never ``ok``.
- A region whose endpoint hangs up on every call fails alone: its units are recorded with
  the connection failure, the other regions are complete, and ``check`` exits 2.
- A throttled second page is asked again, not the listing from its start: 120 models in a
  region with page 2 throttled twice are 120 rows (issue 8 counted 320).

Every operation crossed with every fault is in ``test_fault_matrix.py``.
"""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path

import boto3
import pytest

from bedrock_sql.estate import Estate, create_key, seed_demo_estate, seed_models

from e2e_helpers import (
    ACCOUNT_ID,
    AwsProxy,
    AwsRequest,
    CannedResponse,
    ThrottleFirstAttempts,
    cli_env,
    describe,
    first_match,
    request_key,
    run_cli,
    throttle,
    unreachable,
)

DATA_TABLES = (
    "aws_bedrock_custom_model",
    "aws_bedrock_model_customization_job",
    "aws_kms_key",
    "aws_kms_alias",
)
SEED_CONTROL = "bedrock_custom_model_encrypted_with_cmk"


# --------------------------------------------------------------------------- helpers


def seed(session: boto3.Session, moto_url: str, regions: tuple[str, ...]) -> Estate:
    """The demo estate (every key case, tags, VPCs, failed jobs) in the first two regions,
    plus a few models under a rotated CMK in any further region."""
    estate = seed_demo_estate(session, regions=regions[:2], endpoint_url=moto_url)
    for region in regions[2:]:
        key = create_key(session, region, alias="alias/bedrock/extra", rotation=True, endpoint_url=moto_url)
        estate.keys.append(key)
        estate.models.extend(seed_models(session, region, 4, key_arn=key.arn, prefix="extra", endpoint_url=moto_url))
    return estate


def region_args(regions: tuple[str, ...]) -> list[str]:
    return [arg for region in regions for arg in ("--region", region)]


def collect(cwd: Path, proxy: AwsProxy, regions: tuple[str, ...], *args: str, **env: str):
    cwd.mkdir(exist_ok=True)
    return run_cli(["collect", *args, *region_args(regions)], cwd=cwd, env=cli_env(proxy.url, **env), timeout=120)


def table_rows(db: Path, table: str) -> list[tuple]:
    """Every row of ``table``, every column, sorted (None sorts first)."""
    with sqlite3.connect(f"file:{db}?mode=ro", uri=True) as conn:
        rows = conn.execute(f'SELECT * FROM "{table}"').fetchall()
    return sorted(rows, key=lambda row: [(value is not None, str(value)) for value in row])


def errors(db: Path) -> list[tuple]:
    with sqlite3.connect(f"file:{db}?mode=ro", uri=True) as conn:
        return conn.execute(
            "SELECT account_id, region, table_name, operation, error_code, resource FROM bedrock_sql_errors "
            "ORDER BY region, table_name, operation"
        ).fetchall()


def run_status(db: Path) -> str:
    with sqlite3.connect(f"file:{db}?mode=ro", uri=True) as conn:
        return conn.execute("SELECT status FROM bedrock_sql_runs").fetchone()[0]


def check_seed_control(cwd: Path) -> tuple[int, list[dict]]:
    """Run the seed control on the snapshot in ``cwd``; (exit code, its rows)."""
    result = run_cli(["check", SEED_CONTROL, "--output", "json"], cwd=cwd, env=cli_env())
    assert result.returncode in (0, 1, 2), describe(result)
    assert "Traceback" not in result.stderr, result.stderr
    return result.returncode, json.loads(result.stdout)


def verdicts_by_region(rows: list[dict]) -> dict[str, set[str]]:
    found: dict[str, set[str]] = {}
    for row in rows:
        found.setdefault(row["region"], set()).add(row["status"])
    return found


# --------------------------------------------------------------------------- throttling storm


def test_throttling_storm_gives_the_same_snapshot_as_a_clean_run(
    server_session: boto3.Session, moto_url: str, tmp_path: Path
) -> None:
    regions = ("us-east-1", "eu-west-1", "ap-northeast-1")
    estate = seed(server_session, moto_url, regions)

    with AwsProxy(moto_url) as proxy:
        clean = collect(tmp_path / "clean", proxy, regions)
        clean_calls = len(proxy.requests)
    assert clean.returncode == 0, describe(clean)

    storm = ThrottleFirstAttempts(share=0.6)
    # The one STS call (GetCallerIdentity) is throttled too: botocore alone retries it.
    rule = first_match(throttle("sts", "GetCallerIdentity", times=1), storm)
    with AwsProxy(moto_url, rule) as proxy:
        stormy = collect(tmp_path / "storm", proxy, regions)
        requests = list(proxy.requests)
        answered = list(proxy.answered)
    assert stormy.returncode == 0, describe(stormy)
    assert "Traceback" not in stormy.stderr

    # A real storm: well over half of the distinct calls were throttled at first, in every
    # service (Bedrock's rest-json, KMS's json, STS's query protocol) and every region.
    distinct = {request_key(r) for r in requests}
    assert len(storm.throttled) >= 0.4 * len(distinct), (len(storm.throttled), len(distinct))
    assert {r.service for r in answered} == {"bedrock", "kms", "sts"}
    assert {r.region for r in answered if r.service != "sts"} == set(regions)
    # Every throttled call was tried again and got through: nothing was given up.
    answered_ids = {id(r) for r in answered}
    forwarded = {request_key(r) for r in requests if id(r) not in answered_ids}
    assert {request_key(r) for r in answered} <= forwarded
    assert len(requests) - len(answered) >= clean_calls  # and the work itself was all done

    clean_db, storm_db = tmp_path / "clean" / "bedrock.db", tmp_path / "storm" / "bedrock.db"
    for table in DATA_TABLES:
        expected = table_rows(clean_db, table)
        assert expected, f"the clean run found no {table}"
        assert table_rows(storm_db, table) == expected, f"{table} differs after the storm"
    assert errors(clean_db) == [] and errors(storm_db) == []
    assert run_status(storm_db) == "complete"
    # ...and the clean run is the estate (so "identical" is not "identically empty").
    arns = {row[0] for row in table_rows(clean_db, "aws_bedrock_custom_model")}
    assert arns == {m.model_arn for m in estate.models}


def test_a_listing_throttled_beyond_the_retries_is_recorded_and_the_control_answers_error(
    server_session: boto3.Session, moto_url: str, tmp_path: Path
) -> None:
    regions = ("us-east-1", "eu-west-1")
    estate = seed(server_session, moto_url, regions)

    # eu-west-1's ListCustomModels is throttled on every attempt; the rest of the estate
    # is in a lighter storm it must still ride out.
    rule = first_match(
        throttle("bedrock", "ListCustomModels", "eu-west-1"),
        ThrottleFirstAttempts(share=0.4, salt="second storm"),
    )
    with AwsProxy(moto_url, rule) as proxy:
        result = collect(tmp_path, proxy, regions, AWS_MAX_ATTEMPTS="3")
        attempts = proxy.operations("bedrock", "eu-west-1").count("ListCustomModels")
    assert result.returncode == 2, describe(result)
    assert "Traceback" not in result.stderr
    assert "eu-west-1 aws_bedrock_custom_model: ListCustomModels: ThrottlingException" in result.stderr, result.stderr
    # Tried at least as often as AWS_MAX_ATTEMPTS says, then given up (not retried forever).
    assert 3 <= attempts <= 3 * 4, attempts

    db = tmp_path / "bedrock.db"
    assert errors(db) == [
        (ACCOUNT_ID, "eu-west-1", "aws_bedrock_custom_model", "ListCustomModels", "ThrottlingException", None)
    ]
    assert run_status(db) == "partial"
    # Everything else landed whole.
    models = table_rows(db, "aws_bedrock_custom_model")
    assert {row[0] for row in models} == {m.model_arn for m in estate.models_in("us-east-1")}
    jobs = table_rows(db, "aws_bedrock_model_customization_job")
    assert {row[0] for row in jobs} == {j["job_arn"] for j in estate.jobs}
    keys = table_rows(db, "aws_kms_key")
    assert {row[0] for row in keys} == {k.arn for k in estate.keys}

    code, rows = check_seed_control(tmp_path)
    assert code == 2
    verdicts = verdicts_by_region(rows)
    assert verdicts["eu-west-1"] == {"error"}, rows  # never ok, never a silent pass
    assert "ok" in verdicts["us-east-1"] and "error" not in verdicts["us-east-1"]


# --------------------------------------------------------------------------- nothing doubles


def test_a_throttled_second_page_does_not_restart_the_listing(
    server_session: boto3.Session, moto_url: str, tmp_path: Path
) -> None:
    """Issue 8's reproduction: moto pages ListCustomModels at 100; page 2 is throttled twice."""
    models = seed_models(server_session, "us-east-1", 120, prefix="bulk", endpoint_url=moto_url)
    throttled: list[AwsRequest] = []

    def second_page_throttled_twice(request: AwsRequest) -> CannedResponse | None:
        if request.operation == "ListCustomModels" and "nextToken" in request.query and len(throttled) < 2:
            throttled.append(request)
            return CannedResponse.throttle(request)
        return None

    with AwsProxy(moto_url, second_page_throttled_twice) as proxy:
        result = collect(tmp_path, proxy, ("us-east-1",), BEDROCK_SQL_BACKOFF_BASE="0.001")
        listings = proxy.operations("bedrock").count("ListCustomModels")
    assert result.returncode == 0, describe(result)
    assert len(throttled) == 2
    assert listings == 2 + 2  # page 1 once, page 2 three times: never page 1 again
    rows = table_rows(tmp_path / "bedrock.db", "aws_bedrock_custom_model")
    assert len(rows) == 120 == len({row[0] for row in rows})
    assert {row[0] for row in rows} == {m.model_arn for m in models}


# --------------------------------------------------------------------------- unreachable region


@pytest.mark.parametrize("reset", [False, True], ids=["closed", "reset"])
def test_an_unreachable_region_fails_alone(
    server_session: boto3.Session, moto_url: str, tmp_path: Path, reset: bool
) -> None:
    regions = ("us-east-1", "eu-west-1", "ap-northeast-1")
    estate = seed(server_session, moto_url, regions)

    with AwsProxy(moto_url, unreachable("ap-northeast-1", reset=reset)) as proxy:
        # Every key and alias of every region: the KMS listings fail alone too.
        result = collect(tmp_path, proxy, regions, "--kms-keys", "all")
        hung_up = {r.operation for r in proxy.answered}
    assert result.returncode == 2, describe(result)
    assert "Traceback" not in result.stderr
    assert hung_up == {
        "ListCustomModels", "ListModelCustomizationJobs", "ListAliases", "ListImportedModels", "ListModelImportJobs",
        "ListModelCopyJobs", "ListProvisionedModelThroughputs", "ListCustomModelDeployments",
    }, hung_up

    db = tmp_path / "bedrock.db"
    failures = errors(db)
    # One record per table of the unreachable unit, naming the listing and the connection failure.
    assert sorted((f[1], f[2], f[3], f[5]) for f in failures) == [
        ("ap-northeast-1", "aws_bedrock_custom_model", "ListCustomModels", None),
        ("ap-northeast-1", "aws_bedrock_custom_model_deployment", "ListCustomModelDeployments", None),
        ("ap-northeast-1", "aws_bedrock_imported_model", "ListImportedModels", None),
        ("ap-northeast-1", "aws_bedrock_model_copy_job", "ListModelCopyJobs", None),
        ("ap-northeast-1", "aws_bedrock_model_customization_job", "ListModelCustomizationJobs", None),
        ("ap-northeast-1", "aws_bedrock_model_import_job", "ListModelImportJobs", None),
        ("ap-northeast-1", "aws_bedrock_provisioned_model_throughput", "ListProvisionedModelThroughputs", None),
        ("ap-northeast-1", "aws_kms_alias", "ListAliases", None),
        ("ap-northeast-1", "aws_kms_key", "ListAliases", None),
    ], failures
    for failure in failures:
        assert "Connection" in failure[4] or "Endpoint" in failure[4], failure

    # The reachable regions are complete and correct.
    reachable = [m for m in estate.models if m.region != "ap-northeast-1"]
    models = table_rows(db, "aws_bedrock_custom_model")
    assert {row[0] for row in models} == {m.model_arn for m in reachable}
    keys = table_rows(db, "aws_kms_key")
    assert {row[0] for row in keys} == {k.arn for k in estate.keys if k.region != "ap-northeast-1"}
    assert run_status(db) == "partial"

    code, rows = check_seed_control(tmp_path)
    assert code == 2
    verdicts = verdicts_by_region(rows)
    assert verdicts["ap-northeast-1"] == {"error"}, rows
    assert "error" not in verdicts["us-east-1"] and "error" not in verdicts["eu-west-1"], rows
