#!/usr/bin/env python3
"""Benchmark the memory of `bedrock-sql check` and `query` output (run by hand, not by pytest).

    python benchmarks/bench_output_memory.py                 # 100,000 models
    python benchmarks/bench_output_memory.py 1000000         # 1,000,000 models
    python benchmarks/bench_output_memory.py 10000 --src /tmp/base/src   # another checkout's code

Builds a snapshot of N custom models straight with SQL (no moto: a million models through
an API would take hours), with the real schema, one run row, a customization job for every
tenth model and a few keys: a third of the models use a customer-managed key (ok), a third
the Bedrock-owned key (alarm), the rest an AWS managed key (alarm). Then runs, each as a
subprocess (stdout read and dropped):

    bedrock-sql check -o csv | -o table | -o asff
    bedrock-sql query --output table 'SELECT * FROM aws_bedrock_custom_model'

and prints each one's peak RSS and CPU seconds (per 1,000 findings or rows). The peak is
measured through a small wrapper process (``_MAXRSS_WRAPPER``): ``ru_maxrss`` of a child the
benchmark starts directly would include the benchmark's own high-water mark. Target: every
command under 200 MB at 1,000,000 models.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import sqlite3
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent

ACCOUNT = "123456789012"
REGION = "us-east-1"
WHEN = "2026-11-28T12:00:00Z"
KEYS = 4  # customer-managed keys the ok models share

_MAXRSS_WRAPPER = """
import os, sys
pid = os.posix_spawn(sys.executable, [sys.executable, *sys.argv[1:]], os.environ)
_, status, usage = os.wait4(pid, 0)
sys.stderr.write(f"\\nBENCH_MAXRSS_KB={usage.ru_maxrss} BENCH_CPU_S={usage.ru_utime + usage.ru_stime:.2f}\\n")
sys.exit(os.waitstatus_to_exitcode(status))
"""


def _load_schema(src: Path):
    """The table definitions of the checkout under test (the snapshot is built with its schema)."""
    sys.path.insert(0, str(src))
    from bedrock_sql.providers import TABLES
    from bedrock_sql.snapshot import META_TABLES, RUNS_TABLE, _create_sql

    return TABLES, META_TABLES, RUNS_TABLE, _create_sql


def _insert(db: sqlite3.Connection, table: str, columns: list[str], rows) -> None:
    names = ", ".join(f'"{c}"' for c in columns)
    db.executemany(f"INSERT INTO {table}({names}) VALUES ({', '.join('?' * len(columns))})",
                   ([row.get(c) for c in columns] for row in rows))


def build_snapshot(path: Path, models: int, src: Path) -> None:
    tables, meta_tables, runs_table, create_sql = _load_schema(src)
    db = sqlite3.connect(path)
    db.execute("PRAGMA journal_mode=OFF")
    db.execute("PRAGMA synchronous=OFF")
    for table in tables.values():
        db.execute(table.create_sql())
    for name, (_, columns) in meta_tables.items():
        db.execute(create_sql(name, columns))

    def common(arn: str, title: str) -> dict:
        return {"account_id": ACCOUNT, "region": REGION, "partition": "aws", "title": title,
                "akas": json.dumps([arn]), "tags": "{}"}

    prefix = f"arn:aws:kms:{REGION}:{ACCOUNT}:key/"
    cmks = [f"{prefix}00000000-0000-4000-8000-{i:012d}" for i in range(KEYS)]
    aws_key = f"{prefix}00000000-0000-4000-8000-999999999999"
    policy = json.dumps({"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": "kms:*", "Resource": "*",
                                                                  "Principal": {"AWS": f"arn:aws:iam::{ACCOUNT}:root"}}]})
    key_rows = [
        {"arn": arn, "id": arn.rsplit("/", 1)[1], "key_manager": "AWS" if arn == aws_key else "CUSTOMER",
         "key_state": "Enabled", "enabled": 1, "origin": "AWS_KMS", "key_usage": "ENCRYPT_DECRYPT",
         "key_spec": "SYMMETRIC_DEFAULT", "creation_date": WHEN, "multi_region": 0,
         "key_rotation_enabled": None if arn == aws_key else 1, "policy": None if arn == aws_key else policy,
         "aliases": "[]", **common(arn, arn.rsplit("/", 1)[1])}
        for arn in [*cmks, aws_key]
    ]
    _insert(db, "aws_kms_key", tables["aws_kms_key"].column_names, key_rows)

    def model_rows():
        for i in range(models):
            name = f"model-{i:07d}"
            arn = f"arn:aws:bedrock:{REGION}:{ACCOUNT}:custom-model/{name}"
            key = (cmks[i % KEYS], None, aws_key)[i % 3]
            yield {"arn": arn, "model_name": name, "job_name": f"{name}-job",
                   "job_arn": f"arn:aws:bedrock:{REGION}:{ACCOUNT}:model-customization-job/{name}-job",
                   "base_model_arn": f"arn:aws:bedrock:{REGION}::foundation-model/amazon.titan-text-express-v1:0:8k",
                   "base_model_name": "amazon.titan-text-express-v1:0:8k", "customization_type": "FINE_TUNING",
                   "model_status": "Active", "owner_account_id": ACCOUNT, "model_kms_key_arn": key,
                   "creation_time": WHEN, "hyper_parameters": '{"epochCount":"2"}', **common(arn, name)}

    def job_rows():
        for i in range(0, models, 10):
            name = f"model-{i:07d}-job"
            arn = f"arn:aws:bedrock:{REGION}:{ACCOUNT}:model-customization-job/{name}"
            yield {"arn": arn, "job_name": name, "status": "Completed", "output_model_name": f"model-{i:07d}",
                   "output_model_kms_key_arn": (cmks[i % KEYS], None, aws_key)[i % 3],
                   "role_arn": f"arn:aws:iam::{ACCOUNT}:role/BedrockCustomization", "customization_type": "FINE_TUNING",
                   "creation_time": WHEN, "last_modified_time": WHEN, **common(arn, name)}

    _insert(db, "aws_bedrock_custom_model", tables["aws_bedrock_custom_model"].column_names, model_rows())
    _insert(db, "aws_bedrock_model_customization_job", tables["aws_bedrock_model_customization_job"].column_names,
            job_rows())
    for table in tables.values():
        for column in table.indexes:
            db.execute(f"CREATE INDEX idx_{table.name}_{column} ON {table.name}({column})")
    db.execute(f"INSERT INTO {runs_table}(run_id, started_at, finished_at, status, accounts, regions, tool_version, "
               "api_calls, notes) VALUES ('bench-run', ?, ?, 'complete', ?, ?, 'bench', 0, '[]')",
               (WHEN, WHEN, json.dumps([ACCOUNT]), json.dumps([REGION])))
    db.commit()
    db.close()


def measure(src: Path, db: Path, *args: str) -> dict:
    env = {**os.environ, "PYTHONPATH": str(src)}
    command = [sys.executable, "-c", _MAXRSS_WRAPPER, "-m", "bedrock_sql", "--db", str(db), *args]
    started = time.perf_counter()
    with tempfile.TemporaryFile("w+") as errors:
        process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=errors, env=env)
        tail = b""
        while chunk := process.stdout.read(1 << 20):  # keep only the end: the summary of human formats
            tail = (tail + chunk)[-4096:]
        returncode = process.wait()
        errors.seek(0)
        stderr = errors.read()
    wall = time.perf_counter() - started
    stats = re.search(r"BENCH_MAXRSS_KB=(\d+) BENCH_CPU_S=([\d.]+)", stderr)
    if not stats or returncode not in (0, 1):
        sys.exit(f"{' '.join(args)} failed (exit {returncode}):\n{stderr[-2000:]}")
    total = re.search(r"Summary: total (\d+)", stderr + tail.decode("utf-8", "replace"))
    return {"rss_mb": int(stats[1]) / 1024, "cpu_s": float(stats[2]), "wall_s": wall,
            "findings": int(total[1]) if total else None}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("models", nargs="?", type=int, default=100_000, help="custom models in the snapshot")
    parser.add_argument("--src", type=Path, default=REPO / "src",
                        help="the src/ folder of the bedrock-sql checkout to measure (default: this one)")
    parser.add_argument("--only", action="append", choices=("csv", "table", "asff", "query", "json", "ocsf"),
                        help="run only this measurement (repeatable; default: csv, table, asff, query)")
    args = parser.parse_args()

    with tempfile.TemporaryDirectory(prefix="bench-output-") as folder:
        db = Path(folder) / "bench.db"
        started = time.perf_counter()
        build_snapshot(db, args.models, args.src)
        print(f"{args.models:,} models: snapshot of {db.stat().st_size / 1e6:.0f} MB built in "
              f"{time.perf_counter() - started:.0f}s; code from {args.src}", flush=True)
        runs = {
            "csv": ("check -o csv", ("check", "--output", "csv")),
            "table": ("check -o table", ("check", "--output", "table")),
            "asff": ("check -o asff", ("check", "--output", "asff")),
            "query": ("query --output table", ("query", "--output", "table", "SELECT * FROM aws_bedrock_custom_model")),
        }
        extra = {"json": ("check -o json", ("check", "--output", "json")),
                 "ocsf": ("check -o ocsf", ("check", "--output", "ocsf"))}
        print(f"{'command':<22} {'peak RSS':>10} {'CPU s':>8} {'wall s':>8} {'rows':>10} {'CPU s/1k rows':>14}")
        for label, command in ({**runs, **extra}[name] for name in args.only or runs):
            result = measure(args.src, db, *command)
            rows = result["findings"] if result["findings"] is not None else args.models
            print(f"{label:<22} {result['rss_mb']:>7.0f} MB {result['cpu_s']:>8.1f} {result['wall_s']:>8.1f} "
                  f"{rows:>10,} {1000 * result['cpu_s'] / max(rows, 1):>14.3f}", flush=True)


if __name__ == "__main__":
    main()
