"""Accounts: repeated roles, the AWS Organization, the accounts file; dedupe; unreachable
accounts recorded (never a silent pass); assumed-role credentials that refresh.

moto attributes what a session creates to the account of the role it assumed, so each
account here is reached (and seeded) through ``sts.assume_role``. In process with
``mock_aws``; the last tests run the CLI as a subprocess against the moto server.
"""

from __future__ import annotations

import json
import re
import sqlite3
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Iterable

import boto3
import pytest

import bedrock_sql.accounts
import bedrock_sql.aws
from bedrock_sql.accounts import resolve_scope, role_session_name
from bedrock_sql.aws import AwsOptions
from bedrock_sql.controls import load_controls, run_controls, select_controls
from bedrock_sql.errors import UserError
from bedrock_sql.estate import create_key, seed_models
from bedrock_sql.providers import TABLES
from bedrock_sql.snapshot import collect
from e2e_helpers import AwsProxy, AwsRequest, CannedResponse, cli_env, describe, run_cli
from helpers import client_error, fast_regions
from helpers import run_main as run

A, B, C = "111111111111", "222222222222", "333333333333"
MANAGEMENT = "123456789012"  # moto's default account: the ambient credentials
REGIONS = ("us-east-1", "eu-west-1")
SEED = "bedrock_custom_model_encrypted_with_cmk"
ROLE = "BedrockSqlAudit"


def role(account_id: str, name: str = ROLE) -> str:
    return f"arn:aws:iam::{account_id}:role/{name}"


@pytest.fixture(autouse=True)
def _quick_regions():
    with fast_regions():
        yield


def account_session(account_id: str, endpoint_url: str | None = None) -> boto3.Session:
    """Credentials acting in ``account_id`` (moto: any role can be assumed)."""
    sts = boto3.client("sts", region_name="us-east-1", endpoint_url=endpoint_url)
    creds = sts.assume_role(RoleArn=role(account_id, "Seeder"), RoleSessionName="seed")["Credentials"]
    return boto3.Session(
        aws_access_key_id=creds["AccessKeyId"],
        aws_secret_access_key=creds["SecretAccessKey"],
        aws_session_token=creds["SessionToken"],
        region_name="us-east-1",
    )


def seed_account(account_id: str, *, endpoint_url: str | None = None, cmk_region: str | None = "us-east-1") -> dict[str, str]:
    """Two models in us-east-1 (one with a CMK, one with the Bedrock-owned key), one in
    eu-west-1 (Bedrock-owned key); returns model name -> expected seed verdict."""
    session = account_session(account_id, endpoint_url)
    prefix = f"m{account_id[:3]}"
    key = create_key(session, "us-east-1", account_id=account_id, endpoint_url=endpoint_url)
    seed_models(session, "us-east-1", 1, key_arn=key.arn, prefix=f"{prefix}-cmk", account_id=account_id, endpoint_url=endpoint_url)
    seed_models(session, "us-east-1", 1, prefix=f"{prefix}-owned", account_id=account_id, endpoint_url=endpoint_url)
    seed_models(session, "eu-west-1", 1, prefix=f"{prefix}-eu", account_id=account_id, endpoint_url=endpoint_url)
    return {f"{prefix}-cmk-0000": "ok", f"{prefix}-owned-0000": "alarm", f"{prefix}-eu-0000": "alarm"}


def snapshot_rows(db: Path, sql: str) -> list[tuple]:
    with sqlite3.connect(f"file:{db}?mode=ro", uri=True) as conn:
        return conn.execute(sql).fetchall()


def seed_verdicts(db: Path) -> dict[tuple[str, str], str]:
    """(account_id, resource) -> status of the seed control on the snapshot at ``db``."""
    from bedrock_sql.sql import snapshot_connection

    controls = select_controls(load_controls(), [SEED])
    with snapshot_connection(db) as conn:
        return {(f.account_id, f.resource): f.status for f in run_controls(conn, controls)}


def hook_base_sessions(monkeypatch: pytest.MonkeyPatch, event: str, handler) -> None:
    """Register a botocore handler on the credentials resolve_scope starts from (they assume
    the roles and list the Organization)."""
    real = bedrock_sql.accounts._base_sessions

    def base_sessions(opts):
        sessions = real(opts)
        for session, _ in sessions:
            session.events.register(event, handler)
        return sessions

    monkeypatch.setattr(bedrock_sql.accounts, "_base_sessions", base_sessions)


def deny_assume_role(monkeypatch: pytest.MonkeyPatch, accounts: Iterable[str], code: str = "AccessDenied") -> list[str]:
    """Make AssumeRole into ``accounts`` fail; returns the role ARNs denied."""
    denied_accounts = set(accounts)
    denied: list[str] = []

    def handler(params, **_):
        if params["RoleArn"].split(":")[4] in denied_accounts:
            denied.append(params["RoleArn"])
            raise client_error(code, "AssumeRole", f"not authorized to perform sts:AssumeRole on {params['RoleArn']}")

    hook_base_sessions(monkeypatch, "provide-client-params.sts.AssumeRole", handler)
    return denied


def user_error(capsys: pytest.CaptureFixture, *args: str) -> str:
    """Run the CLI expecting exit 2 and exactly one line on stderr; return that line."""
    code, out, err = run(capsys, *args)
    assert code == 2, (args, code, out, err)
    lines = err.splitlines()
    assert len(lines) == 1 and lines[0].startswith("bedrock-sql: error: "), err
    assert "Traceback" not in err
    return lines[0]


def make_org(member_count: int, endpoint_url: str | None = None) -> list[str]:
    """An AWS Organization managed by the ambient account, with ``member_count`` members."""
    org = boto3.client("organizations", region_name="us-east-1", endpoint_url=endpoint_url)
    org.create_organization(FeatureSet="ALL")
    return [
        org.create_account(Email=f"member{i}@example.com", AccountName=f"member{i}")["CreateAccountStatus"]["AccountId"]
        for i in range(member_count)
    ]


# --------------------------------------------------------------------------- --role-arn


def test_two_accounts_through_assume_role_rows_attributed(aws, tmp_path: Path) -> None:
    expected = {A: seed_account(A), B: seed_account(B)}
    scope = resolve_scope(AwsOptions(regions=REGIONS, role_arns=(role(A), role(B))))
    assert [a.account_id for a in scope.accounts] == [A, B]
    assert {(u.account_id, u.region) for u in scope.units} == {(a, r) for a in (A, B) for r in REGIONS}

    db = tmp_path / "bedrock.db"
    result = collect(scope, db)
    assert result.status == "complete"
    rows = snapshot_rows(db, "SELECT account_id, model_name, arn, region FROM aws_bedrock_custom_model")
    assert {(acct, name) for acct, name, _, _ in rows} == {(acct, name) for acct, names in expected.items() for name in names}
    for account_id, _, arn, region in rows:
        assert arn.split(":")[4] == account_id and arn.split(":")[3] == region
    keys = snapshot_rows(db, "SELECT DISTINCT account_id FROM aws_kms_key WHERE key_manager = 'CUSTOMER'")
    assert sorted(k for (k,) in keys) == [A, B]
    assert json.loads(snapshot_rows(db, "SELECT accounts FROM bedrock_sql_runs")[0][0]) == [A, B]

    verdicts = seed_verdicts(db)
    by_name = {arn.rsplit("/", 1)[-1]: status for (_, arn), status in verdicts.items()}
    assert by_name == {name: status for names in expected.values() for name, status in names.items()}


def test_assumed_session_is_recognisable_in_cloudtrail(aws) -> None:
    scope = resolve_scope(AwsOptions(regions=("us-east-1",), role_arns=(role(A),)))
    (account,) = scope.accounts
    arn = scope.factory.client(account, "us-east-1", "sts").get_caller_identity()["Arn"]
    assert arn == f"arn:aws:sts::{A}:assumed-role/{ROLE}/{role_session_name()}"
    assert account.label == role(A) and account.partition == "aws"


@pytest.mark.parametrize(
    "user",
    ["alice", "Jo Ann/ü:Ünïcode", "x" * 200, ""],
)
def test_role_session_name_is_valid(monkeypatch: pytest.MonkeyPatch, user: str) -> None:
    monkeypatch.setattr("getpass.getuser", lambda: user)
    monkeypatch.setattr("socket.gethostname", lambda: "build-host.example.com")
    name = role_session_name()
    assert re.fullmatch(r"[A-Za-z0-9_+=,.@-]{2,64}", name), name
    assert name.startswith("bedrock-sql-")
    if user == "alice":
        assert name == "bedrock-sql-alice"
    if user == "":
        assert name == "bedrock-sql-build-host"


def test_assumed_credentials_refresh_before_they_expire(aws) -> None:
    scope = resolve_scope(AwsOptions(regions=("us-east-1",), role_arns=(role(A),), external_id="ext-123"))
    (account,) = scope.accounts
    creds = account.credentials
    assert creds.method == "assume-role" and creds.refresh_needed() is False
    first = creds.get_frozen_credentials().access_key

    # The refresh assumes the role again through the base credentials' (cached) STS client.
    seen: list[dict] = []
    base_client = next(c for (_, _, svc), c in scope.factory._clients.items() if svc == "sts")
    base_client.meta.events.register("provide-client-params.sts.AssumeRole", lambda params, **_: seen.append(dict(params)))
    creds._expiry_time = datetime.now(timezone.utc) + timedelta(minutes=5)  # inside the mandatory refresh window
    assert creds.refresh_needed()
    second = creds.get_frozen_credentials().access_key
    assert second != first
    assert seen == [{"RoleArn": role(A), "RoleSessionName": role_session_name(), "ExternalId": "ext-123"}]
    # ...and the refreshed credentials still act in the account.
    assert scope.factory.client(account, "us-east-1", "sts").get_caller_identity()["Account"] == A


def test_account_reached_twice_is_collected_once(aws, tmp_path: Path) -> None:
    expected = seed_account(A)
    options = AwsOptions(regions=REGIONS, role_arns=(role(A), role(A, "OtherRole"), role(A)))
    scope = resolve_scope(options)
    assert [a.account_id for a in scope.accounts] == [A]
    assert len(scope.units) == len(REGIONS)
    db = tmp_path / "bedrock.db"
    collect(scope, db)
    names = [n for (n,) in snapshot_rows(db, "SELECT model_name FROM aws_bedrock_custom_model")]
    assert sorted(names) == sorted(expected)  # no duplicate rows


def test_two_profiles_of_one_account_collected_once(aws, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    config = tmp_path / "config"
    config.write_text("[profile one]\nregion = us-east-1\n[profile two]\nregion = us-east-1\n")
    credentials = tmp_path / "credentials"
    credentials.write_text("[one]\naws_access_key_id = k1\naws_secret_access_key = s1\n[two]\naws_access_key_id = k2\naws_secret_access_key = s2\n")
    monkeypatch.setenv("AWS_CONFIG_FILE", str(config))
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(credentials))
    scope = resolve_scope(AwsOptions(profiles=("one", "two")))
    assert [(a.account_id, a.label) for a in scope.accounts] == [(MANAGEMENT, "one")]
    assert [u.region for u in scope.units] == ["us-east-1"]


def test_explicit_role_that_cannot_be_assumed_is_a_user_error(aws, capsys, monkeypatch, tmp_path: Path) -> None:
    denied = deny_assume_role(monkeypatch, [B])
    db = tmp_path / "bedrock.db"
    line = user_error(capsys, "--db", str(db), "collect", "--region", "us-east-1", "--role-arn", role(A), "--role-arn", role(B))
    assert f"cannot assume {role(B)}: AssumeRole failed: AccessDenied: not authorized" in line
    assert denied == [role(B)]
    assert not db.exists()


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--role-arn", "arn:aws:iam::1234:role/X"], "is not an IAM role ARN"),
        (["--org-role", "arn:aws:iam::111111111111:role/X"], "takes the role's name"),
        (["--org-role", "bad name"], "is not an IAM role name"),
        (["--org-exclude", A], "--org-exclude needs --org-role"),
        (["--org-role", ROLE, "--org-exclude", "12"], "is not a 12-digit AWS account ID"),
        (["--external-id", "x"], "--external-id is for the roles"),
        (["--accounts-file", "a.csv", "--role-arn", role(A)], "leave out --role-arn and --org-role"),
        (["--accounts-file", "a.csv", "--org-role", ROLE], "leave out --role-arn and --org-role"),
        (["--accounts-file", "a.csv", "--profile", "p", "--profile", "q"], "at most one --profile"),
        (["--accounts-file", "nosuch.csv"], "no such file"),
    ],
)
def test_option_mistakes_are_one_line(aws, capsys, tmp_path: Path, monkeypatch, args: list[str], message: str) -> None:
    monkeypatch.chdir(tmp_path)
    (tmp_path / "a.csv").write_text(f"role_arn\n{role(A)}\n")
    line = user_error(capsys, "--db", str(tmp_path / "x.db"), "collect", "--region", "us-east-1", *args)
    assert message in line, line


# --------------------------------------------------------------------------- --org-role


def test_org_role_audits_every_active_account(aws, tmp_path: Path) -> None:
    members = make_org(4)
    first, second, excluded, closed = members
    org = boto3.client("organizations", region_name="us-east-1")
    org.close_account(AccountId=closed)  # SUSPENDED: not audited
    expected = {first: seed_account(first), second: seed_account(second)}

    scope = resolve_scope(AwsOptions(regions=REGIONS, org_role=ROLE, org_exclude=(excluded,)))
    assert sorted(a.account_id for a in scope.accounts) == sorted([MANAGEMENT, first, second])
    assert {a.label for a in scope.accounts} == {role(a) for a in (MANAGEMENT, first, second)}
    assert scope.failed_accounts == []
    assert any(closed in note and "SUSPENDED" in note for note in scope.notes), scope.notes

    db = tmp_path / "bedrock.db"
    assert collect(scope, db).status == "complete"
    rows = snapshot_rows(db, "SELECT account_id, model_name FROM aws_bedrock_custom_model")
    assert sorted(rows) == sorted((acct, name) for acct, names in expected.items() for name in names)


def test_org_account_states_new_and_old_api(aws, monkeypatch: pytest.MonkeyPatch) -> None:
    """State (new) wins over Status (deprecated); Status alone still works."""
    listed = [
        {"Id": A, "Arn": f"arn:aws:organizations::{MANAGEMENT}:account/o-x/{A}", "Status": "ACTIVE"},
        {"Id": B, "Arn": f"arn:aws:organizations::{MANAGEMENT}:account/o-x/{B}", "Status": "ACTIVE", "State": "PENDING_CLOSURE"},
        {"Id": C, "Arn": f"arn:aws:organizations::{MANAGEMENT}:account/o-x/{C}", "State": "ACTIVE"},
    ]
    real = bedrock_sql.aws.UnitApi.paginate

    def paginate(self, service, operation, result_key, **params):
        if operation == "list_accounts":
            return iter(listed)
        return real(self, service, operation, result_key, **params)

    monkeypatch.setattr(bedrock_sql.aws.UnitApi, "paginate", paginate)
    scope = resolve_scope(AwsOptions(regions=("us-east-1",), org_role=ROLE))
    assert [a.account_id for a in scope.accounts] == [A, C]
    assert any(f"{B} (PENDING_CLOSURE)" in note for note in scope.notes)


def test_org_role_with_a_path(aws) -> None:
    make_org(1)
    scope = resolve_scope(AwsOptions(regions=("us-east-1",), org_role="audit/BedrockSql"))
    assert {a.label for a in scope.accounts} == {f"arn:aws:iam::{a.account_id}:role/audit/BedrockSql" for a in scope.accounts}


def test_org_account_whose_role_fails_is_recorded_not_fatal(aws, tmp_path: Path, monkeypatch) -> None:
    good, bad = make_org(2)
    expected = seed_account(good)
    seed_account(bad)
    denied = deny_assume_role(monkeypatch, [bad])

    scope = resolve_scope(AwsOptions(regions=REGIONS, org_role=ROLE))
    assert sorted(a.account_id for a in scope.accounts) == sorted([MANAGEMENT, good])
    (failed,) = scope.failed_accounts
    assert (failed.account_id, failed.label, failed.operation, failed.error_code) == (bad, role(bad), "AssumeRole", "AccessDenied")
    assert failed.regions == REGIONS
    assert denied == [role(bad)]

    db = tmp_path / "bedrock.db"
    result = collect(scope, db)
    assert result.status == "partial"
    errors = snapshot_rows(db, "SELECT account_id, region, table_name, operation, error_code, resource FROM bedrock_sql_errors")
    assert sorted(errors) == sorted((bad, r, t, "AssumeRole", "AccessDenied", None) for r in REGIONS for t in TABLES)
    models = snapshot_rows(db, "SELECT account_id, model_name FROM aws_bedrock_custom_model")
    assert sorted(models) == sorted((good, name) for name in expected)  # the others are complete

    verdicts = seed_verdicts(db)
    assert {(acct, res): s for (acct, res), s in verdicts.items() if acct == bad} == {
        (bad, f"{bad}/{region}"): "error" for region in REGIONS
    }
    assert sorted(s for (acct, _), s in verdicts.items() if acct == good) == sorted(expected.values())
    # every control answers error for the unreachable account, never ok
    from bedrock_sql.sql import snapshot_connection

    with snapshot_connection(db) as conn:
        findings = run_controls(conn, load_controls())
    for control in load_controls():
        statuses = {f.status for f in findings if f.account_id == bad and f.control.id == control.id}
        assert statuses == {"error"}, (control.id, statuses)


def test_org_failed_account_in_live_query_and_cli_collect(aws, tmp_path: Path, monkeypatch, capsys) -> None:
    good, bad = make_org(2)
    seed_account(good)
    deny_assume_role(monkeypatch, [bad])
    db = tmp_path / "bedrock.db"
    code, out, err = run(capsys, "--db", str(db), "collect", "--region", "us-east-1", "--org-role", ROLE)
    assert code == 2, err
    assert "1 account(s) could not be reached" in err
    assert f"{bad} ({role(bad)}): AssumeRole: AccessDenied" in err
    assert "Traceback" not in err and db.is_file()

    code, out, err = run(capsys, "query", "--live", "-o", "csv", "--region", "us-east-1", "--org-role", ROLE,
                         "SELECT DISTINCT account_id FROM aws_bedrock_custom_model")
    assert code == 2
    assert out.splitlines() == ["account_id", good]
    assert "incomplete" in err and bad in err


def test_every_org_account_failing_is_a_user_error(aws, capsys, monkeypatch, tmp_path: Path) -> None:
    members = make_org(2)
    deny_assume_role(monkeypatch, [MANAGEMENT, *members])
    line = user_error(capsys, "--db", str(tmp_path / "x.db"), "collect", "--region", "us-east-1", "--org-role", ROLE)
    assert "could not reach any account" in line and "AssumeRole" in line and "and 2 more" in line


def test_org_role_without_an_organization_is_a_user_error(aws, capsys, tmp_path: Path, monkeypatch) -> None:
    def not_in_use(params, **_):
        raise client_error("AWSOrganizationsNotInUseException", "ListAccounts", "Your account is not a member of an organization.")

    hook_base_sessions(monkeypatch, "provide-client-params.organizations.ListAccounts", not_in_use)
    line = user_error(capsys, "--db", str(tmp_path / "x.db"), "collect", "--region", "us-east-1", "--org-role", ROLE)
    assert "cannot list the accounts of the AWS Organization" in line
    assert "AWSOrganizationsNotInUseException" in line and "management account" in line


def test_org_listing_no_account_is_a_user_error(aws, capsys, tmp_path: Path) -> None:
    line = user_error(capsys, "--db", str(tmp_path / "x.db"), "collect", "--region", "us-east-1", "--org-role", ROLE)
    assert "no active account" in line


def test_org_exclude_of_every_account(aws, capsys, tmp_path: Path) -> None:
    (member,) = make_org(1)
    line = user_error(
        capsys, "--db", str(tmp_path / "x.db"), "collect", "--region", "us-east-1",
        "--org-role", ROLE, "--org-exclude", member, "--org-exclude", MANAGEMENT,
    )
    assert "no active account" in line


# --------------------------------------------------------------------------- --accounts-file


@pytest.fixture
def profile_for_c(aws, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> str:
    """A profile 'prod-c' whose credentials act in account C (moto keys remember their account)."""
    creds = account_session(C).get_credentials().get_frozen_credentials()
    config = tmp_path / "aws-config"
    config.write_text("[profile prod-c]\nregion = eu-west-1\n")
    credentials = tmp_path / "aws-credentials"
    credentials.write_text(
        f"[prod-c]\naws_access_key_id = {creds.access_key}\naws_secret_access_key = {creds.secret_key}\n"
        f"aws_session_token = {creds.token}\n"
    )
    monkeypatch.setenv("AWS_CONFIG_FILE", str(config))
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(credentials))
    return "prod-c"


ACCOUNTS_CSV = f"""# accounts to audit
account_id,role_arn,profile,regions
{A},{role(A)},,us-east-1
,{role(B)},,us-east-1; eu-west-1

{C},,prod-c,
"""

ACCOUNTS_JSON = json.dumps(
    [
        {"account_id": A, "role_arn": role(A), "regions": ["us-east-1"]},
        {"role_arn": role(B), "regions": "us-east-1 eu-west-1", "external_id": "ext-b"},
        {"account_id": C, "profile": "prod-c"},
    ],
    indent=2,
)


@pytest.mark.parametrize(("name", "text"), [("accounts.csv", ACCOUNTS_CSV), ("accounts.json", ACCOUNTS_JSON), ("accounts", ACCOUNTS_JSON)])
def test_accounts_file(profile_for_c: str, tmp_path: Path, name: str, text: str) -> None:
    expected = {A: seed_account(A), B: seed_account(B), C: seed_account(C)}
    path = tmp_path / name
    path.write_text(text)
    scope = resolve_scope(AwsOptions(accounts_file=str(path), regions=("eu-west-1",)))
    # per-entry regions override the global list; C (no regions of its own) gets --region
    assert {(a.account_id, a.regions) for a in scope.accounts} == {
        (A, ("us-east-1",)), (B, ("us-east-1", "eu-west-1")), (C, ("eu-west-1",)),
    }
    assert {a.account_id: a.label for a in scope.accounts} == {A: role(A), B: role(B), C: "prod-c"}
    db = tmp_path / "bedrock.db"
    assert collect(scope, db).status == "complete"
    rows = snapshot_rows(db, "SELECT account_id, region, model_name FROM aws_bedrock_custom_model")
    prefix = {acct: f"m{acct[:3]}" for acct in expected}
    assert sorted(rows) == sorted(
        [(A, "us-east-1", f"{prefix[A]}-cmk-0000"), (A, "us-east-1", f"{prefix[A]}-owned-0000")]
        + [(B, r, n) for n in expected[B] for r in ["eu-west-1" if "-eu-" in n else "us-east-1"]]
        + [(C, "eu-west-1", f"{prefix[C]}-eu-0000")]
    )


def test_accounts_file_without_global_regions_uses_each_credentials_region(
    profile_for_c: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("AWS_DEFAULT_REGION")  # else it beats every profile's region
    path = tmp_path / "accounts.csv"
    path.write_text(f"role_arn,profile\n,prod-c\n{role(B)},prod-c\n")
    scope = resolve_scope(AwsOptions(accounts_file=str(path)))
    # C, and B assumed through prod-c: prod-c's region
    assert {(a.account_id, a.regions) for a in scope.accounts} == {(C, ("eu-west-1",)), (B, ("eu-west-1",))}

    path.write_text(f"role_arn,profile\n,prod-c\n{role(A)},\n")  # A: the ambient credentials have no region
    with pytest.raises(UserError, match="accounts.csv line 3: no AWS region configured"):
        resolve_scope(AwsOptions(accounts_file=str(path)))


def test_accounts_file_profile_in_another_account_than_account_id(profile_for_c: str, tmp_path: Path, capsys) -> None:
    path = tmp_path / "a.csv"
    path.write_text(f"account_id,profile\n{A},prod-c\n")
    line = user_error(capsys, "--db", str(tmp_path / "x.db"), "collect", "--accounts-file", str(path))
    assert line.endswith(f"a.csv line 2: account_id {A}, but the credentials of prod-c belong to account {C}")


def test_accounts_file_entry_whose_role_fails_is_recorded(aws, tmp_path: Path, monkeypatch) -> None:
    deny_assume_role(monkeypatch, [B])
    path = tmp_path / "accounts.csv"
    path.write_text(f"role_arn,regions\n{role(A)},us-east-1\n{role(B)},eu-west-1;ap-east-1\n")
    scope = resolve_scope(AwsOptions(accounts_file=str(path)))
    assert [a.account_id for a in scope.accounts] == [A]
    (failed,) = scope.failed_accounts
    assert (failed.account_id, failed.regions) == (B, ("eu-west-1", "ap-east-1"))

    db = tmp_path / "bedrock.db"
    collect(scope, db)
    rows = snapshot_rows(db, "SELECT region, table_name FROM bedrock_sql_errors WHERE account_id = '222222222222'")
    # Bedrock is not offered in ap-east-1: only the KMS tables would have been scanned there
    assert sorted(rows) == sorted(
        [("eu-west-1", t) for t in TABLES] + [("ap-east-1", "aws_kms_key"), ("ap-east-1", "aws_kms_alias")]
    )


@pytest.mark.parametrize(
    ("name", "text", "message"),
    [
        ("a.csv", "account_id,role_arn,colour\n", "a.csv line 1: unknown column 'colour'"),
        ("a.csv", "account_id,regions\n111111111111,us-east-1\n", "a.csv line 1: needs a role_arn or a profile column"),
        ("a.csv", "role_arn,role_arn\n", "a.csv line 1: column 'role_arn' appears twice"),
        ("a.csv", f"account_id,role_arn,profile\n{A},{role(A)},\n\n{B},,\n", "a.csv line 4: give a role_arn or a profile"),
        ("a.csv", f"account_id,role_arn\n1111,{role(A)}\n", "a.csv line 2: account_id '1111' is not a 12-digit"),
        ("a.csv", f"account_id,role_arn\n{B},{role(A)}\n", f"a.csv line 2: account_id {B} but role_arn {role(A)} is in account {A}"),
        ("a.csv", "role_arn\narn:aws:iam::111111111111:user/bob\n", "a.csv line 2: role_arn 'arn:aws:iam::111111111111:user/bob' is not an IAM role ARN"),
        ("a.csv", f"role_arn,regions\n{role(A)},us-east-1;mars-north-1\n", "a.csv line 2: unknown AWS region 'mars-north-1'"),
        ("a.csv", f"role_arn\n{role(A)},extra\n", "a.csv line 2: 2 values but the header names 1 columns"),
        ("a.csv", f"role_arn,external_id\n{role(A)},x\n,y\n", "a.csv line 3: give a role_arn or a profile"),
        ("a.csv", f"role_arn\n{role(A)}\n{role(A, 'Other')}\n", f"a.csv line 3: account {A} is already listed (a.csv line 2)"),
        ("a.csv", "profile\nnosuch\n", "a.csv line 2: AWS profile 'nosuch' not found"),
        ("a.csv", "# nothing\n\n", "lists no accounts"),
        ("a.csv", "role_arn\n", "lists no accounts"),
        ("a.json", "[]", "lists no accounts"),
        ("a.json", '[{"role_arn": "x",', "a.json line 1: not valid JSON"),
        ("a.json", '{"role_arn": "x"}', "expected a JSON array"),
        ("a.json", f'[\n  {{"role_arn": "{role(A)}"}},\n  {{"role": "{role(B)}"}}\n]', "a.json line 3: unknown key 'role'"),
        ("a.json", f'[\n  {{"role_arn": "{role(A)}"}},\n\n  "{role(B)}"\n]', "a.json line 4: expected an object"),
        ("a.json", f'[{{"role_arn": "{role(A)}", "regions": 5}}]', "a.json line 1: regions must be text"),
        ("a.json", f'[{{"account_id": 111111111111, "role_arn": "{role(B)}"}}]', f"account_id {A} but role_arn {role(B)} is in account {B}"),
        ("a.json", '[{"profile": "default", "external_id": "x"}]', "external_id is only used with a role_arn"),
    ],
)
def test_accounts_file_mistakes(aws, capsys, tmp_path: Path, name: str, text: str, message: str) -> None:
    path = tmp_path / name
    path.write_text(text)
    db = tmp_path / "x.db"
    line = user_error(capsys, "--db", str(db), "collect", "--accounts-file", str(path))
    assert message in line, line
    assert not db.exists()


def test_accounts_file_account_id_checked_against_sts_for_roles(aws, tmp_path: Path, monkeypatch) -> None:
    """The account STS reports for the assumed role is the one checked (and recorded)."""
    path = tmp_path / "a.json"
    path.write_text(json.dumps([{"account_id": A, "role_arn": role(A)}]))
    real = bedrock_sql.accounts._assume

    def assume_lands_elsewhere(factory, base, role_arn, external_id, region):
        account = real(factory, base, role_arn, external_id, region)
        account.account_id = B  # as if STS said so
        return account

    monkeypatch.setattr(bedrock_sql.accounts, "_assume", assume_lands_elsewhere)
    with pytest.raises(UserError, match=rf"a.json line 1: account_id {A}, but the credentials of .* belong to account {B}"):
        resolve_scope(AwsOptions(accounts_file=str(path)))


# --------------------------------------------------------------------------- CLI subprocess, moto server


def _deny_assume_into(account_id: str):
    def rule(request: AwsRequest) -> CannedResponse | None:
        if request.service == "sts" and request.operation == "AssumeRole" and f"%3A{account_id}%3Arole" in request.body.decode():
            return CannedResponse.aws_error(403, "AccessDenied", "not authorized to perform sts:AssumeRole", protocol="query")
        return None

    return rule


def test_cli_org_role_against_moto_server(moto_url: str, tmp_path: Path) -> None:
    good, bad, excluded = make_org(3, endpoint_url=moto_url)
    expected = seed_account(good, endpoint_url=moto_url)
    seed_account(bad, endpoint_url=moto_url)
    seed_account(excluded, endpoint_url=moto_url)
    regions = ["--region", "us-east-1", "--region", "eu-west-1"]
    with AwsProxy(moto_url, rule=_deny_assume_into(bad)) as proxy:
        env = cli_env(proxy.url)
        result = run_cli(["collect", *regions, "--org-role", ROLE, "--org-exclude", excluded], cwd=tmp_path, env=env, timeout=120)
        assert result.returncode == 2, describe(result)
        assert f"{bad} ({role(bad)}): AssumeRole: AccessDenied" in result.stderr, describe(result)
        assert "Traceback" not in result.stderr
        assumed = [r for r in proxy.requests if r.operation == "AssumeRole"]
        assert len(assumed) == 3  # management, good, bad; not the excluded one
        assert all(f"RoleSessionName={role_session_name()}" in r.body.decode() for r in assumed)

        check = run_cli(["check", SEED, "--output", "json"], cwd=tmp_path, env=env)
    assert check.returncode == 2, describe(check)
    findings = json.loads(check.stdout)
    assert {(f["account_id"], f["resource"], f["status"]) for f in findings if f["account_id"] == bad} == {
        (bad, f"{bad}/us-east-1", "error"),
        (bad, f"{bad}/eu-west-1", "error"),
    }
    assert sorted(f["status"] for f in findings if f["account_id"] == good) == sorted(expected.values())
    assert not [f for f in findings if f["account_id"] == excluded]
    rows = snapshot_rows(tmp_path / "bedrock.db", "SELECT DISTINCT account_id FROM aws_bedrock_custom_model")
    assert sorted(r for (r,) in rows) == [good]


def test_cli_accounts_file_against_moto_server(moto_url: str, tmp_path: Path) -> None:
    expected = {A: seed_account(A, endpoint_url=moto_url), B: seed_account(B, endpoint_url=moto_url)}
    (tmp_path / "accounts.csv").write_text(f"account_id,role_arn,regions\n{A},{role(A)},us-east-1\n{B},{role(B)},eu-west-1 us-east-1\n")
    env = cli_env(moto_url)
    result = run_cli(["collect", "--accounts-file", "accounts.csv"], cwd=tmp_path, env=env, timeout=120)
    assert result.returncode == 0, describe(result)
    assert "from 2 account(s)" in result.stderr
    rows = snapshot_rows(tmp_path / "bedrock.db", "SELECT account_id, region, model_name FROM aws_bedrock_custom_model")
    assert {(acct, name) for acct, _, name in rows} == {(A, n) for n in expected[A] if "-eu-" not in n} | {(B, n) for n in expected[B]}

    (tmp_path / "bad.csv").write_text(f"account_id,role_arn\n{A},{role(A)}\n{A},{role(B)}\n")
    bad = run_cli(["collect", "--accounts-file", "bad.csv"], cwd=tmp_path, env=env)
    assert bad.returncode == 2
    assert bad.stderr.splitlines() == [f"bedrock-sql: error: bad.csv line 3: account_id {A} but role_arn {role(B)} is in account {B}"]
