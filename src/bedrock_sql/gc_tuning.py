"""Fewer cyclic garbage-collector passes while a collect runs (collector CPU per API call).

Each botocore call allocates a few hundred container objects (request dicts, headers, parsed
answers). CPython's cyclic collector runs a young pass every 700 net allocations of such
objects, and every hundred young passes a full pass over every object alive, including the
several hundred thousand of botocore's service models, endpoint rule sets and our imports,
which live as long as the process. Over a long collect those passes cost several percent of
the collector's CPU for nothing: almost all of a call's objects are freed by reference
counting, not by the collector.

While a collect runs, :func:`fewer_gc_passes` collects once, freezes the survivors
(:func:`gc.freeze`: later passes skip them) and raises the young threshold; afterwards it
unfreezes them and restores the thresholds. Garbage is collected before the freeze, so no
unreachable object (an earlier collect's sockets, say) is kept alive by it; cyclic garbage
made during the collect is still collected, only less often.

The setting is process-wide, so it is counted: nested or concurrent collects in one process
(a library caller, the tests) share it, the first in applies it and the last out restores it.
"""

from __future__ import annotations

import contextlib
import gc
import threading

#: The young generation's threshold while collecting (CPython's default is 700).
YOUNG_THRESHOLD = 20_000

_lock = threading.Lock()
_holders = 0
_saved_thresholds: tuple[int, ...] | None = None


@contextlib.contextmanager
def fewer_gc_passes():
    """Run the body with long-lived objects frozen and fewer young passes (see module doc)."""
    _enter()
    try:
        yield
    finally:
        _leave()


def _enter() -> None:
    global _holders, _saved_thresholds
    with _lock:
        _holders += 1
        if _holders > 1:
            return
        _saved_thresholds = gc.get_threshold()
        gc.collect()
        gc.freeze()
        young, *older = _saved_thresholds
        if young:  # 0 means the collector was switched off: leave it so
            gc.set_threshold(max(young, YOUNG_THRESHOLD), *older)


def _leave() -> None:
    global _holders, _saved_thresholds
    with _lock:
        _holders -= 1
        if _holders > 0:
            return
        gc.set_threshold(*_saved_thresholds)
        _saved_thresholds = None
        gc.unfreeze()
