"""Findings as audit formats: AWS Security Finding Format (ASFF) and OCSF.

* :func:`to_asff` gives one dict per finding that AWS Security Hub's ``BatchImportFindings``
  accepts as is, through the account's own ``default`` product
  (``arn:<partition>:securityhub:<region>:<account>:product/<account>/default``). Security Hub
  only takes such findings from the account they belong to: import each account's findings
  with that account's credentials, in the finding's region, at most 100 per call.
* :func:`to_ocsf` gives one OCSF Compliance Finding event (class 2003) per finding, built
  with py-ocsf-models and dumped to plain JSON-ready dicts.

A finding an accepted exception covers (``muted``) is ASFF ``Workflow.Status`` SUPPRESSED with
the exception in ``Note``, and OCSF status Suppressed (status_id 3) with it in
``status_detail``; its compliance status stays what the control found. The framework
requirements of the finding's control are ASFF ``Compliance.RelatedRequirements`` and OCSF
``compliance.requirements`` / ``compliance.standards``.

Both give a finding the same id, stable across runs: it depends only on the control, the
account, the region and the resource, so a re-import updates the earlier finding instead of
adding a duplicate.
"""

from __future__ import annotations

import base64
import functools
import hashlib
import re
from datetime import datetime, timezone
from types import SimpleNamespace
from typing import Any, Iterable, Optional

from . import __version__
from .controls import Finding
from .frameworks import asff_related_requirements, standards_of

PRODUCT_NAME = "bedrock-sql"
ASFF_SCHEMA_VERSION = "2018-10-08"
FINDING_TYPES = ("Software and Configuration Checks/AWS Security Best Practices",)

# --- mappings ------------------------------------------------------------------------

#: finding status -> ASFF Compliance.Status
ASFF_COMPLIANCE = {
    "ok": "PASSED",
    "alarm": "FAILED",
    "info": "WARNING",  # "some information is missing": e.g. a key in another account
    "skip": "NOT_AVAILABLE",  # not applicable
    "error": "NOT_AVAILABLE",  # "could not be performed due to ... an API error"
}
#: control severity -> ASFF Severity.Label
ASFF_SEVERITY = {
    "critical": "CRITICAL",
    "high": "HIGH",
    "medium": "MEDIUM",
    "low": "LOW",
    "info": "INFORMATIONAL",
}
#: control severity -> OCSF severity_id and its caption (py_ocsf_models SeverityID)
OCSF_SEVERITY = {
    "critical": (5, "Critical"),
    "high": (4, "High"),
    "medium": (3, "Medium"),
    "low": (2, "Low"),
    "info": (1, "Informational"),
}
#: finding status -> OCSF compliance status_id and its caption
#: (py_ocsf_models.objects.compliance_status.StatusID)
OCSF_COMPLIANCE = {
    "ok": (1, "Pass"),
    "alarm": (3, "Fail"),
    "info": (2, "Warning"),  # "did not yield a result due to missing information"
    # Other: "not mapped, see the status attribute" - which says Skip or Error.
    "skip": (99, "Skip"),
    "error": (99, "Error"),
}

#: (ARN service, resource type) -> (ASFF Resources[].Type, readable type used in OCSF and
#: in ASFF Details.Other). ASFF has no Bedrock resource types: those are "Other".
RESOURCE_TYPES = {
    ("bedrock", "custom-model"): ("Other", "AWS::Bedrock::CustomModel"),
    ("bedrock", "model-customization-job"): ("Other", "AWS::Bedrock::ModelCustomizationJob"),
    ("bedrock", "imported-model"): ("Other", "AWS::Bedrock::ImportedModel"),
    ("bedrock", "provisioned-model"): ("Other", "AWS::Bedrock::ProvisionedModelThroughput"),
    ("kms", "key"): ("AwsKmsKey", "AWS::KMS::Key"),
    ("kms", "alias"): ("Other", "AWS::KMS::Alias"),
    ("iam", "role"): ("AwsIamRole", "AWS::IAM::Role"),
    ("s3", ""): ("AwsS3Bucket", "AWS::S3::Bucket"),
}
ACCOUNT_RESOURCE_TYPE = ("AwsAccount", "AWS::Account")

# ASFF limits (Security Hub API reference; botocore only checks shapes, not these).
_TITLE_MAX = 256
_DESCRIPTION_MAX = 1024
_RECOMMENDATION_MAX = 512
_NOTE_MAX = 512
_PRODUCT_FIELD_KEY_MAX = 128
_PRODUCT_FIELD_VALUE_MAX = 2048
# Security Hub allows 50 ProductFields and adds a few "aws/securityhub/..." keys itself.
_PRODUCT_FIELDS_MAX = 45
_ASFF_PARTITIONS = ("aws", "aws-cn", "aws-us-gov")

_ARN = re.compile(r"^arn:(?P<partition>[^:]+):(?P<service>[^:]*):(?P<region>[^:]*):(?P<account>[^:]*):(?P<resource>.+)$")
_ACCOUNT_REGION = re.compile(r"^\d{12}(/[a-z0-9-]+)?$")


# --- shared helpers --------------------------------------------------------------------


def finding_uid(finding: Finding) -> str:
    """The finding's id, stable across runs: control + account + region + resource."""
    key = f"{finding.account_id}|{finding.region}|{finding.resource}"
    return f"{PRODUCT_NAME}/{finding.control.id}/{hashlib.sha256(key.encode('utf-8')).hexdigest()[:32]}"


def partition_for_region(region: str | None) -> str:
    region = region or ""
    if region.startswith("cn-"):
        return "aws-cn"
    if region.startswith("us-gov-"):
        return "aws-us-gov"
    return "aws"


def _utc(moment: datetime) -> datetime:
    """Naive datetimes are taken as UTC."""
    if moment.tzinfo is None:
        return moment.replace(tzinfo=timezone.utc)
    return moment.astimezone(timezone.utc)


def _iso(moment: datetime) -> str:
    moment = _utc(moment)
    return moment.strftime("%Y-%m-%dT%H:%M:%S.") + f"{moment.microsecond // 1000:03d}Z"


def _epoch_ms(moment: datetime) -> int:
    return int(_utc(moment).timestamp() * 1000)


def _clip(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "\u2026"


def _blank(value: Any) -> bool:
    return value is None or (isinstance(value, str) and not value.strip())


def _plain(value: Any) -> Any:
    """A dimension value as JSON: bytes (SQLite BLOBs) become base64 text."""
    if isinstance(value, (bytes, bytearray, memoryview)):
        return base64.b64encode(bytes(value)).decode("ascii")
    return value


class _Resource:
    """What an ARN (or account/region string) says about the resource it names."""

    def __init__(self, finding: Finding):
        self.uid = str(finding.resource) if not _blank(finding.resource) else f"{finding.account_id}/{finding.region}"
        self.region = finding.region
        self.partition = partition_for_region(finding.region)
        self.name: str | None = next(
            (finding.dimensions[k] for k in ("model_name", "job_name", "name")
             if isinstance(finding.dimensions.get(k), str) and finding.dimensions[k].strip()),
            None,
        )
        self.asff_type, self.type = "Other", None
        match = _ARN.match(self.uid)
        if match:
            self.partition = match["partition"]
            self.region = match["region"] or finding.region
            service, resource = match["service"], match["resource"]
            if service == "s3":  # arn:aws:s3:::bucket[/key]
                kind, name = "", resource
            else:
                kind, name = _split_resource(resource)
            self.name = self.name or name or None
            self.asff_type, self.type = RESOURCE_TYPES.get(
                (service, kind), ("Other", f"AWS::{service}::{kind}" if kind else f"AWS::{service}")
            )
        elif _ACCOUNT_REGION.match(self.uid):
            self.asff_type, self.type = ACCOUNT_RESOURCE_TYPE


def _split_resource(resource: str) -> tuple[str, str]:
    """ "custom-model/a:b/c" -> ("custom-model", "a:b/c"); "thing" -> ("thing", "")."""
    match = re.match(r"^([^/:]*)[/:](.*)$", resource)
    return (match[1], match[2]) if match else (resource, "")


def _check_identity(finding: Finding) -> None:
    if _blank(finding.account_id) or _blank(finding.region):
        raise ValueError(
            f"finding of control {finding.control.id} for {finding.resource!r} has no "
            "account_id or region; it cannot be expressed as a cloud finding"
        )


# --- ASFF ------------------------------------------------------------------------------


def to_asff(
    findings: Iterable[Finding],
    *,
    observed_at: datetime | None = None,
    first_observed_at: datetime | None = None,
) -> list[dict]:
    """One AWS Security Finding Format dict per finding, ready for ``BatchImportFindings``.

    See :func:`asff_finding` (one finding); this is the list of them.
    """
    return [asff_finding(f, observed_at=observed_at, first_observed_at=first_observed_at) for f in findings]


def asff_finding(
    finding: Finding,
    *,
    observed_at: datetime | None = None,
    first_observed_at: datetime | None = None,
) -> dict:
    """The finding as one ASFF dict.

    Dated by when the estate was observed, never by when the controls ran: UpdatedAt and
    LastObservedAt are the finding's ``collected_at`` (``observed_at`` for a finding that
    carries none), so the same snapshot always gives the same findings and a newer
    snapshot a later UpdatedAt. CreatedAt and FirstObservedAt are
    ``first_observed_at`` when known (an earlier observation), else the same time. Naive
    datetimes are taken as UTC. A finding without account_id or region, or without any
    observation time, raises :class:`ValueError`.
    """
    last_seen, first_seen = _observation(finding, observed_at, first_observed_at)
    return _asff_one(finding, _iso(last_seen), _iso(first_seen))


def _observation(
    finding: Finding, observed_at: datetime | None, first_observed_at: datetime | None
) -> tuple[datetime, datetime]:
    """(last seen, first seen) of a finding, in UTC."""
    if finding.collected_at:
        last_seen = _utc(datetime.fromisoformat(finding.collected_at))
    elif observed_at is not None:
        last_seen = _utc(observed_at)
    else:
        raise ValueError(
            f"finding of control {finding.control.id} for {finding.resource!r} has no collected_at "
            "and no observed_at was given: evidence must say when it was observed"
        )
    first_seen = _utc(first_observed_at) if first_observed_at is not None else last_seen
    if first_seen > last_seen:
        raise ValueError("first_observed_at is later than the observation")
    return last_seen, first_seen


def _asff_one(finding: Finding, now: str, first: str) -> dict:
    _check_identity(finding)
    control = finding.control
    account, region = str(finding.account_id), str(finding.region)
    partition = partition_for_region(region)
    compliance = ASFF_COMPLIANCE[finding.status]
    severity = ASFF_SEVERITY[control.severity]
    resource = _Resource(finding)

    asff_resource: dict[str, Any] = {
        "Type": resource.asff_type,
        "Id": resource.uid,
        "Partition": resource.partition if resource.partition in _ASFF_PARTITIONS else partition,
        "Region": resource.region or region,
    }
    if resource.asff_type in ("Other", "AwsAccount") and resource.type:
        asff_resource["Details"] = {"Other": {"Type": resource.type}}

    description = finding.reason if not _blank(finding.reason) else control.description or control.title
    result: dict[str, Any] = {
        "SchemaVersion": ASFF_SCHEMA_VERSION,
        "Id": finding_uid(finding),
        "ProductArn": f"arn:{partition}:securityhub:{region}:{account}:product/{account}/default",
        "ProductName": PRODUCT_NAME,
        "CompanyName": PRODUCT_NAME,
        "GeneratorId": f"{PRODUCT_NAME}/{control.id}",
        "AwsAccountId": account,
        "Region": region,
        "Types": list(FINDING_TYPES),
        "CreatedAt": first,
        "UpdatedAt": now,
        "FirstObservedAt": first,
        "LastObservedAt": now,
        "Severity": {"Label": severity, "Original": control.severity},
        "FindingProviderFields": {
            "Severity": {"Label": severity, "Original": control.severity},
            "Types": list(FINDING_TYPES),
        },
        "Title": _clip(control.title, _TITLE_MAX),
        "Description": _clip(description, _DESCRIPTION_MAX),
        "Resources": [asff_resource],
        "Compliance": _asff_compliance(compliance, finding),
        # Security Hub itself resolves PASSED findings and reopens them (NEW) when they
        # stop passing; after creation only BatchUpdateFindings changes the workflow.
        "Workflow": {"Status": _asff_workflow(compliance, finding)},
        "RecordState": "ACTIVE",
        "ProductFields": _product_fields(finding),
    }
    if finding.muted:
        result["Note"] = {
            "Text": _clip(f"Accepted exception: {finding.mute_reason or 'no reason given'}", _NOTE_MAX),
            "UpdatedBy": PRODUCT_NAME,
            "UpdatedAt": now,
        }
    if not _blank(control.remediation):
        recommendation: dict[str, str] = {"Text": _clip(control.remediation, _RECOMMENDATION_MAX)}
        if control.references:
            recommendation["Url"] = control.references[0]
        result["Remediation"] = {"Recommendation": recommendation}
    elif control.references:
        result["SourceUrl"] = control.references[0]
    return result


def _asff_compliance(compliance: str, finding: Finding) -> dict[str, Any]:
    result: dict[str, Any] = {"Status": compliance}
    related = asff_related_requirements(finding.requirements)
    if related:
        result["RelatedRequirements"] = related
    return result


def _asff_workflow(compliance: str, finding: Finding) -> str:
    if finding.muted:
        return "SUPPRESSED"  # an accepted risk: the Note says who accepted it, why, until when
    return "RESOLVED" if compliance == "PASSED" else "NEW"


def _product_fields(finding: Finding) -> dict[str, str]:
    fields = {
        f"{PRODUCT_NAME}/ControlId": finding.control.id,
        f"{PRODUCT_NAME}/Status": finding.status,
        f"{PRODUCT_NAME}/ToolVersion": __version__,
    }
    if finding.muted:
        fields[f"{PRODUCT_NAME}/Muted"] = "1"
    if finding.run_id:
        fields[f"{PRODUCT_NAME}/RunId"] = str(finding.run_id)
    for name, value in finding.dimensions.items():
        if len(fields) >= _PRODUCT_FIELDS_MAX:
            break
        if isinstance(value, bool):
            value = str(int(value))
        elif isinstance(value, (int, float)):
            value = str(value)
        elif not isinstance(value, str):
            continue  # None, BLOBs: not meaningful as text
        key = _clip(f"{PRODUCT_NAME}/{name}", _PRODUCT_FIELD_KEY_MAX)
        if _blank(value) or _blank(name) or key in fields:
            continue
        fields[key] = _clip(value, _PRODUCT_FIELD_VALUE_MAX)
    return fields


# --- OCSF ------------------------------------------------------------------------------


@functools.lru_cache(maxsize=1)
def _ocsf() -> SimpleNamespace:
    """py-ocsf-models (pydantic) is imported on first use: ASFF and the CLI need not pay."""
    from py_ocsf_models import OCSF_VERSION
    from py_ocsf_models.events.findings.activity_id import ActivityID
    from py_ocsf_models.events.findings.compliance_finding import ComplianceFinding
    from py_ocsf_models.events.findings.compliance_finding_type_id import ComplianceFindingTypeID
    from py_ocsf_models.events.findings.status_id import StatusID
    from py_ocsf_models.objects.account import Account, TypeID as AccountTypeID
    from py_ocsf_models.objects.analytic import Analytic
    from py_ocsf_models.objects.check import Check
    from py_ocsf_models.objects.cloud import Cloud
    from py_ocsf_models.objects.compliance import Compliance
    from py_ocsf_models.objects.finding_info import FindingInformation
    from py_ocsf_models.objects.metadata import Metadata
    from py_ocsf_models.objects.product import Product
    from py_ocsf_models.objects.remediation import Remediation
    from py_ocsf_models.objects.resource_details import ResourceDetails

    class OcsfCompliance(Compliance):
        """OCSF 1.5 ``compliance`` with its status caption/code/detail (absent from the model)."""

        status: Optional[str] = None
        status_code: Optional[str] = None
        status_detail: Optional[str] = None

    class CloudComplianceFinding(ComplianceFinding):
        """Compliance Finding with the OCSF ``cloud`` profile (absent from the model)."""

        # Re-declared so pydantic serializes the subclass's extra fields too.
        compliance: OcsfCompliance
        cloud: Cloud

    return SimpleNamespace(**locals())


def to_ocsf(
    findings: Iterable[Finding],
    *,
    observed_at: datetime | None = None,
    first_observed_at: datetime | None = None,
) -> list[dict]:
    """One OCSF Compliance Finding event per finding: see :func:`ocsf_event`."""
    return [ocsf_event(f, observed_at=observed_at, first_observed_at=first_observed_at) for f in findings]


def ocsf_event(
    finding: Finding,
    *,
    observed_at: datetime | None = None,
    first_observed_at: datetime | None = None,
) -> dict:
    """The finding as one OCSF Compliance Finding (class_uid 2003) event, a JSON-ready dict.

    Times are epoch milliseconds (with ``*_dt`` ISO twins, the datetime profile), dated as
    in :func:`asff_finding`: ``time``, ``finding_info.last_seen_time`` and
    ``modified_time`` are when the estate was observed; ``created_time`` and
    ``first_seen_time`` the first observation. The ``cloud`` profile carries provider,
    account and region; ``unmapped`` the run id and every dimension.
    """
    last_seen, first_seen = _observation(finding, observed_at, first_observed_at)
    return _ocsf_one(finding, last_seen, first_seen)


def _ocsf_one(finding: Finding, now: datetime, first: datetime) -> dict:
    _check_identity(finding)
    m = _ocsf()
    control = finding.control
    compliance_id, compliance_caption = OCSF_COMPLIANCE[finding.status]
    severity_id, severity_caption = OCSF_SEVERITY[control.severity]
    resource = _Resource(finding)
    account, region = str(finding.account_id), str(finding.region)
    reason = finding.reason if not _blank(finding.reason) else control.description or control.title

    event = m.CloudComplianceFinding(
        activity_id=m.ActivityID.Create,
        activity_name="Create",
        category_name="Findings",
        class_name="Compliance Finding",
        type_uid=m.ComplianceFindingTypeID.Create,
        type_name="Compliance Finding: Create",
        severity_id=severity_id,
        severity=severity_caption,
        status_id=m.StatusID.Suppressed if finding.muted else m.StatusID.New,
        status="Suppressed" if finding.muted else "New",
        status_code=finding.status,
        status_detail=f"Accepted exception: {finding.mute_reason}" if finding.muted else reason,
        message=reason,
        time=_epoch_ms(now),
        time_dt=now,
        metadata=m.Metadata(
            product=m.Product(name=PRODUCT_NAME, vendor_name=PRODUCT_NAME, version=__version__),
            version=m.OCSF_VERSION,
            event_code=control.id,
            profiles=["cloud", "datetime"],
        ),
        finding_info=m.FindingInformation(
            uid=finding_uid(finding),
            title=control.title,
            desc=reason,
            types=list(FINDING_TYPES),
            created_time=_epoch_ms(first),
            created_time_dt=first,
            first_seen_time=_epoch_ms(first),
            first_seen_time_dt=first,
            last_seen_time=_epoch_ms(now),
            last_seen_time_dt=now,
            modified_time=_epoch_ms(now),
            modified_time_dt=now,
            analytic=m.Analytic(
                uid=control.id, name=control.title, desc=control.description, type="Rule", type_id=1
            ),
        ),
        compliance=m.OcsfCompliance(
            control=control.id,
            desc=control.description,
            standards=[PRODUCT_NAME, *standards_of(finding.requirements)],
            requirements=[r.asff for r in finding.requirements] or None,
            status_id=compliance_id,
            status=compliance_caption,
            status_code=finding.status,
            status_detail=reason,
            checks=[
                m.Check(
                    uid=control.id,
                    name=control.title,
                    desc=control.description,
                    severity=control.severity,
                    severity_id=severity_id,
                    status=compliance_caption,
                    status_id=compliance_id,
                    standards=[PRODUCT_NAME],
                )
            ],
        ),
        resources=[
            m.ResourceDetails(
                uid=resource.uid,
                name=resource.name,
                type=resource.type or "Other",
                region=resource.region or region,
                cloud_partition=resource.partition,
            )
        ],
        cloud=m.Cloud(
            provider="AWS",
            region=region,
            account=m.Account(name=account, uid=account, type="AWS Account", type_id=m.AccountTypeID.AWS_Account),
        ),
        remediation=(
            m.Remediation(desc=control.remediation, references=list(control.references) or None)
            if not _blank(control.remediation)
            else None
        ),
        unmapped={
            "control_id": control.id,
            "control_source": control.source,
            "collected_at": _iso(now),
            **({"run_id": finding.run_id} if finding.run_id else {}),
            "dimensions": {name: _plain(value) for name, value in finding.dimensions.items()},
        },
    )
    return event.model_dump(exclude_none=True, mode="json")
