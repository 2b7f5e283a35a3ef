"""The fetch engine: bounded thread pools that turn table scans into rows.

A scan covers many (account, region) units. Each unit's listing runs in a pool; every
listed item that needs a detail call (GetCustomModel, DescribeKey...) is hydrated in
another, at most ``hydrate_concurrency`` at a time per unit because Bedrock's get quotas
are low (its tags are read beside its get, in a third). The calls in flight are bounded by
the client factory, in all and per account, region and service. A live query scans one
table (:meth:`Engine.scan`); the collector scans every table of every unit at once, unit by
unit (:meth:`Engine.scan_all`). Rows stream to the consumer (SQLite) over a bounded queue,
so memory stays flat however large the estate.

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
from typing import Callable, Iterable, Iterator

from .accounts import Scope
from .aws import DEFAULT_MAX_WORKERS, ApiError, Cancelled, Unit, UnitApi, offered
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
        max_workers: int = DEFAULT_MAX_WORKERS,
        on_unit_done: Callable[[str, Unit], None] | None = None,
    ):
        self.scope = scope
        self.errors = errors if errors is not None else ErrorLog()
        self.on_unit_done = on_unit_done
        self.max_workers = max_workers
        # Listings, detail calls and the calls started beside them (a resource's tags during
        # its get) get separate pools: a listing may wait for its unit's hydrations to catch
        # up (backpressure), and a hydration for its tags, which must never starve them.
        # The calls in flight are bounded by the client factory, whatever the threads.
        self.list_executor = ThreadPoolExecutor(max_workers=max_workers, thread_name_prefix="bedrock-sql-list")
        self.executor = ThreadPoolExecutor(max_workers=max_workers, thread_name_prefix="bedrock-sql")
        self.side_executor = ThreadPoolExecutor(max_workers=max_workers, thread_name_prefix="bedrock-sql-side")
        # Gets answered in this engine's lifetime (one command): a join that looks up the
        # same key for a thousand models calls AWS once.
        self.get_cache: dict[tuple, tuple | None] = {}
        self.get_cache_lock = threading.Lock()
        # What the collector reports beside the rows: resources listed but gone (not found)
        # before their details were read, per table; and how many rows each table streamed
        # (the snapshot keeps one per key: the difference is the duplicates it dropped).
        self.vanished: dict[str, list[str]] = {}
        self.rows_streamed: Counter[str] = Counter()
        # By need (scan_all(context_by_need=True)): per table, the units not listed because
        # no model was there (a count, not the units: it must not grow with the estate).
        self.context_skipped: Counter[str] = Counter()
        self._tally_lock = threading.Lock()

    @property
    def pools(self) -> tuple[ThreadPoolExecutor, ...]:
        return (self.list_executor, self.executor, self.side_executor)

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
        run = _Run(self)
        scan = _Scan(run, table)
        try:
            if plan.get_keys is not None:
                for key in plan.get_keys:
                    for unit in self.units_for_key(key, plan):
                        run.submit(scan.get, unit, key)
            else:
                for unit in self.units(plan, table.service):
                    run.submit(scan.list, unit, plan.list_params, pool=self.list_executor)
            for _, row in run.results():
                yield row
        finally:
            run.close()

    def scan_all(self, tables: Iterable[Table], units: Iterable[Unit] | None = None, *,
                 context_by_need: bool = False) -> Iterator[tuple[Table, tuple]]:
        """Every table of every unit (of ``units``, a subset of the scope's, when given) at
        once, for the collector: ``(table, row)`` as they come. With ``context_by_need``, a
        table declaring ``context_of`` is listed in a unit only if one of those tables listed
        a resource there or failed to (:attr:`context_skipped` counts the others).

        Units start in scope order, each with all its tables. A unit's listings of one service
        run one after the other (their details and tags are still read concurrently): gentle
        on that service's per-account quotas, and a listing one table hands to the next (KMS
        ListAliases, for keys and aliases) is asked once; a table listed by need comes after
        the tables it depends on. So a unit has one listing call in flight per service, and up
        to twice ``max_workers`` (unit, service) listings are under way at once, the next one
        started as one finishes every table: enough to keep ``max_workers`` calls in flight,
        while what is held in memory follows the units under way, not the size of the estate.
        A unit's tables finish together (progress counts whole units).
        """
        run = _Run(self)
        by_service: dict[str, list[_Scan]] = {}
        for table in sorted(tables, key=lambda t: bool(t.context_of)):  # stable: else in the given order
            by_service.setdefault(table.service, []).append(_Scan(run, table))
        listings = (
            ((unit.account_id, unit.region, service), len(scans), _list_in_turn, scans, unit, context_by_need)
            for unit in (self.scope.units if units is None else units)
            for service, scans in by_service.items()
            if offered(service, unit.region)
        )  # (its key, the tables it finishes, task, its arguments)
        try:
            run.feed(listings, under_way=2 * self.max_workers)
            yield from run.results()
        finally:
            run.close()

    def note_context_skipped(self, table: Table) -> None:
        with self._tally_lock:
            self.context_skipped[table.name] += 1

    def note_vanished(self, table: Table, resource: str) -> None:
        """``resource`` was listed, then not found when its details were read."""
        with self._tally_lock:
            self.vanished.setdefault(table.name, []).append(resource)

    def interrupt(self) -> None:
        """Ctrl-C: make every backoff and queued task give up now."""
        self.scope.factory.stopping.set()
        for pool in self.pools:
            pool.shutdown(wait=False, cancel_futures=True)

    def close(self) -> None:
        for pool in self.pools:
            pool.shutdown(wait=True, cancel_futures=True)


class _Run:
    """The state of one scan (one table, or all of them): outstanding tasks, and the queue
    their rows come back on."""

    def __init__(self, engine: Engine):
        self.engine = engine
        self.rows: queue.Queue = queue.Queue(maxsize=4096)
        self.cancelled = threading.Event()
        self.streamed: Counter[str] = Counter()
        # Fed listings (scan_all): those not started yet, and the tables left to finish of
        # each one under way, by (account, region, service).
        self._listings: Iterator[tuple] | None = None
        self._chains: dict[tuple[str, str, str], int] = {}
        self._feed_lock = threading.Lock()  # one thread at a time takes the next listing
        self._lock = threading.Lock()
        self._pending = 1  # held by the consumer until it starts reading results

    def submit(self, fn: Callable, *args, pool: ThreadPoolExecutor | None = None) -> None:
        with self._lock:
            self._pending += 1
        try:
            (pool or self.engine.executor).submit(self._run, fn, *args)
        except RuntimeError:  # the pool was shut down by an interrupt
            self._task_done()
            raise Cancelled() from None

    def feed(self, listings: Iterator[tuple], under_way: int) -> None:
        """Run ``listings`` ((key, tables, fn, *args)...: a unit's listings of one service, which
        finish ``tables`` (unit, table) pairs), at most ``under_way`` at a time: the first ones
        now, each following one by the thread that finishes the last table of one before it
        (no thread waits to start them)."""
        self._listings = listings
        with self._lock:
            self._pending += 1  # held until every listing has been started
        for _ in range(under_way):
            if not self._start_next():
                break

    def _start_next(self) -> bool:
        """Start the next listing; False when there is none left (or the run is over)."""
        with self._feed_lock:
            if self._listings is None:
                return False
            following = None
            try:  # a bug in the listings is raised to the consumer (from a task, by _run)
                if not self.cancelled.is_set():
                    following = next(self._listings, None)
            finally:
                if following is None:  # none left, the run is over, or the listings failed
                    self._listings = None
                    self._task_done()  # the feed's hold
            if following is None:
                return False
            key, tables, fn, *args = following
            with self._lock:
                self._chains[key] = tables
        try:
            self.submit(fn, *args, pool=self.engine.list_executor)
        except Cancelled:
            return False
        return True

    def unit_done(self, table: Table, unit: Unit) -> None:
        """Every row and error of ``table`` in ``unit`` is in."""
        if self.engine.on_unit_done and not self.cancelled.is_set():
            self.engine.on_unit_done(table.name, unit)
        if self._listings is None and not self._chains:
            return  # not fed (a single table's scan), or every listing finished
        key = (unit.account_id, unit.region, table.service)
        with self._lock:
            left = self._chains.get(key, 1) - 1
            if left > 0:
                self._chains[key] = left
            else:
                self._chains.pop(key, None)
        if left <= 0:
            self._start_next()

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

    def results(self) -> Iterator[tuple[Table, tuple]]:
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
                self.streamed[payload[0].name] += 1
                yield payload
            elif kind == "fail":
                raise payload
            else:
                finished = True

    def close(self) -> None:
        """Stop the outstanding tasks (the consumer is done), and tally what was streamed."""
        self.cancelled.set()
        with self.engine._tally_lock:
            self.engine.rows_streamed.update(self.streamed)


class _Scan:
    """One table's tasks within a :class:`_Run`."""

    def __init__(self, run: _Run, table: Table):
        self.run = run
        self.engine = run.engine
        self.table = table

    @property
    def cancelled(self) -> threading.Event:
        return self.run.cancelled

    def submit(self, fn: Callable, *args) -> None:
        self.run.submit(fn, *args)

    def api(self, unit: Unit) -> UnitApi:
        return UnitApi(
            self.engine.scope.factory,
            unit,
            on_error=lambda exc, resource: self.engine.errors.add(unit, self.table.name, exc, resource),
            side=self.engine.side_executor,
        )

    def emit(self, api: UnitApi, item: dict) -> None:
        self.run._put(("row", (self.table, self.table.row(api, item))))

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
            self.run._put(("row", (self.table, cached)))
        self._unit_done(unit)

    def list(self, unit: Unit, params: dict) -> bool:
        """List ``unit``; True when it holds a resource of the table, or the listing failed
        (then it may hold one)."""
        api = self.api(unit)
        hydrator = _UnitHydrator(self, api) if self.table.hydrate_item else None
        found = False
        try:
            for summary in self.table.list_items(api, params):
                found = True
                if self.cancelled.is_set():
                    raise Cancelled()
                if hydrator:
                    hydrator.add(summary)
                else:
                    self.emit(api, summary)
        except ApiError as exc:
            api.record(exc)
            found = True
        finally:
            if hydrator:
                hydrator.listing_done()
            else:
                self._unit_done(unit)
        return found

    def skip(self, unit: Unit) -> None:
        """Not listed in ``unit``, by need: nothing there for this table to describe."""
        self.engine.note_context_skipped(self.table)
        self._unit_done(unit)

    def _unit_done(self, unit: Unit) -> None:
        self.run.unit_done(self.table, unit)


def _list_in_turn(scans: list[_Scan], unit: Unit, context_by_need: bool = False) -> None:
    """List ``unit`` for each of ``scans`` (tables of one service), one after the other; by
    need, a table describing others' resources (``context_of``) only when one of them found a
    resource in the unit or failed to list it. When a table it depends on is not scanned
    here, nothing says the unit holds none: then it is listed."""
    scanned = {scan.table.name for scan in scans}
    seen: set[str] = set()  # tables that listed a resource in the unit, or failed to
    for scan in scans:
        if scan.cancelled.is_set():
            return
        needs = scan.table.context_of
        if context_by_need and needs and scanned.issuperset(needs) and seen.isdisjoint(needs):
            scan.skip(unit)
            continue
        if scan.list(unit, {}):
            seen.add(scan.table.name)


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

