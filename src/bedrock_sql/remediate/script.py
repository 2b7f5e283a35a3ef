"""The bash script of a remediation plan: AWS CLI commands and the key policies they read.

:func:`render_script` turns a :class:`~bedrock_sql.remediate.parts.Plan` into a script that
is as careful as ``--apply``: it checks the AWS CLI, then, for the account its credentials
belong to, reads everything it depends on before it changes anything (the key an alias
names, a key an earlier run left unnamed, jobs of the same name), creates nothing twice
when run again, and deletes nothing. :func:`write_script` writes it, with the key policy
files, into a folder readable by its owner only.
"""

from __future__ import annotations

import itertools
import json
import os
import re
from pathlib import Path
from typing import Any

from .. import __version__
from ..errors import UserError
from ..safe_files import private_directory, write_file
from . import shell
from .keys import ALIAS_TAG, PLAN_TAG, created_key_tags
from .parts import CONTROLS, KeyChoice, Plan, Step, Variable
from .plan import cli_argument, cli_command, cli_option, next_steps
from .shell import Expand, comment, comment_line, quote, word

# The read-only check before each model-making step: bash function, and the request
# members it is given (after the region).
_STATE_CHECKS = {
    "CreateModelCustomizationJob": ("job_state", ("jobName", "clientRequestToken")),
    "CreateModelImportJob": ("import_state", ("jobName", "importedModelName")),
    "CreateModelCopyJob": ("copy_state", ("targetModelName", "sourceModelArn")),
}
# What the AWS CLI must know for each operation beyond customization jobs (checked up front).
_CLI_PARAMETERS = {
    "CreateModelImportJob": ("create-model-import-job", "importedModelKmsKeyId"),
    "CreateModelCopyJob": ("create-model-copy-job", "modelKmsKeyId"),
}


def _cli_checks(plan: Plan) -> list[str]:
    operations = sorted({s.operation for s in plan.steps} & set(_CLI_PARAMETERS))
    return [shell.command("require_parameter", *_CLI_PARAMETERS[op]) for op in operations]

SCRIPT_NAME = "bedrock-cmk-remediation.sh"
CLI_INSTALL = "https://docs.aws.amazon.com/cli/latest/userguide/getting-started-install.html"

# The functions every script starts with: the checks --apply makes (apply.py), in bash. They
# are the same text in every script, so a reviewer reads them once; the steps below them
# call them with the plan's values.
_FUNCTIONS = r"""
# ---- helpers ------------------------------------------------------------------------------
# AWS CLI v2 pages long answers through `less` and would wait for a key press; v1 has no pager.
export AWS_PAGER=""
HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
SCRIPT="$(basename "${BASH_SOURCE[0]}")"
STOPPED=""
ANSWER=""
AWS_ERRORS="$(mktemp)"  # what the AWS CLI said when a read failed

# say WORDS: print a line (printf, not echo: echo would take a leading -n or -e of the text
# as an option).
say() {
  printf '%s\n' "$*"
}

# stop MESSAGE: say why the script stops here, and stop. What AWS answered can be part of the
# message: control characters (an escape sequence) are dropped before it reaches the terminal.
stop() {
  STOPPED=1
  printf '%s\n' "$SCRIPT: stopped: $*" | LC_ALL=C tr -d '\000-\010\013-\037\177' >&2
  exit 1
}

# Any other failure is a command that set -e stopped at: say what that leaves behind.
on_exit() {
  status=$?
  rm -f "$AWS_ERRORS"
  if [ "$status" -ne 0 ] && [ -z "$STOPPED" ]; then
    echo "$SCRIPT: stopped: the command above failed (exit $status). The steps before it are done;" \
      "run this script again once that is fixed: it skips what is done." >&2
  fi
}
trap on_exit EXIT

# read_or_missing ARGS...: an AWS CLI read; its answer in ANSWER, or ANSWER="" when AWS says
# the resource does not exist. Only NotFoundException / ResourceNotFoundException mean
# "missing": any other failure (AccessDenied, expired credentials, throttling, no network)
# stops the script, because taking it for "missing" would create a second key or job.
read_or_missing() {
  if ANSWER="$(aws "$@" 2>"$AWS_ERRORS")"; then
    return 0
  fi
  ANSWER=""
  if grep -qE '\((NotFoundException|ResourceNotFoundException)\)' "$AWS_ERRORS"; then
    return 0
  fi
  said="$(grep . "$AWS_ERRORS" | tr '\n' ' ')" || true  # its message, on one line
  stop "aws $1 $2 failed (nothing changed): ${said% }"
}

# What describe-key answers, for check_key (one line: ARN, state, manager, spec, usage).
KEY_FIELDS='KeyMetadata.[Arn,KeyState,KeyManager,KeySpec || CustomerMasterKeySpec,KeyUsage]'

# check_key REGION WHAT: stop unless a customization job in REGION may use the key that
# ANSWER describes (KEY_FIELDS): customer managed, Enabled (not Disabled, not
# PendingDeletion), in REGION, a symmetric encryption key. WHAT names the key in the
# message. Sets KEY_ARN.
check_key() {
  read -r KEY_ARN key_state key_manager key_spec key_usage <<<"$ANSWER"
  key_region="${KEY_ARN#arn:*:kms:}"
  key_region="${key_region%%:*}"
  problem=""
  if [ "$key_manager" != "CUSTOMER" ]; then
    problem="is an AWS managed key (KeyManager $key_manager): the rule needs a customer-managed key"
  elif [ "$key_state" = "PendingDeletion" ]; then
    problem="is pending deletion: cancel the deletion, or choose another key"
  elif [ "$key_state" != "Enabled" ]; then
    problem="is $key_state, not Enabled: enable it (aws kms enable-key), or choose another key"
  elif [ "$key_region" != "$1" ]; then
    problem="is in $key_region, not $1: a customization job needs a key in its own region"
  elif [ "$key_spec" != "SYMMETRIC_DEFAULT" ] || [ "$key_usage" != "ENCRYPT_DECRYPT" ]; then
    problem="is a $key_spec $key_usage key: Bedrock needs a symmetric encryption key"
  fi
  if [ -n "$problem" ]; then
    stop "$2 $KEY_ARN $problem (nothing changed)"
  fi
}

# check_existing_key REGION ARN: the plan uses this existing key: it must still be usable.
check_existing_key() {
  read_or_missing kms describe-key --region "$1" --key-id "$2" --query "$KEY_FIELDS" --output text
  if [ -z "$ANSWER" ]; then
    stop "key $2 no longer exists: collect again and make a new plan (nothing changed)"
  fi
  check_key "$1" "the plan's key"
}

# find_unnamed_key REGION ALIAS PLAN_ID: a key an earlier run of this plan created for ALIAS
# but could not name (create-alias failed after create-key): no alias names it, and it bears
# the tags @ALIAS_TAG@=ALIAS and @PLAN_TAG@=PLAN_ID. Reusing it keeps a rerun from
# leaving a second key behind. Sets KEY_ARN (empty: there is none).
find_unnamed_key() {
  KEY_ARN=""
  key_arns="$(aws kms list-keys --region "$1" --query 'Keys[].KeyArn' --output text)"
  named=" $(aws kms list-aliases --region "$1" --query 'Aliases[].TargetKeyId' --output text | tr '\t\n' '  ') "
  for candidate in $key_arns; do
    case "$named" in *" ${candidate##*/} "*) continue ;; esac  # an alias names it: not unnamed
    case "$candidate" in arn:*) ;; *) continue ;; esac          # "None": no keys at all
    read_or_missing kms list-resource-tags --region "$1" --key-id "$candidate" --output text \
      --query "[Tags[?TagKey=='@ALIAS_TAG@'].TagValue | [0], Tags[?TagKey=='@PLAN_TAG@'].TagValue | [0]]"
    [ -n "$ANSWER" ] || continue  # deleted since list-keys
    read -r tag_alias tag_plan <<<"$ANSWER"
    [ "$tag_alias" = "$2" ] || continue
    read_or_missing kms describe-key --region "$1" --key-id "$candidate" --query "$KEY_FIELDS" --output text
    case "$ANSWER" in "" | *PendingDeletion*) continue ;; esac  # gone, or being deleted
    if [ "$tag_plan" != "$3" ]; then
      stop "key $candidate was created for $2 by another plan (@PLAN_TAG@ $tag_plan) and no alias names it:" \
        "name it (aws kms create-alias --region $1 --alias-name $2 --target-key-id $candidate) to use it," \
        "or schedule its deletion; then run this script again (nothing changed)"
    fi
    check_key "$1" "the key an earlier run created for $2 (never named),"
    return 0
  done
}

# resolve_key REGION ALIAS PLAN_ID: where the key named ALIAS comes from, changing nothing.
# KEY_SOURCE=alias: ALIAS exists and names a usable key (reused); unnamed: an earlier run
# created the key but could not name it (reused, then named); new: create it. Sets KEY_ARN.
resolve_key() {
  read_or_missing kms describe-key --region "$1" --key-id "$2" --query "$KEY_FIELDS" --output text
  if [ -n "$ANSWER" ]; then
    check_key "$1" "$2 already exists in $ACCOUNT_ID/$1, but its key"
    KEY_SOURCE="alias"
    return 0
  fi
  find_unnamed_key "$1" "$2" "$3"
  if [ -n "$KEY_ARN" ]; then KEY_SOURCE="unnamed"; else KEY_SOURCE="new"; fi
}

# job_state REGION JOB_NAME TOKEN: JOB_STATE=new (no such job: start it) or started (an
# earlier run started it: same client request token). A job of that name this plan did not
# start stops the script.
job_state() {
  read_or_missing bedrock get-model-customization-job --region "$1" --job-identifier "$2" \
    --query clientRequestToken --output text
  if [ -z "$ANSWER" ]; then
    JOB_STATE="new"
  elif [ "$ANSWER" = "$3" ]; then
    JOB_STATE="started"
  else
    stop "a job named $2 already exists in $ACCOUNT_ID/$1 and this plan did not start it" \
      "(different client request token): make the plan again with another --suffix (nothing changed)"
  fi
}

# import_state REGION JOB_NAME MODEL_NAME: JOB_STATE=new (no such import job: start it) or
# started (an earlier run started it: the job imported MODEL_NAME). An import job of that
# name that imported another model stops the script.
import_state() {
  read_or_missing bedrock get-model-import-job --region "$1" --job-identifier "$2" \
    --query importedModelName --output text
  if [ -z "$ANSWER" ]; then
    JOB_STATE="new"
  elif [ "$ANSWER" = "$3" ]; then
    JOB_STATE="started"
  else
    stop "an import job named $2 already exists in $ACCOUNT_ID/$1 and this plan did not start it" \
      "(it imported $ANSWER): make the plan again with another --suffix (nothing changed)"
  fi
}

# copy_state REGION MODEL_NAME SOURCE_ARN: JOB_STATE=new (no model of that name: copy) or
# started (a copy of SOURCE_ARN made it: an earlier run). A model of that name that no copy
# of the source made stops the script.
copy_state() {
  read_or_missing bedrock get-custom-model --region "$1" --model-identifier "$2" --query modelArn --output text
  if [ -z "$ANSWER" ]; then
    JOB_STATE="new"
    return 0
  fi
  read_or_missing bedrock list-model-copy-jobs --region "$1" --source-model-arn-equals "$3" \
    --query "modelCopyJobSummaries[?targetModelName=='$2'].jobArn | [0]" --output text
  if [ -n "$ANSWER" ] && [ "$ANSWER" != "None" ]; then
    JOB_STATE="started"
  else
    stop "a model named $2 already exists in $ACCOUNT_ID/$1 and no copy of $3 made it:" \
      "make the plan again with another --suffix (nothing changed)"
  fi
}

# require_parameter OPERATION MEMBER: stop unless this AWS CLI's `aws bedrock OPERATION`
# takes MEMBER (checked locally, in its input skeleton).
require_parameter() {
  skeleton="$(aws bedrock "$1" --generate-cli-skeleton input 2>&1)" || true
  case "$skeleton" in
    *"\"$2\""*) ;;
    *) stop "this AWS CLI is too old: $AWS_CLI_VERSION has no $2 for aws bedrock $1; install a current one (@CLI_INSTALL@)" ;;
  esac
}

# ---- the AWS CLI, before any AWS call -----------------------------------------------------
# An AWS CLI that does not run, or too old to know Bedrock's --custom-model-kms-key-id, would
# fail at the first job, after keys were created. Both checks are local (no AWS call); the
# input skeleton lists every parameter the CLI knows and, unlike `help`, needs no groff or pager.
if ! command -v aws >/dev/null 2>&1; then
  stop "the AWS CLI (aws) is not on PATH: install it (@CLI_INSTALL@)"
fi
if ! AWS_CLI_VERSION="$(aws --version 2>&1)"; then
  stop "the AWS CLI does not run (aws --version): $AWS_CLI_VERSION"
fi
AWS_CLI_VERSION="${AWS_CLI_VERSION%%$'\n'*}"
SKELETON="$(aws bedrock create-model-customization-job --generate-cli-skeleton input 2>&1)" || true
case "$SKELETON" in
  *'"customModelKmsKeyId"'*) ;;
  *) stop "this AWS CLI is too old: $AWS_CLI_VERSION has no --custom-model-kms-key-id for" \
       "aws bedrock create-model-customization-job; install a current one (@CLI_INSTALL@)" ;;
esac
""".replace("@ALIAS_TAG@", ALIAS_TAG).replace("@PLAN_TAG@", PLAN_TAG).replace("@CLI_INSTALL@", CLI_INSTALL)


def _args(params: dict[str, Any], overrides: dict[str, str] | None = None, *, manual: bool = False) -> list[str]:
    """``--option WORD`` for each request member; ``overrides`` are words already rendered."""
    args = []
    for member, value in params.items():
        rendered = (overrides or {}).get(member)
        args.append(f"{cli_option(member)} {rendered if rendered is not None else cli_argument(value, manual=manual)}")
    return args


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


def _variable(value: Any) -> str:
    """The name of the plan variable ``value`` is (a key a CreateKey step creates)."""
    if not isinstance(value, Variable):
        raise TypeError(f"internal: expected a Variable, not {type(value).__name__}")
    return shell.name(value.name)


def render_script(plan: Plan) -> tuple[str, dict[str, str]]:
    """The plan as a bash script of AWS CLI commands, and the key policy files it reads.

    Returns ``(script, {file name: content})``; the files go beside the script, which
    finds them through its own directory. For the account its credentials belong to, the
    script first checks (reading only) and then changes; run again, it reuses the key an
    alias names or an earlier run left unnamed, and skips jobs it already started.

    Every value from the plan reaches bash through :mod:`.shell`: a word from :func:`quote`
    (or :func:`word`, joining literal text and the script's own variables), prose through
    :func:`comment`, the closing text through a ``printf`` of quoted lines.
    """
    files = {_policy_file(k.account_id, k.region): json.dumps(k.policy, indent=2) + "\n" for k in plan.keys if k.create}
    accounts = plan.account_ids
    out = [
        "#!/usr/bin/env bash",
        "# Re-create Amazon Bedrock custom models with a KMS customer-managed key (CMK).",
        "#",
        *comment(
            f"Written by bedrock-sql {__version__} remediate from snapshot {plan.snapshot or '(unnamed)'}"
            + (f", collected {plan.collected_at}" if plan.collected_at else "")
            + f". {len(plan.targets)} model(s) fail {' or '.join(CONTROLS)}: for each, this script starts the "
            "customization job again with the same configuration plus --custom-model-kms-key-id, imports an "
            "imported model again with --imported-model-kms-key-id, or copies a copy again with --model-kms-key-id. "
            "What serves the old models is listed at the end, to move once the new models are Active. "
            "It creates nothing twice when run again, and deletes nothing."
        ),
        *comment(
            f"Account(s): {', '.join(accounts)}. Run it with credentials for each account in turn (e.g. "
            "AWS_PROFILE=...): each run does the steps of the account the credentials belong to."
        ),
        *comment(
            "Before it changes anything it checks, as bedrock-sql remediate --apply does: that the AWS CLI "
            "knows --custom-model-kms-key-id; that a key an alias already names is customer managed, Enabled "
            "and in the alias's region; that no job of the same name was started by someone else. Only a "
            "NotFound answer means \"create\": any other failure stops it. Keys it creates are tagged "
            f"{ALIAS_TAG} and {PLAN_TAG}, so a rerun after a failed create-alias reuses that key."
        ),
        *comment(
            "Every value from AWS is quoted as one literal word ('...', or $'...' with \\xHH escapes for "
            "control characters): nothing in a name, tag, description or S3 URI is run."
        ),
        *(comment("Key policies: the key-policy-*.json files beside this script.") if files else []),
        "set -euo pipefail",
        *_FUNCTIONS.splitlines(),
        *_cli_checks(plan),
        "",
        "# ---- the account these credentials belong to -----------------------------------------------",
        'ACCOUNT_ID="$(aws sts get-caller-identity --query Account --output text)"',
        'case "$ACCOUNT_ID" in',
        f"  {'|'.join(quote(a) for a in accounts)}) ;;",
        "  *) stop "
        + word(f"this plan is for account(s) {', '.join(accounts)}; these credentials are for account ", Expand("ACCOUNT_ID"))
        + " ;;",
        "esac",
    ]
    job_numbers = itertools.count(1)
    for account_id in accounts:
        steps = [s for s in plan.steps if s.account_id == account_id]
        manual = [m for m in plan.manual_steps if m.account_id == account_id]
        jobs = {id(s): shell.name(f"JOB_STATE_{next(job_numbers)}") for s in steps if s.operation in _STATE_CHECKS}
        out += ["", f'if [ "$ACCOUNT_ID" = {quote(account_id)} ]; then']
        out += _checks(plan, account_id, steps, jobs)
        for region in sorted({s.region for s in [*steps, *manual]}):
            out += ["", *comment(f"---- {account_id} {region}: changes " + "-" * max(4, 62 - len(account_id) - len(region)), "  ")]
            for step in (s for s in steps if s.region == region):
                out += _script_step(step, files, jobs)
            for step in (m for m in manual if m.region == region):
                out += [""] + comment("MANUAL: " + step.reason + " Fill in the <...> values:", "  ")
                command = _command(
                    shell.command("aws", step.service, _cli_operation(step.operation)),
                    [f"--region {quote(step.region)}", *_args(step.params, manual=True)],
                    "",
                )
                out += [comment_line(f"  {line}", "  ") for line in command]
                # Printed when the script runs: the estate's name made visible, never an escape sequence.
                out.append("  say " + quote(shell.visible(f"Manual step left for {step.model_name}: see the comment in this script.")))
        follow_ups = [m for m in plan.follow_ups if m.account_id == account_id]
        if follow_ups:
            out += ["", "  # ---- once the new models are Active (not run by this script) " + "-" * 30]
            for step in follow_ups:
                out += comment("FOLLOW-UP: " + step.reason, "  ") + [comment_line(f"  {cli_command(step)}", "  ")]
        out.append("fi")
    # What is left, printed as quoted lines: no text of the plan can end it or run.
    out += ["", *shell.printf_lines(next_steps(plan)), ""]
    return "\n".join(out), files


def _policy_file(account_id: str, region: str) -> str:
    """The key policy file of a unit: a plain file name (the ids are checked)."""
    name = f"key-policy-{account_id}-{region}.json"
    if not re.fullmatch(r"key-policy-[0-9]{12}-[a-z0-9-]+\.json", name, re.ASCII):
        raise ValueError(f"internal: no policy file name for {account_id!r}/{region!r}")
    return name


def _checks(plan: Plan, account_id: str, steps: list[Step], jobs: dict[int, str]) -> list[str]:
    """The read-only half of an account's block: every check before any change."""
    indent = "  "
    out = [
        f"{indent}say " + quote(f"Account {account_id}: checking before changing anything"),
        *comment("Checks: these lines only read. Each decision is kept in a variable for the changes below.", indent),
    ]
    # Existing keys of this account (a key of another account may be usable by the jobs' role
    # and still not describable by these credentials: it was checked when planning).
    reused: list[KeyChoice] = [k for k in plan.keys if not k.create and k.arn and k.account_id == account_id]
    for key in reused:
        out += [
            *comment(f"The plan uses existing key {key.alias or key.arn} in {key.region}: is it still usable?", indent),
            indent + shell.command("check_existing_key", key.region, key.arn or ""),
        ]
    for step in steps:
        if step.operation == "CreateKey":
            alias, plan_id = created_key_tags(step)
            var = shell.name(next(iter(step.outputs)))
            out += [
                *comment(f"{step.region}: the key named {alias}: reuse it, reuse the one an earlier run left unnamed, or create it?", indent),
                indent + shell.command("resolve_key", step.region, alias, plan_id),
                f'{indent}{var}="$KEY_ARN"',
                f'{indent}{_source_variable(var)}="$KEY_SOURCE"',
            ]
        elif step.operation in _STATE_CHECKS:
            function, members = _STATE_CHECKS[step.operation]
            out += [
                indent + shell.command(function, step.region, *(step.params[m] for m in members)),
                f'{indent}{jobs[id(step)]}="$JOB_STATE"',
            ]
    out.append(f"{indent}say " + quote(f"Account {account_id}: checks passed"))
    return out


def _source_variable(key_variable: str) -> str:
    """The variable saying where a key comes from (alias, unnamed, new)."""
    return shell.name(key_variable.replace("KEY_ARN_", "KEY_SOURCE_", 1))


def _cli_operation(operation: str) -> str:
    from botocore import xform_name

    return xform_name(operation, "-")


def _script_step(step: Step, files: dict[str, str], jobs: dict[int, str]) -> list[str]:
    indent = "  "
    region = f"--region {quote(step.region)}"
    if step.operation == "CreateKey":
        var = shell.name(next(iter(step.outputs)))
        source = _source_variable(var)
        policy_file = _policy_file(step.account_id, step.region)
        assert policy_file in files
        args = _args(step.params, {"Policy": word("file://", Expand("HERE"), "/" + policy_file)})
        return [
            "",
            *comment(step.comment, indent),
            f'{indent}if [ "${source}" = new ]; then',
            *_command(f'{indent}  {var}="$(aws kms create-key', [region, *args], indent + "  ", "--query KeyMetadata.Arn --output text)\""),
            f"{indent}  say " + word("Created key ", Expand(var)),
            f'{indent}elif [ "${source}" = unnamed ]; then',
            f"{indent}  say " + word("Reusing key ", Expand(var), f", which an earlier run created for {step.alias} but could not name"),
            f"{indent}fi",
        ]
    if step.operation == "CreateAlias":
        var = _variable(step.params["TargetKeyId"])
        alias = step.params["AliasName"]
        return [
            *comment(step.comment + " (Unless the alias already names it.)", indent),
            f'{indent}if [ "${_source_variable(var)}" = alias ]; then',
            f"{indent}  say " + word("Reusing key ", Expand(var), f" ({alias} already exists)"),
            f"{indent}else",
            f"{indent}  aws kms create-alias {region} {' '.join(_args(step.params))}",
            f"{indent}  say " + word("Named key ", Expand(var), f" {alias}"),
            f"{indent}fi",
        ]
    if step.operation == "EnableKeyRotation":
        return [*comment(step.comment, indent), f"{indent}aws kms enable-key-rotation {region} {' '.join(_args(step.params))}"]
    if step.operation in _STATE_CHECKS:
        job = {
            "CreateModelCustomizationJob": f"job {step.params.get('jobName')}",
            "CreateModelImportJob": f"import job {step.params.get('jobName')}",
            "CreateModelCopyJob": f"copy {step.params.get('targetModelName')}",
        }[step.operation]
        return [
            "",
            *comment(step.comment, indent),
            f'{indent}if [ "${jobs[id(step)]}" = started ]; then',
            f"{indent}  say " + quote(f"{job[0].upper()}{job[1:]} already exists: nothing started"),
            f"{indent}else",
            f"{indent}  say " + quote(f"Starting {job}:"),
            *_command(
                f"{indent}  " + shell.command("aws", "bedrock", _cli_operation(step.operation)),
                [region, *_args(step.params)],
                indent + "  ",
                "--query jobArn --output text",
            ),
            f"{indent}fi",
        ]
    # Any other step: the plain command.
    head = indent + shell.command("aws", step.service, _cli_operation(step.operation))
    return ["", *comment(step.comment, indent), *_command(head, [region, *_args(step.params)], indent)]


def write_script(plan: Plan, out_dir: str | os.PathLike, *, force: bool = False) -> list[Path]:
    """Write the script and its key policies into ``out_dir``; refuse to overwrite unless ``force``.

    The files map the estate (roles, buckets, VPCs) and the script is run with administrator
    credentials, so the folder must be the user's own and writable by nobody else (created
    0700 when missing: :func:`~bedrock_sql.safe_files.private_directory`), and each file is
    written through a new temporary file moved into place
    (:func:`~bedrock_sql.safe_files.write_file`): a symlink planted at a file's name is
    replaced, never followed. Nothing is written if any file exists (without force).
    """
    script, files = render_script(plan)
    contents = {SCRIPT_NAME: script, **files}
    folder = private_directory(out_dir, what=f"--out-dir {out_dir}")
    if not force:
        clash = [name for name in contents if os.path.lexists(folder / name)]
        if clash:
            raise UserError(f"{folder / clash[0]} already exists: pass --force to overwrite it, or choose another --out-dir")
    written = []
    try:
        for name, text in contents.items():
            written.append(write_file(folder / name, text, mode=0o700 if name == SCRIPT_NAME else 0o600, replace=force))
    except FileExistsError as exc:  # created by someone else since we looked
        taken = exc.filename or (exc.args[0] if exc.args else folder)
        raise UserError(f"{taken} already exists: pass --force to overwrite it, or choose another --out-dir") from None
    except OSError as exc:
        raise UserError(f"cannot write the plan into {folder}: {exc.strerror or exc}") from None
    return written
