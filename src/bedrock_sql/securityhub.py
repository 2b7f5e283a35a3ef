"""Findings into AWS Security Hub: ``check --to-security-hub`` (and its ``--dry-run``).

Each finding goes, as the ASFF :func:`bedrock_sql.findings.asff_finding` builds, to its own
account and region: Security Hub takes findings of the account's ``default`` product only
from that account (the caller's account must be the finding's ``AwsAccountId``), so every
account is reached with the same AWS options as ``collect`` (profiles, roles, the accounts
file: :func:`bedrock_sql.accounts.resolve_scope`) and each finding is sent through the
:class:`~bedrock_sql.aws.UnitApi` of its (account, region). A finding whose account or
region is not in that scope is a failure, listed -- never silently left out.

``BatchImportFindings`` takes at most 100 findings a call and answers per finding
(``FailedFindings``). It updates a finding it already holds (same ``Id``, same
``ProductArn``) rather than adding one, and finding ids are stable across runs
(:func:`bedrock_sql.findings.finding_uid`), so a rerun updates the earlier findings and a
retried call cannot duplicate anything: calls are retried as any idempotent call
(throttles, 5xx, resets; see :meth:`UnitApi.call`). An ``ok`` finding is sent with
``Compliance.Status`` PASSED, which moves the finding Security Hub already holds for that
resource from FAILED to PASSED. (Its ``Workflow`` is the customer's once the finding exists:
BatchImportFindings cannot change it, and Security Hub resolves PASSED findings itself only
for its own controls.)

Findings are sent while the controls are read, 100 per (account, region) at a time, a few
calls at once: memory holds at most one partial batch per (account, region) and the batches
in flight, whatever the size of the estate.
"""

from __future__ import annotations

import json
import threading
from collections import Counter
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Callable, Iterable, Iterator, Sequence, TextIO

import apsw

from .accounts import FailedAccount, Scope
from .aws import ApiError, UnitApi
from .controls import Control, Finding, iter_findings, prepare_control, snapshot_run
from .errors import describe_failure
from .findings import asff_finding
from .render import inert_json

if TYPE_CHECKING:
    from .exceptions import ExceptionFile

#: BatchImportFindings takes 1 to 100 findings a call (its ``Findings`` member).
MAX_FINDINGS_PER_CALL = 100
#: Failure lines printed; the rest are counted.
SHOWN_FAILURES = 20
#: Calls in flight at once. Each carries up to 100 findings; more would only meet Security
#: Hub's request rate (throttles, which UnitApi rides out) and hold more batches in memory.
SENDING_THREADS = 16
#: What an AWS error code usually means here.
HINTS = {
    "InvalidAccessException": "is Security Hub enabled in this account and region?",
    "AccessDeniedException": "the credentials need securityhub:BatchImportFindings",
}

Key = tuple[str, str]  # (account_id, region)


def to_security_hub(
    connection: apsw.Connection,
    controls: Sequence[Control],
    scope: Scope | None,
    *,
    max_workers: int,
    exceptions: "ExceptionFile | None" = None,
    preview: TextIO | None = None,
) -> "ImportReport":
    """Send the findings of ``controls`` on the snapshot to Security Hub through ``scope``;
    or, with ``preview``, write there what would be sent (``scope`` is then not used).
    ``exceptions`` mute findings as they do in ``check``'s report."""
    findings = check_findings(connection, controls, exceptions)
    if preview is not None:
        return dry_run(findings, preview)
    if scope is None:
        raise ValueError("sending to Security Hub needs the AWS scope")
    return import_findings(findings, scope, max_workers)


def check_findings(
    connection: apsw.Connection, controls: Sequence[Control], exceptions: "ExceptionFile | None" = None
) -> Iterator[Finding]:
    """Every finding of ``controls`` on the snapshot, dated by its collect run and muted by
    ``exceptions``, as ``check`` reports them (SQLite runs the controls again: the snapshot
    file is never written in place, so this pass sees the rows the report saw)."""
    run = snapshot_run(connection)
    muted = exceptions.muter(connection).apply if exceptions and exceptions.active else None
    for control in controls:
        for finding in iter_findings(connection, prepare_control(connection, control), run):
            yield muted(finding) if muted else finding


# --- what happened -------------------------------------------------------------------------


@dataclass(frozen=True)
class Failure:
    """Findings that did not land: one finding (``finding`` set) or ``count`` of one (account, region)."""

    account_id: str
    region: str
    count: int
    code: str
    message: str
    finding: str | None = None  # "<id> (<resource>)"
    operation: str | None = None  # the call that failed, when one did

    def __str__(self) -> str:
        what = f"finding {self.finding}" if self.finding else f"{self.count} finding(s)"
        call = f"{self.operation}: " if self.operation else ""
        hint = HINTS.get(self.code)
        return f"{self.account_id}/{self.region}: {what}: {call}{describe_failure(self.code, self.message)}" + (
            f" ({hint})" if hint else ""
        )


@dataclass
class ImportReport:
    """What ``--to-security-hub`` did (or, ``dry_run``, would do); filled from the sending threads."""

    dry_run: bool = False
    imported: Counter = field(default_factory=Counter)  # (account, region) -> findings imported
    failed: int = 0
    calls: int = 0
    failures: list[Failure] = field(default_factory=list)  # the first SHOWN_FAILURES
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def called(self) -> None:
        with self._lock:
            self.calls += 1

    def landed(self, key: Key, count: int) -> None:
        if count:  # the summary counts the accounts and regions something landed in
            with self._lock:
                self.imported[key] += count

    def fail(self, failure: Failure) -> None:
        with self._lock:
            self.failed += failure.count
            if len(self.failures) < SHOWN_FAILURES:
                self.failures.append(failure)

    def lines(self) -> list[str]:
        """One line per failure (the first :data:`SHOWN_FAILURES`), then the summary; a dry
        run first gives the findings of each (account, region)."""
        lines = [f"  {account}/{region}: {count} finding(s)" for (account, region), count in sorted(self.imported.items())
                 ] if self.dry_run else []
        lines += [f"bedrock-sql: Security Hub: {failure}" for failure in self.failures]
        hidden = self.failed - sum(f.count for f in self.failures)
        if hidden > 0:
            lines.append(f"bedrock-sql: Security Hub: ... and {hidden} more finding(s) not imported")
        lines.append(self.summary())
        return lines

    def summary(self) -> str:
        accounts = {account for account, _ in self.imported}
        regions = {region for _, region in self.imported}
        where = (f"{sum(self.imported.values())} finding(s) into {len(accounts)} account(s)/{len(regions)} region(s) "
                 f"in {self.calls} call(s)")
        if self.dry_run:
            return f"Security Hub (dry run): would import {where}, failed {self.failed}; nothing was sent."
        return f"Security Hub: imported {where}, failed {self.failed}."


# --- batching ------------------------------------------------------------------------------


class _Batches:
    """ASFF findings grouped per (account, region), handed to ``flush`` 100 at a time."""

    def __init__(self, flush: Callable[[Key, list[dict]], None]):
        self.flush = flush
        self.pending: dict[Key, list[dict]] = {}

    def add(self, key: Key, asff: dict) -> None:
        batch = self.pending.setdefault(key, [])
        batch.append(asff)
        if len(batch) == MAX_FINDINGS_PER_CALL:
            del self.pending[key]
            self.flush(key, batch)

    def close(self) -> None:
        for key, batch in self.pending.items():
            self.flush(key, batch)
        self.pending.clear()


def _asff(finding: Finding, report: ImportReport) -> dict | None:
    """The finding as ASFF; None (a failure, reported) if it cannot be one (no account or region)."""
    try:
        return asff_finding(finding)
    except ValueError as exc:
        report.fail(Failure(str(finding.account_id), str(finding.region), 1, "NotSent", str(exc),
                            finding=f"{finding.control.id} ({finding.resource})"))
        return None


# --- sending -------------------------------------------------------------------------------


def import_findings(findings: Iterable[Finding], scope: Scope, max_workers: int) -> ImportReport:
    """Send ``findings`` to Security Hub, each in its own account and region of ``scope``."""
    report = ImportReport()
    units = {(unit.account_id, unit.region): unit for unit in scope.units}
    unreachable = {failed.account_id: failed for failed in scope.failed_accounts}
    outside: Counter = Counter()  # (account, region) not in the scope -> findings
    workers = max(1, min(max_workers, SENDING_THREADS))
    # Batches waiting for a thread hold memory: at most two per thread are queued.
    queued = threading.BoundedSemaphore(workers * 2)
    futures: list[Future] = []
    executor = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="bedrock-sql-securityhub")

    def send(key: Key, batch: list[dict]) -> None:
        try:
            _send_batch(UnitApi(scope.factory, units[key]), key, batch, report)
        finally:
            queued.release()

    def flush(key: Key, batch: list[dict]) -> None:
        queued.acquire()
        futures.append(executor.submit(send, key, batch))

    batches = _Batches(flush)
    try:
        for finding in findings:
            asff = _asff(finding, report)
            if asff is None:
                continue
            key = (asff["AwsAccountId"], asff["Region"])
            if key in units:
                batches.add(key, asff)
            else:
                outside[key] += 1
        batches.close()
        for future in futures:
            future.result()  # a bug in a sending thread is seen, not swallowed
    except BaseException:
        scope.factory.stopping.set()  # backoffs give up at once
        executor.shutdown(wait=False, cancel_futures=True)
        raise
    executor.shutdown(wait=True)
    for (account_id, region), count in sorted(outside.items()):
        report.fail(_outside_scope(account_id, region, count, unreachable.get(account_id), scope))
    return report


def _outside_scope(
    account_id: str, region: str, count: int, unreachable: FailedAccount | None, scope: Scope
) -> Failure:
    """Why findings of an (account, region) the scope holds no unit for were not sent."""
    if unreachable is not None:
        return Failure(account_id, region, count, unreachable.error_code,
                       f"account not reachable ({unreachable.label}: {unreachable.operation}: {unreachable.message})")
    if any(account.account_id == account_id for account in scope.accounts):
        message = (f"region {region} is not among the regions the AWS options reach "
                   f"({', '.join(scope.regions)}): give the --region/--all-regions the snapshot was collected with")
    else:
        message = ("account is not among the accounts the AWS options reach: give the --profile/--role-arn/"
                   "--accounts-file the snapshot was collected with")
    return Failure(account_id, region, count, "NotInScope", message)


def _send_batch(api: UnitApi, key: Key, batch: list[dict], report: ImportReport) -> None:
    """One BatchImportFindings call; what landed and what failed go to ``report``."""
    account_id, region = key
    report.called()
    try:
        # Idempotent: a finding is updated in place by its Id, so a retry duplicates nothing.
        answer = api.call("securityhub", "batch_import_findings", Findings=batch, idempotent=True)
    except ApiError as exc:
        report.fail(Failure(account_id, region, len(batch), exc.code, exc.message, operation=exc.operation))
        return
    sent = {asff["Id"]: asff for asff in batch}
    failed = answer.get("FailedFindings") or []
    failed_ids = {item.get("Id") for item in failed}
    succeeded = answer["SuccessCount"]
    # The answer must account for every finding sent, or what landed is unknown: all are
    # counted failed (a rerun updates whatever did land).
    if (succeeded + answer["FailedCount"] != len(batch) or len(failed) != answer["FailedCount"]
            or len(failed_ids) != len(failed) or not failed_ids <= sent.keys()):
        report.fail(Failure(
            account_id, region, len(batch), "InvalidResponse",
            f"BatchImportFindings answered SuccessCount {succeeded}, FailedCount {answer['FailedCount']} and "
            f"{len(failed)} FailedFindings for {len(batch)} finding(s) sent: which landed is unknown",
        ))
        return
    report.landed(key, succeeded)
    for item in failed:
        resource = sent[item["Id"]]["Resources"][0]["Id"]
        report.fail(Failure(account_id, region, 1, item.get("ErrorCode") or "", item.get("ErrorMessage") or "",
                            finding=f"{item['Id']} ({resource})"))


# --- the dry run -----------------------------------------------------------------------------


def dry_run(findings: Iterable[Finding], out: TextIO) -> ImportReport:
    """Write what ``--to-security-hub`` would send, one JSON line per BatchImportFindings call
    (``{"account_id", "region", "findings": [ASFF...]}``), and send nothing.

    No AWS call is made, so whether each account can be reached is not checked here.
    """
    report = ImportReport(dry_run=True)

    def flush(key: Key, batch: list[dict]) -> None:
        report.called()
        report.landed(key, len(batch))
        out.write(inert_json(json.dumps({"account_id": key[0], "region": key[1], "findings": batch}, ensure_ascii=False)) + "\n")

    batches = _Batches(flush)
    for finding in findings:
        asff = _asff(finding, report)
        if asff is not None:
            batches.add((asff["AwsAccountId"], asff["Region"]), asff)
    batches.close()
    return report
