"""Shared helpers for the in-process unit tests (providers, pushdown, snapshot, CLI).

Import what you need: ``from helpers import world, demo, live, scratch, ...``. Fixtures
defined here (not in conftest.py) become available in a test module that imports them.

Speed: seeding the demo estate in moto costs about a second, so ``world`` seeds it once
per test module (inside one module-wide ``mock_aws``) and tests only read it. A test that
needs resources of its own creates them in a ``scratch`` region nobody else in the module
uses, and scopes its live connection to that region.
"""

from __future__ import annotations

import functools
import json
import os
import re
from dataclasses import dataclass, field
from typing import Any, Callable, Iterator
from unittest import mock

import apsw
import boto3
import pytest
from botocore.exceptions import ClientError

import bedrock_sql.accounts
import bedrock_sql.aws
from bedrock_sql.accounts import Scope, resolve_scope
from bedrock_sql.aws import AwsOptions
from bedrock_sql.cli import main
from bedrock_sql.engine import Engine, ErrorLog
from bedrock_sql.estate import Estate, seed_demo_estate
from bedrock_sql.providers import TABLES
from bedrock_sql.vtable import register

REGIONS = ("us-east-1", "eu-west-1")
ACCOUNT = "123456789012"
ISO_UTC = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}Z$")
# Regions (in the aws partition, with Bedrock and KMS) that the demo estate leaves empty.
SCRATCH_REGIONS = (
    "us-west-2", "us-east-2", "eu-central-1", "eu-west-2", "eu-west-3", "eu-north-1",
    "ap-northeast-1", "ap-northeast-2", "ap-south-1", "ap-southeast-1", "ap-southeast-2",
    "ca-central-1", "sa-east-1", "ap-northeast-3", "eu-south-1", "eu-central-2",
)

# botocore rebuilds its region lists on every call (~0.3 s); the answer never changes.
_cached_region_names = functools.cache(bedrock_sql.aws.all_region_names)


def fast_regions():
    """Patch ``all_region_names`` with a cached (identical) answer while in effect."""
    return mock.patch.object(bedrock_sql.accounts, "all_region_names", _cached_region_names)


@dataclass
class Live:
    """A connection whose tables answer live from (moto's) AWS, and its engine."""

    conn: apsw.Connection
    scope: Scope
    engine: Engine
    closed: bool = field(default=False)

    def rows(self, sql: str, bindings: Any = ()) -> list[dict[str, Any]]:
        cursor = self.conn.execute(sql, bindings)
        out = []
        for row in cursor:
            names = [d[0] for d in cursor.getdescription()]
            out.append(dict(zip(names, row)))
        return out

    def values(self, sql: str, bindings: Any = ()) -> list:
        return [row[0] for row in self.conn.execute(sql, bindings)]

    def calls(self, operation: str | None = None, region: str | None = None, service: str | None = None) -> int:
        return sum(
            n
            for (svc, op, reg), n in self.scope.factory.calls.items()
            if (operation is None or op == operation)
            and (region is None or reg == region)
            and (service is None or svc == service)
        )

    def reset_calls(self) -> None:
        self.scope.factory.calls.clear()

    @property
    def errors(self) -> ErrorLog:
        return self.engine.errors

    def close(self) -> None:
        if not self.closed:
            self.closed = True
            self.conn.close()
            self.engine.close()


def make_live(regions: tuple[str, ...] = REGIONS, **options: Any) -> Live:
    with fast_regions():
        scope = resolve_scope(AwsOptions(regions=regions, **options))
    engine = Engine(scope)
    conn = apsw.Connection(":memory:")
    register(conn, engine, TABLES)
    return Live(conn, scope, engine)


@dataclass
class World:
    """One module's moto: a session acting in it, the seeded demo estate, spare regions."""

    session: boto3.Session
    estate: Estate
    scratch: Iterator[str]


_ENV_TO_CLEAR = ("AWS_PROFILE", "AWS_DEFAULT_PROFILE", "AWS_ENDPOINT_URL", "AWS_REGION", "BEDROCK_SQL_DB")


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[World]:
    """moto for the whole module, with the demo estate seeded once (read it, don't change it)."""
    import moto

    nowhere = tmp_path_factory.mktemp("no-aws-config")
    with pytest.MonkeyPatch.context() as env:
        for name in list(os.environ):
            if name in _ENV_TO_CLEAR or name.startswith("AWS_ENDPOINT_URL_"):
                env.delenv(name, raising=False)
        env.setenv("AWS_CONFIG_FILE", str(nowhere / "config"))
        env.setenv("AWS_SHARED_CREDENTIALS_FILE", str(nowhere / "credentials"))
        env.setenv("AWS_ACCESS_KEY_ID", "testing")
        env.setenv("AWS_SECRET_ACCESS_KEY", "testing")
        env.setenv("AWS_DEFAULT_REGION", "us-east-1")
        env.setenv("AWS_EC2_METADATA_DISABLED", "true")
        with moto.mock_aws():
            session = boto3.Session(region_name="us-east-1")
            estate = seed_demo_estate(session, regions=REGIONS)
            yield World(session, estate, iter(SCRATCH_REGIONS))


@pytest.fixture
def demo(world: World) -> Estate:
    return world.estate


@pytest.fixture
def scratch(world: World) -> str:
    """An empty region of this module's moto, for a test's own resources."""
    return next(world.scratch)


@pytest.fixture
def live(world: World) -> Iterator[Live]:
    """(conn, scope, engine) over both regions of the demo estate, with fresh call counts."""
    handle = make_live()
    try:
        yield handle
    finally:
        handle.close()


def hook(scope: Scope, event: str, handler: Callable) -> None:
    """Register a botocore event handler on every account session of ``scope``.

    Clients created afterwards (the engine creates them lazily) inherit it.
    """
    for account in scope.accounts:
        account.session.events.register(event, handler)


def capture_params(scope: Scope, service: str, operation: str) -> list[dict]:
    """Record the API parameters of every ``operation`` call made through ``scope``."""
    seen: list[dict] = []

    def record(params, **_kwargs):
        seen.append(dict(params))

    hook(scope, f"provide-client-params.{service}.{operation}", record)
    return seen


def client_error(code: str, operation: str, message: str = "denied by the test") -> ClientError:
    return ClientError({"Error": {"Code": code, "Message": message}, "ResponseMetadata": {"HTTPStatusCode": 400}}, operation)


def deny(
    scope: Scope,
    service: str,
    operation: str,
    *,
    when: Callable[[dict, dict], bool] = lambda params, context: True,
    code: str = "AccessDeniedException",
) -> list[dict]:
    """Make ``operation`` fail with ``code`` whenever ``when(params, context)`` holds.

    Returns the list of denied calls' parameters.
    """
    denied: list[dict] = []

    def handler(params, context=None, **_kwargs):
        if when(params, context or {}):
            denied.append(dict(params))
            raise client_error(code, operation)

    hook(scope, f"provide-client-params.{service}.{operation}", handler)
    return denied


def region_of(context: dict) -> str | None:
    return context.get("client_region")


def parse_json(value: str | None) -> Any:
    assert isinstance(value, str), f"expected JSON text, got {value!r}"
    return json.loads(value)


def run_main(capsys: pytest.CaptureFixture, *args: Any) -> tuple[int, str, str]:
    """Run `bedrock-sql ARGS` in process: (exit code, stdout, stderr)."""
    capsys.readouterr()
    with pytest.raises(SystemExit) as exited:
        main([str(a) for a in args])
    out, err = capsys.readouterr()
    code = exited.value.code
    return (0 if code is None else code), out, err
