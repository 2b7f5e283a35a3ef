"""Framework mappings: the controls' ``frameworks:`` headers, `controls`, `check --framework`,
and the requirement ids every export carries (CSV/JSON, ASFF, OCSF)."""

from __future__ import annotations

import csv
import io
import json
from pathlib import Path

import pytest

from bedrock_sql.controls import bundled_controls, parse_control
from bedrock_sql.errors import UserError
from bedrock_sql.frameworks import ASFF_MAX_RELATED_REQUIREMENTS, FRAMEWORKS, Requirement, parse_frameworks
from helpers import run_main as cli
from snapshot_builder import IMPORTED_SEED, JOB_CMK, JOB_VPC, POLICY, ROTATION, SEED, USABLE
from test_check_cli import BUNDLED, USER_CONTROL, compliant, one_error_line
from test_findings import asff_problems

KMS_CONTROLS = "https://docs.aws.amazon.com/securityhub/latest/userguide/kms-controls.html"
AGENTCORE_CONTROLS = "https://docs.aws.amazon.com/securityhub/latest/userguide/bedrockagentcore-controls.html"
SAGEMAKER_CONTROLS = "https://docs.aws.amazon.com/securityhub/latest/userguide/sagemaker-controls.html"
CMK_CONTROLS = (SEED, IMPORTED_SEED, JOB_CMK)


def labels(control_id: str) -> set[str]:
    (control,) = [c for c in bundled_controls() if c.id == control_id]
    return {r.label for r in control.frameworks}


# --- what the bundled controls declare, and where it comes from -------------------------------


def test_every_bundled_control_maps_to_known_frameworks_only() -> None:
    for control in bundled_controls():
        assert control.frameworks, control.id
        assert {r.framework for r in control.frameworks} <= set(FRAMEWORKS), control.id


@pytest.mark.parametrize("control_id,expected,source", [
    # Security Hub KMS.4 lists these related requirements.
    (ROTATION, {"aws-securityhub:KMS.4", "nist-800-53-rev5:SC-12", "nist-800-53-rev5:SC-12(2)",
                "nist-800-53-rev5:SC-28(3)", "pci-dss-v4.0.1:3.7.4", "cis-aws-foundations-v5.0.0:3.6",
                "cis-aws-foundations-v3.0.0:3.6"}, KMS_CONTROLS),
    (USABLE, {"aws-securityhub:KMS.3", "nist-800-53-rev5:SC-12", "nist-800-53-rev5:SC-12(2)"}, KMS_CONTROLS),
    (POLICY, {"aws-securityhub:KMS.5"}, KMS_CONTROLS),
    (JOB_VPC, {"nist-800-53-rev5:AC-4", "nist-800-53-rev5:SC-7"}, SAGEMAKER_CONTROLS),
    *((control_id, {"nist-800-53-rev5:SC-13", "nist-800-53-rev5:SC-28", "nist-800-53-rev5:SC-28(1)"},
       AGENTCORE_CONTROLS) for control_id in CMK_CONTROLS),
])
def test_mappings_are_declared_with_their_source(control_id: str, expected: set[str], source: str) -> None:
    assert expected <= labels(control_id)
    (control,) = [c for c in bundled_controls() if c.id == control_id]
    assert source in control.references
    # The remediation link stays first: ASFF's Remediation.Recommendation.Url is the first reference.
    assert "securityhub" not in control.references[0]


def test_the_policy_control_claims_no_nist_requirement() -> None:
    # Security Hub's KMS.5 lists no related requirements: none is invented here.
    assert not any(label.startswith("nist-") for label in labels(POLICY))


# --- the header syntax -------------------------------------------------------------------------

HEADER = """\
-- id: my_control
-- title: t
-- severity: low
-- description: d
-- frameworks: NIST-800-53-rev5: SC-12, SC-28(1);
--   acme-policy-v2: P-7, P-7;
SELECT 1
"""


def test_a_header_spans_lines_keys_ignore_case_and_ids_are_kept_once() -> None:
    control = parse_control(HEADER, "my.sql")
    assert control.frameworks == (
        Requirement("nist-800-53-rev5", "SC-12"), Requirement("nist-800-53-rev5", "SC-28(1)"),
        Requirement("acme-policy-v2", "P-7"),
    )
    assert [r.asff for r in control.frameworks] == ["NIST.800-53.r5 SC-12", "NIST.800-53.r5 SC-28(1)", "acme-policy-v2 P-7"]


@pytest.mark.parametrize("text,words", [
    ("nist-800-53-rev5 SC-12", ["not 'framework-key: ID, ID'"]),
    ("nist-800-53-rev5: SC-12; nist-800-53-rev5: SC-13", ["named twice"]),
    ("nist-800-53-rev5: SC-12,", ["not a requirement id"]),
    ("NIST 800-53: SC-12", ["not 'framework-key: ID, ID'"]),
])
def test_a_malformed_frameworks_value_names_the_control_file(text: str, words: list) -> None:
    with pytest.raises(UserError) as raised:
        parse_frameworks(text, "queries/x.sql")
    assert "queries/x.sql" in str(raised.value) and all(w in str(raised.value) for w in words)


def test_a_user_control_with_a_bad_frameworks_line_is_exit_2(capsys, tmp_path: Path) -> None:
    folder = tmp_path / "mine"
    folder.mkdir()
    text = USER_CONTROL.format(id="owner_tag", severity="low", status="status")
    (folder / "owner.sql").write_text(text.replace("-- remediation:", "-- frameworks: nope\n-- remediation:"))
    code, out, err = cli(capsys, "controls", "--queries", folder)
    assert code == 2 and out == ""
    one_error_line(err, "owner.sql", "frameworks")


# --- controls and check --framework --------------------------------------------------------------


def test_controls_shows_the_frameworks(capsys) -> None:
    code, out, _ = cli(capsys, "controls", "--output", "json")
    assert code == 0
    rows = {row["id"]: row for row in json.loads(out)}
    assert "aws-securityhub: KMS.4" in rows[ROTATION]["frameworks"]
    assert "pci-dss-v4.0.1: 3.7.4" in rows[ROTATION]["frameworks"]
    code, out, _ = cli(capsys, "controls")
    assert "frameworks" in out.splitlines()[1] and "KMS.4" in out


@pytest.fixture
def db(tmp_path: Path) -> Path:
    snap = compliant(tmp_path / "estate.db")
    snap.add_model("hr-policy-qa-v1")
    return snap.path


def controls_run(out: str) -> set[str]:
    return {row["control_id"] for row in json.loads(out)}


@pytest.mark.parametrize("name,expected", [
    ("nist-800-53-rev5", BUNDLED - {POLICY}),
    ("NIST-800-53-REV5", BUNDLED - {POLICY}),  # any case
    ("aws-securityhub", {ROTATION, USABLE, POLICY}),
    ("pci-dss-v4.0.1", {ROTATION}),
])
def test_check_framework_runs_the_mapped_controls(capsys, db: Path, name: str, expected: set[str]) -> None:
    code, out, _ = cli(capsys, "--db", db, "check", "--framework", name, "--output", "json")
    assert code == 1 if SEED in expected else code == 0
    # IMPORTED_SEED gives no row: the snapshot holds no imported model.
    assert controls_run(out) == expected - {IMPORTED_SEED}


def test_check_framework_combines_with_severity(capsys, db: Path) -> None:
    code, out, _ = cli(capsys, "--db", db, "check", "--framework", "aws-securityhub", "--severity", "high", "-o", "json")
    assert controls_run(out) == {USABLE, POLICY}
    code, out, err = cli(capsys, "--db", db, "check", "--framework", "pci-dss-v4.0.1", "--severity", "high")
    assert code == 0 and "note: no control has severity high or higher and framework pci-dss-v4.0.1" in err


def test_an_unknown_framework_is_one_line_listing_the_known_ones(capsys, db: Path) -> None:
    code, out, err = cli(capsys, "--db", db, "check", "--framework", "hipaa")
    assert code == 2 and out == ""
    one_error_line(err, "hipaa", "nist-800-53-rev5", "aws-securityhub", "iso-27001-2022")


def test_a_user_control_framework_is_selectable_and_exported(capsys, tmp_path: Path, db: Path) -> None:
    folder = tmp_path / "mine"
    folder.mkdir()
    text = USER_CONTROL.format(id="owner_tag", severity="low", status="status")
    (folder / "owner.sql").write_text(text.replace("-- remediation:", "-- frameworks: acme-policy-v2: P-7\n-- remediation:"))
    code, out, _ = cli(capsys, "--db", db, "check", "--queries", folder, "--framework", "acme-policy-v2", "-o", "asff")
    items = json.loads(out)
    assert items and {item["GeneratorId"] for item in items} == {"bedrock-sql/owner_tag"}
    assert all(item["Compliance"]["RelatedRequirements"] == ["acme-policy-v2 P-7"] for item in items)


# --- exports carry the requirements ------------------------------------------------------------------


def test_csv_and_json_rows_carry_the_requirement_ids(capsys, tmp_path: Path, db: Path) -> None:
    exports = {ext: tmp_path / f"out.{ext}" for ext in ("csv", "json", "jsonl", "md")}
    code, _, _ = cli(capsys, "--db", db, "check", *(a for p in exports.values() for a in ("--export", p)))
    assert code == 1
    expected = {c.id: [r.label for r in c.frameworks] for c in bundled_controls()}
    csv_rows = list(csv.DictReader(io.StringIO(exports["csv"].read_text())))
    json_rows = json.loads(exports["json"].read_text())
    jsonl_rows = [json.loads(line) for line in exports["jsonl"].read_text().splitlines()]
    assert csv_rows and len(csv_rows) == len(json_rows) == len(jsonl_rows)
    for row in csv_rows:
        assert row["requirements"].split("; ") == expected[row["control_id"]]
    for row in (*json_rows, *jsonl_rows):
        assert row["requirements"] == expected[row["control_id"]]
    _heading, _blank, header, _rule, *markdown = exports["md"].read_text().splitlines()
    assert "requirements" in header
    assert any(ROTATION in line and "pci-dss-v4.0.1:3.7.4" in line for line in markdown)


def test_asff_carries_related_requirements_as_security_hub_writes_them(capsys, db: Path) -> None:
    code, out, _ = cli(capsys, "--db", db, "check", ROTATION, "--output", "asff")
    items = json.loads(out)
    assert items
    for item in items:
        related = item["Compliance"]["RelatedRequirements"]
        assert {"NIST.800-53.r5 SC-12", "NIST.800-53.r5 SC-28(3)", "PCI DSS v4.0.1/3.7.4",
                "CIS AWS Foundations Benchmark v3.0.0/3.6", "AWS Security Hub KMS.4"} <= set(related)
        assert asff_problems(item) == []


def test_asff_keeps_at_most_32_related_requirements(capsys, tmp_path: Path, db: Path) -> None:
    folder = tmp_path / "mine"
    folder.mkdir()
    many = ", ".join(f"R-{n}" for n in range(40))
    text = USER_CONTROL.format(id="owner_tag", severity="low", status="status")
    (folder / "owner.sql").write_text(text.replace("-- remediation:", f"-- frameworks: acme-v1: {many}\n-- remediation:"))
    code, out, _ = cli(capsys, "--db", db, "check", "owner_tag", "--queries", folder, "--output", "asff")
    for item in json.loads(out):
        assert item["Compliance"]["RelatedRequirements"] == [f"acme-v1 R-{n}" for n in range(ASFF_MAX_RELATED_REQUIREMENTS)]
        assert asff_problems(item) == []


def test_ocsf_carries_requirements_and_standards(capsys, db: Path) -> None:
    code, out, _ = cli(capsys, "--db", db, "check", ROTATION, "--output", "ocsf")
    events = json.loads(out)
    assert events
    from py_ocsf_models.events.findings.compliance_finding import ComplianceFinding

    for event in events:
        compliance = event["compliance"]
        assert "PCI DSS v4.0.1/3.7.4" in compliance["requirements"]
        assert compliance["standards"][0] == "bedrock-sql"
        assert {"NIST SP 800-53 Revision 5", "PCI DSS v4.0.1", "AWS Security Hub CSPM controls"} <= set(compliance["standards"])
        ComplianceFinding.model_validate(event)
