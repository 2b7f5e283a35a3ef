"""The AWS session layer: how to call AWS.

Everything that talks to AWS goes through :class:`UnitApi`, one per (account, region)
unit, so that retries, pagination, call counting and error translation live in one place,
and every client comes from :class:`ClientFactory`, which checks every answer
(:mod:`bedrock_sql.responses`). The regions botocore knows (:func:`known_regions`,
:func:`offered`) are here too.

Which accounts and regions a command scans is resolved in :mod:`bedrock_sql.accounts`.
"""

from __future__ import annotations

import functools
import json
import os
import random
import re
import threading
from collections import Counter
from dataclasses import dataclass, field
from typing import Any, Iterator

import boto3
import botocore.credentials
import botocore.exceptions
import botocore.session
import jmespath
from botocore.config import Config
from botocore.model import OperationModel
from botocore.parsers import ResponseParserError

from . import __version__
from .errors import BOTOCORE_FAILURES, UserError
from .responses import InvalidResponseError, Pagination, install as check_every_answer, require_fields

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
DEFAULT_READ_TIMEOUT = 60.0  # seconds; BEDROCK_SQL_READ_TIMEOUT overrides
DEFAULT_BACKOFF_BASE = 0.25  # seconds; BEDROCK_SQL_BACKOFF_BASE overrides (tests make it tiny)


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


def _seconds_from_env(name: str, default: float) -> float:
    raw = os.environ.get(name)
    if not raw:
        return default
    try:
        value = float(raw)
    except ValueError:
        raise UserError(f"{name} must be a number of seconds, not {raw!r}") from None
    if not value > 0:
        raise UserError(f"{name} must be more than 0 seconds")
    return value


def read_timeout() -> float:
    """Seconds to wait for an answer: ``BEDROCK_SQL_READ_TIMEOUT`` overrides 60."""
    return _seconds_from_env("BEDROCK_SQL_READ_TIMEOUT", DEFAULT_READ_TIMEOUT)


def backoff_base() -> float:
    """The first backoff's upper bound: ``BEDROCK_SQL_BACKOFF_BASE`` overrides 0.25 s."""
    return _seconds_from_env("BEDROCK_SQL_BACKOFF_BASE", DEFAULT_BACKOFF_BASE)


def backoff_delay(attempt: int, base: float | None = None, cap: float = 20.0) -> float:
    """Exponential backoff with full jitter (attempt counts from 1)."""
    first = backoff_base() if base is None else base
    return random.uniform(0, min(cap, first * 2 ** (attempt - 1)))


def _error_code(exc: BaseException) -> tuple[str, str]:
    if isinstance(exc, botocore.exceptions.ClientError):
        err = exc.response.get("Error", {})
        return err.get("Code") or "ClientError", err.get("Message") or str(exc)
    if isinstance(exc, InvalidResponseError):
        return exc.code, exc.reason
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
    ``AWS_MAX_ATTEMPTS`` attempts (default 12); network failures, timeouts, 5xx answers and
    answers that fail their check (:mod:`bedrock_sql.responses`) up to ``TRANSIENT_ATTEMPTS``.
    A call that still fails is recorded, never silently dropped.
    """

    def __init__(self, endpoint_url: str | None = None, max_workers: int = DEFAULT_MAX_WORKERS):
        self.endpoint_url = endpoint_url or os.environ.get("AWS_ENDPOINT_URL") or None
        if self.endpoint_url and not re.match(r"https?://[^/\s]+", self.endpoint_url):
            raise UserError(
                f"endpoint {self.endpoint_url!r} is not a URL: give one like http://127.0.0.1:5000 "
                "(--endpoint-url or AWS_ENDPOINT_URL)"
            )
        self.max_attempts = max_attempts()
        backoff_base()  # a bad BEDROCK_SQL_BACKOFF_BASE is a user error now, not mid-collect
        self.config = Config(
            # One attempt per botocore call: UnitApi does every retry itself, so attempts
            # never multiply and a throttling storm cannot empty a shared retry quota.
            retries={"mode": "standard", "total_max_attempts": 1},
            max_pool_connections=max(10, max_workers * 2),
            user_agent_extra=f"bedrock-sql/{__version__}",
            connect_timeout=10,
            read_timeout=read_timeout(),
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
        self._paginations: dict[tuple[str, str, str], Pagination | None] = {}

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
                check_every_answer(client, self.pagination)
                if service not in RESOLUTION_SERVICES:
                    client.meta.events.register("before-call", self._count_call)
                self._clients[key] = client
            return client

    def pagination(self, operation_model: OperationModel) -> Pagination | None:
        """The operation's paginator in botocore's model (None: it is not paginated)."""
        service_model = operation_model.service_model
        key = (service_model.service_name, service_model.api_version, operation_model.name)
        if key not in self._paginations:
            try:
                model = self.loader.load_service_model(key[0], "paginators-1", key[1])
            except botocore.exceptions.DataNotFoundError:
                model = {"pagination": {}}
            config = model["pagination"].get(operation_model.name)
            self._paginations[key] = Pagination.from_model(config) if config else None
        return self._paginations[key]

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

    def call(
        self, service: str, operation: str, *, require: tuple[str, ...] = (), idempotent: bool = True, **params
    ) -> dict:
        """Call ``operation`` (snake_case) and return its (checked) answer, retrying throttles
        and transient failures. ``require``: dotted paths the answer must hold beyond what the
        service model requires (a field the caller names the resource by).

        ``idempotent=False`` (a create): a failure that leaves unknown whether AWS acted (a
        reset or timeout after the request was sent, a garbled answer, a 5xx) is not retried,
        as a second attempt could create a second resource; the caller reports it and a rerun
        finds what the first attempt made. Throttles, and requests that never left, are
        still retried: AWS did nothing with them.
        """
        method = getattr(self.client(service), operation)

        def attempt() -> dict:
            response = method(**params)
            require_fields(response, require, _api_name(None, operation))
            return response

        return self._retry(operation, attempt, idempotent=idempotent)

    def paginate(self, service: str, operation: str, result_key: str | None = None, **params) -> Iterator[dict]:
        """Yield the items of every page of ``operation``.

        Each page is one :meth:`call`, retried on its own; the next page is asked with the
        token of the last page that arrived whole, so a throttled page 2 is asked again --
        never page 1, whose items were already yielded. Token and list names come from
        botocore's paginator model (``result_key``, when given, must be one of its lists).
        A token the service already gave is an error (``RepeatedPageToken``), not a loop.
        """
        client = self.client(service)
        model = client.meta.service_model.operation_model(client.meta.method_to_api_mapping[operation])
        pagination = self.factory.pagination(model)
        if pagination is None:
            raise ValueError(f"{service} {model.name} is not paginated")
        if result_key is None:
            result_key = pagination.result_keys[0]
        elif result_key not in pagination.result_keys:
            raise ValueError(f"{model.name} pages carry {pagination.result_keys}, not {result_key!r}")
        seen: set[str] = set()
        request = dict(params)
        while True:
            page = self.call(service, operation, **request)
            yield from jmespath.search(result_key, page)  # checked to be a list (responses.py)
            tokens = pagination.next_request(page)
            if tokens is None:
                return
            fingerprint = json.dumps(tokens, sort_keys=True, default=str)
            if fingerprint in seen:
                raise ApiError(
                    model.name,
                    "RepeatedPageToken",
                    f"the service gave the same next-page token twice ({_shorten(fingerprint)}); "
                    "the listing stopped there rather than loop",
                )
            seen.add(fingerprint)
            request = {**params, **tokens}

    def _retry(self, operation: str, fn, *, idempotent: bool = True):
        attempt = 0
        while True:
            try:
                return fn()
            except Exception as exc:  # noqa: BLE001 - classified below
                attempt += 1
                self._raise_unless_retryable(operation, exc, attempt, idempotent=idempotent)

    def _raise_unless_retryable(self, operation: str, exc: Exception, attempt: int, *, idempotent: bool = True) -> None:
        code, message = _error_code(exc)
        throttled = code in THROTTLE_CODES and attempt < self.factory.max_attempts
        transient = (
            _is_transient(exc, code)
            and attempt < TRANSIENT_ATTEMPTS
            and (idempotent or isinstance(exc, _NEVER_SENT))
        )
        if throttled or transient:
            if self.factory.stopping.wait(backoff_delay(attempt)):
                raise Cancelled()
            return
        api_name = _api_name(exc, operation)
        # Its answer, the way there (network, TLS, proxy, timeouts, a failed answer check) or an
        # answer botocore could not parse at all: an AWS failure, recorded as such.
        if isinstance(exc, BOTOCORE_FAILURES):
            raise ApiError(api_name, code, message) from exc
        raise exc  # a bug, not an AWS failure: let it be seen


# A network failure (reset, timeout, TLS, proxy), an answer botocore could not parse, or one
# that failed its check: the next attempt may well be answered properly.
_TRANSIENT_FAILURES = (
    botocore.exceptions.ConnectionError,
    botocore.exceptions.HTTPClientError,
    ResponseParserError,  # not a BotoCoreError: botocore.parsers raises it bare
    InvalidResponseError,
)


# Failures before the request reached AWS: safe to retry even for a create.
_NEVER_SENT = (
    botocore.exceptions.EndpointConnectionError,
    botocore.exceptions.ConnectTimeoutError,
    botocore.exceptions.ProxyConnectionError,
)


def _is_transient(exc: Exception, code: str) -> bool:
    """A network failure, a bad answer or a 5xx: worth a few quick retries (throttles have their own)."""
    if isinstance(exc, _TRANSIENT_FAILURES):
        return True
    if isinstance(exc, botocore.exceptions.ClientError):
        status = exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode") or 0
        return status >= 500 or code in TRANSIENT_CODES
    return False


def _api_name(exc: Exception | None, operation: str) -> str:
    """The API's own name (GetCustomModel) for an error, whatever the method name was."""
    name = getattr(exc, "operation_name", None)
    if name:
        return name
    return "".join(part.capitalize() for part in operation.split("_"))


def _shorten(text: str, length: int = 60) -> str:
    return text if len(text) <= length else text[: length - 3] + "..."


class _FixedCredentialProvider(botocore.credentials.CredentialProvider):
    """Hands a botocore session the (refreshable) credentials of an assumed role."""

    METHOD = "assume-role"
    CANONICAL_NAME = "bedrock-sql-assume-role"

    def __init__(self, credentials: botocore.credentials.Credentials):
        super().__init__()
        self._credentials = credentials

    def load(self) -> botocore.credentials.Credentials:
        return self._credentials


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
