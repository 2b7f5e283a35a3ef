"""`bedrock-sql demo`: collect a simulated estate (moto, in process) and show the findings.

No AWS account is touched: moto intercepts every call, the credentials are fake, and the
user's own AWS configuration is ignored for the duration.
"""

from __future__ import annotations

import json
import os
from contextlib import contextmanager
from pathlib import Path
from typing import TextIO

import click

from .accounts import resolve_scope
from .aws import AwsOptions
from .errors import UserError
from .controls import STATUSES, load_controls, run_controls
from .render import render
from .report import control_summary_rows, summary_line, write_report
from .snapshot import collect
from .snapshot_file import not_a_snapshot
from .sql import run_query, snapshot_connection

DEMO_REGIONS = ("us-east-1", "eu-west-1")
SEED_RULE = "bedrock_custom_model_encrypted_with_cmk"
# Where the demo writes unless given a path: never the user's snapshot (--db, BEDROCK_SQL_DB).
DEMO_DB = Path("bedrock-demo.db")
# The mark of a demo snapshot, in bedrock_sql_runs.notes: demo replaces only files carrying it.
DEMO_NOTE = "simulated estate written by bedrock-sql demo (moto, offline): no AWS account was read"

FIRST_LOOK = """
SELECT m.region, m.model_name,
       CASE WHEN m.model_kms_key_arn IS NULL THEN 'Bedrock-owned key'
            WHEN k.arn IS NULL THEN 'key in another account'
            ELSE k.key_manager || ' key, ' || k.key_state END AS encryption,
       coalesce(k.title, m.model_kms_key_arn) AS key
FROM aws_bedrock_custom_model m
LEFT JOIN aws_kms_key k ON k.arn = m.model_kms_key_arn
ORDER BY CASE WHEN m.model_kms_key_arn IS NULL THEN 0
              WHEN k.key_manager = 'AWS' THEN 1
              WHEN k.key_state IS NOT 'Enabled' THEN 2
              ELSE 3 END, m.region, m.model_name
"""

_FAKE_ENV = {
    "AWS_ACCESS_KEY_ID": "demo",
    "AWS_SECRET_ACCESS_KEY": "demo",
    "AWS_SESSION_TOKEN": "demo",
    "AWS_DEFAULT_REGION": DEMO_REGIONS[0],
}
_IGNORED_ENV = ("AWS_PROFILE", "AWS_ENDPOINT_URL", "AWS_ENDPOINT_URL_BEDROCK", "AWS_ENDPOINT_URL_KMS",
                "AWS_ENDPOINT_URL_STS", "AWS_ROLE_ARN", "AWS_WEB_IDENTITY_TOKEN_FILE", "AWS_REGION")


@contextmanager
def _simulated_aws():
    try:
        from moto import mock_aws
    except ImportError:
        raise UserError("the demo needs moto: pip install 'bedrock-sql[demo]' (from a checkout of bedrock-sql: "
                        "pip install '.[demo]')") from None
    saved = {name: os.environ.get(name) for name in (*_FAKE_ENV, *_IGNORED_ENV, "AWS_CONFIG_FILE", "AWS_SHARED_CREDENTIALS_FILE")}
    for name in _IGNORED_ENV:
        os.environ.pop(name, None)
    os.environ.update(_FAKE_ENV)
    os.environ["AWS_CONFIG_FILE"] = os.environ["AWS_SHARED_CREDENTIALS_FILE"] = os.devnull
    from . import simulated_bedrock

    simulated_bedrock.install()  # imported models, copies, throughput: what moto lacks
    try:
        with mock_aws():
            yield
    finally:
        for name, value in saved.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value


def is_demo_snapshot(path: Path) -> bool:
    """Whether ``path`` is a snapshot the demo wrote (its run carries :data:`DEMO_NOTE`)."""
    with snapshot_connection(path) as connection:
        notes = [row[0] for row in connection.execute("SELECT notes FROM bedrock_sql_runs")]
    for text in notes:
        try:
            if DEMO_NOTE in json.loads(text or "[]"):
                return True
        except (TypeError, ValueError):
            continue
    return False


def check_demo_target(db: Path) -> None:
    """Raise :class:`UserError` unless the demo may write ``db``: absent, empty, or a demo snapshot."""
    reason = not_a_snapshot(db)
    if reason is None and db.is_file() and db.stat().st_size > 0 and not is_demo_snapshot(db):
        reason = "a bedrock-sql snapshot of a real estate"
    if reason is not None:
        raise UserError(
            f"refusing to replace {db}: not a demo snapshot ({reason}); give the demo another file: bedrock-sql demo PATH"
        )


def missing_snapshot_hint(missing: Path) -> str:
    """A hint for "no snapshot at ...": the demo's snapshot, when it is in the working directory."""
    if not DEMO_DB.is_file() or missing.absolute() == DEMO_DB.absolute():
        return ""
    context = click.get_current_context(silent=True)
    command = context.info_name if context is not None and context.parent is not None else "COMMAND"
    return f" (the demo's snapshot is {DEMO_DB}: bedrock-sql --db {DEMO_DB} {command})"


def run_demo(db: Path, out: TextIO) -> int:
    """Seed, collect, report. Returns the exit code."""
    import boto3

    from .estate import seed_demo_estate
    from .estate_served import seed_served_estate

    check_demo_target(db)
    with _simulated_aws():
        session = boto3.Session(region_name=DEMO_REGIONS[0])
        estate = seed_demo_estate(session, regions=DEMO_REGIONS)
        served = seed_served_estate(session, estate, regions=DEMO_REGIONS)
        scope = resolve_scope(AwsOptions(regions=DEMO_REGIONS))
        scope.notes.append(DEMO_NOTE)
        result = collect(scope, db)
    out.write(
        f"Simulated estate: {len(estate.models)} custom models, {len(estate.jobs)} customization jobs "
        f"and {len(estate.keys)} KMS keys in account {', '.join(estate.account_ids)}, "
        f"regions {', '.join(DEMO_REGIONS)} (moto, offline).\n"
        f"Beyond customization jobs: {len(served.imported_models)} imported models (one without a CMK), "
        f"{len(served.copies)} model copy made without a key, {len(served.throughputs)} provisioned "
        "throughput serving a model on Bedrock's own key.\n"
    )
    counts = ", ".join(f"{n} {name}" for name, n in result.row_counts.items())
    out.write(f"Collected {counts} into {result.path} ({result.api_calls} API calls).\n\n")
    out.write("Custom models and the keys that encrypt them (worst first):\n")
    with snapshot_connection(db) as connection:
        query = run_query(connection, FIRST_LOOK)
        render(query.columns, query.rows, "table", out)
        controls = load_controls()
        findings = run_controls(connection, controls)
    seed_rule = [c for c in controls if c.id == SEED_RULE]
    out.write("\n`bedrock-sql check " + SEED_RULE + "`:\n\n")
    write_report([f for f in findings if f.control.id == SEED_RULE], seed_rule, "table", out)
    out.write("Every bundled control (`bedrock-sql check`):\n")
    render(["control", "severity", *STATUSES], control_summary_rows(findings, controls), "table", out)
    out.write(summary_line(findings) + "\n")
    out.write(
        f"\nExplore it yourself:\n  bedrock-sql --db {db} query "
        "\"SELECT model_name, region FROM aws_bedrock_custom_model WHERE model_kms_key_arn IS NULL\"\n"
        f"  bedrock-sql --db {db} shell\n"
    )
    return 0
