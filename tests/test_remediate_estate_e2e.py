"""Re-import and re-copy for real: `remediate --apply`, and the generated script under the AWS
CLI, against the moto server with the simulated Bedrock (import and copy jobs)."""

from __future__ import annotations

from pathlib import Path

import boto3

from bedrock_sql.estate import seed_models
from bedrock_sql.estate_served import copy_model, import_model
from bedrock_sql.simulated_bedrock import simulated_state

from e2e_helpers import cli_env, describe, run_cli
from remediate_helpers import ACCOUNT, ALIAS, REGION, aws_cli, backends, key_by_alias, run_script, write_script  # noqa: F401


def _estate(session: boto3.Session, url: str, cwd: Path) -> dict[str, str]:
    """A compliant source model, a copy of it made without a key, an imported model without a
    key, all collected into cwd/bedrock.db. Returns their ARNs."""
    kms = session.client("kms", region_name=REGION, endpoint_url=url)
    source_key = kms.create_key(Description="the source's CMK")["KeyMetadata"]["Arn"]
    [source] = seed_models(session, REGION, 1, endpoint_url=url)
    moto_model = backends()[0][REGION].custom_models[source.model_name]
    moto_model.model_kms_key_arn = source_key  # the source passes
    # moto names a model ".../custom-model/NAME"; AWS ".../custom-model/BASE/ID", the only shape
    # CreateModelCopyJob's sourceModelArn pattern takes (the plan checks it): give it AWS's.
    source_arn = f"arn:aws:bedrock:{REGION}:{ACCOUNT}:custom-model/amazon.titan-text-express-v1:0:8k/a1b2c3d4e5f6"
    moto_model.model_arn = source_arn
    for job in backends()[0][REGION].model_customization_jobs.values():
        if job.output_model_arn == source.model_arn:
            job.output_model_arn = source_arn
    bedrock = session.client("bedrock", region_name=REGION, endpoint_url=url)
    copy = copy_model(bedrock, source_arn, "copy-model", tags={"team": "support"})
    imported = import_model(bedrock, "llama-imp", account_id=ACCOUNT, tags={"team": "legal"})
    collected = run_cli(["collect", "--region", REGION], cwd=cwd, env=cli_env(url))
    assert collected.returncode == 0, describe(collected)
    return {"source": source_arn, "copy": copy["target_model_arn"], "imported": imported["model_arn"]}


def _new_jobs(key_arn: str, arns: dict[str, str]) -> tuple[dict, dict]:
    """The re-import and the re-copy the remediation started, checked to carry the new key."""
    state = simulated_state(ACCOUNT, REGION)
    [reimport] = [j for j in state.import_jobs.values() if j["jobName"] == "llama-imp-import-cmk"]
    assert reimport["importedModelName"] == "llama-imp-cmk"
    assert reimport["importedModelKmsKeyArn"] == key_arn
    assert reimport["modelDataSource"] == {"s3DataSource": {"s3Uri": f"s3://acme-ml-{ACCOUNT}/imports/llama-imp/"}}
    [recopy] = [j for j in state.copy_jobs.values() if j["targetModelName"] == "copy-model-cmk"]
    assert recopy["sourceModelArn"] == arns["source"]
    assert recopy["targetModelKmsKeyArn"] == key_arn
    assert recopy["targetModelTags"] == [{"key": "team", "value": "support"}]
    return reimport, recopy


def _job_counts() -> tuple[int, int]:
    state = simulated_state(ACCOUNT, REGION)
    return len(state.import_jobs), len(state.copy_jobs)


def test_apply_reimports_and_recopies_with_the_new_key_and_a_rerun_starts_nothing(
    server_session: boto3.Session, moto_url: str, tmp_path: Path
) -> None:
    arns = _estate(server_session, moto_url, tmp_path)
    before = _job_counts()
    args = ["remediate", "--create-key", "--alias", ALIAS, "--apply", "--yes"]
    first = run_cli(args, cwd=tmp_path, env=cli_env(moto_url))
    assert first.returncode == 0, describe(first)
    assert "started import job llama-imp-import-cmk" in first.stdout and "started copy copy-model-cmk" in first.stdout
    key = key_by_alias(server_session, moto_url)
    _new_jobs(key["Arn"], arns)
    assert _job_counts() == (before[0] + 1, before[1] + 1)
    # The snapshot is unchanged, so the plan is the same: nothing is started twice.
    again = run_cli(args, cwd=tmp_path, env=cli_env(moto_url))
    assert again.returncode == 0, describe(again)
    assert "import job llama-imp-import-cmk already exists" in again.stdout
    assert "copy copy-model-cmk already exists" in again.stdout
    assert _job_counts() == (before[0] + 1, before[1] + 1)


def test_the_script_reimports_and_recopies_under_the_aws_cli_and_a_rerun_starts_nothing(
    server_session: boto3.Session, moto_url: str, tmp_path: Path, aws_cli: str
) -> None:
    arns = _estate(server_session, moto_url, tmp_path)
    before = _job_counts()
    script = write_script(tmp_path, moto_url)
    text = script.read_text()
    assert "require_parameter create-model-import-job importedModelKmsKeyId" in text
    assert "require_parameter create-model-copy-job modelKmsKeyId" in text
    first = run_script(script, moto_url)
    assert first.returncode == 0, describe(first)
    assert "Starting import job llama-imp-import-cmk" in first.stdout and "Starting copy copy-model-cmk" in first.stdout
    key = key_by_alias(server_session, moto_url)
    _new_jobs(key["Arn"], arns)
    again = run_script(script, moto_url)
    assert again.returncode == 0, describe(again)
    assert "Import job llama-imp-import-cmk already exists" in again.stdout
    assert "Copy copy-model-cmk already exists" in again.stdout
    assert _job_counts() == (before[0] + 1, before[1] + 1)


def test_the_script_stops_before_changing_anything_when_the_copy_name_is_taken(
    server_session: boto3.Session, moto_url: str, tmp_path: Path, aws_cli: str
) -> None:
    arns = _estate(server_session, moto_url, tmp_path)
    script = write_script(tmp_path, moto_url)
    # After the plan was made, someone else makes a model of the copy's new name.
    bedrock = server_session.client("bedrock", region_name=REGION, endpoint_url=moto_url)
    copy_model(bedrock, arns["copy"], "copy-model-cmk")
    before = _job_counts()
    ran = run_script(script, moto_url)
    assert ran.returncode != 0
    assert "a model named copy-model-cmk already exists" in ran.stderr and "nothing changed" in ran.stderr
    assert _job_counts() == before
