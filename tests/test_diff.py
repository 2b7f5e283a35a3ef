"""`bedrock-sql diff OLD NEW`: what changed between two snapshots.

Most tests compare two hand-built snapshots of one changed estate (fast, every case exact);
one collects the demo estate from moto, changes the estate there and collects again.
"""

from __future__ import annotations

import csv
import io
import json
import sqlite3
from pathlib import Path

import pytest

from bedrock_sql.diff_changes import CHANGES, control_change, inventory_change, listed_in
from helpers import run_main
from snapshot_builder import ACCOUNT, MODELS, REGION, ROTATION, SEED, USABLE, SnapshotBuilder

EU = "eu-west-1"
OTHER_ACCOUNT = "210987654321"
OLD_TIME = "2026-10-01T08:00:00Z"
NEW_TIME = "2026-11-28T12:00:00Z"


def model_arn(name: str, region: str = REGION, account: str = ACCOUNT) -> str:
    return f"arn:aws:bedrock:{region}:{account}:custom-model/{name}"


class Estate:
    """The same keys (by ARN) in OLD and NEW: a key's state is what differs."""

    CMK = "11111111-1111-1111-1111-111111111111"
    LEGACY = "22222222-2222-2222-2222-222222222222"
    ROTATED = "33333333-3333-3333-3333-333333333333"
    EU_CMK = "44444444-4444-4444-4444-444444444444"
    UNUSED = "55555555-5555-5555-5555-555555555555"

    def __init__(self, path: Path, *, when: str, regions=(REGION, EU), accounts=(ACCOUNT,)):
        self.snap = SnapshotBuilder(path)
        self.snap.add_run(finished_at=when, started_at=when, regions=list(regions), accounts=list(accounts))

    def key(self, key_id: str, alias: str, region: str = REGION, **cols) -> str:
        return self.snap.add_key(alias, id=key_id, region=region, **cols)["arn"]


@pytest.fixture
def snapshots(tmp_path: Path) -> tuple[Path, Path]:
    """OLD (last audit) and NEW (today) of an estate in which, by NEW:

    fixed-model got a CMK; new-model appeared without one; deleted-model is gone; the legacy
    key was disabled; the rotated key's rotation was turned off; the custom models of
    eu-west-1 could not be listed; steady-model did not change.
    """
    old = Estate(tmp_path / "old.db", when=OLD_TIME)
    cmk = old.key(Estate.CMK, "alias/models")
    legacy = old.key(Estate.LEGACY, "alias/legacy")
    rotated = old.key(Estate.ROTATED, "alias/rotated")
    eu_cmk = old.key(Estate.EU_CMK, "alias/models", region=EU)
    old.key(Estate.UNUSED, "alias/s3-logs", key_state="Disabled")  # no model uses it: no concern here
    old.snap.add_model("steady-model", model_kms_key_arn=cmk)
    old.snap.add_model("fixed-model")
    old.snap.add_model("deleted-model")
    old.snap.add_model("legacy-model", model_kms_key_arn=legacy)
    old.snap.add_model("rotation-model", model_kms_key_arn=rotated)
    old.snap.add_model("eu-model", region=EU, model_kms_key_arn=eu_cmk)

    new = Estate(tmp_path / "new.db", when=NEW_TIME)
    cmk = new.key(Estate.CMK, "alias/models")
    legacy = new.key(Estate.LEGACY, "alias/legacy", key_state="Disabled")
    rotated = new.key(Estate.ROTATED, "alias/rotated", key_rotation_enabled=0)
    new.key(Estate.EU_CMK, "alias/models", region=EU)
    new.key(Estate.UNUSED, "alias/s3-logs")  # enabled again: still no concern
    new.snap.add_model("steady-model", model_kms_key_arn=cmk)
    new.snap.add_model("fixed-model", model_kms_key_arn=cmk)
    new.snap.add_model("new-model")
    new.snap.add_model("legacy-model", model_kms_key_arn=legacy)
    new.snap.add_model("rotation-model", model_kms_key_arn=rotated)
    new.snap.add_error(table_name=MODELS, operation="ListCustomModels", region=EU)  # eu-model unseen
    return old.snap.path, new.snap.path


def diff(capsys, *args) -> tuple[int, str, str]:
    return run_main(capsys, "diff", *args)


def rows_of(capsys, old: Path, new: Path, *args) -> list[dict]:
    code, out, err = diff(capsys, old, new, "-o", "json", *args)
    assert code in (0, 1), err
    return json.loads(out)


def row(rows: list[dict], control: str, resource: str) -> dict:
    matches = [r for r in rows if r["control"] == control and r["resource"] == resource]
    assert len(matches) == 1, (control, resource, matches)
    return matches[0]


def changes(rows: list[dict], control: str, resource: str) -> tuple:
    found = row(rows, control, resource)
    return found["before"], found["after"], found["change"]


# --- what each pair means -------------------------------------------------------------------


@pytest.mark.parametrize(
    ("before", "after", "flags", "expected"),
    [
        ("alarm", "ok", {}, "fixed"),
        ("alarm", "skip", {}, "fixed"),
        ("alarm", "info", {}, "fixed"),  # e.g. made again with a key in another account
        ("ok", "alarm", {}, "regressed"),
        ("info", "alarm", {}, "regressed"),
        (None, "alarm", {}, "new alarm"),
        ("error", "alarm", {}, "new alarm"),
        (None, "alarm", {"old_unlisted": True}, "new alarm"),
        ("alarm", "alarm", {}, "still failing"),
        ("error", "error", {}, "still failing"),
        ("ok", "error", {}, "error appeared"),
        ("alarm", "error", {}, "error appeared"),
        (None, "error", {}, "error appeared"),
        ("error", "ok", {}, "error cleared"),
        (None, "ok", {"old_unlisted": True}, "error cleared"),
        (None, "ok", {}, "resource added"),
        (None, "info", {}, "resource added"),
        ("ok", None, {}, "resource removed"),
        ("alarm", None, {}, "resource removed"),
        ("error", None, {}, "error cleared"),  # e.g. the row of a failed listing, once it works
        ("ok", None, {"new_unlisted": True}, "unknown"),
        ("ok", None, {"in_scope": False}, "out of scope"),
        (None, "alarm", {"in_scope": False}, "out of scope"),
        ("ok", "info", {}, "status changed"),
        ("ok", "ok", {}, "unchanged"),
    ],
)
def test_control_change(before, after, flags, expected) -> None:
    assert control_change(before, after, **flags) == expected
    assert expected in CHANGES


@pytest.mark.parametrize(
    ("facet", "before", "after", "flags", "expected"),
    [
        ("key", "Enabled", "Disabled", {}, "key disabled"),
        ("key", "Disabled", "Enabled", {}, "key enabled"),
        ("key", "Enabled", "PendingDeletion", {}, "key pending deletion"),
        ("key", "PendingDeletion", "Disabled", {}, "key deletion cancelled"),
        ("key", "Enabled", "Unavailable", {}, "key state changed"),
        ("key", "Enabled", None, {}, "unknown"),  # its state could not be read in NEW
        ("rotation", "on", "off", {}, "rotation turned off"),
        ("rotation", "off", "on", {}, "rotation turned on"),
        ("model", "Bedrock-owned key", "arn:aws:kms:us-east-1:1:key/k", {}, "model key changed"),
        ("key", "Enabled", "Enabled", {}, "unchanged"),
        ("key", "Enabled", None, {"in_new": False}, "key deleted"),
        ("model", None, "Bedrock-owned key", {"in_old": False}, "model added"),
        ("model", "Bedrock-owned key", None, {"in_new": False, "new_unlisted": True}, "unknown"),
        ("model", "Bedrock-owned key", None, {"in_new": False, "in_scope": False}, "out of scope"),
        ("rotation", "on", None, {"in_new": False}, None),
        ("rotation", "on", "on", {}, None),  # the key's state row is its one unchanged row
    ],
)
def test_inventory_change(facet, before, after, flags, expected) -> None:
    flags = {"in_old": True, "in_new": True, **flags}
    assert inventory_change(facet, before, after, **flags) == expected
    assert expected is None or expected in CHANGES


def test_listed_in_names_the_table_of_an_arn() -> None:
    assert listed_in(model_arn("m")) == "aws_bedrock_custom_model"
    assert listed_in("arn:aws:kms:us-east-1:123456789012:key/k") == "aws_kms_key"
    assert listed_in("arn:aws:bedrock:us-east-1:123456789012:model-customization-job/j") == (
        "aws_bedrock_model_customization_job")
    assert listed_in("123456789012/us-east-1") is None  # a failed listing's own row
    assert listed_in("arn:aws:s3:::bucket") is None


# --- the changed estate -----------------------------------------------------------------------


def test_diff_names_what_was_fixed_and_what_regressed(capsys, snapshots) -> None:
    old, new = snapshots
    rows = rows_of(capsys, old, new)
    assert changes(rows, SEED, model_arn("fixed-model")) == ("alarm", "ok", "fixed")
    assert changes(rows, SEED, model_arn("new-model")) == (None, "alarm", "new alarm")
    assert changes(rows, SEED, model_arn("deleted-model")) == ("alarm", None, "resource removed")
    assert changes(rows, USABLE, model_arn("legacy-model")) == ("ok", "alarm", "regressed")
    assert changes(rows, ROTATION, model_arn("rotation-model")) == ("ok", "alarm", "regressed")
    # Unchanged rows are hidden without --all.
    assert not [r for r in rows if r["resource"] == model_arn("steady-model")]
    assert {r["change"] for r in rows}.isdisjoint({"unchanged", "out of scope"})


def test_a_model_whose_key_moved_to_another_account_is_fixed_not_regressed(capsys, tmp_path) -> None:
    """alarm -> info: a model on the Bedrock-owned key made again with a key of another account
    (which this audit cannot inspect) is fixed; --fail-on regressed does not fire on it."""
    old = Estate(tmp_path / "old.db", when=OLD_TIME, regions=(REGION,))
    old.snap.add_model("moved-model")
    new = Estate(tmp_path / "new.db", when=NEW_TIME, regions=(REGION,))
    foreign = f"arn:aws:kms:{REGION}:{OTHER_ACCOUNT}:key/{Estate.CMK}"
    new.snap.add_model("moved-model", model_kms_key_arn=foreign)
    rows = rows_of(capsys, old.snap.path, new.snap.path)
    assert changes(rows, SEED, model_arn("moved-model")) == ("alarm", "info", "fixed")
    assert OTHER_ACCOUNT in row(rows, SEED, model_arn("moved-model"))["reason"]
    assert changes(rows, "inventory", model_arn("moved-model")) == ("Bedrock-owned key", foreign, "model key changed")
    assert not [r for r in rows if r["change"] == "regressed"], rows
    code, _, err = diff(capsys, old.snap.path, new.snap.path, "-o", "csv", "--fail-on", "regressed")
    assert code == 0, err


def test_inventory_rows_name_key_and_model_changes(capsys, snapshots) -> None:
    old, new = snapshots
    rows = rows_of(capsys, old, new)
    legacy = f"arn:aws:kms:{REGION}:{ACCOUNT}:key/{Estate.LEGACY}"
    rotated = f"arn:aws:kms:{REGION}:{ACCOUNT}:key/{Estate.ROTATED}"
    cmk = f"arn:aws:kms:{REGION}:{ACCOUNT}:key/{Estate.CMK}"
    inventory = [r for r in rows if r["control"] == "inventory"]
    assert changes(inventory, "inventory", legacy) == ("Enabled", "Disabled", "key disabled")
    assert changes(inventory, "inventory", rotated) == ("on", "off", "rotation turned off")
    assert changes(inventory, "inventory", model_arn("fixed-model")) == ("Bedrock-owned key", cmk, "model key changed")
    assert changes(inventory, "inventory", model_arn("deleted-model")) == ("Bedrock-owned key", None, "model deleted")
    assert changes(inventory, "inventory", model_arn("new-model")) == (None, "Bedrock-owned key", "model added")
    assert "alias/legacy" in row(inventory, "inventory", legacy)["reason"]
    # A key no model names is no concern of this audit, whatever happened to it.
    assert not [r for r in rows if r["resource"].endswith(Estate.UNUSED)]


def test_a_failed_listing_in_new_never_reads_as_removed(capsys, snapshots) -> None:
    old, new = snapshots
    rows = rows_of(capsys, old, new)
    eu_model = model_arn("eu-model", EU)
    before, after, change = changes(rows, SEED, eu_model)
    assert (before, after, change) == ("ok", None, "unknown")
    assert "could not list" in row(rows, SEED, eu_model)["reason"]
    assert changes(rows, "inventory", eu_model) == ("arn:aws:kms:eu-west-1:123456789012:key/" + Estate.EU_CMK, None,
                                                    "unknown")
    assert changes(rows, SEED, f"{ACCOUNT}/{EU}") == (None, "error", "error appeared")
    assert not [r for r in rows if r["resource"] == eu_model and r["change"] in ("resource removed", "model deleted")]


def test_only_the_listing_of_the_resources_table_makes_it_unknown(capsys, tmp_path) -> None:
    old = Estate(tmp_path / "old.db", when=OLD_TIME, regions=(REGION,))
    old.snap.add_model("gone")
    new = Estate(tmp_path / "new.db", when=NEW_TIME, regions=(REGION,))
    new.snap.add_error(table_name="aws_kms_key", operation="ListKeys")  # keys unseen, models listed
    folder = tmp_path / "mine"
    folder.mkdir()  # a control whose resources are no ARNs: any failed listing of their unit counts
    (folder / "by_name.sql").write_text(
        "-- id: models_by_name\n-- title: t\n-- severity: low\n-- description: d\n\n"
        "SELECT model_name AS resource, 'ok' AS status, 'fine.' AS reason, account_id, region\n"
        "FROM aws_bedrock_custom_model\n",
        encoding="utf-8",
    )
    rows = rows_of(capsys, old.snap.path, new.snap.path, "--queries", folder)
    assert changes(rows, SEED, model_arn("gone")) == ("alarm", None, "resource removed")
    assert changes(rows, "inventory", model_arn("gone"))[2] == "model deleted"
    assert changes(rows, "models_by_name", "gone") == ("ok", None, "unknown")
    assert "aws_kms_key: ListKeys failed with AccessDeniedException" in row(rows, "models_by_name", "gone")["reason"]


def test_a_failed_listing_in_old_never_reads_as_added(capsys, tmp_path) -> None:
    old = Estate(tmp_path / "old.db", when=OLD_TIME, regions=(REGION,))
    old.snap.add_error(table_name=MODELS, operation="ListCustomModels")
    new = Estate(tmp_path / "new.db", when=NEW_TIME, regions=(REGION,))
    cmk = new.key(Estate.CMK, "alias/models")
    new.snap.add_model("unseen-alarm")
    new.snap.add_model("unseen-ok", model_kms_key_arn=cmk)
    rows = rows_of(capsys, old.snap.path, new.snap.path)
    # An alarm OLD did not report is new, whatever the reason it was not reported.
    assert changes(rows, SEED, model_arn("unseen-alarm")) == (None, "alarm", "new alarm")
    ok = row(rows, SEED, model_arn("unseen-ok"))
    assert (ok["before"], ok["after"], ok["change"]) == (None, "ok", "error cleared")
    assert "The old snapshot could not list" in ok["reason"]
    assert changes(rows, "inventory", model_arn("unseen-ok"))[2] == "unknown"
    assert changes(rows, SEED, f"{ACCOUNT}/{REGION}") == ("error", None, "error cleared")


def test_all_shows_unchanged_rows(capsys, snapshots) -> None:
    old, new = snapshots
    rows = rows_of(capsys, old, new, "--all")
    assert changes(rows, SEED, model_arn("steady-model")) == ("ok", "ok", "unchanged")
    assert changes(rows, "inventory", f"arn:aws:kms:{REGION}:{ACCOUNT}:key/{Estate.CMK}") == (
        "Enabled", "Enabled", "unchanged")
    hidden = rows_of(capsys, old, new)
    assert len(hidden) == len([r for r in rows if r["change"] not in ("unchanged", "out of scope")])


def test_rows_come_worst_first(capsys, snapshots) -> None:
    old, new = snapshots
    rows = rows_of(capsys, old, new, "--all")
    ranks = [CHANGES.index(r["change"]) for r in rows]
    assert ranks == sorted(ranks)
    assert rows[0]["change"] == "regressed" and rows[-1]["change"] == "unchanged"


def test_table_is_grouped_by_change_worst_first(capsys, snapshots) -> None:
    old, new = snapshots
    code, out, err = diff(capsys, old, new)
    assert code == 0 and err == ""
    headings = [line for line in out.splitlines() if line and line[0].isalpha() and not line.startswith("Diff:")]
    names = [heading.rsplit(" (", 1)[0] for heading in headings]
    assert names[:3] == ["regressed", "new alarm", "error appeared"]
    assert names.index("fixed") > names.index("key disabled")
    assert "unchanged" not in names
    assert "regressed (2)" in headings
    summary = out.splitlines()[-1]
    assert summary.startswith("Diff: ") and "regressed 2" in summary and "fixed 1" in summary
    assert f"OLD {old} collected {OLD_TIME}" in summary and f"NEW {new} collected {NEW_TIME}" in summary


@pytest.mark.parametrize("fmt", ["csv", "json", "jsonl"])
def test_machine_formats_put_only_data_on_stdout(capsys, snapshots, fmt) -> None:
    old, new = snapshots
    code, out, err = diff(capsys, old, new, "-o", fmt)
    assert code == 0
    if fmt == "csv":
        parsed = list(csv.DictReader(io.StringIO(out)))
    elif fmt == "json":
        parsed = json.loads(out)
    else:
        parsed = [json.loads(line) for line in out.splitlines()]
    assert list(parsed[0]) == ["control", "resource", "before", "after", "change", "account_id", "region", "reason",
                              "muted", "mute_reason"]
    assert any(r["change"] == "fixed" for r in parsed)
    # The summary (with both collection times) goes to stderr.
    assert err.startswith("Diff: ") and OLD_TIME in err and NEW_TIME in err


def test_markdown_names_both_snapshots(capsys, snapshots) -> None:
    old, new = snapshots
    code, out, _ = diff(capsys, old, new, "-o", "markdown")
    assert code == 0
    first = out.splitlines()[0]
    assert OLD_TIME in first and NEW_TIME in first
    assert "| control" in out and "| regressed" in out.replace("  ", " ")


@pytest.mark.parametrize(
    ("fail_on", "expected"),
    [((), 0), (("regressed",), 1), (("new-alarm",), 1), (("regressed", "new-alarm"), 1)],
)
def test_fail_on_sets_exit_1(capsys, snapshots, fail_on, expected) -> None:
    old, new = snapshots
    options = [arg for name in fail_on for arg in ("--fail-on", name)]
    code, _, _ = diff(capsys, old, new, "-o", "csv", *options)
    assert code == expected


def test_fail_on_without_such_rows_is_exit_0(capsys, snapshots) -> None:
    old, _ = snapshots
    code, _, err = diff(capsys, old, old, "--fail-on", "regressed", "--fail-on", "new-alarm")
    assert code == 0
    assert "same collect run" in err


def test_fail_on_new_alarm_only_counts_new_alarms(capsys, tmp_path) -> None:
    old = Estate(tmp_path / "old.db", when=OLD_TIME, regions=(REGION,))
    old.snap.add_model("m", model_kms_key_arn=old.key(Estate.CMK, "alias/models"))
    new = Estate(tmp_path / "new.db", when=NEW_TIME, regions=(REGION,))
    new.snap.add_model("m", model_kms_key_arn=new.key(Estate.CMK, "alias/models", key_state="Disabled"))
    assert diff(capsys, old.snap.path, new.snap.path, "--fail-on", "new-alarm")[0] == 0
    assert diff(capsys, old.snap.path, new.snap.path, "--fail-on", "regressed")[0] == 1


# --- scope ------------------------------------------------------------------------------------


def test_different_scopes_are_compared_with_a_note(capsys, tmp_path) -> None:
    old = Estate(tmp_path / "old.db", when=OLD_TIME, regions=(REGION,), accounts=(ACCOUNT, OTHER_ACCOUNT))
    old.snap.add_model("kept")
    old.snap.add_model("theirs", account_id=OTHER_ACCOUNT)
    new = Estate(tmp_path / "new.db", when=NEW_TIME, regions=(REGION, EU), accounts=(ACCOUNT,))
    new.snap.add_model("kept")
    new.snap.add_model("eu-only", region=EU)
    code, out, err = diff(capsys, old.snap.path, new.snap.path, "-o", "json", "--all")
    assert code == 0
    notes = [line for line in err.splitlines() if line.startswith("bedrock-sql: note:")]
    assert len(notes) == 1, err
    assert f"accounts only in OLD: {OTHER_ACCOUNT}" in notes[0] and f"regions only in NEW: {EU}" in notes[0]
    rows = json.loads(out)
    # Resources of units only one snapshot collected are neither added nor removed.
    assert changes(rows, SEED, model_arn("theirs", account=OTHER_ACCOUNT)) == ("alarm", None, "out of scope")
    assert changes(rows, SEED, model_arn("eu-only", EU)) == (None, "alarm", "out of scope")
    assert changes(rows, "inventory", model_arn("eu-only", EU))[2] == "out of scope"
    assert changes(rows, SEED, model_arn("kept")) == ("alarm", "alarm", "still failing")
    # Without --all they are hidden, and counted in the summary.
    code, out, err = diff(capsys, old.snap.path, new.snap.path, "-o", "json")
    assert [r for r in json.loads(out) if r["change"] == "out of scope"] == []
    assert "out of scope 10" in err  # 4 controls and the inventory, 2 models


def test_same_scope_gives_no_note(capsys, snapshots) -> None:
    old, new = snapshots
    _, _, err = diff(capsys, old, new, "-o", "csv")
    assert "note:" not in err


def test_swapped_snapshots_are_noted(capsys, snapshots) -> None:
    old, new = snapshots
    _, _, err = diff(capsys, new, old, "-o", "csv")
    assert "OLD was collected after NEW" in err


# --- controls ---------------------------------------------------------------------------------


def test_queries_dir_adds_controls_judged_by_their_worst_row(capsys, snapshots, tmp_path) -> None:
    old, new = snapshots
    folder = tmp_path / "mine"
    folder.mkdir()
    # Two rows per model: ok, plus alarm for models named fixed-model in NEW's time only.
    (folder / "twice.sql").write_text(
        "-- id: two_rows_per_model\n-- title: t\n-- severity: low\n-- description: d\n\n"
        "SELECT arn AS resource, 'ok' AS status, 'fine.' AS reason, account_id, region FROM aws_bedrock_custom_model\n"
        "UNION ALL\n"
        "SELECT arn, 'alarm', 'bad.', account_id, region FROM aws_bedrock_custom_model\n"
        "WHERE model_name = 'fixed-model' AND model_kms_key_arn IS NOT NULL\n",
        encoding="utf-8",
    )
    rows = rows_of(capsys, old, new, "--queries", folder)
    assert changes(rows, "two_rows_per_model", model_arn("fixed-model")) == ("ok", "alarm", "regressed")
    assert row(rows, "two_rows_per_model", model_arn("fixed-model"))["reason"] == "bad."


# --- unreadable input -------------------------------------------------------------------------


def _not_bedrock_sqlite(path: Path) -> Path:
    connection = sqlite3.connect(path)
    connection.execute("CREATE TABLE t(x)")
    connection.close()
    return path


@pytest.mark.parametrize(
    ("make", "message"),
    [
        (lambda p: p / "missing.db", "no such snapshot"),
        (lambda p: p, "no such snapshot"),  # a directory
        (lambda p: (p / "notes.txt").write_text("hello, not a database\n" * 10) and p / "notes.txt",
         "not a bedrock-sql snapshot"),
        (lambda p: (p / "empty.db").touch() or p / "empty.db", "not a bedrock-sql snapshot"),
        (lambda p: _not_bedrock_sqlite(p / "other.db"), "not a bedrock-sql snapshot"),
    ],
)
@pytest.mark.parametrize("position", ["OLD", "NEW"])
def test_unreadable_input_is_one_line_exit_2(capsys, snapshots, tmp_path, make, message, position) -> None:
    good, _ = snapshots
    bad = make(tmp_path)
    args = (bad, good) if position == "OLD" else (good, bad)
    code, out, err = diff(capsys, *args)
    assert code == 2 and out == ""
    assert err.startswith(f"bedrock-sql: error: {position} ") and message in err
    assert len(err.splitlines()) == 1 and "Traceback" not in err


def test_a_snapshot_without_a_run_is_refused(capsys, snapshots, tmp_path) -> None:
    good, _ = snapshots
    bare = SnapshotBuilder(tmp_path / "bare.db").path
    code, _, err = diff(capsys, good, bare)
    assert code == 2 and "NEW" in err and "no finished collect run" in err and len(err.splitlines()) == 1


def test_bad_option_is_exit_2(capsys, snapshots) -> None:
    old, new = snapshots
    code, _, err = diff(capsys, old, new, "--fail-on", "fixed")
    assert code == 2 and err.startswith("bedrock-sql: error:")


# --- through moto: collect, change the estate, collect again -----------------------------------


def test_diff_of_two_collects_of_a_changed_demo_estate(aws, capsys, tmp_path) -> None:
    from bedrock_sql import snapshot
    from bedrock_sql.estate import CMK, LEGACY_CMK, seed_demo_estate, seed_models
    from helpers import deny, fast_regions, region_of
    from moto.bedrock.models import bedrock_backends

    from bedrock_sql.accounts import resolve_scope
    from bedrock_sql.aws import AwsOptions

    regions = (REGION, EU)

    def scope():
        with fast_regions():
            return resolve_scope(AwsOptions(regions=regions))

    estate = seed_demo_estate(aws, regions=regions)
    old, new = tmp_path / "old.db", tmp_path / "new.db"
    assert snapshot.collect(scope(), old).status == "complete"

    cmk, legacy = estate.key(CMK, REGION), estate.key(LEGACY_CMK, REGION)
    kms, bedrock = aws.client("kms", region_name=REGION), aws.client("bedrock", region_name=REGION)
    fixed = estate.model("marketing-copy-v1", REGION)
    bedrock_backends[ACCOUNT][REGION].custom_models[fixed.model_name].model_kms_key_arn = cmk.arn  # re-made with a CMK
    (intern,) = seed_models(aws, REGION, 1, prefix="intern-notes")  # a new model on Bedrock's own key
    kms.disable_key(KeyId=legacy.key_id)
    kms.disable_key_rotation(KeyId=cmk.key_id)
    deleted = estate.model("hr-policy-qa-v1", REGION)
    bedrock.delete_custom_model(modelIdentifier=deleted.model_name)
    second = scope()
    deny(second, "bedrock", "ListCustomModels", when=lambda params, context: region_of(context) == EU)
    assert snapshot.collect(second, new).status == "partial"

    code, out, err = diff(capsys, old, new, "-o", "json", "--fail-on", "regressed")
    assert code == 1, err
    rows = json.loads(out)
    assert changes(rows, SEED, fixed.model_arn) == ("alarm", "ok", "fixed")
    assert changes(rows, SEED, intern.model_arn) == (None, "alarm", "new alarm")
    assert changes(rows, SEED, deleted.model_arn) == ("alarm", None, "resource removed")
    assert changes(rows, "inventory", deleted.model_arn)[2] == "model deleted"
    assert changes(rows, "inventory", legacy.arn) == ("Enabled", "Disabled", "key disabled")
    assert changes(rows, "inventory", cmk.arn) == ("on", "off", "rotation turned off")
    legal = estate.model("legal-corpus-base-v1", REGION)  # on the legacy key, now disabled
    assert changes(rows, USABLE, legal.model_arn) == ("ok", "alarm", "regressed")
    support = estate.model("support-chat-v3", REGION)  # on the CMK, whose rotation is now off
    assert changes(rows, ROTATION, support.model_arn) == ("ok", "alarm", "regressed")
    # eu-west-1's models could not be listed in NEW: unknown, never removed.
    for model in estate.models_in(EU):
        assert changes(rows, SEED, model.model_arn)[2] == "unknown"
    assert not [r for r in rows if r["region"] == EU and r["change"] in ("resource removed", "model deleted")]
    assert "note:" not in err


# --- a snapshot collected with --kms-keys needed (the default) -------------------------------


def test_a_key_the_new_snapshot_did_not_need_is_not_read_as_deleted(capsys, tmp_path: Path) -> None:
    """NEW holds only the keys its Bedrock resources name: a key whose last model is gone was
    not looked at, so it is neither deleted nor changed; a key a NEW model still names and
    that is missing there is really gone."""
    from bedrock_sql.kms_need import NOTE_NEEDED

    needed = json.dumps([NOTE_NEEDED.format(keys="1 key", units=1)])
    old = Estate(tmp_path / "old.db", when=OLD_TIME)
    retired = old.key(Estate.LEGACY, "alias/retired")
    vanished = old.key(Estate.CMK, "alias/vanished")
    old.snap.add_model("retired-model", model_kms_key_arn=retired)
    old.snap.add_model("kept-model", model_kms_key_arn=vanished)
    new = Estate(tmp_path / "new.db", when=NEW_TIME)
    new.snap.add_model("kept-model", model_kms_key_arn=vanished)  # its key could not be found
    with sqlite3.connect(new.snap.path) as db:
        db.execute("UPDATE bedrock_sql_runs SET notes = ?", (needed,))
    rows = rows_of(capsys, old.snap.path, new.snap.path, "--all")
    inventory = {(r["resource"], r["change"]) for r in rows if r["control"] == "inventory"}
    assert not any(resource == retired for resource, _ in inventory), inventory
    assert (vanished, "key deleted") in inventory
    assert (model_arn("retired-model"), "model deleted") in inventory


# --- accepted exceptions ------------------------------------------------------------------


def exceptions_file(tmp_path: Path, *entries: str) -> Path:
    path = tmp_path / "exceptions.yaml"
    path.write_text("exceptions:\n" + "".join(f"  - {entry}\n" for entry in entries))
    return path


def test_exceptions_mute_new_findings_and_fail_on_ignores_them(capsys, snapshots, tmp_path) -> None:
    old, new = snapshots
    accepted = exceptions_file(
        tmp_path,
        f"{{control: {SEED}, resource: '*:custom-model/new-model', reason: 'legacy pipeline, CHG-42', expires: 2099-01-01}}",
    )
    assert diff(capsys, old, new, "--fail-on", "new-alarm")[0] == 1  # without the file
    code, out, err = diff(capsys, old, new, "--fail-on", "new-alarm", "-o", "json", "--exceptions", accepted)
    assert code == 0, err
    rows = json.loads(out)
    muted = row(rows, SEED, model_arn("new-model"))
    assert (muted["change"], muted["after"], muted["muted"]) == ("new alarm", "alarm", 1)
    assert "legacy pipeline, CHG-42" in muted["mute_reason"]
    # Nothing else is muted: the entry names one resource; inventory rows never are.
    assert [r for r in rows if r["muted"]] == [muted]
    assert all(r["mute_reason"] is None for r in rows if r is not muted)
    assert "new alarm 1 (1 muted)" in err
    # --fail-on regressed still fails: the legacy key's disabling is not accepted.
    assert diff(capsys, old, new, "--fail-on", "regressed", "--exceptions", accepted)[0] == 1


def test_exceptions_from_the_environment(capsys, snapshots, tmp_path, monkeypatch) -> None:
    old, new = snapshots
    accepted = exceptions_file(tmp_path, f"{{control: {SEED}, resource: '*', reason: accepted, expires: 2099-01-01}}")
    monkeypatch.setenv("BEDROCK_SQL_EXCEPTIONS", str(accepted))
    assert diff(capsys, old, new, "--fail-on", "new-alarm")[0] == 0


def test_an_expired_exception_mutes_nothing_and_warns(capsys, snapshots, tmp_path) -> None:
    old, new = snapshots
    expired = exceptions_file(tmp_path, f"{{control: {SEED}, resource: '*', reason: old deal, expires: 2020-01-01}}")
    code, out, err = diff(capsys, old, new, "--fail-on", "new-alarm", "-o", "csv", "--exceptions", expired)
    assert code == 1
    assert "expired" in err and "warning" in err
    assert {r["muted"] for r in csv.DictReader(io.StringIO(out))} == {"0"}


def test_a_muted_row_says_so_in_the_table(capsys, snapshots, tmp_path) -> None:
    old, new = snapshots
    accepted = exceptions_file(
        tmp_path, f"{{control: {SEED}, resource: '*new-model', reason: 'ticket CHG-42', expires: 2099-01-01}}"
    )
    code, out, _ = diff(capsys, old, new, "--exceptions", accepted)
    assert code == 0
    assert "new alarm (1, 1 muted)" in out
    line = next(line for line in out.splitlines() if "new-model" in line and SEED in line)
    assert "alarm (muted)" in line and "ticket CHG-42" in line
    assert "mute_reason" in out
    # Without exceptions the table keeps its columns.
    _, plain, _ = diff(capsys, old, new)
    assert "mute_reason" not in plain and "(muted)" not in plain


def test_a_malformed_exceptions_file_is_one_line_exit_2(capsys, snapshots, tmp_path) -> None:
    old, new = snapshots
    bad = tmp_path / "bad.yaml"
    bad.write_text("exceptions:\n  control: x\n")
    code, out, err = diff(capsys, old, new, "--exceptions", bad)
    assert code == 2 and out == ""
    assert len(err.strip().splitlines()) == 1 and "must be a list" in err
