"""`bedrock-sql shell`: apsw's shell on the snapshot, read-only."""

from __future__ import annotations

import hashlib
import io
import sqlite3
import subprocess
import sys

import pytest

from bedrock_sql.demo import run_demo


@pytest.fixture(scope="module")
def demo_db(tmp_path_factory):
    db = tmp_path_factory.mktemp("shell") / "demo.db"
    run_demo(db, io.StringIO())
    return db


def shell(db, script: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "bedrock_sql", "--db", str(db), "shell"],
        input=script, capture_output=True, text=True, timeout=60,
    )


def test_shell_reads_the_snapshot(demo_db):
    result = shell(demo_db, ".tables\nSELECT count(*) FROM aws_bedrock_custom_model;\n")
    assert result.returncode == 0, result.stderr
    assert "aws_bedrock_custom_model" in result.stdout and "bedrock_sql_errors" in result.stdout
    with sqlite3.connect(f"file:{demo_db}?mode=ro", uri=True) as connection:
        (models,) = connection.execute("SELECT count(*) FROM aws_bedrock_custom_model").fetchone()
    assert models > 0 and f"\n{models}\n" in result.stdout  # the demo estate's models
    # The views the collect wrote into the file are used as they are: .tables names each once.
    assert result.stdout.split().count("bedrock_model_encryption") == 1, result.stdout


def test_shell_cannot_modify_the_snapshot(demo_db):
    before = hashlib.sha256(demo_db.read_bytes()).hexdigest()
    result = shell(demo_db, "DELETE FROM aws_kms_key;\nDROP TABLE aws_kms_alias;\nSELECT count(*) FROM aws_kms_key;\n")
    assert result.stderr.count("not authorized") == 2
    assert "\n9\n" in "\n" + result.stdout  # every key is still there
    assert hashlib.sha256(demo_db.read_bytes()).hexdigest() == before


def test_shell_on_a_missing_snapshot_is_one_line(tmp_path):
    result = shell(tmp_path / "none.db", "")
    assert result.returncode == 2
    assert result.stderr.strip().count("\n") == 0 and "no snapshot at" in result.stderr
