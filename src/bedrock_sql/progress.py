"""What `collect` shows while it runs and when it ends: a progress bar on a terminal (stderr),
then a summary of rows, notes and failures. Also used by `check --live` and `query --live`."""

from __future__ import annotations

import os
import shutil
import sys
import threading
import time
from collections import Counter
from pathlib import Path

import click
from tqdm import tqdm

from .aws import offered
from .engine import ErrorLog, ErrorRecord
from .kms_need import DEFAULT_KMS_KEY_MODE, listed_tables
from .model_context import DEFAULT_MODEL_CONTEXT
from .render import terminal_text
from .snapshot import CollectResult, collect


def collect_with_progress(scope, db: Path, max_workers: int, quiet: bool, destination: str | None = None,
                          force: bool = False, kms_keys: str = DEFAULT_KMS_KEY_MODE,
                          model_context: str = DEFAULT_MODEL_CONTEXT) -> CollectResult:
    """Collect into ``db``, with a progress bar on a terminal and the summary after (unless quiet)."""
    from .providers import TABLES

    started = time.monotonic()
    errors = ErrorLog()
    # The bar counts the units of the tables listed everywhere; by need, the KMS reads that
    # follow are few and fast, and their calls show in the count.
    counted = listed_tables(TABLES, kms_keys)
    with CollectProgress(scope, counted, errors, not quiet and sys.stderr.isatty()) as advance:
        result = collect(scope, db, max_workers=max_workers, on_unit_done=advance, force=force, errors=errors,
                         kms_keys=kms_keys, model_context=model_context)
    if not quiet:
        print_collect_summary(result, time.monotonic() - started, destination or str(result.path))
    return result


class CollectProgress:
    """A tqdm bar on stderr, advanced from worker threads; nothing at all when disabled (piped).

    It counts whole units (an account in a region, every table done) and whole accounts, and
    shows the API calls and failures so far; tqdm adds the elapsed time and the ETA.
    """

    REFRESH_SECONDS = 0.5

    def __init__(self, scope, tables: dict, errors: ErrorLog, enabled: bool):
        self.scope = scope
        self.errors = errors
        self.enabled = enabled
        self.bar: tqdm | None = None
        self.lock = threading.Lock()
        self.counted = set(tables)  # by need, the KMS reads after the listings are not counted
        if not enabled:
            return
        tables_per_service = Counter(table.service for table in tables.values())
        # (account, region) -> tables still to finish there; account -> units still to finish.
        self.tables_left = {
            (u.account_id, u.region): sum(n for service, n in tables_per_service.items() if offered(service, u.region))
            for u in scope.units
        }
        self.units_left = Counter(u.account_id for u in scope.units)
        self.accounts = len(self.units_left)
        self.accounts_done = 0
        self.shown_at = 0.0

    def __enter__(self):
        if self.enabled:
            # A terminal that reports no size (a bare pty) gets $COLUMNS or 80, not an empty bar.
            sized = _terminal_columns() > 0
            fallback = shutil.get_terminal_size()
            self.bar = tqdm(
                total=len(self.tables_left), desc="Collecting", unit="unit", file=sys.stderr,
                dynamic_ncols=sized, ncols=None if sized else fallback.columns,
                nrows=None if sized else fallback.lines,  # 0 rows would hide the bar
                mininterval=self.REFRESH_SECONDS, smoothing=0.05,
            )
            self._describe()
        return self.advance

    def advance(self, table_name, unit) -> None:
        if self.bar is None or table_name not in self.counted:
            return
        key = (unit.account_id, unit.region)
        with self.lock:
            left = self.tables_left.get(key, 0) - 1
            self.tables_left[key] = left
            if left != 0:
                return
            del self.tables_left[key]
            self.units_left[unit.account_id] -= 1
            if self.units_left[unit.account_id] == 0:
                self.accounts_done += 1
            self.bar.update(1)
            if time.monotonic() - self.shown_at >= self.REFRESH_SECONDS:
                self._describe()

    def _describe(self) -> None:
        self.shown_at = time.monotonic()
        self.bar.set_postfix_str(
            f"accounts {self.accounts_done}/{self.accounts}, {self.scope.factory.total_calls()} calls, "
            f"{len(self.errors)} errors",
            refresh=False,
        )

    def __exit__(self, *exc):
        if self.bar is not None:
            if exc[0] is None:
                self._describe()
            self.bar.close()


def _terminal_columns() -> int:
    try:
        return os.get_terminal_size(sys.stderr.fileno()).columns
    except (OSError, ValueError):
        return 0


def print_collect_summary(result: CollectResult, seconds: float, destination: str) -> None:
    counts = ", ".join(f"{n} {name}" for name, n in result.row_counts.items())

    def echo(line: str) -> None:
        # Notes, accounts and AWS's error messages name resources (and quote what AWS
        # answered): every line is inert on the terminal.
        click.echo(terminal_text(line), err=True)

    echo(
        f"Collected {counts} from {len(result.scope.accounts)} account(s) and "
        f"{len(result.scope.regions)} region(s) in {seconds:.1f}s ({result.api_calls} API calls) -> {destination}"
    )
    for note in result.scope.notes:
        echo(f"Note: {note}")
    failed = result.scope.failed_accounts
    if failed:
        echo(f"Partial snapshot: {len(failed)} account(s) could not be reached (recorded in bedrock_sql_errors "
             "for every table and region; the controls answer error there):")
        for account in failed[:10]:
            echo(f"  {account}")
        if len(failed) > 10:
            echo(f"  ... and {len(failed) - 10} more")
    unreached = {a.account_id for a in failed}
    errors = [e for e in result.errors if e.account_id not in unreached]
    if errors:
        echo(f"Partial snapshot: {len(errors)} AWS call(s) failed (see table bedrock_sql_errors):")
        echo_errors(errors)


def echo_errors(errors: list[ErrorRecord], limit: int = 10) -> None:
    """The first ``limit`` failures, one line each, on stderr."""
    for record in errors[:limit]:
        what = f" {record.resource}" if record.resource else ""
        # AWS's message often quotes the resource (its name, an S3 URI): inert, on one line.
        click.echo(
            "  " + terminal_text(f"{record.account_id}/{record.region} {record.table_name}: {record.operation}{what}: "
                                 f"{record.error_code}: {record.message}"),
            err=True,
        )
    if len(errors) > limit:
        click.echo(f"  ... and {len(errors) - limit} more", err=True)
