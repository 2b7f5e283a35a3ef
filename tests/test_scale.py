"""Organization scale (issue 11): clients shared by every account and signed as each one,
calls in flight bounded (in all, and per account, region and service), a resource's tags
read during its get, a collect that finishes with one worker, and the progress bar on a
terminal only.

In process with ``mock_aws`` where only routing matters; over HTTP through the e2e proxy
where concurrency is observed (the proxy sees every request while it is in flight).
"""

from __future__ import annotations

import json
import os
import pty
import select
import sqlite3
import subprocess
import threading
import time
from pathlib import Path

import boto3

from bedrock_sql.accounts import resolve_scope
from bedrock_sql.aws import UNIT_SERVICE_LIMITS, AwsOptions
from bedrock_sql.estate import seed_models
from bedrock_sql.snapshot import collect
from e2e_helpers import AwsProxy, AwsRequest, cli_command, cli_env, describe, run_cli
from helpers import fast_regions

A, B, C = "111111111111", "222222222222", "333333333333"
REGIONS = ("us-east-1", "eu-west-1")


def role(account_id: str) -> str:
    return f"arn:aws:iam::{account_id}:role/BedrockSqlAudit"


def account_session(account_id: str, endpoint_url: str | None = None) -> boto3.Session:
    """Credentials acting in ``account_id`` (moto: any role can be assumed)."""
    sts = boto3.client("sts", region_name="us-east-1", endpoint_url=endpoint_url)
    creds = sts.assume_role(RoleArn=f"arn:aws:iam::{account_id}:role/Seeder", RoleSessionName="seed")["Credentials"]
    return boto3.Session(
        aws_access_key_id=creds["AccessKeyId"],
        aws_secret_access_key=creds["SecretAccessKey"],
        aws_session_token=creds["SessionToken"],
        region_name="us-east-1",
    )


def rows(db: Path, sql: str) -> list[tuple]:
    with sqlite3.connect(f"file:{db}?mode=ro", uri=True) as conn:
        return conn.execute(sql).fetchall()


# --------------------------------------------------------------------------- shared clients


def test_clients_are_shared_by_accounts_and_each_call_is_signed_as_its_account(aws) -> None:
    with fast_regions():
        scope = resolve_scope(AwsOptions(regions=REGIONS, role_arns=(role(A), role(B), role(C))))
    first, second, third = scope.accounts
    clients = [scope.factory.client(account, "us-east-1", "sts") for account in (first, second, third)]
    assert len({id(client._client) for client in clients}) == 1  # one botocore client for all three
    assert [client.get_caller_identity()["Account"] for client in clients] == [A, B, C]
    # The same client, asked in turn from many threads, still answers each as its own account.
    answers: dict[str, set[str]] = {A: set(), B: set(), C: set()}

    def ask(account) -> None:
        for _ in range(5):
            identity = scope.factory.client(account, "us-east-1", "sts").get_caller_identity()
            answers[account.account_id].add(identity["Account"])

    threads = [threading.Thread(target=ask, args=(account,)) for account in (first, second, third) * 3]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)
    assert answers == {A: {A}, B: {B}, C: {C}}


def test_client_count_does_not_grow_with_accounts(aws, tmp_path: Path) -> None:
    for account_id in (A, B, C):
        seed_models(account_session(account_id), "us-east-1", 1, prefix=f"m{account_id[:3]}", account_id=account_id)
    counts = {}
    for accounts in ((A,), (A, B, C)):
        with fast_regions():
            scope = resolve_scope(AwsOptions(regions=REGIONS, role_arns=tuple(role(a) for a in accounts)))
        db = tmp_path / f"{len(accounts)}.db"
        collect(scope, db)
        counts[len(accounts)] = len(scope.factory._clients)
        # Every account's models landed under its own account: routing by credentials holds.
        assert sorted(rows(db, "SELECT account_id, model_name FROM aws_bedrock_custom_model")) == sorted(
            (a, f"m{a[:3]}-0000") for a in accounts
        )
    assert counts[3] == counts[1]


def test_assumed_roles_share_their_base_session(aws) -> None:
    with fast_regions():
        scope = resolve_scope(AwsOptions(regions=REGIONS, role_arns=(role(A), role(B), role(C))))
    assert len({id(account.session) for account in scope.accounts}) == 1
    assert len({id(account.credentials) for account in scope.accounts}) == 3


def test_collect_with_one_worker_finishes_with_every_row(aws, tmp_path: Path) -> None:
    """Bedrock's seven tables are listed in turn per unit and take seven slots: one worker
    must still be able to start them (this once hung)."""
    seed_models(aws, "us-east-1", 6, prefix="one")
    with fast_regions():
        scope = resolve_scope(AwsOptions(regions=("us-east-1",), max_workers=1))
    result = collect(scope, tmp_path / "one.db", max_workers=1)
    assert result.errors == []
    assert result.row_counts["aws_bedrock_custom_model"] == 6


# --------------------------------------------------------------------------- over HTTP


class InFlight:
    """A proxy rule that holds every request a moment and records how many were in flight
    at once: in all, and per (region, service)."""

    def __init__(self, hold: float = 0.05):
        self.hold = hold
        self.lock = threading.Lock()
        self.now: dict[tuple, int] = {}
        self.peak: dict[tuple, int] = {}
        self.windows: dict[tuple[str | None, str], list[tuple[float, float]]] = {}

    def _enter(self, key: tuple) -> None:
        self.now[key] = self.now.get(key, 0) + 1
        self.peak[key] = max(self.peak.get(key, 0), self.now[key])

    def __call__(self, request: AwsRequest):
        if request.service in ("sts", "ec2"):
            return None
        keys = [("all",), (request.region, request.service)]
        with self.lock:
            for key in keys:
                self._enter(key)
        started = time.monotonic()
        time.sleep(self.hold)
        with self.lock:
            for key in keys:
                self.now[key] -= 1
            self.windows.setdefault((request.operation, _named(request)), []).append((started, time.monotonic()))
        return None  # then forward it to moto


def _named(request: AwsRequest) -> str:
    """The last part of the ARN a Bedrock request names (in its path, or its tags call's body)."""
    if request.operation == "ListTagsForResource":
        return json.loads(request.body)["resourceARN"].rsplit("/", 1)[-1]
    return request.path.rsplit("/", 1)[-1]


def test_calls_in_flight_never_exceed_max_workers(server_session: boto3.Session, moto_url: str, tmp_path: Path) -> None:
    for region in REGIONS:
        seed_models(server_session, region, 8, prefix=f"w-{region}", endpoint_url=moto_url)
    rule = InFlight()
    with AwsProxy(moto_url, rule) as proxy:
        result = run_cli(
            ["collect", *[a for r in REGIONS for a in ("--region", r)], "--max-workers", "3", "-q"],
            cwd=tmp_path, env=cli_env(proxy.url), timeout=120,
        )
    assert result.returncode == 0, describe(result)
    assert 1 < rule.peak[("all",)] <= 3, rule.peak


def test_many_units_keep_max_workers_calls_in_flight(moto_url: str, tmp_path: Path) -> None:
    """A unit lists its Bedrock tables one after the other (one call in flight each): enough
    units must be under way at once to fill --max-workers. Counting (unit, table) pairs
    against 2 x max_workers had kept 8 pairs, about one unit, under way: 1-2 calls in flight."""
    regions = ("us-east-1", "us-west-2", "eu-west-1", "eu-central-1", "ap-northeast-1", "ap-south-1")
    rule = InFlight(hold=0.1)
    with AwsProxy(moto_url, rule) as proxy:
        result = run_cli(["collect", *[a for r in regions for a in ("--region", r)], "--max-workers", "4", "-q"],
                         cwd=tmp_path, env=cli_env(proxy.url), timeout=120)
    assert result.returncode == 0, describe(result)
    assert rule.peak[("all",)] == 4, rule.peak


def test_calls_per_account_region_and_service_are_capped(server_session: boto3.Session, moto_url: str,
                                                         tmp_path: Path) -> None:
    seed_models(server_session, "us-east-1", 30, prefix="cap", endpoint_url=moto_url)
    rule = InFlight(hold=0.1)
    with AwsProxy(moto_url, rule) as proxy:
        result = run_cli(["collect", "--region", "us-east-1", "-q"], cwd=tmp_path, env=cli_env(proxy.url), timeout=120)
    assert result.returncode == 0, describe(result)
    limit = UNIT_SERVICE_LIMITS["bedrock"]
    assert 1 < rule.peak[("us-east-1", "bedrock")] <= limit, rule.peak


def test_a_models_tags_are_read_during_its_get(server_session: boto3.Session, moto_url: str, tmp_path: Path) -> None:
    models = seed_models(server_session, "us-east-1", 3, prefix="tagged", endpoint_url=moto_url)
    rule = InFlight(hold=0.3)
    with AwsProxy(moto_url, rule) as proxy:
        result = run_cli(["collect", "--region", "us-east-1", "-q"], cwd=tmp_path, env=cli_env(proxy.url), timeout=120)
    assert result.returncode == 0, describe(result)
    for model in models:
        name = model.model_arn.rsplit("/", 1)[-1]
        ((_, get_end),) = rule.windows[("GetCustomModel", name)]
        ((tags_start, _),) = rule.windows[("ListTagsForResource", name)]
        assert tags_start < get_end, f"{name}: its tags were asked only after its get was answered"


# --------------------------------------------------------------------------- progress


def run_with_terminal_stderr(args: list[str], cwd: Path, env: dict[str, str]) -> tuple[int, str, str]:
    """Run the CLI with stderr on a pseudo-terminal (stdout piped); what each said."""
    controller, terminal = pty.openpty()
    process = subprocess.Popen(cli_command(*args), cwd=cwd, env={**env, "COLUMNS": "160"},
                               stdout=subprocess.PIPE, stderr=terminal, stdin=subprocess.DEVNULL)
    os.close(terminal)
    said = b""
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        ready, _, _ = select.select([controller], [], [], 1)
        if ready:
            try:
                chunk = os.read(controller, 65536)
            except OSError:  # the terminal closed: the process is done with it
                break
            if not chunk:
                break
            said += chunk
        elif process.poll() is not None:
            break
    os.close(controller)
    out, _ = process.communicate(timeout=60)
    return process.returncode, out.decode(), said.decode("utf-8", "replace")


def test_progress_is_shown_on_a_terminal(server_session: boto3.Session, moto_url: str, tmp_path: Path) -> None:
    seed_models(server_session, "us-east-1", 2, prefix="bar", endpoint_url=moto_url)
    code, _, terminal = run_with_terminal_stderr(["collect", *[a for r in REGIONS for a in ("--region", r)]],
                                                 tmp_path, cli_env(moto_url))
    assert code == 0, terminal
    assert "Collecting" in terminal, terminal
    assert "2/2" in terminal and "accounts 1/1" in terminal, terminal  # units and accounts done
    assert "calls" in terminal and "0 errors" in terminal, terminal
    assert "Collected 2 aws_bedrock_custom_model" in terminal, terminal  # then the summary, as before


def test_progress_is_quiet_when_piped_and_with_q(server_session: boto3.Session, moto_url: str, tmp_path: Path) -> None:
    seed_models(server_session, "us-east-1", 2, prefix="pipe", endpoint_url=moto_url)
    piped = run_cli(["collect", "--region", "us-east-1"], cwd=tmp_path, env=cli_env(moto_url), timeout=120)
    assert piped.returncode == 0, describe(piped)
    assert "Collecting" not in piped.stderr and "\r" not in piped.stderr, piped.stderr
    assert piped.stderr.startswith("Collected 2 aws_bedrock_custom_model"), piped.stderr
    code, _, terminal = run_with_terminal_stderr(["collect", "--region", "us-east-1", "-q"], tmp_path, cli_env(moto_url))
    assert code == 0 and terminal == "", terminal
