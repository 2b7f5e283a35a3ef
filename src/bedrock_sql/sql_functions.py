"""SQL functions every connection has (snapshot, live, shell): time and key policies.

Time. The snapshot stores timestamps as ISO-8601 UTC text, ``2026-11-28T12:00:00Z``, so
text order is time order. SQLite's own ``datetime('now', '-1 day')`` writes
``2026-11-28 12:00:00`` (a space where the stored text has ``T``): compared as text, every
stored time of that day sorts after it, so ``creation_time > datetime('now', '-1 day')``
keeps up to a day too much. These functions answer in the stored format, or in days:

- ``now()`` -- the current time, ``2026-11-29T12:00:00Z``;
- ``iso_time(time, modifier, ...)`` -- SQLite's ``datetime()`` (same time values and
  modifiers) in the stored format: ``creation_time > iso_time('now', '-1 day')``;
- ``days_ago(time)`` -- days (REAL) from ``time`` to now: ``days_ago(creation_time) > 90``;
- ``days_until(time)`` -- days (REAL) from now to ``time``:
  ``cast(days_until(deletion_date) AS INTEGER)``;
- ``days_between(start, end)`` -- days (REAL) from ``start`` to ``end``. The bundled
  controls count from the collection with it (a finding is dated by the collection, so
  its reason must not change with the day ``check`` runs).

Key policies (:mod:`bedrock_sql.policy`, the project's one policy analysis):

- ``policy_std(policy)`` -- the canonical form of a policy (Steampipe's ``policy_std``);
- ``policy_is_public(policy)`` -- 1 when a statement grants the public, else 0;
- ``policy_public_statements(policy)`` -- JSON array of those statements:
  ``[{"index", "sid", "principals", "reason"}]``.

Each answers NULL for a NULL policy, and for text that is not a policy document (so a
control can tell "not public" from "could not be judged": ``policy_is_public(p) IS NULL``).
"""

from __future__ import annotations

import functools
import json
import threading
from datetime import datetime, timezone

import apsw

from . import policy as policies
from .providers.base import iso_utc, parse_time

_SECONDS_PER_DAY = 86400.0

# iso_time() hands its arguments to SQLite's own strftime() on a private in-memory
# connection, so it accepts exactly what datetime() accepts.
_clock = threading.local()


def now() -> str:
    return iso_utc(datetime.now(timezone.utc))


def iso_time(*arguments) -> str | None:
    connection = getattr(_clock, "connection", None)
    if connection is None:
        connection = _clock.connection = apsw.Connection(":memory:")
    placeholders = ", ".join("?" for _ in arguments)
    sql = f"SELECT strftime('%Y-%m-%dT%H:%M:%SZ'{', ' if arguments else ''}{placeholders})"
    return connection.execute(sql, arguments).fetchone()[0]


def _instant(value) -> datetime | None:
    if value is None:
        return None
    try:
        return parse_time(value)
    except ValueError:
        return None


def days_ago(value) -> float | None:
    instant = _instant(value)
    if instant is None:
        return None
    return (datetime.now(timezone.utc) - instant).total_seconds() / _SECONDS_PER_DAY


def days_until(value) -> float | None:
    elapsed = days_ago(value)
    return None if elapsed is None else -elapsed


def days_between(start, end) -> float | None:
    first, last = _instant(start), _instant(end)
    if first is None or last is None:
        return None
    return (last - first).total_seconds() / _SECONDS_PER_DAY


# A check reads the same few key policies once per model: analyse each text once.
@functools.lru_cache(maxsize=1024)
def _analysis(policy: str) -> tuple[str, tuple[policies.PublicStatement, ...]] | None:
    try:
        std = json.dumps(policies.canonical(policy), sort_keys=True, separators=(",", ":"))
        return std, tuple(policies.public_statements(policy))
    except policies.PolicyError:
        return None


def _analyse(policy) -> tuple[str, tuple[policies.PublicStatement, ...]] | None:
    if policy is None:
        return None
    if isinstance(policy, bytes):
        policy = policy.decode("utf-8", "replace")
    return _analysis(policy if isinstance(policy, str) else str(policy))


def policy_std(policy) -> str | None:
    analysis = _analyse(policy)
    return None if analysis is None else analysis[0]


def policy_is_public(policy) -> int | None:
    analysis = _analyse(policy)
    return None if analysis is None else int(bool(analysis[1]))


def policy_public_statements(policy) -> str | None:
    analysis = _analyse(policy)
    if analysis is None:
        return None
    return json.dumps(
        [{"index": s.index, "sid": s.sid, "principals": list(s.principals), "reason": s.reason} for s in analysis[1]],
        separators=(",", ":"),
    )


# name -> (function, number of arguments (-1: any), deterministic)
FUNCTIONS = {
    "now": (now, 0, False),
    "iso_time": (iso_time, -1, False),  # 'now' is a valid time value
    "days_ago": (days_ago, 1, False),
    "days_until": (days_until, 1, False),
    "days_between": (days_between, 2, True),
    "policy_std": (policy_std, 1, True),
    "policy_is_public": (policy_is_public, 1, True),
    "policy_public_statements": (policy_public_statements, 1, True),
}


def install_functions(connection: apsw.Connection) -> None:
    for name, (function, arguments, deterministic) in FUNCTIONS.items():
        connection.create_scalar_function(name, function, arguments, deterministic=deterministic)
