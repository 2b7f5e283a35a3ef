"""``bedrock-sql serve``: the snapshot in Datasette, read-only, on the loopback by default.

Datasette (the optional extra ``bedrock-sql[serve]``) opens the file *immutable*: SQLite
opens it read-only, takes no lock and never writes a journal beside it, and Datasette
refuses any write. What it shows:

- every table and view, with the descriptions of ``bedrock-sql schema`` as its metadata;
- every control (bundled, and ``--queries DIR``) as a canned query named by its id: the
  rows ``bedrock-sql check`` gives, in check's order (worst first, models in use first),
  titled and described by the control's header;
- every example query (``examples/*.sql``, bundled in the package as
  ``bedrock_sql.examples``) as a canned query named by its file's stem.

The SQL functions and, for snapshots of older versions, the shared views reach Datasette's
connections through :mod:`bedrock_sql.datasette_plugin`. Before it listens, serve runs
``EXPLAIN`` of every canned query through Datasette itself: a query that Python's SQLite
cannot compile is a one-line error now, not a broken page later.
"""

from __future__ import annotations

import asyncio
import os
import socket
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Callable, Iterable

from .catalog import table_catalog
from .controls import PreparedControl, load_controls, prepare_control, snapshot_run, worst_first_sql
from .errors import UserError

MISSING_DATASETTE = "serve needs Datasette: pip install 'bedrock-sql[serve]'"

SETTINGS = {
    # A control's reason, or an error message, is read whole (Datasette cuts cells at 2,048
    # characters by default); a key policy then shows whole too.
    "truncate_cells_html": 0,
    # A control joins every model to its key, errors and what serves it: on a large
    # estate that takes more than Datasette's default second.
    "sql_time_limit_ms": 30_000,
}

# Characters SQLite reads as URI syntax: Datasette puts the path into a file: URI as it is.
_URI_SYNTAX = "?#%"
_LOOPBACK = {"127.0.0.1", "localhost", "::1"}


@dataclass(frozen=True)
class CannedQuery:
    name: str
    title: str
    description: str
    sql: str
    source: str  # where it was read from, for messages
    hide_sql: bool = False


def load_datasette():
    """Datasette's class and uvicorn, or :class:`UserError` saying how to install them."""
    try:
        from datasette.app import Datasette
        import uvicorn
    except ImportError:
        raise UserError(MISSING_DATASETTE) from None
    return Datasette, uvicorn


# --- what is served -------------------------------------------------------------------------


def control_query(prepared: PreparedControl) -> CannedQuery:
    """The control as a canned query: its rows in the order of ``check``
    (:func:`bedrock_sql.controls.worst_first`: worst status first, in-use models first)."""
    control = prepared.control
    sql = worst_first_sql(prepared)
    description = f"Severity {control.severity}. {control.description}"
    if control.remediation:
        description += f" Remediation: {control.remediation}"
    # The rows first: a control's SQL is long, and "show SQL" is one click away.
    return CannedQuery(control.id, control.title, description, sql, control.source, hide_sql=True)


def example_queries() -> list[CannedQuery]:
    """Every bundled example, named by its file's stem; its leading comment describes it
    (the first sentence is its title)."""
    folder = resources.files("bedrock_sql.examples")
    examples = []
    for entry in sorted(folder.iterdir(), key=lambda e: e.name):
        if not entry.name.endswith(".sql"):
            continue
        sql = entry.read_text(encoding="utf-8")
        comment = []
        for line in sql.splitlines():
            if not line.startswith("--"):
                break
            comment.append(line[2:].strip())
        name = entry.name[: -len(".sql")]
        description = " ".join(comment)
        title = description.split(". ")[0].rstrip(".") or name
        examples.append(CannedQuery(name, title, description, sql, f"bedrock_sql/examples/{entry.name}"))
    return examples


def table_metadata() -> dict[str, dict]:
    """Datasette's metadata of every table and view: the descriptions of ``schema``."""
    return {
        name: {"description": description, "columns": {column.name: column.description for column in columns}}
        for name, (description, columns) in table_catalog().items()
    }


def datasette_metadata(database: str, queries: Iterable[CannedQuery], collected: str) -> dict:
    return {
        "title": "bedrock-sql",
        "description": f"A bedrock-sql snapshot, read-only: {collected}.",
        "databases": {
            database: {
                "description": (
                    f"{collected}. Canned queries: each control, with the rows bedrock-sql check gives "
                    "(worst first), and each example query."
                ),
                "tables": table_metadata(),
                "queries": {
                    query.name: {
                        "sql": query.sql,
                        "title": query.title,
                        "description": query.description,
                        "hide_sql": query.hide_sql,
                    }
                    for query in queries
                },
            }
        },
    }


@dataclass
class ServedSnapshot:
    datasette: object  # datasette.app.Datasette
    database: str  # its name in Datasette (the file's stem): URLs start /<database>
    queries: list[CannedQuery]
    notes: list[str]


def build_datasette(db: str | os.PathLike, query_dirs: Iterable[str] = ()) -> ServedSnapshot:
    """A Datasette instance serving the snapshot ``db`` immutable, with bedrock-sql's canned
    queries, metadata, SQL functions and views; :class:`UserError` for a file that is not a
    snapshot, a bad control, or a missing Datasette."""
    from .sql import snapshot_connection

    Datasette, _uvicorn = load_datasette()
    from datasette.plugins import pm

    from . import datasette_plugin

    path = Path(db).absolute()
    if any(character in str(path) for character in _URI_SYNTAX):
        raise UserError(f"serve cannot open {path}: Datasette does not allow ?, # or % in a file's path "
                        "(rename the file, or link to it from a plain path)")
    controls = load_controls(query_dirs)
    # The same checks (a snapshot at all, controls that compile) and views as every command.
    with snapshot_connection(db) as connection:
        prepared = [prepare_control(connection, control) for control in controls]
        run = snapshot_run(connection)
        temp_statements = datasette_plugin.temp_schema(connection)
    queries = [control_query(p) for p in prepared]
    notes = []
    for example in example_queries():
        if any(query.name == example.name for query in queries):
            notes.append(f"example {example.name} is not served: a control has that id")
        else:
            queries.append(example)
    if temp_statements:
        notes.append("this snapshot was written by an older bedrock-sql: the shared views (bedrock_model_encryption, ...) "
                     "work in SQL and in the canned queries but are not listed among its views")
    collected = f"collected {run.collected_at} (run {run.run_id})" if run else "no finished collect run recorded"
    database = path.stem
    datasette = Datasette(
        immutables=[str(path)],
        metadata=datasette_metadata(database, queries, collected),
        settings=SETTINGS,
    )
    served = datasette.databases.get(database)
    if served is None or served.path != str(path):  # Datasette renamed it: the metadata would miss it
        raise UserError(f"serve cannot show {path} as {database!r}, a name Datasette keeps for itself: rename the file")
    if not pm.is_registered(datasette_plugin):
        pm.register(datasette_plugin, name="bedrock-sql")
    datasette_plugin.set_temp_schema(datasette, database, temp_statements)
    return ServedSnapshot(datasette, database, queries, notes)


async def check_queries(served: ServedSnapshot) -> None:
    """Compile every canned query on Datasette's own connection (Python's SQLite may be
    older than apsw's); :class:`UserError` naming the first that does not."""
    import sqlite3

    await served.datasette.invoke_startup()
    database = served.datasette.get_database(served.database)
    for query in served.queries:
        try:
            await database.execute(f"EXPLAIN {query.sql}")
        except sqlite3.Error as exc:
            raise UserError(
                f"{query.name} ({query.source}) cannot run in Datasette: {exc} "
                f"(Python's sqlite3 module has SQLite {sqlite3.sqlite_version})"
            ) from None


# --- the server ---------------------------------------------------------------------------------


def listen(host: str, port: int) -> socket.socket:
    """A listening socket on ``host``:``port``; :class:`UserError` when it cannot be had."""
    try:
        family = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)[0][0]
    except (socket.gaierror, UnicodeError) as exc:
        raise UserError(f"cannot listen on {host}:{port}: {getattr(exc, 'strerror', None) or exc}") from None
    try:
        return socket.create_server((host, port), family=family)
    except OSError as exc:
        # create_server's message repeats the address: the errno's words suffice.
        raise UserError(f"cannot listen on {host}:{port}: {os.strerror(exc.errno) if exc.errno else exc}") from None


def url(host: str, port: int, database: str) -> str:
    host = f"[{host}]" if ":" in host else host
    return f"http://{host}:{port}/{database}"


def run_server(datasette, sock: socket.socket) -> None:
    """Serve ``datasette`` on the listening ``sock`` until Ctrl-C (uvicorn, in this process).

    uvicorn shuts down cleanly on Ctrl-C and then raises the signal again, which reaches
    the CLI as KeyboardInterrupt: exit 130, as every command that Ctrl-C stops.
    """
    _Datasette, uvicorn = load_datasette()
    config = uvicorn.Config(datasette.app(), lifespan="on", log_level="warning")
    uvicorn.Server(config).run(sockets=[sock])


def serve(
    db: str | os.PathLike,
    *,
    host: str,
    port: int,
    query_dirs: Iterable[str] = (),
    echo: Callable[[str], None],
) -> None:
    """Serve the snapshot ``db`` read-only with Datasette on ``host``:``port`` until Ctrl-C."""
    served = build_datasette(db, query_dirs)
    asyncio.run(check_queries(served))
    sock = listen(host, port)
    try:
        for note in served.notes:
            echo(f"bedrock-sql: note: {note}")
        if host not in _LOOPBACK:
            echo(f"bedrock-sql: warning: listening on {host}: anyone who can reach port {port} can read "
                 "the snapshot (Datasette asks for no login)")
        echo(f"bedrock-sql: serving {db} read-only at {url(host, sock.getsockname()[1], served.database)} "
             f"({len(served.queries)} canned queries); Ctrl-C stops")
        run_server(served.datasette, sock)
    finally:
        sock.close()
