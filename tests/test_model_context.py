"""collect --model-context needed (the default) against --model-context all.

Import and copy jobs, provisioned throughputs and custom model deployments describe models
and live in their model's account and region: by default they are listed only where a
custom or imported model was listed (or its listing failed). The verdicts, ``in_use`` and
``served_by`` must be the same both ways; what the default leaves out is noted in the run.
Over HTTP against the test moto server (it answers the operations moto lacks).
"""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path

import boto3
import pytest

from bedrock_sql import snapshot
from bedrock_sql.accounts import resolve_scope
from bedrock_sql.aws import AwsOptions
from bedrock_sql.estate import create_key, seed_models
from bedrock_sql.estate_served import deploy_model, import_model, provision_throughput
from bedrock_sql.providers import TABLES
from e2e_helpers import cli_env, run_cli
from helpers import deny, fast_regions, make_live, region_of
from test_kms_need import verdicts

MODELS, JOB_ONLY, IMPORTED_ONLY, FAILING, EMPTY = "us-east-1", "eu-west-1", "ap-south-1", "us-west-2", "eu-central-1"
REGIONS = (MODELS, JOB_ONLY, IMPORTED_ONLY, FAILING, EMPTY)
CONTEXT_TABLES = sorted(name for name, table in TABLES.items() if table.context_of)
CONTEXT_LISTINGS = ("ListModelImportJobs", "ListModelCopyJobs", "ListProvisionedModelThroughputs",
                    "ListCustomModelDeployments")
FOUNDATION = "anthropic.claude-v2"


@pytest.fixture
def estate(moto_url: str) -> str:
    """Five regions: custom models served by a throughput and a deployment, plus an imported
    model; only a customization job (its model deleted) and a throughput of a foundation model;
    only an imported model and a foundation-model throughput; one with a custom model whose
    listing the tests may deny; and an empty one."""
    session = boto3.Session(region_name=MODELS)
    client = lambda region: session.client("bedrock", region_name=region, endpoint_url=moto_url)  # noqa: E731
    owned, _ = seed_models(session, MODELS, 2, prefix="served", endpoint_url=moto_url)
    key = create_key(session, MODELS, endpoint_url=moto_url)
    seed_models(session, MODELS, 1, prefix="keyed", key_arn=key.arn, endpoint_url=moto_url)
    provision_throughput(client(MODELS), "served-pt", owned.model_arn)
    deploy_model(client(MODELS), "served-deploy", owned.model_arn)
    import_model(client(MODELS), "beside-import")
    (lonely,) = seed_models(session, JOB_ONLY, 1, prefix="job-only", endpoint_url=moto_url)
    client(JOB_ONLY).delete_custom_model(modelIdentifier=lonely.model_name)  # the job stays
    provision_throughput(client(JOB_ONLY), "base-pt", FOUNDATION)
    import_model(client(IMPORTED_ONLY), "only-import")
    provision_throughput(client(IMPORTED_ONLY), "imported-region-pt", FOUNDATION)
    seed_models(session, FAILING, 1, prefix="hidden", endpoint_url=moto_url)
    return moto_url


def collect(url: str, path: Path, mode: str, prepare=None):
    with fast_regions():
        scope = resolve_scope(AwsOptions(regions=REGIONS, endpoint_url=url))
    if prepare:
        prepare(scope)
    return scope, snapshot.collect(scope, path, model_context=mode)


def calls(scope, operation: str, region: str) -> int:
    return sum(n for (_svc, op, reg), n in scope.factory.calls.items() if op == operation and reg == region)


def rows(path: Path, sql: str) -> list:
    with sqlite3.connect(path) as db:
        return db.execute(sql).fetchall()


def notes(path: Path) -> list[str]:
    return json.loads(rows(path, "SELECT notes FROM bedrock_sql_runs")[0][0])


def test_both_modes_give_the_same_verdicts_and_the_same_serving(estate, tmp_path) -> None:
    paths = {mode: tmp_path / f"{mode}.db" for mode in ("all", "needed")}
    for mode, path in paths.items():
        _, result = collect(estate, path, mode)
        assert result.errors == []
    expected = verdicts(paths["all"])
    assert {status for _, _, status, _ in expected} >= {"ok", "alarm"}
    assert verdicts(paths["needed"]) == expected
    serving = "SELECT arn, in_use, served_by, serving_error FROM bedrock_model_encryption ORDER BY arn"
    served = rows(paths["all"], serving)
    assert rows(paths["needed"], serving) == served
    in_use = [json.loads(served_by) for _, used, served_by, _ in served if used]
    assert len(in_use) == 1 and len(in_use[0]) == 2, served  # served by the throughput and the deployment


def test_the_context_is_listed_only_where_models_are(estate, tmp_path) -> None:
    needed, _ = collect(estate, tmp_path / "needed.db", "needed")
    everything, _ = collect(estate, tmp_path / "all.db", "all")
    for operation in CONTEXT_LISTINGS:
        listed = {region for region in REGIONS if calls(needed, operation, region)}
        assert listed == {MODELS, IMPORTED_ONLY, FAILING}, operation
        assert all(calls(everything, operation, region) == 1 for region in REGIONS), operation
    for operation in ("ListCustomModels", "ListImportedModels", "ListModelCustomizationJobs"):
        assert all(calls(needed, operation, region) == 1 for region in REGIONS), operation


def test_what_the_default_leaves_out_is_noted(estate, tmp_path) -> None:
    collect(estate, tmp_path / "needed.db", "needed")
    collect(estate, tmp_path / "all.db", "all")
    throughputs = "SELECT provisioned_model_name FROM aws_bedrock_provisioned_model_throughput ORDER BY 1"
    assert rows(tmp_path / "all.db", throughputs) == [("base-pt",), ("imported-region-pt",), ("served-pt",)]
    # The foundation-model throughput of a region without models is what is not collected.
    assert rows(tmp_path / "needed.db", throughputs) == [("imported-region-pt",), ("served-pt",)]
    jobs = "SELECT job_name FROM aws_bedrock_model_customization_job WHERE region = ?"
    assert rows(tmp_path / "needed.db", jobs.replace("?", f"'{JOB_ONLY}'"))  # judged resources: always listed
    (note,) = [n for n in notes(tmp_path / "needed.db") if "--model-context all" in n]
    assert note.startswith(", ".join(CONTEXT_TABLES) + ": not listed in the 2 account/region(s)"), note
    assert not [n for n in notes(tmp_path / "all.db") if "--model-context" in n]


def test_a_failed_model_listing_lists_the_context_and_is_an_error(estate, tmp_path) -> None:
    def prepare(scope):
        deny(scope, "bedrock", "ListCustomModels", when=lambda params, context: region_of(context) == FAILING)

    scope, result = collect(estate, tmp_path / "needed.db", "needed", prepare)
    assert [(e.region, e.operation) for e in result.errors] == [(FAILING, "ListCustomModels")]
    for operation in CONTEXT_LISTINGS:
        assert calls(scope, operation, FAILING) == 1, operation  # it may hold a model: look
    assert calls(scope, "ListProvisionedModelThroughputs", EMPTY) == 0
    errors = {control for control, _, status, _ in verdicts(tmp_path / "needed.db") if status == "error"}
    assert "bedrock_custom_model_encrypted_with_cmk" in errors, errors  # never a silent pass


def test_a_failed_imported_model_listing_in_an_empty_region_lists_the_context(estate, tmp_path) -> None:
    def prepare(scope):
        deny(scope, "bedrock", "ListImportedModels", when=lambda params, context: region_of(context) == EMPTY)

    scope, result = collect(estate, tmp_path / "needed.db", "needed", prepare)
    assert [(e.region, e.operation) for e in result.errors] == [(EMPTY, "ListImportedModels")]
    for operation in CONTEXT_LISTINGS:
        assert calls(scope, operation, EMPTY) == 1, operation  # no custom model, but imported ones unknown
        assert calls(scope, operation, JOB_ONLY) == 0, operation
    errors = {control for control, _, status, _ in verdicts(tmp_path / "needed.db") if status == "error"}
    assert "bedrock_imported_model_encrypted_with_cmk" in errors, errors


def test_a_live_query_lists_every_region(estate) -> None:
    live = make_live(REGIONS, endpoint_url=estate)
    try:
        names = {r["provisioned_model_name"] for r in live.rows(
            "SELECT provisioned_model_name FROM aws_bedrock_provisioned_model_throughput")}
    finally:
        live.close()
    assert names == {"base-pt", "imported-region-pt", "served-pt"}


def test_the_cli_option(estate, tmp_path) -> None:
    env = cli_env(estate)
    regions = [a for r in (MODELS, JOB_ONLY) for a in ("--region", r)]
    bad = run_cli(["collect", "--model-context", "some", *regions], cwd=tmp_path, env=env, timeout=60)
    assert bad.returncode == 2 and "Traceback" not in bad.stderr and "'needed'" in bad.stderr, bad.stderr
    default = run_cli(["--db", "needed.db", "collect", *regions], cwd=tmp_path, env=env, timeout=120)
    assert default.returncode == 0, default.stderr
    assert "not listed in the 1 account/region(s)" in default.stderr and "--model-context all" in default.stderr
    full = run_cli(["--db", "all.db", "collect", "--model-context", "all", *regions], cwd=tmp_path, env=env,
                   timeout=120)
    assert full.returncode == 0, full.stderr
    assert "--model-context" not in full.stderr
    throughputs = "SELECT count(*) FROM aws_bedrock_provisioned_model_throughput"
    assert rows(tmp_path / "all.db", throughputs) == [(2,)] and rows(tmp_path / "needed.db", throughputs) == [(1,)]
