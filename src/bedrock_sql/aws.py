"""The AWS session layer: which accounts and regions to scan, and how to call them.

Everything that talks to AWS goes through :class:`UnitApi`, one per (account, region)
unit, so that retries, call counting and error translation live in one place.
"""

from __future__ import annotations

import os
import random
import threading
from collections import Counter
from dataclasses import dataclass, field
from typing import Any, Iterator

import boto3
import botocore.exceptions
from botocore.config import Config

from . import __version__
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

DEFAULT_MAX_ATTEMPTS = 12
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

    Why our own throttle retries on top of botocore's standard mode: standard mode gives
    each client a retry quota that a throttling storm across many threads runs dry, and
    adaptive mode's rate limiter collapses (see DESIGN.md). So botocore retries transient
    network and 5xx errors with a few attempts, and :meth:`UnitApi.call` retries throttles
    itself with jittered backoff, up to ``AWS_MAX_ATTEMPTS``, never silently dropping a call.
    """

    def __init__(self, endpoint_url: str | None = None, max_workers: int = DEFAULT_MAX_WORKERS):
        self.endpoint_url = endpoint_url or os.environ.get("AWS_ENDPOINT_URL") or None
        self.max_attempts = max_attempts()
        self.config = Config(
            retries={"mode": "standard", "max_attempts": 3},
            max_pool_connections=max(10, max_workers * 2),
            user_agent_extra=f"bedrock-sql/{__version__}",
            connect_timeout=10,
            read_timeout=60,
        )
        self._clients: dict[tuple[str, str, str], Any] = {}
        self._lock = threading.Lock()
        self.calls: Counter[tuple[str, str, str]] = Counter()  # (service, operation, region)
        self._calls_lock = threading.Lock()
        self.stopping = threading.Event()  # set to make every backoff give up at once

    def client(self, account: Account, region: str, service: str):
        key = (account.label, region, service)
        with self._lock:  # boto3 sessions are not thread-safe; clients are
            client = self._clients.get(key)
            if client is None:
                client = account.session.client(
                    service, region_name=region, endpoint_url=self.endpoint_url, config=self.config
                )
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
        if code in THROTTLE_CODES and attempt < self.factory.max_attempts:
            if self.factory.stopping.wait(backoff_delay(attempt)):
                raise Cancelled()
            return
        api_name = _api_name(exc, operation)
        if isinstance(exc, (botocore.exceptions.ClientError, botocore.exceptions.BotoCoreError)):
            raise ApiError(api_name, code, message) from exc
        raise exc


def _api_name(exc: Exception, operation: str) -> str:
    """The API's own name (GetCustomModel) for an error, whatever the method name was."""
    name = getattr(exc, "operation_name", None)
    if name:
        return name
    return "".join(part.capitalize() for part in operation.split("_"))


# --- resolving accounts and regions -----------------------------------------------------


def _base_sessions(opts: AwsOptions) -> list[tuple[boto3.Session, str]]:
    if not opts.profiles:
        return [(boto3.Session(), os.environ.get("AWS_PROFILE") or "default")]
    sessions = []
    for profile in opts.profiles:
        try:
            sessions.append((boto3.Session(profile_name=profile), profile))
        except botocore.exceptions.ProfileNotFound:
            raise UserError(f"AWS profile {profile!r} not found in your AWS config") from None
    return sessions


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


def _caller_identity(factory: ClientFactory, session: boto3.Session, label: str, region: str) -> dict:
    sts = session.client("sts", region_name=region, endpoint_url=factory.endpoint_url, config=factory.config)
    try:
        return sts.get_caller_identity()
    except botocore.exceptions.NoCredentialsError:
        _require_credentials(session, label)
        raise
    except (botocore.exceptions.ClientError, botocore.exceptions.BotoCoreError) as exc:
        code, message = _error_code(exc)
        raise UserError(f"cannot identify the AWS account for {label}: {code}: {message}") from None


def _assume(factory: ClientFactory, base: boto3.Session, role_arn: str, external_id: str | None, region: str):
    sts = base.client("sts", region_name=region, endpoint_url=factory.endpoint_url, config=factory.config)
    params = {"RoleArn": role_arn, "RoleSessionName": "bedrock-sql-audit"}
    if external_id:
        params["ExternalId"] = external_id
    try:
        creds = sts.assume_role(**params)["Credentials"]
    except (botocore.exceptions.ClientError, botocore.exceptions.BotoCoreError) as exc:
        code, message = _error_code(exc)
        raise UserError(f"cannot assume {role_arn}: {code}: {message}") from None
    return boto3.Session(
        aws_access_key_id=creds["AccessKeyId"],
        aws_secret_access_key=creds["SecretAccessKey"],
        aws_session_token=creds["SessionToken"],
        region_name=region,
    )


def known_regions(service: str = "bedrock") -> set[str]:
    """Every region botocore knows for ``service`` (in any partition)."""
    session = boto3.Session()
    return {
        region
        for partition in session.get_available_partitions()
        for region in session.get_available_regions(service, partition_name=partition)
    }


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
class Scope:
    """What one run scans: the accounts, and the units (account x region) to call."""

    accounts: list[Account]
    units: list[Unit]
    factory: ClientFactory

    @property
    def regions(self) -> list[str]:
        return sorted({u.region for u in self.units})

    def api(self, unit: Unit) -> UnitApi:
        return UnitApi(self.factory, unit)


def resolve_scope(opts: AwsOptions) -> Scope:
    """Turn the AWS options into accounts (identified by STS) and units to scan."""
    if opts.regions and opts.all_regions:
        raise UserError("use either --region or --all-regions, not both")
    valid = all_region_names()
    unknown = [r for r in opts.regions if r not in valid]
    if unknown:
        raise UserError(f"unknown AWS region {unknown[0]!r} (for example us-east-1, eu-west-1)")
    if opts.max_workers < 1:
        raise UserError("--max-workers must be at least 1")

    factory = ClientFactory(opts.endpoint_url, opts.max_workers)
    bases = _base_sessions(opts)
    for session, label in bases:
        _require_credentials(session, label)

    home_region = opts.regions[0] if opts.regions else None
    accounts: list[Account] = []
    seen: set[str] = set()

    def add(session: boto3.Session, label: str) -> None:
        region = home_region or session.region_name or "us-east-1"
        identity = _caller_identity(factory, session, label, region)
        account_id = identity["Account"]
        if account_id in seen:  # an account reached twice is collected once
            return
        seen.add(account_id)
        partition = identity["Arn"].split(":")[1] if identity.get("Arn") else "aws"
        accounts.append(Account(session=session, label=label, account_id=account_id, partition=partition))

    for session, label in bases:
        if opts.role_arns:
            # The ambient credentials only assume the roles; they are not scanned themselves.
            for role_arn in opts.role_arns:
                region = home_region or session.region_name or "us-east-1"
                add(_assume(factory, session, role_arn, opts.external_id, region), role_arn)
        else:
            add(session, label)

    units: list[Unit] = []
    for account in accounts:
        if opts.all_regions:
            probe = account.session.region_name or "us-east-1"
            regions = sorted(known_regions("bedrock"))
            enabled = _enabled_regions(factory, account, probe)
            if enabled is not None:
                regions = [r for r in regions if r in enabled]
        elif opts.regions:
            regions = list(dict.fromkeys(opts.regions))
        else:
            region = account.session.region_name
            if not region:
                raise UserError(
                    "no AWS region configured: pass --region NAME or --all-regions, or set AWS_REGION"
                )
            regions = [region]
        units.extend(Unit(account=account, account_id=account.account_id, region=r) for r in regions)
    return Scope(accounts=accounts, units=units, factory=factory)
