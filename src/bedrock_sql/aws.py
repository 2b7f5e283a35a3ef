"""The AWS session layer: how to call AWS.

Everything that talks to AWS goes through :class:`UnitApi`, one per (account, region)
unit, so that retries, pagination, call counting and error translation live in one place,
and every client comes from :class:`~bedrock_sql.clients.ClientFactory`, which checks every
answer (:mod:`bedrock_sql.responses`) and bounds the calls in flight. The regions botocore knows (:func:`known_regions`,
:func:`offered`) are here too.

Which accounts and regions a command scans is resolved in :mod:`bedrock_sql.accounts`.
"""

from __future__ import annotations

import json
import random
import threading
from concurrent.futures import CancelledError, Executor
from dataclasses import dataclass, field
from typing import Callable, Iterator, TypeVar

import boto3
import botocore.credentials
import botocore.exceptions
import jmespath
from botocore.parsers import ResponseParserError

from .clients import (  # noqa: F401 - what this module offered before clients.py: still importable here
    DEFAULT_BACKOFF_BASE,
    DEFAULT_MAX_ATTEMPTS,
    DEFAULT_MAX_WORKERS,
    DEFAULT_READ_TIMEOUT,
    DEFAULT_UNIT_SERVICE_LIMIT,
    RESOLUTION_SERVICES,
    UNIT_SERVICE_LIMITS,
    ClientFactory,
    backoff_base,
    max_attempts,
    read_timeout,
)
from .errors import BOTOCORE_FAILURES
from .responses import InvalidResponseError, require_fields

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

# Attempts for network failures and 5xx answers, which rarely heal within seconds.
TRANSIENT_ATTEMPTS = 3
TRANSIENT_CODES = frozenset(
    {"InternalServerException", "InternalFailure", "InternalError", "ServiceUnavailable",
     "ServiceUnavailableException", "RequestTimeout", "RequestTimeoutException"}
)


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


T = TypeVar("T")


class ApiError(Exception):
    """An AWS call that failed for good (after retries), with what bedrock_sql_errors records."""

    def __init__(self, operation: str, code: str, message: str):
        super().__init__(f"{operation}: {code}: {message}")
        self.operation = operation
        self.code = code
        self.message = message


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

    session: boto3.Session  # whose profile configures the clients (CA bundle, proxies, endpoints)
    label: str  # the profile name, role ARN or "default" that produced the credentials
    account_id: str = ""
    partition: str = "aws"
    regions: tuple[str, ...] = ()  # the regions to scan in this account (set by resolve_scope)
    # The account's own credentials (an assumed role's); None: the session's.
    credentials: botocore.credentials.Credentials | None = field(default=None, repr=False)

    def signing_credentials(self) -> botocore.credentials.Credentials | None:
        return self.credentials if self.credentials is not None else self.session.get_credentials()


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


class Cancelled(Exception):
    """The run is stopping (Ctrl-C, or a consumer that wants no more rows)."""


class UnitApi:
    """AWS calls for one unit, with throttle retries and error translation.

    ``on_error(exc, resource)`` records a failure that cost part of an item (its tags, say)
    without losing the item itself; see :meth:`optional`.
    """

    def __init__(self, factory: ClientFactory, unit: Unit, on_error=None, side: Executor | None = None):
        self.factory = factory
        self.unit = unit
        self.on_error = on_error
        self.side = side  # runs the calls started with start() (None: run when awaited)

    def start(self, fn: Callable[[], T]) -> Callable[[], T]:
        """Start ``fn`` (an AWS call) alongside the caller's own; returns what awaits its result.

        A resource's tags need only its ARN, which its listing gives: they are read while
        its get is in flight, not after.
        """
        if self.side is None:
            return fn
        try:
            future = self.side.submit(fn)
        except RuntimeError:  # the pool was shut down by an interrupt
            raise Cancelled() from None

        def result() -> T:
            try:
                return future.result()
            except CancelledError:  # dropped from the pool's queue by an interrupt
                raise Cancelled() from None

        return result

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
        limit = UNIT_SERVICE_LIMITS.get(service, DEFAULT_UNIT_SERVICE_LIMIT)
        unit_key = (self.unit.account_id, self.unit.region, service)

        def attempt() -> dict:
            # Only the call itself holds the limits, never a backoff.
            with self.factory.unit_limits.hold(unit_key, limit), self.factory.in_flight:
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


def known_regions(service: str = "bedrock") -> set[str]:
    """Every region botocore knows for ``service`` (in any partition)."""
    return set(_service_regions(service))


_regions_lock = threading.Lock()
_regions: dict[str, frozenset[str]] = {}


def _service_regions(service: str) -> frozenset[str]:
    # Computed once, under a lock: every thread reaching an account asks at the same moment,
    # and each computation parses botocore's endpoints file (~10 MB of objects) again.
    regions = _regions.get(service)
    if regions is None:
        with _regions_lock:
            regions = _regions.get(service)
            if regions is None:
                session = boto3.Session()
                regions = _regions[service] = frozenset(
                    region
                    for partition in session.get_available_partitions()
                    for region in session.get_available_regions(service, partition_name=partition)
                )
    return regions


def offered(service: str, region: str) -> bool:
    """Whether botocore knows ``service`` in ``region`` (Bedrock is not in every region).

    A region botocore knows nothing about at all (newer than this botocore) is assumed to
    offer it: skipping it would hide data.
    """
    return region in _service_regions(service) or region not in _service_regions("kms")


def all_region_names() -> set[str]:
    """Every region name botocore knows, to tell a typo from a real region."""
    return known_regions("ec2") | known_regions("bedrock")
