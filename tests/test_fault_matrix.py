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

The matrix checks itself: the calls of a clean collect must be exactly its cells (a new
table's list, get or tags call fails until it joins OPERATIONS), every listing the proxy
pages must have page cells, and every bundled control must be judged (CONTROL_TABLES).
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

from aws_faults import FAULT_KINDS, Fault, Pager, call_of, mentions, page_number
from bedrock_sql.accounts import resolve_scope
from bedrock_sql.aws import AwsOptions
from bedrock_sql.controls import bundled_controls
from bedrock_sql.diff_changes import listed_in
from bedrock_sql.errors import UserError
from bedrock_sql.estate import SeededKey, SeededModel, _client, create_key, seed_models
from bedrock_sql.estate_served import copy_model, deploy_model, import_model, provision_throughput
from bedrock_sql.providers import TABLES
from bedrock_sql.snapshot import collect
from bedrock_sql.sql import run_query, snapshot_connection
from conftest import reset_moto_server
from e2e_helpers import ACCOUNT_ID, AwsProxy, AwsRequest, cli_env, describe, run_cli, shared_service_models
from helpers import fast_regions

REGION = "us-east-1"
UNIT = f"{ACCOUNT_ID}/{REGION}"  # how the controls name a whole account/region
MODELS, JOBS, KEYS, ALIASES = (
    "aws_bedrock_custom_model",
    "aws_bedrock_model_customization_job",
    "aws_kms_key",
    "aws_kms_alias",
)
IMPORTED, IMPORT_JOBS, COPY_JOBS, THROUGHPUTS, DEPLOYMENTS = (
    "aws_bedrock_imported_model",
    "aws_bedrock_model_import_job",
    "aws_bedrock_model_copy_job",
    "aws_bedrock_provisioned_model_throughput",
    "aws_bedrock_custom_model_deployment",
)
MODEL_CONTROLS = (
    "bedrock_custom_model_encrypted_with_cmk",
    "bedrock_custom_model_cmk_usable",
    "bedrock_custom_model_cmk_rotation_enabled",
    "bedrock_custom_model_cmk_policy_not_public",
)
# The rules on a model's key (usable, rotation, policy) judge custom and imported models alike.
KEY_CONTROLS = MODEL_CONTROLS[1:]
JOB_CONTROLS = ("bedrock_customization_job_output_encrypted_with_cmk", "bedrock_customization_job_in_vpc")
IMPORTED_CONTROLS = ("bedrock_imported_model_encrypted_with_cmk",)
# The tables whose listings decide what each control judges: a bundled control missing here
# fails the clean run, so a new control joins the matrix's judgement.
CONTROL_TABLES = {
    **dict.fromkeys(MODEL_CONTROLS, (MODELS,)), **dict.fromkeys(KEY_CONTROLS, (MODELS, IMPORTED)),
    **dict.fromkeys(JOB_CONTROLS, (JOBS,)), **dict.fromkeys(IMPORTED_CONTROLS, (IMPORTED,)),
}
# The controls that judge the imported model on the CMK, and so answer error when it or its key cannot be read.
IMPORTED_MODEL_CONTROLS = (*IMPORTED_CONTROLS, *KEY_CONTROLS)
STORM_ATTEMPTS = 3  # a throttling storm answers the first 3 attempts, then lets calls through
READ_TIMEOUT = "1"  # seconds, for the timeout cells (BEDROCK_SQL_READ_TIMEOUT)
TIMEOUT_CELLS_AT_ONCE = 4

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
    models, two copies (one on the CMK), two imported models (one on the CMK, named by its
    alias) with their import jobs, two throughputs and two deployments serving custom
    models, and two more keys. Two of each new resource, so each listing has a second page
    when the proxy pages at one item. Faults on a resource aim at the first of its kind:
    the first CMK model and its job, the CMK, the CMK's imported model and its job, the
    first throughput and deployment."""

    key: SeededKey
    cmk_models: tuple[SeededModel, ...]
    owned_models: tuple[SeededModel, ...]
    cmk_copy: str  # the copy's model ARN
    imported: tuple[dict[str, str], ...]  # import_model's answers: on the CMK, then on Bedrock's key
    throughputs: tuple[str, ...]
    deployments: tuple[str, ...]

    @property
    def model(self) -> SeededModel:
        return self.cmk_models[0]

    def target(self, aim: str) -> tuple[str, str] | None:
        """What a fault aimed at ``aim`` looks for in a request, and the ARN its error row names."""
        return {
            "unit": None,
            "custom-model": (self.model.model_arn, self.model.model_arn),
            # moto gets and tags jobs by name (by ARN fails): the job's name aims at it
            "model-customization-job": (self.model.job_name, self.model.job_arn),
            "key": (self.key.key_id, self.key.arn),
            "imported-model": (self.imported[0]["model_arn"],) * 2,
            "model-import-job": (self.imported[0]["job_arn"],) * 2,
            "provisioned-model": (self.throughputs[0],) * 2,
            "custom-model-deployment": (self.deployments[0],) * 2,
        }[aim]

    def judged(self, what: str) -> list[str]:
        """The resources named by ``what`` in an :class:`Operation`'s verdicts."""
        return {
            "unit": [UNIT],
            "model": [self.model.model_arn],
            "job": [self.model.job_arn],
            "cmk-models": [*(m.model_arn for m in self.cmk_models), self.cmk_copy],
            "imported": [self.imported[0]["model_arn"]],  # the one on the CMK: ok, when read
        }[what]


@pytest.fixture(scope="module", autouse=True)
def one_model_loader() -> Iterator[None]:
    """Hundreds of in-process collects parse botocore's service models once, not each."""
    with shared_service_models():
        yield


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
    bedrock = _client(session, "bedrock", REGION, moto_server)
    cmk_copy = copy_model(bedrock, cmk[2].model_arn, "cmk-copy", kms_key=key.arn, tags={"copied": "yes"})
    copy_model(bedrock, owned[0].model_arn, "owned-copy")
    imported = (
        import_model(bedrock, "imported-cmk", kms_key="alias/matrix", tags={"team": "ml"}),
        import_model(bedrock, "imported-owned"),
    )
    throughputs = (
        provision_throughput(bedrock, "pt-owned", owned[1].model_arn, tags={"team": "ml"}),
        provision_throughput(bedrock, "pt-copy", cmk_copy["target_model_arn"]),
    )
    deployments = (
        deploy_model(bedrock, "deploy-cmk", cmk[1].model_arn, description="serves cmk", tags={"team": "ml"}),
        deploy_model(bedrock, "deploy-owned", owned[0].model_arn),
    )
    return Estate(key, tuple(cmk), tuple(owned), cmk_copy["target_model_arn"], imported, throughputs, deployments)


# --------------------------------------------------------------------------- what a run left


@dataclass
class Observed:
    """A snapshot, read back: rows by key, error rows, run status, every control's verdicts."""

    rows: dict[str, dict[tuple, tuple]]
    errors: list[tuple]  # (table_name, operation, error_code, resource)
    status: str
    notes: str  # bedrock_sql_runs.notes, JSON
    verdicts: dict[tuple[str, str], str] = field(default_factory=dict)  # (control, resource) -> status
    findings: dict[tuple[str, str], dict] = field(default_factory=dict)  # (control, resource) -> its row

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
                observed.findings[(control.id, finding["resource"])] = finding
    return observed


def collect_through(proxy: AwsProxy, db: Path) -> Observed:
    """Resolve the scope and collect, in process, through ``proxy``."""
    with fast_regions():
        scope = resolve_scope(AwsOptions(regions=(REGION,), endpoint_url=proxy.url))
    # Every key listed and described, as the matrix's KMS cells expect (the by-need reads of
    # the default collect are faulted in tests/test_kms_need.py).
    collect(scope, db, kms_keys="all")
    return observe(db)


CallsMade = set[tuple[str | None, str | None, str]]  # call_of() of every request of a collect


@pytest.fixture(scope="module")
def clean_run(estate: Estate, moto_server: str, tmp_path_factory: pytest.TempPathFactory) -> tuple[Observed, CallsMade]:
    with AwsProxy(moto_server) as proxy:
        observed = collect_through(proxy, tmp_path_factory.mktemp("clean") / "bedrock.db")
        calls = {call_of(request) for request in proxy.requests}
    assert observed.errors == [] and observed.status == "complete"
    counts = {table: len(rows) for table, rows in observed.rows.items()}
    assert counts == {MODELS: 7, JOBS: 5, KEYS: 3, ALIASES: counts[ALIASES], IMPORTED: 2, IMPORT_JOBS: 2,
                      COPY_JOBS: 2, THROUGHPUTS: 2, DEPLOYMENTS: 2}, counts
    assert {control.id for control in bundled_controls()} == set(CONTROL_TABLES), "a control the matrix does not judge"
    # The controls judge every model and job, and the models on the CMK pass the rules on their key.
    for control in MODEL_CONTROLS:
        assert observed.verdicts[(control, estate.model.model_arn)] in ("ok", "alarm"), control
    for model in estate.judged("cmk-models"):
        assert observed.verdicts[(MODEL_CONTROLS[0], model)] == "ok", model
    assert observed.verdicts[(IMPORTED_CONTROLS[0], estate.imported[0]["model_arn"])] == "ok"
    assert observed.verdicts[(IMPORTED_CONTROLS[0], estate.imported[1]["model_arn"])] == "alarm"
    # The key rules judge the imported model on the CMK by its key, and skip the one on Bedrock's.
    for control in KEY_CONTROLS:
        assert observed.verdicts[(control, estate.imported[0]["model_arn"])] in ("ok", "alarm"), control
        assert observed.verdicts[(control, estate.imported[1]["model_arn"])] == "skip", control
    assert "error" not in observed.verdicts.values()
    return observed, calls


@pytest.fixture(scope="module")
def clean(clean_run: tuple[Observed, CallsMade]) -> Observed:
    return clean_run[0]


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
    for control, resource in clean.verdicts.keys() - observed.verdicts.keys():
        table = listed_in(resource)  # the listing that yields the resource must have failed
        assert table in CONTROL_TABLES[control] and observed.failed(table), \
            f"{(control, resource)} is no longer judged, and its listing did not fail"


# --------------------------------------------------------------------------- the cells


Verdicts = tuple[tuple[tuple[str, ...], str], ...]  # ((controls, resources: an Estate.judged name), ...)


@dataclass(frozen=True)
class Operation:
    """An operation the collector makes, what a fault on it hits, and who must say error."""

    service: str
    name: str
    aim: str  # "unit" (a listing), or the kind of resource faulted (an Estate.target name)
    tables: tuple[str, ...]  # the tables whose error rows record the failure
    verdicts: Verdicts = ()  # the controls that must answer error, and on what

    @property
    def id(self) -> str:
        return f"{self.name}-{self.aim}" if self.name == "ListTagsForResource" else self.name

    @property
    def call(self) -> tuple[str, str, str]:
        """As :func:`aws_faults.call_of` names the requests this cell aims at."""
        return self.service, self.name, self.aim if self.name == "ListTagsForResource" else ""


KEY_VERDICTS: Verdicts = ((MODEL_CONTROLS, "cmk-models"), (IMPORTED_MODEL_CONTROLS, "imported"))

OPERATIONS = (
    Operation("bedrock", "ListCustomModels", "unit", (MODELS,), ((MODEL_CONTROLS, "unit"),)),
    Operation("bedrock", "GetCustomModel", "custom-model", (MODELS,), ((MODEL_CONTROLS, "model"),)),
    Operation("bedrock", "ListTagsForResource", "custom-model", (MODELS,)),  # tags feed no verdict
    Operation("bedrock", "ListModelCustomizationJobs", "unit", (JOBS,), ((JOB_CONTROLS, "unit"),)),
    Operation("bedrock", "GetModelCustomizationJob", "model-customization-job", (JOBS,), ((JOB_CONTROLS, "job"),)),
    Operation("bedrock", "ListTagsForResource", "model-customization-job", (JOBS,)),
    Operation("bedrock", "ListImportedModels", "unit", (IMPORTED,), ((IMPORTED_MODEL_CONTROLS, "unit"),)),
    Operation("bedrock", "GetImportedModel", "imported-model", (IMPORTED,), ((IMPORTED_MODEL_CONTROLS, "imported"),)),
    Operation("bedrock", "ListTagsForResource", "imported-model", (IMPORTED,)),
    # No control judges import jobs, copy jobs or what serves a model (their rows feed
    # remediation, a copy's kind, and the CMK rules' in_use/served_by columns).
    Operation("bedrock", "ListModelImportJobs", "unit", (IMPORT_JOBS,)),
    Operation("bedrock", "GetModelImportJob", "model-import-job", (IMPORT_JOBS,)),
    Operation("bedrock", "ListTagsForResource", "model-import-job", (IMPORT_JOBS,)),
    Operation("bedrock", "ListModelCopyJobs", "unit", (COPY_JOBS,)),  # the listing carries all: no get
    Operation("bedrock", "ListProvisionedModelThroughputs", "unit", (THROUGHPUTS,)),
    Operation("bedrock", "GetProvisionedModelThroughput", "provisioned-model", (THROUGHPUTS,)),
    Operation("bedrock", "ListTagsForResource", "provisioned-model", (THROUGHPUTS,)),
    Operation("bedrock", "ListCustomModelDeployments", "unit", (DEPLOYMENTS,)),
    Operation("bedrock", "GetCustomModelDeployment", "custom-model-deployment", (DEPLOYMENTS,)),
    Operation("bedrock", "ListTagsForResource", "custom-model-deployment", (DEPLOYMENTS,)),
    Operation("kms", "ListKeys", "unit", (KEYS,), KEY_VERDICTS),
    Operation("kms", "DescribeKey", "key", (KEYS,), KEY_VERDICTS),
    Operation("kms", "GetKeyRotationStatus", "key", (KEYS,),
              (((MODEL_CONTROLS[2],), "cmk-models"), ((MODEL_CONTROLS[2],), "imported"))),
    Operation("kms", "GetKeyPolicy", "key", (KEYS,), (((MODEL_CONTROLS[3],), "cmk-models"), ((MODEL_CONTROLS[3],), "imported"))),
    Operation("kms", "ListResourceTags", "key", (KEYS,)),  # tags feed no verdict
    # One ListAliases serves both KMS tables (the keys' aliases column): both record it.
    Operation("kms", "ListAliases", "unit", (KEYS, ALIASES), KEY_VERDICTS),
)
STS = Operation("sts", "GetCallerIdentity", "unit", ())
BY_ID = {operation.id: operation for operation in (*OPERATIONS, STS)}
assert len(BY_ID) == len(OPERATIONS) + 1, "two cells with one id"


def test_the_matrix_covers_every_call_a_clean_collect_makes(clean_run: tuple[Observed, CallsMade]) -> None:
    """A provider's new call (or a new table's tags) fails here until it joins OPERATIONS,
    and a cell whose call the collector no longer makes fails too."""
    _observed, calls = clean_run
    assert calls == {operation.call for operation in BY_ID.values()}


def fault_on(operation: Operation, kind: str, estate: Estate, *, times: int | None = None) -> Fault:
    target = estate.target(operation.aim)
    aimed = mentions(target[0]) if target else None
    return Fault(kind, operation.service, operation.name, where=aimed, times=times)


def assert_recorded(observed: Observed, clean: Observed, operation: Operation, kind: str, estate: Estate) -> None:
    assert_nothing_lost_silently(observed, clean)
    target = estate.target(operation.aim)
    resource = target[1] if target else None
    assert {(e[0], e[3]) for e in observed.errors} == {(table, resource) for table in operation.tables}, observed.errors
    for table, name, code, _resource in observed.errors:
        assert name == operation.name, observed.errors  # nothing else failed
        assert code in RECORDED_CODES[kind], observed.errors
    for controls, judged in operation.verdicts:
        for control in controls:
            for judged_resource in estate.judged(judged):
                assert observed.verdicts.get((control, judged_resource)) == "error", (control, judged_resource)


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
    # A few at a time: every collect runs in this process (one GIL with moto and the proxies),
    # and a burst of all of them at once would make healthy answers miss the 1 s timeout too.
    with pytest.MonkeyPatch.context() as env, fast_regions(), ThreadPoolExecutor(TIMEOUT_CELLS_AT_ONCE) as pool:
        env.setenv("BEDROCK_SQL_READ_TIMEOUT", READ_TIMEOUT)
        futures = {
            op.id: pool.submit(run_cell, op, "timeout", estate, moto_server, folder / f"{op.id}.db")
            for op in operations
        }
        return {name: future.result() for name, future in futures.items()}


def outcome_of(operation: Operation, kind: str, request: pytest.FixtureRequest, tmp_path: Path) -> Outcome:
    if kind == "timeout":
        return request.getfixturevalue("timeout_outcomes")[operation.id]
    return run_cell(operation, kind, request.getfixturevalue("estate"), request.getfixturevalue("moto_server"),
                    tmp_path / "bedrock.db")


@pytest.mark.parametrize("kind", FAULT_KINDS)
@pytest.mark.parametrize("operation", OPERATIONS, ids=lambda operation: operation.id)
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


@pytest.mark.parametrize("operation_id, served", [("ListProvisionedModelThroughputs", "owned[1]"),
                                                  ("ListCustomModelDeployments", "cmk[1]")])
def test_a_lost_serving_listing_never_says_not_in_use(
    operation_id: str, served: str, estate: Estate, clean: Observed, moto_server: str, tmp_path: Path
) -> None:
    """The CMK rules' in_use/served_by come from the throughput and deployment listings:
    when one failed, whether the model is in use is unknown, never 0."""
    model = {"owned[1]": estate.owned_models[1], "cmk[1]": estate.cmk_models[1]}[served].model_arn
    assert clean.findings[(MODEL_CONTROLS[0], model)]["in_use"] == 1
    outcome = run_cell(BY_ID[operation_id], "access-denied", estate, moto_server, tmp_path / "bedrock.db")
    finding = outcome.observed.findings[(MODEL_CONTROLS[0], model)]
    assert finding["in_use"] is None, finding
    if finding["status"] == "alarm":
        assert "whether it is in use is unknown" in finding["reason"], finding


# --------------------------------------------------------------------------- the CLI


@pytest.mark.parametrize(
    "operation, kind",
    [(BY_ID["ListCustomModels"], "html"), (BY_ID["GetCustomModel"], "validation"), (BY_ID["DescribeKey"], "truncated"),
     (BY_ID["GetImportedModel"], "access-denied")],
    ids=["ListCustomModels-html", "GetCustomModel-validation", "DescribeKey-truncated", "GetImportedModel-access-denied"],
)
def test_cli_collect_exits_2_with_the_failure_recorded(
    operation: Operation, kind: str, estate: Estate, clean: Observed, moto_server: str, tmp_path: Path
) -> None:
    with AwsProxy(moto_server, fault_on(operation, kind, estate)) as proxy:
        # --kms-keys all, as the clean run it is compared with (by need, the keys of models
        # whose listing failed are not read at all).
        result = run_cli(["collect", "--kms-keys", "all", "--region", REGION], cwd=tmp_path,
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

PAGE_SIZE = 1  # items a page: every listing of the estate has a second page
PAGED = (  # every paginated operation the collector makes: (service, operation, pages it has)
    ("bedrock", "ListCustomModels", 7),  # 5 models and 2 copies
    ("bedrock", "ListModelCustomizationJobs", 5),
    ("bedrock", "ListImportedModels", 2),
    ("bedrock", "ListModelImportJobs", 2),
    ("bedrock", "ListModelCopyJobs", 2),
    ("bedrock", "ListProvisionedModelThroughputs", 2),
    ("bedrock", "ListCustomModelDeployments", 2),
    ("kms", "ListKeys", 3),
    ("kms", "ListAliases", 16),  # 2 aliases and moto's 14 alias/aws/* ones
    ("kms", "ListResourceTags", 3),  # the CMK's 3 tags (the other keys have none: one page)
)
# Page 2 and the last page of each (one cell when they are the same page).
PAGE_CELLS = [(service, operation, page) for service, operation, pages in PAGED for page in sorted({2, pages})]


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
    with AwsProxy(moto_server, pager=Pager(PAGE_SIZE)) as proxy:
        observed = collect_through(proxy, tmp_path_factory.mktemp("paged") / "bedrock.db")
        asked = pages_asked(proxy)
    assert observed.errors == []
    # The proxy really paged each listing, and PAGED names every listing it paged: a new
    # paginated operation fails here until it has its page cells.
    last_pages = {operation: max(n for op, n in asked if op == operation) for operation, _n in asked}
    assert {op: n for op, n in last_pages.items() if n > 1} == {op: n for _s, op, n in PAGED}, last_pages
    return observed, asked


@pytest.mark.parametrize("service, operation, page", PAGE_CELLS, ids=[f"{c[1]}-page{c[2]}" for c in PAGE_CELLS])
def test_a_throttled_page_is_asked_again_not_the_listing(
    service: str, operation: str, page: int, clean_paged: tuple[Observed, Counter],
    clean: Observed, moto_server: str, tmp_path: Path,
) -> None:
    expected, clean_asked = clean_paged
    rule = ThrottlePage(service, operation, page)
    with AwsProxy(moto_server, rule, pager=Pager(PAGE_SIZE)) as proxy:
        observed = collect_through(proxy, tmp_path / "bedrock.db")
        asked = pages_asked(proxy)
    assert rule.hits == 2, "the page was never throttled"
    assert_same_as_clean(observed, expected)
    assert expected.rows == clean.rows  # paged or not, the same estate
    # The throttled page was asked twice more; no other page (page 1 least of all) again.
    assert asked == clean_asked + Counter({(operation, page): rule.hits}), asked - clean_asked
