"""Shared helpers for the in-process unit tests (providers, pushdown, snapshot, CLI).

Import what you need: ``from helpers import live, Live, hook, ...``. The ``live`` fixture
is defined here (not in conftest.py) and becomes available in a test module that
imports it.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from typing import Any, Callable

import apsw
import boto3
import pytest
from botocore.exceptions import ClientError

from bedrock_sql.aws import AwsOptions, Scope, resolve_scope
from bedrock_sql.engine import Engine, ErrorLog
from bedrock_sql.providers import TABLES
from bedrock_sql.vtable import register

REGIONS = ("us-east-1", "eu-west-1")
ACCOUNT = "123456789012"
ISO_UTC = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}Z$")


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
    scope = resolve_scope(AwsOptions(regions=regions, **options))
    engine = Engine(scope)
    conn = apsw.Connection(":memory:")
    register(conn, engine, TABLES)
    return Live(conn, scope, engine)


@pytest.fixture
def live(aws: boto3.Session):
    """(conn, scope, engine) over both regions of moto's in-process AWS."""
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
