"""`bedrock-sql remediate`: plans from the snapshot, script and JSON output, apply against moto."""

from __future__ import annotations

import json
import sqlite3
import stat
import subprocess
from pathlib import Path
from typing import Any

import boto3
import botocore.session
import pytest
from botocore.validate import validate_parameters

from bedrock_sql.accounts import resolve_scope
from bedrock_sql.aws import AwsOptions
from bedrock_sql.cli import main
from bedrock_sql.errors import UserError
from bedrock_sql.estate import (
    AWS_MANAGED,
    CMK,
    DECOMMISSIONED_CMK,
    RETIRED_CMK,
    create_key,
    seed_demo_estate,
)
from bedrock_sql.remediate import (
    SCRIPT_NAME,
    LiveAws,
    FillIn,
    Unavailable,
    Variable,
    apply_plan,
    key_variable,
    plan_json,
    plan_remediation,
    render_script,
    request_token,
)
from bedrock_sql.snapshot import collect
from bedrock_sql.sql import snapshot_connection

from e2e_helpers import AwsProxy, cli_env, describe, run_cli
from remediate_helpers import backends, counts
from snapshot_builder import ACCOUNT, REGION, SnapshotBuilder

SEED = "bedrock_custom_model_encrypted_with_cmk"
ROLE = f"arn:aws:iam::{ACCOUNT}:role/BedrockCustomization"
OTHER_ROLE = f"arn:aws:iam::{ACCOUNT}:role/DistillationRole"
ADMIN = f"arn:aws:iam::{ACCOUNT}:role/KeyAdmin"
BASE = f"arn:aws:bedrock:{REGION}::foundation-model/amazon.titan-text-express-v1:0:8k"
TEACHER = f"arn:aws:bedrock:{REGION}::foundation-model/meta.llama3-1-70b-instruct-v1:0"
BUCKET = "s3://acme-ml-data"
VPC = {"subnetIds": ["subnet-0a1", "subnet-0b2"], "securityGroupIds": ["sg-0c3"]}
CREATE_CALLS = ("Create", "Put", "Enable", "Update", "Delete", "Schedule", "Tag", "Untag", "Disable", "Stop")


def job_input_shape():
    model = botocore.session.get_session().get_service_model("bedrock")
    return model.operation_model("CreateModelCustomizationJob").input_shape


def run_main(args: list[str], capsys) -> tuple[int, str, str]:
    """The CLI in process: (exit code, stdout, stderr)."""
    with pytest.raises(SystemExit) as exit_info:
        main(args)
    captured = capsys.readouterr()
    return exit_info.value.code, captured.out, captured.err


def job_step(plan, model_arn: str):
    return next(s for s in plan.job_steps if s.model_arn == model_arn)


# --------------------------------------------------------------------------- snapshots


SOURCES = {
    "FINE_TUNING": dict(
        role_arn=ROLE,
        hyper_parameters={"epochCount": "2", "batchSize": "1", "learningRate": "0.00001"},
        training_data_config={"s3Uri": f"{BUCKET}/ft/train.jsonl"},
        validation_data_config={"validators": [{"s3Uri": f"{BUCKET}/ft/validation.jsonl"}]},
        output_data_config={"s3Uri": f"{BUCKET}/ft/output/"},
        vpc_config=VPC,
        customization_config=None,
        tags={"team": "support", "env": "prod"},
    ),
    "CONTINUED_PRE_TRAINING": dict(
        role_arn=ROLE,
        hyper_parameters={"epochCount": "1", "batchSize": "1", "learningRate": "0.000005", "learningRateWarmupSteps": "5"},
        training_data_config={"s3Uri": f"{BUCKET}/cpt/corpus/"},
        validation_data_config=None,
        output_data_config={"s3Uri": f"{BUCKET}/cpt/output/"},
        vpc_config=None,
        customization_config=None,
        tags={"team": "legal"},
    ),
    "DISTILLATION": dict(
        role_arn=OTHER_ROLE,
        hyper_parameters=None,
        training_data_config={
            "s3Uri": f"{BUCKET}/distill/prompts.jsonl",
            "invocationLogsConfig": {"usePromptResponse": True, "invocationLogSource": {"s3Uri": f"{BUCKET}/logs/"}},
        },
        validation_data_config=None,
        output_data_config={"s3Uri": f"{BUCKET}/distill/output/"},
        vpc_config=VPC,
        customization_config={
            "distillationConfig": {
                "teacherModelConfig": {"teacherModelIdentifier": TEACHER, "maxResponseLengthForInference": 1000}
            }
        },
        tags={},
    ),
}


@pytest.fixture
def snap(tmp_path: Path) -> SnapshotBuilder:
    """A snapshot with one failing model per customization type, plus keys of every kind."""
    builder = SnapshotBuilder(tmp_path / "bedrock.db")
    builder.add_run()
    for kind, fields in SOURCES.items():
        name = kind.lower().replace("_", "-")
        builder.add_job(f"{name}-job", customization_type=kind, base_model_arn=BASE, output_model_name=f"{name}-model", **fields)
        builder.add_model(
            f"{name}-model",
            job_name=f"{name}-job",
            customization_type=kind,
            base_model_arn=BASE,
            tags={"model-tag": kind.lower()},
        )
    builder.cmk = builder.add_key("alias/cmk")
    builder.add_alias("alias/cmk", builder.cmk["id"])
    builder.aws_managed = builder.add_key("alias/aws/bedrock", key_manager="AWS")
    builder.disabled = builder.add_key("alias/disabled", key_state="Disabled")
    builder.pending = builder.add_key("alias/pending", key_state="PendingDeletion")
    builder.other_region = builder.add_key("alias/eu", region="eu-west-1")
    builder.asymmetric = builder.add_key("alias/sign", key_spec="RSA_2048", key_usage="SIGN_VERIFY")
    return builder


def model_arn(name: str, region: str = REGION, account: str = ACCOUNT) -> str:
    return f"arn:aws:bedrock:{region}:{account}:custom-model/{name}"


# --------------------------------------------------------------------------- planning


@pytest.mark.parametrize("kind", list(SOURCES))
def test_plan_copies_every_field_of_the_source_job_plus_the_cmk(snap: SnapshotBuilder, kind: str) -> None:
    name = kind.lower().replace("_", "-")
    with snapshot_connection(snap.path) as connection:
        plan = plan_remediation(connection, kms_key=snap.cmk["arn"])
    fields = SOURCES[kind]
    step = job_step(plan, model_arn(f"{name}-model"))
    expected: dict[str, Any] = {
        "jobName": f"{name}-job-cmk",
        "customModelName": f"{name}-model-cmk",
        "roleArn": fields["role_arn"],
        "baseModelIdentifier": BASE,
        "customizationType": kind,
        "trainingDataConfig": fields["training_data_config"],
        "outputDataConfig": fields["output_data_config"],
        "customModelKmsKeyId": snap.cmk["arn"],
        "customModelTags": [{"key": "model-tag", "value": kind.lower()}],
        "clientRequestToken": step.params["clientRequestToken"],
    }
    optional = {
        "validationDataConfig": fields["validation_data_config"],
        "hyperParameters": fields["hyper_parameters"],
        "vpcConfig": fields["vpc_config"],
        "customizationConfig": fields["customization_config"],
        "jobTags": [{"key": k, "value": v} for k, v in sorted(fields["tags"].items())] or None,
    }
    expected.update({k: v for k, v in optional.items() if v})
    assert step.params == expected
    assert (step.service, step.operation, step.region, step.account_id) == (
        "bedrock", "CreateModelCustomizationJob", REGION, ACCOUNT,
    )
    validate_parameters(step.params, job_input_shape())  # exactly what boto3 accepts
    assert len(step.params["clientRequestToken"]) == 36  # a uuid5: deterministic
    with snapshot_connection(snap.path) as connection:
        again = plan_remediation(connection, kms_key=snap.cmk["arn"])
    assert job_step(again, step.model_arn).params == step.params
    if kind == "DISTILLATION":
        teacher = step.params["customizationConfig"]["distillationConfig"]["teacherModelConfig"]
        assert teacher["teacherModelIdentifier"] == TEACHER


def test_plan_targets_only_failing_models(snap: SnapshotBuilder) -> None:
    snap.add_model("compliant", model_kms_key_arn=snap.cmk["arn"])
    snap.add_model("aws-managed", model_kms_key_arn=snap.aws_managed["arn"], job_name="aws-managed-job")
    snap.add_job("aws-managed-job", role_arn=ROLE, training_data_config={"s3Uri": f"{BUCKET}/x"},
                 output_data_config={"s3Uri": f"{BUCKET}/o/"})
    with snapshot_connection(snap.path) as connection:
        plan = plan_remediation(connection, kms_key=snap.cmk["arn"])
    names = sorted(t.model_name for t in plan.targets)
    assert names == ["aws-managed", "continued-pre-training-model", "distillation-model", "fine-tuning-model"]
    assert [m for m in plan.manual_steps] == []
    assert not [s for s in plan.steps if s.operation != "CreateModelCustomizationJob"]  # --kms-key: no key steps


def test_create_key_policy_has_four_statements_with_the_right_principals(snap: SnapshotBuilder) -> None:
    central_admin = "arn:aws:iam::555555555555:role/CentralKeyAdmin"
    with snapshot_connection(snap.path) as connection:
        plan = plan_remediation(
            connection, create_key=True, alias="alias/bedrock-models", key_admin_roles=[ADMIN, central_admin]
        )
    assert [s.operation for s in plan.steps[:3]] == ["CreateKey", "CreateAlias", "EnableKeyRotation"]
    create = plan.steps[0]
    assert (create.service, create.region, create.account_id) == ("kms", REGION, ACCOUNT)
    assert create.params["KeySpec"] == "SYMMETRIC_DEFAULT" and create.params["KeyUsage"] == "ENCRYPT_DECRYPT"
    policy = json.loads(create.params["Policy"])
    statements = {s["Sid"]: s for s in policy["Statement"]}
    assert len(statements) == 4
    root, admins, use, grants = policy["Statement"]
    assert root["Principal"] == {"AWS": f"arn:aws:iam::{ACCOUNT}:root"} and root["Action"] == "kms:*"
    assert admins["Principal"] == {"AWS": sorted([ADMIN, central_admin])}
    assert "kms:ScheduleKeyDeletion" in admins["Action"] and "kms:Decrypt" not in admins["Action"]
    assert use["Principal"] == {"AWS": sorted([ROLE, OTHER_ROLE])}  # the source jobs' service roles
    assert use["Action"] == ["kms:Encrypt", "kms:Decrypt", "kms:ReEncrypt*", "kms:GenerateDataKey*", "kms:DescribeKey"]
    assert grants["Principal"] == use["Principal"]
    assert grants["Action"] == ["kms:CreateGrant", "kms:ListGrants", "kms:RevokeGrant"]
    assert grants["Condition"] == {"Bool": {"kms:GrantIsForAWSResource": "true"}}
    assert all(s["Effect"] == "Allow" and s["Resource"] == "*" for s in policy["Statement"])

    # Later steps refer to the key created first: a typed Variable, never a string shape.
    variable = key_variable(ACCOUNT, REGION)
    placeholder = Variable(variable)
    assert create.outputs == {variable: "KeyMetadata.Arn"}
    assert plan.steps[1].params == {"AliasName": "alias/bedrock-models", "TargetKeyId": placeholder}
    assert plan.steps[2].params == {"KeyId": placeholder}
    assert {s.params["customModelKmsKeyId"] for s in plan.job_steps} == {placeholder}


def test_one_key_per_account_and_region_and_admins_of_the_right_account(tmp_path: Path) -> None:
    other = "210987654321"
    snap = SnapshotBuilder(tmp_path / "bedrock.db")
    snap.add_run()
    for account, region in ((ACCOUNT, "us-east-1"), (ACCOUNT, "eu-west-1"), (other, "us-east-1")):
        snap.add_job("j", account_id=account, region=region, role_arn=f"arn:aws:iam::{account}:role/R",
                     training_data_config={"s3Uri": f"{BUCKET}/t"}, output_data_config={"s3Uri": f"{BUCKET}/o/"})
        snap.add_model("m", account_id=account, region=region, job_name="j")
    admin_here, admin_there = ADMIN, f"arn:aws:iam::{other}:role/KeyAdmin"
    with snapshot_connection(snap.path) as connection:
        plan = plan_remediation(connection, create_key=True, alias="alias/m", key_admin_roles=[admin_here, admin_there])
    creates = [s for s in plan.steps if s.operation == "CreateKey"]
    assert sorted((s.account_id, s.region) for s in creates) == [(ACCOUNT, "eu-west-1"), (ACCOUNT, "us-east-1"), (other, "us-east-1")]
    for step in creates:
        policy = json.loads(step.params["Policy"])
        admins = policy["Statement"][1]["Principal"]["AWS"]
        # A target account's admin role administers that account's keys only.
        assert admins == [f"arn:aws:iam::{step.account_id}:role/KeyAdmin"]
        assert policy["Statement"][2]["Principal"]["AWS"] == [f"arn:aws:iam::{step.account_id}:role/R"]
    assert len({s.params["customModelKmsKeyId"] for s in plan.job_steps}) == 3


def test_existing_alias_in_the_snapshot_is_reused(snap: SnapshotBuilder) -> None:
    with snapshot_connection(snap.path) as connection:
        plan = plan_remediation(connection, create_key=True, alias="alias/cmk")
    assert not [s for s in plan.steps if s.service == "kms"]
    assert {s.params["customModelKmsKeyId"] for s in plan.job_steps} == {snap.cmk["arn"]}


def test_created_copied_and_jobless_models_become_manual_steps(snap: SnapshotBuilder) -> None:
    snap.add_model("imported-model", customization_type="IMPORTED", job_arn=None, job_name=None)
    snap.add_model("orphan-model", job_arn=None, job_name=None)
    copied_from = "arn:aws:bedrock:eu-west-1:123456789012:model-customization-job/origin-job"
    snap.add_model("copied-model", job_arn=copied_from, job_name="origin-job")
    snap.add_model("gone-model", job_name="deleted-job", training_data_config={"s3Uri": f"{BUCKET}/g"})
    with sqlite3.connect(snap.path) as db:  # the builder always names a job; these models have none
        db.execute("UPDATE aws_bedrock_custom_model SET job_name = NULL WHERE job_arn IS NULL")
    db.close()
    with snapshot_connection(snap.path) as connection:
        plan = plan_remediation(connection, kms_key=snap.cmk["arn"])
    manual = {m.model_name: m for m in plan.manual_steps}
    assert sorted(manual) == ["copied-model", "gone-model", "imported-model", "orphan-model"]
    # customization type IMPORTED and no job: made by CreateCustomModel, whose source no API returns.
    created = manual["imported-model"]
    assert created.operation == "CreateCustomModel"
    assert created.params["modelKmsKeyArn"] == snap.cmk["arn"]
    assert "modelSourceConfig" in created.reason and isinstance(created.params["modelSourceConfig"]["s3DataSource"]["s3Uri"], FillIn)
    for name in ("copied-model", "orphan-model"):
        assert manual[name].operation == "CreateModelCopyJob"
        assert manual[name].params["modelKmsKeyId"] == snap.cmk["arn"]
        assert "modelKmsKeyId" in manual[name].reason and "importedModelKmsKeyId" in manual[name].reason
    assert "eu-west-1" in manual["copied-model"].reason
    gone = manual["gone-model"]
    assert gone.operation == "CreateModelCustomizationJob"
    assert gone.params["trainingDataConfig"] == {"s3Uri": f"{BUCKET}/g"}
    assert gone.params["customModelKmsKeyId"] == snap.cmk["arn"]
    # None of them is an API step, and JSON marks them manual, after the API steps.
    assert {s.model_arn for s in plan.job_steps}.isdisjoint({m.model_arn for m in plan.manual_steps})
    entries = plan_json(plan)
    assert [e["manual"] for e in entries] == [False] * len(plan.steps) + [True] * 4


def test_missing_source_job_is_fetched_with_get_model_customization_job(snap: SnapshotBuilder) -> None:
    snap.add_model("late-model", job_name="late-job")
    seen = []

    def lookup(account_id: str, region: str, name: str):
        seen.append((account_id, region, name))
        return {
            "jobArn": f"arn:aws:bedrock:{region}:{account_id}:model-customization-job/{name}",
            "jobName": name,
            "roleArn": ROLE,
            "baseModelArn": BASE,
            "customizationType": "FINE_TUNING",
            "trainingDataConfig": {"s3Uri": f"{BUCKET}/late/train.jsonl"},
            "outputDataConfig": {"s3Uri": f"{BUCKET}/late/output/"},
            "hyperParameters": {"epochCount": "3"},
            "tags": {"team": "late"},
        }

    with snapshot_connection(snap.path) as connection:
        plan = plan_remediation(connection, kms_key=snap.cmk["arn"], source_job_lookup=lookup)
    assert seen == [(ACCOUNT, REGION, "late-job")]
    step = job_step(plan, model_arn("late-model"))
    assert step.params["trainingDataConfig"] == {"s3Uri": f"{BUCKET}/late/train.jsonl"}
    assert step.params["jobTags"] == [{"key": "team", "value": "late"}]

    def unavailable(account_id, region, name):
        raise Unavailable("no AWS credentials found")

    with snapshot_connection(snap.path) as connection:
        plan = plan_remediation(connection, kms_key=snap.cmk["arn"], source_job_lookup=unavailable)
    (manual,) = plan.manual_steps
    assert manual.model_name == "late-model" and "no AWS credentials found" in manual.reason


def test_long_names_are_shortened_to_bedrock_limits(tmp_path: Path) -> None:
    snap = SnapshotBuilder(tmp_path / "bedrock.db")
    snap.add_run()
    long = "a" * 60
    snap.add_job(long + "-job", role_arn=ROLE, training_data_config={"s3Uri": f"{BUCKET}/t"}, output_data_config={"s3Uri": f"{BUCKET}/o/"})
    snap.add_model(long, job_name=long + "-job")
    key = snap.add_key("alias/k")
    with snapshot_connection(snap.path) as connection:
        (step,) = plan_remediation(connection, kms_key=key["arn"], suffix="-cmk-2026").job_steps
    assert len(step.params["jobName"]) <= 63 and step.params["jobName"].endswith("-cmk-2026")
    assert len(step.params["customModelName"]) <= 63 and step.params["customModelName"].endswith("-cmk-2026")


def test_region_filter_and_named_models(snap: SnapshotBuilder) -> None:
    snap.add_job("eu-job", region="eu-west-1", role_arn=ROLE, training_data_config={"s3Uri": f"{BUCKET}/t"},
                 output_data_config={"s3Uri": f"{BUCKET}/o/"})
    snap.add_model("eu-model", region="eu-west-1", job_name="eu-job")
    with snapshot_connection(snap.path) as connection:
        plan = plan_remediation(connection, kms_key=snap.other_region["arn"], regions=["eu-west-1"])
        assert [t.model_name for t in plan.targets] == ["eu-model"]
        plan = plan_remediation(connection, kms_key=snap.cmk["arn"], models=[model_arn("fine-tuning-model")])
        assert [t.model_name for t in plan.targets] == ["fine-tuning-model"]


# --------------------------------------------------------------------------- refusals


@pytest.mark.parametrize(
    "args, message",
    [
        (["--kms-key", "{aws_managed}"], "is an AWS managed key"),
        (["--kms-key", "{disabled}"], "is disabled"),
        (["--kms-key", "{pending}"], "is pending deletion"),
        (["--kms-key", "{other_region}"], "needs a key in its own region"),
        (["--kms-key", "{asymmetric}"], "symmetric encryption key"),
        (["--kms-key", "arn:aws:kms:us-east-1:123456789012:key/00000000-0000-0000-0000-00000000ffff"], "is not in the snapshot"),
        (["--kms-key", "not-an-arn"], "needs a key or alias ARN"),
        (["--kms-key", "{cmk}", "--model", "arn:aws:bedrock:us-east-1:123456789012:custom-model/nope"], "unknown model"),
        (["--create-key"], "--create-key needs --alias"),
        (["--create-key", "--alias", "bedrock-models"], "must start with alias/"),
        (["--create-key", "--alias", "alias/aws/bedrock"], "reserved for AWS managed keys"),
        (["--create-key", "--alias", "alias/bad name"], "use letters, digits"),
        (["--create-key", "--alias", "alias/x", "--key-admin-role", "admin"], "needs an IAM role ARN"),
        (["--create-key", "--alias", "alias/x", "--kms-key", "{cmk}"], "not both"),
        ([], "choose the key"),
        (["--kms-key", "{cmk}", "--alias", "alias/x"], "--alias names a key that --create-key creates"),
        (["--kms-key", "{cmk}", "--suffix", ""], "--suffix must not be empty"),
        (["--kms-key", "{cmk}", "--suffix", "_new!"], "--suffix"),
        (["--kms-key", "{cmk}", "--apply"], "confirm on a terminal, or pass --yes"),
        (["--kms-key", "{cmk}", "--apply", "--yes", "--output", "json"], "leave out --output"),
        (["--kms-key", "{cmk}", "--apply", "--yes", "--out-dir", "x"], "leave out --out-dir"),
    ],
)
def test_refusals_are_one_line_and_exit_2(snap: SnapshotBuilder, args, message, capsys, tmp_path: Path) -> None:
    keys = {name: getattr(snap, name)["arn"] for name in ("cmk", "aws_managed", "disabled", "pending", "other_region", "asymmetric")}
    args = [a.format(**keys) for a in args]
    out_dir = [] if "--apply" in args else ["--out-dir", str(tmp_path / "plan")]
    code, out, err = run_main(["--db", str(snap.path), "remediate", *out_dir, *args], capsys)
    assert code == 2, err
    assert err.count("\n") == 1 and err.startswith("bedrock-sql: error: "), err
    assert message in err
    assert "Traceback" not in err
    assert not (tmp_path / "plan").exists()  # nothing written


def test_job_name_taken_by_another_job_is_refused(snap: SnapshotBuilder, capsys) -> None:
    snap.add_job("fine-tuning-job-cmk", client_request_token="someone-else")
    code, _, err = run_main(["--db", str(snap.path), "remediate", "--kms-key", snap.cmk["arn"], "-o", "json"], capsys)
    assert code == 2 and "already exists" in err and "--suffix" in err and err.count("\n") == 1


def test_unusable_existing_alias_is_refused(snap: SnapshotBuilder, capsys) -> None:
    snap.add_alias("alias/disabled", snap.disabled["id"])
    code, _, err = run_main(["--db", str(snap.path), "remediate", "--create-key", "--alias", "alias/disabled"], capsys)
    assert code == 2 and "already exists" in err and "disabled" in err and err.count("\n") == 1


def test_nothing_to_remediate_exits_0(tmp_path: Path, capsys) -> None:
    snap = SnapshotBuilder(tmp_path / "bedrock.db")
    snap.add_run()
    key = snap.add_key("alias/k")
    snap.add_model("fine", model_kms_key_arn=key["arn"])
    code, out, err = run_main(["--db", str(snap.path), "remediate", "--kms-key", key["arn"], "--out-dir", str(tmp_path / "p")], capsys)
    assert code == 0 and out == "" and "nothing to remediate" in err
    assert not (tmp_path / "p").exists()
    code, out, err = run_main(["--db", str(snap.path), "remediate", "--kms-key", key["arn"], "-o", "json"], capsys)
    assert code == 0 and json.loads(out) == [] and "nothing to remediate" in err


# --------------------------------------------------------------------------- output


def test_json_output_has_the_five_fields_and_exact_params(snap: SnapshotBuilder, capsys) -> None:
    code, out, err = run_main(
        ["--db", str(snap.path), "remediate", "--create-key", "--alias", "alias/new", "--key-admin-role", ADMIN, "-o", "json"], capsys
    )
    assert code == 0, err
    steps = json.loads(out)
    assert [s["operation"] for s in steps] == ["CreateKey", "CreateAlias", "EnableKeyRotation"] + ["CreateModelCustomizationJob"] * 3
    for entry in steps:
        assert {"service", "operation", "region", "account_id", "params"} <= set(entry)
        assert (entry["region"], entry["account_id"]) == (REGION, ACCOUNT)
    with snapshot_connection(snap.path) as connection:
        plan = plan_remediation(connection, create_key=True, alias="alias/new", key_admin_roles=[ADMIN])
    assert steps == json.loads(json.dumps(plan_json(plan)))
    # The new key's ARN is a typed placeholder, and the entry says where it sits.
    assert steps[1]["params"]["TargetKeyId"] == {"variable": key_variable(ACCOUNT, REGION)}
    assert steps[1]["placeholders"] == [["TargetKeyId"]] and "placeholders" not in steps[0]
    kms = botocore.session.get_session().get_service_model("kms")
    validate_parameters(steps[0]["params"], kms.operation_model("CreateKey").input_shape)
    for entry in steps[3:]:
        assert entry["placeholders"] == [["customModelKmsKeyId"]]
        validate_parameters({**entry["params"], "customModelKmsKeyId": "alias/new"}, job_input_shape())


def test_script_is_valid_bash_with_the_commands_and_the_policy_beside_it(snap: SnapshotBuilder, tmp_path: Path, capsys) -> None:
    out_dir = tmp_path / "plan"
    args = ["--db", str(snap.path), "remediate", "--create-key", "--alias", "alias/new", "--key-admin-role", ADMIN, "--out-dir", str(out_dir)]
    code, out, err = run_main(args, capsys)
    assert code == 0, err
    script = out_dir / SCRIPT_NAME
    policy_file = out_dir / f"key-policy-{ACCOUNT}-{REGION}.json"
    assert str(script) in out
    assert sorted(p.name for p in out_dir.iterdir()) == sorted([SCRIPT_NAME, policy_file.name])
    text = script.read_text()
    assert subprocess.run(["bash", "-n", str(script)], capture_output=True).returncode == 0
    assert text.startswith("#!/usr/bin/env bash\n") and "\nset -euo pipefail\n" in text
    variable = key_variable(ACCOUNT, REGION)
    assert f'{variable}="$(aws kms create-key' in text
    assert f'--policy file://"$HERE"/{policy_file.name}' in text
    assert "--query KeyMetadata.Arn --output text" in text
    assert f'aws kms create-alias --region {REGION} --alias-name alias/new --target-key-id "${variable}"' in text
    assert f'aws kms enable-key-rotation --region {REGION} --key-id "${variable}"' in text
    assert [line.strip() for line in text.splitlines()].count("aws bedrock create-model-customization-job \\") == 3
    assert f'--custom-model-kms-key-id "${variable}"' in text
    assert "--job-name fine-tuning-job-cmk" in text and "--custom-model-name fine-tuning-model-cmk" in text
    assert "--vpc-config '" + json.dumps(VPC, separators=(",", ":"), sort_keys=True) + "'" in text
    assert "# Model fine-tuning-model" in text
    with snapshot_connection(snap.path) as connection:
        plan = plan_remediation(connection, create_key=True, alias="alias/new", key_admin_roles=[ADMIN])
    assert json.loads(policy_file.read_text()) == json.loads(plan.steps[0].params["Policy"])
    # The files map the estate: readable by their owner only.
    assert stat.S_IMODE(script.stat().st_mode) == 0o700 and stat.S_IMODE(policy_file.stat().st_mode) == 0o600

    # Never overwritten without --force.
    before = script.read_text()
    code, _, err = run_main(args, capsys)
    assert code == 2 and "already exists" in err and "--force" in err and err.count("\n") == 1
    assert script.read_text() == before
    code, _, err = run_main([*args, "--force"], capsys)
    assert code == 0, err


def test_script_quotes_json_for_the_shell(tmp_path: Path) -> None:
    snap = SnapshotBuilder(tmp_path / "bedrock.db")
    snap.add_run()
    # Hyperparameter values have no pattern in the API: any text reaches AWS, so the script must carry it exactly.
    odd = {"epochCount": "2", "note": "it's $HOME `x` \"q\" $(touch pwned)"}
    snap.add_job("j", role_arn=ROLE, hyper_parameters=odd, training_data_config={"s3Uri": f"{BUCKET}/t"},
                 output_data_config={"s3Uri": f"{BUCKET}/o/"})
    snap.add_model("m", job_name="j")
    # An S3 URI AWS would refuse (its pattern has no $, backtick or "): that model is a manual step, never run.
    snap.add_job("j2", role_arn=ROLE, training_data_config={"s3Uri": "s3://bucket/it's $HOME `x` \"q\"/train.jsonl"},
                 output_data_config={"s3Uri": f"{BUCKET}/o/"})
    snap.add_model("m2", job_name="j2")
    key = snap.add_key("alias/k")
    with snapshot_connection(snap.path) as connection:
        plan = plan_remediation(connection, kms_key=key["arn"])
    script, _ = render_script(plan)
    line = next(l for l in script.splitlines() if "--hyper-parameters" in l and not l.lstrip().startswith("#"))
    argument = line.strip().removeprefix("--hyper-parameters ").removesuffix(" \\")
    echoed = subprocess.run(["bash", "-c", f"printf %s {argument}"], capture_output=True, text=True, check=True).stdout
    assert json.loads(echoed) == odd
    [manual] = plan.manual_steps
    assert manual.model_name == "m2" and "trainingDataConfig.s3Uri" in manual.reason and "pattern" in manual.reason
    assert [s.params["customModelName"] for s in plan.job_steps] == ["m-cmk"]


# --------------------------------------------------------------------------- apply (moto)


def _collect(db: Path, regions=("us-east-1", "eu-west-1")) -> None:
    collect(resolve_scope(AwsOptions(regions=tuple(regions))), db)


def test_apply_creates_key_alias_and_jobs_and_a_second_apply_creates_nothing(aws: boto3.Session, tmp_path: Path) -> None:
    estate = seed_demo_estate(aws)
    db = tmp_path / "bedrock.db"
    _collect(db)
    with snapshot_connection(db) as connection:
        plan = plan_remediation(connection, create_key=True, alias="alias/bedrock-cmk", key_admin_roles=[f"arn:aws:iam::{ACCOUNT}:role/KeyAdmin"])
    failing = {m.model_arn for m in estate.models if m.case in ("bedrock_owned", "aws_managed")}
    assert {t.model_arn for t in plan.targets} == failing
    before = counts()

    events: list[str] = []
    result = apply_plan(plan, LiveAws(AwsOptions()), on_event=events.append)
    assert len(result.created_keys) == 2 and len(result.started_jobs) == len(failing)
    after = counts()
    assert after == {"jobs": before["jobs"] + len(failing), "keys": before["keys"] + 2, "aliases": before["aliases"] + 2}

    bedrock, kms = backends()
    for region in ("us-east-1", "eu-west-1"):
        client = aws.client("kms", region_name=region)
        key = client.describe_key(KeyId="alias/bedrock-cmk")["KeyMetadata"]
        assert key["KeyManager"] == "CUSTOMER" and key["KeyState"] == "Enabled"
        assert client.get_key_rotation_status(KeyId=key["KeyId"])["KeyRotationEnabled"] is True
        policy = json.loads(client.get_key_policy(KeyId=key["KeyId"], PolicyName="default")["Policy"])
        assert len(policy["Statement"]) == 4
        for step in plan.job_steps:
            if step.region != region:
                continue
            job = bedrock[region].model_customization_jobs[step.params["jobName"]]
            assert job.custom_model_kms_key_id == key["Arn"]  # moto keeps what the request named
            source = next(j for j in estate.jobs if j["model_arn"] == step.model_arn)
            seeded = bedrock[region].model_customization_jobs[source["job_name"]]
            assert job.role_arn == seeded.role_arn
            assert job.training_data_config == seeded.training_data_config
            assert job.output_data_config == seeded.output_data_config
            assert job.hyper_parameters == seeded.hyper_parameters
            assert job.vpc_config == seeded.vpc_config
            assert job.customization_type == seeded.customization_type
            assert job.client_request_token == step.params["clientRequestToken"]
    assert any("started job" in e for e in events)

    # Again: the alias names the key, the jobs exist with our token - nothing new.
    events.clear()
    again = apply_plan(plan, LiveAws(AwsOptions()), on_event=events.append)
    assert not again.created_anything
    assert len(again.reused_keys) == 2 and len(again.existing_jobs) == len(failing)
    assert counts() == after
    assert all("already exists" in e for e in events)


def test_apply_with_an_existing_cmk_per_region(aws: boto3.Session, tmp_path: Path) -> None:
    estate = seed_demo_estate(aws)
    db = tmp_path / "bedrock.db"
    _collect(db)
    keys = [estate.key(CMK, region).arn for region in ("us-east-1", "eu-west-1")]
    with snapshot_connection(db) as connection:
        plan = plan_remediation(connection, kms_key=keys)
    before = counts()
    result = apply_plan(plan, LiveAws(AwsOptions()))
    assert not result.created_keys and len(result.started_jobs) == len(plan.targets)
    assert counts()["keys"] == before["keys"]
    bedrock, _ = backends()
    for step in plan.job_steps:
        job = bedrock[step.region].model_customization_jobs[step.params["jobName"]]
        assert job.custom_model_kms_key_id == estate.key(CMK, step.region).arn


def test_demo_keys_that_are_refused(aws: boto3.Session, tmp_path: Path) -> None:
    estate = seed_demo_estate(aws, regions=("us-east-1",))
    db = tmp_path / "bedrock.db"
    _collect(db, ("us-east-1",))
    with snapshot_connection(db) as connection:
        for alias, reason in ((AWS_MANAGED, "AWS managed"), (RETIRED_CMK, "disabled"), (DECOMMISSIONED_CMK, "pending deletion")):
            with pytest.raises(UserError, match=reason):
                plan_remediation(connection, kms_key=estate.key(alias, "us-east-1").arn)


def test_kms_key_missing_from_the_snapshot_is_described_live_when_applying(aws: boto3.Session, tmp_path: Path, capsys) -> None:
    seed_demo_estate(aws, regions=("us-east-1",))
    db = tmp_path / "bedrock.db"
    _collect(db, ("us-east-1",))
    fresh = create_key(aws, "us-east-1", alias="alias/made-after-collect")
    disabled = create_key(aws, "us-east-1", alias="alias/disabled-after-collect", state="Disabled")
    code, _, err = run_main(["--db", str(db), "remediate", "--kms-key", fresh.arn, "-o", "json"], capsys)
    assert code == 2 and "not in the snapshot" in err
    code, _, err = run_main(["--db", str(db), "remediate", "--kms-key", disabled.arn, "--apply", "--yes"], capsys)
    assert code == 2 and "is disabled" in err and err.count("\n") == 1
    code, out, err = run_main(["--db", str(db), "remediate", "--kms-key", fresh.arn, "--apply", "--yes"], capsys)
    assert code == 0, err
    assert "started job" in out and "Left to do" in out


def test_planning_changes_nothing_in_aws(aws: boto3.Session, tmp_path: Path, capsys) -> None:
    estate = seed_demo_estate(aws)
    db = tmp_path / "bedrock.db"
    _collect(db)
    # One source job missing from the snapshot: planning fetches it (GetModelCustomizationJob), read-only.
    missing = next(m for m in estate.models if m.case == "bedrock_owned")
    with sqlite3.connect(db) as connection:
        connection.execute("DELETE FROM aws_bedrock_model_customization_job WHERE arn = ?", (missing.job_arn,))
    connection.close()
    before = counts()
    calls: list[str] = []
    live = LiveAws(AwsOptions())
    for account in live.scope("us-east-1").accounts:
        account.session.events.register("before-call", lambda model, **_: calls.append(model.name))
    with snapshot_connection(db) as connection:
        plan = plan_remediation(connection, create_key=True, alias="alias/x", source_job_lookup=live.job)
    fetched = job_step(plan, missing.model_arn)
    assert fetched.params["roleArn"].endswith(":role/BedrockCustomizationRole")
    assert "GetModelCustomizationJob" in calls
    assert not [c for c in calls if c.startswith(CREATE_CALLS)]
    for output in (["--out-dir", str(tmp_path / "p")], ["-o", "json"]):
        code, _, err = run_main(["--db", str(db), "remediate", "--create-key", "--alias", "alias/x", *output], capsys)
        assert code == 0, err
    assert counts() == before
    assert not aws.client("kms").list_aliases()["Aliases"] or all(
        a["AliasName"] != "alias/x" for a in aws.client("kms").list_aliases()["Aliases"]
    )


# --------------------------------------------------------------------------- the CLI against a moto server


def _seed_server(server_session: boto3.Session, moto_url: str, cwd: Path) -> tuple[Any, dict[str, str]]:
    estate = seed_demo_estate(server_session, regions=("us-east-1",), endpoint_url=moto_url)
    env = cli_env(moto_url)
    result = run_cli(["collect", "--region", "us-east-1"], cwd=cwd, env=env)
    assert result.returncode == 0, describe(result)
    return estate, env


def test_cli_apply_against_a_moto_server_then_again(server_session: boto3.Session, moto_url: str, tmp_path: Path) -> None:
    estate, env = _seed_server(server_session, moto_url, tmp_path)
    failing = [m for m in estate.models if m.case in ("bedrock_owned", "aws_managed")]

    # The plan alone sends nothing to AWS.
    with AwsProxy(moto_url) as proxy:
        planned = run_cli(["remediate", "--create-key", "--alias", "alias/bedrock-cmk", "-o", "json"], cwd=tmp_path,
                          env=cli_env(proxy.url))
    assert planned.returncode == 0, describe(planned)
    assert proxy.requests == []

    args = ["remediate", "--create-key", "--alias", "alias/bedrock-cmk", "--key-admin-role", ADMIN, "--apply", "--yes"]
    first = run_cli(args, cwd=tmp_path, env=env)
    assert first.returncode == 0, describe(first)
    kms = server_session.client("kms", region_name="us-east-1", endpoint_url=moto_url)
    key_arn = kms.describe_key(KeyId="alias/bedrock-cmk")["KeyMetadata"]["Arn"]
    bedrock, _ = backends()
    for model in failing:
        job_name = f"{model.job_name}-cmk"
        job = bedrock["us-east-1"].model_customization_jobs[job_name]
        assert job.custom_model_kms_key_id == key_arn
        assert job.job_arn in first.stdout
    assert "Left to do" in first.stdout and "delete the old model" in first.stdout

    held = counts(("us-east-1",))
    second = run_cli(args, cwd=tmp_path, env=env)
    assert second.returncode == 0, describe(second)
    assert "Nothing created" in second.stdout
    assert counts(("us-east-1",)) == held


def test_request_token_is_deterministic() -> None:
    from bedrock_sql.remediate import KeyChoice

    key = KeyChoice(account_id=ACCOUNT, region=REGION, arn="arn:aws:kms:us-east-1:123456789012:key/k")
    other = KeyChoice(account_id=ACCOUNT, region=REGION, arn="arn:aws:kms:us-east-1:123456789012:key/other")
    token = request_token("arn:job", "-cmk", key)
    assert token == request_token("arn:job", "-cmk", key)
    assert token != request_token("arn:job", "-cmk", other) != request_token("arn:job", "-v2", key)


class _Terminal:
    """A stdin that says it is a terminal and answers the prompt with ``answer``."""

    def __init__(self, answer: str):
        self.lines = [answer + "\n"]

    def isatty(self) -> bool:
        return True

    def readline(self, *args) -> str:
        return self.lines.pop(0) if self.lines else ""

    def read(self, *args) -> str:
        return self.readline()


@pytest.mark.parametrize("answer", ["n", "y"])
def test_apply_asks_before_changing_anything(aws: boto3.Session, tmp_path: Path, capsys, monkeypatch, answer) -> None:
    """Declining is an answer, not an alarm: exit 0 and nothing changed (1 means "alarm" to CI)."""
    seed_demo_estate(aws, regions=("us-east-1",))
    db = tmp_path / "bedrock.db"
    _collect(db, ("us-east-1",))
    before = counts(("us-east-1",))
    monkeypatch.setattr("sys.stdin", _Terminal(answer))
    got, out, err = run_main(["--db", str(db), "remediate", "--create-key", "--alias", "alias/asked", "--apply"], capsys)
    assert got == 0, err
    assert "Create these in AWS?" in out
    if answer == "n":
        assert err == "Nothing changed in AWS.\n" and counts(("us-east-1",)) == before
    else:
        assert counts(("us-east-1",))["jobs"] > before["jobs"] and "started job" in out


def test_apply_refuses_what_appeared_after_the_collect(aws: boto3.Session, tmp_path: Path, capsys) -> None:
    estate = seed_demo_estate(aws, regions=("us-east-1",))
    db = tmp_path / "bedrock.db"
    _collect(db, ("us-east-1",))
    # The alias now names a disabled key: reusing it would fail the jobs.
    create_key(aws, "us-east-1", alias="alias/late", state="Disabled")
    code, _, err = run_main(["--db", str(db), "remediate", "--create-key", "--alias", "alias/late", "--apply", "--yes"], capsys)
    assert code == 2 and "alias/late already exists" in err and "is disabled" in err and err.count("\n") == 1

    # A job with the planned name, started by someone else (another client request token).
    target = next(m for m in estate.models if m.case == "bedrock_owned")
    bedrock = aws.client("bedrock", region_name="us-east-1")
    bedrock.create_model_customization_job(
        jobName=f"{target.job_name}-cmk", customModelName="someone-elses-model", roleArn=ROLE,
        baseModelIdentifier="amazon.titan-text-express-v1:0:8k", clientRequestToken="someone-else",
        trainingDataConfig={"s3Uri": f"{BUCKET}/t"}, outputDataConfig={"s3Uri": f"{BUCKET}/o/"},
    )
    before = counts(("us-east-1",))
    code, out, err = run_main(
        ["--db", str(db), "remediate", "--create-key", "--alias", "alias/fresh", "--model", target.model_arn, "--apply", "--yes"],
        capsys,
    )
    assert code == 2 and "already exists" in err and "--suffix" in err and err.count("\n") == 1
    assert "nothing changed" in err
    assert counts(("us-east-1",)) == before  # refused before creating even the key


def test_apply_needs_every_account_of_the_plan(aws: boto3.Session, tmp_path: Path) -> None:
    other = "210987654321"
    snap = SnapshotBuilder(tmp_path / "bedrock.db")
    snap.add_run()
    snap.add_job("j", account_id=other, role_arn=f"arn:aws:iam::{other}:role/R",
                 training_data_config={"s3Uri": f"{BUCKET}/t"}, output_data_config={"s3Uri": f"{BUCKET}/o/"})
    snap.add_model("m", account_id=other, job_name="j")
    with snapshot_connection(snap.path) as connection:
        plan = plan_remediation(connection, create_key=True, alias="alias/k")
    before = counts(("us-east-1",))
    with pytest.raises(UserError, match=f"acts in account {other}, but the AWS options reach only {ACCOUNT}"):
        apply_plan(plan, LiveAws(AwsOptions()))
    assert counts(("us-east-1",)) == before


def test_the_follow_up_collect_names_the_plan_regions():
    from bedrock_sql.remediate import Plan, Step, next_steps

    plan = Plan()
    plan.steps.append(Step(service="kms", operation="CreateKey", region="eu-west-1", account_id="123456789012", params={}))
    lines = next_steps(plan)
    assert any("bedrock-sql collect --region eu-west-1 &&" in line for line in lines), lines
