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
    result = collect(scope, tmp_path / "s.db", kms_keys="all")  # by need, no Bedrock there: no KMS call
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


# --- nothing doubles, nothing vanishes (through the collector) ---------------------------


class Repeating(Probe):
    """A listing that answers some items twice (a listing that moved while it was paged)
    and whose get finds some items gone (deleted between list and get)."""

    def __init__(self, items: int, repeated: set[int], gone: set[int]):
        super().__init__(items)
        self.repeated, self.gone = repeated, gone

    def list_items(self, api, params):
        for i in range(self.items):
            yield {"id": f"{api.region}-{i}"}
            if i in self.repeated:
                yield {"id": f"{api.region}-{i}"}

    def hydrate_item(self, api, summary):
        if int(summary["id"].rsplit("-", 1)[1]) in self.gone:
            return None  # what a provider answers for a genuine not-found
        return {"detail": summary["id"].upper()}

    def table(self, concurrency: int = 3) -> Table:
        return Table(**{**vars(super().table(concurrency)), "key": ("id",)})  # as a provider declares it


def collect_probe(probe: Probe, tmp_path):
    import json
    import sqlite3

    from bedrock_sql.snapshot import collect

    scope = make_scope(regions=("r1",))
    result = collect(scope, tmp_path / "s.db", tables={"probe": probe.table()}, max_workers=2)
    with sqlite3.connect(tmp_path / "s.db") as conn:
        ids = sorted(r[0] for r in conn.execute("SELECT id FROM probe"))
        status, notes = conn.execute("SELECT status, notes FROM bedrock_sql_runs").fetchone()
        unique = [i[1] for i in conn.execute("PRAGMA index_list(probe)") if i[2]]  # (seq, name, unique, ...)
        unique_columns = [[c[2] for c in conn.execute(f"PRAGMA index_info({name})")] for name in unique]
    assert unique_columns == [["id"]]  # the table's key: a duplicate cannot land silently
    return result, ids, status, json.loads(notes)


def test_a_duplicate_answer_is_stored_once_and_counted(tmp_path):
    result, ids, status, notes = collect_probe(Repeating(items=6, repeated={1, 4}, gone=set()), tmp_path)
    assert ids == [f"r1-{i}" for i in range(6)]  # one row per key
    assert result.row_counts == {"probe": 6}
    assert status == "complete"  # nothing was lost: the first answer is kept
    assert notes == ["probe: 2 duplicate row(s) answered by AWS were dropped (one row per id is kept)"]
    assert result.scope.notes == notes  # the summary prints them too


def test_a_resource_gone_between_list_and_get_is_noted_not_silent(tmp_path):
    result, ids, status, notes = collect_probe(Repeating(items=4, repeated=set(), gone={2}), tmp_path)
    assert ids == ["r1-0", "r1-1", "r1-3"]
    assert status == "complete" and result.errors == []
    assert notes == ["probe: 1 resource(s) listed but gone before their details were read: r1-2"]


def test_a_failed_get_keeps_the_listed_row_with_an_error(tmp_path):
    class Failing(Probe):
        def hydrate_item(self, api, summary):
            if summary["id"] == "r1-1":
                raise ApiError("GetThing", "ValidationException", "bad")
            return super().hydrate_item(api, summary)

    result, ids, status, notes = collect_probe(Failing(items=3), tmp_path)
    assert ids == ["r1-0", "r1-1", "r1-2"]  # kept, from its listing
    assert status == "partial" and notes == []
    [error] = result.errors
    assert (error.operation, error.error_code, error.resource) == ("GetThing", "ValidationException", "r1-1")


def test_a_key_must_name_columns():
    with pytest.raises(ValueError, match="not columns"):
        Table(**{**vars(Probe(1).table()), "key": ("nope",)})
    assert Probe(1).table().key == ("id",)  # by default, the ARN column
