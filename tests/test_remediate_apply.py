"""`remediate --apply` when AWS fails part-way: one line naming what was done, and a rerun
that finishes the plan without creating anything twice (counted in moto)."""

from __future__ import annotations

from pathlib import Path

import boto3
import pytest

from bedrock_sql.accounts import resolve_scope
from bedrock_sql.aws import AwsOptions
from bedrock_sql.errors import UserError
from bedrock_sql.estate import create_key, seed_models
from bedrock_sql.remediate import LiveAws, apply_plan, plan_remediation
from bedrock_sql.snapshot import collect
from bedrock_sql.sql import snapshot_connection

from aws_faults import Fault
from e2e_helpers import AwsProxy, cli_env, describe, run_cli
from remediate_helpers import ACCOUNT, ALIAS, REGION, backends, counts, fail_once, key_by_alias, seed_and_collect

US = (REGION,)
APPLY = ["remediate", "--create-key", "--alias", ALIAS, "--apply", "--yes"]


def test_apply_failing_mid_plan_names_the_steps_done_and_a_rerun_adds_no_duplicates(
    server_session: boto3.Session, moto_url: str, tmp_path: Path
) -> None:
    models = seed_and_collect(server_session, moto_url, tmp_path, models=3)
    jobs = [f"{m.job_name}-cmk" for m in sorted(models, key=lambda m: m.model_name)]
    before = counts(US)
    with AwsProxy(moto_url, fail_once("bedrock", "CreateModelCustomizationJob", nth=2)) as proxy:
        first = run_cli(APPLY, cwd=tmp_path, env=cli_env(proxy.url))
        assert first.returncode == 2, describe(first)
        (line,) = first.stderr.splitlines()  # one line, no traceback
        key_arn = key_by_alias(server_session, moto_url)["Arn"]
        assert line.startswith(f"bedrock-sql: error: CreateModelCustomizationJob in {ACCOUNT}/{REGION} failed: AccessDeniedException")
        done = line.split("Done before it: ", 1)[1]
        assert done.startswith(
            f"created key {key_arn}; created alias {ALIAS}; enabled rotation of {key_arn}; started job {jobs[0]}. "
        ), line
        assert jobs[1] not in done and jobs[2] not in done and "run the same command again" in line.lower()
        assert counts(US) == {"jobs": before["jobs"] + 1, "keys": before["keys"] + 1, "aliases": before["aliases"] + 1}

        second = run_cli(APPLY, cwd=tmp_path, env=cli_env(proxy.url))  # the proxy denied only that one call
    assert second.returncode == 0, describe(second)
    assert f"{ALIAS} already exists: reusing key {key_arn}" in second.stdout
    assert f"job {jobs[0]} already exists" in second.stdout
    assert f"started job {jobs[1]}" in second.stdout and f"started job {jobs[2]}" in second.stdout
    assert counts(US) == {"jobs": before["jobs"] + 3, "keys": before["keys"] + 1, "aliases": before["aliases"] + 1}
    bedrock, _ = backends()
    assert {bedrock[REGION].model_customization_jobs[j].custom_model_kms_key_id for j in jobs} == {key_arn}


def test_apply_rerun_after_create_alias_failed_reuses_the_key_it_left_unnamed(
    server_session: boto3.Session, moto_url: str, tmp_path: Path
) -> None:
    (model,) = seed_and_collect(server_session, moto_url, tmp_path)
    before = counts(US)
    with AwsProxy(moto_url, fail_once("kms", "CreateAlias")) as proxy:
        first = run_cli(APPLY, cwd=tmp_path, env=cli_env(proxy.url))
        assert first.returncode == 2, describe(first)
        _, kms = backends()
        (created,) = [k for k in kms[REGION].keys.values() if not k.aliases]
        (line,) = first.stderr.splitlines()
        assert f"CreateAlias in {ACCOUNT}/{REGION} failed: AccessDeniedException" in line
        assert f"Done before it: created key {created.arn}." in line
        assert counts(US) == {**before, "keys": before["keys"] + 1}

        second = run_cli(APPLY, cwd=tmp_path, env=cli_env(proxy.url))
    assert second.returncode == 0, describe(second)
    assert f"reusing key {created.arn}, which an earlier run created for {ALIAS} but could not name" in second.stdout
    assert counts(US) == {"jobs": before["jobs"] + 1, "keys": before["keys"] + 1, "aliases": before["aliases"] + 1}
    assert key_by_alias(server_session, moto_url)["Arn"] == created.arn
    bedrock, _ = backends()
    assert bedrock[REGION].model_customization_jobs[f"{model.job_name}-cmk"].custom_model_kms_key_id == created.arn


@pytest.mark.parametrize("kind", ["truncated", "reset", "server-error"])
def test_a_create_whose_outcome_is_unknown_is_not_retried_and_a_rerun_makes_no_second_key(
    server_session: boto3.Session, moto_url: str, tmp_path: Path, kind: str
) -> None:
    """CreateKey reached AWS but its answer was lost (garbled, connection reset, a 5xx): a
    retry could create a second key, so the run stops and says so; the rerun finds the key
    the first attempt made (by its tags) and names it. One key in the end, never two."""
    seed_and_collect(server_session, moto_url, tmp_path)
    before = counts(US)
    fault = Fault(kind, "kms", "CreateKey", times=1)
    with AwsProxy(moto_url, fault) as proxy:
        first = run_cli(APPLY, cwd=tmp_path, env=cli_env(proxy.url))
        assert first.returncode == 2, describe(first)
        (line,) = first.stderr.splitlines()
        assert line.startswith(f"bedrock-sql: error: CreateKey in {ACCOUNT}/{REGION} failed"), line
        assert proxy.operations("kms").count("CreateKey") == 1  # not retried
        second = run_cli(APPLY, cwd=tmp_path, env=cli_env(proxy.url))
    assert second.returncode == 0, describe(second)
    assert counts(US) == {"jobs": before["jobs"] + 1, "keys": before["keys"] + 1, "aliases": before["aliases"] + 1}
    assert fault.hits == 1


# --------------------------------------------------------------------------- refusals before any change (in process)


def _plan(aws: boto3.Session, tmp_path: Path, **options):
    seed_models(aws, REGION, 1)
    db = tmp_path / "bedrock.db"
    # Every key: the plans name keys no model uses yet.
    collect(resolve_scope(AwsOptions(regions=US)), db, kms_keys="all")
    with snapshot_connection(db) as connection:
        return plan_remediation(connection, **options)


def test_apply_refuses_an_unnamed_key_another_plan_created(aws: boto3.Session, tmp_path: Path) -> None:
    plan = _plan(aws, tmp_path, create_key=True, alias=ALIAS)
    stray = create_key(aws, REGION, tags={"bedrock-sql:alias": ALIAS, "bedrock-sql:plan": "another-plan"})
    before = counts(US)
    with pytest.raises(UserError) as refused:
        apply_plan(plan, LiveAws(AwsOptions()))
    message = str(refused.value)
    assert f"key {stray.arn} in {ACCOUNT}/{REGION} was created for {ALIAS} by another plan" in message
    assert message.endswith("(nothing changed)")
    assert counts(US) == before


def test_apply_refuses_a_planned_key_disabled_since_the_snapshot(aws: boto3.Session, tmp_path: Path) -> None:
    key = create_key(aws, REGION, alias="alias/chosen")
    plan = _plan(aws, tmp_path, kms_key=key.arn)
    aws.client("kms", region_name=REGION).disable_key(KeyId=key.key_id)
    before = counts(US)
    with pytest.raises(UserError, match=r"the plan's key .* is disabled: enable it .*\(nothing changed\)$"):
        apply_plan(plan, LiveAws(AwsOptions()))
    assert counts(US) == before
