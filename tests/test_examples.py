"""Every query in examples/ runs, on the demo snapshot and on hand-built cases it must find."""

from __future__ import annotations

import io
from pathlib import Path

import pytest

from bedrock_sql.demo import run_demo
from bedrock_sql.sql import run_query, snapshot_connection
from snapshot_builder import SnapshotBuilder

EXAMPLES = sorted((Path(__file__).resolve().parents[1] / "examples").glob("*.sql"))


@pytest.fixture(scope="module")
def demo_db(tmp_path_factory):
    db = tmp_path_factory.mktemp("examples") / "demo.db"
    run_demo(db, io.StringIO())
    return db


def rows(db: Path, sql: str) -> list[tuple]:
    with snapshot_connection(db) as connection:
        return list(run_query(connection, sql).rows)


@pytest.mark.parametrize("example", EXAMPLES, ids=[p.stem for p in EXAMPLES])
def test_example_runs_on_the_demo_snapshot(demo_db: Path, example: Path) -> None:
    rows(demo_db, example.read_text())  # raises on SQL the snapshot cannot answer


def test_examples_exist() -> None:
    assert {p.stem for p in EXAMPLES} >= {"public_key_policies", "recent_models_without_cmk"}


def test_public_key_policies_names_each_public_statement(tmp_path: Path) -> None:
    snap = SnapshotBuilder(tmp_path / "s.db")
    open_policy = {"Version": "2012-10-17", "Statement": [
        {"Sid": "Anyone", "Effect": "Allow", "Principal": "*", "Action": "kms:Decrypt", "Resource": "*",
         "Condition": {"Bool": {"aws:SecureTransport": "true"}}},
        {"Sid": "Org", "Effect": "Allow", "Principal": "*", "Action": "kms:Decrypt", "Resource": "*",
         "Condition": {"StringEquals": {"aws:PrincipalOrgID": "o-a1b2c3d4e5"}}},
    ]}
    snap.add_key("alias/open", policy=open_policy)
    snap.add_key("alias/default")
    found = rows(snap.path, (EXAMPLES[0].parent / "public_key_policies.sql").read_text())
    assert [(r[2], r[3]) for r in found] == [("alias/open", "Anyone")]
    assert "aws:SecureTransport" in found[0][4]


def test_recent_models_without_cmk_uses_the_stored_time_format(tmp_path: Path) -> None:
    from datetime import datetime, timedelta, timezone

    snap = SnapshotBuilder(tmp_path / "s.db")
    now = datetime.now(timezone.utc)
    fmt = "%Y-%m-%dT%H:%M:%SZ"
    snap.add_model("new-model", creation_time=(now - timedelta(days=29, hours=23)).strftime(fmt))
    snap.add_model("old-model", creation_time=(now - timedelta(days=30, hours=1)).strftime(fmt))
    key = snap.add_key("alias/cmk")
    snap.add_model("new-with-cmk", model_kms_key_arn=key["arn"], creation_time=now.strftime(fmt))
    found = rows(snap.path, (EXAMPLES[0].parent / "recent_models_without_cmk.sql").read_text())
    assert [r[2] for r in found] == ["new-model"]
