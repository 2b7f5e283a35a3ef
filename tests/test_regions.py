"""Regions like the AWS SDKs: ``AWS_REGION``, then ``AWS_DEFAULT_REGION``, then the profile's
``region`` (botocore alone reads only the last two). In process with ``mock_aws``; the last
test runs the CLI as a subprocess against the moto server."""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path

import pytest

from bedrock_sql.accounts import resolve_scope
from bedrock_sql.aws import AwsOptions
from bedrock_sql.errors import UserError
from bedrock_sql.estate import seed_models
from e2e_helpers import cli_env, describe, run_cli
from helpers import fast_regions

PROFILE = "audit"
PROFILE_REGION = "ap-south-1"
ROLE = "arn:aws:iam::111111111111:role/BedrockSqlAudit"


@pytest.fixture(autouse=True)
def _quick_regions():
    with fast_regions():
        yield


@pytest.fixture
def aws_config(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """An AWS config whose default profile and profile 'audit' both say ap-south-1."""
    config = tmp_path / "config"
    config.write_text(f"[default]\nregion = {PROFILE_REGION}\n\n[profile {PROFILE}]\nregion = {PROFILE_REGION}\n")
    credentials = tmp_path / "credentials"
    credentials.write_text(f"[{PROFILE}]\naws_access_key_id = testing\naws_secret_access_key = testing\n")
    monkeypatch.setenv("AWS_CONFIG_FILE", str(config))
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(credentials))
    return config


def set_region_env(monkeypatch: pytest.MonkeyPatch, aws_region: str | None, default_region: str | None) -> None:
    for name, value in (("AWS_REGION", aws_region), ("AWS_DEFAULT_REGION", default_region)):
        if value is None:
            monkeypatch.delenv(name, raising=False)
        else:
            monkeypatch.setenv(name, value)


# (AWS_REGION, AWS_DEFAULT_REGION) -> the region scanned, the profile saying ap-south-1.
PRECEDENCE = [
    pytest.param("eu-west-1", "us-east-1", "eu-west-1", id="AWS_REGION-beats-AWS_DEFAULT_REGION"),
    pytest.param("eu-west-1", None, "eu-west-1", id="AWS_REGION-beats-profile"),
    pytest.param(None, "us-east-1", "us-east-1", id="AWS_DEFAULT_REGION-beats-profile"),
    pytest.param(None, None, PROFILE_REGION, id="profile"),
]


@pytest.mark.parametrize(("aws_region", "default_region", "expected"), PRECEDENCE)
@pytest.mark.parametrize(
    "options",
    [
        pytest.param(AwsOptions(), id="ambient"),
        pytest.param(AwsOptions(profiles=(PROFILE,)), id="--profile"),
        pytest.param(AwsOptions(role_arns=(ROLE,)), id="--role-arn"),
    ],
)
def test_default_region_follows_the_sdks(
    aws, aws_config: Path, monkeypatch: pytest.MonkeyPatch, options: AwsOptions,
    aws_region: str | None, default_region: str | None, expected: str,
) -> None:
    set_region_env(monkeypatch, aws_region, default_region)
    scope = resolve_scope(options)
    assert [u.region for u in scope.units] == [expected]
    # The sessions themselves carry it, so any client made without a region agrees.
    assert {a.session.region_name for a in scope.accounts} == {expected}


def test_accounts_file_entries_follow_aws_region(aws, aws_config: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    accounts = tmp_path / "accounts.csv"
    accounts.write_text(f"profile\n{PROFILE}\n")
    set_region_env(monkeypatch, None, None)
    assert [u.region for u in resolve_scope(AwsOptions(accounts_file=str(accounts))).units] == [PROFILE_REGION]
    set_region_env(monkeypatch, "eu-west-1", "us-east-1")
    assert [u.region for u in resolve_scope(AwsOptions(accounts_file=str(accounts))).units] == ["eu-west-1"]


def test_region_option_beats_every_variable(aws, monkeypatch: pytest.MonkeyPatch) -> None:
    set_region_env(monkeypatch, "eu-west-1", "us-east-1")
    assert [u.region for u in resolve_scope(AwsOptions(regions=("us-west-2",))).units] == ["us-west-2"]


def test_no_region_anywhere_is_a_user_error(aws, monkeypatch: pytest.MonkeyPatch) -> None:
    set_region_env(monkeypatch, None, None)
    with pytest.raises(UserError, match="no AWS region configured"):
        resolve_scope(AwsOptions())
    monkeypatch.setenv("AWS_REGION", "")  # set but empty is unset, as for the SDKs
    with pytest.raises(UserError, match="no AWS region configured"):
        resolve_scope(AwsOptions())


def scanned_regions(db: Path) -> tuple[list[str], list[str]]:
    """(bedrock_sql_runs.regions, the regions of the model rows) of a snapshot."""
    with sqlite3.connect(f"file:{db}?mode=ro", uri=True) as conn:
        (regions,) = conn.execute("SELECT regions FROM bedrock_sql_runs").fetchone()
        models = sorted({r for (r,) in conn.execute("SELECT region FROM aws_bedrock_custom_model")})
    return json.loads(regions), models


def test_cli_collect_with_aws_region(server_session, moto_url: str, tmp_path: Path) -> None:
    seed_models(server_session, "us-east-1", 1, endpoint_url=moto_url)
    seed_models(server_session, "eu-west-1", 1, endpoint_url=moto_url)
    env = cli_env(moto_url, AWS_REGION="eu-west-1")
    del env["AWS_DEFAULT_REGION"]  # the reproduction: only AWS_REGION is set
    result = run_cli(["collect"], cwd=tmp_path, env=env, timeout=120)
    assert result.returncode == 0, describe(result)
    assert scanned_regions(tmp_path / "bedrock.db") == (["eu-west-1"], ["eu-west-1"])

    env["AWS_DEFAULT_REGION"] = "us-east-1"  # both set: AWS_REGION wins, as in the AWS CLI v2
    result = run_cli(["collect"], cwd=tmp_path, env=env, timeout=120)
    assert result.returncode == 0, describe(result)
    assert scanned_regions(tmp_path / "bedrock.db") == (["eu-west-1"], ["eu-west-1"])
