"""The botocore clients every AWS call goes through, and how many calls run at once.

:class:`ClientFactory` makes one client per session, region and service and shares it by
every account reached through that session, each call signed with its own account's
credentials (:class:`_AccountClient`); it bounds the calls in flight, in all and per account,
region and service; and it hooks every client so that every answer is checked
(:mod:`bedrock_sql.responses`). The environment's knobs for calls (attempts, timeouts,
backoff) are read here too. :class:`~bedrock_sql.aws.UnitApi` makes the calls.
"""

from __future__ import annotations

import contextlib
import os
import queue
import re
import threading
from collections import Counter
from typing import TYPE_CHECKING, Any

import boto3
import botocore.credentials
import botocore.exceptions
import botocore.session
from botocore.config import Config
from botocore.model import OperationModel

from . import __version__
from .errors import UserError
from .responses import Pagination, install as check_every_answer

if TYPE_CHECKING:
    from .aws import Account

# Services called only to reach the accounts (AssumeRole, GetCallerIdentity, ListAccounts):
# not counted in ``ClientFactory.calls``, which measures the scan itself.
RESOLUTION_SERVICES = frozenset({"sts", "organizations"})

DEFAULT_MAX_ATTEMPTS = 12  # attempts per throttled call; AWS_MAX_ATTEMPTS overrides
# Calls in flight at once, across every account and region (--max-workers).
DEFAULT_MAX_WORKERS = 64
# Calls in flight per account, region and service: each account's request quotas are per
# region (see docs/large-organizations.md, "Quotas, concurrency and memory").
UNIT_SERVICE_LIMITS = {"bedrock": 10, "kms": 10}
DEFAULT_UNIT_SERVICE_LIMIT = 10
DEFAULT_READ_TIMEOUT = 60.0  # seconds; BEDROCK_SQL_READ_TIMEOUT overrides
DEFAULT_BACKOFF_BASE = 0.25  # seconds; BEDROCK_SQL_BACKOFF_BASE overrides (tests make it tiny)


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


class ClientFactory:
    """Creates the botocore clients every call goes through, and bounds how many calls run.

    One client per session, region and service, shared by every account reached through
    that session (every role its credentials assume): each call is signed with its own
    account's credentials (see :class:`_AccountClient`), so 1,000 accounts x 35 regions need
    70 clients, not 70,000 (a client costs ~0.5-1 MB and milliseconds of CPU to create; a
    shared one keeps its endpoint and model caches warm). Sessions made here share one
    botocore data loader, so no service model is parsed twice.

    Concurrency: at most ``max_workers`` calls in flight in all (``in_flight``), and at most
    ``UNIT_SERVICE_LIMITS[service]`` per account, region and service, whatever the number of
    threads waiting to call.

    Why our own retries instead of botocore's: standard mode gives each client a retry
    quota that a throttling storm across many threads runs dry, and adaptive mode's rate
    limiter collapses (see DESIGN.md). So botocore makes one attempt per call, and
    :class:`~bedrock_sql.aws.UnitApi` retries with jittered exponential backoff: throttles up to
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
            # Every parameter is built here (or by a provider's checked filter) and AWS
            # validates it again: botocore's own check costs ~8% of a call's CPU.
            parameter_validation=False,
            # A client serves every account of its region: as many connections as calls.
            max_pool_connections=max(10, max_workers),
            user_agent_extra=f"bedrock-sql/{__version__}",
            connect_timeout=10,
            read_timeout=read_timeout(),
        )
        self.in_flight = Places(max_workers)
        self.unit_limits = _KeyedLimits()
        self._clients: dict[tuple[boto3.Session, str, str], Any] = {}
        self._lock = threading.Lock()
        self.calls: Counter[tuple[str, str, str]] = Counter()  # (service, operation, region)
        self.call_count = 0  # the sum of ``calls``, for progress
        self._calls_lock = threading.Lock()
        self.stopping = threading.Event()  # set to make every backoff give up at once
        # One botocore data loader for every session and client: a session of its own would
        # parse the service models again for its first clients, ~0.1 CPU-second each.
        self.loader = botocore.session.Session().get_component("data_loader")
        self._session_lock = threading.Lock()
        self._paginations: dict[tuple[str, str, str], Pagination | None] = {}

    def new_session(self, *, profile: str | None = None, region: str | None = None) -> boto3.Session:
        """A boto3 Session on ``profile``'s config and credentials (None: the default chain)
        sharing the factory's loader."""
        core = botocore.session.Session(profile=profile)
        core.register_component("data_loader", self.loader)
        with self._session_lock:
            session = boto3.Session(botocore_session=core, profile_name=profile, region_name=region)
            # boto3 appends its own data path to the loader for every session: keep one.
            paths = self.loader.search_paths
            paths[:] = list(dict.fromkeys(paths))
        return session

    def client(self, account: Account, region: str, service: str) -> _AccountClient:
        """A client for ``service`` in ``region`` whose calls are signed as ``account``."""
        return _AccountClient(self._shared_client(account.session, region, service), account.signing_credentials())

    def _shared_client(self, session: boto3.Session, region: str, service: str):
        """The client of ``session`` (its profile's config: CA bundle, proxies, endpoints; and
        its event handlers), shared by every account reached through it."""
        key = (session, region, service)
        client = self._clients.get(key)
        if client is not None:
            return client
        with self._lock:  # boto3 sessions are not thread-safe; clients are
            client = self._clients.get(key)
            if client is None:
                client = session.client(service, region_name=region, endpoint_url=self.endpoint_url, config=self.config)
                check_every_answer(client, self.pagination)
                client.meta.events.register("before-call", _sign_as_caller, unique_id="bedrock-sql-sign-as")
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
            self.call_count += 1

    def total_calls(self, service: str | None = None, operation: str | None = None) -> int:
        with self._calls_lock:
            if service is None and operation is None:
                return self.call_count
            return sum(
                n
                for (svc, op, _), n in self.calls.items()
                if (service is None or svc == service) and (operation is None or op == operation)
            )


# The credentials the current thread's call is signed with (see _AccountClient).
_caller = threading.local()


def _sign_as_caller(context=None, **_kwargs) -> None:
    """before-call: sign with the calling account's credentials (botocore's per-request
    credentials, ``context["signing"]["request_credentials"]``)."""
    credentials = getattr(_caller, "credentials", None)
    if credentials is not None and context is not None:
        context["signing"] = {**context.get("signing", {}), "request_credentials": credentials}


class _AccountClient:
    """A shared botocore client seen as one account: its API methods sign as that account.

    Anything else (``meta``, ``exceptions``...) is the shared client's own.
    """

    __slots__ = ("_client", "_credentials")

    def __init__(self, client: Any, credentials: botocore.credentials.Credentials | None):
        self._client = client
        self._credentials = credentials

    def __getattr__(self, name: str):
        attribute = getattr(self._client, name)
        if name not in self._client.meta.method_to_api_mapping:
            return attribute
        credentials = self._credentials

        def call(*args, **kwargs):
            outer = getattr(_caller, "credentials", None)  # a refresh may call STS mid-call
            _caller.credentials = credentials
            try:
                return attribute(*args, **kwargs)
            finally:
                _caller.credentials = outer

        return call


class Places:
    """At most ``count`` holders at once (``with places:``), as a semaphore, in C.

    A queue of tokens (``queue.SimpleQueue``, implemented in C): taking a place takes a
    token, leaving puts it back. ``threading.Semaphore`` is written in Python on a Condition;
    with more threads ready to call than places (three pools of --max-workers threads share
    them), its waits and wake-ups cost about 6% of the collect's CPU (bench_scale, 100
    accounts: 1.55 -> 1.46 ms per call without it).
    """

    def __init__(self, count: int) -> None:
        self._tokens: queue.SimpleQueue = queue.SimpleQueue()
        for _ in range(count):
            self._tokens.put(None)

    def __enter__(self) -> None:
        self._tokens.get()

    def __exit__(self, *exc) -> None:
        self._tokens.put(None)


class _KeyedLimits:
    """A semaphore per key (account, region, service), existing only while it is in use."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._held: dict[tuple, list] = {}  # key -> [semaphore, users]

    @contextlib.contextmanager
    def hold(self, key: tuple, limit: int):
        with self._lock:
            entry = self._held.get(key)
            if entry is None:
                entry = self._held[key] = [Places(limit), 0]
            entry[1] += 1
        try:
            with entry[0]:
                yield
        finally:
            with self._lock:
                entry[1] -= 1
                if entry[1] == 0:
                    del self._held[key]
