"""`bedrock-sql check` and `bedrock-sql controls`, in process, on hand-built snapshots.

Exit codes, control selection, output formats (data on stdout, summary on stderr for
machine formats), exports by extension, CSV formula neutralization and user controls.
"""

from __future__ import annotations

import csv
import io
import json
import stat
from pathlib import Path

import pytest

from helpers import run_main as cli
from snapshot_builder import ACCOUNT, FOREIGN_ACCOUNT, IMPORTED_SEED, WHEN, JOB_CMK, JOB_VPC, JOBS, MODELS, POLICY, ROTATION, SEED, USABLE, SnapshotBuilder

BUNDLED = {SEED, IMPORTED_SEED, USABLE, ROTATION, POLICY, JOB_CMK, JOB_VPC}
HIGH = {SEED, IMPORTED_SEED, USABLE, POLICY, JOB_CMK}
# The controls that give rows on these snapshots, which hold no imported model.
JUDGED = BUNDLED - {IMPORTED_SEED}
BASE_COLUMNS = ["control_id", "control_title", "severity", "status", "reason", "resource", "account_id", "region"]
VPC = {"subnetIds": ["subnet-0a1"], "securityGroupIds": ["sg-01"]}


def one_error_line(err: str, *names: str) -> str:
    lines = err.splitlines()
    assert len(lines) == 1, f"expected one line on stderr, got {err!r}"
    assert lines[0].startswith("bedrock-sql: error: "), lines[0]
    assert "Traceback" not in err
    for name in names:
        assert name in lines[0], f"{name!r} not in {lines[0]!r}"
    return lines[0]


def compliant(path: Path) -> SnapshotBuilder:
    """One model and one job that pass every bundled control."""
    snap = SnapshotBuilder(path)
    snap.add_run()
    key = snap.add_key("alias/bedrock/custom-models")
    snap.add_model("support-chat-v3", model_kms_key_arn=key["arn"])
    snap.add_job("support-chat-ft", output_model_kms_key_arn=key["arn"], vpc_config=VPC)
    return snap


@pytest.fixture
def ok_db(tmp_path: Path) -> Path:
    return compliant(tmp_path / "ok.db").path


@pytest.fixture
def alarm_db(tmp_path: Path) -> Path:
    snap = compliant(tmp_path / "alarm.db")
    snap.add_model("hr-policy-qa-v1")  # Bedrock-owned key
    return snap.path


@pytest.fixture
def error_db(tmp_path: Path) -> Path:
    snap = compliant(tmp_path / "error.db")
    snap.add_model("hr-policy-qa-v1")  # alarm ...
    snap.add_error(table_name=MODELS, operation="ListCustomModels", region="eu-west-1")  # ... and error
    return snap.path


# --- exit codes ---------------------------------------------------------------------------


def test_exit_0_when_everything_passes(capsys, ok_db: Path) -> None:
    code, out, err = cli(capsys, "--db", ok_db, "check")
    assert code == 0, out + err
    assert "Summary: total 6, ok 6, alarm 0, info 0, skip 0, error 0" in out
    for control_id in BUNDLED:
        assert control_id in out


def test_exit_1_with_an_alarm(capsys, alarm_db: Path) -> None:
    code, out, _ = cli(capsys, "--db", alarm_db, "check")
    assert code == 1
    assert "hr-policy-qa-v1" in out and "ALARM" in out


def test_exit_2_with_an_error_even_with_alarms(capsys, error_db: Path) -> None:
    code, out, _ = cli(capsys, "--db", error_db, "check", "--output", "json")
    assert code == 2
    statuses = {row["status"] for row in json.loads(out)}
    assert {"alarm", "error"} <= statuses


def test_exit_1_when_only_the_alarming_control_runs(capsys, error_db: Path) -> None:
    # The listing error of the models does not concern the job controls.
    code, _, _ = cli(capsys, "--db", error_db, "check", JOB_CMK, JOB_VPC)
    assert code == 0


def test_unknown_control_is_exit_2_with_one_line(capsys, ok_db: Path) -> None:
    code, out, err = cli(capsys, "--db", ok_db, "check", "no_such_control")
    assert code == 2
    assert out == ""
    one_error_line(err, "no_such_control")


def test_missing_snapshot_is_exit_2_with_one_line(capsys, tmp_path: Path) -> None:
    code, out, err = cli(capsys, "--db", tmp_path / "absent.db", "check")
    assert code == 2 and out == ""
    one_error_line(err, "absent.db")


# --- choosing controls ----------------------------------------------------------------------


def controls_run(out: str) -> set[str]:
    return {row["control_id"] for row in json.loads(out)}


def test_severity_high_runs_only_high_controls(capsys, ok_db: Path) -> None:
    code, out, _ = cli(capsys, "--db", ok_db, "check", "--severity", "high", "--output", "json")
    assert code == 0
    assert controls_run(out) == HIGH - {IMPORTED_SEED}
    assert {row["severity"] for row in json.loads(out)} == {"high"}


def test_check_named_controls_runs_only_those(capsys, alarm_db: Path) -> None:
    code, out, _ = cli(capsys, "--db", alarm_db, "check", ROTATION, JOB_VPC, "--output", "json")
    assert controls_run(out) == {ROTATION, JOB_VPC}
    # The Bedrock-owned model is a skip for rotation, not an alarm: these two pass.
    assert code == 0


# --- output formats -------------------------------------------------------------------------


def test_csv_output_is_data_only_and_the_summary_goes_to_stderr(capsys, alarm_db: Path) -> None:
    code, out, err = cli(capsys, "--db", alarm_db, "check", "--output", "csv")
    assert code == 1
    assert "Summary" not in out
    rows = list(csv.reader(io.StringIO(out)))
    assert rows[0][: len(BASE_COLUMNS)] == BASE_COLUMNS
    records = [dict(zip(rows[0], row)) for row in rows[1:]]
    assert len(records) == 10  # 2 models x 4 model controls + 1 job x 2 job controls
    assert {r["control_id"] for r in records} == JUDGED
    assert all(r["status"] in {"ok", "alarm", "info", "skip", "error"} for r in records)
    seed = [r for r in records if r["control_id"] == SEED]
    assert {(r["status"], r["account_id"], r["region"]) for r in seed} == {
        ("ok", ACCOUNT, "us-east-1"), ("alarm", ACCOUNT, "us-east-1")}
    assert err.strip().splitlines()[-1].startswith("Summary: total 10, ")


def test_json_output_parses_and_the_summary_goes_to_stderr(capsys, alarm_db: Path) -> None:
    code, out, err = cli(capsys, "--db", alarm_db, "check", "--output", "json")
    assert code == 1
    rows = json.loads(out)
    assert isinstance(rows, list) and len(rows) == 10
    assert list(rows[0])[: len(BASE_COLUMNS)] == BASE_COLUMNS
    assert "Summary: total 10, ok 6, alarm 1, info 0, skip 3, error 0" in err


def test_jsonl_output_is_one_object_a_line(capsys, alarm_db: Path) -> None:
    code, out, err = cli(capsys, "--db", alarm_db, "check", "--output", "jsonl")
    assert code == 1
    rows = [json.loads(line) for line in out.splitlines()]
    assert len(rows) == 10 and all(isinstance(r, dict) for r in rows)
    assert "Summary" not in out and "Summary: total 10" in err


def test_brief_shows_only_alarm_and_error_lines(capsys, error_db: Path) -> None:
    code, out, _ = cli(capsys, "--db", error_db, "check", "--output", "brief")
    assert code == 2
    lines = [line for line in out.splitlines() if line.strip() and not line.startswith("Summary: ")]
    assert lines, out
    assert all(line.startswith(("ALARM", "ERROR")) for line in lines), lines
    assert any(line.startswith("ALARM") and "hr-policy-qa-v1" in line for line in lines)
    assert any(line.startswith("ERROR") and f"{ACCOUNT}/eu-west-1" in line for line in lines)
    assert "support-chat-v3" not in out  # the passing model is not listed


# --- exports -------------------------------------------------------------------------------


def test_exports_follow_the_extension(capsys, tmp_path: Path, alarm_db: Path) -> None:
    paths = {ext: tmp_path / f"out.{ext}" for ext in ("csv", "md", "json", "jsonl")}
    code, out, err = cli(capsys, "--db", alarm_db, "check", "--output", "json",
                         *(arg for p in paths.values() for arg in ("--export", p)))
    assert code == 1
    expected = json.loads(out)
    assert len(expected) == 10

    with open(paths["csv"], newline="", encoding="utf-8") as handle:
        rows = list(csv.DictReader(handle))
    assert list(rows[0])[: len(BASE_COLUMNS)] == BASE_COLUMNS
    assert [(r["control_id"], r["resource"], r["status"]) for r in rows] == [
        (r["control_id"], r["resource"], r["status"]) for r in expected]

    assert json.loads(paths["json"].read_text()) == expected
    assert [json.loads(line) for line in paths["jsonl"].read_text().splitlines()] == expected

    heading, blank, *markdown = paths["md"].read_text().splitlines()
    run = expected[0]["run_id"]
    assert heading == f"Findings of the snapshot collected {WHEN} (run {run})." and blank == ""
    assert markdown[0].startswith("|") and "control_id" in markdown[0] and "reason" in markdown[0]
    assert set(markdown[1]) <= set("|-: ")
    assert len(markdown) == 2 + len(expected)
    assert "Summary" not in paths["md"].read_text()


def test_export_with_an_unknown_extension_fails_before_any_output(capsys, tmp_path: Path, alarm_db: Path) -> None:
    good = tmp_path / "good.csv"
    code, out, err = cli(capsys, "--db", alarm_db, "check", "--export", good, "--export", tmp_path / "out.txt")
    assert code == 2
    assert out == ""
    one_error_line(err, "out.txt")
    assert not good.exists()
    assert not (tmp_path / "out.txt").exists()


def test_csv_neutralizes_formulas_in_names(capsys, tmp_path: Path) -> None:
    snap = SnapshotBuilder(tmp_path / "evil.db")
    snap.add_run()
    evil = ['=HYPERLINK("http://evil.example","x")', "@SUM(1+1)"]
    for name in evil:
        snap.add_model(name, arn=f"arn:aws:bedrock:us-east-1:{ACCOUNT}:custom-model/evil-{len(name)}")
    export = tmp_path / "evil.csv"
    code, out, _ = cli(capsys, "--db", snap.path, "check", SEED, "--output", "csv", "--export", export)
    assert code == 1
    for text in (out, export.read_text(encoding="utf-8")):
        rows = list(csv.DictReader(io.StringIO(text)))
        assert len(rows) == 2
        for row in rows:
            assert row["status"] == "alarm"
            assert row["reason"].startswith("'"), row["reason"]
            assert row["reason"][1:].startswith(tuple(evil))
            assert row["model_name"].startswith("'") and row["model_name"][1:] in evil
            for cell in row.values():
                assert not cell.startswith(("=", "+", "-", "@")), cell


# --- controls and user controls --------------------------------------------------------------


def test_controls_lists_the_bundled_ones(capsys) -> None:
    code, out, _ = cli(capsys, "controls", "--output", "json")
    assert code == 0
    rows = json.loads(out)
    assert {r["id"] for r in rows} == BUNDLED
    assert all(r["title"] and r["severity"] and r["description"] for r in rows)
    code, out, _ = cli(capsys, "controls")
    assert code == 0 and all(control_id in out for control_id in BUNDLED)


USER_CONTROL = """\
-- id: {id}
-- title: Custom models carry an owner tag
-- severity: {severity}
-- description: Every custom model names the team that owns it in an owner tag.
-- remediation: Tag the model (bedrock:TagResource) with owner.
--
-- ok     the model has an owner tag
-- alarm  it has none
SELECT arn AS resource,
       CASE WHEN tags ->> '$.owner' IS NOT NULL THEN 'ok' ELSE 'alarm' END AS {status},
       CASE WHEN tags ->> '$.owner' IS NOT NULL THEN model_name || ' has an owner.'
            ELSE model_name || ' has no owner tag.' END AS reason,
       account_id, region
FROM aws_bedrock_custom_model
"""


def write_control(folder: Path, name: str = "owner_tag.sql", *, id: str = "custom_model_has_owner_tag",
                  severity: str = "low", status: str = "status", text: str | None = None) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / name
    path.write_text(text if text is not None else USER_CONTROL.format(id=id, severity=severity, status=status))
    return path


def test_user_control_is_listed_and_run(capsys, tmp_path: Path) -> None:
    snap = SnapshotBuilder(tmp_path / "s.db")
    snap.add_run()
    tagged = snap.add_model("tagged", tags={"owner": "support"})
    untagged = snap.add_model("untagged")
    snap.add_job("tagging-ft", vpc_config=VPC)
    folder = tmp_path / "my-controls"
    write_control(folder)

    code, out, _ = cli(capsys, "controls", "--queries", folder, "--output", "json")
    assert code == 0
    assert {r["id"] for r in json.loads(out)} == BUNDLED | {"custom_model_has_owner_tag"}

    code, out, _ = cli(capsys, "--db", snap.path, "check", "custom_model_has_owner_tag",
                       "--queries", folder, "--output", "json")
    assert code == 1
    rows = {r["resource"]: r for r in json.loads(out)}
    assert {r["control_id"] for r in rows.values()} == {"custom_model_has_owner_tag"}
    assert rows[tagged["arn"]]["status"] == "ok"
    assert rows[untagged["arn"]]["status"] == "alarm"
    assert rows[untagged["arn"]]["reason"] == "untagged has no owner tag."

    # Without ids, check runs the bundled controls and the user's.
    code, out, _ = cli(capsys, "--db", snap.path, "check", "--queries", folder, "--output", "json")
    assert controls_run(out) == JUDGED | {"custom_model_has_owner_tag"}
    # --severity applies to user controls too (this one is low).
    code, out, _ = cli(capsys, "--db", snap.path, "check", "--queries", folder, "--severity", "medium",
                       "--output", "json")
    assert "custom_model_has_owner_tag" not in controls_run(out)


@pytest.mark.parametrize("command", ["controls", "check"])
def test_user_control_with_a_duplicate_id_is_exit_2(capsys, tmp_path: Path, ok_db: Path, command: str) -> None:
    folder = tmp_path / "dup"
    path = write_control(folder, id=SEED)
    code, out, err = cli(capsys, "--db", ok_db, command, "--queries", folder)
    assert code == 2 and out == ""
    one_error_line(err, str(path), SEED)


def test_two_user_controls_with_the_same_id_is_exit_2(capsys, tmp_path: Path) -> None:
    folder = tmp_path / "dup2"
    write_control(folder, "a.sql")
    second = write_control(folder, "b.sql")
    code, out, err = cli(capsys, "controls", "--queries", folder)
    assert code == 2 and out == ""
    one_error_line(err, str(second))


@pytest.mark.parametrize("field", ["id", "title", "severity", "description"])
def test_user_control_missing_a_header_field_is_exit_2(capsys, tmp_path: Path, ok_db: Path, field: str) -> None:
    folder = tmp_path / f"missing-{field}"
    text = "\n".join(
        line for line in USER_CONTROL.format(id="x_control", severity="low", status="status").splitlines()
        if not line.startswith(f"-- {field}:")
    )
    path = write_control(folder, text=text)
    code, out, err = cli(capsys, "--db", ok_db, "check", "--queries", folder)
    assert code == 2 and out == ""
    one_error_line(err, str(path), field)


def test_user_control_whose_select_lacks_status_is_exit_2(capsys, tmp_path: Path, ok_db: Path) -> None:
    folder = tmp_path / "no-status"
    path = write_control(folder, status="verdict")
    code, out, err = cli(capsys, "--db", ok_db, "check", "--queries", folder)
    assert code == 2 and out == ""
    one_error_line(err, str(path), "status")


def test_user_control_with_an_invalid_status_is_exit_2(capsys, tmp_path: Path, ok_db: Path) -> None:
    folder = tmp_path / "bad-status"
    text = USER_CONTROL.format(id="bad_status", severity="low", status="status").replace("'alarm'", "'fail'")
    write_control(folder, text=text)
    snap = SnapshotBuilder(tmp_path / "one.db")
    snap.add_run()
    snap.add_model("untagged")
    code, out, err = cli(capsys, "--db", snap.path, "check", "--queries", folder)
    assert code == 2 and out == ""
    one_error_line(err, "bad_status", "fail")


def test_job_listing_error_reaches_the_exit_code(capsys, ok_db: Path, tmp_path: Path) -> None:
    snap = compliant(tmp_path / "jobs.db")
    snap.add_error(table_name=JOBS, operation="ListModelCustomizationJobs", region="eu-west-1")
    code, out, _ = cli(capsys, "--db", snap.path, "check", JOB_VPC, "--output", "jsonl")
    assert code == 2
    rows = [json.loads(line) for line in out.splitlines()]
    assert {(r["resource"], r["status"]) for r in rows} >= {(f"{ACCOUNT}/eu-west-1", "error")}


# --- found by trying it as a new user -----------------------------------------------------


def test_export_to_a_missing_directory_fails_before_running(capsys, ok_db: Path, tmp_path: Path) -> None:
    code, out, err = cli(capsys, "--db", ok_db, "check", "--export", tmp_path / "nope" / "f.csv")
    assert code == 2 and out == ""
    one_error_line(err, "--export", "no directory")


def test_exports_are_readable_by_their_owner_only(capsys, ok_db: Path, tmp_path: Path) -> None:
    target = tmp_path / "findings.csv"
    code, _, _ = cli(capsys, "--db", ok_db, "check", "--export", target)
    assert code == 0
    assert stat.S_IMODE(target.stat().st_mode) == 0o600


def test_groups_come_worst_first(capsys, error_db: Path) -> None:
    code, out, _ = cli(capsys, "--db", error_db, "check")
    assert code == 2
    headings = [line.split()[0] for line in out.splitlines() if line.startswith("bedrock_")]
    # the four model controls have error rows (eu-west-1 could not be listed): they come
    # first, high severity before medium; the two all-ok job controls come next, and the
    # imported-model control (no imported models) last
    assert headings[:4] == [
        "bedrock_custom_model_cmk_policy_not_public",
        "bedrock_custom_model_cmk_usable",
        "bedrock_custom_model_encrypted_with_cmk",
        "bedrock_custom_model_cmk_rotation_enabled",
    ]
    assert set(headings[4:6]) == {"bedrock_customization_job_in_vpc", "bedrock_customization_job_output_encrypted_with_cmk"}
    assert headings[6:] == [IMPORTED_SEED]


def test_a_severity_with_no_controls_says_so(capsys, ok_db: Path) -> None:
    code, _, err = cli(capsys, "--db", ok_db, "check", "--severity", "critical")
    assert code == 0
    assert "no control has severity critical" in err


def test_no_arguments_prints_the_help(capsys) -> None:
    code, out, err = cli(capsys)
    assert code == 0 and err == ""
    assert "Usage: bedrock-sql" in out and "collect" in out and "\n" in out.strip()


def test_db_after_the_command_works_like_before_it(capsys, ok_db: Path, alarm_db: Path) -> None:
    before = cli(capsys, "--db", ok_db, "check")
    after = cli(capsys, "check", "--db", ok_db)
    assert after == before and after[0] == 0
    # Given both, the one after the command wins.
    code, out, _ = cli(capsys, "--db", ok_db, "check", "--db", alarm_db)
    assert code == 1 and "hr-policy-qa-v1" in out


def test_db_after_the_command_beats_the_environment(capsys, monkeypatch, ok_db: Path, alarm_db: Path) -> None:
    monkeypatch.setenv("BEDROCK_SQL_DB", str(ok_db))
    assert cli(capsys, "check")[0] == 0  # the env as today
    assert cli(capsys, "check", "--db", alarm_db)[0] == 1


@pytest.mark.parametrize("command", [["query", "SELECT count(*) AS n FROM aws_bedrock_custom_model"], ["tables"]])
def test_db_after_query_and_tables(capsys, alarm_db: Path, command: list[str]) -> None:
    code, out, err = cli(capsys, *command, "--db", alarm_db)
    assert code == 0, err
    assert out == cli(capsys, "--db", alarm_db, *command)[1]
    assert "|   2 |" in out or "aws_bedrock_custom_model" in out


@pytest.mark.parametrize("command", [["query", "SELECT 1"], ["shell"], ["tables"], ["check"],
                                     ["remediate", "--kms-key", "arn:aws:kms:us-east-1:123456789012:key/k"], ["serve"]])
def test_every_snapshot_command_reads_the_db_given_after_it(capsys, tmp_path: Path, command: list[str]) -> None:
    absent = tmp_path / "absent.db"
    code, _, err = cli(capsys, "--db", tmp_path / "other.db", *command, "--db", absent)
    assert code == 2
    one_error_line(err, f"no snapshot at {absent}")


def test_collect_writes_the_db_given_after_it(capsys, tmp_path: Path) -> None:
    not_a_snapshot = tmp_path / "notes.txt"
    not_a_snapshot.write_text("mine\n")
    code, _, err = cli(capsys, "--db", tmp_path / "other.db", "collect", "--region", "us-east-1", "--db", not_a_snapshot)
    assert code == 2
    one_error_line(err, f"refusing to replace {not_a_snapshot}")
    assert not_a_snapshot.read_text() == "mine\n"


def test_db_after_a_command_that_reads_no_snapshot_says_which_do(capsys, ok_db: Path) -> None:
    code, _, err = cli(capsys, "controls", "--db", ok_db)
    assert code == 2
    one_error_line(err, "reads no snapshot", "check")
    code, _, err = cli(capsys, "diff", ok_db, ok_db, "--db", ok_db)
    assert code == 2
    one_error_line(err, "diff takes its snapshot files as arguments")


@pytest.mark.parametrize("endpoint", ["127.0.0.1:5055", "localhost"])
def test_an_endpoint_that_is_not_a_url_is_one_line(capsys, ok_db: Path, endpoint: str) -> None:
    code, _, err = cli(capsys, "--db", ok_db, "check", "--live", "--region", "us-east-1", "--endpoint-url", endpoint)
    assert code == 2
    one_error_line(err, "is not a URL", "http://")


# --- info is no alarm ------------------------------------------------------------------------


def test_info_findings_are_not_alarms(capsys, tmp_path: Path) -> None:
    snap = compliant(tmp_path / "info.db")
    snap.add_model("partner-catalog-v1", model_kms_key_arn=f"arn:aws:kms:us-east-1:{FOREIGN_ACCOUNT}:key/k-1")
    code, out, err = cli(capsys, "--db", snap.path, "check", SEED, "--output", "json")
    assert {row["status"] for row in json.loads(out)} == {"ok", "info"}
    assert "Summary: total 2, ok 1, alarm 0, info 1, skip 0, error 0" in err
    assert code == 0


# --- audit formats through the CLI -----------------------------------------------------------


def assert_asff(items: list, count: int) -> None:
    assert isinstance(items, list) and len(items) == count
    for item in items:
        assert item["SchemaVersion"] == "2018-10-08" and item["AwsAccountId"] == ACCOUNT
        assert item["Compliance"]["Status"] in {"PASSED", "FAILED", "WARNING", "NOT_AVAILABLE"}
        assert "class_uid" not in item


def assert_ocsf(events: list, count: int) -> None:
    assert isinstance(events, list) and len(events) == count
    for event in events:
        assert event["class_uid"] == 2003 and event["cloud"]["account"]["uid"] == ACCOUNT
        assert "SchemaVersion" not in event


def test_exports_of_asff_ocsf_and_json_each_get_their_format(capsys, tmp_path: Path, alarm_db: Path) -> None:
    asff, ocsf, plain = tmp_path / "x.asff.json", tmp_path / "x.ocsf.json", tmp_path / "x.json"
    code, out, _ = cli(capsys, "--db", alarm_db, "check", "--output", "csv",
                       "--export", asff, "--export", ocsf, "--export", plain)
    assert code == 1
    assert len(list(csv.DictReader(io.StringIO(out)))) == 10
    assert_asff(json.loads(asff.read_text()), 10)
    assert_ocsf(json.loads(ocsf.read_text()), 10)
    rows = json.loads(plain.read_text())
    assert len(rows) == 10 and all(row["control_id"] in BUNDLED and "SchemaVersion" not in row for row in rows)
    for path in (asff, ocsf, plain):
        assert stat.S_IMODE(path.stat().st_mode) == 0o600


@pytest.mark.parametrize("fmt", ["asff", "ocsf"])
def test_asff_and_ocsf_on_stdout_are_one_array_and_the_summary_goes_to_stderr(capsys, alarm_db: Path, fmt: str) -> None:
    code, out, err = cli(capsys, "--db", alarm_db, "check", "--output", fmt)
    assert code == 1
    (assert_asff if fmt == "asff" else assert_ocsf)(json.loads(out), 10)
    assert "Summary" not in out and "Summary: total 10, ok 6, alarm 1" in err


@pytest.mark.parametrize("fmt", ["asff", "ocsf", "json"])
def test_an_empty_check_is_an_empty_array(capsys, tmp_path: Path, fmt: str) -> None:
    snap = SnapshotBuilder(tmp_path / "empty.db")
    snap.add_run()
    code, out, _ = cli(capsys, "--db", snap.path, "check", "--output", fmt)
    assert code == 0 and json.loads(out) == []


# --- dated evidence ----------------------------------------------------------------------------

COLLECTED = "2026-10-01T08:30:00Z"  # neither the builder's WHEN nor today: only the run says it


@pytest.fixture
def dated_db(tmp_path: Path) -> tuple[Path, str]:
    snap = SnapshotBuilder(tmp_path / "dated.db")
    run = snap.add_run(started_at="2026-10-01T08:29:00Z", finished_at=COLLECTED)
    key = snap.add_key("alias/bedrock/custom-models")
    snap.add_model("support-chat-v3", model_kms_key_arn=key["arn"])
    snap.add_model("hr-policy-qa-v1")
    return snap.path, run["run_id"]


def test_rows_carry_the_collection_time_and_run_id_after_the_base_columns(capsys, tmp_path: Path, dated_db) -> None:
    db, run_id = dated_db
    exports = {ext: tmp_path / f"out.{ext}" for ext in ("csv", "json", "jsonl")}
    code, out, _ = cli(capsys, "--db", db, "check", SEED, "--output", "jsonl",
                       *(arg for path in exports.values() for arg in ("--export", path)))
    assert code == 1
    stdout_rows = [json.loads(line) for line in out.splitlines()]
    csv_rows = list(csv.DictReader(io.StringIO(exports["csv"].read_text())))
    for rows in (stdout_rows, csv_rows, json.loads(exports["json"].read_text()),
                 [json.loads(line) for line in exports["jsonl"].read_text().splitlines()]):
        assert len(rows) == 2
        for row in rows:
            assert list(row)[: len(BASE_COLUMNS) + 2] == [*BASE_COLUMNS, "collected_at", "run_id"]
            assert (row["collected_at"], row["run_id"]) == (COLLECTED, run_id)


def test_asff_and_ocsf_are_dated_by_the_collection_not_by_the_check(capsys, tmp_path: Path, dated_db) -> None:
    db, run_id = dated_db
    code, out, _ = cli(capsys, "--db", db, "check", SEED, "--output", "asff")
    assert code == 1
    for item in json.loads(out):
        for name in ("CreatedAt", "UpdatedAt", "FirstObservedAt", "LastObservedAt"):
            assert item[name] == "2026-10-01T08:30:00.000Z", name
        assert item["ProductFields"]["bedrock-sql/RunId"] == run_id
    code, again, _ = cli(capsys, "--db", db, "check", SEED, "--output", "asff")
    assert again == out  # the same snapshot gives the same evidence, whenever it is checked

    code, out, _ = cli(capsys, "--db", db, "check", SEED, "--output", "ocsf")
    epoch_ms = 1790843400000  # 2026-10-01T08:30:00Z
    for event in json.loads(out):
        info = event["finding_info"]
        assert event["time"] == epoch_ms and event["time_dt"].startswith("2026-10-01T08:30:00")
        assert info["created_time"] == info["first_seen_time"] == info["last_seen_time"] == epoch_ms
        assert info["modified_time"] == epoch_ms
        assert event["unmapped"]["run_id"] == run_id


def test_table_and_markdown_name_the_snapshot(capsys, tmp_path: Path, dated_db) -> None:
    db, run_id = dated_db
    for fmt in ("table", "brief", "markdown"):
        code, out, _ = cli(capsys, "--db", db, "check", SEED, "--output", fmt)
        assert code == 1
        summary = out.strip().splitlines()[-1]
        assert summary.startswith("Summary: total 2, ") and COLLECTED in summary and run_id in summary
    assert out.splitlines()[0] == f"Findings of the snapshot collected {COLLECTED} (run {run_id})."


def test_a_snapshot_without_a_run_cannot_be_dated(capsys, tmp_path: Path) -> None:
    snap = SnapshotBuilder(tmp_path / "norun.db")
    snap.add_model("m1")
    code, out, err = cli(capsys, "--db", snap.path, "check", "--output", "csv")
    assert code == 2 and out == ""
    one_error_line(err, "bedrock_sql_runs", "dated")


# --- streaming ----------------------------------------------------------------------------------


def test_grouped_rows_come_worst_first_within_a_control(capsys, error_db: Path) -> None:
    code, out, _ = cli(capsys, "--db", error_db, "check", SEED)
    assert code == 2
    statuses = [line.split("|")[1].strip() for line in out.splitlines() if line.startswith("| ") and "status" not in line]
    assert statuses == ["ERROR", "ALARM", "OK"]


def test_a_control_longer_than_a_page_is_paged(capsys, monkeypatch, tmp_path: Path) -> None:
    import bedrock_sql.render as render_module

    monkeypatch.setattr(render_module, "PAGE_ROWS", 2)
    snap = SnapshotBuilder(tmp_path / "five.db")
    snap.add_run()
    for i in range(5):
        snap.add_model(f"m{i}")
    code, out, _ = cli(capsys, "--db", snap.path, "check", SEED)
    assert code == 1
    assert out.count("| status ") == 3  # 2 + 2 + 1 rows, each page with its header
    assert sum(f"custom-model/m{i} " in out for i in range(5)) == 5


def test_a_failed_check_leaves_no_export_and_an_earlier_one_whole(capsys, tmp_path: Path, alarm_db: Path) -> None:
    folder = tmp_path / "bad-status"
    text = USER_CONTROL.format(id="bad_status", severity="low", status="status").replace("'alarm'", "'fail'")
    write_control(folder, text=text)
    earlier = tmp_path / "findings.csv"
    earlier.write_text("an earlier export\n")
    new = tmp_path / "new.json"
    code, _, err = cli(capsys, "--db", alarm_db, "check", "--queries", folder, "--output", "csv",
                       "--export", earlier, "--export", new)
    assert code == 2
    one_error_line(err, "bad_status", "fail")
    assert earlier.read_text() == "an earlier export\n"
    assert not new.exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(["alarm.db", "bad-status", "findings.csv"])


# --- check --live leaves nothing behind ---------------------------------------------------------


def test_check_live_leaves_no_temporary_snapshot(server_session, moto_url: str, tmp_path: Path) -> None:
    from bedrock_sql.estate import seed_demo_estate
    from e2e_helpers import cli_env, describe, run_cli

    seed_demo_estate(server_session, regions=("us-east-1",), endpoint_url=moto_url)
    temporary, work = tmp_path / "tmp", tmp_path / "work"
    temporary.mkdir()
    work.mkdir()
    result = run_cli(["check", "--live", "--region", "us-east-1", SEED, "--output", "json", "--export", "f.asff.json"],
                     cwd=work, env=cli_env(moto_url, TMPDIR=str(temporary)), timeout=120)
    assert result.returncode == 1, describe(result)
    rows = json.loads(result.stdout)
    assert rows and len({(r["collected_at"], r["run_id"]) for r in rows}) == 1  # the throw-away snapshot's run
    asff = json.loads((work / "f.asff.json").read_text())
    assert {item["LastObservedAt"][:19] for item in asff} == {rows[0]["collected_at"][:19]}
    assert list(temporary.iterdir()) == []  # the map of the estate is gone
    assert sorted(p.name for p in work.iterdir()) == ["f.asff.json"]


# --- check --export says what it wrote, and writes only the files ---------------------------------


def test_export_says_each_file_it_wrote_on_stderr(capsys, tmp_path: Path, alarm_db: Path) -> None:
    report, findings = tmp_path / "report.html", tmp_path / "findings.csv"
    code, out, err = cli(capsys, "--db", alarm_db, "check", "--export", report, "--export", findings)
    assert code == 1  # the exit code is as without --export: alarms
    assert err.splitlines() == [f"bedrock-sql: wrote {report} (findings of {len(BUNDLED)} controls)",
                                f"bedrock-sql: wrote {findings} (findings of {len(BUNDLED)} controls)"]
    assert report.stat().st_size and findings.stat().st_size
    # Quiet but for the summary: no table on stdout.
    assert out.splitlines() and all(line.startswith("Summary: ") for line in out.splitlines())


def test_export_of_one_control_says_control(capsys, tmp_path: Path, alarm_db: Path) -> None:
    code, _, err = cli(capsys, "--db", alarm_db, "check", SEED, "--export", tmp_path / "f.json")
    assert code == 1
    assert err == f"bedrock-sql: wrote {tmp_path / 'f.json'} (findings of 1 control)\n"


def test_export_with_show_or_output_also_prints_the_findings(capsys, tmp_path: Path, alarm_db: Path) -> None:
    table = cli(capsys, "--db", alarm_db, "check")[1]
    code, out, _ = cli(capsys, "--db", alarm_db, "check", "--export", tmp_path / "f.csv", "--show")
    assert code == 1 and out == table
    code, out, _ = cli(capsys, "--db", alarm_db, "check", "--export", tmp_path / "f.csv", "-o", "table")
    assert code == 1 and out == table
    code, out, _ = cli(capsys, "--db", alarm_db, "check", "--export", tmp_path / "f.csv", "-o", "json")
    assert code == 1 and len(json.loads(out)) == 10


def test_no_wrote_line_for_a_file_not_written(capsys, tmp_path: Path, alarm_db: Path) -> None:
    folder = tmp_path / "bad-status"
    write_control(folder, text=USER_CONTROL.format(id="bad_status", severity="low", status="status")
                  .replace("'alarm'", "'fail'"))
    code, _, err = cli(capsys, "--db", alarm_db, "check", "--queries", folder, "--export", tmp_path / "f.csv")
    assert code == 2
    assert "wrote" not in err
    one_error_line(err, "bad_status")
