"""`remediate` for the whole custom-model estate: copies re-copied, imported models re-imported,
CreateCustomModel models, and the follow-ups that move what serves an old model."""

from __future__ import annotations

import json
from pathlib import Path

import botocore.session
import pytest
from botocore.validate import validate_parameters

from bedrock_sql.remediate import plan_json, plan_remediation, render_script
from bedrock_sql.sql import snapshot_connection

from snapshot_builder import ACCOUNT, REGION, SnapshotBuilder

OTHER_ACCOUNT = "210987654321"
IMPORT_ROLE = f"arn:aws:iam::{ACCOUNT}:role/BedrockImport"
VPC = {"subnetIds": ["subnet-0a1"], "securityGroupIds": ["sg-0c3"]}
# What CreateModelCustomizationJob requires of a source job besides its role and base model.
DATA = {"training_data_config": {"s3Uri": "s3://acme-ml-data/t/"}, "output_data_config": {"s3Uri": "s3://acme-ml-data/o/"}}


def concrete(params, paths) -> dict:
    """``params`` (JSON) with each placeholder (at one of ``paths``) replaced by a string, as a
    human or the script puts a value there."""
    params = json.loads(json.dumps(params))
    for path in paths:
        *parents, last = path
        holder = params
        for part in parents:
            holder = holder[part]
        holder[last] = "a-value-a-human-or-a-command-gives"
    return params


def validate(step: dict) -> None:
    """The step's params are a valid request of its operation (botocore's input shape)."""
    model = botocore.session.get_session().get_service_model(step["service"])
    params = concrete(step["params"], step.get("placeholders", []))
    validate_parameters(params, model.operation_model(step["operation"]).input_shape)


def model_arn(name: str, region: str = REGION, account: str = ACCOUNT) -> str:
    return f"arn:aws:bedrock:{region}:{account}:custom-model/{name}"


def aws_model_arn(model_id: str, region: str = REGION, account: str = ACCOUNT) -> str:
    """A custom model ARN as AWS writes it (base model, then a 12-character id): what
    CreateModelCopyJob's sourceModelArn pattern takes."""
    return f"arn:aws:bedrock:{region}:{account}:custom-model/amazon.titan-text-express-v1:0:8k/{model_id}"


@pytest.fixture
def snap(tmp_path: Path) -> SnapshotBuilder:
    builder = SnapshotBuilder(tmp_path / "bedrock.db")
    builder.add_run()
    builder.cmk = builder.add_key("alias/cmk")
    builder.add_alias("alias/cmk", builder.cmk["id"])
    builder.eu_cmk = builder.add_key("alias/cmk", region="eu-west-1")
    builder.add_alias("alias/cmk", builder.eu_cmk["id"], region="eu-west-1")
    return builder


def plan_of(snap: SnapshotBuilder, **options):
    options.setdefault("create_key", True)
    options.setdefault("alias", "alias/new-cmk")
    with snapshot_connection(snap.path) as connection:
        return plan_remediation(connection, **options)


def commands_run(script: str) -> list[str]:
    """The AWS CLI commands the script runs (not its comments, nor the closing text it prints)."""
    body = script.rsplit("\nprintf '%s\\n' \\\n", 1)[0]
    assert body != script, "the closing text is one printf"
    return [" ".join(line.split()[:3]) for line in body.splitlines() if line.strip().startswith("aws ")]


def entries(plan, operation: str) -> list[dict]:
    return [e for e in plan_json(plan) if e["operation"] == operation]


# --------------------------------------------------------------------------- copies


def test_a_copy_of_a_compliant_source_is_copied_again_in_its_region(snap: SnapshotBuilder) -> None:
    source = snap.add_model("source-model", arn=aws_model_arn("abcdef012345"), model_kms_key_arn=snap.cmk["arn"])  # passes
    copy = snap.add_model("copy-model", region="eu-west-1", job_name="source-model-job")
    snap.add_copy_job(source["arn"], copy["arn"], region="eu-west-1", target_model_tags={"copied-from": "us"})
    plan = plan_of(snap, kms_key=[snap.eu_cmk["arn"]], create_key=False, alias=None)
    [step] = entries(plan, "CreateModelCopyJob")
    assert (step["region"], step["account_id"], step["manual"]) == ("eu-west-1", ACCOUNT, False)
    assert step["params"]["sourceModelArn"] == source["arn"]
    assert step["params"]["targetModelName"] == "copy-model-cmk"
    assert step["params"]["modelKmsKeyId"] == snap.eu_cmk["arn"]
    assert step["params"]["targetModelTags"] == [{"key": "copied-from", "value": "us"}]
    assert step["model_arn"] == copy["arn"]
    validate(step)
    assert not entries(plan, "CreateModelCustomizationJob"), "a copy is never re-trained"
    # The token is deterministic: the same plan asks for the same copy.
    assert entries(plan_of(snap, kms_key=[snap.eu_cmk["arn"]], create_key=False, alias=None), "CreateModelCopyJob")[0][
        "params"
    ]["clientRequestToken"] == step["params"]["clientRequestToken"]


def test_a_copy_of_a_failing_source_fixes_the_source_first_and_copies_the_replacement(snap: SnapshotBuilder) -> None:
    snap.add_job("source-job", output_model_name="source-model", **DATA)
    source = snap.add_model("source-model", job_name="source-job")  # fails too
    copy = snap.add_model("copy-model", region="eu-west-1", job_name="source-job")
    snap.add_copy_job(source["arn"], copy["arn"], region="eu-west-1")
    # Naming only the copy still plans the source, first.
    plan = plan_of(snap, models=[copy["arn"]])
    assert any("fails bedrock_custom_model_encrypted_with_cmk too" in w for w in plan.warnings)
    [job] = entries(plan, "CreateModelCustomizationJob")
    assert job["model_arn"] == source["arn"] and job["params"]["customModelName"] == "source-model-cmk"
    [copy_step] = entries(plan, "CreateModelCopyJob")
    assert copy_step["follow_up"] is True and copy_step["manual"] is True
    assert copy_step["region"] == "eu-west-1"
    # The new source's ARN is a typed lookup (its command an argv), never a string shape.
    assert copy_step["params"]["sourceModelArn"] == {
        "lookup": "the ARN of source-model-cmk",
        "command": ["aws", "bedrock", "get-custom-model", "--region", "us-east-1", "--model-identifier", "source-model-cmk",
                    "--query", "modelArn", "--output", "text"],
    }
    assert "get-custom-model --region us-east-1 --model-identifier source-model-cmk" in copy_step["comment"]
    # A follow-up runs later, outside the script: the new key is named by the command printing its ARN.
    assert copy_step["params"]["modelKmsKeyId"] == {
        "lookup": "the ARN of the key alias/new-cmk in eu-west-1",
        "command": ["aws", "kms", "describe-key", "--region", "eu-west-1", "--key-id", "alias/new-cmk",
                    "--query", "KeyMetadata.Arn", "--output", "text"],
    }
    assert sorted(copy_step["placeholders"]) == [["modelKmsKeyId"], ["sourceModelArn"]]
    # Follow-ups come after every step the plan runs.
    kinds = [(e["manual"], e.get("follow_up", False)) for e in plan_json(plan)]
    assert kinds == sorted(kinds)
    script, _ = render_script(plan)
    assert "aws bedrock create-model-customization-job" in commands_run(script)
    assert "aws bedrock create-model-copy-job" not in commands_run(script)
    assert '--source-model-arn "$(aws bedrock get-custom-model --region us-east-1 --model-identifier source-model-cmk' in script


def test_a_copy_of_another_accounts_model_is_a_manual_step_that_says_so(snap: SnapshotBuilder) -> None:
    shared = model_arn("their-model", account=OTHER_ACCOUNT)
    copy = snap.add_model("copy-of-theirs")
    snap.add_copy_job(shared, copy["arn"])
    plan = plan_of(snap, kms_key=[snap.cmk["arn"]], create_key=False, alias=None)
    [step] = entries(plan, "CreateModelCopyJob")
    assert step["manual"] is True and not step.get("follow_up")
    assert step["params"]["sourceModelArn"] == shared
    assert OTHER_ACCOUNT in step["comment"] and "shared" in step["comment"]
    validate(step)


# --------------------------------------------------------------------------- imports


def test_an_imported_model_is_imported_again_with_the_original_jobs_request(snap: SnapshotBuilder) -> None:
    job = snap.add_import_job("llama-import", vpc_config=VPC, tags={"team": "legal"},
                              model_data_source={"s3DataSource": {"s3Uri": "s3://models/llama/"}},
                              imported_model_arn="arn:aws:bedrock:us-east-1:123456789012:imported-model/abc123def456")
    snap.add_imported_model("llama", arn=job["imported_model_arn"], job_name="llama-import", job_arn=job["arn"],
                            tags={"env": "prod"})
    plan = plan_of(snap)
    [step] = entries(plan, "CreateModelImportJob")
    assert step["manual"] is False
    params = step["params"]
    assert params["jobName"] == "llama-import-cmk" and params["importedModelName"] == "llama-cmk"
    assert params["roleArn"] == IMPORT_ROLE
    assert params["modelDataSource"] == {"s3DataSource": {"s3Uri": "s3://models/llama/"}}
    assert params["vpcConfig"] == VPC
    assert params["importedModelKmsKeyId"] == {"variable": "KEY_ARN_123456789012_us_east_1"}
    assert params["jobTags"] == [{"key": "team", "value": "legal"}]
    assert params["importedModelTags"] == [{"key": "env", "value": "prod"}]
    validate(step)
    # The key policy lets the import job's role use the new key.
    [key] = plan.keys
    users = next(s for s in key.policy["Statement"] if s["Sid"] == "Allow use of the key")
    assert IMPORT_ROLE in users["Principal"]["AWS"]


def test_an_import_job_missing_from_the_snapshot_is_read_live(snap: SnapshotBuilder) -> None:
    snap.add_imported_model("mistral", job_name="mistral-import")
    asked = []

    def lookup(account: str, region: str, name: str):
        asked.append((account, region, name))
        return {"jobArn": "arn:aws:bedrock:us-east-1:123456789012:model-import-job/aaaabbbbcccc", "jobName": name,
                "roleArn": IMPORT_ROLE, "modelDataSource": {"s3DataSource": {"s3Uri": "s3://models-m/"}}}

    with snapshot_connection(snap.path) as connection:
        plan = plan_remediation(connection, create_key=True, alias="alias/k", import_job_lookup=lookup)
    assert asked == [(ACCOUNT, REGION, "mistral-import")]
    [step] = entries(plan, "CreateModelImportJob")
    assert step["params"]["modelDataSource"] == {"s3DataSource": {"s3Uri": "s3://models-m/"}} and not step["manual"]
    # Without a lookup (or when it finds nothing) the re-import is manual and says why.
    plan = plan_of(snap)
    [manual] = entries(plan, "CreateModelImportJob")
    assert manual["manual"] is True and "not in the snapshot" in manual["comment"]
    assert manual["params"]["roleArn"] == {"fill_in": "the service role of the original import job"}


def test_a_created_model_gets_a_manual_create_custom_model(snap: SnapshotBuilder) -> None:
    snap.add_model("byo-model", customization_type="IMPORTED", tags={"team": "r"})
    plan = plan_of(snap, kms_key=[snap.cmk["arn"]], create_key=False, alias=None)
    [step] = entries(plan, "CreateCustomModel")
    assert step["manual"] is True
    assert step["params"]["modelKmsKeyArn"] == snap.cmk["arn"]  # a key ARN: the API takes no alias
    assert step["params"]["modelName"] == "byo-model-cmk"
    assert step["params"]["modelTags"] == [{"key": "team", "value": "r"}]
    assert "does not return the modelSourceConfig" in step["comment"]
    validate(step)
    assert not entries(plan, "CreateModelImportJob") and not entries(plan, "CreateModelCustomizationJob")


# --------------------------------------------------------------------------- in use


def test_what_serves_an_old_model_is_listed_with_the_exact_follow_up(snap: SnapshotBuilder) -> None:
    snap.add_job("served-job", output_model_name="served-model", **DATA)
    served = snap.add_model("served-model", job_name="served-job")
    throughput = snap.add_throughput(served["arn"], "served-pt")
    moving = snap.add_throughput(model_arn("elsewhere"), "moving-pt", desired_model_arn=served["arn"])
    deployment = snap.add_deployment(served["arn"], "served-dep", description="chat", tags={"app": "chat"})
    snap.add_imported_model("imported-served")
    plan = plan_of(snap)
    updates = entries(plan, "UpdateProvisionedModelThroughput")
    assert [u["params"] for u in updates] == [
        {"provisionedModelId": moving["arn"], "desiredModelId": "served-model-cmk"},
        {"provisionedModelId": throughput["arn"], "desiredModelId": "served-model-cmk"},
    ]
    [deploy] = entries(plan, "CreateCustomModelDeployment")
    assert deploy["params"]["modelDeploymentName"] == "served-dep-cmk"
    assert deploy["params"]["description"] == "chat" and deploy["params"]["tags"] == [{"key": "app", "value": "chat"}]
    assert deployment["arn"] in deploy["comment"]
    for follow_up in [*updates, deploy]:
        assert follow_up["follow_up"] is True and follow_up["manual"] is True
        validate(follow_up)
    script, _ = render_script(plan)
    command = (
        f"aws bedrock update-provisioned-model-throughput --region {REGION} --provisioned-model-id {throughput['arn']} "
        "--desired-model-id served-model-cmk"
    )
    assert f"#   {command}" in script, "listed where the account's steps are, never run"
    assert f"       {command}" in script, "and in what is left to do"
    assert "aws bedrock update-provisioned-model-throughput" not in commands_run(script)
    assert "aws bedrock create-custom-model-deployment" not in commands_run(script)
    assert "--model-arn \"$(aws bedrock get-custom-model --region us-east-1 --model-identifier served-model-cmk" in script
    # Nothing serves the imported model: no follow-up names it.
    assert not [e for e in plan_json(plan) if e.get("follow_up") and "imported-served" in e["comment"]]


def test_a_failed_throughput_listing_warns_that_follow_ups_may_be_missing(snap: SnapshotBuilder) -> None:
    snap.add_job("served-job", output_model_name="served-model", **DATA)
    snap.add_model("served-model", job_name="served-job")
    snap.add_error(table_name="aws_bedrock_provisioned_model_throughput", operation="ListProvisionedModelThroughputs")
    plan = plan_of(snap)
    [warning] = [w for w in plan.warnings if "aws_bedrock_provisioned_model_throughput" in w]
    assert warning.startswith(f"123456789012/{REGION}: aws_bedrock_provisioned_model_throughput could not be listed")
    assert "may miss a throughput or deployment to move" in warning


def test_a_failed_copy_job_listing_warns_that_copies_cannot_be_told_apart(snap: SnapshotBuilder) -> None:
    snap.add_job("trained-job", output_model_name="trained-model", **DATA)
    snap.add_model("trained-model", job_name="trained-job")
    snap.add_error(table_name="aws_bedrock_model_copy_job", operation="ListModelCopyJobs")
    [warning] = plan_of(snap).warnings
    assert warning.startswith(f"123456789012/{REGION}: aws_bedrock_model_copy_job could not be listed")
    assert "instead of a re-copy" in warning


def test_json_plan_output_is_valid_json_with_every_kind(snap: SnapshotBuilder) -> None:
    snap.add_imported_model("imp", job_name="imp-import")
    snap.add_import_job("imp-import", imported_model_name="imp",
                        imported_model_arn="arn:aws:bedrock:us-east-1:123456789012:imported-model/imp")
    source = snap.add_model("src", model_kms_key_arn=snap.cmk["arn"])
    copy = snap.add_model("cp")
    snap.add_copy_job(source["arn"], copy["arn"])
    data = json.loads(json.dumps(plan_json(plan_of(snap))))
    assert {e["operation"] for e in data} >= {"CreateKey", "CreateModelImportJob", "CreateModelCopyJob"}
    for entry in data:
        assert {"service", "operation", "region", "account_id", "params"} <= set(entry)
