"""Running an analyst's SQL: one statement, read-only, on the snapshot or live on AWS."""

from __future__ import annotations

from contextlib import contextmanager
from dataclasses import dataclass
from typing import Iterator

import apsw
import apsw.ext

from .accounts import record_failed_accounts, resolve_scope
from .aws import AwsOptions
from .engine import Engine, ErrorLog
from .errors import UserError
from .providers import TABLES
from .snapshot import _read_only_authorizer, open_snapshot
from .vtable import register


@dataclass
class Result:
    columns: list[str]
    rows: Iterator[tuple]


def run_query(connection: apsw.Connection, sql: str, bindings=None) -> Result:
    """Prepare ``sql`` (exactly one statement) and return its columns and a row iterator.

    Bad SQL and refused writes become :class:`UserError` with SQLite's own words.
    """
    if not sql.strip():
        raise UserError("no SQL given")
    try:
        details = apsw.ext.query_info(connection, sql, bindings)
    except apsw.AuthError:
        raise UserError("the snapshot is read-only: only SELECT (and reading PRAGMAs) is allowed") from None
    except apsw.Error as exc:
        raise UserError(f"SQL error: {sql_message(exc)}") from None
    if details.query_remaining and _has_statement(details.query_remaining):
        raise UserError("give one SQL statement at a time")
    columns = [name for name, _type in (details.description or ())]
    try:
        cursor = connection.execute(details.first_query, bindings)
    except apsw.Error as exc:
        raise UserError(f"SQL error: {sql_message(exc)}") from None
    return Result(columns, _rows(cursor))


def _rows(cursor) -> Iterator[tuple]:
    try:
        yield from cursor
    except apsw.Error as exc:  # e.g. a runtime error half-way through (bad json, ...)
        raise UserError(f"SQL error: {sql_message(exc)}") from None


def _has_statement(text: str) -> bool:
    """Whether ``text`` holds anything but whitespace, semicolons and comments.

    (``apsw.complete`` is no test of that: it is False for ``SELECT 2`` without a final
    semicolon, which let ``SELECT 1; SELECT 2`` silently drop its second statement.)
    """
    i, n = 0, len(text)
    while i < n:
        if text[i].isspace() or text[i] == ";":
            i += 1
        elif text.startswith("--", i):
            end = text.find("\n", i)
            i = n if end < 0 else end + 1
        elif text.startswith("/*", i):
            end = text.find("*/", i + 2)
            i = n if end < 0 else end + 2
        else:
            return True
    return False


def sql_message(exc: apsw.Error) -> str:
    text = str(exc)
    # apsw prefixes the class name ("SQLError: no such table: x"); keep SQLite's words.
    prefix = f"{type(exc).__name__}: "
    return text[len(prefix):] if text.startswith(prefix) else text


@contextmanager
def snapshot_connection(db_path) -> Iterator[apsw.Connection]:
    connection = open_snapshot(db_path)
    try:
        yield connection
    finally:
        connection.close()


@contextmanager
def live_connection(options: AwsOptions, errors: ErrorLog) -> Iterator[apsw.Connection]:
    """A connection whose tables answer from AWS through the virtual tables."""
    scope = resolve_scope(options)
    record_failed_accounts(scope, errors, TABLES)  # accounts that could not be reached
    engine = Engine(scope, errors, max_workers=options.max_workers)
    connection = apsw.Connection(":memory:")
    register(connection, engine, TABLES)
    connection.authorizer = _read_only_authorizer
    try:
        yield connection
    except BaseException:
        engine.interrupt()
        raise
    finally:
        connection.close()
        engine.close()
