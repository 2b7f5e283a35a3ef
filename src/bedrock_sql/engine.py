"""The fetch engine: one bounded thread pool that turns a table scan into rows.

A scan covers many (account, region) units. Each unit's listing runs in the pool; every
listed item that needs a detail call (GetCustomModel, DescribeKey...) is hydrated in the
same pool, at most ``hydrate_concurrency`` at a time per unit because Bedrock's get quotas
are low. Rows stream to the consumer (SQLite, through the virtual table) over a bounded
queue, so memory stays flat however large the estate.

A failure costs only its unit (or its item): it is recorded in the :class:`ErrorLog`, and
the other units still answer. A listed item whose details cannot be read keeps its row
(from the listing) and its error names it, so every control on it answers ``error``; only
a genuine not-found (the provider's get returns None) drops it, and that is noted
(:attr:`Engine.vanished`), never silent.
"""

from __future__ import annotations

import queue
import threading
from collections import Counter, deque
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Callable, Iterator

from .accounts import Scope
from .aws import ApiError, Cancelled, Unit, UnitApi, offered
from .providers.base import Table, arn_account, arn_region, iso_utc

ERROR_COLUMNS = (
    "account_id",
    "region",
    "table_name",
    "operation",
    "error_code",
    "message",
    "occurred_at",
    "resource",
)


@dataclass(frozen=True)
class ErrorRecord:
    """An AWS failure that cost data: one row of ``bedrock_sql_errors``."""

    account_id: str
    region: str
    table_name: str
    operation: str
    error_code: str
    message: str
    occurred_at: str
    resource: str | None = None  # the item whose details failed; NULL when a whole unit failed

    def as_row(self) -> tuple:
        return tuple(getattr(self, name) for name in ERROR_COLUMNS)


class ErrorLog:
    """Thread-safe collection of :class:`ErrorRecord`."""

    def __init__(self) -> None:
        self._records: list[ErrorRecord] = []
        self._lock = threading.Lock()

    def add(self, unit: Unit, table_name: str, exc: ApiError, resource: str | None = None) -> None:
        record = ErrorRecord(
            account_id=unit.account_id,
            region=unit.region,
            table_name=table_name,
            operation=exc.operation,
            error_code=exc.code,
            message=exc.message,
            occurred_at=iso_utc(datetime.now(timezone.utc)),
            resource=resource,
        )
        with self._lock:
            self._records.append(record)

    def records(self) -> list[ErrorRecord]:
        with self._lock:
            return list(self._records)

    def __len__(self) -> int:
        with self._lock:
            return len(self._records)


@dataclass
class ScanPlan:
    """What one scan asks for, built from the pushed-down WHERE constraints."""

    regions: set[str] | None = None  # None: every region in scope
    accounts: set[str] | None = None  # None: every account in scope
    get_keys: list[str] | None = None  # set: answer with one get per key, no listing
    list_params: dict = field(default_factory=dict)


class Engine:
    """Runs scans for the virtual tables and the collector over one :class:`Scope`."""

    def __init__(
        self,
        scope: Scope,
        errors: ErrorLog | None = None,
        *,
        max_workers: int = 16,
        on_unit_done: Callable[[str, Unit], None] | None = None,
    ):
        self.scope = scope
        self.errors = errors if errors is not None else ErrorLog()
        self.on_unit_done = on_unit_done
        # Listings and detail calls get separate pools: a listing may wait for its unit's
        # hydrations to catch up (backpressure), which must never starve those hydrations.
        self.list_executor = ThreadPoolExecutor(max_workers=max_workers, thread_name_prefix="bedrock-sql-list")
        self.executor = ThreadPoolExecutor(max_workers=max_workers, thread_name_prefix="bedrock-sql")
        # Gets answered in this engine's lifetime (one command): a join that looks up the
        # same key for a thousand models calls AWS once.
        self.get_cache: dict[tuple, tuple | None] = {}
        self.get_cache_lock = threading.Lock()
        # What the collector reports beside the rows: resources listed but gone (not found)
        # before their details were read, per table; and how many rows each table streamed
        # (the snapshot keeps one per key: the difference is the duplicates it dropped).
        self.vanished: dict[str, list[str]] = {}
        self.rows_streamed: Counter[str] = Counter()
        self._tally_lock = threading.Lock()

    def units(self, plan: ScanPlan, service: str | None = None) -> list[Unit]:
        """The units a scan calls: those the plan allows, where the service is offered."""
        return [
            u
            for u in self.scope.units
            if (plan.regions is None or u.region in plan.regions)
            and (plan.accounts is None or u.account_id in plan.accounts)
            and (service is None or offered(service, u.region))
        ]

    def units_for_key(self, key: str, plan: ScanPlan) -> list[Unit]:
        """The units that can own ``key``: an ARN names its own account and region."""
        account, region = arn_account(key), arn_region(key)
        if account is None or not region:
            return self.units(plan)
        if (plan.regions is not None and region not in plan.regions) or (
            plan.accounts is not None and account not in plan.accounts
        ):
            return []
        for unit in self.scope.units:
            if unit.account_id == account and unit.region == region:
                return [unit]
        # The ARN's region is outside the scanned regions, but we hold its account's
        # credentials: the user asked for that resource by name, so fetch it.
        for acct in self.scope.accounts:
            if acct.account_id == account:
                return [Unit(account=acct, account_id=account, region=region)]
        return []

    def scan(self, table: Table, plan: ScanPlan) -> Iterator[tuple]:
        """Stream the rows of ``table`` for ``plan``; stops cleanly when closed early."""
        run = _Scan(self, table)
        streamed = 0
        try:
            if plan.get_keys is not None:
                for key in plan.get_keys:
                    for unit in self.units_for_key(key, plan):
                        run.submit(run.get, unit, key)
            else:
                for unit in self.units(plan, table.service):
                    run.submit(run.list, unit, plan.list_params, pool=self.list_executor)
            for row in run.results():
                streamed += 1
                yield row
        finally:
            run.cancelled.set()
            with self._tally_lock:
                self.rows_streamed[table.name] += streamed

    def note_vanished(self, table: Table, resource: str) -> None:
        """``resource`` was listed, then not found when its details were read."""
        with self._tally_lock:
            self.vanished.setdefault(table.name, []).append(resource)

    def interrupt(self) -> None:
        """Ctrl-C: make every backoff and queued task give up now."""
        self.scope.factory.stopping.set()
        for pool in (self.list_executor, self.executor):
            pool.shutdown(wait=False, cancel_futures=True)

    def close(self) -> None:
        for pool in (self.list_executor, self.executor):
            pool.shutdown(wait=True, cancel_futures=True)


class _Scan:
    """The state of one scan: outstanding tasks, and the queue their rows come back on."""

    def __init__(self, engine: Engine, table: Table):
        self.engine = engine
        self.table = table
        self.rows: queue.Queue = queue.Queue(maxsize=4096)
        self.cancelled = threading.Event()
        self._lock = threading.Lock()
        self._pending = 1  # held by the consumer until it starts reading results

    # -- task bookkeeping --------------------------------------------------------------

    def submit(self, fn: Callable, *args, pool: ThreadPoolExecutor | None = None) -> None:
        with self._lock:
            self._pending += 1
        try:
            (pool or self.engine.executor).submit(self._run, fn, *args)
        except RuntimeError:  # the pool was shut down by an interrupt
            self._task_done()
            raise Cancelled() from None

    def _run(self, fn: Callable, *args) -> None:
        try:
            if not self.cancelled.is_set():
                fn(*args)
        except Cancelled:
            pass
        except BaseException as exc:  # a bug, not an AWS failure: surface it to the query
            self._put(("fail", exc))
        finally:
            self._task_done()

    def _task_done(self) -> None:
        with self._lock:
            self._pending -= 1
            last = self._pending == 0
        if last:
            self._put(("done", None))

    def _put(self, message: tuple) -> None:
        while not self.cancelled.is_set():
            try:
                self.rows.put(message, timeout=0.2)
                return
            except queue.Full:
                continue
        raise Cancelled()

    def results(self) -> Iterator[tuple]:
        with self._lock:
            self._pending -= 1
            finished = self._pending == 0
        while True:
            if finished:  # every task ended before we started reading; drain and stop
                try:
                    kind, payload = self.rows.get_nowait()
                except queue.Empty:
                    return
            else:
                kind, payload = self.rows.get()
            if kind == "row":
                yield payload
            elif kind == "fail":
                raise payload
            else:
                finished = True

    # -- the tasks ---------------------------------------------------------------------

    def api(self, unit: Unit) -> UnitApi:
        return UnitApi(
            self.engine.scope.factory,
            unit,
            on_error=lambda exc, resource: self.engine.errors.add(unit, self.table.name, exc, resource),
        )

    def emit(self, api: UnitApi, item: dict) -> None:
        self._put(("row", self.table.row(api, item)))

    def get(self, unit: Unit, key: str) -> None:
        cache_key = (self.table.name, unit.account_id, unit.region, key)
        engine = self.engine
        with engine.get_cache_lock:
            cached = engine.get_cache.get(cache_key, False)
        if cached is False:
            api = self.api(unit)
            try:
                item = self.table.get_item(api, key)
            except ApiError as exc:
                api.record(exc, resource=key)
                self._unit_done(unit)
                return
            cached = self.table.row(api, item) if item is not None else None
            with engine.get_cache_lock:
                engine.get_cache[cache_key] = cached
        if cached is not None:
            self._put(("row", cached))
        self._unit_done(unit)

    def list(self, unit: Unit, params: dict) -> None:
        api = self.api(unit)
        hydrator = _UnitHydrator(self, api) if self.table.hydrate_item else None
        try:
            for summary in self.table.list_items(api, params):
                if self.cancelled.is_set():
                    raise Cancelled()
                if hydrator:
                    hydrator.add(summary)
                else:
                    self.emit(api, summary)
        except ApiError as exc:
            api.record(exc)
        finally:
            if hydrator:
                hydrator.listing_done()
            else:
                self._unit_done(unit)

    def _unit_done(self, unit: Unit) -> None:
        if self.engine.on_unit_done and not self.cancelled.is_set():
            self.engine.on_unit_done(self.table.name, unit)


class _UnitHydrator:
    """Hydrates one unit's listed items, a bounded number at a time.

    No hydration ever waits for another task: a finished hydration starts the next queued
    one, so a slow unit cannot starve the pool or deadlock it. The listing (in its own
    pool) waits when ``MAX_WAITING`` summaries are queued, so a unit of 50,000 models never
    holds more than a page or so of them in memory.
    """

    MAX_WAITING = 500

    def __init__(self, scan: _Scan, api: UnitApi):
        self.scan = scan
        self.api = api
        self.limit = scan.table.hydrate_concurrency
        self.waiting: deque = deque()
        self.in_flight = 0
        self.listing = True
        self._lock = threading.Lock()
        self._room = threading.Condition(self._lock)

    def add(self, summary: dict) -> None:
        with self._room:
            while len(self.waiting) >= self.MAX_WAITING:
                if self.scan.cancelled.is_set():
                    raise Cancelled()
                self._room.wait(0.2)
            if self.in_flight >= self.limit:
                self.waiting.append(summary)
                return
            self.in_flight += 1
        self.scan.submit(self._hydrate, summary)

    def listing_done(self) -> None:
        with self._lock:
            self.listing = False
            done = self.in_flight == 0 and not self.waiting
        if done:
            self.scan._unit_done(self.api.unit)

    def _hydrate(self, summary: dict) -> None:
        try:
            self._hydrate_one(summary)
        finally:
            with self._lock:
                self.in_flight -= 1
                following = self.waiting.popleft() if self.waiting else None
                if following is not None:
                    self.in_flight += 1
                    self._room.notify()
                done = not self.listing and self.in_flight == 0 and following is None
            if following is not None:
                self.scan.submit(self._hydrate, following)
            elif done:
                self.scan._unit_done(self.api.unit)

    def _hydrate_one(self, summary: dict) -> None:
        table = self.scan.table
        try:
            detail = table.hydrate_item(self.api, summary)
        except ApiError as exc:
            # Keep the resource visible with what the listing said; the recorded error
            # tells controls its details are unknown (never a silent pass).
            self.api.record(exc, resource=self._resource(summary))
            self.scan.emit(self.api, summary)
            return
        if detail is None:  # a genuine not-found: deleted between list and get
            self.scan.engine.note_vanished(table, self._resource(summary) or repr(summary))
            return
        self.scan.emit(self.api, {**summary, **detail})

    def _resource(self, summary: dict) -> str | None:
        """The listed item's ARN (what its error row and notes name)."""
        table = self.scan.table
        return table.row(self.api, summary)[table.column_names.index(table.arn)] if table.arn else None

