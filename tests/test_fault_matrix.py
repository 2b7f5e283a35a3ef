"""The fault matrix: every AWS operation the collector makes x every way an answer goes wrong.

Over real HTTP: the collector talks to a fault-injecting :class:`AwsProxy` in front of the
session's ``ThreadedMotoServer``. Each cell runs ``collect`` in process (a CLI subprocess
per cell would cost a second of start-up each); a few cells run the CLI itself, to prove
the exit code and that nothing reaches the user as a traceback.

For every cell, either the retries recovered -- the snapshot equals a clean run's, with no
error row -- or the affected unit (a listing) or resource (a get) has error rows naming the
operation, every control that needs its data answers ``error`` there, and the run is
``partial``. No cell may lose a row silently, change a verdict to anything but ``error``,
or turn into ``ok``. An STS failure leaves the one explicit account unreachable: a one-line
user error (exit 2), never a traceback.

The page tests aim at page N of every paginated listing (the proxy pages them): a throttled
page is asked again, never the listing from its start, so nothing doubles.
"""

from __future__ import annotations

import sqlite3
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterator

import boto3
import pytest

from aws_faults import FAULT_KINDS, Fault, Pager, mentions, page_number
from bedrock_sql.accounts import resolve_scope
from bedrock_sql.aws import AwsOptions
from bedrock_sql.controls import bundled_controls
from bedrock_sql.errors import UserError
from bedrock_sql.estate import SeededKey, SeededModel, create_key, seed_models
from bedrock_sql.providers import TABLES
from bedrock_sql.snapshot import collect
from bedrock_sql.sql import run_query, snapshot_connection
from conftest import reset_moto_server
from e2e_helpers import ACCOUNT_ID, AwsProxy, AwsRequest, cli_env, describe, run_cli
from helpers import fast_regions

REGION = "us-east-1"
UNIT = f"{ACCOUNT_ID}/{REGION}"  # how the controls name a whole account/region
MODELS, JOBS, KEYS, ALIASES = (
    "aws_bedrock_custom_model",
    "aws_bedrock_model_customization_job",
    "aws_kms_key",
    "aws_kms_alias",
)
MODEL_CONTROLS = (
    "bedrock_custom_model_encrypted_with_cmk",
    "bedrock_custom_model_cmk_usable",
    "bedrock_custom_model_cmk_rotation_enabled",
    "bedrock_custom_model_cmk_policy_not_public",
)
JOB_CONTROLS = ("bedrock_customization_job_output_encrypted_with_cmk", "bedrock_customization_job_in_vpc")
KEY_CONTROLS = MODEL_CONTROLS[:2]  # need the key's DescribeKey (manager, state)
STORM_ATTEMPTS = 3  # a throttling storm answers the first 3 attempts, then lets calls through
READ_TIMEOUT = "1"  # seconds, for the timeout cells (BEDROCK_SQL_READ_TIMEOUT)

# The error code bedrock_sql_errors records for a fault that outlasts the retries.
RECORDED_CODES = {
    "server-error": {"InternalServerException", "KMSInternalException"},
    "access-denied": {"AccessDeniedException"},
    "validation": {"ValidationException"},
    "html": {"InvalidResponse"},
    "truncated": {"InvalidResponse"},
    "empty": {"InvalidResponse"},
    "reset": {"ConnectionClosedError", "EndpointConnectionError"},
    "timeout": {"ReadTimeoutError"},
}


# --------------------------------------------------------------------------- the estate


@dataclass(frozen=True)
class Estate:
    """One region: a rotated CMK with three models (and their jobs), two Bedrock-owned
    models, and two more keys. Faults on a resource aim at the first CMK model, its job and
    the CMK."""

    key: SeededKey
    cmk_models: tuple[SeededModel, ...]
    owned_models: tuple[SeededModel, ...]

    @property
    def model(self) -> SeededModel:
        return self.cmk_models[0]


@pytest.fixture(scope="module")
def aws_env(tmp_path_factory: pytest.TempPathFactory) -> Iterator[None]:
    """The fake credentials of conftest's (function-scoped) fixture, for the module's fixtures."""
    nowhere = tmp_path_factory.mktemp("no-aws-config")
    with pytest.MonkeyPatch.context() as env:
        for name in ("AWS_PROFILE", "AWS_DEFAULT_PROFILE", "AWS_ENDPOINT_URL", "AWS_REGION", "BEDROCK_SQL_DB"):
            env.delenv(name, raising=False)
        env.setenv("AWS_CONFIG_FILE", str(nowhere / "config"))
        env.setenv("AWS_SHARED_CREDENTIALS_FILE", str(nowhere / "credentials"))
        env.setenv("AWS_ACCESS_KEY_ID", "testing")
        env.setenv("AWS_SECRET_ACCESS_KEY", "testing")
        env.setenv("AWS_SESSION_TOKEN", "testing")
        env.setenv("AWS_DEFAULT_REGION", REGION)
        env.setenv("AWS_EC2_METADATA_DISABLED", "true")
        env.setenv("BEDROCK_SQL_BACKOFF_BASE", "0.001")  # retries without sleeping
        yield


@pytest.fixture(scope="module")
def estate(moto_server: str, aws_env: None) -> Estate:
    """Seeded once for the module (the cells only read it): no test here resets the server."""
    reset_moto_server(moto_server)
    session = boto3.Session(region_name=REGION)
    key = create_key(session, REGION, alias="alias/matrix", rotation=True,
                     tags={"team": "ml", "env": "prod", "cost-center": "42"}, endpoint_url=moto_server)
    create_key(session, REGION, alias="alias/spare", endpoint_url=moto_server)
    create_key(session, REGION, endpoint_url=moto_server)
    cmk = seed_models(session, REGION, 3, key_arn=key.arn, prefix="cmk", endpoint_url=moto_server)
    owned = seed_models(session, REGION, 2, prefix="owned", endpoint_url=moto_server)
    return Estate(key, tuple(cmk), tuple(owned))


# --------------------------------------------------------------------------- what a run left


@dataclass
class Observed:
    """A snapshot, read back: rows by key, error rows, run status, every control's verdicts."""

    rows: dict[str, dict[tuple, tuple]]
    errors: list[tuple]  # (table_name, operation, error_code, resource)
    status: str
    notes: str  # bedrock_sql_runs.notes, JSON
    verdicts: dict[tuple[str, str], str] = field(default_factory=dict)  # (control, resource) -> status

    def failed(self, table: str, resource: str | None = None) -> bool:
        return any(e[0] == table and e[3] == resource for e in self.errors)


def observe(db: Path) -> Observed:
    with sqlite3.connect(f"file:{db}?mode=ro", uri=True) as conn:
        rows = {}
        for name, table in TABLES.items():
            key_columns = [table.column_names.index(c) for c in table.key]
            rows[name] = {tuple(r[i] for i in key_columns): r for r in conn.execute(f'SELECT * FROM "{name}"')}
        errors = conn.execute("SELECT table_name, operation, error_code, resource FROM bedrock_sql_errors").fetchall()
        status, notes = conn.execute("SELECT status, notes FROM bedrock_sql_runs").fetchone()
    observed = Observed(rows, sorted(errors, key=repr), status, notes)
    with snapshot_connection(db) as connection:  # as `check` opens it: views and all
        for control in bundled_controls():
            result = run_query(connection, control.sql)  # its columns even when it has no rows
            for row in result.rows:
                finding = dict(zip(result.columns, row))
                observed.verdicts[(control.id, finding["resource"])] = finding["status"]
    return observed


def collect_through(proxy: AwsProxy, db: Path) -> Observed:
    """Resolve the scope and collect, in process, through ``proxy``."""
    with fast_regions():
        scope = resolve_scope(AwsOptions(regions=(REGION,), endpoint_url=proxy.url))
    collect(scope, db)
    return observe(db)


@pytest.fixture(scope="module")
def clean(estate: Estate, moto_server: str, tmp_path_factory: pytest.TempPathFactory) -> Observed:
    with AwsProxy(moto_server) as proxy:
        observed = collect_through(proxy, tmp_path_factory.mktemp("clean") / "bedrock.db")
    assert observed.errors == [] and observed.status == "complete"
    assert len(observed.rows[MODELS]) == 5 and len(observed.rows[JOBS]) == 5 and len(observed.rows[KEYS]) == 3
    # The controls judge every model and job, and the CMK models pass the rules on their key.
    for control in MODEL_CONTROLS:
        assert observed.verdicts[(control, estate.model.model_arn)] in ("ok", "alarm"), control
    assert observed.verdicts[(MODEL_CONTROLS[0], estate.model.model_arn)] == "ok"
    assert "error" not in observed.verdicts.values()
    return observed


# --------------------------------------------------------------------------- the oracle


def assert_same_as_clean(observed: Observed, clean: Observed) -> None:
    assert observed.errors == [], observed.errors
    assert observed.status == "complete"
    assert observed.notes == clean.notes  # no duplicate dropped, nothing gone
    for table in TABLES:
        assert observed.rows[table] == clean.rows[table], f"{table} differs from the clean run"
    assert observed.verdicts == clean.verdicts


def assert_nothing_lost_silently(observed: Observed, clean: Observed) -> None:
    """Every clean row is still there (or its whole listing is recorded as failed); a row
    that differs has an error against it; no verdict changes except to ``error``."""
    assert observed.status == "partial"
    for table, clean_rows in clean.rows.items():
        rows = observed.rows[table]
        assert set(rows) <= set(clean_rows), f"{table}: rows no clean run has"
        for key, clean_row in clean_rows.items():
            if key not in rows:
                assert observed.failed(table), f"{table}: {key} vanished without an error row"
            elif rows[key] != clean_row:
                assert observed.failed(table, key[0]), f"{table}: {key} changed without an error against it"
    for finding, verdict in observed.verdicts.items():
        expected = clean.verdicts.get(finding)
        assert verdict in (expected, "error"), (finding, expected, verdict)
    for finding in clean.verdicts.keys() - observed.verdicts.keys():
        table = MODELS if finding[0] in MODEL_CONTROLS else JOBS
        assert observed.failed(table), f"{finding} is no longer judged, and no listing failed"


# --------------------------------------------------------------------------- the cells


@dataclass(frozen=True)
class Operation:
    """An operation the collector makes, what a fault on it hits, and who must say error."""

    service: str
    name: str
    aim: str  # "unit" (a listing), or the resource faulted: "model", "job", "key"
    tables: tuple[str, ...]  # the tables whose error rows record the failure
    controls: tuple[str, ...] = ()  # the controls that must answer error ...
    judged: str = ""  # ... on: "unit", "model", "job" or "cmk-models"


OPERATIONS = (
    Operation("bedrock", "ListCustomModels", "unit", (MODELS,), MODEL_CONTROLS, "unit"),
    Operation("bedrock", "GetCustomModel", "model", (MODELS,), MODEL_CONTROLS, "model"),
    Operation("bedrock", "ListTagsForResource", "model", (MODELS,)),  # tags feed no verdict
    Operation("bedrock", "ListModelCustomizationJobs", "unit", (JOBS,), JOB_CONTROLS, "unit"),
    Operation("bedrock", "GetModelCustomizationJob", "job", (JOBS,), JOB_CONTROLS, "job"),
    Operation("kms", "ListKeys", "unit", (KEYS,), MODEL_CONTROLS, "cmk-models"),
    Operation("kms", "DescribeKey", "key", (KEYS,), MODEL_CONTROLS, "cmk-models"),
    Operation("kms", "GetKeyRotationStatus", "key", (KEYS,), ("bedrock_custom_model_cmk_rotation_enabled",), "cmk-models"),
    Operation("kms", "GetKeyPolicy", "key", (KEYS,), ("bedrock_custom_model_cmk_policy_not_public",), "cmk-models"),
    Operation("kms", "ListResourceTags", "key", (KEYS,)),  # tags feed no verdict
    # One ListAliases serves both KMS tables (the keys' aliases column): both record it.
    Operation("kms", "ListAliases", "unit", (KEYS, ALIASES), MODEL_CONTROLS, "cmk-models"),
)
STS = Operation("sts", "GetCallerIdentity", "unit", ())


def fault_on(operation: Operation, kind: str, estate: Estate, *, times: int | None = None) -> Fault:
    aimed = {
        "unit": None,
        "model": mentions(estate.model.model_arn),
        "job": mentions(estate.model.job_name),
        "key": mentions(estate.key.key_id),
    }[operation.aim]
    return Fault(kind, operation.service, operation.name, where=aimed, times=times)


def resource_of(operation: Operation, estate: Estate) -> str | None:
    return {
        "unit": None,
        "model": estate.model.model_arn,
        "job": estate.model.job_arn,
        "key": estate.key.arn,
    }[operation.aim]


def judged_resources(operation: Operation, estate: Estate) -> list[str]:
    return {
        "unit": [UNIT],
        "model": [estate.model.model_arn],
        "job": [estate.model.job_arn],
        "cmk-models": [m.model_arn for m in estate.cmk_models],
        "": [],
    }[operation.judged]


def assert_recorded(observed: Observed, clean: Observed, operation: Operation, kind: str, estate: Estate) -> None:
    assert_nothing_lost_silently(observed, clean)
    resource = resource_of(operation, estate)
    assert {(e[0], e[3]) for e in observed.errors} == {(table, resource) for table in operation.tables}, observed.errors
    for table, name, code, _resource in observed.errors:
        assert name == operation.name, observed.errors  # nothing else failed
        assert code in RECORDED_CODES[kind], observed.errors
    for control in operation.controls:
        for judged in judged_resources(operation, estate):
            assert observed.verdicts.get((control, judged)) == "error", (control, judged, observed.verdicts)


@dataclass
class Outcome:
    """What one cell left: the snapshot read back, or the user error collect stopped with."""

    observed: Observed | None
    refused: UserError | None
    hits: int  # requests the fault answered
    db: Path


def run_cell(operation: Operation, kind: str, estate: Estate, moto_server: str, db: Path) -> Outcome:
    storm = kind == "throttling"
    fault = fault_on(operation, kind, estate, times=STORM_ATTEMPTS if storm else None)
    with AwsProxy(moto_server, fault) as proxy:
        try:
            return Outcome(collect_through(proxy, db), None, fault.hits, db)
        except UserError as exc:
            return Outcome(None, exc, fault.hits, db)


@pytest.fixture(scope="module")
def timeout_outcomes(estate: Estate, moto_server: str, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Outcome]:
    """The read-timeout cells, run at once: each waits out BEDROCK_SQL_READ_TIMEOUT on
    every attempt (seconds of sleeping, not work), so one after another they would take
    most of the matrix's time. Each is still judged in its own test."""
    operations = [*OPERATIONS, STS]
    folder = tmp_path_factory.mktemp("timeouts")
    with pytest.MonkeyPatch.context() as env, fast_regions(), ThreadPoolExecutor(len(operations)) as pool:
        env.setenv("BEDROCK_SQL_READ_TIMEOUT", READ_TIMEOUT)
        futures = {
            op.name: pool.submit(run_cell, op, "timeout", estate, moto_server, folder / f"{op.name}.db")
            for op in operations
        }
        return {name: future.result() for name, future in futures.items()}


def outcome_of(operation: Operation, kind: str, request: pytest.FixtureRequest, tmp_path: Path) -> Outcome:
    if kind == "timeout":
        return request.getfixturevalue("timeout_outcomes")[operation.name]
    return run_cell(operation, kind, request.getfixturevalue("estate"), request.getfixturevalue("moto_server"),
                    tmp_path / "bedrock.db")


@pytest.mark.parametrize("kind", FAULT_KINDS)
@pytest.mark.parametrize("operation", OPERATIONS, ids=lambda operation: operation.name)
def test_fault_cell(
    operation: Operation, kind: str, estate: Estate, clean: Observed, request: pytest.FixtureRequest, tmp_path: Path
) -> None:
    outcome = outcome_of(operation, kind, request, tmp_path)
    assert outcome.refused is None, outcome.refused
    if kind == "throttling":
        assert outcome.hits == STORM_ATTEMPTS, "the storm was never met"
        assert_same_as_clean(outcome.observed, clean)
    else:
        assert outcome.hits >= 1, "the fault was never met"
        assert_recorded(outcome.observed, clean, operation, kind, estate)


@pytest.mark.parametrize("kind", FAULT_KINDS)
def test_sts_fault_cell(kind: str, clean: Observed, request: pytest.FixtureRequest, tmp_path: Path) -> None:
    """GetCallerIdentity identifies the one explicit account: failing, nothing can be
    collected, and that is a one-line user error (the CLI exits 2), never a traceback or
    an empty snapshot."""
    outcome = outcome_of(STS, kind, request, tmp_path)
    if kind == "throttling":
        assert outcome.hits == STORM_ATTEMPTS
        assert outcome.refused is None
        assert_same_as_clean(outcome.observed, clean)
        return
    assert outcome.hits >= 1
    assert outcome.refused is not None, "collect went on without an account"
    message = str(outcome.refused)
    assert message and "\n" not in message, message
    assert not outcome.db.exists()


# --------------------------------------------------------------------------- the CLI


@pytest.mark.parametrize(
    "operation, kind",
    [(OPERATIONS[0], "html"), (OPERATIONS[1], "validation"), (OPERATIONS[6], "truncated")],
    ids=["ListCustomModels-html", "GetCustomModel-validation", "DescribeKey-truncated"],
)
def test_cli_collect_exits_2_with_the_failure_recorded(
    operation: Operation, kind: str, estate: Estate, clean: Observed, moto_server: str, tmp_path: Path
) -> None:
    with AwsProxy(moto_server, fault_on(operation, kind, estate)) as proxy:
        result = run_cli(["collect", "--region", REGION], cwd=tmp_path,
                         env=cli_env(proxy.url, BEDROCK_SQL_BACKOFF_BASE="0.001"))
    assert result.returncode == 2, describe(result)
    assert "Traceback" not in result.stderr
    assert f"{operation.name}" in result.stderr and "Partial snapshot" in result.stderr, describe(result)
    assert_recorded(observe(tmp_path / "bedrock.db"), clean, operation, kind, estate)
    checked = run_cli(["check", "--output", "json"], cwd=tmp_path, env=cli_env())
    assert checked.returncode == 2, describe(checked)  # some control answers error


@pytest.mark.parametrize("kind", ["html", "access-denied"])
def test_cli_collect_without_an_account_is_one_line(kind: str, estate: Estate, moto_server: str, tmp_path: Path) -> None:
    with AwsProxy(moto_server, fault_on(STS, kind, estate)) as proxy:
        result = run_cli(["collect", "--region", REGION], cwd=tmp_path,
                         env=cli_env(proxy.url, BEDROCK_SQL_BACKOFF_BASE="0.001"))
    assert result.returncode == 2, describe(result)
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("bedrock-sql: error: "), describe(result)
    assert not (tmp_path / "bedrock.db").exists()


# --------------------------------------------------------------------------- nothing doubles

PAGED = (  # every paginated operation the collector makes: (service, operation, pages it has)
    ("bedrock", "ListCustomModels", 3),  # 5 models, 2 a page
    ("bedrock", "ListModelCustomizationJobs", 3),
    ("kms", "ListKeys", 2),  # 3 keys
    ("kms", "ListAliases", 8),  # 2 aliases and moto's 14 alias/aws/* ones
    ("kms", "ListResourceTags", 2),  # the CMK's 3 tags (the other keys have none: one page)
)


class ThrottlePage:
    """Throttle page ``number`` of ``operation`` twice, then let it through."""

    def __init__(self, service: str, operation: str, number: int, times: int = 2):
        self.service, self.operation, self.number, self.times = service, operation, number, times
        self.hits = 0

    def __call__(self, request: AwsRequest):
        if request.service == self.service and request.operation == self.operation and page_number(request) == self.number:
            if self.hits < self.times:
                self.hits += 1
                return Fault("throttling", self.service, self.operation)(request)
        return None


def pages_asked(proxy: AwsProxy) -> Counter[tuple[str | None, int]]:
    """How often each (operation, page number) was asked."""
    return Counter((r.operation, page_number(r)) for r in proxy.requests)


@pytest.fixture(scope="module")
def clean_paged(estate: Estate, moto_server: str, tmp_path_factory: pytest.TempPathFactory) -> tuple[Observed, Counter]:
    with AwsProxy(moto_server, pager=Pager(2)) as proxy:
        observed = collect_through(proxy, tmp_path_factory.mktemp("paged") / "bedrock.db")
        asked = pages_asked(proxy)
    assert observed.errors == []
    for _service, operation, pages in PAGED:  # the proxy really paged each listing
        assert max(n for op, n in asked if op == operation) == pages, (operation, asked)
    return observed, asked


@pytest.mark.parametrize("number", ["second", "last"])
@pytest.mark.parametrize("service, operation, pages", PAGED, ids=[p[1] for p in PAGED])
def test_a_throttled_page_is_asked_again_not_the_listing(
    service: str, operation: str, pages: int, number: str, clean_paged: tuple[Observed, Counter],
    clean: Observed, moto_server: str, tmp_path: Path,
) -> None:
    expected, clean_asked = clean_paged
    page = 2 if number == "second" else pages
    rule = ThrottlePage(service, operation, page)
    with AwsProxy(moto_server, rule, pager=Pager(2)) as proxy:
        observed = collect_through(proxy, tmp_path / "bedrock.db")
        asked = pages_asked(proxy)
    assert rule.hits == 2, "the page was never throttled"
    assert_same_as_clean(observed, expected)
    assert expected.rows == clean.rows  # paged or not, the same estate
    # The throttled page was asked twice more; no other page (page 1 least of all) again.
    assert asked == clean_asked + Counter({(operation, page): rule.hits}), asked - clean_asked
