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
connections through :mod:`bedrock_sql.datasette_plugin`, with the same size and memory
limits as every other ad-hoc statement. Before it listens, serve runs ``EXPLAIN`` of every
canned query through Datasette itself: a query that Python's SQLite cannot compile is a
one-line error now, not a broken page later.

The server answers only requests addressed to it (:class:`HostGuard`): a web page the
auditor visits could otherwise point a name of its own at 127.0.0.1 (DNS rebinding) and
read the snapshot through ``/bedrock.json?sql=...``. Every answer carries a Content Security
Policy that runs only Datasette's own scripts (:func:`content_security_policy`) and the
headers that keep it out of frames, sniffing and referrers.
"""

from __future__ import annotations

import asyncio
import base64
import functools
import hashlib
import ipaddress
import os
import re
import socket
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Callable, Iterable

from .catalog import table_catalog
from .controls import PreparedControl, load_controls, prepare_control, snapshot_run, worst_first_sql
from .errors import UserError

MISSING_DATASETTE = ("serve needs Datasette: pip install 'bedrock-sql[serve]' "
                     "(from a checkout of bedrock-sql: pip install '.[serve]')")

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


# --- answering only our own address ---------------------------------------------------------

# A name others may use for the server (--allow-host): a DNS name or an address, with an
# optional port ("[::1]:8001" for an IPv6 address with one).
_NAME = re.compile(r"[a-z0-9]([a-z0-9-]*[a-z0-9])?(\.[a-z0-9]([a-z0-9-]*[a-z0-9])?)*")


def _authority(name: str, port: int) -> str:
    """What a browser sends as Host for ``name`` on ``port``: IPv6 addresses in brackets."""
    name = name.lower()
    if ":" in name:
        name = f"[{name}]"
    return f"{name}:{port}"


def _parse_allowed(text: str) -> tuple[str, int | None]:
    """``NAME``, ``NAME:PORT``, ``[IPV6]:PORT`` or a bare IPv6 address -> (name, port or None);
    :class:`UserError` for anything else."""
    value = text.strip().lower()
    name, port = value, None
    if value.startswith("["):
        found = re.fullmatch(r"\[([0-9a-f:.]+)\](?::(\d+))?", value)
        if not found:
            raise UserError(f"--allow-host {text!r} is not NAME, NAME:PORT or [IPV6]:PORT")
        name, port = found.group(1), found.group(2)
    elif value.count(":") == 1:
        name, port = value.split(":")
    try:
        ipaddress.ip_address(name)
    except ValueError:
        if not _NAME.fullmatch(name) or len(name) > 253:
            raise UserError(f"--allow-host {text!r} is not a host name or address") from None
    if port is not None:
        if not port.isdigit() or not 0 < int(port) < 65536:
            raise UserError(f"--allow-host {text!r}: the port must be 1-65535")
        port = int(port)
    return name, port


def parse_allow_hosts(texts: Iterable[str]) -> list[tuple[str, int | None]]:
    """Each ``--allow-host`` as (name, port or None); :class:`UserError` for a bad one."""
    return [_parse_allowed(text) for text in texts]


def answered_hosts(host: str, bound_address: str, port: int, allow_hosts: Iterable[str] = ()) -> tuple[str, ...]:
    """The Host header values the server answers, listening on ``bound_address``:``port``
    after ``--host host``: the host as given and the address it bound; for the loopback
    also ``localhost`` (and the loopback address of the other IP version: a name bound to
    one may be reached as the other); for a wildcard bind (0.0.0.0, ::) the loopback names,
    as the only names known to reach it -- the others come from ``allow_hosts`` (--allow-host
    NAME, answered on ``port``, or NAME:PORT, e.g. a proxy's). A browser omits the port 80
    from Host, so on port 80 each name is answered without it too.

    An attacker's DNS name pointing at us (DNS rebinding) is in none of these.
    """
    names = {host, bound_address}
    address = ipaddress.ip_address(bound_address.split("%")[0])
    if address.is_loopback or address.is_unspecified:
        names |= {"localhost", "127.0.0.1", "::1"}
    authorities = set()
    for name in names:
        authorities.add(_authority(name, port))
        if port == 80:
            authorities.add(_authority(name, port)[: -len(":80")])
    for name, own_port in parse_allow_hosts(allow_hosts):
        authorities.add(_authority(name, own_port or port))
        if (own_port or port) == 80:
            authorities.add(_authority(name, 80)[: -len(":80")])
    return tuple(sorted(authorities))


# Datasette's pages run inline scripts of its own templates (the SQL editor's set-up, the
# menus' closing, the table page's DATASETTE_ALLOW_FACET), which a plain script-src 'self'
# blocks: content_security_policy() allows exactly those by their sha256, so any other
# inline script -- one that hostile text could smuggle into a page -- does not run.
# Styles cannot be held so tight: Datasette writes per-page <style> blocks (a CSS rule per
# column name, for narrow screens) and style="" attributes (each database's colour), so
# style-src needs 'unsafe-inline'; what values a page shows is escaped HTML, so text cannot
# open a style element or attribute of its own. Images: Datasette's CSS draws some as
# data: URLs. Nothing is fetched from elsewhere, framed, or posted elsewhere.
_CSP_TEMPLATE = (
    "default-src 'none'; script-src 'self' {scripts}; style-src 'self' 'unsafe-inline'; "
    "img-src 'self' data:; font-src 'self'; connect-src 'self'; form-action 'self'; "
    "base-uri 'none'; frame-ancestors 'none'"
)

# The values Datasette renders into its inline scripts (DATASETTE_ALLOW_FACET).
_INLINE_SCRIPT_CONTEXTS = ({"datasette_allow_facet": "true"}, {"datasette_allow_facet": "false"})


def datasette_inline_scripts() -> set[str]:
    """The text of every inline ``<script>`` in Datasette's own templates, as its pages
    carry it: literal ones as written, ones with Jinja in them rendered with the values
    Datasette gives them (:data:`_INLINE_SCRIPT_CONTEXTS`; one needing anything else, a
    plugin's body script, is left out and blocked)."""
    import datasette
    import jinja2

    environment = jinja2.Environment(autoescape=True, undefined=jinja2.StrictUndefined)
    scripts = set()
    for template in sorted((Path(datasette.__file__).parent / "templates").rglob("*.html")):
        text = template.read_text(encoding="utf-8")
        for found in re.finditer(r"<script(?P<attributes>[^>]*)>(?P<body>.*?)</script>", text, re.S):
            if "src=" in found.group("attributes") or not found.group("body").strip():
                continue
            body = found.group("body")
            if "{{" not in body and "{%" not in body:
                scripts.add(body)
                continue
            for context in _INLINE_SCRIPT_CONTEXTS:
                try:
                    scripts.add(environment.from_string(body).render(context))
                except jinja2.UndefinedError:
                    pass
    return scripts


@functools.lru_cache(maxsize=1)
def content_security_policy() -> str:
    hashes = sorted(
        "'sha256-" + base64.b64encode(hashlib.sha256(script.encode("utf-8")).digest()).decode() + "'"
        for script in datasette_inline_scripts()
    )
    return _CSP_TEMPLATE.format(scripts=" ".join(hashes))


def security_headers() -> list[tuple[bytes, bytes]]:
    """The headers of every answer (where Datasette has not set one of them itself)."""
    return [
        (b"content-security-policy", content_security_policy().encode()),
        (b"x-content-type-options", b"nosniff"),
        (b"referrer-policy", b"no-referrer"),
        (b"x-frame-options", b"DENY"),
        # Another origin's page cannot load our JSON as a script or image either.
        (b"cross-origin-resource-policy", b"same-origin"),
    ]


class HostGuard:
    """ASGI middleware: answers only requests whose one Host header is one of ``hosts``
    (:func:`answered_hosts`, compared without case); anything else, or no Host, is a 403
    with a short plain-text body. Adds :func:`security_headers` to every answer."""

    def __init__(self, app, hosts: Iterable[str]):
        self.app = app
        self.hosts = frozenset(host.lower() for host in hosts)
        self.headers = security_headers()
        self.refusal = (
            "Forbidden: this bedrock-sql serve answers only requests for "
            + ", ".join(sorted(self.hosts))
            + " (the Host header is checked, against DNS rebinding).\n"
        ).encode()

    def allows(self, scope) -> bool:
        hosts = [value for key, value in scope.get("headers", ()) if key.lower() == b"host"]
        return len(hosts) == 1 and hosts[0].decode("latin-1").lower() in self.hosts

    async def __call__(self, scope, receive, send):
        if scope["type"] not in ("http", "websocket"):  # lifespan
            return await self.app(scope, receive, send)
        if not self.allows(scope):
            if scope["type"] == "websocket":  # Datasette has none; refused all the same
                await send({"type": "websocket.close", "code": 1008})
                return
            await send({
                "type": "http.response.start",
                "status": 403,
                "headers": [
                    (b"content-type", b"text/plain; charset=utf-8"),
                    (b"content-length", str(len(self.refusal)).encode()),
                    *self.headers,
                ],
            })
            await send({"type": "http.response.body", "body": self.refusal})
            return

        async def send_with_headers(message):
            if message["type"] == "http.response.start":
                present = {key.lower() for key, _value in message.get("headers", ())}
                extra = [(key, value) for key, value in self.headers if key not in present]
                message = dict(message, headers=[*message.get("headers", ()), *extra])
            await send(message)

        await self.app(scope, receive, send_with_headers)


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


def run_server(datasette, sock: socket.socket, hosts: Iterable[str]) -> None:
    """Serve ``datasette`` on the listening ``sock`` until Ctrl-C (uvicorn, in this process),
    answering only requests for ``hosts`` (:class:`HostGuard`).

    uvicorn shuts down cleanly on Ctrl-C and then raises the signal again, which reaches
    the CLI as KeyboardInterrupt: exit 130, as every command that Ctrl-C stops.
    """
    _Datasette, uvicorn = load_datasette()
    # uvicorn's own Server header names it; proxy headers could not change Host anyway.
    config = uvicorn.Config(HostGuard(datasette.app(), hosts), lifespan="on", log_level="warning",
                            server_header=False, proxy_headers=False)
    uvicorn.Server(config).run(sockets=[sock])


def serve(
    db: str | os.PathLike,
    *,
    host: str,
    port: int,
    query_dirs: Iterable[str] = (),
    allow_hosts: Iterable[str] = (),
    echo: Callable[[str], None],
) -> None:
    """Serve the snapshot ``db`` read-only with Datasette on ``host``:``port`` until Ctrl-C,
    answering requests for its own address and ``allow_hosts`` (:func:`answered_hosts`)."""
    parse_allow_hosts(allow_hosts)  # a bad --allow-host is refused before any work
    served = build_datasette(db, query_dirs)
    asyncio.run(check_queries(served))
    sock = listen(host, port)
    try:
        bound_address, bound_port = sock.getsockname()[:2]
        hosts = answered_hosts(host, bound_address, bound_port, allow_hosts)
        for note in served.notes:
            echo(f"bedrock-sql: note: {note}")
        if host not in _LOOPBACK:
            echo(f"bedrock-sql: warning: listening on {host}: anyone who can reach port {bound_port} can read "
                 "the snapshot (Datasette asks for no login)")
        if not ipaddress.ip_address(bound_address.split("%")[0]).is_loopback:
            echo(f"bedrock-sql: note: answering only requests for {', '.join(hosts)} (--allow-host NAME adds one)")
        echo(f"bedrock-sql: serving {db} read-only at {url(host, bound_port, served.database)} "
             f"({len(served.queries)} canned queries); Ctrl-C stops")
        run_server(served.datasette, sock, hosts)
    finally:
        sock.close()
