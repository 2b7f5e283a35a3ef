"""The bash script of a remediation plan: AWS CLI commands and the key policies they read.

:func:`render_script` turns a :class:`~bedrock_sql.remediate.plan.Plan` into a script that
creates nothing twice when run again and deletes nothing; :func:`write_script` writes it,
with the key policy files, into a folder readable by its owner only.
"""

from __future__ import annotations

import json
import os
import re
import shlex
import textwrap
from pathlib import Path
from typing import Any

from .. import __version__
from ..errors import UserError
from .plan import SEED_CONTROL, Plan, Step, next_steps

SCRIPT_NAME = "bedrock-cmk-remediation.sh"


def _shell_value(value: Any) -> str:
    if isinstance(value, str):
        match = re.fullmatch(r"\$\{(\w+)\}", value)
        if match:
            return f'"${match.group(1)}"'
        return shlex.quote(value)
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (int, float)):
        return str(value)
    return shlex.quote(json.dumps(value, separators=(",", ":")))


def _cli_args(params: dict[str, Any], overrides: dict[str, str] | None = None) -> list[str]:
    from botocore import xform_name

    args = []
    for name, value in params.items():
        rendered = (overrides or {}).get(name)
        args.append(f"--{xform_name(name, '-')} {rendered if rendered is not None else _shell_value(value)}")
    return args


def _comment(text: str, indent: str = "") -> list[str]:
    clean = " ".join(str(text).split())  # one line of text: no newline can end a comment early
    return [f"{indent}# {line}" for line in textwrap.wrap(clean, 96 - len(indent), break_on_hyphens=False, break_long_words=False)]


def _command(head: str, args: list[str], indent: str, tail: str = "") -> list[str]:
    """A command over several lines: ``head`` (already indented), one argument a line."""
    lines = [f"{head} \\"]
    for arg in args:
        lines.append(f"{indent}  {arg} \\")
    if tail:
        lines.append(f"{indent}  {tail}")
    else:
        lines[-1] = lines[-1][:-2]
    return lines


def render_script(plan: Plan) -> tuple[str, dict[str, str]]:
    """The plan as a bash script of AWS CLI commands, and the key policy files it reads.

    Returns ``(script, {file name: content})``; the files go beside the script, which
    finds them through its own directory. The script is safe to run twice: it reuses the
    key an alias already names and skips jobs that already exist.
    """
    files = {k.policy_file: json.dumps(k.policy, indent=2) + "\n" for k in plan.keys if k.create}
    accounts = plan.account_ids
    out = [
        "#!/usr/bin/env bash",
        "# Re-create Amazon Bedrock custom models with a KMS customer-managed key (CMK).",
        "#",
        *_comment(
            f"Written by bedrock-sql {__version__} remediate from snapshot {plan.snapshot or '(unnamed)'}"
            + (f", collected {plan.collected_at}" if plan.collected_at else "")
            + f". {len(plan.targets)} model(s) fail {SEED_CONTROL}: for each, this script starts the "
            "customization job again with the same configuration plus --custom-model-kms-key-id. "
            "It creates nothing twice when run again, and deletes nothing."
        ),
        *_comment(
            f"Account(s): {', '.join(accounts)}. Run it with credentials for each account in turn (e.g. "
            "AWS_PROFILE=...): each run does the steps of the account the credentials belong to."
        ),
        *(_comment("Key policies: the key-policy-*.json files beside this script.") if files else []),
        "set -euo pipefail",
        "",
        'HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"',
        'ACCOUNT_ID="$(aws sts get-caller-identity --query Account --output text)"',
        'case "$ACCOUNT_ID" in',
        f"  {'|'.join(accounts)}) ;;",
        f'  *) echo "This plan is for account(s) {", ".join(accounts)}; these credentials are for account $ACCOUNT_ID." >&2; exit 1 ;;',
        "esac",
    ]
    for account_id in accounts:
        out += ["", f'if [ "$ACCOUNT_ID" = "{account_id}" ]; then', f'  echo "Account {account_id}"']
        regions = sorted({s.region for s in [*plan.steps, *plan.manual_steps] if s.account_id == account_id})
        for region in regions:
            out += ["", f"  # ---- {account_id} {region} " + "-" * max(4, 70 - len(account_id) - len(region))]
            steps = [s for s in plan.steps if (s.account_id, s.region) == (account_id, region)]
            for step in steps:
                out += _script_step(step, files)
            for manual in (m for m in plan.manual_steps if (m.account_id, m.region) == (account_id, region)):
                out += [""] + _comment("MANUAL: " + manual.reason + " Fill in the <...> values:", "  ")
                command = _command(
                    f"aws {manual.service} {_cli_operation(manual.operation)}",
                    [f"--region {manual.region}", *_cli_args(manual.params)],
                    "",
                )
                out += [f"  #   {' '.join(line.split(chr(10)))}" for line in command]
                out.append(f"  echo {shlex.quote(f'Manual step left for {manual.model_name}: see the comment in this script.')}")
        out.append("fi")
    out += ["", "cat <<'NEXT_STEPS'", *next_steps(plan), "NEXT_STEPS", ""]
    return "\n".join(out), files


def _cli_operation(operation: str) -> str:
    from botocore import xform_name

    return xform_name(operation, "-")


def _script_step(step: Step, files: dict[str, str]) -> list[str]:
    indent = "  "
    region = f"--region {step.region}"
    if step.operation == "CreateKey":
        var = next(iter(step.outputs))
        policy_file = f"key-policy-{step.account_id}-{step.region}.json"
        assert policy_file in files
        args = _cli_args(step.params, {"Policy": f'"file://$HERE/{policy_file}"'})
        return [
            "",
            *_comment(step.comment, indent),
            *_comment(f"Reuse the key {step.alias} names if it exists (a second run creates nothing).", indent),
            f'{indent}{var}="$(aws kms describe-key {region} --key-id {shlex.quote(step.alias or "")} '
            '--query KeyMetadata.Arn --output text 2>/dev/null || true)"',
            f'{indent}if [ -z "${var}" ] || [ "${var}" = "None" ]; then',
            *_command(f'{indent}  {var}="$(aws kms create-key', [region, *args], indent + "  ", "--query KeyMetadata.Arn --output text)\""),
        ]
    if step.operation == "CreateAlias":
        var = re.fullmatch(r"\$\{(\w+)\}", step.params["TargetKeyId"]).group(1)
        return [
            f"{indent}  aws kms create-alias {region} {' '.join(_cli_args(step.params))}",
            f'{indent}  echo "Created key ${var} ({step.params["AliasName"]})"',
            f"{indent}else",
            f'{indent}  echo "Reusing key ${var} ({step.params["AliasName"]} already exists)"',
            f"{indent}fi",
        ]
    if step.operation == "EnableKeyRotation":
        return [f"{indent}aws kms enable-key-rotation {region} {' '.join(_cli_args(step.params))}"]
    if step.operation == "CreateModelCustomizationJob":
        job = step.params["jobName"]
        return [
            "",
            *_comment(step.comment, indent),
            f"{indent}if aws bedrock get-model-customization-job {region} --job-identifier {shlex.quote(job)} >/dev/null 2>&1; then",
            f"{indent}  echo {shlex.quote(f'Job {job} already exists: nothing started')}",
            f"{indent}else",
            f"{indent}  echo {shlex.quote(f'Starting job {job}:')}",
            *_command(
                f"{indent}  aws bedrock create-model-customization-job",
                [region, *_cli_args(step.params)],
                indent + "  ",
                "--query jobArn --output text",
            ),
            f"{indent}fi",
        ]
    # Any other step: the plain command.
    head = f"{indent}aws {step.service} {_cli_operation(step.operation)}"
    return ["", *_comment(step.comment, indent), *_command(head, [region, *_cli_args(step.params)], indent)]


def write_script(plan: Plan, out_dir: str | os.PathLike, *, force: bool = False) -> list[Path]:
    """Write the script and its key policies into ``out_dir``; refuse to overwrite unless ``force``.

    The files map the estate (roles, buckets, VPCs), so they are created readable by their
    owner only, like the snapshot. Nothing is written if any file exists (without force).
    """
    script, files = render_script(plan)
    folder = Path(out_dir)
    contents = {SCRIPT_NAME: script, **files}
    if folder.exists() and not folder.is_dir():
        raise UserError(f"--out-dir {folder}: not a directory")
    if not force:
        clash = [name for name in contents if (folder / name).exists()]
        if clash:
            raise UserError(f"{folder / clash[0]} already exists: pass --force to overwrite it, or choose another --out-dir")
    try:
        folder.mkdir(parents=True, exist_ok=True)
        written = []
        for name, text in contents.items():
            path = folder / name
            flags = os.O_WRONLY | os.O_CREAT | os.O_TRUNC | (0 if force else os.O_EXCL)
            fd = os.open(path, flags, 0o700 if name == SCRIPT_NAME else 0o600)
            with os.fdopen(fd, "w", encoding="utf-8") as handle:
                handle.write(text)
            written.append(path)
    except OSError as exc:
        raise UserError(f"cannot write the plan into {folder}: {exc.strerror}") from None
    return written
