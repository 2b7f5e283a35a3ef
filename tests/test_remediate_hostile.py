"""`remediate` against hostile resource data (issue 19): nothing an attacker writes into one
member account's names, descriptions, tags, S3 URIs, hyperparameters or role ARNs runs, opens
or changes anything when the auditor runs the plan (script, --output json, --apply), and what
reaches AWS is that text, literally.

Every payload that could run ``touch`` touches a file in a marker folder of the test: a marker
file existing afterwards is the proof that something ran.
"""

from __future__ import annotations

import json
import os
import stat
import subprocess
import tempfile
from pathlib import Path
from typing import Any

import boto3
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from bedrock_sql.accounts import resolve_scope
from bedrock_sql.aws import AwsOptions
from bedrock_sql.cli import main
from bedrock_sql.errors import UserError
from bedrock_sql.render import terminal_text
from bedrock_sql.estate import seed_models
from bedrock_sql.estate_served import deploy_model, provision_throughput
from bedrock_sql.remediate import (
    SCRIPT_NAME,
    FillIn,
    LiveAws,
    Lookup,
    ManualStep,
    Variable,
    apply_plan,
    next_steps,
    plan_json,
    plan_problems,
    plan_remediation,
    render_script,
)
from bedrock_sql.remediate.plan import cli_option
from bedrock_sql.remediate.shell import NotRepresentable, comment, printf_lines, quote, visible
from bedrock_sql.snapshot import collect
from bedrock_sql.sql import snapshot_connection

from e2e_helpers import cli_env, describe, run_cli
from remediate_helpers import ALIAS, aws_cli, backends, counts, require_aws_cli, seed_job  # noqa: F401 -- aws_cli: a fixture
from snapshot_builder import ACCOUNT, REGION, SnapshotBuilder

OTHER_ACCOUNT = "999999999999"
ROLE = f"arn:aws:iam::{ACCOUNT}:role/BedrockCustomization"
DATA = {"training_data_config": {"s3Uri": "s3://acme-ml-data/t/"}, "output_data_config": {"s3Uri": "s3://acme-ml-data/o/"}}
# An S3 URI AWS takes although it holds quotes, parentheses, ! and * (its pattern allows them).
ODD_URI = "s3://acme-ml-data/it's(1)!*/train.jsonl"
SENTINEL = "<the value of {}>"  # what a plan variable holds when a command is parsed
HOSTILE_NAME = "x\x1b[2J\x1b]0;pwned\x07'\n$(touch pwned)"


def payloads(mark: Path) -> dict[str, str]:
    """One text per way data could become code or reach the terminal raw; each runnable one
    touches its own file in ``mark``."""
    return {
        "subst": f"$(touch {mark}/subst)",
        "backtick": f"`touch {mark}/backtick`",
        "env": "${HOME} $AWS_SECRET_ACCESS_KEY ${AWS_SECRET_ACCESS_KEY}",
        "quotes": "it's \"quoted\" \\ and a \\' backslash-quote",
        "newline": f"legacy\ntouch {mark}/newline #",
        "heredoc": f"first line\nNEXT_STEPS\ntouch {mark}/heredoc\n",
        "lookalike": f"<the ARN of x: touch {mark}/lookalike>",
        "variable": "${KEY_ARN_123456789012_us_east_1}",
        "escape": "\x1b[2J\x1b]0;pwned\x07\u202eevil\r",
        "option": "-n -e \\c",
    }


def joined(mark: Path) -> str:
    return " | ".join(payloads(mark).values())


def marks(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir())


@pytest.fixture
def mark(tmp_path: Path) -> Path:
    folder = tmp_path / "marks"
    folder.mkdir()
    return folder


# --------------------------------------------------------------------------- the quoting function


# Text bash can hold: anything but NUL and lone surrogates (no UTF-8 form; both refused, see
# below), with the payloads mixed in so every shape is tried, not only what random text happens to be.
_CHARS = st.characters(exclude_characters="\x00", exclude_categories=("Cs",))
_TEXT = st.text(_CHARS) | st.builds(
    lambda a, p, b: a + p + b,
    st.text(_CHARS, max_size=8),
    st.sampled_from(list(payloads(Path("/nonexistent")).values()) + ["'", "\\", "$'", "\n", "\x1b", "\u2028", "é中"]),
    st.text(_CHARS, max_size=8),
)
_FAST = settings(max_examples=250, deadline=None, suppress_health_check=[HealthCheck.too_slow])


@pytest.mark.parametrize("locale", ["C", "C.UTF-8"])
@_FAST
@given(text=_TEXT)
def test_bash_turns_a_quoted_value_back_into_exactly_that_value(locale: str, text: str) -> None:
    word = quote(text)
    assert "\n" not in word and "\x1b" not in word  # one line, nothing for a terminal
    done = subprocess.run(["bash", "-c", "printf %s " + word], capture_output=True, env={"LC_ALL": locale, "PATH": os.environ["PATH"]})
    assert done.returncode == 0 and done.stderr == b""
    assert done.stdout == text.encode("utf-8")


def test_a_command_shown_in_a_comment_stays_one_comment_line() -> None:
    from bedrock_sql.remediate.shell import comment_line

    line = comment_line("aws x --y " + quote("a\nb") + " trailing\ntouch pwned\x1b[2J", "  ")
    assert "\n" not in line and "\x1b" not in line and line.startswith("  # aws x --y $'a\\x0ab' trailing\\ntouch")


def test_what_bash_cannot_hold_is_refused_never_changed() -> None:
    with pytest.raises(NotRepresentable, match="NUL"):
        quote("a\x00b")
    with pytest.raises(NotRepresentable, match="surrogate"):
        quote("a\ud800b")
    with pytest.raises(TypeError):
        quote(Variable("X"))  # type: ignore[arg-type] -- a placeholder is rendered by type, never as text


@_FAST
@given(text=_TEXT | st.text())
def test_no_text_ends_a_comment(text: str) -> None:
    """A script of comment(text) then one command runs exactly that command (traced by -x)."""
    lines = comment(text, "  ")
    assert all(line.startswith("  #") for line in lines)
    with tempfile.TemporaryDirectory() as folder:
        script = Path(folder) / "script.sh"
        script.write_text("\n".join(lines) + "\ntouch MARKER\n", encoding="utf-8")
        assert subprocess.run(["bash", "-n", str(script)], capture_output=True).returncode == 0
        done = subprocess.run(["bash", "-x", str(script)], cwd=folder, capture_output=True, text=True)
        assert (done.returncode, done.stderr) == (0, "+ touch MARKER\n")
        assert sorted(os.listdir(folder)) == ["MARKER", "script.sh"]


@_FAST
@given(lines=st.lists(_TEXT, max_size=5))
def test_the_closing_text_prints_exactly_its_lines_made_visible(lines: list[str]) -> None:
    """What the heredoc did, without a delimiter a line could hold: printf of quoted lines."""
    script = "\n".join(printf_lines(lines))
    done = subprocess.run(["bash", "-c", script or ":"], capture_output=True)
    assert done.returncode == 0
    assert done.stdout.decode("utf-8") == "".join(visible(line) + "\n" for line in lines)
    assert b"\x1b" not in done.stdout and b"\r" not in done.stdout


# --------------------------------------------------------------------------- a hostile snapshot, CLI-free


def hostile_snapshot(path: Path, mark: Path) -> SnapshotBuilder:
    """Every free-text field a plan reads, filled with payloads (a snapshot is a file: no API
    pattern protects what it holds)."""
    text = payloads(mark)
    snap = SnapshotBuilder(path)
    snap.add_run()
    # Reaches AWS: hyperparameters have no pattern, S3 URIs take quotes and parentheses, tags whitespace.
    snap.add_job("hostile-job", role_arn=ROLE, hyper_parameters={"epochCount": "1", **text},
                 training_data_config={"s3Uri": ODD_URI}, output_data_config={"s3Uri": "s3://acme-ml-data/o/"},
                 tags={"note": f"legacy\ntouch {mark}/tag", "line": "x\nNEXT_STEPS\ny"})
    hostile = snap.add_model("hostile", job_name="hostile-job", tags={"k": "a=b+c@d:e/f g"})
    # AWS would refuse these tags (its pattern has no $, backtick or quote): a manual step, shown.
    snap.add_job("tagged-job", role_arn=ROLE, tags=text, **DATA)
    snap.add_model("tagged", job_name="tagged-job")
    # A ${...} role ARN: once expanded the auditor's secret key as a role.
    snap.add_job("role-job", role_arn=f"arn:aws:iam::{ACCOUNT}:role/${{AWS_SECRET_ACCESS_KEY}}", **DATA)
    snap.add_model("role", job_name="role-job")
    snap.add_job("secret-job", role_arn="${AWS_SECRET_ACCESS_KEY}", **DATA)
    snap.add_model("secret", job_name="secret-job")
    # A name only a forged snapshot holds (AWS's pattern has no ESC, newline or quote; its ARN an id).
    snap.add_job("named-job", role_arn=ROLE, **DATA)
    snap.add_model(HOSTILE_NAME, job_name="named-job", arn=f"arn:aws:bedrock:{REGION}:{ACCOUNT}:custom-model/named")
    # What serves the hostile model: a follow-up holding the payloads.
    snap.add_deployment(hostile["arn"], "hostile-dep", description=joined(mark), tags=text)
    snap.add_throughput(hostile["arn"], f"pt\ntouch {mark}/throughput #",
                        arn=f"arn:aws:bedrock:{REGION}:{ACCOUNT}:provisioned-model/abcdef123456")
    return snap


def run_words(block: str, variables: dict[str, str] | None = None) -> list[list[str]]:
    """Every ``aws`` call ``block`` (shell text) makes, each as its exact argv, without running
    anything: ``aws`` is a function writing its arguments to fd 3, answering ``LOOKUP``."""
    prelude = "exec 3>&1; aws() { printf '%s\\0' \"$@\" >&3; printf 'END\\0' >&3; printf LOOKUP; }; HERE=/HERE;"
    prelude += "".join(f" {name}={quote(value)};" for name, value in (variables or {}).items())
    done = subprocess.run(["bash", "-c", prelude + "\n" + block + "\n"], capture_output=True, timeout=30)
    assert done.returncode == 0 and done.stderr == b"", done.stderr
    calls, current = [], []
    for item in done.stdout.split(b"\0")[:-1]:
        if item == b"END":
            calls.append(current)
            current = []
        else:
            current.append(item.decode("utf-8"))
    return calls


def expected_words(step, variables: dict[str, str]) -> tuple[list[list[str]], list[str]]:
    """What each call of a rendered step must receive: the lookups' commands, then the step's own argv."""
    from botocore import xform_name

    lookups, argv = [], [step.service, xform_name(step.operation, "-"), "--region", step.region]
    for member, value in step.params.items():
        if member == "Policy" and step.operation == "CreateKey":
            word = f"file:///HERE/key-policy-{step.account_id}-{step.region}.json"
        elif isinstance(value, Variable):
            word = variables[value.name]
        elif isinstance(value, Lookup):
            lookups.append(list(value.command[1:]))
            word = "LOOKUP"
        elif isinstance(value, FillIn):
            word = value.text
        elif isinstance(value, str):
            word = value
        else:
            word = json.dumps(value, separators=(",", ":"), default=lambda v: v.text)
        argv += [cli_option(member), word]
    return lookups, argv


def command_blocks(script: str) -> list[str]:
    """The AWS commands of the account blocks (an ``aws`` line and its continuation lines), in
    order: what the script runs after its helpers and its account check."""
    lines = script.splitlines()
    start = next(i for i, line in enumerate(lines) if line.startswith('ACCOUNT_ID="$(aws sts get-caller-identity'))
    blocks = []
    for i, line in enumerate(lines):
        text = line.strip()
        if i <= start or text.startswith("#") or not (text.startswith("aws ") or '="$(aws ' in text):
            continue
        block = [line]
        while block[-1].endswith(" \\"):
            block.append(lines[i + len(block)])
        blocks.append("\n".join(block))
    return blocks


def shown_commands(script: str) -> list[str]:
    """The commands shown in comments (manual steps and follow-ups), each as shell text."""
    blocks, lines = [], script.splitlines()
    for i, line in enumerate(lines):
        if line.startswith("  #   aws "):
            block = [line]
            while block[-1].endswith(" \\"):
                block.append(lines[i + len(block)])
            blocks.append("\n".join(b.removeprefix("  #   ") for b in block))
    return blocks


def test_every_argument_of_a_hostile_plans_script_is_the_plans_value_exactly(tmp_path: Path, mark: Path) -> None:
    """Parse every command of the script with bash itself (``printf '%s\\0'``): each argument must be
    the plan's value, byte for byte -- wrapping a value in double quotes (so $ and backticks expand)
    or dropping its quoting fails here, without any AWS CLI."""
    snap = hostile_snapshot(tmp_path / "bedrock.db", mark)
    with snapshot_connection(snap.path) as connection:
        plan = plan_remediation(connection, create_key=True, alias="alias/bedrock-cmk")
    script, _ = render_script(plan)
    assert subprocess.run(["bash", "-n"], input=script, text=True, capture_output=True).returncode == 0
    variables = {name: SENTINEL.format(name) for s in plan.steps for name in s.outputs}

    blocks = command_blocks(script)
    assert len(blocks) == len(plan.steps)
    for block, step in zip(blocks, plan.steps):
        lookups, argv = expected_words(step, variables)
        *inner, outer = run_words(block, variables)
        tail = outer[len(argv):]
        assert outer[: len(argv)] == argv, step.operation
        assert inner == lookups and tail in ([], ["--query", "KeyMetadata.Arn", "--output", "text"], ["--query", "jobArn", "--output", "text"])
    [job] = plan.job_steps
    assert job.params["hyperParameters"] == {"epochCount": "1", **payloads(mark)}  # the data, as it is

    shown = shown_commands(script)
    others = [*plan.manual_steps, *plan.follow_ups]
    assert len(shown) == len(others)
    for block, step in zip(shown, others):
        lookups, argv = expected_words(step, variables)
        *inner, outer = run_words(block, variables)
        assert (inner, outer) == (lookups, argv), step.operation

    # The closing text: printed exactly, made visible (no escape sequence for the terminal).
    closing = script[script.rindex("\nprintf '%s\\n' \\\n") + 1:]
    printed = subprocess.run(["bash", "-c", closing], capture_output=True, text=True, check=True).stdout
    assert printed == "".join(visible(line) + "\n" for line in next_steps(plan))
    assert "\x1b" not in script and "\r" not in script and "\u202e" not in script
    assert not [line for line in script.splitlines() if line.strip().startswith(("touch", "NEXT_STEPS", "first line"))]
    assert marks(mark) == []


def test_what_remediate_prints_about_a_hostile_plan_is_inert_on_a_terminal(tmp_path: Path, mark: Path, capsys) -> None:
    snap = hostile_snapshot(tmp_path / "bedrock.db", mark)
    code, out, err = _run_main(["--db", str(snap.path), "remediate", "--create-key", "--alias", "alias/bedrock-cmk",
                                "--out-dir", str(tmp_path / "plan")], capsys)
    assert code == 0, err
    _no_raw_control(out + err)
    assert "x\\x1b[2J" in out  # the name, made visible
    with snapshot_connection(snap.path) as connection:
        plan = plan_remediation(connection, create_key=True, alias="alias/bedrock-cmk")
    for line in [*plan.warnings, *next_steps(plan)]:
        _no_raw_control(terminal_text(line) if line in plan.warnings else line)
    assert all("\n" not in line for line in next_steps(plan))
    # The script says so when it runs: its say lines print no escape sequence either.
    script = (tmp_path / "plan" / SCRIPT_NAME).read_text()
    [say] = [line for line in script.splitlines() if line.strip().startswith("say ") and "Manual step left for x" in line]
    printed = subprocess.run(["bash", "-c", "say() { printf '%s\\n' \"$*\"; }; " + say], capture_output=True, text=True)
    assert printed.stdout.startswith("Manual step left for x\\x1b[2J") and "\x1b" not in printed.stdout


def test_hostile_values_stay_literal_and_placeholders_are_typed_in_json(tmp_path: Path, mark: Path) -> None:
    snap = hostile_snapshot(tmp_path / "bedrock.db", mark)
    with snapshot_connection(snap.path) as connection:
        plan = plan_remediation(connection, create_key=True, alias="alias/bedrock-cmk")
    entries = json.loads(json.dumps(plan_json(plan)))
    [job] = [e for e in entries if e["operation"] == "CreateModelCustomizationJob" and not e["manual"]]
    assert job["params"]["hyperParameters"]["variable"] == "${KEY_ARN_123456789012_us_east_1}"  # data: a str
    assert job["params"]["hyperParameters"]["lookalike"] == f"<the ARN of x: touch {mark}/lookalike>"
    assert job["params"]["customModelKmsKeyId"] == {"variable": "KEY_ARN_123456789012_us_east_1"}  # ours: typed
    assert job["placeholders"] == [["customModelKmsKeyId"]]
    [deploy] = [e for e in entries if e["operation"] == "CreateCustomModelDeployment"]
    assert deploy["params"]["description"] == joined(mark)
    assert deploy["params"]["modelArn"]["command"][:3] == ["aws", "bedrock", "get-custom-model"]
    # Every placeholder path names an object the planner made; every other value is data.
    for entry in entries:
        for path in entry.get("placeholders", []):
            value = entry["params"]
            for part in path:
                value = value[part]
            assert set(value) in ({"variable"}, {"lookup", "command"}, {"fill_in"})
    # Refused, with the reason, and shown literally: tags AWS would refuse, a ${...} role.
    manual = {m.model_name: m for m in plan.manual_steps}
    assert "jobTags" in manual["tagged"].reason and "pattern" in manual["tagged"].reason
    assert "no IAM role ARN" in manual["role"].reason
    assert manual["role"].params["roleArn"] == f"arn:aws:iam::{ACCOUNT}:role/${{AWS_SECRET_ACCESS_KEY}}"
    # The role is in no key policy.
    [key] = plan.keys
    assert json.dumps(key.policy).count("AWS_SECRET_ACCESS_KEY") == 0
    text = json.dumps(entries)  # ensure_ascii, as the CLI prints it: no raw control character
    assert "\x1b" not in text and "\n" not in text


# --------------------------------------------------------------------------- names, roles, identifiers


def test_a_name_that_cannot_be_derived_is_one_manual_step_not_a_failed_plan(tmp_path: Path) -> None:
    snap = SnapshotBuilder(tmp_path / "bedrock.db")
    snap.add_run()
    for name in ("evil-", "good"):
        snap.add_job(f"{name}-job", role_arn=ROLE, **DATA)
        snap.add_model(name, job_name=f"{name}-job")
    with snapshot_connection(snap.path) as connection:
        plan = plan_remediation(connection, create_key=True, alias="alias/bedrock-cmk")
    assert [s.params["customModelName"] for s in plan.job_steps] == ["good-cmk"]
    [manual] = plan.manual_steps
    assert manual.model_name == "evil-" and manual.operation == "CreateModelCustomizationJob"
    assert "'evil--cmk'" in manual.reason and "customModelName" in manual.reason
    assert isinstance(manual.params["customModelName"], FillIn)
    assert plan_problems(plan) == []


def test_a_deployment_name_that_cannot_be_derived_is_named_by_the_human(tmp_path: Path) -> None:
    snap = SnapshotBuilder(tmp_path / "bedrock.db")
    snap.add_run()
    snap.add_job("served-job", role_arn=ROLE, **DATA)
    served = snap.add_model("served", job_name="served-job")
    snap.add_deployment(served["arn"], "dep-")
    with snapshot_connection(snap.path) as connection:
        plan = plan_remediation(connection, create_key=True, alias="alias/bedrock-cmk")
    [deploy] = plan.follow_ups
    assert isinstance(deploy.params["modelDeploymentName"], FillIn) and "'dep--cmk'" in deploy.reason
    assert [s.params["customModelName"] for s in plan.job_steps] == ["served-cmk"]


def test_a_job_role_of_another_account_is_no_key_user_and_its_model_is_manual(tmp_path: Path) -> None:
    snap = SnapshotBuilder(tmp_path / "bedrock.db")
    snap.add_run()
    foreign = f"arn:aws:iam::{OTHER_ACCOUNT}:role/Attacker"
    snap.add_job("foreign-job", role_arn=foreign, **DATA)
    snap.add_model("foreign", job_name="foreign-job")
    snap.add_job("home-job", role_arn=ROLE, **DATA)
    snap.add_model("home", job_name="home-job")
    with snapshot_connection(snap.path) as connection:
        plan = plan_remediation(connection, create_key=True, alias="alias/bedrock-cmk")
    [key] = plan.keys
    assert foreign not in json.dumps(key.policy) and ROLE in json.dumps(key.policy)
    [manual] = plan.manual_steps
    assert manual.model_name == "foreign" and OTHER_ACCOUNT in manual.reason and "belongs to account" in manual.reason
    assert manual.params["roleArn"] == foreign and isinstance(manual.params["customModelKmsKeyId"], Lookup)
    assert [s.params["customModelName"] for s in plan.job_steps] == ["home-cmk"]


@pytest.mark.parametrize("role", ["arn:aws:iam::123456789012:role/ｅｖｉｌ", "arn:aws:iam::١٢٣٤٥٦٧٨٩٠١٢:role/R"])
def test_a_role_arn_of_unicode_letters_or_digits_is_no_role(tmp_path: Path, role: str, capsys) -> None:
    """IAM names roles in ASCII: \\w and \\d without re.ASCII took these."""
    snap = SnapshotBuilder(tmp_path / "bedrock.db")
    snap.add_run()
    snap.add_job("j", role_arn=role, **DATA)
    snap.add_model("m", job_name="j")
    with snapshot_connection(snap.path) as connection:
        plan = plan_remediation(connection, create_key=True, alias="alias/bedrock-cmk")
    [manual] = plan.manual_steps
    assert "no IAM role ARN" in manual.reason and role not in json.dumps(plan.keys[0].policy, ensure_ascii=False)
    code, err = _main(["--db", str(snap.path), "remediate", "--create-key", "--alias", "alias/x", "--key-admin-role", role,
                       "-o", "json"], capsys)
    assert code == 2 and err.count("\n") == 1 and "--key-admin-role needs an IAM role ARN" in err


def _main(args: list[str], capsys) -> tuple[int, str]:
    code, _, err = _run_main(args, capsys)
    return code, err


def _run_main(args: list[str], capsys) -> tuple[int, str, str]:
    with pytest.raises(SystemExit) as exit_info:
        main(args)
    captured = capsys.readouterr()
    return exit_info.value.code, captured.out, captured.err


@pytest.mark.parametrize(
    "table, column, value",
    [
        ("aws_bedrock_custom_model", "account_id", "123456789012; touch pwned"),
        ("aws_bedrock_custom_model", "region", "us-east-1$(touch pwned)"),
        ("aws_bedrock_model_customization_job", "arn", "arn:aws:bedrock:us-east-1:123456789012:model-customization-job/j x"),
        ("aws_kms_key", "partition", "aws`touch pwned`"),
    ],
)
def test_a_snapshot_with_an_altered_identifier_is_refused_naming_the_row(
    tmp_path: Path, capsys, monkeypatch, table: str, column: str, value: str
) -> None:
    snap = SnapshotBuilder(tmp_path / "bedrock.db")
    snap.add_run()
    snap.add_job("j", role_arn=ROLE, **DATA)
    snap.add_model("m", job_name="j")
    snap.add_key("alias/k")
    import sqlite3

    with sqlite3.connect(snap.path) as db:
        db.execute(f'UPDATE {table} SET "{column}" = ?', (value,))
    db.close()
    monkeypatch.chdir(tmp_path)
    for output in (["-o", "json"], ["--out-dir", str(tmp_path / "plan")]):
        code, err = _main(["--db", str(snap.path), "remediate", "--create-key", "--alias", "alias/x", *output], capsys)
        assert code == 2 and err.count("\n") == 1 and "Traceback" not in err, err
        assert f"is refused: {table} row 1 has {column}" in err
    assert not (tmp_path / "plan").exists() and not (tmp_path / "pwned").exists()


# --------------------------------------------------------------------------- --apply: the whole plan first


def _invalid_third_step(plan) -> str:
    """Break the plan's third step in a way only the API's model knows (no call is made to learn it)."""
    step = plan.steps[2]
    if step.operation == "EnableKeyRotation":
        step.params["KeyId"] = "k" * 3000  # KeyId's max is 2048: botocore checks min lengths only
        return "KeyId 'kkkk"
    step.params["customModelName"] = "evil--cmk"  # not the API's pattern
    return "customModelName 'evil--cmk'"


@pytest.mark.parametrize("options", [{"create_key": True, "alias": "alias/bedrock-cmk"}, {"kms_key": "CMK"}], ids=["new-key", "kms-key"])
def test_apply_refuses_a_plan_whose_third_step_cannot_run_and_creates_nothing(aws: boto3.Session, tmp_path: Path, options) -> None:
    kms = aws.client("kms", region_name=REGION)
    cmk = kms.create_key(KeyUsage="ENCRYPT_DECRYPT")["KeyMetadata"]["Arn"]
    seed_models(aws, REGION, 3)
    db = tmp_path / "bedrock.db"
    collect(resolve_scope(AwsOptions(regions=(REGION,))), db, kms_keys="all")
    if options.get("kms_key") == "CMK":
        options = {"kms_key": cmk}
    with snapshot_connection(db) as connection:
        plan = plan_remediation(connection, **options)
    assert len(plan.steps) >= 3 and plan_problems(plan) == []
    shown = _invalid_third_step(plan)
    before = counts((REGION,))
    with pytest.raises(UserError) as refused:
        apply_plan(plan, LiveAws(AwsOptions(regions=(REGION,))))
    message = str(refused.value)
    assert message.startswith(f"the plan cannot run: step 3 ({plan.steps[2].operation} in {ACCOUNT}/{REGION}): {shown}")
    assert message.endswith("(nothing changed)") and "\n" not in message
    assert counts((REGION,)) == before


def _unset_variable(plan) -> str:
    plan.steps[2].params["KeyId"] = Variable("KEY_ARN_210987654321_us_east_1")  # no step sets it
    return "step 3 (EnableKeyRotation in 123456789012/us-east-1): KeyId uses KEY_ARN_210987654321_us_east_1, which no earlier"


def _used_before_set(plan) -> str:
    plan.steps.append(plan.steps.pop(0))  # CreateKey last: its ARN is used before it exists
    return "step 1 (CreateAlias in 123456789012/us-east-1): TargetKeyId uses KEY_ARN_123456789012_us_east_1, which no earlier"


@pytest.mark.parametrize("corrupt", [_unset_variable, _used_before_set], ids=lambda f: f.__name__.strip("_"))
def test_apply_refuses_a_variable_no_earlier_step_sets(aws: boto3.Session, tmp_path: Path, corrupt) -> None:
    seed_models(aws, REGION, 1)
    db = tmp_path / "bedrock.db"
    collect(resolve_scope(AwsOptions(regions=(REGION,))), db)
    with snapshot_connection(db) as connection:
        plan = plan_remediation(connection, create_key=True, alias="alias/bedrock-cmk")
    expected = corrupt(plan)
    before = counts((REGION,))
    with pytest.raises(UserError) as refused:
        apply_plan(plan, LiveAws(AwsOptions(regions=(REGION,))))
    assert str(refused.value).startswith(f"the plan cannot run: {expected}") and str(refused.value).endswith("(nothing changed)")
    assert counts((REGION,)) == before


# --------------------------------------------------------------------------- files


def _plan_args(snap: SnapshotBuilder, out_dir: Path, *extra: str) -> list[str]:
    return ["--db", str(snap.path), "remediate", "--create-key", "--alias", "alias/bedrock-cmk", "--out-dir", str(out_dir), *extra]


@pytest.fixture
def small(tmp_path: Path) -> SnapshotBuilder:
    snap = SnapshotBuilder(tmp_path / "bedrock.db")
    snap.add_run()
    snap.add_job("j", role_arn=ROLE, **DATA)
    snap.add_model("m", job_name="j")
    return snap


def test_force_replaces_a_planted_symlink_and_never_writes_through_it(small: SnapshotBuilder, tmp_path: Path, capsys) -> None:
    out = tmp_path / "plan"
    out.mkdir(mode=0o700)
    policy = f"key-policy-{ACCOUNT}-{REGION}.json"
    targets = {}
    for name in (SCRIPT_NAME, policy):
        target = tmp_path / f"precious-{name}"
        target.write_text("precious\n")
        target.chmod(0o644)
        (out / name).symlink_to(target)
        targets[name] = target
    code, err = _main(_plan_args(small, out), capsys)  # without --force: refused, nothing written
    assert code == 2 and "already exists" in err and err.count("\n") == 1
    code, err = _main(_plan_args(small, out, "--force"), capsys)
    assert code == 0, err
    for name, target in targets.items():
        assert target.read_text() == "precious\n" and stat.S_IMODE(target.stat().st_mode) == 0o644
        written = out / name
        assert not written.is_symlink() and written.is_file()
        assert stat.S_IMODE(written.stat().st_mode) == (0o700 if name == SCRIPT_NAME else 0o600)
    assert (out / SCRIPT_NAME).read_text().startswith("#!/usr/bin/env bash\n")
    assert sorted(p.name for p in out.iterdir()) == sorted(targets)  # no temporary file left


def test_a_new_out_dir_is_created_readable_by_its_owner_only(small: SnapshotBuilder, tmp_path: Path, capsys) -> None:
    out = tmp_path / "new" / "plan"
    old = os.umask(0o022)
    try:
        code, err = _main(_plan_args(small, out), capsys)
    finally:
        os.umask(old)
    assert code == 0, err
    assert stat.S_IMODE(out.stat().st_mode) == 0o700


def test_an_out_dir_others_can_write_is_refused(small: SnapshotBuilder, tmp_path: Path, capsys) -> None:
    out = tmp_path / "shared"
    out.mkdir()
    out.chmod(0o777)
    code, err = _main(_plan_args(small, out), capsys)
    assert code == 2 and err.count("\n") == 1 and "Traceback" not in err
    assert "others can write into it (mode 0777)" in err and list(out.iterdir()) == []


@pytest.mark.skipif(not hasattr(os, "geteuid") or os.geteuid() != 0, reason="needs root to give the folder to another user")
def test_an_out_dir_of_another_user_is_refused(small: SnapshotBuilder, tmp_path: Path, capsys) -> None:
    out = tmp_path / "theirs"
    out.mkdir(mode=0o700)
    os.chown(out, 65534, 65534)
    code, err = _main(_plan_args(small, out), capsys)
    assert code == 2 and err.count("\n") == 1 and "owned by user 65534, not by you" in err
    assert list(out.iterdir()) == []


# --------------------------------------------------------------------------- the CI rule for the AWS CLI


@pytest.mark.parametrize("ci, outcome", [("true", pytest.fail.Exception), ("", pytest.skip.Exception)])
def test_a_missing_aws_cli_fails_under_ci_and_skips_elsewhere(monkeypatch, ci: str, outcome) -> None:
    monkeypatch.setenv("PATH", "/nonexistent")
    monkeypatch.setenv("CI", ci)
    try:  # not pytest.raises: a skip escaping it would mark this test skipped, not failed
        require_aws_cli()
    except BaseException as exc:  # pytest's outcomes are BaseExceptions
        raised = exc
    else:
        raised = None
    assert type(raised) is outcome and "AWS CLI is not installed" in str(raised)


# --------------------------------------------------------------------------- end to end, against moto


def hostile_estate(session: boto3.Session, url: str, cwd: Path, mark: Path) -> dict[str, Any]:
    """The payloads in a moto estate (moto checks no pattern), collected into cwd/bedrock.db."""
    text = payloads(mark)
    hostile = seed_job(session, url, "hostile", hyper_parameters={"epochCount": "1", **text}, training_uri=ODD_URI,
                       job_tags={"note": f"legacy\ntouch {mark}/tag"}, model_tags={"line": "x\nNEXT_STEPS\ny"})
    seed_job(session, url, "tagged", job_tags=text, model_tags=text)
    seed_job(session, url, "role", role_arn=f"arn:aws:iam::{ACCOUNT}:role/${{AWS_SECRET_ACCESS_KEY}}")
    bedrock = session.client("bedrock", region_name=REGION, endpoint_url=url)
    deploy_model(bedrock, "hostile-dep", hostile, description=joined(mark), tags=text)
    # A name lands in a follow-up's reason, in a comment and in the closing text the script prints.
    provision_throughput(bedrock, f"pt\nNEXT_STEPS\ntouch {mark}/throughput\n\x1b[2J", hostile)
    kms = session.client("kms", region_name=REGION, endpoint_url=url)
    kms.create_key(KeyUsage="ENCRYPT_DECRYPT", Description=joined(mark), Tags=[{"TagKey": "note", "TagValue": joined(mark)}])
    collected = run_cli(["collect", "--kms-keys", "all", "--region", REGION], cwd=cwd, env=cli_env(url))
    assert collected.returncode == 0, describe(collected)
    return {"payloads": text, "model": hostile}


def _no_raw_control(text: str) -> None:
    assert "\x1b" not in text and "\x07" not in text and "\r" not in text and "\u202e" not in text


def _check_the_hostile_job_reached_aws_literally(mark: Path) -> None:
    bedrock, _ = backends()
    job = bedrock[REGION].model_customization_jobs["hostile-job-cmk"]
    assert job.hyper_parameters == {"epochCount": "1", **payloads(mark)}
    assert job.training_data_config == {"s3Uri": ODD_URI}
    assert job.job_tags == [{"key": "note", "value": f"legacy\ntouch {mark}/tag"}]
    assert job.custom_model_tags == [{"key": "line", "value": "x\nNEXT_STEPS\ny"}]
    assert "tagged-job-cmk" not in bedrock[REGION].model_customization_jobs  # manual: AWS would refuse its tags
    assert "role-job-cmk" not in bedrock[REGION].model_customization_jobs  # manual: no IAM role ARN


def _run_pasted(command: str, mark: Path) -> list[list[str]]:
    """A printed follow-up, pasted into bash (``aws`` a function that records its arguments)."""
    calls = run_words(command)
    assert marks(mark) == []
    return calls


def test_the_script_of_a_hostile_estate_runs_nothing_and_sends_the_values_literally(
    server_session: boto3.Session, moto_url: str, tmp_path: Path, mark: Path, aws_cli: str
) -> None:
    hostile_estate(server_session, moto_url, tmp_path, mark)
    written = run_cli(["remediate", "--create-key", "--alias", ALIAS, "--out-dir", str(tmp_path / "plan")], cwd=tmp_path,
                      env=cli_env(moto_url))
    assert written.returncode == 0, describe(written)
    _no_raw_control(written.stdout)
    script = tmp_path / "plan" / SCRIPT_NAME
    assert subprocess.run(["bash", "-n", str(script)], capture_output=True).returncode == 0
    _no_raw_control(script.read_text())
    ran = subprocess.run(["bash", str(script)], cwd=mark, env=cli_env(moto_url, PATH=os.environ["PATH"]),
                         capture_output=True, text=True, timeout=240)
    assert ran.returncode == 0, describe(ran)
    _no_raw_control(ran.stdout)
    assert marks(mark) == []
    _check_the_hostile_job_reached_aws_literally(mark)
    # The follow-up it prints, pasted as it is: the description goes to AWS as the data, nothing runs.
    [line] = [l for l in ran.stdout.splitlines() if l.strip().startswith("aws bedrock create-custom-model-deployment")]
    [lookup, call] = _run_pasted(line.strip(), mark)
    assert lookup[:2] == ["bedrock", "get-custom-model"]
    assert call[call.index("--description") + 1] == joined(mark)


def test_json_and_apply_of_a_hostile_estate_run_nothing_and_send_the_values_literally(
    server_session: boto3.Session, moto_url: str, tmp_path: Path, mark: Path
) -> None:
    hostile_estate(server_session, moto_url, tmp_path, mark)
    planned = run_cli(["remediate", "--create-key", "--alias", ALIAS, "-o", "json"], cwd=tmp_path, env=cli_env(moto_url))
    assert planned.returncode == 0, describe(planned)
    _no_raw_control(planned.stdout)
    entries = json.loads(planned.stdout)
    [job] = [e for e in entries if e["operation"] == "CreateModelCustomizationJob" and not e["manual"]]
    assert job["params"]["hyperParameters"] == {"epochCount": "1", **payloads(mark)}

    # Run from the marker folder: a relative path a payload wrote would land there too.
    applied = run_cli(["--db", str(tmp_path / "bedrock.db"), "remediate", "--create-key", "--alias", ALIAS, "--apply", "--yes"],
                      cwd=mark, env=cli_env(moto_url))
    assert applied.returncode == 0, describe(applied)
    assert marks(mark) == []
    _check_the_hostile_job_reached_aws_literally(mark)
    _no_raw_control(applied.stdout)
    [line] = [l for l in applied.stdout.splitlines() if l.strip().startswith("aws bedrock create-custom-model-deployment")]
    [_, call] = _run_pasted(line.strip(), mark)
    assert call[call.index("--description") + 1] == joined(mark)


def test_a_placeholder_lookalike_in_a_manual_step_stays_text(tmp_path: Path, mark: Path) -> None:
    """Data shaped like the old ``<the ARN of x: COMMAND>`` placeholder is no lookup anywhere."""
    snap = SnapshotBuilder(tmp_path / "bedrock.db")
    snap.add_run()
    snap.add_job("served-job", role_arn=ROLE, **DATA)
    served = snap.add_model("served", job_name="served-job")
    lookalike = f"<the ARN of x: aws sts get-caller-identity; touch {mark}/lookalike>"
    snap.add_deployment(served["arn"], "dep", description=lookalike)
    with snapshot_connection(snap.path) as connection:
        plan = plan_remediation(connection, create_key=True, alias="alias/bedrock-cmk")
    [deploy] = plan.follow_ups
    assert isinstance(deploy, ManualStep) and deploy.params["description"] == lookalike
    from bedrock_sql.remediate.plan import cli_command

    command = cli_command(deploy)
    assert "$(aws sts" not in command
    [lookup, call] = run_words(command)
    assert call[call.index("--description") + 1] == lookalike and marks(mark) == []
    assert json.loads(json.dumps(plan_json(plan)))[-1]["params"]["description"] == lookalike
