"""Fewer garbage-collector passes while a collect runs: applied during it, restored after it
(also when it fails or when collects overlap), and never keeping garbage alive."""

from __future__ import annotations

import gc
import threading
import weakref
from pathlib import Path

import pytest

from bedrock_sql import gc_tuning, snapshot
from bedrock_sql.accounts import resolve_scope
from bedrock_sql.aws import AwsOptions
from helpers import World, fast_regions, world  # noqa: F401


class Node:
    """A weak-referenceable object that can sit in a reference cycle."""


@pytest.fixture(autouse=True)
def default_thresholds():
    saved = gc.get_threshold()
    gc.set_threshold(700, 10, 10)
    yield
    gc.set_threshold(*saved)
    assert gc.get_freeze_count() == 0


def test_applied_inside_and_restored_after() -> None:
    with gc_tuning.fewer_gc_passes():
        assert gc.get_threshold() == (gc_tuning.YOUNG_THRESHOLD, 10, 10)
        assert gc.get_freeze_count() > 0
    assert gc.get_threshold() == (700, 10, 10)
    assert gc.get_freeze_count() == 0


def test_restored_when_the_body_fails() -> None:
    with pytest.raises(RuntimeError), gc_tuning.fewer_gc_passes():
        raise RuntimeError("boom")
    assert gc.get_threshold() == (700, 10, 10)
    assert gc.get_freeze_count() == 0


def test_garbage_is_collected_not_frozen() -> None:
    # An unreachable cycle made before the collect starts (an earlier collect's sockets, say):
    # frozen, it would live until the freeze ends; collected first, it is gone at once.
    cycle = Node()
    cycle.self = cycle
    alive = weakref.ref(cycle)
    del cycle
    with gc_tuning.fewer_gc_passes():
        assert alive() is None


def test_cycles_made_while_frozen_are_still_collected() -> None:
    with gc_tuning.fewer_gc_passes():
        cycle = Node()
        cycle.self = cycle
        alive = weakref.ref(cycle)
        del cycle
        gc.collect()
        assert alive() is None


def test_overlapping_collects_restore_once_the_last_ends() -> None:
    first = gc_tuning.fewer_gc_passes()
    second = gc_tuning.fewer_gc_passes()
    first.__enter__()
    second.__enter__()
    first.__exit__(None, None, None)  # the first to start ends first: the second still runs
    assert gc.get_threshold()[0] == gc_tuning.YOUNG_THRESHOLD
    assert gc.get_freeze_count() > 0
    second.__exit__(None, None, None)
    assert gc.get_threshold() == (700, 10, 10)
    assert gc.get_freeze_count() == 0


def test_concurrent_threads_leave_the_defaults() -> None:
    barrier = threading.Barrier(8)

    def run() -> None:
        with gc_tuning.fewer_gc_passes():
            barrier.wait()  # all eight inside at once
        for _ in range(50):
            with gc_tuning.fewer_gc_passes():
                pass

    threads = [threading.Thread(target=run) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert gc.get_threshold() == (700, 10, 10)
    assert gc.get_freeze_count() == 0


def test_a_switched_off_collector_stays_off() -> None:
    gc.set_threshold(0)
    with gc_tuning.fewer_gc_passes():
        assert gc.get_threshold()[0] == 0
    assert gc.get_threshold()[0] == 0


def test_a_higher_threshold_is_kept() -> None:
    gc.set_threshold(50_000, 10, 10)
    with gc_tuning.fewer_gc_passes():
        assert gc.get_threshold() == (50_000, 10, 10)
    assert gc.get_threshold() == (50_000, 10, 10)


def test_a_collect_runs_with_it_and_restores_it(world: World, tmp_path: Path) -> None:
    seen = []
    with fast_regions():
        scope = resolve_scope(AwsOptions(regions=("us-east-1",)))
    result = snapshot.collect(scope, tmp_path / "bedrock.db",
                              on_unit_done=lambda table, unit: seen.append(gc.get_threshold()[0]))
    assert result.status == "complete"
    assert seen and set(seen) == {gc_tuning.YOUNG_THRESHOLD}
    assert gc.get_threshold() == (700, 10, 10)
    assert gc.get_freeze_count() == 0
