#!/usr/bin/env python3
"""Benchmark `bedrock-sql collect` at organization scale (run by hand; not part of the tests).

    python benchmarks/bench_scale.py --accounts 10
    python benchmarks/bench_scale.py --accounts 100
    python benchmarks/bench_scale.py --accounts 1000            # the target: < 10 min, < 300 MB
    python benchmarks/bench_scale.py --accounts 100 --collect-args "--max-workers 32"

N accounts, reached as an accounts file of role ARNs (``--accounts-file``), with
``--all-regions`` (every region botocore offers Bedrock in and moto's EC2 says is enabled).
Each account holds ``--keys`` customer-managed keys that no model uses (us-east-1), as real
accounts do, and ``--models`` custom models in each of ``--model-regions`` regions, half of
them encrypted with a key of their own (so a model's key exists), half with Bedrock's.

Four processes share the machine (this one only waits):

- a moto server in its own process; the estate is written straight into moto's backends
  (1,000 accounts through the API would take longer than the collect), and the other
  regions are simply empty -- their listings are still called, which is the real load.
  moto's lookup of a request's account scans every account (its CPU per call grows with the
  accounts); the benchmark remembers each access key's account (``--moto-as-is`` does not);
- a proxy (the end-to-end tests' ``AwsProxy``) in its own process, adding ``--latency`` to
  every call (slept in the request's thread, Nagle off, keep-alive), counting calls by
  operation;
- the collect, started through a tiny wrapper that reports its ``wait4`` rusage: peak RSS
  (``ru_maxrss``, exact: a child started by this big process directly would inherit its
  high-water mark, see benchmarks/README.md) and user+sys CPU seconds.

Prints wall time, API calls (proxy count, and what the collect said), calls per second,
collector CPU milliseconds per call, peak RSS, the RSS curve while it ran, and the CPU the
simulator (moto + proxy) used. Targets (issue 11): 1,000 accounts in under 10 minutes on a
2-core machine, peak RSS under 300 MB, at most 1.5 ms of collector CPU per call.
Everything is on loopback with fake credentials; nothing reaches AWS.
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import platform
import re
import shlex
import subprocess
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO / "tests"))  # the AwsProxy of the end-to-end tests
if (REPO / "src" / "bedrock_sql").is_dir():
    sys.path.insert(0, str(REPO / "src"))

from measured_run import MeasuredRun, run_measured  # noqa: E402  (benchmarks/, the script's directory)

FIRST_ACCOUNT = 200_000_000_000
ROLE_NAME = "BedrockSqlAudit"
KEY_REGION = "us-east-1"
MODEL_REGIONS = ("us-east-1", "us-west-2", "eu-west-1", "ap-northeast-1")
TABLES = ("aws_bedrock_custom_model", "aws_kms_key", "aws_kms_alias")


def account_ids(count: int) -> list[str]:
    return [str(FIRST_ACCOUNT + i) for i in range(count)]


# --------------------------------------------------------------------------- moto (own process)


def serve_moto(args) -> None:
    """The moto process: seed the estate into its backends, print its URL, serve until stdin closes."""
    import logging

    from moto.server import ThreadedMotoServer

    from bedrock_sql import simulated_bedrock

    simulated_bedrock.install()  # what moto lacks: imported models, copies, throughputs, deployments
    if not args.moto_as_is:
        remember_access_key_accounts()
    logging.getLogger("werkzeug").setLevel(logging.ERROR)  # a log line per call costs CPU
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    started = time.perf_counter()
    seed(args)
    print(json.dumps({"url": f"http://{host}:{port}", "seeded_s": time.perf_counter() - started}), flush=True)
    sys.stdin.read()  # the benchmark closes our stdin when it is done
    server.stop()


def remember_access_key_accounts() -> None:
    """Make moto find a request's account in constant time, as AWS does.

    moto looks up the account of every request's access key by scanning every account's IAM
    backend (``moto.iam.models.get_account_id_from``, imported afresh on each request): its
    cost grows with the number of accounts, to about two thirds of moto's CPU at 1,000
    accounts (measured with py-spy), a cost of the simulator that real AWS does not have and
    that would make the benchmark measure moto. Each key's account, once found, is
    remembered (an assumed role's key belongs to one account for good); a key found in no
    account is not remembered. ``--moto-as-is`` turns this off.
    """
    import moto.iam.models as iam

    scan = iam.get_account_id_from
    found: dict[str, str] = {}

    def account_of(access_key: str) -> str:
        account = found.get(access_key)
        if account is None:
            account = scan(access_key)
            if account != iam.DEFAULT_ACCOUNT_ID:
                found[access_key] = account
        return account

    iam.get_account_id_from = account_of


def seed(args) -> None:
    from datetime import datetime, timedelta

    import moto.kms.models
    from moto.bedrock.models import bedrock_backends
    from moto.kms.models import kms_backends

    # moto gives every key, even a symmetric one, an RSA-2048 private key of its own (~40 ms
    # each: 20,000 keys would seed for 15 minutes). One shared key changes moto's CPU only;
    # no call the collect makes reads it.
    shared_private_key = moto.kms.models.generate_private_key("RSA_2048")
    moto.kms.models.generate_private_key = lambda key_spec: shared_private_key

    epoch = datetime(2026, 1, 5, 9, 0, 0)
    for account in account_ids(args.accounts):
        kms = kms_backends[account][KEY_REGION]
        for i in range(args.keys):
            kms.create_key(None, "ENCRYPT_DECRYPT", "SYMMETRIC_DEFAULT", f"unrelated key {i}", None)
        for region in MODEL_REGIONS[: args.model_regions]:
            if not args.models:
                continue
            model_key = kms_backends[account][region].create_key(
                None, "ENCRYPT_DECRYPT", "SYMMETRIC_DEFAULT", "bedrock custom models", None
            )
            backend = bedrock_backends[account][region]
            for i in range(args.models):
                name = f"model-{region}-{i:03d}"
                backend.custom_models[name] = moto_custom_model(
                    account, region, name, model_key.arn if i % 2 == 0 else None, epoch + timedelta(seconds=i)
                )


def moto_custom_model(account: str, region: str, name: str, key_arn: str | None, created):
    """A fine-tuned custom model as GetCustomModel returns it (ARNs, base model,
    hyperparameters, data configs, metrics, key), for writing straight into moto's backend;
    ``created`` a naive UTC datetime. bench_collect's memory run writes the same models."""
    from moto.bedrock.models import CustomModel

    base_model = "amazon.titan-text-express-v1:0:8k"
    job_name = f"{name}-job"
    prefix = f"s3://acme-ml-{account}-{region}/bedrock/{job_name}"
    model = CustomModel(
        model_name=name,
        job_name=job_name,
        job_arn=f"arn:aws:bedrock:{region}:{account}:model-customization-job/{job_name}",
        base_model_arn=f"arn:aws:bedrock:{region}::foundation-model/{base_model}",
        hyper_parameters={"epochCount": "2", "batchSize": "1", "learningRate": "0.00001"},
        output_data_config={"s3Uri": f"{prefix}/output/"},
        training_data_config={"s3Uri": f"{prefix}/train.jsonl"},
        training_metrics={"trainingLoss": 0.1234},
        base_model_name=base_model,
        region_name=region,
        account_id=account,
        customization_type="FINE_TUNING",
        model_kms_key_arn=key_arn,
        validation_data_config={"validators": [{"s3Uri": f"{prefix}/validation.jsonl"}]},
        validation_metrics=[{"validationLoss": 0.2345}],
    )
    model.creation_time = created.strftime("%Y-%m-%d %H:%M:%S")
    return model


def start_moto(args) -> tuple[subprocess.Popen, str, float]:
    command = [
        sys.executable, __file__, "serve-moto",
        "--accounts", str(args.accounts), "--keys", str(args.keys),
        "--models", str(args.models), "--model-regions", str(args.model_regions),
        *(["--moto-as-is"] if args.moto_as_is else []),
    ]
    process = subprocess.Popen(command, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, env=bench_env())
    line = process.stdout.readline()
    if not line:
        process.kill()
        raise SystemExit("the moto server did not start")
    started = json.loads(line)
    return process, started["url"], started["seeded_s"]


def bench_env() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AWS_", "BEDROCK_SQL_"))}
    env.update(
        AWS_ACCESS_KEY_ID="testing", AWS_SECRET_ACCESS_KEY="testing", AWS_SESSION_TOKEN="testing",
        AWS_DEFAULT_REGION="us-east-1", AWS_CONFIG_FILE=os.devnull, AWS_SHARED_CREDENTIALS_FILE=os.devnull,
        AWS_EC2_METADATA_DISABLED="true",
    )
    return env


def process_cpu_seconds(pid: int) -> float:
    """user+sys CPU seconds of a live process so far (/proc/PID/stat)."""
    with open(f"/proc/{pid}/stat") as stat:
        fields = stat.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


# --------------------------------------------------------------------------- the proxy


def counting_proxy(upstream: str, latency: float):
    """The e2e AwsProxy, counting calls by operation instead of keeping every request."""
    from e2e_helpers import AwsProxy

    class CountingProxy(AwsProxy):
        def __init__(self, *a, **kw):
            super().__init__(*a, **kw)
            self.counts: Counter = Counter()

        def _record(self, request, answered: bool) -> None:
            with self._lock:
                self.counts[(request.service, request.operation)] += 1

    return CountingProxy(upstream, latency=latency)


def serve_proxy(args) -> None:
    """The proxy process: print its URL, serve until stdin closes, then print the calls it
    counted by operation (JSON)."""
    with counting_proxy(args.upstream, args.latency) as proxy:
        print(json.dumps({"url": proxy.url}), flush=True)
        sys.stdin.read()
    counts: Counter = Counter()
    for (_, operation), n in proxy.counts.items():
        counts[operation or "?"] += n
    print(json.dumps(counts), flush=True)


class ProxyProcess:
    """The counting proxy in a process of its own (its CPU does not share an interpreter lock
    with the benchmark's); ``counts`` (operation -> calls) is filled when it is closed."""

    def __init__(self, upstream: str, latency: float):
        self.process = subprocess.Popen(
            [sys.executable, __file__, "serve-proxy", "--upstream", upstream, "--latency", str(latency)],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, env=bench_env(),
        )
        line = self.process.stdout.readline()
        if not line:
            self.process.kill()
            raise SystemExit("the proxy did not start")
        self.url = json.loads(line)["url"]
        self.counts: Counter = Counter()

    def __enter__(self) -> "ProxyProcess":
        return self

    def __exit__(self, *exc) -> None:
        self.process.stdin.close()
        said = self.process.stdout.read()
        self.process.wait(30)
        self.counts = Counter(json.loads(said)) if said.strip() else Counter()

    def cpu_seconds(self) -> float:
        return process_cpu_seconds(self.process.pid)


# --------------------------------------------------------------------------- the collect

def run_collect(proxy_url: str, workdir: Path, extra: list[str], src: Path) -> tuple[MeasuredRun, int | None]:
    """The collect, measured; and the API calls it said it made."""
    command = [
        "-m", "bedrock_sql", "--db", str(workdir / "scale.db"), "collect",
        "--accounts-file", str(workdir / "accounts.csv"), "--all-regions", *extra,
    ]
    env = bench_env()
    env["AWS_ENDPOINT_URL"] = proxy_url
    env["PYTHONPATH"] = str(src)
    run = run_measured(command, cwd=workdir, env=env)
    if run.returncode != 0:
        raise SystemExit(f"bedrock-sql collect failed (exit {run.returncode}):\n{run.stderr[-4000:]}")
    calls = re.search(r"\((\d+) API calls\)", run.stderr)
    return run, int(calls.group(1)) if calls else None


def snapshot_counts(db: Path) -> dict[str, int]:
    import sqlite3

    with sqlite3.connect(f"file:{db}?mode=ro", uri=True) as conn:
        counts = {t: conn.execute(f"SELECT count(*) FROM {t}").fetchone()[0] for t in TABLES}
        counts["bedrock_sql_errors"] = conn.execute("SELECT count(*) FROM bedrock_sql_errors").fetchone()[0]
        counts["regions"] = len(json.loads(conn.execute("SELECT regions FROM bedrock_sql_runs").fetchone()[0]))
    return counts


# --------------------------------------------------------------------------- main


def bench(args) -> None:
    print(f"machine: {os.cpu_count()} CPUs, Python {platform.python_version()}, {platform.system()} {platform.machine()}")
    print(
        f"{args.accounts} accounts x --all-regions, +{args.latency * 1000:.0f} ms per call, {args.keys} unrelated "
        f"keys per account, {args.models} models in each of {args.model_regions} regions; "
        f"collect args: {args.collect_args or '(defaults)'}; moto's access-key lookup: "
        f"{'as is (scans every account)' if args.moto_as_is else 'remembered'}",
        flush=True,
    )
    moto, url, seeded_s = start_moto(args)
    try:
        print(f"  seeded in {seeded_s:.1f}s (written into moto's backends)", flush=True)
        with tempfile.TemporaryDirectory(prefix="bench-scale-") as tmp:
            workdir = Path(tmp)
            with open(workdir / "accounts.csv", "w", newline="") as out:
                writer = csv.writer(out)
                writer.writerow(["account_id", "role_arn"])
                for account in account_ids(args.accounts):
                    writer.writerow([account, f"arn:aws:iam::{account}:role/{ROLE_NAME}"])
            with ProxyProcess(url, args.latency) as proxy:
                moto_cpu, proxy_cpu = process_cpu_seconds(moto.pid), proxy.cpu_seconds()
                run, said_calls = run_collect(proxy.url, workdir, shlex.split(args.collect_args), Path(args.src))
                moto_cpu = process_cpu_seconds(moto.pid) - moto_cpu
                proxy_cpu = proxy.cpu_seconds() - proxy_cpu
                counts = snapshot_counts(workdir / "scale.db")
            by_operation = proxy.counts
    finally:
        moto.stdin.close()
        try:
            moto.wait(30)
        except subprocess.TimeoutExpired:
            moto.kill()

    calls = sum(by_operation.values())
    scan_calls = sum(n for op, n in by_operation.items() if op not in ("AssumeRole", "GetCallerIdentity", "DescribeRegions"))
    print(f"  rows: {counts}")
    print(f"  bedrock-sql said: {run.summary_line()}")
    print()
    print(f"  {'accounts':>8} {'regions':>7} {'wall s':>8} {'calls':>8} {'calls/s':>8} {'CPU ms/call':>11} {'peak RSS MB':>11}")
    print(
        f"  {args.accounts:8d} {counts['regions']:7d} {run.seconds:8.1f} {calls:8d} {calls / run.seconds:8.0f} "
        f"{run.cpu_s * 1000 / calls:11.2f} {run.peak_mb:11.1f}"
    )
    print(
        f"  collector CPU {run.cpu_s:.1f}s (user {run.user_s:.1f}, sys {run.sys_s:.1f}); simulator CPU: "
        f"moto {moto_cpu:.1f}s ({moto_cpu * 1000 / calls:.2f} ms/call), proxy {proxy_cpu:.1f}s ({proxy_cpu * 1000 / calls:.2f} ms/call) "
        f"(calls counted at the proxy: {calls}, of which {calls - scan_calls} to reach accounts; "
        f"the collect counted {said_calls})"
    )
    print(f"  RSS while collecting: {run.rss_curve()}")
    print("  calls by operation: " + ", ".join(f"{op} {n}" for op, n in by_operation.most_common()))
    if args.accounts >= 1000:
        print(f"  target < 600 s: {'PASS' if run.seconds < 600 else 'FAIL'}")
    print(f"  target peak RSS < 300 MB: {'PASS' if run.peak_mb < 300 else 'FAIL'}")
    print(f"  target <= 1.5 ms collector CPU per call: {'PASS' if run.cpu_s * 1000 / calls <= 1.5 else 'FAIL'}"
          " (CPU figures on a VM include time the host gives elsewhere: compare the proxy's ms/call between runs)")
    if counts["bedrock_sql_errors"]:
        raise SystemExit(f"the collect recorded {counts['bedrock_sql_errors']} error(s): see its summary above")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("mode", nargs="?", default="bench", choices=("bench", "serve-moto", "serve-proxy"),
                        help=argparse.SUPPRESS)
    parser.add_argument("--upstream", help=argparse.SUPPRESS)  # serve-proxy: the moto server's URL
    parser.add_argument("--accounts", type=int, default=10, help="accounts (default %(default)s)")
    parser.add_argument("--keys", type=int, default=20, help="unrelated customer-managed keys per account")
    parser.add_argument("--models", type=int, default=4, help="custom models per model region")
    parser.add_argument("--model-regions", type=int, default=2, help=f"regions with models (max {len(MODEL_REGIONS)})")
    parser.add_argument("--latency", type=float, default=0.1, help="seconds added to every call")
    parser.add_argument("--src", default=str(REPO / "src"),
                        help="the bedrock_sql sources to run (another checkout's src/, to compare before and after)")
    parser.add_argument("--collect-args", default="", help="more collect options, e.g. '--max-workers 64'")
    parser.add_argument("--moto-as-is", action="store_true",
                        help="keep moto's account lookup that scans every account on each request (see "
                             "remember_access_key_accounts)")
    args = parser.parse_args()
    if not 1 <= args.model_regions <= len(MODEL_REGIONS):
        parser.error(f"--model-regions must be between 1 and {len(MODEL_REGIONS)}")
    if args.mode == "serve-moto":
        serve_moto(args)
    elif args.mode == "serve-proxy":
        serve_proxy(args)
    else:
        bench(args)


if __name__ == "__main__":
    main()
