"""Accepted exceptions: `check --exceptions FILE` (and BEDROCK_SQL_EXCEPTIONS).

On hand-built snapshots, in process: which findings each key of an entry mutes, expiry,
malformed files (one line, exit 2), the effect on exit codes, and what every format says of
a muted finding.
"""

from __future__ import annotations

import csv
import io
import json
from datetime import date, datetime, timedelta, timezone
from pathlib import Path

import pytest

from bedrock_sql.controls import Control, Finding, load_controls
from bedrock_sql.errors import UserError
from bedrock_sql.exceptions import load_exceptions
from helpers import run_main as cli
from snapshot_builder import ACCOUNT, FOREIGN_ACCOUNT, JOB_CMK, MODELS, SEED, USABLE, SnapshotBuilder
from test_check_cli import compliant, one_error_line
from test_findings import asff_problems

LEGACY = "legacy-chat-v1"  # Bedrock-owned key, tagged team=legacy, us-east-1
HR = "hr-policy-qa-v1"  # Bedrock-owned key, eu-west-1
LEGACY_ARN = f"arn:aws:bedrock:us-east-1:{ACCOUNT}:custom-model/{LEGACY}"
HR_ARN = f"arn:aws:bedrock:eu-west-1:{ACCOUNT}:custom-model/{HR}"
FAR = "2099-12-31"
CONTROL_IDS = [c.id for c in load_controls()]


def today() -> date:
    return datetime.now(timezone.utc).date()


@pytest.fixture
def estate(tmp_path: Path) -> SnapshotBuilder:
    snap = compliant(tmp_path / "estate.db")
    snap.add_model(LEGACY, tags={"team": "legacy", "env": "prod"})
    snap.add_model(HR, region="eu-west-1")
    return snap


@pytest.fixture
def db(estate: SnapshotBuilder) -> Path:
    return estate.path


@pytest.fixture
def error_db(estate: SnapshotBuilder) -> Path:
    estate.add_error(table_name=MODELS, operation="ListCustomModels", region="ap-south-1")
    return estate.path


def entry(**keys) -> dict:
    return {"control": SEED, "resource": "*", "reason": "Accepted by the risk board.", "expires": FAR, **keys}


def write(tmp_path: Path, entries: list, *, name: str = "exceptions.yaml", raw: str | None = None) -> Path:
    path = tmp_path / name
    if raw is not None:
        path.write_text(raw, encoding="utf-8")
    elif name.endswith(".json"):
        path.write_text(json.dumps({"exceptions": entries}), encoding="utf-8")
    else:
        import yaml

        path.write_text(yaml.safe_dump({"exceptions": entries}), encoding="utf-8")
    return path


def check_json(capsys, db: Path, *args) -> tuple[int, list[dict], str]:
    code, out, err = cli(capsys, "--db", db, "check", "--output", "json", *args)
    return code, json.loads(out) if out.strip() else [], err


def muted(rows: list[dict]) -> set[tuple[str, str]]:
    return {(r["control_id"], r["resource"]) for r in rows if r["muted"]}


# --- what an entry matches --------------------------------------------------------------------


def test_without_exceptions_both_models_alarm(capsys, db: Path) -> None:
    code, rows, _ = check_json(capsys, db)
    assert code == 1
    assert {r["resource"] for r in rows if r["status"] == "alarm"} == {LEGACY_ARN, HR_ARN}
    assert all(r["muted"] == 0 and r["mute_reason"] is None for r in rows)


@pytest.mark.parametrize("keys", [
    {"resource": LEGACY_ARN},  # a control id and an exact ARN
    {"control": "bedrock_custom_model_*", "resource": "*:custom-model/legacy-*"},  # globs
    {"region": "us-east-*"},
    {"account": ACCOUNT, "region": "us-east-1", "resource": "arn:aws:bedrock:*"},
    {"tags": {"team": "legacy"}},
    {"tags": {"team": "legacy", "env": "prod"}},
], ids=["exact", "globs", "region", "account", "tag", "tags"])
def test_each_key_narrows_what_is_muted(capsys, tmp_path: Path, db: Path, keys: dict) -> None:
    code, rows, err = check_json(capsys, db, "--exceptions", write(tmp_path, [entry(**keys)]))
    assert muted(rows) == {(SEED, LEGACY_ARN)}, err
    assert code == 1  # the other model still alarms
    (row,) = [r for r in rows if r["muted"]]
    assert row["status"] == "alarm"  # a muted finding keeps its status


@pytest.mark.parametrize("keys", [
    {"control": USABLE},  # the model's alarm is in another control
    {"control": "bedrock_imported_*"},
    {"resource": "*:custom-model/nobody"},
    {"account": FOREIGN_ACCOUNT},
    {"region": "ap-*"},
    {"tags": {"team": "platform"}},
    {"tags": {"team": "legacy", "env": "dev"}},  # every tag must match
    {"status": "info"},
], ids=["other-control", "control-glob", "resource", "account", "region", "tag", "one-tag-differs", "status"])
def test_an_entry_that_does_not_match_mutes_nothing(capsys, tmp_path: Path, db: Path, keys: dict) -> None:
    code, rows, _ = check_json(capsys, db, "--exceptions", write(tmp_path, [entry(**keys)]))
    assert code == 1 and muted(rows) == set()


def test_muting_every_alarm_passes_the_check(capsys, tmp_path: Path, db: Path) -> None:
    path = write(tmp_path, [entry(owner="ml-platform", ticket="SEC-1234")])
    code, rows, err = check_json(capsys, db, "--exceptions", path)
    assert code == 0, err
    assert muted(rows) == {(SEED, LEGACY_ARN), (SEED, HR_ARN)}
    reason = next(r["mute_reason"] for r in rows if r["muted"])
    assert reason == f"Accepted by the risk board. (owner: ml-platform; ticket: SEC-1234; accepted until {FAR})"
    assert "Summary: total 14, ok 6, alarm 2 (2 muted), info 0, skip 6, error 0" in err


def test_ok_and_skip_findings_are_not_muted_by_default(capsys, tmp_path: Path, db: Path) -> None:
    path = write(tmp_path, [entry(control="*")])
    _, rows, _ = check_json(capsys, db, "--exceptions", path)
    assert {r["status"] for r in rows if r["muted"]} == {"alarm"}
    assert any(r["status"] in ("ok", "skip") and r["resource"] == LEGACY_ARN and not r["muted"] for r in rows)


def test_tags_are_read_from_the_snapshot_tables_of_any_resource(capsys, tmp_path: Path, estate: SnapshotBuilder) -> None:
    # The job control's rows carry no tags column: the job's own table has them.
    estate.add_job("legacy-ft", tags={"team": "legacy"})
    path = write(tmp_path, [entry(control=JOB_CMK, tags={"team": "legacy"})])
    _, rows, _ = check_json(capsys, estate.path, "--exceptions", path)
    assert muted(rows) == {(JOB_CMK, f"arn:aws:bedrock:us-east-1:{ACCOUNT}:model-customization-job/legacy-ft")}


def test_the_first_matching_entry_is_the_one_named(capsys, tmp_path: Path, db: Path) -> None:
    path = write(tmp_path, [entry(resource=LEGACY_ARN, reason="First."), entry(reason="Second.")])
    _, rows, _ = check_json(capsys, db, "--exceptions", path)
    reasons = {r["resource"]: r["mute_reason"] for r in rows if r["muted"]}
    assert reasons[LEGACY_ARN].startswith("First.") and reasons[HR_ARN].startswith("Second.")


# --- tags are the resource owner's word: tag_keys_trusted ---------------------------------------


def write_trusting(tmp_path: Path, entries: list, trusted: list | None, name: str = "exceptions.yaml") -> Path:
    import yaml

    document = {"exceptions": entries} if trusted is None else {"tag_keys_trusted": trusted, "exceptions": entries}
    path = tmp_path / name
    path.write_text(yaml.safe_dump(document, sort_keys=False), encoding="utf-8")
    return path


def warnings_of(err: str) -> list[str]:
    return [line for line in err.splitlines() if line.startswith("bedrock-sql: warning:")]


def test_a_tag_matched_entry_without_tag_keys_trusted_mutes_and_warns_once(capsys, tmp_path: Path, db: Path) -> None:
    """Backward compatible: it still mutes; but the run says, once, that whoever can tag earns it."""
    path = write(tmp_path, [entry(tags={"team": "legacy"}), entry(tags={"env": "prod"}, reason="Prod."),
                            entry(resource=HR_ARN)])
    code, rows, err = check_json(capsys, db, "--exceptions", path)
    assert code == 0 and muted(rows) == {(SEED, LEGACY_ARN), (SEED, HR_ARN)}, err
    (warning,) = warnings_of(err)  # one line for the file, however many such entries
    assert "entries 1, 2 match by tag (env, team)" in warning, warning
    assert "anyone who can tag a resource" in warning and "tag_keys_trusted" in warning
    reason = next(r["mute_reason"] for r in rows if r["resource"] == LEGACY_ARN and r["muted"])
    assert "matched by tag team=legacy" in reason, reason  # the evidence says on whose word it is muted


def test_an_entry_without_tags_gives_no_tag_warning(capsys, tmp_path: Path, db: Path) -> None:
    code, rows, err = check_json(capsys, db, "--exceptions", write(tmp_path, [entry(resource=LEGACY_ARN)]))
    assert code == 1 and muted(rows) == {(SEED, LEGACY_ARN)}
    assert warnings_of(err) == []
    assert "matched by tag" not in next(r["mute_reason"] for r in rows if r["muted"])


def test_a_tag_key_tag_keys_trusted_lists_mutes_without_a_warning(capsys, tmp_path: Path, db: Path) -> None:
    path = write_trusting(tmp_path, [entry(tags={"team": "legacy"})], trusted=["team"])
    code, rows, err = check_json(capsys, db, "--exceptions", path)
    assert muted(rows) == {(SEED, LEGACY_ARN)} and code == 1, err
    assert warnings_of(err) == []


@pytest.mark.parametrize(("tags", "trusted"), [
    ({"team": "legacy"}, ["risk-accepted"]),  # the member account's own tag, not the one the board controls
    ({"team": "legacy", "env": "prod"}, ["env"]),  # one untrusted key is enough to refuse it
    ({"team": "legacy"}, []),  # [] trusts no tag key
], ids=["other-key", "one-key-untrusted", "none-trusted"])
def test_an_entry_matching_by_an_untrusted_tag_key_mutes_nothing_and_says_so(
    capsys, tmp_path: Path, db: Path, tags: dict, trusted: list
) -> None:
    path = write_trusting(tmp_path, [entry(tags=tags), entry(resource=HR_ARN, reason="Board decision.")], trusted)
    code, rows, err = check_json(capsys, db, "--exceptions", path)
    assert muted(rows) == {(SEED, HR_ARN)}, err  # the entry without tags is untouched
    assert code == 1  # the legacy model's alarm counts
    (warning,) = warnings_of(err)
    assert f"entry 1 (control {SEED}) mutes nothing: it matches by tag key 'team'" in warning, warning
    assert "tag_keys_trusted does not list" in warning and str(path) in warning
    loaded = load_exceptions(path, CONTROL_IDS)
    assert [e.number for e in loaded.untrusted] == [1] and [e.number for e in loaded.active] == [2]


def test_tag_keys_trusted_holds_in_json_and_for_diff(capsys, tmp_path: Path, db: Path) -> None:
    path = write_trusting(tmp_path, [], trusted=None, name="e.json")
    path.write_text(json.dumps({"tag_keys_trusted": ["risk-accepted"], "exceptions": [entry(tags={"team": "legacy"})]}))
    code, rows, err = check_json(capsys, db, "--exceptions", path)
    assert code == 1 and muted(rows) == set() and len(warnings_of(err)) == 1
    code, _, err = cli(capsys, "diff", db, db, "-o", "json", "--exceptions", path)
    assert code == 0 and "mutes nothing: it matches by tag key 'team'" in err, err


def test_an_expired_untrusted_entry_warns_only_that_it_expired(capsys, tmp_path: Path, db: Path) -> None:
    yesterday = (today() - timedelta(days=1)).isoformat()
    path = write_trusting(tmp_path, [entry(tags={"team": "legacy"}, expires=yesterday)], trusted=["risk-accepted"])
    _, rows, err = check_json(capsys, db, "--exceptions", path)
    (warning,) = warnings_of(err)
    assert "expired" in warning and muted(rows) == set()


# --- errors: accepted only when named ------------------------------------------------------------


def test_an_error_is_not_muted_by_an_entry_that_does_not_name_it(capsys, tmp_path: Path, error_db: Path) -> None:
    code, rows, _ = check_json(capsys, error_db, "--exceptions", write(tmp_path, [entry(control="*")]))
    assert code == 2
    assert [r for r in rows if r["status"] == "error"] and not any(r["muted"] for r in rows if r["status"] == "error")


def test_an_entry_naming_error_mutes_it_and_it_no_longer_fails(capsys, tmp_path: Path, error_db: Path) -> None:
    entries = [entry(control="*"), entry(control="*", resource=f"{ACCOUNT}/ap-south-1", status=["error"])]
    code, rows, err = check_json(capsys, error_db, "--exceptions", write(tmp_path, entries))
    assert code == 0, err
    errors = [r for r in rows if r["status"] == "error"]
    assert errors and all(r["muted"] for r in errors)
    assert "error 4 (4 muted)" in err


# --- expiry ---------------------------------------------------------------------------------


def test_an_expired_entry_mutes_nothing_warns_once_and_is_counted(capsys, tmp_path: Path, db: Path) -> None:
    yesterday = (today() - timedelta(days=1)).isoformat()
    path = write(tmp_path, [entry(expires=yesterday, resource=LEGACY_ARN, owner="ml-platform", ticket="SEC-9")])
    code, rows, err = check_json(capsys, db, "--exceptions", path)
    assert code == 1 and muted(rows) == set()
    warnings = [line for line in err.splitlines() if line.startswith("bedrock-sql: warning:")]
    assert len(warnings) == 1
    assert all(word in warnings[0] for word in ("entry 1", SEED, "expired", yesterday,
                                                "Accepted by the risk board.", "ml-platform", "SEC-9"))
    assert "; 1 exception expired;" in err.splitlines()[-1]


def control(control_id: str) -> Control:
    return Control(control_id, "t", "high", "d", "", (), "SELECT 1", "test")


def test_an_entry_is_valid_through_its_expiry_day(tmp_path: Path) -> None:
    path = write(tmp_path, [entry(expires="2026-11-28")])
    on_the_day = load_exceptions(path, CONTROL_IDS, today=date(2026, 11, 28))
    assert len(on_the_day.active) == 1 and not on_the_day.expired
    the_day_after = load_exceptions(path, CONTROL_IDS, today=date(2026, 11, 29))
    assert not the_day_after.active and len(the_day_after.expired) == 1


def test_yaml_dates_and_quoted_dates_are_both_read(tmp_path: Path) -> None:
    path = write(tmp_path, [], raw=(
        "exceptions:\n"
        f"  - {{control: {SEED}, resource: '*', reason: r, expires: 2030-01-31}}\n"
        f"  - {{control: {SEED}, resource: '*', reason: r, expires: '2030-01-31', account: 123456789012}}\n"
    ))
    loaded = load_exceptions(path, CONTROL_IDS, today=date(2026, 1, 1))
    assert [e.expires for e in loaded.active] == [date(2030, 1, 31)] * 2
    assert loaded.active[1].account == "123456789012"  # YAML's number, taken back as an ID


# --- malformed files: one line, exit 2, naming the entry --------------------------------------------


@pytest.mark.parametrize("keys,words", [
    ({"reason": None}, ["entry 1", SEED, "reason"]),
    ({"expires": None}, ["entry 1", SEED, "expires"]),
    ({"expires": "31/12/2026"}, ["entry 1", SEED, "YYYY-MM-DD"]),
    ({"expires": "2026-02-30"}, ["entry 1", SEED, "YYYY-MM-DD"]),
    ({"resources": "*"}, ["entry 1", SEED, "unknown key", "resources"]),
    ({"control": "no_such_control"}, ["entry 1", "no_such_control", "unknown control"]),
    ({"status": "failed"}, ["entry 1", SEED, "status", "failed"]),
    ({"tags": ["team"]}, ["entry 1", SEED, "tags"]),
    ({"reason": ""}, ["entry 1", SEED, "reason"]),
    ({"account": 12345}, ["entry 1", SEED, "account", "quote"]),  # what YAML makes of 0-leading digits
], ids=["no-reason", "no-expiry", "bad-date", "no-such-day", "unknown-key", "unknown-control", "bad-status",
        "bad-tags", "empty-reason", "account-number"])
def test_a_bad_entry_is_one_line_naming_it(capsys, tmp_path: Path, db: Path, keys: dict, words: list) -> None:
    good = entry()
    bad = {k: v for k, v in entry(**keys).items() if v is not None}
    path = write(tmp_path, [good, bad], name="exceptions.json")
    words = [w.replace("entry 1", "entry 2") for w in words]
    code, out, err = cli(capsys, "--db", db, "check", "--exceptions", path)
    assert code == 2 and out == ""
    one_error_line(err, str(path), *words)


@pytest.mark.parametrize("raw,words", [
    ("exceptions: [unclosed\n", ["not valid YAML"]),
    ("{\"exceptions\": [}", ["not valid JSON"]),
    ("- control: x\n", ["the key 'exceptions'"]),
    ("exceptions:\n  control: x\n", ["must be a list"]),
    ("exceptions:\n  - just a string\n", ["entry 1", "mapping"]),
    ("rules: []\n", ["the key 'exceptions'"]),
    ("exceptions: []\nrules: []\n", ["unknown top-level key", "rules"]),
    ("exceptions: []\ntag_keys_trusted: risk-accepted\n", ["tag_keys_trusted", "a list of tag keys"]),
    ("exceptions: []\ntag_keys_trusted:\n", ["tag_keys_trusted", "a list of tag keys"]),
    ("exceptions: []\ntag_keys_trusted: ['']\n", ["tag_keys_trusted", "a list of tag keys"]),
], ids=["yaml", "json", "top-level-list", "not-a-list", "entry-not-a-mapping", "wrong-key", "extra-key",
        "trusted-not-a-list", "trusted-null", "trusted-empty-key"])
def test_a_malformed_file_is_one_line(capsys, tmp_path: Path, db: Path, raw: str, words: list) -> None:
    path = write(tmp_path, [], name="exceptions", raw=raw)
    code, out, err = cli(capsys, "--db", db, "check", "--exceptions", path)
    assert code == 2 and out == ""
    one_error_line(err, *words)


def test_a_missing_file_is_one_line(capsys, tmp_path: Path, db: Path) -> None:
    code, out, err = cli(capsys, "--db", db, "check", "--exceptions", tmp_path / "absent.yaml")
    assert code == 2 and out == ""
    one_error_line(err, "absent.yaml")


def test_a_control_glob_matching_no_control_is_a_warning(capsys, tmp_path: Path, db: Path) -> None:
    path = write(tmp_path, [entry(control="sagemaker_*"), entry()])
    code, rows, err = check_json(capsys, db, "--exceptions", path)
    assert code == 0 and len(muted(rows)) == 2
    (warning,) = [line for line in err.splitlines() if "warning" in line]
    assert "entry 1" in warning and "sagemaker_*" in warning and "matches no control" in warning


def test_an_empty_list_mutes_nothing(capsys, tmp_path: Path, db: Path) -> None:
    code, rows, _ = check_json(capsys, db, "--exceptions", write(tmp_path, [], raw="exceptions: []\n"))
    assert code == 1 and muted(rows) == set()


# --- how to give the file -------------------------------------------------------------------


def test_json_files_and_yaml_files_mute_alike(capsys, tmp_path: Path, db: Path) -> None:
    results = []
    for name in ("e.json", "e.yaml", "e.yml", "e-without-extension"):
        _, rows, _ = check_json(capsys, db, "--exceptions", write(tmp_path, [entry(resource=LEGACY_ARN)], name=name))
        results.append(muted(rows))
    assert results == [{(SEED, LEGACY_ARN)}] * 4


def test_the_environment_variable_names_the_file(capsys, monkeypatch, tmp_path: Path, db: Path) -> None:
    monkeypatch.setenv("BEDROCK_SQL_EXCEPTIONS", str(write(tmp_path, [entry()])))
    code, rows, _ = check_json(capsys, db)
    assert code == 0 and len(muted(rows)) == 2
    # The option wins over the variable.
    code, rows, _ = check_json(capsys, db, "--exceptions", write(tmp_path, [entry(resource=HR_ARN)], name="o.yaml"))
    assert code == 1 and muted(rows) == {(SEED, HR_ARN)}


# --- every format says so -----------------------------------------------------------------------


@pytest.fixture
def muted_legacy(tmp_path: Path) -> Path:
    return write(tmp_path, [entry(resource=LEGACY_ARN, owner="ml-platform")])


def test_csv_json_and_jsonl_rows_always_carry_muted_and_mute_reason(capsys, tmp_path: Path, db: Path,
                                                                   muted_legacy: Path) -> None:
    exports = {ext: tmp_path / f"out.{ext}" for ext in ("csv", "json", "jsonl")}
    code, _, _ = cli(capsys, "--db", db, "check", "--exceptions", muted_legacy,
                     *(arg for path in exports.values() for arg in ("--export", path)))
    assert code == 1
    csv_rows = list(csv.DictReader(io.StringIO(exports["csv"].read_text())))
    json_rows = json.loads(exports["json"].read_text())
    jsonl_rows = [json.loads(line) for line in exports["jsonl"].read_text().splitlines()]
    for rows, no_reason in ((csv_rows, ""), (json_rows, None), (jsonl_rows, None)):
        assert len(rows) == 14
        for row in rows:
            assert "muted" in row and "mute_reason" in row
            is_legacy = (row["control_id"], row["resource"]) == (SEED, LEGACY_ARN)
            assert str(row["muted"]) == ("1" if is_legacy else "0")
            assert (row["mute_reason"] or "").startswith("Accepted by") if is_legacy else row["mute_reason"] == no_reason


def test_asff_suppresses_a_muted_finding_with_the_reason_in_a_note(capsys, db: Path, muted_legacy: Path) -> None:
    code, out, _ = cli(capsys, "--db", db, "check", SEED, "--output", "asff", "--exceptions", muted_legacy)
    assert code == 1
    items = {item["Resources"][0]["Id"]: item for item in json.loads(out)}
    legacy, hr = items[LEGACY_ARN], items[HR_ARN]
    assert legacy["Workflow"] == {"Status": "SUPPRESSED"}
    assert legacy["Compliance"]["Status"] == "FAILED"  # the risk is accepted, not gone
    assert legacy["Note"]["Text"].startswith("Accepted exception: Accepted by the risk board. (owner: ml-platform")
    assert legacy["Note"]["UpdatedBy"] == "bedrock-sql" and legacy["Note"]["UpdatedAt"] == legacy["UpdatedAt"]
    assert hr["Workflow"] == {"Status": "NEW"} and "Note" not in hr
    for item in (legacy, hr):
        assert asff_problems(item) == []


def test_ocsf_marks_a_muted_finding_suppressed(capsys, db: Path, muted_legacy: Path) -> None:
    code, out, _ = cli(capsys, "--db", db, "check", SEED, "--output", "ocsf", "--exceptions", muted_legacy)
    assert code == 1
    events = {event["resources"][0]["uid"]: event for event in json.loads(out)}
    legacy, hr = events[LEGACY_ARN], events[HR_ARN]
    assert (legacy["status_id"], legacy["status"]) == (3, "Suppressed")
    assert legacy["status_detail"].startswith("Accepted exception: Accepted by the risk board.")
    assert legacy["compliance"]["status_id"] == 3  # Fail: the finding itself stands
    assert (hr["status_id"], hr["status"]) == (1, "New")

    from py_ocsf_models.events.findings.compliance_finding import ComplianceFinding

    for event in events.values():
        ComplianceFinding.model_validate(event)


def test_table_brief_and_markdown_show_muted_findings_distinctly(capsys, db: Path, muted_legacy: Path) -> None:
    code, out, _ = cli(capsys, "--db", db, "check", SEED, "--exceptions", muted_legacy)
    assert code == 1
    assert "2 alarm (1 muted)" in out
    legacy_line = next(line for line in out.splitlines() if LEGACY_ARN in line)
    assert "ALARM (muted)" in legacy_line and "[accepted: Accepted by the risk board." in legacy_line
    hr_line = next(line for line in out.splitlines() if HR_ARN in line)
    assert "muted" not in hr_line
    assert "alarm 2 (1 muted)" in out.splitlines()[-1]

    code, out, _ = cli(capsys, "--db", db, "check", SEED, "--output", "brief", "--exceptions", muted_legacy)
    assert any(line.startswith("ALARM (muted)") and LEGACY_ARN in line and "[accepted:" in line
               for line in out.splitlines())
    assert any(line.startswith("ALARM ") and HR_ARN in line and "muted" not in line for line in out.splitlines())

    code, out, _ = cli(capsys, "--db", db, "check", SEED, "--output", "markdown", "--exceptions", muted_legacy)
    legacy_row = next(line for line in out.splitlines() if LEGACY_ARN in line)
    assert "| alarm (muted) |" in legacy_row


def test_a_muted_finding_object_keeps_everything_else(tmp_path: Path) -> None:
    from bedrock_sql.exceptions import Muter

    loaded = load_exceptions(write(tmp_path, [entry()]), CONTROL_IDS)

    class NoTags:
        def of(self, arn):  # an entry without tags never asks
            raise AssertionError(arn)

    finding = Finding(control(SEED), LEGACY_ARN, "alarm", "r.", ACCOUNT, "us-east-1", {"model_name": LEGACY})
    result = Muter(loaded.active, NoTags()).apply(finding)
    assert result.muted == 1 and result.mute_reason.startswith("Accepted by the risk board.")
    assert (result.status, result.reason, result.dimensions) == (finding.status, finding.reason, finding.dimensions)
    with pytest.raises(UserError):
        load_exceptions(write(tmp_path, [entry(control="nope")], name="bad.yaml"), CONTROL_IDS)
