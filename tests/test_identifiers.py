"""AWS identifiers as AWS spells them (:mod:`bedrock_sql.identifiers`): whole values, ASCII only,
every partition; and the snapshot check that names the first altered row.

A snapshot or a shard is a file anyone may have edited; the remediation script and merge
branch on its account ids and regions. Each sample below is one way to smuggle text past a
pattern that is almost right: a newline after a valid value (``$`` instead of ``fullmatch``),
digits of another script (``\\d`` without ``re.ASCII``), a shell command after a separator.
"""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path

import apsw
import pytest

from bedrock_sql.errors import UserError
from bedrock_sql.identifiers import PATTERNS, check_snapshot_identifiers, invalid_reason, is_valid
from snapshot_builder import ALIASES, JOBS, KEYS, MODELS, SnapshotBuilder

UUID = "1234abcd-12ab-34cd-56ef-1234567890ab"
MRK = "mrk-" + "0123456789abcdef" * 2

VALID = {
    "account_id": ["123456789012", "000000000000"],
    "region": [
        "us-east-1", "eu-west-3", "ap-southeast-5", "mx-central-1", "il-central-1",
        "us-gov-west-1", "us-gov-east-1",  # GovCloud
        "cn-north-1", "cn-northwest-1",  # China
        "us-iso-east-1", "us-isob-east-1", "us-isof-south-1", "eu-isoe-west-1",  # ISO
        "eusc-de-east-1",  # European Sovereign Cloud
    ],
    "partition": ["aws", "aws-cn", "aws-us-gov", "aws-iso", "aws-iso-b", "aws-iso-e", "aws-iso-f", "aws-eusc"],
    "arn": [
        "arn:aws:bedrock:us-east-1:123456789012:custom-model/amazon.titan-text-express-v1:0:8k/abc123",
        "arn:aws:bedrock:us-east-1::foundation-model/amazon.titan-text-express-v1",
        "arn:aws:iam::123456789012:role/service-role/BedrockJob",
        "arn:aws:iam::aws:policy/AdministratorAccess",
        f"arn:aws:kms:us-east-1:123456789012:key/{UUID}",
        "arn:aws:kms:us-east-1:123456789012:alias/models/prod",
        "arn:aws-us-gov:bedrock:us-gov-west-1:123456789012:model-customization-job/x/y",
        "arn:aws-cn:kms:cn-north-1:123456789012:alias/a",
        "arn:aws-iso-b:kms:us-isob-east-1:123456789012:alias/a",
        "arn:aws-eusc:kms:eusc-de-east-1:123456789012:alias/a",
        "arn:aws:bedrock-agentcore:us-east-1:123456789012:memory/m-1",
        "arn:aws:s3:::bucket-name",
        "arn:aws:iam::123456789012:role/$(id)/x",  # IAM paths allow ! to ~: quoting, not this, protects bash
    ],
    "kms_key_id": [UUID, MRK],
    "kms_key_arn": [
        f"arn:aws:kms:us-east-1:123456789012:key/{UUID}",
        f"arn:aws-cn:kms:cn-north-1:123456789012:key/{MRK}",
        f"arn:aws-us-gov:kms:us-gov-west-1:123456789012:key/{UUID}",
    ],
}

ARABIC_DIGITS = "١٢٣٤٥٦٧٨٩٠١٢"  # twelve digits to Python's str.isdigit() and to \d without re.ASCII

INVALID = {
    "account_id": [
        "", "12345678901", "1234567890123", "12345678901a", ARABIC_DIGITS, "１２３４５６７８９０１２",  # fullwidth
        "123456789012\n", "\n123456789012", "123456789012 ", "123456789012; touch x", "123456789012$(id)",
        "12345678901\u0662", 123456789012,  # an INTEGER is no account id text
    ],
    "region": [
        "", "us-east", "useast-1", "US-EAST-1", "us-east-1\n", "us-east-1 ", "us-east-1;touch x",
        "us-east-1$(id)", "us-east-`id`", "us-east-\u0661", "us-east-123", "us_east_1", "u-east-1",
        "us-east-1\x1b[2J", "us--1", None,
    ],
    "partition": ["", "AWS", "aws-", "aws_cn", "aws-cn\n", "aws cn", "aws;id", "amazon", "aws-cn-"],
    "arn": [
        "", "arn:aws:bedrock:us-east-1:123456789012:",  # no resource
        "arn:aws:bedrock:us-east-1:123456789012:custom-model/a b",  # space
        "arn:aws:bedrock:us-east-1:123456789012:custom-model/a\tb",  # control characters
        "arn:aws:bedrock:us-east-1:123456789012:custom-model/a\nb",
        "arn:aws:bedrock:us-east-1:123456789012:custom-model/a\x1b]0;owned\x07",
        "arn:aws:bedrock:us-east-1:123456789012:custom-model/a\x00",
        "arn:aws:bedrock:us-east-1:123456789012:custom-model/é",  # not ASCII
        "arn:aws:bedrock:us-east-1:123456789012:custom-model/a\n",  # valid, then a newline
        "arn:aws:bedrock:us-east-1;id:123456789012:custom-model/a",
        f"arn:aws:bedrock:us-east-1:{ARABIC_DIGITS}:custom-model/a",
        "arn:aws:bedrock:us-east-1:12345678901:custom-model/a",
        "arn:evil:bedrock:us-east-1:123456789012:custom-model/a",
        "xarn:aws:bedrock:us-east-1:123456789012:custom-model/a",
        "arn:aws:Bedrock:us-east-1:123456789012:custom-model/a",
        " arn:aws:bedrock:us-east-1:123456789012:custom-model/a",
    ],
    "kms_key_id": [UUID.upper(), UUID + "\n", "mrk-" + "0" * 31, "alias/x", f"{UUID};id", "1234"],
    "kms_key_arn": [
        f"arn:aws:kms:us-east-1:123456789012:alias/{UUID}",
        f"arn:aws:kms:us-east-1:123456789012:key/{UUID}\n",
        f"arn:aws:kms::123456789012:key/{UUID}",  # a key always has a region
        f"arn:aws:kms:us-east-1::key/{UUID}",
        f"arn:aws:bedrock:us-east-1:123456789012:key/{UUID}",
        f"arn:aws:kms:us-east-1:123456789012:key/{UUID} ",
    ],
}


def test_every_kind_has_samples() -> None:
    assert set(VALID) == set(INVALID) == set(PATTERNS)


@pytest.mark.parametrize("kind,value", [(kind, value) for kind, values in VALID.items() for value in values])
def test_valid_identifiers(kind: str, value: str) -> None:
    assert is_valid(kind, value)
    assert invalid_reason(kind, value) is None


@pytest.mark.parametrize("kind,value", [(kind, value) for kind, values in INVALID.items() for value in values],
                         ids=lambda v: ascii(v)[:40])
def test_invalid_identifiers(kind: str, value: object) -> None:
    assert not is_valid(kind, value)
    reason = invalid_reason(kind, value)
    assert reason == f"{value!r} is no valid {kind.replace('_', ' ')}"
    # repr: no newline, no ESC reaches the one-line message
    assert "\n" not in reason and "\x1b" not in reason and "\x07" not in reason


def test_each_region_of_botocore_is_valid() -> None:
    """The regions botocore knows, in every partition (a new one must not be refused)."""
    import botocore.session

    session = botocore.session.get_session()
    for partition in session.get_available_partitions():
        assert is_valid("partition", partition), partition
        for region in session.get_available_regions("ec2", partition_name=partition):
            assert is_valid("region", region), (partition, region)


# --- the snapshot check ---------------------------------------------------------------------


def clean_snapshot(path: Path) -> SnapshotBuilder:
    snap = SnapshotBuilder(path)
    key = snap.add_key()
    snap.add_alias("alias/models", key)
    snap.add_model("m1", model_kms_key_arn=key["arn"])
    snap.add_model("shared", owner_account_id="999999999999")
    snap.add_job("j1")
    snap.add_model("gov", account_id="111111111111", region="us-gov-west-1", partition="aws-us-gov",
                   arn="arn:aws-us-gov:bedrock:us-gov-west-1:111111111111:custom-model/gov")
    snap.add_error(table_name=MODELS, operation="ListCustomModels", region="cn-north-1")
    snap.add_error(table_name=MODELS, operation="AssumeRole", region=None)  # a whole account: no region
    snap.add_run(accounts=["123456789012", "111111111111"], regions=["us-east-1", "us-gov-west-1"])
    return snap


def check(path: Path, *, where: str = "the snapshot") -> None:
    connection = apsw.Connection(str(path))
    try:
        check_snapshot_identifiers(connection, where=where)
    finally:
        connection.close()


def test_a_clean_snapshot_passes(tmp_path: Path) -> None:
    check(clean_snapshot(tmp_path / "s.db").path)


def alter(path: Path, sql: str, *params) -> None:
    with sqlite3.connect(path) as db:
        db.execute(sql, params)


ALTERATIONS = [
    # (table, column, the forged value)
    (MODELS, "account_id", "123456789012; touch x"),
    (MODELS, "account_id", ARABIC_DIGITS),
    (MODELS, "owner_account_id", "999999999999\n"),
    (MODELS, "region", "us-east-1$(id)"),
    (MODELS, "region", "us-east-1\n"),
    (JOBS, "partition", "aws;id"),
    (KEYS, "arn", "arn:aws:kms:us-east-1:123456789012:key/x y"),
    (ALIASES, "region", "us-east-1`id`"),
    ("bedrock_sql_errors", "account_id", "${AWS_SECRET_ACCESS_KEY}"),
    ("bedrock_sql_errors", "region", "eu-west-1 ; id"),
]


@pytest.mark.parametrize("table,column,value", ALTERATIONS, ids=lambda v: ascii(v)[:30])
def test_an_altered_row_is_refused_by_name(tmp_path: Path, table: str, column: str, value: str) -> None:
    snap = clean_snapshot(tmp_path / "s.db")
    with sqlite3.connect(snap.path) as db:
        rowid = db.execute(f"SELECT max(rowid) FROM {table}").fetchone()[0]
    alter(snap.path, f'UPDATE {table} SET "{column}" = ? WHERE rowid = ?', value, rowid)
    with pytest.raises(UserError) as refused:
        check(snap.path, where="shard-2.db")
    message = str(refused.value)
    kind = "account id" if column.endswith("account_id") else column
    assert message == (f"shard-2.db is refused: {table} row {rowid} has {column} {value!r} is no valid {kind} "
                       "(a snapshot holds what AWS returned; this one was altered)")
    assert "\n" not in message


@pytest.mark.parametrize("column,value,shown", [
    ("accounts", ["123456789012", "123456789012 && id"], "'123456789012 && id', no valid account id"),
    ("accounts", [123456789012], "123456789012, no valid account id"),
    ("regions", ["us-east-1", "us-east-1\n"], "'us-east-1\\n', no valid region"),
])
def test_the_runs_accounts_and_regions_are_checked(tmp_path: Path, column: str, value: list, shown: str) -> None:
    snap = clean_snapshot(tmp_path / "s.db")
    alter(snap.path, f"UPDATE bedrock_sql_runs SET {column} = ?", json.dumps(value))
    with pytest.raises(UserError, match="bedrock_sql_runs row 1 has " + column) as refused:
        check(snap.path)
    assert shown in str(refused.value)


def test_runs_arrays_that_are_no_json_arrays_are_refused(tmp_path: Path) -> None:
    snap = clean_snapshot(tmp_path / "s.db")
    for text in ("not json", '{"a": 1}', "[" * 100_000):  # deep nesting: Python's JSON recursion limit
        alter(snap.path, "UPDATE bedrock_sql_runs SET accounts = ?", text)
        with pytest.raises(UserError, match="is no JSON array of account ids"):
            check(snap.path)


def test_a_table_name_cannot_end_the_quoted_name(tmp_path: Path) -> None:
    """apsw runs every statement of a string: a forged table name holding a double quote must
    stay a name, not become an ATTACH that writes a file."""
    snap = clean_snapshot(tmp_path / "s.db")
    written = tmp_path / "written.db"
    name = f'x"; ATTACH \'{written}\' AS w; CREATE TABLE w.t(a); --'
    alter(snap.path, f'CREATE TABLE "{name.replace(chr(34), chr(34) * 2)}"(account_id TEXT, region TEXT)')
    alter(snap.path, f'INSERT INTO "{name.replace(chr(34), chr(34) * 2)}" VALUES (?, ?)', "123456789012", "us-east-1\x1b[2J")
    with pytest.raises(UserError) as refused:
        check(snap.path)
    assert not written.exists()
    message = str(refused.value)
    assert ascii(name) in message and "\x1b" not in message  # the odd name escaped in the message


def test_virtual_tables_are_not_read(tmp_path: Path) -> None:
    snap = clean_snapshot(tmp_path / "s.db")
    alter(snap.path, "CREATE VIRTUAL TABLE notes USING fts5(account_id)")
    alter(snap.path, "INSERT INTO notes VALUES ('whatever')")
    check(snap.path)


def test_a_without_rowid_table_is_named_without_a_rowid(tmp_path: Path) -> None:
    snap = clean_snapshot(tmp_path / "s.db")
    alter(snap.path, "CREATE TABLE extra(arn TEXT PRIMARY KEY) WITHOUT ROWID")
    alter(snap.path, "INSERT INTO extra VALUES ('not an arn')")
    with pytest.raises(UserError, match="extra a row has arn 'not an arn' is no valid arn"):
        check(snap.path)


def test_an_attached_schema_is_checked(tmp_path: Path) -> None:
    snap = clean_snapshot(tmp_path / "shard.db")
    alter(snap.path, f"UPDATE {MODELS} SET region = 'us-east-1;id' WHERE rowid = 1")
    connection = apsw.Connection(":memory:")
    connection.execute("ATTACH ? AS merged_input", (str(snap.path),))
    check_snapshot_identifiers(connection)  # main (empty) is not the shard
    with pytest.raises(UserError, match=f"^shard.db is refused: {MODELS} row 1 has region 'us-east-1;id'"):
        check_snapshot_identifiers(connection, schema="merged_input", where="shard.db")


def test_a_long_forged_value_is_cut_in_the_message(tmp_path: Path) -> None:
    snap = clean_snapshot(tmp_path / "s.db")
    alter(snap.path, f"UPDATE {MODELS} SET account_id = ? WHERE rowid = 1", "1" * 12 + "x" * 1_000_000)
    with pytest.raises(UserError) as refused:
        check(snap.path)
    message = str(refused.value)
    assert len(message) < 400 and "(1000012 characters)" in message
    assert message.endswith("(a snapshot holds what AWS returned; this one was altered)")
