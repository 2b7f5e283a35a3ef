"""The AWS session layer: which accounts and regions to scan, and how to call them.

Everything that talks to AWS goes through :class:`UnitApi`, one per (account, region)
unit, so that retries, call counting and error translation live in one place.

:func:`resolve_scope` is the single entry point that turns the AWS options (profiles,
roles, the AWS Organization, an accounts file; regions) into the accounts and units a
command scans.
"""

from __future__ import annotations

import functools
import getpass
import os
import random
import re
import socket
import threading
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field, replace
from typing import Any, Callable, Iterator

import boto3
import botocore.credentials
import botocore.exceptions
import botocore.session
from botocore.config import Config

from . import __version__
from .accounts_file import ACCOUNT_ID, read_accounts_file, role_arn_account
from .errors import UserError

# Error codes that mean "slow down", across Bedrock, KMS and STS.
THROTTLE_CODES = frozenset(
    {
        "ThrottlingException",
        "Throttling",
        "ThrottledException",
        "TooManyRequestsException",
        "RequestLimitExceeded",
        "RequestThrottled",
        "RequestThrottledException",
        "SlowDown",
        "ProvisionedThroughputExceededException",
        "LimitExceededException",
    }
)

# Services called only to reach the accounts (AssumeRole, GetCallerIdentity, ListAccounts):
# not counted in ``ClientFactory.calls``, which measures the scan itself.
RESOLUTION_SERVICES = frozenset({"sts", "organizations"})

DEFAULT_MAX_ATTEMPTS = 12
# Attempts for network failures and 5xx answers, which rarely heal within seconds.
TRANSIENT_ATTEMPTS = 3
TRANSIENT_CODES = frozenset(
    {"InternalServerException", "InternalFailure", "InternalError", "ServiceUnavailable",
     "ServiceUnavailableException", "RequestTimeout", "RequestTimeoutException"}
)
DEFAULT_MAX_WORKERS = 16


@dataclass(frozen=True)
class AwsOptions:
    """The AWS options shared by collect, live query/check and remediate."""

    profiles: tuple[str, ...] = ()
    regions: tuple[str, ...] = ()
    all_regions: bool = False
    role_arns: tuple[str, ...] = ()
    external_id: str | None = None
    endpoint_url: str | None = None
    max_workers: int = DEFAULT_MAX_WORKERS
    org_role: str | None = None  # assume this role in every active account of the Organization
    org_exclude: tuple[str, ...] = ()  # account IDs --org-role skips
    accounts_file: str | None = None  # CSV or JSON: the accounts, how to reach each, their regions


class ApiError(Exception):
    """An AWS call that failed for good (after retries), with what bedrock_sql_errors records."""

    def __init__(self, operation: str, code: str, message: str):
        super().__init__(f"{operation}: {code}: {message}")
        self.operation = operation
        self.code = code
        self.message = message


def max_attempts() -> int:
    """Attempts per throttled call: ``AWS_MAX_ATTEMPTS`` overrides the default."""
    raw = os.environ.get("AWS_MAX_ATTEMPTS")
    if not raw:
        return DEFAULT_MAX_ATTEMPTS
    try:
        value = int(raw)
    except ValueError:
        raise UserError(f"AWS_MAX_ATTEMPTS must be a whole number, not {raw!r}") from None
    if value < 1:
        raise UserError("AWS_MAX_ATTEMPTS must be at least 1")
    return value


def backoff_delay(attempt: int, base: float = 0.25, cap: float = 20.0) -> float:
    """Exponential backoff with full jitter (attempt counts from 1)."""
    return random.uniform(0, min(cap, base * 2 ** (attempt - 1)))


def _error_code(exc: BaseException) -> tuple[str, str]:
    if isinstance(exc, botocore.exceptions.ClientError):
        err = exc.response.get("Error", {})
        return err.get("Code") or "ClientError", err.get("Message") or str(exc)
    return type(exc).__name__, str(exc)


@dataclass
class Account:
    """One set of credentials, and the account STS says they belong to."""

    session: boto3.Session
    label: str  # the profile name, role ARN or "default" that produced the credentials
    account_id: str = ""
    partition: str = "aws"
    regions: tuple[str, ...] = ()  # the regions to scan in this account (set by resolve_scope)


@dataclass(frozen=True)
class Unit:
    """An (account, region) pair: the grain at which data is fetched and failures recorded."""

    account: Account = field(compare=False)
    account_id: str
    region: str

    @property
    def partition(self) -> str:
        return self.account.partition

    def __str__(self) -> str:
        return f"{self.account_id}/{self.region}"


class ClientFactory:
    """Creates (and caches) one botocore client per account, region and service.

    Why our own retries instead of botocore's: standard mode gives each client a retry
    quota that a throttling storm across many threads runs dry, and adaptive mode's rate
    limiter collapses (see DESIGN.md). So botocore makes one attempt per call, and
    :class:`UnitApi` retries with jittered exponential backoff: throttles up to
    ``AWS_MAX_ATTEMPTS`` attempts (default 12), network failures and 5xx answers up to
    ``TRANSIENT_ATTEMPTS``. A call that still fails is recorded, never silently dropped.
    """

    def __init__(self, endpoint_url: str | None = None, max_workers: int = DEFAULT_MAX_WORKERS):
        self.endpoint_url = endpoint_url or os.environ.get("AWS_ENDPOINT_URL") or None
        if self.endpoint_url and not re.match(r"https?://[^/\s]+", self.endpoint_url):
            raise UserError(
                f"endpoint {self.endpoint_url!r} is not a URL: give one like http://127.0.0.1:5000 "
                "(--endpoint-url or AWS_ENDPOINT_URL)"
            )
        self.max_attempts = max_attempts()
        self.config = Config(
            # One attempt per botocore call: UnitApi does every retry itself, so attempts
            # never multiply and a throttling storm cannot empty a shared retry quota.
            retries={"mode": "standard", "total_max_attempts": 1},
            max_pool_connections=max(10, max_workers * 2),
            user_agent_extra=f"bedrock-sql/{__version__}",
            connect_timeout=10,
            read_timeout=60,
        )
        self._clients: dict[tuple[str, str, str, str], Any] = {}
        self._lock = threading.Lock()
        self.calls: Counter[tuple[str, str, str]] = Counter()  # (service, operation, region)
        self._calls_lock = threading.Lock()
        self.stopping = threading.Event()  # set to make every backoff give up at once
        # One botocore data loader for every session resolve_scope creates (assumed roles,
        # profiles of an accounts file): a session of its own would parse the service models
        # again for its first clients, about 0.1 CPU-second per account.
        self.loader = botocore.session.Session().get_component("data_loader")
        self._session_lock = threading.Lock()

    def new_session(
        self,
        *,
        profile: str | None = None,
        credentials: botocore.credentials.Credentials | None = None,
        region: str | None = None,
    ) -> boto3.Session:
        """A boto3 Session on ``profile``'s config (None: the default chain) sharing the
        factory's loader; with ``credentials``, those are its only credentials."""
        core = botocore.session.Session()
        core.register_component("data_loader", self.loader)
        if credentials is not None:
            resolver = botocore.credentials.CredentialResolver([_FixedCredentialProvider(credentials)])
            core.register_component("credential_provider", resolver)
        with self._session_lock:
            session = boto3.Session(botocore_session=core, profile_name=profile, region_name=region)
            # boto3 appends its own data path to the loader for every session: keep one.
            paths = self.loader.search_paths
            paths[:] = list(dict.fromkeys(paths))
        return session

    def client(self, account: Account, region: str, service: str):
        # The account id is part of the key: a profile's credentials that only assume roles
        # (account unknown, "") never share a client with that profile scanned as an account.
        key = (account.label, account.account_id, region, service)
        with self._lock:  # boto3 sessions are not thread-safe; clients are
            client = self._clients.get(key)
            if client is None:
                client = account.session.client(
                    service, region_name=region, endpoint_url=self.endpoint_url, config=self.config
                )
                if service not in RESOLUTION_SERVICES:
                    client.meta.events.register("before-call", self._count_call)
                self._clients[key] = client
            return client

    def _count_call(self, model, context=None, **kwargs):
        region = context.get("client_region") if context else None
        service = model.service_model.service_name
        with self._calls_lock:
            self.calls[(service, model.name, region or "")] += 1

    def total_calls(self, service: str | None = None, operation: str | None = None) -> int:
        with self._calls_lock:
            return sum(
                n
                for (svc, op, _), n in self.calls.items()
                if (service is None or svc == service) and (operation is None or op == operation)
            )


class Cancelled(Exception):
    """The run is stopping (Ctrl-C, or a consumer that wants no more rows)."""


class UnitApi:
    """AWS calls for one unit, with throttle retries and error translation.

    ``on_error(exc, resource)`` records a failure that cost part of an item (its tags, say)
    without losing the item itself; see :meth:`optional`.
    """

    def __init__(self, factory: ClientFactory, unit: Unit, on_error=None):
        self.factory = factory
        self.unit = unit
        self.on_error = on_error

    def record(self, exc: ApiError, resource: str | None = None) -> None:
        if self.on_error is None:
            raise exc
        self.on_error(exc, resource)

    def optional(self, fn, resource: str | None = None):
        """Run ``fn``; if its AWS call fails, record the failure and return None."""
        try:
            return fn()
        except ApiError as exc:
            self.record(exc, resource)
            return None

    @property
    def account_id(self) -> str:
        return self.unit.account_id

    @property
    def region(self) -> str:
        return self.unit.region

    @property
    def partition(self) -> str:
        return self.unit.partition

    def client(self, service: str):
        return self.factory.client(self.unit.account, self.unit.region, service)

    def call(self, service: str, operation: str, **params) -> dict:
        """Call ``operation`` (snake_case) and return its response, retrying throttles."""
        method = getattr(self.client(service), operation)
        return self._retry(operation, lambda: method(**params))

    def paginate(self, service: str, operation: str, result_key: str, **params) -> Iterator[dict]:
        """Yield the items of every page, resuming from the last page after a throttle."""
        paginator = self.client(service).get_paginator(operation)
        starting_token = None
        attempt = 0
        while True:
            config = {"StartingToken": starting_token} if starting_token else {}
            pages = paginator.paginate(**params, PaginationConfig=config)
            try:
                for page in pages:
                    attempt = 0
                    yield from page.get(result_key, [])
                    starting_token = pages.resume_token
                return
            except Exception as exc:  # noqa: BLE001 - classified below
                attempt += 1
                self._raise_unless_retryable(operation, exc, attempt)

    def _retry(self, operation: str, fn):
        attempt = 0
        while True:
            try:
                return fn()
            except Exception as exc:  # noqa: BLE001 - classified below
                attempt += 1
                self._raise_unless_retryable(operation, exc, attempt)

    def _raise_unless_retryable(self, operation: str, exc: Exception, attempt: int) -> None:
        code, message = _error_code(exc)
        throttled = code in THROTTLE_CODES and attempt < self.factory.max_attempts
        transient = _is_transient(exc, code) and attempt < TRANSIENT_ATTEMPTS
        if throttled or transient:
            if self.factory.stopping.wait(backoff_delay(attempt)):
                raise Cancelled()
            return
        api_name = _api_name(exc, operation)
        if isinstance(exc, (botocore.exceptions.ClientError, botocore.exceptions.BotoCoreError)):
            raise ApiError(api_name, code, message) from exc
        raise exc


def _is_transient(exc: Exception, code: str) -> bool:
    """A network failure or a 5xx: worth a few quick retries (throttles have their own)."""
    if isinstance(exc, (botocore.exceptions.ConnectionError, botocore.exceptions.HTTPClientError)):
        return True
    if isinstance(exc, botocore.exceptions.ClientError):
        status = exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode") or 0
        return status >= 500 or code in TRANSIENT_CODES
    return False


def _api_name(exc: Exception, operation: str) -> str:
    """The API's own name (GetCustomModel) for an error, whatever the method name was."""
    name = getattr(exc, "operation_name", None)
    if name:
        return name
    return "".join(part.capitalize() for part in operation.split("_"))


# --- resolving accounts and regions -----------------------------------------------------

# An IAM role name, optionally with a path: "BedrockSqlAudit", "audit/BedrockSqlAudit".
ROLE_NAME = re.compile(r"^[\w+=,.@-]+(/[\w+=,.@-]+)*$", re.ASCII)
SESSION_NAME_MAX = 64


def role_session_name() -> str:
    """``bedrock-sql-<user>`` (or ``-<host>``): how the audit's calls read in CloudTrail.

    AssumeRole allows 2-64 characters of ``[A-Za-z0-9_+=,.@-]``; anything else becomes '-'.
    """
    try:
        who = getpass.getuser()
    except Exception:  # noqa: BLE001 - no user name in some containers
        who = ""
    who = who or socket.gethostname().split(".")[0]
    who = re.sub(r"[^A-Za-z0-9_+=,.@-]", "-", who).strip("-")
    return (f"bedrock-sql-{who}" if who else "bedrock-sql")[:SESSION_NAME_MAX]


@dataclass(frozen=True)
class FailedAccount:
    """An account that was to be audited but could not be reached (its role not assumable).

    The collector records it in ``bedrock_sql_errors`` once per table and region, with
    ``resource`` NULL, exactly as a failed listing: every control then answers ``error``
    for that account and region, never a silent pass.
    """

    account_id: str
    label: str  # the role ARN (or profile) that failed
    operation: str  # AssumeRole, GetCallerIdentity
    error_code: str
    message: str
    regions: tuple[str, ...] = ()

    def error(self) -> "ApiError":
        return ApiError(self.operation, self.error_code, f"{self.label}: {self.message}")

    def __str__(self) -> str:
        return f"{self.account_id} ({self.label}): {self.operation}: {self.error_code}: {self.message}"


@dataclass
class Scope:
    """What one run scans: the accounts, and the units (account x region) to call."""

    accounts: list[Account]
    units: list[Unit]
    factory: ClientFactory
    failed_accounts: list[FailedAccount] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)  # worth telling the user, not failures

    @property
    def regions(self) -> list[str]:
        return sorted({u.region for u in self.units})

    def api(self, unit: Unit) -> UnitApi:
        return UnitApi(self.factory, unit)

    def failed_units(self) -> Iterator[tuple[Unit, ApiError]]:
        """(unit, error) for every region of every account that could not be reached."""
        for failed in self.failed_accounts:
            account = Account(session=None, label=failed.label, account_id=failed.account_id)  # type: ignore[arg-type]
            for region in failed.regions:
                yield Unit(account=account, account_id=failed.account_id, region=region), failed.error()


def record_failed_accounts(scope: Scope, errors, tables) -> None:
    """Record the unreachable accounts in ``errors`` (an ErrorLog): one row per table and region.

    A table whose service is not offered in a region gets no row there: it would not have
    been scanned either.
    """
    for unit, exc in scope.failed_units():
        for name, table in tables.items():
            if offered(table.service, unit.region):
                errors.add(unit, name, exc)


def _profile_session(profile: str, where: str | None = None, factory: ClientFactory | None = None) -> boto3.Session:
    prefix = f"{where}: " if where else ""
    try:
        session = factory.new_session(profile=profile) if factory else boto3.Session(profile_name=profile)
    except botocore.exceptions.ProfileNotFound:
        session = None
    if session is None or profile not in session.available_profiles:
        raise UserError(f"{prefix}AWS profile {profile!r} not found in your AWS config")
    return session


def _base_sessions(opts: AwsOptions) -> list[tuple[boto3.Session, str]]:
    if not opts.profiles:
        return [(boto3.Session(), os.environ.get("AWS_PROFILE") or "default")]
    return [(_profile_session(profile), profile) for profile in opts.profiles]


def _require_credentials(session: boto3.Session, label: str) -> None:
    try:
        creds = session.get_credentials()
    except botocore.exceptions.BotoCoreError as exc:
        raise UserError(f"cannot load AWS credentials for {label}: {exc}") from None
    if creds is None:
        raise UserError(
            "no AWS credentials found: run `aws configure` or `aws sso login`, "
            "or set AWS_PROFILE or AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY"
        )


def _identify(factory: ClientFactory, session: boto3.Session, label: str, region: str) -> Account:
    """The account STS says ``session``'s credentials belong to (raises ApiError)."""
    probe = Account(session=session, label=label)
    response = UnitApi(factory, Unit(account=probe, account_id="", region=region)).call("sts", "get_caller_identity")
    arn = response.get("Arn") or ""
    partition = arn.split(":")[1] if arn.count(":") >= 5 else "aws"
    return Account(session=session, label=label, account_id=response["Account"], partition=partition)


class _FixedCredentialProvider(botocore.credentials.CredentialProvider):
    """Hands a botocore session the (refreshable) credentials of an assumed role."""

    METHOD = "assume-role"
    CANONICAL_NAME = "bedrock-sql-assume-role"

    def __init__(self, credentials: botocore.credentials.Credentials):
        super().__init__()
        self._credentials = credentials

    def load(self) -> botocore.credentials.Credentials:
        return self._credentials


def _assume(factory: ClientFactory, base: Account, role_arn: str, external_id: str | None, region: str) -> Account:
    """Assume ``role_arn`` with ``base``'s credentials (raises ApiError).

    The credentials refresh themselves (botocore's RefreshableCredentials, re-assuming the
    role through an AssumeRoleCredentialFetcher 15 minutes before they expire), so a
    collect longer than the role's session duration does not fail halfway. The account id
    is the one STS reports for the assumed role (``AssumedRoleUser.Arn``).
    """
    params: dict[str, Any] = {"RoleArn": role_arn, "RoleSessionName": role_session_name()}
    if external_id:
        params["ExternalId"] = external_id
    api = UnitApi(factory, Unit(account=base, account_id=base.account_id, region=region))
    response = api.call("sts", "assume_role", **params)
    creds = response["Credentials"]
    fetcher = botocore.credentials.AssumeRoleCredentialFetcher(
        # The base account's cached STS client (it resolves, and refreshes, its own credentials).
        client_creator=lambda service_name, **_: factory.client(base, region, service_name),
        source_credentials=base.session.get_credentials(),
        role_arn=role_arn,
        extra_args={k: v for k, v in params.items() if k != "RoleArn"},
    )
    credentials = botocore.credentials.RefreshableCredentials(
        access_key=creds["AccessKeyId"],
        secret_key=creds["SecretAccessKey"],
        token=creds["SessionToken"],
        expiry_time=creds["Expiration"],  # a datetime: botocore parses the response
        refresh_using=fetcher.fetch_credentials,
        method="assume-role",
    )
    # A session on the base profile's config (CA bundle, proxies...) whose only credentials
    # are the role's.
    profile = base.session.profile_name if base.session.profile_name != "default" else None
    session = factory.new_session(profile=profile, credentials=credentials, region=base.session.region_name or region)
    arn = response.get("AssumedRoleUser", {}).get("Arn") or role_arn
    parts = arn.split(":")
    return Account(session=session, label=role_arn, account_id=parts[4], partition=parts[1])


def known_regions(service: str = "bedrock") -> set[str]:
    """Every region botocore knows for ``service`` (in any partition)."""
    session = boto3.Session()
    return {
        region
        for partition in session.get_available_partitions()
        for region in session.get_available_regions(service, partition_name=partition)
    }


@functools.lru_cache(maxsize=None)
def _service_regions(service: str) -> frozenset[str]:
    return frozenset(known_regions(service))


def offered(service: str, region: str) -> bool:
    """Whether botocore knows ``service`` in ``region`` (Bedrock is not in every region).

    A region botocore knows nothing about at all (newer than this botocore) is assumed to
    offer it: skipping it would hide data.
    """
    return region in _service_regions(service) or region not in _service_regions("kms")


def all_region_names() -> set[str]:
    """Every region name botocore knows, to tell a typo from a real region."""
    return known_regions("ec2") | known_regions("bedrock")


def _enabled_regions(factory: ClientFactory, account: Account, region: str) -> set[str] | None:
    """Regions enabled in the account (opt-in regions may be off); None if we cannot tell."""
    try:
        ec2 = factory.client(account, region, "ec2")
        return {r["RegionName"] for r in ec2.describe_regions(AllRegions=False)["Regions"]}
    except (botocore.exceptions.ClientError, botocore.exceptions.BotoCoreError):
        return None


@dataclass
class _Target:
    """One way to reach an account: credentials to scan as they are, or a role to assume."""

    label: str
    sts_region: str  # where STS (and, with --all-regions, EC2 DescribeRegions) is called
    regions: tuple[str, ...]  # the regions to scan; () with --all-regions (found per account)
    session: boto3.Session | None = None  # scan these credentials...
    base: Account | None = None  # ...or assume role_arn with these
    role_arn: str | None = None
    external_id: str | None = None
    expected_account: str | None = None  # accounts file: the account the entry must reach
    where: str | None = None  # accounts file: "accounts.csv line 3"
    record_failure: bool = False  # unreachable: recorded as a failed account, not fatal

    @property
    def known_account(self) -> str | None:
        return self.expected_account or (role_arn_account(self.role_arn) if self.role_arn else None)


class _Resolver:
    """Builds the targets the options ask for, then reaches them (concurrently)."""

    def __init__(self, opts: AwsOptions, factory: ClientFactory):
        self.opts = opts
        self.factory = factory
        self.notes: list[str] = []
        self._bedrock_regions: list[str] | None = None
        self._sessions: dict[str, boto3.Session] = {}

    # -- building targets ----------------------------------------------------------------

    def _regions_for(self, region: str | None, where: str | None = None) -> tuple[str, ...]:
        """The global region list (--region, or the credentials' own region)."""
        if self.opts.regions:
            return tuple(dict.fromkeys(self.opts.regions))
        if self.opts.all_regions:
            return ()
        if not region:
            prefix = f"{where}: " if where else ""
            raise UserError(f"{prefix}no AWS region configured: pass --region NAME or --all-regions, or set AWS_REGION")
        return (region,)

    def _sts_region(self, session: boto3.Session, regions: tuple[str, ...] = ()) -> str:
        return (regions or self.opts.regions or (None,))[0] or session.region_name or "us-east-1"

    def _base(self, session: boto3.Session, label: str) -> Account:
        _require_credentials(session, label)
        return Account(session=session, label=label)

    def targets(self) -> list[_Target]:
        opts = self.opts
        if opts.accounts_file:
            return self._file_targets()
        targets: list[_Target] = []
        for session, label in _base_sessions(opts):
            if not (opts.role_arns or opts.org_role):
                _require_credentials(session, label)
                targets.append(
                    _Target(label, self._sts_region(session), self._regions_for(session.region_name), session=session)
                )
                continue
            # The base credentials only assume the roles; they are not scanned themselves.
            base = self._base(session, label)
            sts_region = self._sts_region(session)
            regions = self._regions_for(session.region_name)
            for role_arn in opts.role_arns:
                targets.append(
                    _Target(role_arn, sts_region, regions, base=base, role_arn=role_arn, external_id=opts.external_id)
                )
            if opts.org_role:
                targets.extend(self._org_targets(base, sts_region, regions))
        return targets

    def _org_targets(self, base: Account, sts_region: str, regions: tuple[str, ...]) -> list[_Target]:
        opts = self.opts
        api = UnitApi(self.factory, Unit(account=base, account_id="", region=sts_region))
        try:
            listed = list(api.paginate("organizations", "list_accounts", "Accounts"))
        except ApiError as exc:
            raise UserError(
                f"--org-role: cannot list the accounts of the AWS Organization with the {base.label} credentials "
                f"({exc.code}: {exc.message}); run from the management account or a delegated administrator"
            ) from None
        targets, inactive = [], []
        for item in listed:
            account_id = item["Id"]
            # Newer APIs answer State (PENDING_ACTIVATION, ACTIVE, SUSPENDED, PENDING_CLOSURE,
            # CLOSED); Status (ACTIVE, SUSPENDED, PENDING_CLOSURE) is deprecated.
            state = item.get("State") or item.get("Status")
            if state != "ACTIVE":
                inactive.append(f"{account_id} ({state})")
                continue
            if account_id in opts.org_exclude:
                continue
            arn = item.get("Arn") or ""
            partition = arn.split(":")[1] if arn.startswith("arn:") else "aws"
            role_arn = f"arn:{partition}:iam::{account_id}:role/{opts.org_role}"
            targets.append(
                _Target(
                    role_arn,
                    sts_region,
                    regions,
                    base=base,
                    role_arn=role_arn,
                    external_id=opts.external_id,
                    expected_account=account_id,
                    record_failure=True,
                )
            )
        if inactive:
            self.notes.append(
                f"skipped {len(inactive)} account(s) of the AWS Organization that are not ACTIVE: {', '.join(inactive)}"
            )
        unknown = sorted(set(opts.org_exclude) - {item["Id"] for item in listed})
        if unknown:
            self.notes.append(f"--org-exclude {', '.join(unknown)}: not in the AWS Organization")
        return targets

    def _session(self, profile: str, where: str) -> boto3.Session:
        if profile not in self._sessions:
            self._sessions[profile] = _profile_session(profile, where, self.factory)
        return self._sessions[profile]

    def _file_targets(self) -> list[_Target]:
        opts = self.opts
        entries = read_accounts_file(opts.accounts_file, all_region_names)
        default_base: Account | None = None
        profile_bases: dict[str, Account] = {}
        targets = []
        for entry in entries:
            session = self._session(entry.profile, entry.where) if entry.profile else None
            if entry.role_arn is None:
                assert session is not None and entry.profile is not None
                _require_credentials(session, entry.profile)
                targets.append(
                    _Target(
                        entry.profile,
                        self._sts_region(session, entry.regions),
                        entry.regions or self._regions_for(session.region_name, entry.where),
                        session=session,
                        expected_account=entry.account_id,
                        where=entry.where,
                        record_failure=entry.account_id is not None,
                    )
                )
                continue
            # The role is assumed from the entry's profile, else from --profile or the ambient credentials.
            if session is not None and entry.profile is not None:
                if entry.profile not in profile_bases:
                    profile_bases[entry.profile] = self._base(session, entry.profile)
                base = profile_bases[entry.profile]
            else:
                if default_base is None:
                    default_base = self._base(*_base_sessions(opts)[0])
                base = default_base
            targets.append(
                _Target(
                    entry.role_arn,
                    self._sts_region(base.session, entry.regions),
                    entry.regions or self._regions_for(base.session.region_name, entry.where),
                    base=base,
                    role_arn=entry.role_arn,
                    external_id=entry.external_id or opts.external_id,
                    expected_account=entry.account_id,
                    where=entry.where,
                    record_failure=True,
                )
            )
        return targets

    # -- reaching them -------------------------------------------------------------------

    def reach(self, target: _Target) -> Account | FailedAccount:
        """The account ``target`` reaches, with its regions; or why it could not be reached."""
        prefix = f"{target.where}: " if target.where else ""
        try:
            if target.role_arn:
                assert target.base is not None
                account = _assume(self.factory, target.base, target.role_arn, target.external_id, target.sts_region)
            else:
                assert target.session is not None
                account = _identify(self.factory, target.session, target.label, target.sts_region)
        except ApiError as exc:
            if target.record_failure and target.known_account:
                return FailedAccount(target.known_account, target.label, exc.operation, exc.code, exc.message, target.regions)
            if target.role_arn:
                raise UserError(f"{prefix}cannot assume {target.role_arn}: {exc.code}: {exc.message}") from None
            raise UserError(f"{prefix}cannot identify the AWS account for {target.label}: {exc.code}: {exc.message}") from None
        account.regions = target.regions or self._all_regions(account, target.sts_region)
        return account

    def _all_regions(self, account: Account, probe_region: str) -> tuple[str, ...]:
        regions = self.bedrock_regions()
        enabled = _enabled_regions(self.factory, account, probe_region)
        return tuple(r for r in regions if enabled is None or r in enabled)

    def bedrock_regions(self) -> list[str]:
        if self._bedrock_regions is None:
            self._bedrock_regions = sorted(known_regions("bedrock"))
        return self._bedrock_regions


def _map(fn: Callable, items: list, workers: int, stopping: threading.Event) -> list:
    """``[fn(item) for item in items]`` on a thread pool, in order; prompt on Ctrl-C."""
    if len(items) <= 1:
        return [fn(item) for item in items]
    executor = ThreadPoolExecutor(max_workers=min(workers, len(items)), thread_name_prefix="bedrock-sql-sts")
    try:
        results = list(executor.map(fn, items))
    except BaseException:
        stopping.set()  # backoffs give up at once
        executor.shutdown(wait=False, cancel_futures=True)
        raise
    executor.shutdown(wait=True)
    return results


def _check_options(opts: AwsOptions) -> None:
    if opts.regions and opts.all_regions:
        raise UserError("use either --region or --all-regions, not both")
    valid = all_region_names()
    unknown = [r for r in opts.regions if r not in valid]
    if unknown:
        raise UserError(f"unknown AWS region {unknown[0]!r} (for example us-east-1, eu-west-1)")
    if opts.max_workers < 1:
        raise UserError("--max-workers must be at least 1")
    for role_arn in opts.role_arns:
        if role_arn_account(role_arn) is None:
            raise UserError(f"--role-arn {role_arn!r} is not an IAM role ARN (arn:aws:iam::ACCOUNT:role/NAME)")
    if opts.org_role is not None:
        if opts.org_role.startswith("arn:"):
            raise UserError("--org-role takes the role's name (e.g. BedrockSqlAudit), not an ARN")
        if not ROLE_NAME.match(opts.org_role):
            raise UserError(f"--org-role {opts.org_role!r} is not an IAM role name")
    if opts.org_exclude and opts.org_role is None:
        raise UserError("--org-exclude needs --org-role")
    for account_id in opts.org_exclude:
        if not ACCOUNT_ID.match(account_id):
            raise UserError(f"--org-exclude {account_id!r} is not a 12-digit AWS account ID")
    if opts.accounts_file is not None:
        if opts.role_arns or opts.org_role:
            raise UserError("--accounts-file lists the accounts to audit: leave out --role-arn and --org-role")
        if len(opts.profiles) > 1:
            raise UserError(
                "with --accounts-file give at most one --profile (the credentials that assume the file's roles); "
                "list other profiles in the file"
            )
    elif opts.external_id and not (opts.role_arns or opts.org_role):
        raise UserError("--external-id is for the roles of --role-arn or --org-role (or --accounts-file)")


def resolve_scope(opts: AwsOptions) -> Scope:
    """Turn the AWS options into accounts (identified by STS) and units to scan.

    Accounts come from the ambient credentials or each ``--profile``; or, with
    ``--role-arn``/``--org-role``, from roles those credentials assume (they are not
    scanned themselves); or from ``--accounts-file``. An account reached twice is scanned
    once. A role named explicitly (``--role-arn``) that cannot be assumed is a user error;
    an account of the Organization or of the accounts file that cannot be reached is
    recorded in :attr:`Scope.failed_accounts` (the collector writes it to
    ``bedrock_sql_errors``) and the others are still scanned.
    """
    _check_options(opts)
    factory = ClientFactory(opts.endpoint_url, opts.max_workers)
    resolver = _Resolver(opts, factory)
    targets = resolver.targets()
    results = _map(resolver.reach, targets, opts.max_workers, factory.stopping)

    accounts: list[Account] = []
    failed: dict[str, FailedAccount] = {}
    reached: dict[str, _Target] = {}
    for target, result in zip(targets, results):
        if isinstance(result, FailedAccount):
            failed.setdefault(result.account_id, result)
            continue
        if target.expected_account and result.account_id != target.expected_account:
            raise UserError(
                f"{target.where or target.label}: account_id {target.expected_account}, but the credentials of "
                f"{target.label} belong to account {result.account_id}"
            )
        first = reached.get(result.account_id)
        if first is not None:  # an account reached twice is collected once
            if target.where and first.where:
                raise UserError(f"{target.where}: account {result.account_id} is already listed ({first.where})")
            continue
        reached[result.account_id] = target
        accounts.append(result)

    failures = [f for account_id, f in failed.items() if account_id not in reached]
    if failures and not accounts:
        more = f" (and {len(failures) - 1} more account(s))" if len(failures) > 1 else ""
        raise UserError(f"could not reach any account: {failures[0]}{more}")
    if not accounts:
        raise UserError("--org-role: no active account of the AWS Organization is left to audit")

    units = [Unit(account=a, account_id=a.account_id, region=r) for a in accounts for r in a.regions]
    scanned = sorted({u.region for u in units}) or resolver.bedrock_regions()
    failures = [f if f.regions else replace(f, regions=tuple(scanned)) for f in failures]
    for region in sorted({u.region for u in units}):
        if not offered("bedrock", region):
            resolver.notes.append(
                f"Amazon Bedrock is not offered in {region} (per botocore): its Bedrock tables are skipped there"
            )
    return Scope(accounts=accounts, units=units, factory=factory, failed_accounts=failures, notes=resolver.notes)
