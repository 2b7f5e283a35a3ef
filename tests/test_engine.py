"""The fetch engine on its own: streaming, bounded concurrency, backpressure, failures."""

from __future__ import annotations

import threading
import time

import boto3
import pytest

from bedrock_sql.accounts import Scope
from bedrock_sql.aws import Account, ApiError, ClientFactory, Unit
from bedrock_sql.engine import Engine, ScanPlan, _UnitHydrator
from bedrock_sql.providers.base import TEXT, Column, Table


def make_scope(regions=("r1", "r2")) -> Scope:
    account = Account(session=boto3.Session(region_name="us-east-1"), label="test", account_id="123456789012")
    units = [Unit(account=account, account_id=account.account_id, region=r) for r in regions]
    return Scope(accounts=[account], units=units, factory=ClientFactory())


class Probe:
    """A fake provider that records how far its listing runs ahead of its hydration."""

    def __init__(self, items: int, hydrate_seconds: float = 0.0, fail_region: str | None = None):
        self.items = items
        self.hydrate_seconds = hydrate_seconds
        self.fail_region = fail_region
        self.lock = threading.Lock()
        self.listed = 0
        self.hydrated = 0
        self.in_flight = 0
        self.max_in_flight = 0
        self.max_ahead = 0

    def list_items(self, api, params):
        if api.region == self.fail_region:
            raise ApiError("ListThings", "AccessDeniedException", "denied")
        for i in range(self.items):
            with self.lock:
                self.listed += 1
                self.max_ahead = max(self.max_ahead, self.listed - self.hydrated)
            yield {"id": f"{api.region}-{i}"}

    def hydrate_item(self, api, summary):
        with self.lock:
            self.in_flight += 1
            self.max_in_flight = max(self.max_in_flight, self.in_flight)
        time.sleep(self.hydrate_seconds)
        with self.lock:
            self.in_flight -= 1
            self.hydrated += 1
        return {"detail": summary["id"].upper()}

    def table(self, concurrency: int = 3) -> Table:
        return Table(
            name="probe",
            description="probe",
            service="probe",
            columns=[Column("id", TEXT, "id", "id"), Column("detail", TEXT, "detail", "detail")],
            list_items=self.list_items,
            hydrate_item=self.hydrate_item,
            hydrate_concurrency=concurrency,
            arn="id",
        )


def test_every_item_is_hydrated_once_and_streamed():
    probe = Probe(items=250)
    engine = Engine(make_scope(), max_workers=4)
    try:
        rows = list(engine.scan(probe.table(), ScanPlan()))
    finally:
        engine.close()
    ids = sorted(r[0] for r in rows)
    assert len(ids) == 500 and len(set(ids)) == 500
    assert all(r[1] == r[0].upper() for r in rows)


def test_hydration_concurrency_per_unit_is_bounded():
    probe = Probe(items=40, hydrate_seconds=0.01)
    engine = Engine(make_scope(regions=("r1",)), max_workers=16)
    try:
        list(engine.scan(probe.table(concurrency=3), ScanPlan()))
    finally:
        engine.close()
    assert probe.max_in_flight == 3


def test_listing_waits_for_hydration(monkeypatch):
    monkeypatch.setattr(_UnitHydrator, "MAX_WAITING", 10)
    probe = Probe(items=200, hydrate_seconds=0.002)
    engine = Engine(make_scope(regions=("r1",)), max_workers=2)
    try:
        rows = list(engine.scan(probe.table(concurrency=2), ScanPlan()))
    finally:
        engine.close()
    assert len(rows) == 200
    # listed-but-not-hydrated never exceeds the queue, the hydrations in flight and the
    # one summary the listing holds while it waits
    assert probe.max_ahead <= 10 + 2 + 1


def test_one_failing_unit_is_recorded_and_the_others_answer():
    probe = Probe(items=5, fail_region="r2")
    engine = Engine(make_scope(), max_workers=4)
    try:
        rows = list(engine.scan(probe.table(), ScanPlan()))
    finally:
        engine.close()
    assert sorted(r[0] for r in rows) == [f"r1-{i}" for i in range(5)]
    [error] = engine.errors.records()
    assert (error.region, error.operation, error.error_code, error.resource) == (
        "r2", "ListThings", "AccessDeniedException", None)


def test_closing_a_scan_early_stops_promptly():
    probe = Probe(items=100_000)
    engine = Engine(make_scope(regions=("r1",)), max_workers=2)
    rows = engine.scan(probe.table(), ScanPlan())
    first = [next(rows) for _ in range(3)]
    rows.close()
    engine.close()
    assert len(first) == 3
    assert probe.listed < 100_000  # it stopped listing instead of draining the unit


@pytest.mark.parametrize("max_workers", [1, 2])
def test_no_deadlock_with_few_workers(max_workers):
    probe = Probe(items=300)
    engine = Engine(make_scope(regions=("r1", "r2", "r3")), max_workers=max_workers)
    try:
        rows = list(engine.scan(probe.table(), ScanPlan()))
    finally:
        engine.close()
    assert len(rows) == 900


def test_region_without_bedrock_is_skipped_for_bedrock_tables_only(aws, tmp_path):
    from bedrock_sql.accounts import resolve_scope
    from bedrock_sql.aws import AwsOptions
    from bedrock_sql.snapshot import collect

    # ap-east-1 (Hong Kong) has KMS but, per botocore, no Bedrock.
    scope = resolve_scope(AwsOptions(regions=("us-east-1", "ap-east-1")))
    aws.client("kms", region_name="ap-east-1").create_key(Description="hk")
    result = collect(scope, tmp_path / "s.db")
    assert result.errors == []
    called = {(svc, region) for (svc, _op, region) in scope.factory.calls}
    assert ("bedrock", "ap-east-1") not in called
    assert ("bedrock", "us-east-1") in called and ("kms", "ap-east-1") in called
    assert result.row_counts["aws_kms_key"] == 1
    assert [note for note in scope.notes if "not offered" in note] == [
        "Amazon Bedrock is not offered in ap-east-1 (per botocore): its Bedrock tables are skipped there"
    ]
    import sqlite3
    notes = sqlite3.connect(tmp_path / "s.db").execute("SELECT notes FROM bedrock_sql_runs").fetchone()[0]
    assert "ap-east-1" in notes
