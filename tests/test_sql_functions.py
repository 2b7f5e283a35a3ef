"""SQL functions every connection has: time in the stored format, and the key-policy analysis."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from datetime import datetime, timedelta, timezone
from pathlib import Path

import apsw
import pytest

from bedrock_sql.aws import AwsOptions
from bedrock_sql.engine import ErrorLog
from bedrock_sql.sql import live_connection, run_query, snapshot_connection
from bedrock_sql.sql_functions import FUNCTIONS, install_functions
from helpers import ISO_UTC, REGIONS, fast_regions, world  # noqa: F401
from snapshot_builder import SnapshotBuilder


@pytest.fixture
def db() -> apsw.Connection:
    connection = apsw.Connection(":memory:")
    install_functions(connection)
    return connection


def one(connection: apsw.Connection, sql: str, *bindings):
    return connection.execute(sql, bindings).fetchone()[0]


def stored(moment: datetime) -> str:
    return moment.strftime("%Y-%m-%dT%H:%M:%SZ")


# --- time ---------------------------------------------------------------------------------


def test_now_is_in_the_stored_format(db) -> None:
    value = one(db, "SELECT now()")
    assert ISO_UTC.match(value), value
    assert abs(datetime.fromisoformat(value.replace("Z", "+00:00")) - datetime.now(timezone.utc)) < timedelta(minutes=1)


def test_iso_time_takes_sqlites_modifiers_and_answers_in_the_stored_format(db) -> None:
    assert one(db, "SELECT iso_time('2026-11-28T12:00:00Z', '-1 day')") == "2026-11-27T12:00:00Z"
    assert one(db, "SELECT iso_time('2026-11-28 12:00:00', '+90 minutes')") == "2026-11-28T13:30:00Z"
    assert one(db, "SELECT iso_time('2026-11-28', 'start of month')") == "2026-11-01T00:00:00Z"
    assert ISO_UTC.match(one(db, "SELECT iso_time('now', '-30 days')"))
    assert one(db, "SELECT iso_time('not a time')") is None
    assert one(db, "SELECT iso_time(NULL)") is None


def test_the_trap_iso_time_avoids(db) -> None:
    # A model created 23 hours ago, and another 25 hours ago: only the first is "in the last day".
    now = datetime.now(timezone.utc).replace(microsecond=0)
    recent, older = stored(now - timedelta(hours=23)), stored(now - timedelta(hours=25))
    db.execute("CREATE TABLE models(name, creation_time)")
    db.execute("INSERT INTO models VALUES ('recent', ?), ('older', ?)", (recent, older))
    right = [r[0] for r in db.execute("SELECT name FROM models WHERE creation_time > iso_time('now', '-1 day')")]
    assert right == ["recent"]
    if recent[:10] == older[:10] or older[:10] == stored(now - timedelta(days=1))[:10]:
        # datetime() writes a space where the stored text has a T: any stored time of the
        # boundary day sorts after it, so SQLite's own function keeps "older" too.
        wrong = {r[0] for r in db.execute("SELECT name FROM models WHERE creation_time > datetime('now', '-1 day')")}
        assert wrong == {"recent", "older"}


def test_days_ago_until_and_between(db) -> None:
    now = datetime.now(timezone.utc)
    assert one(db, "SELECT round(days_ago(?), 2)", stored(now - timedelta(days=3, hours=12))) == pytest.approx(3.5, abs=0.01)
    assert one(db, "SELECT cast(days_until(?) AS INTEGER)", stored(now + timedelta(days=6, hours=23))) == 6
    assert one(db, "SELECT days_between('2026-11-01T00:00:00Z', '2026-11-29T12:00:00Z')") == 28.5
    assert one(db, "SELECT days_between('2026-11-29T00:00:00Z', '2026-11-28T00:00:00Z')") == -1.0
    assert one(db, "SELECT days_ago('2026-11-28')") is not None  # a date is a time at midnight UTC
    for sql in ("SELECT days_ago(NULL)", "SELECT days_until('soon')", "SELECT days_between(NULL, now())"):
        assert one(db, sql) is None, sql


# --- policies -----------------------------------------------------------------------------

ROOT = {"Sid": "Root", "Effect": "Allow", "Principal": {"AWS": "arn:aws:iam::123456789012:root"},
        "Action": "kms:*", "Resource": "*"}
OPEN = {"Sid": "Open", "Effect": "Allow", "Principal": "*", "Action": "kms:Decrypt", "Resource": "*",
        "Condition": {"Bool": {"aws:SecureTransport": "true"}}}


def test_policy_functions(db) -> None:
    public = json.dumps({"Version": "2012-10-17", "Statement": [ROOT, OPEN]})
    private = json.dumps({"Version": "2012-10-17", "Statement": ROOT})  # a single object is valid
    assert one(db, "SELECT policy_is_public(?)", public) == 1
    assert one(db, "SELECT policy_is_public(?)", private) == 0
    (statement,) = json.loads(one(db, "SELECT policy_public_statements(?)", public))
    assert (statement["index"], statement["sid"], statement["principals"]) == (1, "Open", ["*"])
    assert "Open" in statement["reason"] and "aws:SecureTransport" in statement["reason"]
    assert json.loads(one(db, "SELECT policy_public_statements(?)", private)) == []
    std = json.loads(one(db, "SELECT policy_std(?)", public))
    assert std["Statement"][1]["Principal"] == {"AWS": ["*"]}
    assert std["Statement"][1]["Condition"] == {"Bool": {"aws:securetransport": ["true"]}}
    assert isinstance(json.loads(one(db, "SELECT policy_std(?)", private))["Statement"], list)


@pytest.mark.parametrize("value", [None, "not json", "[]", '{"Statement": 3}'])
def test_policy_functions_answer_null_for_what_is_no_policy(db, value) -> None:
    # NULL, never 0: a control tells "not public" from "could not be judged".
    for name in ("policy_is_public", "policy_public_statements", "policy_std"):
        assert one(db, f"SELECT {name}(?)", value) is None, (name, value)


# --- every connection has them ------------------------------------------------------------

CALLS = "SELECT " + ", ".join(
    f"{name}({', '.join(['NULL'] * max(arity, 0))}) IS NULL" for name, (_fn, arity, _det) in FUNCTIONS.items()
)


def test_snapshot_connections_have_them(tmp_path: Path) -> None:
    path = SnapshotBuilder(tmp_path / "s.db").path
    with snapshot_connection(path) as connection:
        assert len(next(iter(run_query(connection, CALLS).rows))) == len(FUNCTIONS)


def test_live_connections_have_them(world) -> None:  # noqa: F811
    with fast_regions(), live_connection(AwsOptions(regions=REGIONS), ErrorLog()) as connection:
        assert len(connection.execute(CALLS).fetchone()) == len(FUNCTIONS)


def test_the_shell_has_them(tmp_path: Path) -> None:
    path = SnapshotBuilder(tmp_path / "s.db").path
    result = subprocess.run(
        [sys.executable, "-m", "bedrock_sql", "--db", str(path), "shell"],
        input="SELECT 'at ' || now();\nSELECT days_between('2026-11-01', '2026-11-11');\n",
        capture_output=True, text=True, timeout=60,
    )
    assert result.returncode == 0, result.stderr
    assert re.search(r"at \d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ", result.stdout), result.stdout
    assert "10.0" in result.stdout
