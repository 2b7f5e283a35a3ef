"""The Datasette plugin of ``bedrock-sql serve``: every connection Datasette opens speaks
bedrock-sql's SQL.

Datasette reads the snapshot through Python's ``sqlite3`` module, not apsw, so the SQL
functions of :mod:`bedrock_sql.sql_functions` (the same Python functions, registered from
its ``FUNCTIONS`` table) are registered on each of its connections by the
``prepare_connection`` hook. A snapshot this version collected holds the shared views
(:mod:`bedrock_sql.views`) in the file; an older one gets them, and empty stand-ins for the
tables it never collected, as TEMP objects on each connection: the statements that
:func:`bedrock_sql.views.install_views` ran on an apsw connection to the same file
(:func:`temp_schema`), replayed.

Each connection also gets the size and memory limits of every bedrock-sql statement
(:func:`bedrock_sql.sql.limit_resources`): Python's ``sqlite3`` is another SQLite library
than apsw's, with limits of its own to set. Datasette's ``sql_time_limit_ms`` stops a
statement between SQLite's steps; the length limit keeps any one step short, as in ``query``.

serve registers this module with Datasette's plugin manager itself (no entry point), so a
plain ``datasette`` run elsewhere in the same environment is not touched.
"""

from __future__ import annotations

import sqlite3
import weakref

import apsw
from datasette import hookimpl

from .sql import HEAP_LIMIT_BYTES, MAX_VALUE_BYTES
from .sql_functions import FUNCTIONS

# Datasette instance -> database name -> the TEMP statements its connections run.
_TEMP_SCHEMAS: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()


def temp_schema(connection: apsw.Connection) -> tuple[str, ...]:
    """The CREATE statements of ``connection``'s TEMP objects, in the order they were made.

    SQLite keeps a TEMP object's SQL without its ``TEMP``: it is put back here, so the
    statements make TEMP objects again on a connection to a read-only file.
    """
    statements = []
    for kind, sql in connection.execute(
        "SELECT type, sql FROM temp.sqlite_schema WHERE sql IS NOT NULL ORDER BY rowid"
    ):
        if kind in ("table", "view"):
            sql = sql.replace("CREATE ", "CREATE TEMP ", 1)
        statements.append(sql)  # an index goes where its (TEMP) table is
    return tuple(statements)


def set_temp_schema(datasette, database: str, statements: tuple[str, ...]) -> None:
    """Make every connection ``datasette`` opens to ``database`` run ``statements`` first."""
    _TEMP_SCHEMAS.setdefault(datasette, {})[database] = statements


def limit_resources(conn: sqlite3.Connection) -> None:
    """:func:`bedrock_sql.sql.limit_resources` for a ``sqlite3`` connection."""
    conn.setlimit(sqlite3.SQLITE_LIMIT_LENGTH, MAX_VALUE_BYTES)
    conn.setlimit(sqlite3.SQLITE_LIMIT_SQL_LENGTH, MAX_VALUE_BYTES)
    # sqlite3 has no call for it; the pragma sets the library's process-wide limit, and
    # only ever lowers it (SQLite ignores a value above the one in force).
    conn.execute(f"PRAGMA hard_heap_limit = {HEAP_LIMIT_BYTES}")


def install(conn: sqlite3.Connection, statements: tuple[str, ...] = ()) -> None:
    """bedrock-sql's limits and SQL functions, then ``statements``, on a ``sqlite3`` connection."""
    limit_resources(conn)
    for name, (function, arguments, deterministic) in FUNCTIONS.items():
        conn.create_function(name, arguments, function, deterministic=deterministic)
    for statement in statements:
        conn.execute(statement)


@hookimpl
def prepare_connection(conn, database, datasette):
    install(conn, _TEMP_SCHEMAS.get(datasette, {}).get(database, ()))
