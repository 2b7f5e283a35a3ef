#!/usr/bin/env python3
"""Benchmark the cost of the statement guard (Ctrl-C and --timeout; run by hand, not by pytest).

    python benchmarks/bench_statement_guard.py              # 7 rounds
    python benchmarks/bench_statement_guard.py --rounds 15

Every statement of `query`, `check` and `shell` runs under :class:`bedrock_sql.sql.StatementGuard`:
a progress handler calls back into Python every ``CHECKPOINT_STEPS`` SQLite steps (where a
pending Ctrl-C or an expired timeout stops the statement), plus, with --timeout, a timer
thread per statement. This times three CPU-bound queries in memory, bare and guarded
(``timeout=None`` and ``timeout=3600``), alternating the three so that other load on the
machine hits each alike, and prints each one's best time and its overhead over bare. Then
it measures how long an endless statement runs past a 0.2 s timeout (the stop latency).
"""

from __future__ import annotations

import argparse
import time

import apsw

from bedrock_sql.sql import CHECKPOINT_STEPS, StatementGuard, StatementTimeout, run_query

TABLE_ROWS = 300_000
QUERIES = {
    "recursive CTE, 5 M rows": (
        "WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n LIMIT 5000000) "
        "SELECT count(*), sum(i % 7) FROM n"
    ),
    "join + json_extract": (
        "SELECT count(*) FROM t a JOIN t b ON b.i = a.i % 1000 + 1 WHERE json_extract(a.j, '$.a') > 5"
    ),
    "group by + order by": "SELECT s % 1000 AS k, count(*) AS c FROM t GROUP BY k ORDER BY c DESC, k",
}


def connection(guard_timeout: float | None | str) -> apsw.Connection:
    db = apsw.Connection(":memory:")
    db.execute(
        f"CREATE TABLE t AS WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n LIMIT {TABLE_ROWS}) "
        "SELECT i, i * 7919 AS s, json_object('a', i) AS j FROM n"
    )
    if guard_timeout != "bare":
        StatementGuard(db, guard_timeout)
    return db


def timed(db: apsw.Connection, sql: str) -> float:
    started = time.perf_counter()
    for _ in run_query(db, sql).rows:
        pass
    return time.perf_counter() - started


def stop_latency(timeout: float = 0.2) -> float:
    db = connection(timeout)
    started = time.perf_counter()
    try:
        timed(db, "WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n) SELECT count(*) FROM n")
    except StatementTimeout:
        return time.perf_counter() - started - timeout
    raise AssertionError("the endless statement ended")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=7)
    rounds = parser.parse_args().rounds
    variants = {"bare": "bare", "guard": None, "guard+timeout": 3600.0}
    connections = {name: connection(timeout) for name, timeout in variants.items()}
    print(f"CHECKPOINT_STEPS = {CHECKPOINT_STEPS}; best of {rounds} rounds")
    for label, sql in QUERIES.items():
        best = {name: float("inf") for name in variants}
        for _ in range(rounds):
            for name, db in connections.items():
                best[name] = min(best[name], timed(db, sql))
        bare = best["bare"]
        cells = ", ".join(
            f"{name} {best[name]:.3f}s ({(best[name] / bare - 1) * 100:+.1f}%)" for name in variants if name != "bare"
        )
        print(f"{label:26} bare {bare:.3f}s, {cells}")
    latencies = sorted(stop_latency() for _ in range(5))
    print(f"stop latency past --timeout: median {latencies[2] * 1000:.1f} ms, worst {latencies[-1] * 1000:.1f} ms")


if __name__ == "__main__":
    main()
