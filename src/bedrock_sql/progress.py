"""What `collect` shows while it runs and when it ends: a progress bar on a terminal (stderr),
then a summary of rows, notes and failures. Also used by `check --live` and `query --live`."""

from __future__ import annotations

import functools
import sys
import threading
import time
from pathlib import Path

import click

from .engine import ErrorRecord
from .snapshot import CollectResult, collect


def collect_with_progress(scope, db: Path, max_workers: int, quiet: bool, destination: str | None = None,
                          force: bool = False) -> CollectResult:
    """Collect into ``db``, with a progress bar on a terminal and the summary after (unless quiet)."""
    from .providers import TABLES

    started = time.monotonic()
    with CollectProgress(len(scope.units) * len(TABLES), not quiet and sys.stderr.isatty()) as advance:
        result = collect(scope, db, max_workers=max_workers, on_unit_done=advance, force=force)
    if not quiet:
        print_collect_summary(result, time.monotonic() - started, destination or str(result.path))
    return result


class CollectProgress:
    """A click progress bar on stderr, advanced from worker threads; silent when piped."""

    def __init__(self, length: int, enabled: bool):
        self.bar = (
            click.progressbar(length=length, label="Collecting", file=sys.stderr, show_pos=True)
            if enabled
            else None
        )
        self.lock = threading.Lock()

    def __enter__(self):
        if self.bar:
            self.bar.__enter__()
        return self.advance

    def advance(self, table_name, unit):
        if self.bar:
            with self.lock:
                self.bar.update(1)

    def __exit__(self, *exc):
        if self.bar:
            self.bar.__exit__(*exc)


def print_collect_summary(result: CollectResult, seconds: float, destination: str) -> None:
    counts = ", ".join(f"{n} {name}" for name, n in result.row_counts.items())
    echo = functools.partial(click.echo, err=True)
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
        click.echo(
            f"  {record.account_id}/{record.region} {record.table_name}: {record.operation}{what}: "
            f"{record.error_code}: {record.message}",
            err=True,
        )
    if len(errors) > limit:
        click.echo(f"  ... and {len(errors) - limit} more", err=True)
