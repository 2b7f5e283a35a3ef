"""An adversarial Bedrock estate (issue 19) and the checks that what bedrock-sql writes stays inert.

Anyone who can create a resource in one member account writes its names, descriptions, tags,
S3 URIs, hyperparameters, key descriptions and policy Sids. :func:`seed_hostile_estate` fills
every such field that bedrock-sql reads (and the API lets be free text) with one payload of
each class of :data:`PAYLOADS`, through the API of a moto server (plus the nudges of
``simulated_bedrock`` for what moto lacks). Each payload that would run a command names its
own marker file, ``PWNED_<class>_<field>``: a marker that appears says which payload, planted
in which field, ran.

The ``check_*`` functions judge one output for one payload class and return the problems they
found (an empty list: inert), each saying what leaked where.
"""

from __future__ import annotations

import csv
import io
import json
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable

import boto3

ACCOUNT = "123456789012"  # moto's default account
REGION = "us-east-1"

# Values of the environment of every subprocess that must never appear in an output or request:
# a `${VAR}` in data must stay literal.
CANARY_SECRET = "canary-1f4e9b-secret"  # CANARY_SECRET, named by the envvar payloads
SECRET_ACCESS_KEY = "sk-canary-77d01a"  # AWS_SECRET_ACCESS_KEY (moto takes any)
HOME_CANARY = "home-canary-5e2c"  # a part of HOME's path
FILE_CANARY = "file-canary-c0ffee"  # the content of the file a file:// payload names
ENV_CANARIES = (CANARY_SECRET, SECRET_ACCESS_KEY, HOME_CANARY)  # what an expanded ${VAR} would show
CANARIES = (*ENV_CANARIES, FILE_CANARY)

MARKER_PREFIX = "PWNED_"

# Payload classes: the text, with {m} for the marker file it would create if run and {f} for
# the canary file's path. Every payload also carries "HX<class>" so it can be found in any output.
PAYLOADS: dict[str, str] = {
    "newline": "legacy\ntouch {m} #",
    "cmdsubst": "$(touch {m})",
    "backtick": "`touch {m}`",
    "envvar": "${{HOME}} ${{AWS_SECRET_ACCESS_KEY}} ${{CANARY_SECRET}} $CANARY_SECRET",
    "quotes": "it's \"x\" '; touch {m}; echo ' \"; touch {m}; echo \"",
    "heredoc": "x\nNEXT_STEPS\ntouch {m}\nEOF\ntouch {m}",
    # The plan's own placeholder shape, whole (as the value of a request member), tag inside.
    "placeholder": "<the ARN of HXplaceholder: aws --version; touch {m}>",
    "terminal": "\x1b[2J\x1b]0;owned\x07\x1b]8;;http://evil/\x1b\\click\x1b]8;;\x1b\\ \rfake\x9b31m",
    "html": "<script>alert(1)</script><img src=x onerror=alert(1)>",
    "formula_hyperlink": "=HYPERLINK(\"http://evil\",\"x\")",
    "formula_dde": "+cmd|' /C calc'!A0",
    "markdown": "[x](javascript:alert(1)) ![x](http://evil/x.png)",
    "paramfile": "file://{f}",
}
CLASSES = tuple(PAYLOADS)


def marker(cls: str, where: str) -> str:
    return f"{MARKER_PREFIX}{cls}_{where}"


def payload(cls: str, where: str, canary_file: Path) -> str:
    """The payload of class ``cls`` planted in field ``where``. A payload that must be a
    field's whole value to work (a formula, a file:// parameter) starts the text; the tag
    HX<class> that finds it follows (the placeholder look-alike holds its own)."""
    text = PAYLOADS[cls].format(m=marker(cls, where), f=canary_file)
    if cls == "placeholder":
        return text
    return f"{text} HX{cls}" if cls in ("formula_hyperlink", "formula_dde", "paramfile") else f"HX{cls} {text}"


def payloads(where: str, canary_file: Path) -> dict[str, str]:
    return {cls: payload(cls, where, canary_file) for cls in CLASSES}


# The payloads that fit Bedrock's tag pattern ([a-zA-Z0-9\s._:/=+@-]*: whitespace, newlines
# included): what a tag can carry in a request AWS accepts, so the plan re-runs it for real.
_TAG_VALID = {
    "newline": "HXnewline legacy\ntouch {m}",
    "heredoc": "HXheredoc x\nNEXT_STEPS\ntouch {m}\nEOF",
    "terminal": "HXterminal fake\roverwritten\x0b\x0c",
    "formula_hyperlink": "=1+2+HXformula_hyperlink",
    "formula_dde": "+1+HXformula_dde",
    "paramfile": "file://{f}",
}


def api_valid_payloads(where: str, canary_file: Path) -> dict[str, str]:
    """The classes a Bedrock tag can carry, planted in ``where``, as AWS would accept them."""
    return {cls: text.format(m=marker(cls, where), f=canary_file) for cls, text in _TAG_VALID.items()}


# An S3 URI AWS accepts may hold ' ( ) ! * in its key.
API_VALID_S3 = "s3://acme-ml-hostile/it's(x)!*'/{part}"


def joined(where: str, canary_file: Path) -> str:
    """Every class in one text, one a line (a field that holds one value per resource)."""
    return "\n".join(payloads(where, canary_file).values())


ROLE_ARN = f"arn:aws:iam::{ACCOUNT}:role/service-role/BedrockCustomization"


def hostile_role_arn() -> str:
    """A role ARN IAM allows: a role's path may hold any printable ASCII but spaces, and
    Bedrock's roleArn pattern ends in ``role/.+``."""
    return (f"arn:aws:iam::{ACCOUNT}:role/$(touch${{IFS}}{marker('cmdsubst', 'role')})/"
            f"`touch${{IFS}}{marker('backtick', 'role')}`/${{CANARY_SECRET}}/'\"x/BedrockRole")


# --------------------------------------------------------------------------- the estate


@dataclass
class HostileEstate:
    """What was seeded: the ARNs the tests look for."""

    canary_file: Path
    # fine-tuned, Bedrock-owned key, API-valid (the plan re-runs its job): served by every
    # deployment and a throughput, and the source of the copy
    failing_model_arn: str = ""
    imported_model_arn: str = ""
    copy_model_arn: str = ""
    cmk_model_arn: str = ""  # encrypted with the key whose policy is public (hostile Sids)
    hostile_key_id: str = ""
    # One model per class, its job's hyperparameter the payload, served by one deployment whose
    # description is the payload: a plan of that model alone holds one class (so one class's
    # breakage cannot hide another's behind a syntax error).
    class_models: dict[str, str] = field(default_factory=dict)  # class -> model ARN
    deployments: dict[str, str] = field(default_factory=dict)  # class -> ARN
    class_keys: dict[str, str] = field(default_factory=dict)  # class -> key id


def _bedrock_backend(region: str = REGION):
    from moto.bedrock.models import bedrock_backends

    return bedrock_backends[ACCOUNT][region]


def _tags_bedrock(values: dict[str, str], prefix: str) -> list[dict[str, str]]:
    """Tags whose values are the payloads, and tags whose keys are."""
    tags = [{"key": f"{prefix}-{cls}", "value": text} for cls, text in values.items()]
    tags += [{"key": text[:128], "value": f"key-{cls}"} for cls, text in values.items() if cls != "paramfile"]
    return tags


def _tags_kms(values: dict[str, str], prefix: str) -> list[dict[str, str]]:
    return [{"TagKey": t["key"], "TagValue": t["value"]} for t in _tags_bedrock(values, prefix)]


def seed_hostile_estate(session: boto3.Session, endpoint_url: str, canary_file: Path) -> HostileEstate:
    """Seed the estate into moto (account 123456789012, us-east-1) through ``endpoint_url``."""
    bedrock = session.client("bedrock", region_name=REGION, endpoint_url=endpoint_url)
    kms = session.client("kms", region_name=REGION, endpoint_url=endpoint_url)
    estate = HostileEstate(canary_file)
    c = canary_file

    # --- KMS: one key per class (description and tags), and the key of cmk_model, whose policy
    # has one public statement per class, its Sid the payload.
    for cls, text in payloads("kms_description", c).items():
        meta = kms.create_key(Description=text, KeyUsage="ENCRYPT_DECRYPT", KeySpec="SYMMETRIC_DEFAULT",
                              Tags=_tags_kms(payloads(f"kms_tag_{cls}", c), "hostile"))["KeyMetadata"]
        estate.class_keys[cls] = meta["KeyId"]
    statements = [{"Sid": "Enable IAM User Permissions", "Effect": "Allow",
                   "Principal": {"AWS": f"arn:aws:iam::{ACCOUNT}:root"}, "Action": "kms:*", "Resource": "*"}]
    statements += [{"Sid": text, "Effect": "Allow", "Principal": "*", "Action": "kms:Decrypt", "Resource": "*"}
                   for text in payloads("sid", c).values()]
    meta = kms.create_key(Description=joined("cmk_description", c), KeyUsage="ENCRYPT_DECRYPT",
                          KeySpec="SYMMETRIC_DEFAULT", Tags=_tags_kms(payloads("cmk_tag", c), "hostile"),
                          Policy=json.dumps({"Version": "2012-10-17", "Statement": statements}))["KeyMetadata"]
    estate.hostile_key_id = meta["KeyId"]
    hostile_key_arn = meta["Arn"]
    # Alias names are [a-zA-Z0-9/_-]: no payload fits, the odd-but-valid characters do.
    kms.create_alias(AliasName="alias/hostile_-key/x--", TargetKeyId=meta["KeyId"])

    # --- customization jobs and their models
    def job(job_name: str, model_name: str, where: str, role: str = ROLE_ARN, api_valid: bool = False,
            **extra: Any) -> str:
        """A job with every field hostile (its plan is a manual step: AWS would refuse the
        request), or (``api_valid``) hostile only as far as AWS accepts, so the plan re-runs it."""
        values = payloads(where, c)
        request = {
            "jobName": job_name,
            "customModelName": model_name,
            "roleArn": role,
            "clientRequestToken": f"{job_name}-token",
            "baseModelIdentifier": "amazon.titan-text-express-v1:0:8k",
            "customizationType": "FINE_TUNING",
            "hyperParameters": {"epochCount": "2", **{f"hp_{cls}": text for cls, text in values.items()}},
            "trainingDataConfig": {"s3Uri": "s3://acme-ml-hostile/train/" + joined(f"{where}_train_s3", c)},
            "validationDataConfig": {
                "validators": [{"s3Uri": "s3://acme-ml-hostile/val/" + joined(f"{where}_val_s3", c)}]},
            "outputDataConfig": {"s3Uri": "s3://acme-ml-hostile/out/" + joined(f"{where}_out_s3", c)},
            "jobTags": _tags_bedrock(payloads(f"{where}_job_tag", c), "hostile"),
            "customModelTags": _tags_bedrock(payloads(f"{where}_model_tag", c), "hostile"),
            **extra,
        }
        if api_valid:
            request["trainingDataConfig"] = {"s3Uri": API_VALID_S3.format(part="train")}
            request["validationDataConfig"] = {"validators": [{"s3Uri": API_VALID_S3.format(part="val")}]}
            request["outputDataConfig"] = {"s3Uri": API_VALID_S3.format(part="out/")}
            request["jobTags"] = _tags_bedrock(api_valid_payloads(f"{where}_job_tag", c), "hostile")
            request["customModelTags"] = _tags_bedrock(api_valid_payloads(f"{where}_model_tag", c), "hostile")
        return bedrock.create_model_customization_job(**request)["jobArn"]

    # Names: only the characters the API's patterns allow (jobName: + - .; model: _ -).
    job("hostile.ft-job+1", "hostile_ft-model", "ft")
    job("hostile.apiok-job+1", "hostile_apiok-model", "apiok", api_valid=True)
    job("hostile.cmk-job+1", "hostile_cmk-model", "cmkjob", customModelKmsKeyId=hostile_key_arn)
    job("hostile.failed-job+1", "hostile_failed-model", "failedjob")
    # A role whose path IAM allows ($, backticks, quotes...): remediation must keep it literal
    # (or refuse it), never run it.
    job("hostile.role-job+1", "hostile_role-model", "rolejob", role=hostile_role_arn())
    backend = _bedrock_backend()
    for job_name, model_name, key in (("hostile.ft-job+1", "hostile_ft-model", None),
                                      ("hostile.apiok-job+1", "hostile_apiok-model", None),
                                      ("hostile.cmk-job+1", "hostile_cmk-model", hostile_key_arn),
                                      ("hostile.role-job+1", "hostile_role-model", None)):
        record = backend.model_customization_jobs[job_name]
        model = backend.custom_models[model_name]
        model.model_kms_key_arn = key  # moto invents a "...-kms-key" ARN otherwise
        record.status = "Completed"
        record.output_model_kms_key_arn = key
        record.output_model_name = model_name
        record.output_model_arn = model.model_arn
    estate.failing_model_arn = backend.custom_models["hostile_apiok-model"].model_arn
    estate.cmk_model_arn = backend.custom_models["hostile_cmk-model"].model_arn
    failed = backend.model_customization_jobs["hostile.failed-job+1"]
    failed.status = "Failed"  # AWS writes the message, often quoting the request's own text
    failed.failure_message = joined("failure_message", c)
    failed.output_model_arn = None
    bedrock.delete_custom_model(modelIdentifier="hostile_failed-model")

    # --- one model per class (an API-valid request but for its hyperparameter, free text in
    # the API), served by one deployment with the payload as description and tags
    for cls in CLASSES:
        name = cls.replace("_", "-")
        tags = {k: v for k, v in api_valid_payloads(f"c_tag_{cls}", c).items() if k == cls}
        bedrock.create_model_customization_job(
            jobName=f"hostile.c-{name}-job", customModelName=f"hostile-c-{name}", roleArn=ROLE_ARN,
            clientRequestToken=f"hostile-c-{name}-token", baseModelIdentifier="amazon.titan-text-express-v1:0:8k",
            hyperParameters={"epochCount": "1", "learningRate": payload(cls, "c_hyperparameter", c)},
            trainingDataConfig={"s3Uri": API_VALID_S3.format(part=f"{name}/train")},
            outputDataConfig={"s3Uri": API_VALID_S3.format(part=f"{name}/out/")},
            **({"customModelTags": _tags_bedrock(tags, "hostile"), "jobTags": _tags_bedrock(tags, "hostile")}
               if tags else {}),
        )
        record = backend.model_customization_jobs[f"hostile.c-{name}-job"]
        model = backend.custom_models[f"hostile-c-{name}"]
        model.model_kms_key_arn = None
        record.status, record.output_model_kms_key_arn = "Completed", None
        record.output_model_name, record.output_model_arn = model.model_name, model.model_arn
        estate.class_models[cls] = model.model_arn
        estate.deployments[cls] = bedrock.create_custom_model_deployment(
            modelDeploymentName=f"hostile-{name}", modelArn=model.model_arn,
            description=payload(cls, "deployment_description", c),
            tags=_tags_bedrock(payloads(f"deployment_tag_{cls}", c), "hostile"),
        )["customModelDeploymentArn"]

    # --- what serves the failing model: a throughput
    bedrock.create_provisioned_model_throughput(
        provisionedModelName="hostile-pt", modelId=estate.failing_model_arn, modelUnits=1,
        tags=_tags_bedrock(payloads("throughput_tag", c), "hostile"),
    )

    # --- an imported model (no key), and a copy of the failing model (no key)
    bedrock.create_model_import_job(
        jobName="hostile-import-job", importedModelName="hostile-imported", roleArn=ROLE_ARN,
        modelDataSource={"s3DataSource": {"s3Uri": "s3://acme-ml-hostile/import/" + joined("import_s3", c)}},
        jobTags=_tags_bedrock(payloads("import_job_tag", c), "hostile"),
        importedModelTags=_tags_bedrock(payloads("imported_model_tag", c), "hostile"),
    )
    bedrock.create_model_import_job(  # the same, as far as AWS accepts: the plan re-imports it
        jobName="hostile-import-ok-job", importedModelName="hostile-imported-ok", roleArn=ROLE_ARN,
        modelDataSource={"s3DataSource": {"s3Uri": API_VALID_S3.format(part="import/")}},
        jobTags=_tags_bedrock(api_valid_payloads("import_ok_job_tag", c), "hostile"),
        importedModelTags=_tags_bedrock(api_valid_payloads("imported_ok_model_tag", c), "hostile"),
    )
    imported = bedrock.list_imported_models()["modelSummaries"]
    estate.imported_model_arn = next(m["modelArn"] for m in imported if m["modelName"] == "hostile-imported")
    bedrock.create_model_copy_job(
        sourceModelArn=estate.failing_model_arn, targetModelName="hostile_copy-model",
        targetModelTags=_tags_bedrock(api_valid_payloads("copy_tag", c), "hostile"),
    )
    estate.copy_model_arn = backend.custom_models["hostile_copy-model"].model_arn
    return estate


def change_estate(session: boto3.Session, endpoint_url: str, estate: HostileEstate) -> None:
    """Between the two snapshots of `diff`: rotation turned on for the hostile key, and one
    more failing model (tags and all)."""
    kms = session.client("kms", region_name=REGION, endpoint_url=endpoint_url)
    kms.enable_key_rotation(KeyId=estate.hostile_key_id)
    bedrock = session.client("bedrock", region_name=REGION, endpoint_url=endpoint_url)
    c = estate.canary_file
    bedrock.create_model_customization_job(
        jobName="hostile.new-job+2", customModelName="hostile_new-model", roleArn=ROLE_ARN,
        clientRequestToken="hostile-new-token", baseModelIdentifier="amazon.titan-text-express-v1:0:8k",
        hyperParameters={f"hp_{cls}": text for cls, text in payloads("new_hp", c).items()},
        trainingDataConfig={"s3Uri": "s3://acme-ml-hostile/new/" + joined("new_s3", c)},
        outputDataConfig={"s3Uri": "s3://acme-ml-hostile/new-out/"},
        customModelTags=_tags_bedrock(payloads("new_model_tag", c), "hostile"),
    )
    backend = _bedrock_backend()
    backend.custom_models["hostile_new-model"].model_kms_key_arn = None
    record = backend.model_customization_jobs["hostile.new-job+2"]
    record.status = "Completed"
    record.output_model_kms_key_arn = None


# --------------------------------------------------------------------------- judging an output

# Raw terminal controls: C0 but tab and newline, DEL, and C1 (U+0080-U+009F).
_RAW_CONTROLS = re.compile(r"[\x00-\x08\x0b-\x1f\x7f\x80-\x9f]")
FORMULA_START = ("=", "+", "-", "@", "\t", "\r")


def _shown(text: str, at: int, width: int = 40) -> str:
    return repr(text[max(0, at - width):at + width])


def check_raw_controls(text: str) -> list[str]:
    """The terminal class: no raw ESC, BEL, CR, C1... (they clear screens, retitle windows,
    forge links or overwrite lines)."""
    found = list(_RAW_CONTROLS.finditer(text))
    if not found:
        return []
    kinds = sorted({f"U+{ord(m.group()):04X}" for m in found})
    return [f"{len(found)} raw control character(s) {', '.join(kinds)}, first at {_shown(text, found[0].start())}"]


def check_canaries(text: str, cls: str) -> list[str]:
    """The envvar class: no value of the environment in the output; paramfile: nothing of the
    file a file:// value names (the AWS CLI v1 reads such a parameter's file)."""
    canaries = (FILE_CANARY,) if cls == "paramfile" else ENV_CANARIES
    return [f"canary {canary!r} at {_shown(text, text.find(canary))}" for canary in canaries if canary in text]


def check_no_live_placeholder(text: str) -> list[str]:
    """The placeholder class: data shaped like the plan's `<the ARN of x: COMMAND>` never
    becomes a command substitution."""
    live = re.findall(rf"(?:\$\(|`)(?:aws --version; )?touch {MARKER_PREFIX}placeholder_\w+", text)
    return sorted({f"the placeholder look-alike became {found!r}..." for found in live})


def check_csv(text: str, cls: str) -> list[str]:
    """The formula classes: no cell holding the payload starts with = + - @ (or tab/CR)."""
    problems = []
    for number, row in enumerate(csv.reader(io.StringIO(text)), start=1):
        for cell in row:
            if f"HX{cls}" in cell and cell.startswith(FORMULA_START):
                problems.append(f"row {number}: a cell starts with {cell[0]!r}: {cell[:60]!r}")
    return problems


def render_markdown(text: str) -> str:
    """HTML as a permissive renderer makes it: raw HTML on, every link scheme accepted, GFM tables."""
    from markdown_it import MarkdownIt

    md = MarkdownIt("commonmark", {"html": True}).enable("table")
    md.validateLink = lambda url: True  # some renderers do not filter javascript: links
    return md.render(text)


def check_markdown(text: str, cls: str) -> list[str]:
    """html/markdown classes: the rendered page holds no element the data made; newline and
    heredoc classes: no data line escapes its table row."""
    html = render_markdown(text)
    problems = []
    # Raw in the Markdown text (renderers differ: what one leaves as text another renders), and
    # in what markdown-it renders of it.
    raw_source = {"html": ("<script>alert(1)", "<img src=x onerror"),
                  "markdown": ("[x](javascript:alert(1))", "![x](http://evil/x.png)")}.get(cls, ())
    for raw in raw_source:
        if raw in text:
            problems.append(f"the Markdown holds {raw!r} raw at {_shown(text, text.find(raw))}")
    rendered = {"html": ("<script>alert(1)", "<img src=x onerror", "<img src=\"x\" onerror"),
                "markdown": ('<a href="javascript:', '<img src="http://evil')}.get(cls, ())
    for element in rendered:
        if element in html:
            problems.append(f"rendered HTML holds {element!r} at {_shown(html, html.find(element))}")
    if cls in ("newline", "heredoc"):
        # A cell's text stays on its row's line: the payload's later lines (its marker) on a line
        # without its start ("HX<class>") broke out of the row -- into a row of their own, too,
        # when the table writer splits a multi-line cell.
        for number, line in enumerate(text.splitlines(), start=1):
            if f"{MARKER_PREFIX}{cls}_" in line and f"HX{cls}" not in line:
                problems.append(f"line {number} is data out of its row: {line[:80]!r}")
                break
    return problems


def check_html_report(text: str, cls: str) -> list[str]:
    problems = []
    if cls == "html":
        for raw in ("<script>alert(1)", "<img src=x onerror"):
            if raw in text:
                problems.append(f"raw {raw!r} at {_shown(text, text.find(raw))}")
    return problems


def exact_values(document: Any) -> set[str]:
    """Every string in a JSON document, nested JSON text included."""
    found: set[str] = set()

    def walk(value: Any) -> None:
        if isinstance(value, str):
            found.add(value)
            if value[:1] in "[{":
                try:
                    walk(json.loads(value))
                except ValueError:
                    pass
        elif isinstance(value, dict):
            for key, item in value.items():
                walk(key)
                walk(item)
        elif isinstance(value, list):
            for item in value:
                walk(item)

    walk(document)
    return found


def marker_files(roots: Iterable[Path]) -> list[Path]:
    """Every PWNED_* file under ``roots``."""
    found = set()
    for root in roots:
        if root.is_dir():
            found.update(p for p in root.rglob(f"{MARKER_PREFIX}*"))
    return sorted(found)
