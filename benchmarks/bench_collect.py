#!/usr/bin/env python3
"""Benchmark `bedrock-sql collect` (run by hand; not part of the test suite).

    python benchmarks/bench_collect.py                       # both runs, the defaults below
    python benchmarks/bench_collect.py --skip-memory         # only the latency run
    python benchmarks/bench_collect.py --skip-latency --memory-models 2000

Run 1 -- latency. A moto server on 127.0.0.1 behind a proxy (in a process of its own) that
adds 100 ms to every call (slept in the request's handler thread, keep-alive, Nagle off: see
DESIGN.md), as Bedrock's control plane answers in 50-200 ms. 6 regions x 20 custom models, their 20
customization jobs, 3 customer-managed keys and 1 AWS managed key per region. Timed in the
same run, through the same proxy:

  (a) `bedrock-sql collect` as a subprocess (interpreter start-up included);
  (b) the seed's procedure done by hand with boto3, sequentially, region by region: list
      then get every model and every job, describe every key -- plus, to compare like with
      like, the calls bedrock-sql makes to fill the same columns: ListTagsForResource per
      model and job, GetKeyRotationStatus/GetKeyPolicy/ListResourceTags per
      customer-managed key, one ListAliases per region, the listings of the other Bedrock
      tables (imported models, import and copy jobs, throughputs, deployments: empty here)
      and GetCallerIdentity once.

API calls are counted from the proxy's request log. Targets: (a) at least 20x faster than
(b) (the calls' critical path allows ~25x), and no more calls.

Run 2 -- memory. 50,000 custom models in one region, written straight into moto's
backend (50,000 API calls would take longer than the collect), no latency; `bedrock-sql
collect` as a subprocess; its peak RSS (ru_maxrss, see ``_MAXRSS_WRAPPER``) and wall time.
Target: < 300 MB.
moto answers GetCustomModel-by-ARN and ListTagsForResource by scanning every model (O(n)
per call, quadratic over a collect); real Bedrock does not, so this benchmark gives the
backend an ARN index first (see ``index_moto_models``). That changes moto's CPU time only,
not what bedrock-sql receives.

Everything runs on loopback; nothing reaches AWS (fake credentials, endpoint forced).
"""

from __future__ import annotations

import argparse
import logging
import os
import platform
import re
import shlex
import sqlite3
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections import Counter
from datetime import datetime, timedelta
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO / "tests"))  # the AwsProxy of the end-to-end tests
if (REPO / "src" / "bedrock_sql").is_dir():
    sys.path.insert(0, str(REPO / "src"))

import boto3  # noqa: E402
import botocore.exceptions  # noqa: E402

from bedrock_sql.estate import DEFAULT_ACCOUNT_ID, create_key, key_policy, seed_models  # noqa: E402
from bench_scale import ProxyProcess, moto_custom_model  # noqa: E402
from e2e_helpers import cli_command, cli_env  # noqa: E402
from measured_run import run_measured, summary_line  # noqa: E402

REGIONS = ("us-east-1", "us-west-2", "eu-west-1", "eu-central-1", "ap-northeast-1", "ap-southeast-2")
TABLES = ("aws_bedrock_custom_model", "aws_bedrock_model_customization_job", "aws_kms_key", "aws_kms_alias")


# --------------------------------------------------------------------------- moto


def start_moto():
    from moto.server import ThreadedMotoServer

    from bedrock_sql import simulated_bedrock

    simulated_bedrock.install()  # what moto lacks: imported models, copies, throughputs, deployments
    logging.getLogger("werkzeug").setLevel(logging.ERROR)  # one log line per call costs CPU
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    return server, f"http://{host}:{port}"


def reset_moto(url: str) -> None:
    request = urllib.request.Request(f"{url}/moto-api/reset", data=b"", method="POST")
    with urllib.request.urlopen(request, timeout=30) as response:
        response.read()


def fake_credentials() -> None:
    for name in list(os.environ):
        if name.startswith("AWS_") or name.lower() in ("http_proxy", "https_proxy", "all_proxy"):
            del os.environ[name]
    os.environ.update(
        AWS_ACCESS_KEY_ID="testing",
        AWS_SECRET_ACCESS_KEY="testing",
        AWS_SESSION_TOKEN="testing",
        AWS_DEFAULT_REGION="us-east-1",
        AWS_CONFIG_FILE=os.devnull,
        AWS_SHARED_CREDENTIALS_FILE=os.devnull,
        AWS_EC2_METADATA_DISABLED="true",
    )


# --------------------------------------------------------------------------- run 1: latency


def seed_latency_estate(url: str, regions, models_per_region: int) -> dict[str, int]:
    """Per region: 3 CMKs (one rotated, one not, one disabled), 1 AWS managed key, and
    ``models_per_region`` models (and their jobs) spread over them and the Bedrock key."""
    session = boto3.Session(region_name=regions[0])
    expected = Counter()
    for region in regions:
        policy = key_policy(DEFAULT_ACCOUNT_ID, bedrock_role=True)
        tags = {"purpose": "bedrock-custom-models"}
        cmk = create_key(session, region, alias="alias/bedrock/models", rotation=True, tags=tags, policy=policy, endpoint_url=url)
        legacy = create_key(session, region, alias="alias/bedrock/legacy", tags=tags, policy=policy, endpoint_url=url)
        create_key(session, region, alias="alias/bedrock/retired", state="Disabled", endpoint_url=url)
        aws_managed = create_key(session, region, manager="AWS", description="AWS managed", endpoint_url=url)
        split = [
            ("cmk", cmk.arn, models_per_region * 2 // 5),
            ("legacy", legacy.arn, models_per_region // 5),
            ("awsmanaged", aws_managed.arn, models_per_region * 3 // 20),
        ]
        split.append(("owned", None, models_per_region - sum(n for _, _, n in split)))
        for prefix, key_arn, count in split:
            seed_models(session, region, count, key_arn=key_arn, prefix=prefix, endpoint_url=url)
        expected["aws_bedrock_custom_model"] += models_per_region
        expected["aws_bedrock_model_customization_job"] += models_per_region
        expected["aws_kms_key"] += 4
    return dict(expected)


def time_bedrock_sql(proxy_url: str, regions, workdir: Path, *extra: str) -> tuple[float, subprocess.CompletedProcess]:
    args = ["collect", *[a for r in regions for a in ("--region", r)], *extra]
    started = time.perf_counter()
    result = subprocess.run(
        cli_command(*args), cwd=workdir, env=cli_env(proxy_url), capture_output=True, text=True, timeout=3600
    )
    elapsed = time.perf_counter() - started
    if result.returncode != 0:
        raise SystemExit(f"bedrock-sql collect failed (exit {result.returncode}):\n{result.stderr}")
    return elapsed, result


def snapshot_counts(db: Path) -> dict[str, int]:
    with sqlite3.connect(f"file:{db}?mode=ro", uri=True) as conn:
        counts = {t: conn.execute(f"SELECT count(*) FROM {t}").fetchone()[0] for t in TABLES}
        counts["bedrock_sql_errors"] = conn.execute("SELECT count(*) FROM bedrock_sql_errors").fetchone()[0]
    return counts


def sequential_procedure(url: str, regions) -> dict[str, int]:
    """The seed's procedure by hand with boto3, one call at a time, region by region."""
    session = boto3.Session(region_name=regions[0])
    rows: Counter = Counter()
    session.client("sts", endpoint_url=url).get_caller_identity()
    for region in regions:
        bedrock = session.client("bedrock", region_name=region, endpoint_url=url)
        kms = session.client("kms", region_name=region, endpoint_url=url)

        for page in bedrock.get_paginator("list_custom_models").paginate():
            for summary in page["modelSummaries"]:
                model = bedrock.get_custom_model(modelIdentifier=summary["modelArn"])
                bedrock.list_tags_for_resource(resourceARN=model["modelArn"])
                rows["aws_bedrock_custom_model"] += 1

        for page in bedrock.get_paginator("list_model_customization_jobs").paginate():
            for summary in page["modelCustomizationJobSummaries"]:
                job = bedrock.get_model_customization_job(jobIdentifier=summary["jobName"])
                bedrock.list_tags_for_resource(resourceARN=job["jobArn"])
                rows["aws_bedrock_model_customization_job"] += 1

        # The other Bedrock tables (empty here): one listing each, as bedrock-sql makes.
        for operation in (
            "list_imported_models",
            "list_model_import_jobs",
            "list_model_copy_jobs",
            "list_provisioned_model_throughputs",
            "list_custom_model_deployments",
        ):
            getattr(bedrock, operation)()

        for page in kms.get_paginator("list_aliases").paginate():
            rows["aws_kms_alias"] += len(page["Aliases"])

        for page in kms.get_paginator("list_keys").paginate():
            for summary in page["Keys"]:
                meta = kms.describe_key(KeyId=summary["KeyId"])["KeyMetadata"]
                rows["aws_kms_key"] += 1
                if meta["KeyManager"] != "CUSTOMER":
                    continue
                try:
                    kms.get_key_rotation_status(KeyId=meta["KeyId"])
                except botocore.exceptions.ClientError:
                    pass  # rotation does not apply to every key
                kms.get_key_policy(KeyId=meta["KeyId"], PolicyName="default")
                for _ in kms.get_paginator("list_resource_tags").paginate(KeyId=meta["KeyId"]):
                    pass
    return dict(rows)


def latency_run(url: str, args) -> dict:
    regions = REGIONS[: args.regions]
    print(f"Run 1: {len(regions)} regions x {args.models} models, +{args.latency * 1000:.0f} ms per call", flush=True)
    reset_moto(url)
    expected = seed_latency_estate(url, regions, args.models)

    # The proxy in a process of its own: in this one (which holds moto), its CPU and moto's
    # would share one interpreter lock, and the simulator, not the collect, would set the pace.
    with tempfile.TemporaryDirectory(prefix="bench-collect-") as tmp:
        workdir = Path(tmp)
        extra = (*(("--max-workers", str(args.max_workers)) if args.max_workers else ()), *shlex.split(args.collect_args))
        with ProxyProcess(url, args.latency) as proxy:
            tool_seconds, result = time_bedrock_sql(proxy.url, regions, workdir, *extra)
        tool_ops = proxy.counts
        tool_counts = snapshot_counts(workdir / "bedrock.db")
        summary = summary_line(result.stderr)

        with ProxyProcess(url, args.latency) as proxy:
            started = time.perf_counter()
            seq_counts = sequential_procedure(proxy.url, regions)
            seq_seconds = time.perf_counter() - started
        seq_ops = proxy.counts

    for table in ("aws_bedrock_custom_model", "aws_bedrock_model_customization_job", "aws_kms_key"):
        if not (tool_counts[table] == seq_counts.get(table) == expected[table]):
            raise SystemExit(f"{table}: bedrock-sql {tool_counts[table]}, sequential {seq_counts.get(table)}, seeded {expected[table]}")
    if tool_counts["aws_kms_alias"] != seq_counts.get("aws_kms_alias") or tool_counts["bedrock_sql_errors"]:
        raise SystemExit(f"snapshot differs from what the sequential procedure saw: {tool_counts} vs {seq_counts}")

    tool_calls, seq_calls = sum(tool_ops.values()), sum(seq_ops.values())
    speedup = seq_seconds / tool_seconds
    print(f"  rows: {tool_counts}  (bedrock-sql said: {summary})")
    print()
    print(f"  {'':28} {'seconds':>8} {'API calls':>10}")
    print(f"  {'bedrock-sql collect':28} {tool_seconds:8.2f} {tool_calls:10d}")
    print(f"  {'sequential boto3':28} {seq_seconds:8.2f} {seq_calls:10d}")
    print(f"  {'ratio (sequential / tool)':28} {speedup:7.1f}x {seq_calls - tool_calls:+10d} calls saved")
    print()
    print("  API calls by operation (bedrock-sql / sequential):")
    for op in sorted(set(tool_ops) | set(seq_ops), key=str):
        flag = "  <-- more" if tool_ops[op] > seq_ops[op] else ""
        print(f"    {op:30} {tool_ops[op]:5d} {seq_ops[op]:5d}{flag}")
    verdict_speed = "PASS" if speedup >= 20 else "FAIL"
    verdict_calls = "PASS" if tool_calls <= seq_calls else "FAIL"
    print(f"  target >= 20x faster: {verdict_speed}; calls(bedrock-sql) <= calls(sequential): {verdict_calls}")
    print(flush=True)
    return {
        "tool_seconds": tool_seconds,
        "seq_seconds": seq_seconds,
        "tool_calls": tool_calls,
        "seq_calls": seq_calls,
        "speedup": speedup,
    }


# --------------------------------------------------------------------------- run 2: memory


def seed_models_in_backend(url: str, region: str, count: int) -> None:
    """``count`` custom models written straight into moto's backend (what GetCustomModel
    returns: ARNs, base model, hyperparameters, data configs, metrics, creation time, key).
    Every other model is encrypted with a real CMK (created through the API), the rest
    with the Bedrock-owned key. No jobs: the models' job ARNs name jobs that are gone."""
    from moto.bedrock.models import bedrock_backends

    session = boto3.Session(region_name=region)
    cmk = create_key(session, region, alias="alias/bedrock/bulk", rotation=True, endpoint_url=url)
    backend = bedrock_backends[DEFAULT_ACCOUNT_ID][region]
    epoch = datetime(2026, 1, 5, 9, 0, 0)
    for i in range(count):
        name = f"bulk-{i:06d}"
        backend.custom_models[name] = moto_custom_model(
            DEFAULT_ACCOUNT_ID, region, name, cmk.arn if i % 2 == 0 else None, epoch + timedelta(seconds=i)
        )
    index_moto_models(backend)


def index_moto_models(backend) -> None:
    """Give moto's Bedrock backend the ARN index real Bedrock has.

    moto's GetCustomModel by ARN and ListTagsForResource scan every model on each call;
    over 50,000 models that is ~10^9 comparisons per collect, all in the moto server. The
    index answers the same objects (and the same ResourceNotFoundException) in O(1).
    """
    from moto.bedrock.exceptions import ResourceNotFoundException

    by_arn = {m.model_arn: m for m in backend.custom_models.values()}
    arns = set(by_arn) | {j.job_arn for j in backend.model_customization_jobs.values()}
    by_name = backend.get_custom_model

    def get_custom_model(model_identifier: str):
        if model_identifier.startswith("arn"):
            model = by_arn.get(model_identifier)
            if model is None:
                raise ResourceNotFoundException(f"Custom model {model_identifier} not found")
            return model
        return by_name(model_identifier)

    backend.get_custom_model = get_custom_model
    backend._list_arns = lambda: arns


def memory_run(url: str, args) -> dict:
    region = "us-east-1"
    count = args.memory_models
    print(f"Run 2: {count:,} models in {region}, no latency", flush=True)
    reset_moto(url)
    started = time.perf_counter()
    seed_models_in_backend(url, region, count)
    print(f"  seeded in {time.perf_counter() - started:.1f}s (written into moto's backend)", flush=True)

    with tempfile.TemporaryDirectory(prefix="bench-collect-mem-") as tmp:
        workdir = Path(tmp)
        args_ = ["collect", "--region", region]
        if args.max_workers:
            args_ += ["--max-workers", str(args.max_workers)]
        command = cli_command(*args_)
        # The collect's peak RSS is its own ru_maxrss, not this process's (see measured_run).
        run = run_measured(command[1:], cwd=workdir, env=cli_env(url), sample_seconds=0.5)
        if run.returncode != 0:
            raise SystemExit(f"bedrock-sql collect failed (exit {run.returncode}):\n{run.stderr}")
        elapsed, stderr = run.seconds, run.stderr
        counts = snapshot_counts(workdir / "bedrock.db")
        db_mb = (workdir / "bedrock.db").stat().st_size / 2**20

    peak_mb = run.peak_mb
    said = re.search(r"\((\d+) API calls\)", stderr)
    calls = int(said.group(1)) if said else 1 + 2 * count + (count + 99) // 100
    print(f"  rows: {counts}")
    print(f"  bedrock-sql said: {run.summary_line()}")
    print()
    print(f"  {'models':>8} {'wall s':>8} {'calls/s':>8} {'peak RSS MB':>12} {'snapshot MB':>12}")
    print(f"  {count:8,d} {elapsed:8.1f} {calls / elapsed:8.0f} {peak_mb:12.1f} {db_mb:12.1f}")
    print(f"  RSS while collecting: {run.rss_curve()}")
    print(f"  (VmHWM read while it ran: {run.peak_seen_mb:.1f} MB)")
    print(f"  target peak RSS < 300 MB: {'PASS' if peak_mb < 300 else 'FAIL'}")
    print(flush=True)
    if counts["aws_bedrock_custom_model"] != count or counts["bedrock_sql_errors"]:
        raise SystemExit(f"expected {count} models and no errors, got {counts}")
    return {"models": count, "seconds": elapsed, "peak_mb": peak_mb}


# --------------------------------------------------------------------------- main


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--regions", type=int, default=6, help="regions in run 1 (max %(default)s)")
    parser.add_argument("--models", type=int, default=20, help="models (and jobs) per region in run 1")
    parser.add_argument("--latency", type=float, default=0.1, help="seconds added to every call in run 1")
    parser.add_argument("--memory-models", type=int, default=50_000, help="models in run 2")
    parser.add_argument("--max-workers", type=int, default=0, help="pass --max-workers to bedrock-sql (default: its own)")
    parser.add_argument("--collect-args", default="--kms-keys all",
                        help="more options for run 1's collect (default: %(default)s, every key, as the sequential "
                             "procedure describes; '' for a version without --kms-keys)")
    parser.add_argument("--skip-latency", action="store_true", help="skip run 1")
    parser.add_argument("--skip-memory", action="store_true", help="skip run 2")
    args = parser.parse_args()
    if not 1 <= args.regions <= len(REGIONS):
        parser.error(f"--regions must be between 1 and {len(REGIONS)}")

    fake_credentials()
    print(f"machine: {os.cpu_count()} CPUs, Python {platform.python_version()}, {platform.system()} {platform.machine()}")
    server, url = start_moto()
    try:
        if not args.skip_latency:
            latency_run(url, args)
        if not args.skip_memory:
            memory_run(url, args)
    finally:
        server.stop()


if __name__ == "__main__":
    main()
