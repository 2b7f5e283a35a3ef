"""Tests for bedrock_sql.findings: ASFF (as Security Hub takes it) and OCSF events."""

from __future__ import annotations

import functools
import json
import re
from datetime import datetime, timedelta, timezone

import botocore.session
import pytest

from bedrock_sql import __version__
from bedrock_sql.controls import SEVERITIES, STATUSES, Control, Finding
from bedrock_sql.findings import finding_uid, partition_for_region, to_asff, to_ocsf

OBSERVED_AT = datetime(2026, 11, 28, 12, 0, 0, tzinfo=timezone.utc)
ACCOUNT = "123456789012"
OTHER_ACCOUNT = "210987654321"
REGION = "us-east-1"
MODEL_ARN = f"arn:aws:bedrock:{REGION}:{ACCOUNT}:custom-model/amazon.titan-text-express-v1:0:8k/abc123def456"
JOB_ARN = f"arn:aws:bedrock:{REGION}:{ACCOUNT}:model-customization-job/amazon.titan-text-express-v1:0:8k/job1"
KEY_ARN = f"arn:aws:kms:{REGION}:{ACCOUNT}:key/1234abcd-12ab-34cd-56ef-1234567890ab"


def make_control(severity="high", control_id="bedrock_custom_model_encrypted_with_cmk", **overrides):
    fields = dict(
        id=control_id,
        title="Bedrock custom models are encrypted with a KMS customer-managed key",
        severity=severity,
        description="A custom model encrypted with the Bedrock-owned key is protected by a key you cannot audit.",
        remediation="Re-run the model customization job with customModelKmsKeyId set to a CMK.",
        references=(
            "https://docs.aws.amazon.com/bedrock/latest/userguide/encryption-custom-job.html",
            "https://docs.aws.amazon.com/kms/latest/developerguide/key-policies.html",
        ),
        sql="SELECT 1",
        source="tests/made-by-hand.sql",
    )
    fields.update(overrides)
    return Control(**fields)


def make_finding(status="alarm", severity="high", resource=MODEL_ARN, account=ACCOUNT, region=REGION, **overrides):
    fields = dict(
        control=make_control(severity),
        resource=resource,
        status=status,
        reason=f"custom model m1 is {status}.",
        account_id=account,
        region=region,
        dimensions={"model_name": "m1", "kms_key_arn": None, "key_manager": "CUSTOMER"},
    )
    fields.update(overrides)
    return Finding(**fields)


def every_status_and_severity():
    return [
        make_finding(status=status, severity=severity, resource=f"{MODEL_ARN}-{status}-{severity}")
        for status in STATUSES
        for severity in SEVERITIES
    ]


# --- a stricter Security Hub: the service model's enums, patterns and documented limits ---


@functools.lru_cache(maxsize=1)
def _service_model():
    return botocore.session.get_session().get_service_model("securityhub")


def _validate(shape, value, path, problems):
    """What botocore does not check client side: enums, patterns, lengths, unknown keys."""
    kind = shape.type_name
    if kind == "structure":
        if not isinstance(value, dict):
            problems.append(f"{path}: not an object")
            return
        for name in shape.required_members:
            if name not in value:
                problems.append(f"{path}.{name}: required")
        for name, item in value.items():
            if name not in shape.members:
                problems.append(f"{path}.{name}: unknown member")
            else:
                _validate(shape.members[name], item, f"{path}.{name}", problems)
    elif kind == "list":
        if not isinstance(value, list):
            problems.append(f"{path}: not a list")
            return
        meta = shape.metadata
        if "min" in meta and len(value) < meta["min"] or "max" in meta and len(value) > meta["max"]:
            problems.append(f"{path}: {len(value)} items")
        for i, item in enumerate(value):
            _validate(shape.member, item, f"{path}[{i}]", problems)
    elif kind == "map":
        if not isinstance(value, dict):
            problems.append(f"{path}: not a map")
            return
        for key, item in value.items():
            _validate(shape.key, key, f"{path} key {key!r}", problems)
            _validate(shape.value, item, f"{path}[{key!r}]", problems)
    elif kind == "string":
        if not isinstance(value, str):
            problems.append(f"{path}: not a string: {value!r}")
            return
        if shape.enum and value not in shape.enum:
            problems.append(f"{path}: {value!r} not one of {shape.enum}")
        pattern = shape.metadata.get("pattern")
        if pattern and not re.search(pattern, value):
            problems.append(f"{path}: {value!r} does not match {pattern}")
        if "min" in shape.metadata and len(value) < shape.metadata["min"]:
            problems.append(f"{path}: shorter than {shape.metadata['min']}")
    elif kind in ("integer", "long"):
        if not isinstance(value, int) or isinstance(value, bool):
            problems.append(f"{path}: not an integer")
    elif kind in ("double", "float"):
        if not isinstance(value, (int, float)) or isinstance(value, bool):
            problems.append(f"{path}: not a number")
    elif kind == "boolean":
        if not isinstance(value, bool):
            problems.append(f"{path}: not a boolean")


# Limits that the API reference documents but the JSON model does not carry.
_DOC_LIMITS = {"Id": 512, "GeneratorId": 512, "Title": 256, "Description": 1024, "Region": 16}
_ISO_Z = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d{1,9})?Z$")


def asff_problems(finding: dict) -> list[str]:
    problems: list[str] = []
    _validate(_service_model().shape_for("AwsSecurityFinding"), finding, "Finding", problems)
    for name, limit in _DOC_LIMITS.items():
        if name in finding and len(finding[name]) > limit:
            problems.append(f"{name}: longer than {limit}")
    if not re.fullmatch(r"\d{12}", finding.get("AwsAccountId", "")):
        problems.append("AwsAccountId: not 12 digits")
    for name in ("CreatedAt", "UpdatedAt", "FirstObservedAt", "LastObservedAt"):
        if name in finding and not _ISO_Z.match(finding[name]):
            problems.append(f"{name}: {finding[name]!r} is not ISO-8601 UTC with Z")
    text = finding.get("Remediation", {}).get("Recommendation", {}).get("Text", "")
    if len(text) > 512:
        problems.append("Remediation.Recommendation.Text: longer than 512")
    fields = finding.get("ProductFields", {})
    if len(fields) > 50:
        problems.append(f"ProductFields: {len(fields)} entries")
    for key, value in fields.items():
        if len(key) > 128 or len(value) > 2048:
            problems.append(f"ProductFields[{key[:40]!r}]: too long")
    for resource in finding.get("Resources", []):
        if len(resource.get("Type", "")) > 256 or len(resource.get("Region", "")) > 16:
            problems.append("Resources[]: Type or Region too long")
    for t in finding.get("Types", []):
        if not re.match(
            r"^(Software and Configuration Checks|TTPs|Effects|Unusual Behaviors|Sensitive Data Identifications)(/[^/]+){0,2}$",
            t,
        ):
            problems.append(f"Types: {t!r} is not namespace/category/classifier")
    return problems


# --- ASFF ------------------------------------------------------------------------------

EXPECTED_COMPLIANCE = {"ok": "PASSED", "alarm": "FAILED", "info": "WARNING", "skip": "NOT_AVAILABLE", "error": "NOT_AVAILABLE"}
EXPECTED_LABEL = {"critical": "CRITICAL", "high": "HIGH", "medium": "MEDIUM", "low": "LOW", "info": "INFORMATIONAL"}


def test_asff_required_fields_for_every_status_and_severity():
    findings = every_status_and_severity()
    asff = to_asff(findings, observed_at=OBSERVED_AT)
    assert len(asff) == len(findings)
    for source, item in zip(findings, asff):
        assert asff_problems(item) == [], item
        assert item["SchemaVersion"] == "2018-10-08"
        assert item["Id"] == finding_uid(source)
        assert item["Id"].startswith(f"bedrock-sql/{source.control.id}/")
        assert item["ProductArn"] == f"arn:aws:securityhub:{REGION}:{ACCOUNT}:product/{ACCOUNT}/default"
        assert item["GeneratorId"] == f"bedrock-sql/{source.control.id}"
        assert item["AwsAccountId"] == ACCOUNT
        assert item["Region"] == REGION
        assert item["Types"] == ["Software and Configuration Checks/AWS Security Best Practices"]
        for name in ("CreatedAt", "UpdatedAt", "FirstObservedAt", "LastObservedAt"):
            assert item[name] == "2026-11-28T12:00:00.000Z"
        assert item["Severity"]["Label"] == EXPECTED_LABEL[source.control.severity]
        assert item["FindingProviderFields"]["Severity"]["Label"] == item["Severity"]["Label"]
        assert item["Title"] == source.control.title
        assert item["Description"] == source.reason
        assert item["Compliance"] == {"Status": EXPECTED_COMPLIANCE[source.status]}
        assert item["Workflow"]["Status"] == ("RESOLVED" if source.status == "ok" else "NEW")
        assert item["RecordState"] == "ACTIVE"
        assert item["Remediation"]["Recommendation"] == {
            "Text": source.control.remediation,
            "Url": source.control.references[0],
        }
        assert item["ProductFields"]["bedrock-sql/ControlId"] == source.control.id
        assert item["ProductFields"]["bedrock-sql/Status"] == source.status
        assert item["ProductFields"]["bedrock-sql/ToolVersion"] == __version__
        assert item["ProductFields"]["bedrock-sql/model_name"] == "m1"
        assert "bedrock-sql/kms_key_arn" not in item["ProductFields"]  # None is left out
        (resource,) = item["Resources"]
        assert resource["Id"] == source.resource
        assert resource["Type"] == "Other"
        assert resource["Partition"] == "aws"
        assert resource["Region"] == REGION
        assert resource["Details"]["Other"]["Type"] == "AWS::Bedrock::CustomModel"


def test_asff_ids_are_stable_and_distinct():
    first = to_asff(every_status_and_severity(), observed_at=OBSERVED_AT)
    again = to_asff(every_status_and_severity(), observed_at=OBSERVED_AT + timedelta(days=3))
    assert [f["Id"] for f in first] == [f["Id"] for f in again]
    assert len({f["Id"] for f in first}) == len(first)
    base = make_finding()
    variants = [
        make_finding(account=OTHER_ACCOUNT),
        make_finding(region="eu-west-1"),
        make_finding(resource=JOB_ARN),
        Finding(make_control(control_id="other_control"), base.resource, base.status, base.reason, ACCOUNT, REGION),
    ]
    ids = {finding_uid(f) for f in [base, *variants]}
    assert len(ids) == 5
    # status, reason and dimensions do not change the id: the same finding, updated
    assert finding_uid(make_finding(status="ok", reason="fixed.", dimensions={})) == finding_uid(base)


def test_asff_timestamps():
    first_seen = datetime(2026, 11, 1, 8, 30, 15, 123456)  # naive: UTC
    (item,) = to_asff([make_finding()], observed_at=OBSERVED_AT, first_observed_at=first_seen)
    assert item["CreatedAt"] == item["FirstObservedAt"] == "2026-11-01T08:30:15.123Z"
    assert item["UpdatedAt"] == item["LastObservedAt"] == "2026-11-28T12:00:00.000Z"
    plus_two = timezone(timedelta(hours=2))
    (item,) = to_asff([make_finding()], observed_at=datetime(2026, 11, 28, 14, 0, tzinfo=plus_two))
    assert item["UpdatedAt"] == "2026-11-28T12:00:00.000Z"
    with pytest.raises(ValueError):
        to_asff([make_finding()], observed_at=OBSERVED_AT, first_observed_at=OBSERVED_AT + timedelta(seconds=1))


def test_a_finding_is_dated_by_its_collection_and_carries_its_run():
    dated = make_finding(collected_at="2026-10-01T08:30:00Z", run_id="run-1")
    (item,) = to_asff([dated], observed_at=OBSERVED_AT)  # the finding's own time wins
    for name in ("CreatedAt", "UpdatedAt", "FirstObservedAt", "LastObservedAt"):
        assert item[name] == "2026-10-01T08:30:00.000Z"
    assert item["ProductFields"]["bedrock-sql/RunId"] == "run-1"
    assert asff_problems(item) == []
    (event,) = to_ocsf([dated])
    epoch_ms = int(datetime(2026, 10, 1, 8, 30, tzinfo=timezone.utc).timestamp() * 1000)
    info = event["finding_info"]
    assert event["time"] == info["last_seen_time"] == info["modified_time"] == info["created_time"] == epoch_ms
    assert event["unmapped"]["run_id"] == "run-1"
    assert event["unmapped"]["collected_at"] == "2026-10-01T08:30:00.000Z"


def test_a_finding_with_no_observation_time_is_refused():
    with pytest.raises(ValueError, match="observed"):
        to_asff([make_finding()])
    with pytest.raises(ValueError, match="observed"):
        to_ocsf([make_finding()])


@pytest.mark.parametrize(
    "region, partition",
    [("us-east-1", "aws"), ("eu-central-1", "aws"), ("cn-north-1", "aws-cn"), ("us-gov-west-1", "aws-us-gov")],
)
def test_asff_partition_from_region(region, partition):
    assert partition_for_region(region) == partition
    resource = f"arn:{partition}:bedrock:{region}:{ACCOUNT}:custom-model/x"
    (item,) = to_asff([make_finding(region=region, resource=resource)], observed_at=OBSERVED_AT)
    assert item["ProductArn"] == f"arn:{partition}:securityhub:{region}:{ACCOUNT}:product/{ACCOUNT}/default"
    assert item["Resources"][0]["Partition"] == partition
    assert item["Region"] == region
    assert asff_problems(item) == []


def test_asff_resource_types():
    cases = {
        MODEL_ARN: ("Other", "AWS::Bedrock::CustomModel"),
        JOB_ARN: ("Other", "AWS::Bedrock::ModelCustomizationJob"),
        KEY_ARN: ("AwsKmsKey", None),
        f"arn:aws:iam::{ACCOUNT}:role/BedrockJobRole": ("AwsIamRole", None),
        f"{ACCOUNT}/{REGION}": ("AwsAccount", "AWS::Account"),  # an account/region that failed
        "something-else": ("Other", None),
    }
    findings = [make_finding(status="error", resource=r) for r in cases]
    for item, (resource, (asff_type, other_type)) in zip(to_asff(findings, observed_at=OBSERVED_AT), cases.items()):
        (res,) = item["Resources"]
        assert res["Id"] == resource
        assert res["Type"] == asff_type
        assert res.get("Details", {}).get("Other", {}).get("Type") == other_type
        assert res["Region"] == REGION
        assert asff_problems(item) == []


def test_asff_limits_are_respected():
    dimensions = {f"dimension_{i:03d}": f"value {i}" for i in range(80)}
    dimensions.update({"x" * 200: "long key", "long_value": "v" * 5000, "count": 7, "flag": True,
                       "ratio": 0.5, "blob": b"\x00\x01", "blank": "  ", "nothing": None})
    control = make_control(title="T" * 400, remediation="R" * 900)
    finding = Finding(control, MODEL_ARN, "alarm", "why " * 600, ACCOUNT, REGION, dimensions)
    (item,) = to_asff([finding], observed_at=OBSERVED_AT)
    assert asff_problems(item) == []
    assert len(item["Title"]) == 256 and len(item["Description"]) == 1024
    assert len(item["Remediation"]["Recommendation"]["Text"]) == 512
    assert len(item["ProductFields"]) <= 50
    assert all(isinstance(v, str) for v in item["ProductFields"].values())


def test_asff_without_remediation_or_reason():
    control = make_control(remediation="", references=())
    finding = Finding(control, MODEL_ARN, "skip", "", ACCOUNT, REGION)
    (item,) = to_asff([finding], observed_at=OBSERVED_AT)
    assert "Remediation" not in item
    assert item["Description"] == control.description
    assert asff_problems(item) == []
    control = make_control(remediation="Do this.", references=())
    (item,) = to_asff([Finding(control, MODEL_ARN, "alarm", "x.", ACCOUNT, REGION)], observed_at=OBSERVED_AT)
    assert item["Remediation"] == {"Recommendation": {"Text": "Do this."}}


def test_asff_rejects_a_finding_without_account_or_region():
    with pytest.raises(ValueError, match="account_id or region"):
        to_asff([make_finding(region="")], observed_at=OBSERVED_AT)
    with pytest.raises(ValueError, match="account_id or region"):
        to_asff([make_finding(account=None)], observed_at=OBSERVED_AT)


def test_asff_is_json():
    asff = to_asff(every_status_and_severity(), observed_at=OBSERVED_AT)
    assert json.loads(json.dumps(asff)) == asff


def _import_all(client, asff):
    for start in range(0, len(asff), 100):
        response = client.batch_import_findings(Findings=asff[start : start + 100])
        assert response["FailedCount"] == 0, response["FailedFindings"]
        assert response["SuccessCount"] == len(asff[start : start + 100])


def _all_findings(client):
    found, kwargs = [], {}
    while True:
        page = client.get_findings(MaxResults=100, **kwargs)
        found.extend(page["Findings"])
        if not page.get("NextToken"):
            return found
        kwargs = {"NextToken": page["NextToken"]}


def test_security_hub_accepts_the_findings(aws):
    """Import into (moto's) Security Hub in batches of 100; botocore checks the shapes."""
    findings = every_status_and_severity()
    findings += [make_finding(status="alarm", resource=f"{MODEL_ARN}-{i}") for i in range(180)]
    findings += [make_finding(status="error", resource=f"{ACCOUNT}/{REGION}"), make_finding(resource=KEY_ARN)]
    asff = to_asff(findings, observed_at=OBSERVED_AT)
    assert len(asff) > 200
    client = aws.client("securityhub", region_name=REGION)
    client.enable_security_hub()
    _import_all(client, asff)

    stored = {f["Id"]: f for f in _all_findings(client)}
    assert set(stored) == {f["Id"] for f in asff}
    for item in asff:
        got = stored[item["Id"]]
        assert got["ProductArn"] == item["ProductArn"]
        assert got["Compliance"] == item["Compliance"]
        assert got["Severity"]["Label"] == item["Severity"]["Label"]
        assert got["Resources"][0]["Id"] == item["Resources"][0]["Id"]

    # A second run re-imports the same ids: Security Hub updates, it does not duplicate.
    later = to_asff(findings, observed_at=OBSERVED_AT + timedelta(days=1), first_observed_at=OBSERVED_AT)
    _import_all(client, later)
    stored = {f["Id"]: f for f in _all_findings(client)}
    assert len(stored) == len(asff)
    assert {f["UpdatedAt"] for f in stored.values()} == {"2026-11-29T12:00:00.000Z"}


@pytest.mark.parametrize("region", ["eu-west-1", "us-gov-west-1", "cn-north-1"])
def test_security_hub_accepts_findings_in_other_partitions(aws, region):
    partition = partition_for_region(region)
    findings = [
        make_finding(status=s, region=region, resource=f"arn:{partition}:bedrock:{region}:{ACCOUNT}:custom-model/m-{s}")
        for s in STATUSES
    ]
    asff = to_asff(findings, observed_at=OBSERVED_AT)
    client = aws.client("securityhub", region_name=region)
    client.enable_security_hub()
    _import_all(client, asff)
    assert {f["Id"] for f in _all_findings(client)} == {f["Id"] for f in asff}


def test_botocore_rejects_a_malformed_finding(aws):
    """The guard the import test relies on: botocore does validate the shape client side."""
    from botocore.exceptions import ParamValidationError

    (item,) = to_asff([make_finding()], observed_at=OBSERVED_AT)
    client = aws.client("securityhub", region_name=REGION)
    del item["Title"]
    with pytest.raises(ParamValidationError):
        client.batch_import_findings(Findings=[item])
    (item,) = to_asff([make_finding()], observed_at=OBSERVED_AT)
    item["Resources"][0]["Surprise"] = "x"
    with pytest.raises(ParamValidationError):
        client.batch_import_findings(Findings=[item])


def test_strict_validator_catches_what_botocore_does_not():
    (item,) = to_asff([make_finding()], observed_at=OBSERVED_AT)
    item["Compliance"]["Status"] = "OK"
    item["Severity"]["Label"] = "SEVERE"
    item["Title"] = "x" * 300
    problems = asff_problems(item)
    assert any("Compliance.Status" in p for p in problems)
    assert any("Severity.Label" in p for p in problems)
    assert any(p.startswith("Title") for p in problems)


# --- OCSF ------------------------------------------------------------------------------

EXPECTED_OCSF_COMPLIANCE = {"ok": (1, "Pass"), "alarm": (3, "Fail"), "info": (2, "Warning"), "skip": (99, "Skip"), "error": (99, "Error")}
EXPECTED_OCSF_SEVERITY = {"critical": (5, "Critical"), "high": (4, "High"), "medium": (3, "Medium"), "low": (2, "Low"), "info": (1, "Informational")}


def test_ocsf_compliance_findings_for_every_status_and_severity():
    findings = every_status_and_severity()
    events = to_ocsf(findings, observed_at=OBSERVED_AT)
    assert len(events) == len(findings)
    for source, event in zip(findings, events):
        assert event["class_uid"] == 2003
        assert event["class_name"] == "Compliance Finding"
        assert event["category_uid"] == 2
        assert event["activity_id"] == 1 and event["activity_name"] == "Create"
        assert event["type_uid"] == 200301
        assert (event["status_id"], event["status"]) == (1, "New")
        assert event["status_code"] == source.status
        assert (event["severity_id"], event["severity"]) == EXPECTED_OCSF_SEVERITY[source.control.severity]
        status_id, caption = EXPECTED_OCSF_COMPLIANCE[source.status]
        assert event["compliance"]["status_id"] == status_id
        assert event["compliance"]["status"] == caption
        assert event["compliance"]["control"] == source.control.id
        (check,) = event["compliance"]["checks"]
        assert (check["uid"], check["status_id"], check["severity_id"]) == (
            source.control.id, status_id, EXPECTED_OCSF_SEVERITY[source.control.severity][0])
        assert event["time"] == int(OBSERVED_AT.timestamp() * 1000)
        info = event["finding_info"]
        assert info["uid"] == finding_uid(source)
        assert info["title"] == source.control.title
        assert info["desc"] == source.reason
        assert info["created_time"] == event["time"]
        assert event["cloud"] == {
            "provider": "AWS",
            "region": REGION,
            "account": {"uid": ACCOUNT, "name": ACCOUNT, "type": "AWS Account", "type_id": 10},
        }
        (resource,) = event["resources"]
        assert resource["uid"] == source.resource
        assert resource["type"] == "AWS::Bedrock::CustomModel"
        assert resource["region"] == REGION and resource["cloud_partition"] == "aws"
        assert resource["name"] == "m1"
        assert event["metadata"]["product"] == {"name": "bedrock-sql", "vendor_name": "bedrock-sql", "version": __version__}
        assert re.fullmatch(r"\d+\.\d+\.\d+", event["metadata"]["version"])
        assert "cloud" in event["metadata"]["profiles"]
        assert event["remediation"] == {"desc": source.control.remediation, "references": list(source.control.references)}
        assert event["unmapped"]["control_id"] == source.control.id
        assert event["unmapped"]["dimensions"] == source.dimensions


def test_ocsf_uid_is_stable_and_matches_asff():
    findings = every_status_and_severity()
    first = to_ocsf(findings, observed_at=OBSERVED_AT)
    again = to_ocsf(findings, observed_at=OBSERVED_AT + timedelta(hours=5))
    assert [e["finding_info"]["uid"] for e in first] == [e["finding_info"]["uid"] for e in again]
    asff = to_asff(findings, observed_at=OBSERVED_AT)
    assert [e["finding_info"]["uid"] for e in first] == [a["Id"] for a in asff]


def test_ocsf_is_json_serializable():
    dims = {"blob": b"\x00\xff", "n": 3, "ratio": 0.5, "none": None, "text": "héllo"}
    findings = every_status_and_severity() + [make_finding(dimensions=dims, resource=KEY_ARN)]
    events = to_ocsf(findings, observed_at=datetime(2026, 11, 28, 12, 0))  # naive: UTC
    text = json.dumps(events)
    assert json.loads(text) == events
    assert events[-1]["unmapped"]["dimensions"]["blob"] == "AP8="
    assert events[-1]["resources"][0]["type"] == "AWS::KMS::Key"
    assert events[-1]["time"] == int(OBSERVED_AT.timestamp() * 1000)
    assert events[-1]["time_dt"] == "2026-11-28T12:00:00Z"


def test_ocsf_events_validate_against_the_library_models():
    from py_ocsf_models.events.findings.compliance_finding import ComplianceFinding

    for event in to_ocsf(every_status_and_severity(), observed_at=OBSERVED_AT):
        ComplianceFinding.model_validate(event)


def test_ocsf_without_remediation():
    control = make_control(remediation="", references=())
    (event,) = to_ocsf([Finding(control, MODEL_ARN, "ok", "fine.", ACCOUNT, REGION)], observed_at=OBSERVED_AT)
    assert "remediation" not in event
    assert event["compliance"]["status_id"] == 1


def test_empty_input():
    assert to_asff([], observed_at=OBSERVED_AT) == []
    assert to_ocsf([], observed_at=OBSERVED_AT) == []


def test_ocsf_id_tables_agree_with_the_library_enums():
    from py_ocsf_models.events.findings.severity_id import SeverityID
    from py_ocsf_models.objects.compliance_status import StatusID as ComplianceStatusID

    from bedrock_sql.findings import OCSF_COMPLIANCE, OCSF_SEVERITY

    assert set(OCSF_SEVERITY) == set(SEVERITIES) and set(OCSF_COMPLIANCE) == set(STATUSES)
    for number, caption in OCSF_SEVERITY.values():
        assert SeverityID(number).name == caption
    for status, (number, caption) in OCSF_COMPLIANCE.items():
        assert ComplianceStatusID(number).name == (caption if status not in ("skip", "error") else "Other")


def test_module_import_does_not_load_pydantic():
    import subprocess
    import sys

    code = "import sys, bedrock_sql.findings; print('py_ocsf_models' in sys.modules, 'pydantic' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.split() == ["False", "False"]


def test_asff_references_without_remediation_become_the_source_url():
    control = make_control(remediation="")
    (item,) = to_asff([Finding(control, MODEL_ARN, "alarm", "x.", ACCOUNT, REGION)], observed_at=OBSERVED_AT)
    assert "Remediation" not in item
    assert item["SourceUrl"] == control.references[0]
    assert asff_problems(item) == []
