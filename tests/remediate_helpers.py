"""Shared by the remediate tests: what moto holds, a small estate on the moto server, the
generated script run with the real AWS CLI, and proxy rules that fail a call once."""

from __future__ import annotations

import os
import shutil
import subprocess
import threading
from pathlib import Path

import boto3
import pytest

from bedrock_sql.estate import SeededModel, seed_models
from bedrock_sql.remediate import SCRIPT_NAME

from e2e_helpers import AwsRequest, CannedResponse, Rule, cli_env, describe, run_cli

ACCOUNT = "123456789012"  # moto's default account
REGION = "us-east-1"
ALIAS = "alias/bedrock-cmk"


AWS_CLI_HINT = "the AWS CLI is not installed: apt-get install awscli, or pip install awscli (.ci/run installs it)"


def require_aws_cli() -> str:
    """The AWS CLI's path; skips the test where it is missing, except under CI (``CI=true``),
    where ``.ci/run`` installs it: there a missing CLI fails, so a CI machine without it can
    never pass the remediation-script tests by skipping them (as tests/browser.py does for
    Chromium)."""
    path = shutil.which("aws")
    if path is None:
        if os.environ.get("CI") == "true":
            pytest.fail(AWS_CLI_HINT, pytrace=False)
        pytest.skip(AWS_CLI_HINT)
    return path


@pytest.fixture
def aws_cli() -> str:
    """For tests that run the generated script with the real AWS CLI (import it into the module)."""
    return require_aws_cli()


def backends(account: str = ACCOUNT):
    """moto's Bedrock and KMS backends of ``account`` (shared with the in-process moto server)."""
    from moto.bedrock.models import bedrock_backends
    from moto.kms.models import kms_backends

    return bedrock_backends[account], kms_backends[account]


def counts(regions=("us-east-1", "eu-west-1")) -> dict[str, int]:
    """Customization jobs, KMS keys and aliases (AWS managed ones left out) that moto holds."""
    bedrock, kms = backends()
    return {
        "jobs": sum(len(bedrock[r].model_customization_jobs) for r in regions),
        "keys": sum(len(kms[r].keys) for r in regions),
        "aliases": sum(
            1 for r in regions for key in kms[r].keys.values() for name in key.aliases if not name.startswith("alias/aws/")
        ),
    }


def seed_and_collect(server_session: boto3.Session, moto_url: str, cwd: Path, models: int = 1) -> list[SeededModel]:
    """``models`` failing fine-tuned models (Bedrock-owned key) in us-east-1, collected into cwd/bedrock.db."""
    seeded = seed_models(server_session, REGION, models, endpoint_url=moto_url)
    # Every key: remediation is given keys no model uses yet (--kms-key).
    collected = run_cli(["collect", "--kms-keys", "all", "--region", REGION], cwd=cwd, env=cli_env(moto_url))
    assert collected.returncode == 0, describe(collected)
    return seeded


def write_script(cwd: Path, moto_url: str, alias: str = ALIAS) -> Path:
    """``remediate --create-key --alias ALIAS`` into cwd/plan; the script's path."""
    written = run_cli(["remediate", "--create-key", "--alias", alias, "--out-dir", str(cwd / "plan")], cwd=cwd, env=cli_env(moto_url))
    assert written.returncode == 0, describe(written)
    return cwd / "plan" / SCRIPT_NAME


def run_script(script: Path, endpoint_url: str, path: str | None = None) -> subprocess.CompletedProcess:
    """The script under bash, its AWS CLI pointed at ``endpoint_url`` (moto, or a proxy in front of it).

    ``path`` replaces PATH (a fake ``aws`` first, say); by default the machine's PATH, where
    the real AWS CLI is.
    """
    env = cli_env(endpoint_url, PATH=path if path is not None else os.environ["PATH"])
    bash = shutil.which("bash") or "/bin/bash"  # found on the test's PATH, whatever ``path`` holds
    return subprocess.run([bash, str(script)], env=env, capture_output=True, text=True, timeout=240)


def key_by_alias(server_session: boto3.Session, moto_url: str, alias: str = ALIAS) -> dict:
    kms = server_session.client("kms", region_name=REGION, endpoint_url=moto_url)
    return kms.describe_key(KeyId=alias)["KeyMetadata"]


def fail_once(service: str, operation: str, *, nth: int = 1, code: str = "AccessDeniedException") -> Rule:
    """A rule that answers the ``nth`` call of ``operation`` with HTTP 403 ``code``, and only that call."""
    lock = threading.Lock()
    seen = [0]

    def rule(request: AwsRequest) -> CannedResponse | None:
        if request.service != service or request.operation != operation:
            return None
        with lock:
            seen[0] += 1
            if seen[0] != nth:
                return None
        return CannedResponse.aws_error_for(request, 403, code, f"denied by the test ({operation} #{nth})")

    return rule


def seed_job(
    session: boto3.Session,
    url: str,
    name: str,
    *,
    hyper_parameters: dict[str, str] | None = None,
    job_tags: dict[str, str] | None = None,
    model_tags: dict[str, str] | None = None,
    training_uri: str = "s3://acme-ml-data/train.jsonl",
    role_arn: str = f"arn:aws:iam::{ACCOUNT}:role/BedrockCustomizationRole",
) -> str:
    """A completed fine-tuning job ``NAME-job`` and its model ``NAME`` on the Bedrock-owned key,
    created over HTTP with any text moto takes (it checks no pattern); the model's ARN."""
    bedrock = session.client("bedrock", region_name=REGION, endpoint_url=url)
    bedrock.create_model_customization_job(
        jobName=f"{name}-job", customModelName=name, roleArn=role_arn, clientRequestToken=f"{name}-token",
        baseModelIdentifier="amazon.titan-text-express-v1:0:8k", customizationType="FINE_TUNING",
        hyperParameters=hyper_parameters or {"epochCount": "1"},
        trainingDataConfig={"s3Uri": training_uri}, outputDataConfig={"s3Uri": "s3://acme-ml-data/output/"},
        jobTags=[{"key": k, "value": v} for k, v in (job_tags or {}).items()],
        customModelTags=[{"key": k, "value": v} for k, v in (model_tags or {}).items()],
    )
    backend, _ = backends()
    job, model = backend[REGION].model_customization_jobs[f"{name}-job"], backend[REGION].custom_models[name]
    # moto: jobs stay InProgress and invent keys; make them what AWS answers for a finished job.
    job.status, job.output_model_kms_key_arn = "Completed", None
    job.output_model_name, job.output_model_arn = name, model.model_arn
    model.model_kms_key_arn = None
    return model.model_arn
