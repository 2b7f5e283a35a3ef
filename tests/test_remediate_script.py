"""The remediation script is as careful as --apply: every check RUN with the real AWS CLI.

The script is written by `bedrock-sql remediate` from a snapshot of a moto server, then run
under bash with the machine's AWS CLI pointed at that server (or at a fault-injecting proxy
in front of it). What AWS holds afterwards is counted in moto itself.
"""

from __future__ import annotations

import json
import os
import shutil
import stat
from pathlib import Path

import boto3
import pytest

from bedrock_sql.estate import SeededModel, create_key, seed_demo_estate

from conftest import reset_moto_server
from e2e_helpers import AwsProxy, cli_env, deny, describe, run_cli
from remediate_helpers import (  # noqa: F401 -- aws_cli is a fixture
    ACCOUNT,
    ALIAS,
    REGION,
    aws_cli,
    backends,
    counts,
    fail_once,
    key_by_alias,
    run_script,
    seed_and_collect,
    write_script,
)

# Skipped without the AWS CLI, except under CI=true: there a missing CLI fails (remediate_helpers).
pytestmark = pytest.mark.usefixtures("aws_cli")

US = (REGION,)
# Calls that change something: none may reach AWS when the script stops in its checks.
CHANGES = ("Create", "Put", "Enable", "Update", "Delete", "Schedule", "Tag", "Untag", "Disable", "Cancel")


def changes(proxy: AwsProxy) -> list[str]:
    return [op for op in proxy.operations() if op and op.startswith(CHANGES)]


@pytest.fixture(scope="module")
def one_model_plan(moto_server: str, tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, SeededModel]:
    """The script for one failing model, written once for the module (collect and plan take seconds).

    The script needs nothing of the estate it was planned from (it copies the job's request),
    so each test starts from an empty moto server (``moto_url``) and arranges what it needs.
    """
    reset_moto_server(moto_server)
    cwd = tmp_path_factory.mktemp("one-model")
    session = boto3.Session(aws_access_key_id="testing", aws_secret_access_key="testing", region_name=REGION)
    (model,) = seed_and_collect(session, moto_server, cwd)
    return write_script(cwd, moto_server), model


def test_generated_script_runs_with_the_aws_cli(server_session: boto3.Session, moto_url: str, tmp_path: Path) -> None:
    estate = seed_demo_estate(server_session, regions=US, endpoint_url=moto_url)
    collected = run_cli(["collect", "--region", REGION], cwd=tmp_path, env=cli_env(moto_url))
    assert collected.returncode == 0, describe(collected)
    script = write_script(tmp_path, moto_url)
    first = run_script(script, moto_url)
    assert first.returncode == 0, first.stderr
    assert "checks passed" in first.stdout and "Created key" in first.stdout and "Named key" in first.stdout
    key = key_by_alias(server_session, moto_url)
    bedrock, _ = backends()
    failing = [m for m in estate.models if m.case in ("bedrock_owned", "aws_managed")]
    for model in failing:
        assert bedrock[REGION].model_customization_jobs[f"{model.job_name}-cmk"].custom_model_kms_key_id == key["Arn"]
    # The key it created carries the tags a rerun finds it by.
    kms = server_session.client("kms", region_name=REGION, endpoint_url=moto_url)
    tags = {t["TagKey"]: t["TagValue"] for t in kms.list_resource_tags(KeyId=key["KeyId"])["Tags"]}
    assert tags["bedrock-sql:alias"] == ALIAS and len(tags["bedrock-sql:plan"]) == 16 and tags["created-by"] == "bedrock-sql"

    before = counts(US)
    second = run_script(script, moto_url)
    assert second.returncode == 0, second.stderr
    assert "Reusing key" in second.stdout and "already exists: nothing started" in second.stdout
    assert counts(US) == before


# --------------------------------------------------------------------------- checks that stop it


def _disabled(session, url, model):
    create_key(session, REGION, alias=ALIAS, state="Disabled", endpoint_url=url)
    return f"{ALIAS} already exists in {ACCOUNT}/{REGION}, but its key arn:aws:kms:{REGION}:{ACCOUNT}:key/", "is Disabled, not Enabled"


def _pending_deletion(session, url, model):
    create_key(session, REGION, alias=ALIAS, state="PendingDeletion", endpoint_url=url)
    return f"{ALIAS} already exists in {ACCOUNT}/{REGION}, but its key", "is pending deletion"


def _aws_managed(session, url, model):
    create_key(session, REGION, alias=ALIAS, manager="AWS", endpoint_url=url)
    return f"{ALIAS} already exists in {ACCOUNT}/{REGION}, but its key", "is an AWS managed key (KeyManager AWS)"


def _unnamed_key_of_another_plan(session, url, model):
    key = create_key(session, REGION, tags={"bedrock-sql:alias": ALIAS, "bedrock-sql:plan": "0000000000000000"}, endpoint_url=url)
    return f"key {key.arn} was created for {ALIAS} by another plan (bedrock-sql:plan 0000000000000000)", "create-alias"


def _job_name_taken(session, url, model):
    bedrock = session.client("bedrock", region_name=REGION, endpoint_url=url)
    bedrock.create_model_customization_job(
        jobName=f"{model.job_name}-cmk", customModelName="someone-elses-model", clientRequestToken="someone-else",
        roleArn=f"arn:aws:iam::{ACCOUNT}:role/Someone", baseModelIdentifier="amazon.titan-text-express-v1:0:8k",
        trainingDataConfig={"s3Uri": "s3://b/t"}, outputDataConfig={"s3Uri": "s3://b/o/"},
    )
    return f"a job named {model.job_name}-cmk already exists in {ACCOUNT}/{REGION}", "another --suffix"


@pytest.mark.parametrize(
    "arrange",
    [_disabled, _pending_deletion, _aws_managed, _unnamed_key_of_another_plan, _job_name_taken],
    ids=lambda f: f.__name__.strip("_"),
)
def test_script_stops_in_its_checks_and_changes_nothing(one_model_plan, server_session, moto_url: str, arrange) -> None:
    script, model = one_model_plan
    # After the plan was made (the snapshot cannot know): what the script must find at run time.
    expected = arrange(server_session, moto_url, model)
    before = counts(US)
    with AwsProxy(moto_url) as proxy:
        result = run_script(script, proxy.url)
    assert result.returncode == 1, result.stderr
    assert "checks passed" not in result.stdout
    (line,) = result.stderr.splitlines()  # one line: what is wrong, and with what
    assert line.startswith(f"{script.name}: stopped: ") and "(nothing changed)" in line
    for part in expected:
        assert part in line, line
    assert changes(proxy) == [] and counts(US) == before


@pytest.mark.parametrize("code", ["AccessDeniedException", "ExpiredTokenException"])
def test_only_not_found_means_create(one_model_plan, moto_url: str, code: str) -> None:
    """describe-key answering anything but NotFound (denied, expired credentials) is no "missing alias"."""
    script, _ = one_model_plan
    before = counts(US)
    with AwsProxy(moto_url, deny("kms", "DescribeKey", REGION, code=code, message="the test says no")) as proxy:
        result = run_script(script, proxy.url)
    assert result.returncode == 1, result.stderr
    (line,) = result.stderr.splitlines()
    assert f"aws kms describe-key failed (nothing changed): An error occurred ({code})" in line and "the test says no" in line
    assert "DescribeKey" in proxy.operations() and changes(proxy) == []
    assert counts(US) == before


def test_a_planned_key_disabled_since_the_snapshot_stops_it(server_session, moto_url: str, tmp_path: Path) -> None:
    key = create_key(server_session, REGION, alias="alias/chosen", endpoint_url=moto_url)
    seed_and_collect(server_session, moto_url, tmp_path)
    written = run_cli(["remediate", "--kms-key", key.arn, "--out-dir", "plan"], cwd=tmp_path, env=cli_env(moto_url))
    assert written.returncode == 0, describe(written)
    server_session.client("kms", region_name=REGION, endpoint_url=moto_url).disable_key(KeyId=key.key_id)
    before = counts(US)
    result = run_script(tmp_path / "plan" / "bedrock-cmk-remediation.sh", moto_url)
    assert result.returncode == 1, result.stderr
    assert result.stderr.splitlines() == [
        f"bedrock-cmk-remediation.sh: stopped: the plan's key {key.arn} is Disabled, not Enabled: "
        "enable it (aws kms enable-key), or choose another key (nothing changed)"
    ]
    assert counts(US) == before


# --------------------------------------------------------------------------- reuse, never an orphan


def test_an_alias_naming_a_usable_key_is_reused(one_model_plan, server_session, moto_url: str) -> None:
    script, model = one_model_plan
    existing = create_key(server_session, REGION, alias=ALIAS, endpoint_url=moto_url)
    before = counts(US)
    result = run_script(script, moto_url)
    assert result.returncode == 0, result.stderr
    assert f"Reusing key {existing.arn} ({ALIAS} already exists)" in result.stdout
    assert counts(US) == {**before, "jobs": before["jobs"] + 1}  # no key, no alias: only the job
    bedrock, _ = backends()
    assert bedrock[REGION].model_customization_jobs[f"{model.job_name}-cmk"].custom_model_kms_key_id == existing.arn


def test_a_rerun_after_create_alias_failed_reuses_the_key_it_left_unnamed(one_model_plan, server_session, moto_url: str) -> None:
    script, model = one_model_plan
    before = counts(US)
    with AwsProxy(moto_url, fail_once("kms", "CreateAlias")) as proxy:
        first = run_script(script, proxy.url)
        assert first.returncode != 0, first.stdout
        assert "CreateAlias" in first.stderr and "AccessDeniedException" in first.stderr
        assert "the steps before it are done" in first.stderr.lower()
        assert counts(US) == {**before, "keys": before["keys"] + 1}  # the key, unnamed; no job yet
        _, kms = backends()
        (created,) = [k for k in kms[REGION].keys.values() if not k.aliases]

        second = run_script(script, proxy.url)  # the proxy denies only the first CreateAlias
    assert second.returncode == 0, second.stderr
    assert f"Reusing key {created.arn}, which an earlier run created for {ALIAS} but could not name" in second.stdout
    assert counts(US) == {"jobs": before["jobs"] + 1, "keys": before["keys"] + 1, "aliases": before["aliases"] + 1}
    assert key_by_alias(server_session, moto_url)["Arn"] == created.arn
    bedrock, _ = backends()
    assert bedrock[REGION].model_customization_jobs[f"{model.job_name}-cmk"].custom_model_kms_key_id == created.arn


# --------------------------------------------------------------------------- the AWS CLI itself


def _fake_aws(folder: Path, version_exit: int = 0) -> Path:
    """An `aws` that logs every call; its input skeleton lacks customModelKmsKeyId (an old CLI)."""
    folder.mkdir()
    log = folder / "calls.log"
    fake = folder / "aws"
    fake.write_text(
        "#!/usr/bin/env bash\n"
        f'echo "$*" >> {log}\n'
        'case "$*" in\n'
        f'  --version) echo "aws-cli/1.18.69 Python/3.8.10 Linux/5.4 botocore/1.17.0" >&2; exit {version_exit} ;;\n'
        '  *--generate-cli-skeleton*) echo \'{"jobName": "", "customModelName": "", "roleArn": ""}\' ;;\n'
        '  *) echo "an AWS call: the script should have stopped" >&2; exit 99 ;;\n'
        "esac\n"
    )
    fake.chmod(fake.stat().st_mode | stat.S_IXUSR)
    return log


@pytest.mark.parametrize(
    "cli, message",
    [
        ("old", "this AWS CLI is too old: aws-cli/1.18.69 Python/3.8.10 Linux/5.4 botocore/1.17.0 has no --custom-model-kms-key-id"),
        ("broken", "the AWS CLI does not run (aws --version): aws-cli/1.18.69"),
        ("missing", "the AWS CLI (aws) is not on PATH"),
    ],
)
def test_the_aws_cli_is_checked_before_any_aws_call(one_model_plan, moto_url: str, tmp_path: Path, cli: str, message: str) -> None:
    script, _ = one_model_plan
    tools = tmp_path / "tools"  # what bash needs besides aws, without the real aws beside them
    tools.mkdir()
    for tool in ("bash", "dirname", "basename", "mktemp", "rm", "grep", "tr", "cat"):
        (tools / tool).symlink_to(shutil.which(tool))
    fake = tmp_path / "fake"
    log = _fake_aws(fake, version_exit=1 if cli == "broken" else 0) if cli != "missing" else None
    path = f"{fake}{os.pathsep}{tools}" if log else str(tools)
    with AwsProxy(moto_url) as proxy:
        result = run_script(script, proxy.url, path=path)
    assert result.returncode == 1, result.stderr
    (line,) = result.stderr.splitlines()
    assert line.startswith(f"{script.name}: stopped: ") and message in line
    assert proxy.requests == []
    if log is not None:  # only the two local checks ran, nothing after them
        expected = ["--version"] if cli == "broken" else ["--version", "bedrock create-model-customization-job --generate-cli-skeleton input"]
        assert log.read_text().splitlines() == expected


def test_the_real_aws_cli_passes_the_check(tmp_path: Path) -> None:
    """The check reads the CLI's input skeleton: the AWS CLI here must list the member there."""
    import subprocess

    skeleton = subprocess.run(
        ["aws", "bedrock", "create-model-customization-job", "--generate-cli-skeleton", "input"],
        env=cli_env(), capture_output=True, text=True, timeout=60, check=True,
    ).stdout
    assert "customModelKmsKeyId" in json.loads(skeleton)
