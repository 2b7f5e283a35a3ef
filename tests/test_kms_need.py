"""collect --kms-keys needed (the default) against --kms-keys all: the same verdicts, fewer calls.

In process (moto, the demo estate plus 20 keys no Bedrock resource names), and once over
HTTP through the CLI (the e2e estate)."""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path

import pytest

from bedrock_sql import snapshot
from bedrock_sql.accounts import resolve_scope
from bedrock_sql.aws import AwsOptions
from bedrock_sql.controls import bundled_controls, iter_findings, prepare_control, snapshot_run
from bedrock_sql.estate import create_key, seed_demo_estate, seed_models
from bedrock_sql.kms_need import KEY_REFERENCES, NOTE_ALL, every_key_collected
from bedrock_sql.providers import TABLES
from bedrock_sql.sql import snapshot_connection
from e2e_helpers import cli_env, run_cli
from helpers import ACCOUNT, REGIONS, World, deny, fast_regions, region_of, run_main, world  # noqa: F401

UNRELATED_KEYS = 20


@pytest.fixture(scope="module")
def estate(world: World):
    """The demo estate, 20 keys nobody names in its first region, and a region (the scratch
    one) whose models name their keys by alias ARN, by alias name and by key ID."""
    for n in range(UNRELATED_KEYS):
        create_key(world.session, REGIONS[0], description=f"unrelated {n}")
    region = next(world.scratch)
    forms = {}
    for form in ("alias_arn", "alias_name", "key_id"):
        key = create_key(world.session, region, alias=f"alias/by-{form.replace('_', '-')}")
        (model,) = seed_models(world.session, region, 1, key_arn=key.arn, prefix=f"by-{form.replace('_', '-')}")
        alias_arn = f"arn:aws:kms:{region}:{ACCOUNT}:{key.alias}"
        reference = {"alias_arn": alias_arn, "alias_name": key.alias, "key_id": key.key_id}[form]
        from moto.bedrock.models import bedrock_backends

        bedrock_backends[ACCOUNT][region].custom_models[model.model_name].model_kms_key_arn = reference
        forms[form] = (model.model_name, key.arn)
    return region, forms


def scope_for(regions):
    with fast_regions():
        return resolve_scope(AwsOptions(regions=tuple(regions)))


def collect(path: Path, regions, mode: str, prepare=None):
    scope = scope_for(regions)
    if prepare:
        prepare(scope)
    result = snapshot.collect(scope, path, kms_keys=mode)
    return scope, result


def verdicts(path: Path) -> set[tuple[str, str, str, str]]:
    """Every control's (control, resource, status, reason)."""
    found = set()
    with snapshot_connection(path) as connection:
        run = snapshot_run(connection)
        for control in bundled_controls():
            prepared = prepare_control(connection, control)
            found |= {(control.id, f.resource, f.status, f.reason) for f in iter_findings(connection, prepared, run)}
    return found


def calls(scope, operation: str, region: str | None = None) -> int:
    return sum(n for (_svc, op, reg), n in scope.factory.calls.items() if op == operation and region in (None, reg))


def column(path: Path, sql: str) -> list:
    with sqlite3.connect(path) as db:
        return [row[0] for row in db.execute(sql)]


@pytest.fixture(scope="module")
def both(estate, tmp_path_factory):
    """The estate collected both ways, with a region holding no Bedrock resource in scope."""
    folder = tmp_path_factory.mktemp("modes")
    region, _ = estate
    regions = (*REGIONS, region, "ap-south-1")
    return {mode: (folder / f"{mode}.db", *collect(folder / f"{mode}.db", regions, mode)) for mode in ("all", "needed")}


def test_every_key_column_of_a_provider_is_a_key_reference() -> None:
    named = {(t.name, c) for t in TABLES.values() if t.service == "bedrock" for c in t.column_names
             if c.endswith("kms_key_arn")}
    assert named == {(table, c) for table, columns in KEY_REFERENCES.items() for c in columns}


def test_both_modes_give_the_same_verdicts(both) -> None:
    (all_path, _, all_result), (needed_path, _, needed_result) = both["all"], both["needed"]
    assert all_result.errors == [] and needed_result.errors == []
    expected = verdicts(all_path)
    assert {status for _, _, status, _ in expected} >= {"ok", "alarm"}
    assert verdicts(needed_path) == expected


def test_needed_reads_only_the_named_keys(both, estate) -> None:
    (all_path, all_scope, _), (needed_path, scope, _) = both["all"], both["needed"]
    named = column(needed_path, "SELECT key_arn FROM bedrock_model_encryption WHERE key_arn IS NOT NULL")
    own = sorted({arn for arn in named if f":{ACCOUNT}:" in arn})
    assert calls(scope, "ListKeys") == 0 and calls(all_scope, "ListKeys") > 0
    assert calls(scope, "DescribeKey") == len(own)
    stored = column(needed_path, "SELECT arn FROM aws_kms_key ORDER BY arn")
    assert stored == own
    everything = column(all_path, "SELECT arn FROM aws_kms_key")
    assert len(everything) >= len(stored) + UNRELATED_KEYS
    # The aliases column came from the collected aliases: no ListAliases per key.
    assert calls(scope, "ListAliases") == len(REGIONS) + 1
    assert column(needed_path, "SELECT aliases FROM aws_kms_key ORDER BY arn") == column(
        all_path, f"SELECT aliases FROM aws_kms_key WHERE arn IN ({', '.join('?' * len(own))}) ORDER BY arn"
        .replace("?", "'{}'").format(*own)
    )


def test_a_region_without_bedrock_resources_gets_no_kms_call(both) -> None:
    _, scope, _ = both["needed"]
    assert not [key for key in scope.factory.calls if key[0] == "kms" and key[2] == "ap-south-1"]
    _, all_scope, _ = both["all"]
    assert calls(all_scope, "ListAliases", "ap-south-1") == 1


def test_keys_named_by_alias_arn_alias_name_and_key_id_are_collected(both, estate) -> None:
    needed_path = both["needed"][0]
    _, forms = estate
    stored = set(column(needed_path, "SELECT arn FROM aws_kms_key"))
    with sqlite3.connect(needed_path) as db:
        for form, (model, key_arn) in forms.items():
            assert key_arn in stored, form
            assert db.execute(
                "SELECT key_reference_form, key_arn, key_found FROM bedrock_model_encryption WHERE model_name = ?",
                (model,),
            ).fetchone() == (form, key_arn, 1)


def test_the_run_notes_name_the_mode(both) -> None:
    for mode, (path, _, _) in both.items():
        notes = json.loads(column(path, "SELECT notes FROM bedrock_sql_runs")[0])
        if mode == "all":
            assert NOTE_ALL in notes
        else:
            assert any(note.startswith("aws_kms_key: only the keys Bedrock resources name (") for note in notes)
        with snapshot_connection(path) as connection:
            assert every_key_collected(connection) is (mode == "all")


def test_diff_of_an_all_and_a_needed_snapshot_reports_no_key_change(both, capsys) -> None:
    all_path, needed_path = both["all"][0], both["needed"][0]
    for old, new in ((all_path, needed_path), (needed_path, all_path)):
        code, out, err = run_main(capsys, "diff", old, new, "--output", "json")
        assert code == 0, err
        rows = json.loads(out)
        # Only the alarms both sides share: no key deleted, added or changed, no verdict moved.
        assert rows and {row["change"] for row in rows} == {"still failing"}, rows
        assert not [row for row in rows if row["control"] == "inventory"]


def test_describe_key_denied_for_a_named_key_is_an_error_verdict(estate, tmp_path) -> None:
    region, forms = estate
    _, key_arn = forms["key_id"]
    path = tmp_path / "denied.db"
    scope, result = collect(path, [region], "needed", lambda scope: deny(
        scope, "kms", "DescribeKey", when=lambda params, context: params["KeyId"] == key_arn))
    assert [(e.operation, e.resource) for e in result.errors] == [("DescribeKey", key_arn)]
    model = forms["key_id"][0]
    statuses = {status for _, resource, status, _ in verdicts(path) if resource.endswith(f"/{model}")}
    assert statuses == {"error"}
    collect(tmp_path / "all.db", [region], "all", lambda scope: deny(
        scope, "kms", "DescribeKey", when=lambda params, context: params["KeyId"] in (key_arn, key_arn.split("/")[-1])))
    # The same statuses (the reasons name the key by its alias where "all" listed a row for it).
    assert {v[:3] for v in verdicts(path)} == {v[:3] for v in verdicts(tmp_path / "all.db")}


# The by-need reads of a named key, failing the ways AWS fails (the fault matrix runs its
# KMS cells with --kms-keys all): the controls that read what was lost answer error, never ok.
_POLICY = "bedrock_custom_model_cmk_policy_not_public"
_ROTATION = "bedrock_custom_model_cmk_rotation_enabled"
_MODEL_CONTROLS = {"bedrock_custom_model_encrypted_with_cmk", "bedrock_custom_model_cmk_usable", _ROTATION, _POLICY}


@pytest.mark.parametrize("code", ["AccessDeniedException", "KMSInternalException", "ThrottlingException"])
@pytest.mark.parametrize(
    "operation, judged_by",
    [("DescribeKey", _MODEL_CONTROLS), ("GetKeyRotationStatus", {_ROTATION}), ("GetKeyPolicy", {_POLICY})],
)
def test_a_failed_read_of_a_named_key_is_an_error_in_the_controls_that_need_it(
    estate, tmp_path, monkeypatch, operation, judged_by, code
) -> None:
    monkeypatch.setenv("AWS_MAX_ATTEMPTS", "2")  # a throttle that never ends, given up quickly
    region, forms = estate
    model, key_arn = forms["key_id"]
    key_id = key_arn.split("/")[-1]
    path = tmp_path / "failed.db"
    _, result = collect(path, [region], "needed", lambda scope: deny(
        scope, "kms", operation, code=code, when=lambda params, context: params.get("KeyId") in (key_arn, key_id)))
    assert [(e.operation, e.error_code, e.resource) for e in result.errors] == [(operation, code, key_arn)]
    statuses = {control: status for control, resource, status, _ in verdicts(path) if resource.endswith(f"/{model}")}
    assert {control for control, status in statuses.items() if status == "error"} == judged_by, statuses
    assert "ok" not in {statuses[control] for control in judged_by}


def test_a_failed_alias_listing_makes_alias_named_models_error(estate, tmp_path) -> None:
    region, forms = estate
    path = tmp_path / "aliases.db"
    _, result = collect(path, [region], "needed", lambda scope: deny(scope, "kms", "ListAliases"))
    assert {(e.table_name, e.operation) for e in result.errors} >= {("aws_kms_alias", "ListAliases")}
    found = verdicts(path)
    for form in ("alias_arn", "alias_name"):
        model = forms[form][0]
        assert {status for _, resource, status, _ in found if resource.endswith(f"/{model}")} == {"error"}, form


def test_a_named_key_that_does_not_exist_is_noted(world: World, tmp_path) -> None:
    region = next(world.scratch)
    key = create_key(world.session, region)
    seed_models(world.session, region, 1, key_arn=key.arn, prefix="gone")
    from moto.kms.models import kms_backends

    del kms_backends[ACCOUNT][region].keys[key.key_id]
    path = tmp_path / "gone.db"
    _, result = collect(path, [region], "needed")
    assert result.errors == []
    notes = json.loads(column(path, "SELECT notes FROM bedrock_sql_runs")[0])
    assert [n for n in notes if "not found" in n] == [
        f"aws_kms_key: 1 key(s) named by Bedrock resources but not found (DescribeKey: no such key): {key.arn}"
    ]


def test_remediate_names_kms_keys_all_for_a_key_not_in_the_snapshot(both, world, capsys) -> None:
    needed_path = both["needed"][0]
    unrelated = column(both["all"][0], "SELECT arn FROM aws_kms_key")
    missing = sorted(set(unrelated) - set(column(needed_path, "SELECT arn FROM aws_kms_key")))[0]
    model = column(needed_path, "SELECT arn FROM bedrock_model LIMIT 1")[0]
    code, _, err = run_main(capsys, "--db", needed_path, "remediate", "--model", model, "--kms-key", missing)
    assert code == 2 and "collect --kms-keys all" in err, err


def test_cli_over_http_gives_the_same_verdicts_in_both_modes(server_session, moto_url, tmp_path) -> None:
    regions = ("us-east-1", "eu-west-1")
    seed_demo_estate(server_session, regions=regions, endpoint_url=moto_url)
    for n in range(UNRELATED_KEYS):
        server_session.client("kms", region_name=regions[0], endpoint_url=moto_url).create_key(Description=f"x{n}")
    env = cli_env(moto_url)
    found = {}
    for mode in ("all", "needed"):
        folder = tmp_path / mode
        folder.mkdir()
        result = run_cli(["collect", "--kms-keys", mode, *[a for r in regions for a in ("--region", r)]],
                         cwd=folder, env=env, timeout=120)
        assert result.returncode == 0, result.stderr
        found[mode] = verdicts(folder / "bedrock.db")
        keys = column(folder / "bedrock.db", "SELECT count(*) FROM aws_kms_key")[0]
        assert (keys > UNRELATED_KEYS) is (mode == "all")
    assert found["needed"] == found["all"] and found["all"]
