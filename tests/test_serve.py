"""bedrock-sql serve: the snapshot in Datasette, read-only.

Over HTTP with Datasette's own test client (in process), and as the real CLI: a server on
a free loopback port in a subprocess (Ctrl-C, and once in headless Chromium).
"""

from __future__ import annotations

import asyncio
import hashlib
import io
import json
import re
import shutil
import signal
import socket
import sqlite3
import subprocess
import sys
import urllib.parse
import urllib.request
from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path

import pytest
from markupsafe import escape  # how Datasette's (Jinja's) templates escape text

from bedrock_sql import cli, serve
from bedrock_sql.catalog import table_catalog
from bedrock_sql.controls import bundled_controls, prepare_control, snapshot_run, worst_first
from bedrock_sql.demo import run_demo
from bedrock_sql.errors import UserError
from bedrock_sql.providers import TABLES
from bedrock_sql.sql import run_query, snapshot_connection
from browser import browser, page  # noqa: F401  (fixtures)
from e2e_helpers import cli_env, describe, run_cli, start_cli
from snapshot_builder import SnapshotBuilder

CONTROL_IDS = [c.id for c in bundled_controls()]
EXAMPLES = serve.example_queries()
SEED = "bedrock_custom_model_encrypted_with_cmk"


@pytest.fixture(scope="module")
def demo_db(tmp_path_factory) -> Path:
    db = tmp_path_factory.mktemp("serve") / "demo.db"
    assert run_demo(db, io.StringIO()) in (0, 1, 2)
    return db


@pytest.fixture(scope="module")
def served(demo_db: Path) -> serve.ServedSnapshot:
    return serve.build_datasette(demo_db)


def get(served: serve.ServedSnapshot, path: str):
    """GET ``path`` from the served Datasette through its in-process client."""
    return asyncio.run(served.datasette.client.get(path))


def get_json(served: serve.ServedSnapshot, path: str) -> dict:
    response = get(served, path)
    assert response.status_code == 200, response.text[:500]
    return response.json()


def fingerprint(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


@pytest.fixture(scope="module")
def check_rows(demo_db: Path) -> dict[str, list[dict]]:
    """`bedrock-sql check --output json` on the demo snapshot, by control, in check's order."""
    result = run_cli(["--db", str(demo_db), "check", "--output", "json"], cwd=demo_db.parent, env=cli_env())
    assert result.returncode in (0, 1, 2) and result.stdout.startswith("["), describe(result)
    by_control = defaultdict(list)
    for finding in json.loads(result.stdout):
        by_control[finding["control_id"]].append(finding)
    return by_control


@pytest.fixture(scope="module")
def worst_first_order(demo_db: Path) -> dict[str, list[tuple[str, str]]]:
    """(resource, status) of each control's findings in the order check's table shows them."""
    with snapshot_connection(demo_db) as connection:
        run = snapshot_run(connection)
        return {
            control.id: [(f.resource, f.status) for f in worst_first(connection, prepare_control(connection, control), run)]
            for control in bundled_controls()
        }


# --- what is served ----------------------------------------------------------------------------


def test_every_table_and_view_is_listed_with_its_description(served: serve.ServedSnapshot) -> None:
    database = get_json(served, f"/{served.database}.json")
    listed = {t["name"] for t in database["tables"]} | {v["name"] for v in database["views"]}
    assert set(TABLES) <= listed
    assert {"bedrock_sql_errors", "bedrock_sql_runs", "bedrock_model_encryption", "bedrock_model"} <= listed

    catalog = table_catalog()
    for name in ("aws_bedrock_custom_model", "bedrock_model_encryption"):
        description, columns = catalog[name]
        page_html = get(served, f"/{served.database}/{name}").text
        assert escape(description) in page_html, name
        column = next(c for c in columns if c.name in ("model_kms_key_arn", "in_use"))
        assert escape(column.description) in page_html, (name, column.name)


def test_every_control_is_a_canned_query_with_the_rows_of_check(served, check_rows, worst_first_order) -> None:
    assert set(check_rows) == set(CONTROL_IDS)  # the demo gives every control some rows
    controls = {c.id: c for c in bundled_controls()}
    for control_id in CONTROL_IDS:
        answer = get_json(served, f"/{served.database}/{control_id}.json?_shape=objects")
        assert answer["truncated"] is False, control_id
        rows = answer["rows"]
        assert rows, control_id
        columns = list(rows[0])
        assert columns[:5] == ["resource", "status", "reason", "account_id", "region"], control_id
        # The rows of check, with the same values in every column the control gives...
        expected = [{column: finding[column] for column in columns} for finding in check_rows[control_id]]
        assert sorted(rows, key=json.dumps) == sorted(expected, key=json.dumps), control_id
        # ... in the order of check's table: worst first.
        assert [(row["resource"], row["status"]) for row in rows] == worst_first_order[control_id], control_id
        # Titled and described by the control's header.
        page_html = get(served, f"/{served.database}/{control_id}").text
        assert escape(controls[control_id].title) in page_html, control_id


def test_check_order_is_worst_first(served) -> None:
    # The demo's seed control has alarms and oks: the canned query shows the alarms first.
    rows = get_json(served, f"/{served.database}/{SEED}.json?_shape=objects")["rows"]
    statuses = [row["status"] for row in rows]
    assert {"alarm", "ok"} <= set(statuses)
    assert statuses == sorted(statuses, key=["error", "alarm", "info", "skip", "ok"].index)


@pytest.mark.parametrize("example", EXAMPLES, ids=[e.name for e in EXAMPLES])
def test_each_example_is_a_canned_query_that_runs(served, demo_db: Path, example: serve.CannedQuery) -> None:
    answer = get_json(served, f"/{served.database}/{example.name}.json?_shape=objects")
    with snapshot_connection(demo_db) as connection:
        result = run_query(connection, example.sql)
        expected = list(result.rows)
    assert len(answer["rows"]) == len(expected)
    if answer["rows"]:
        assert list(answer["rows"][0]) == result.columns
    assert example.title and not example.title.startswith("--")


def test_the_examples_travel_in_the_package() -> None:
    repository_examples = sorted(p.stem for p in (Path(__file__).resolve().parents[1] / "examples").glob("*.sql"))
    assert [e.name for e in EXAMPLES] == repository_examples


def test_long_reasons_are_not_cut(served) -> None:
    # Datasette cuts cells at 2,048 characters unless told not to.
    assert served.datasette.setting("truncate_cells_html") == 0
    answer = get_json(served, f"/{served.database}.json?sql=select+printf('%25.3000c',+'x')+||+'end.'+as+reason&_shape=array")
    long_reason = answer[0]["reason"]
    page_html = get(served, f"/{served.database}?sql=select+printf('%25.3000c',+'x')+||+'end.'+as+reason").text
    assert long_reason in page_html


def test_the_sql_functions_are_bedrock_sqls_own(served) -> None:
    sql = ("select policy_is_public('{\"Statement\":[{\"Effect\":\"Allow\",\"Principal\":\"*\","
           "\"Action\":\"kms:*\",\"Resource\":\"*\"}]}') as public, days_between('2026-01-01T00:00:00Z', "
           "'2026-01-03T12:00:00Z') as days, iso_time('2026-01-01T00:00:00Z', '+1 day') as later")
    rows = get_json(served, f"/{served.database}.json?" + urllib.parse.urlencode({"sql": sql, "_shape": "array"}))
    assert rows == [{"public": 1, "days": 2.5, "later": "2026-01-02T00:00:00Z"}]


def test_your_own_controls_are_served_too(demo_db: Path, tmp_path: Path) -> None:
    (tmp_path / "mine.sql").write_text(
        "-- id: my_models_named\n-- title: My models have names\n-- severity: low\n"
        "-- description: Every model has a name.\n"
        "SELECT arn AS resource, CASE WHEN model_name <> '' THEN 'ok' ELSE 'alarm' END AS status,\n"
        "       model_name || ' has a name.' AS reason, account_id, region FROM bedrock_model;\n"
    )
    mine = serve.build_datasette(demo_db, [str(tmp_path)])
    rows = get_json(mine, f"/{mine.database}/my_models_named.json?_shape=array")
    assert rows and {row["status"] for row in rows} == {"ok"}


# --- read-only ---------------------------------------------------------------------------------


def test_nothing_can_write_the_snapshot(served, demo_db: Path, tmp_path: Path) -> None:
    before = fingerprint(demo_db)
    # SQL typed into the page.
    for sql in ("DELETE FROM aws_kms_key", "UPDATE aws_bedrock_custom_model SET model_kms_key_arn = 'x'",
                "DROP TABLE bedrock_sql_runs", "select 1; delete from aws_kms_key", "PRAGMA user_version = 7"):
        response = get(served, f"/{served.database}.json?" + urllib.parse.urlencode({"sql": sql}))
        assert response.status_code == 400 and response.json()["ok"] is False, sql
    # A canned query is run on a GET; a POST (what a write query takes) is refused.
    assert get(served, f"/{served.database}/{SEED}.json").status_code == 200
    posted = asyncio.run(served.datasette.client.post(f"/{served.database}/{SEED}", data={"x": "1"}))
    assert posted.status_code >= 400
    # Below Datasette's checks, its connection itself cannot write the file.
    database = served.datasette.get_database(served.database)
    assert database.is_mutable is False
    with pytest.raises(sqlite3.OperationalError, match="readonly"):
        asyncio.run(database.execute_fn(lambda conn: conn.execute("DELETE FROM aws_kms_key")))
    # A control that writes is refused before anything is served.
    (tmp_path / "writes.sql").write_text(
        "-- id: sneaky\n-- title: t\n-- severity: low\n-- description: d\nDELETE FROM aws_kms_key;\n"
    )
    with pytest.raises(UserError, match="read-only"):
        serve.build_datasette(demo_db, [str(tmp_path)])
    assert fingerprint(demo_db) == before
    assert sorted(p.name for p in demo_db.parent.iterdir() if p.name.startswith(demo_db.name)) == [demo_db.name]


# --- snapshots of older versions ----------------------------------------------------------------


def test_an_older_snapshot_gets_the_views_and_answers_error_for_tables_it_lacks(tmp_path: Path) -> None:
    snap = SnapshotBuilder(tmp_path / "old.db")  # no views in the file, as before collect wrote them
    snap.add_model("plain")
    snap.add_run()
    connection = sqlite3.connect(snap.path)  # and written before these tables were collected
    connection.execute("DROP TABLE aws_bedrock_custom_model_deployment")
    connection.execute("DROP TABLE aws_bedrock_imported_model")
    connection.commit()
    connection.close()
    old = serve.build_datasette(snap.path)
    assert any("older bedrock-sql" in note for note in old.notes)
    # Every control gives what it gives through apsw, where check runs it (TEMP stand-ins included).
    with snapshot_connection(snap.path) as connection:
        expected = {}
        for control in bundled_controls():
            result = run_query(connection, serve.control_query(prepare_control(connection, control)).sql)
            expected[control.id] = [dict(zip(result.columns, row)) for row in result.rows]
    served_rows = {control_id: get_json(old, f"/{old.database}/{control_id}.json?_shape=array") for control_id in expected}
    assert served_rows == expected
    imported = served_rows["bedrock_imported_model_encrypted_with_cmk"]
    assert [row["status"] for row in imported] == ["error"]
    assert "did not collect aws_bedrock_imported_model" in imported[0]["reason"]
    assert "whether it is in use is unknown" in served_rows[SEED][0]["reason"]
    views = get_json(old, f"/{old.database}.json?sql=select+count(*)+as+n+from+bedrock_model_encryption&_shape=array")
    assert views == [{"n": 1}]


def test_a_query_pythons_sqlite_cannot_compile_is_refused_at_start(served, monkeypatch) -> None:
    from bedrock_sql import datasette_plugin

    # As if Python's SQLite lacked what the controls use: here, bedrock-sql's functions.
    monkeypatch.setattr(datasette_plugin, "FUNCTIONS", {})
    fresh = serve.build_datasette(served.datasette.get_database(served.database).path)
    with pytest.raises(UserError, match=r"cannot run in Datasette: no such function: .*Python's sqlite3 module has SQLite"):
        asyncio.run(serve.check_queries(fresh))


# --- the command ------------------------------------------------------------------------------


def run_main(args: list[str], capsys) -> tuple[int, str]:
    with pytest.raises(SystemExit) as exit_:
        cli.main(args)
    return exit_.value.code, capsys.readouterr().err


def test_missing_datasette_is_one_line(demo_db: Path, monkeypatch, capsys) -> None:
    monkeypatch.setitem(sys.modules, "datasette.app", None)  # import datasette.app fails
    code, err = run_main(["--db", str(demo_db), "serve"], capsys)
    assert (code, err) == (2, "bedrock-sql: error: serve needs Datasette: pip install 'bedrock-sql[serve]' "
                              "(from a checkout of bedrock-sql: pip install '.[serve]')\n")


@pytest.mark.parametrize("content", [b"", b"not a database at all", b"SQLite format 3\x00" + bytes(200)])
def test_a_file_that_is_no_snapshot_is_refused(tmp_path: Path, content: bytes) -> None:
    path = tmp_path / "other.db"
    path.write_bytes(content)
    result = run_cli(["--db", str(path), "serve", "--port", "0"], cwd=tmp_path, env=cli_env(), timeout=60)
    assert result.returncode == 2, describe(result)
    assert re.fullmatch(r"bedrock-sql: error: \S*other.db is not a readable bedrock-sql snapshot \(.*\n", result.stderr)
    assert path.read_bytes() == content


@pytest.mark.parametrize("name, problem", [
    ("_internal.db", "a name Datasette keeps for itself"),  # its own database's name
    ("what?.db", "Datasette does not allow ?, # or %"),  # it puts the path in a URI unquoted
])
def test_a_file_datasette_cannot_serve_as_it_is_is_refused(demo_db: Path, tmp_path: Path, capsys, name, problem) -> None:
    db = tmp_path / name
    shutil.copyfile(demo_db, db)
    code, err = run_main(["--db", str(db), "serve", "--port", "0"], capsys)
    assert code == 2 and err.startswith("bedrock-sql: error: serve cannot ") and err.count("\n") == 1, err
    assert problem in err


def test_binds_the_loopback_by_default(demo_db: Path, monkeypatch, capsys) -> None:
    bound = []
    monkeypatch.setattr(serve, "run_server", lambda datasette, sock, hosts: bound.append(sock.getsockname()))
    code, err = run_main(["--db", str(demo_db), "serve", "--port", "0"], capsys)
    assert code == 0
    (host, port), = bound
    assert host == "127.0.0.1"
    assert f"serving {demo_db} read-only at http://127.0.0.1:{port}/demo" in err
    assert "warning" not in err


def test_another_host_is_served_with_a_warning(demo_db: Path, monkeypatch, capsys) -> None:
    bound = []
    monkeypatch.setattr(serve, "run_server", lambda datasette, sock, hosts: bound.append(sock.getsockname()))
    code, err = run_main(["--db", str(demo_db), "serve", "--host", "0.0.0.0", "--port", "0"], capsys)
    assert code == 0 and bound[0][0] == "0.0.0.0"
    assert "bedrock-sql: warning: listening on 0.0.0.0: anyone who can reach port" in err


def test_a_port_in_use_is_one_line(demo_db: Path, capsys) -> None:
    with socket.create_server(("127.0.0.1", 0)) as taken:
        port = taken.getsockname()[1]
        code, err = run_main(["--db", str(demo_db), "serve", "--port", str(port)], capsys)
    assert (code, err) == (2, f"bedrock-sql: error: cannot listen on 127.0.0.1:{port}: Address already in use\n")


# --- the real server ---------------------------------------------------------------------------


class RealServer:
    """``bedrock-sql serve --port 0 [ARGS]`` in a subprocess; ``url`` is the database's page
    (as serve prints it), ``port`` the port it took."""

    def __init__(self, db: Path, *args: str):
        self.process = start_cli(["--db", str(db), "serve", "--port", "0", *args], cwd=db.parent, env=cli_env())
        self.stderr_lines = []
        for line in self.process.stderr:  # blocks until the line comes (or the process ends)
            self.stderr_lines.append(line)
            found = re.search(r"read-only at (http://(?:\[[0-9a-f:]+\]|[0-9.]+):(\d+)/\S+) ", line)
            if found:
                self.url, self.port = found.group(1), int(found.group(2))
                break
        else:
            raise AssertionError(f"serve did not start: {''.join(self.stderr_lines)}")

    def stop(self) -> tuple[int, str]:
        """Ctrl-C, then its exit code and what else it said on stderr."""
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGINT)
        try:
            _out, err = self.process.communicate(timeout=60)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.communicate()
            raise AssertionError("serve did not stop on Ctrl-C")
        return self.process.returncode, "".join(self.stderr_lines) + err


@pytest.fixture
def real_server(demo_db: Path):
    server = RealServer(demo_db)
    try:
        yield server
    finally:
        server.stop()


def test_ctrl_c_stops_the_real_server_cleanly(real_server: RealServer, demo_db: Path) -> None:
    before = fingerprint(demo_db)
    with urllib.request.urlopen(f"{real_server.url}/{SEED}.json?_shape=array", timeout=60) as response:
        assert any(row["status"] == "alarm" for row in json.load(response))
    code, err = real_server.stop()
    assert code in (0, 130), err
    assert "Traceback" not in err
    assert fingerprint(demo_db) == before


def test_in_chromium_a_control_page_shows_its_rows(real_server: RealServer, page, check_rows, tmp_path: Path) -> None:  # noqa: F811
    base = real_server.url.rsplit("/", 1)[0]
    page.goto(base + "/")
    page.get_by_role("link", name="demo", exact=True).first.click()
    page.wait_for_url(real_server.url)
    page.get_by_role("link", name=next(c.title for c in bundled_controls() if c.id == SEED)).click()
    page.wait_for_url(f"{real_server.url}/{SEED}")
    cells = page.locator("table.rows-and-columns tbody tr td.col-reason")
    expected = check_rows[SEED]
    assert cells.count() == len(expected)
    assert cells.all_inner_texts() == [finding["reason"] for finding in expected]
    statuses = page.locator("table.rows-and-columns tbody tr td.col-status").all_inner_texts()
    assert statuses == [finding["status"] for finding in expected]
    page.screenshot(path=str(tmp_path / "serve-control.png"), full_page=True)


# --- only its own address: the Host header (DNS rebinding) ------------------------------------


@dataclass
class Answer:
    status: int
    headers: dict[str, list[str]]
    body: bytes

    def header(self, name: str) -> str | None:
        values = self.headers.get(name.lower())
        return values[0] if values else None


def raw_get(port: int, path: str, host_lines: list[str], *, version: str = "HTTP/1.1",
            address: str = "127.0.0.1") -> Answer:
    """GET ``path`` with exactly the Host lines given (none, one, several), as a browser
    under DNS rebinding sends them: to our address, with the attacker's name."""
    request = f"GET {path} {version}\r\n" + "".join(f"{line}\r\n" for line in host_lines) + "Connection: close\r\n\r\n"
    with socket.create_connection((address, port), timeout=60) as connection:
        connection.sendall(request.encode("latin-1"))
        data = b""
        while chunk := connection.recv(65536):
            data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    status_line, *header_lines = head.decode("latin-1").split("\r\n")
    headers: dict[str, list[str]] = defaultdict(list)
    for line in header_lines:
        name, _, value = line.partition(":")
        headers[name.strip().lower()].append(value.strip())
    if headers.get("transfer-encoding") == ["chunked"]:
        body = _unchunk(body)
    return Answer(int(status_line.split()[1]), dict(headers), body)


def _unchunk(body: bytes) -> bytes:
    out = b""
    while body:
        size_line, _, body = body.partition(b"\r\n")
        size = int(size_line.split(b";")[0], 16)
        if size == 0:
            break
        out, body = out + body[:size], body[size + 2:]
    return out


@pytest.fixture(scope="module")
def guarded(demo_db: Path):
    server = RealServer(demo_db)
    try:
        yield server
    finally:
        server.stop()


def free_port() -> int:
    with socket.create_server(("127.0.0.1", 0)) as spare:
        return spare.getsockname()[1]


def reading_paths(database: str) -> list[str]:
    """Pages and JSON that give the snapshot away: what a rebinding page would fetch."""
    sql = urllib.parse.urlencode({"sql": "select arn, policy from aws_kms_key"})
    return ["/", f"/{database}", f"/{database}.json?{sql}", f"/{database}?{sql}", f"/{database}/aws_kms_key.json",
            f"/{database}/aws_kms_key.csv", f"/{database}/{SEED}.json", f"/{database}/aws_kms_key/1.json",
            "/-/versions.json", "/-/static/app.css"]


def test_the_real_server_answers_its_own_host(guarded: RealServer, demo_db: Path) -> None:
    database = guarded.url.rsplit("/", 1)[1]
    for host in (f"127.0.0.1:{guarded.port}", f"localhost:{guarded.port}", f"LOCALHOST:{guarded.port}"):
        for path in reading_paths(database):
            answer = raw_get(guarded.port, path, [f"Host: {host}"])
            assert answer.status == 200, (host, path, answer.status, answer.body[:300])
    answer = raw_get(guarded.port, f"/{database}.json?" + urllib.parse.urlencode(
        {"sql": "select arn from aws_kms_key", "_shape": "array"}), [f"Host: 127.0.0.1:{guarded.port}"])
    assert json.loads(answer.body) and all(row["arn"].startswith("arn:aws:kms:") for row in json.loads(answer.body))


def hostile_hosts(port: int) -> list[list[str]]:
    other = free_port()
    return [
        ["Host: evil.example"],
        [f"Host: evil.example:{port}"],
        [f"Host: 127.0.0.1:{other}"],
        [f"Host: localhost:{other}"],
        ["Host: 127.0.0.1"],  # no port: port 80's, not ours
        [f"Host: 127.0.0.1:{port}.evil.example"],
        [f"Host: localhost.evil.example:{port}"],
        [f"Host: [::1]:{other}"],
        [f"Host: 127.0.0.1:{port}", "Host: evil.example"],  # two Hosts: which would a proxy believe?
        ["Host: "],
    ]


def test_the_real_server_refuses_any_other_host(guarded: RealServer) -> None:
    database = guarded.url.rsplit("/", 1)[1]
    for host_lines in hostile_hosts(guarded.port):
        for path in reading_paths(database):
            answer = raw_get(guarded.port, path, host_lines)
            assert answer.status in (400, 403), (host_lines, path, answer.status)  # h11 itself refuses some
            assert b"arn:aws" not in answer.body and b"Statement" not in answer.body, (host_lines, path)
            if answer.status == 403:
                assert answer.header("content-type") == "text/plain; charset=utf-8"
                assert answer.body.count(b"\n") == 1 and len(answer.body) < 300, answer.body
                assert b"Host header" in answer.body
    # Almost all of them are refused by serve itself, not by the HTTP parser.
    statuses = [raw_get(guarded.port, "/", lines).status for lines in hostile_hosts(guarded.port)]
    assert statuses.count(403) >= len(statuses) - 2, statuses


def test_the_real_server_refuses_a_request_without_host(guarded: RealServer) -> None:
    database = guarded.url.rsplit("/", 1)[1]
    for path in reading_paths(database):
        # HTTP/1.0 may omit Host: serve refuses it.
        answer = raw_get(guarded.port, path, [], version="HTTP/1.0")
        assert answer.status == 403 and b"arn:aws" not in answer.body, (path, answer.status)
        # HTTP/1.1 must send one: uvicorn's parser refuses it first.
        answer = raw_get(guarded.port, path, [])
        assert answer.status in (400, 403) and b"arn:aws" not in answer.body, (path, answer.status)


SECURITY_HEADERS = {
    "x-content-type-options": "nosniff",
    "referrer-policy": "no-referrer",
    "x-frame-options": "DENY",
    "cross-origin-resource-policy": "same-origin",
}


def test_every_answer_carries_the_security_headers(guarded: RealServer) -> None:
    database = guarded.url.rsplit("/", 1)[1]
    own = [f"Host: 127.0.0.1:{guarded.port}"]
    answers = [raw_get(guarded.port, path, own) for path in reading_paths(database)]
    answers += [raw_get(guarded.port, "/nope", own), raw_get(guarded.port, "/", ["Host: evil.example"])]
    assert {a.status for a in answers} == {200, 404, 403}
    for answer in answers:
        for name, value in SECURITY_HEADERS.items():
            assert answer.headers.get(name) == [value], (answer.status, name, answer.headers)
        csp = answer.header("content-security-policy")
        assert csp == serve.content_security_policy()
        directives = dict(part.strip().split(" ", 1) for part in csp.split(";"))
        assert directives["default-src"] == "'none'" and directives["frame-ancestors"] == "'none'"
        assert directives["base-uri"] == "'none'" and directives["form-action"] == "'self'"
        assert "'unsafe-inline'" not in directives["script-src"] and "'unsafe-eval'" not in directives["script-src"]
        assert all(source == "'self'" or source.startswith("'sha256-") for source in directives["script-src"].split())


def test_datasettes_own_pages_run_under_the_policy_in_chromium(guarded: RealServer, page) -> None:  # noqa: F811
    """Datasette's inline scripts (allowed by hash) run, nothing on its pages breaks the
    policy, and any other inline script is blocked."""
    violations: list[str] = []
    page.on("console", lambda message: violations.append(f"{page.url}: {message.text}")
            if "Content Security Policy" in message.text or message.text.startswith("CSP ") else None)
    page.add_init_script("document.addEventListener('securitypolicyviolation', e => "
                         "console.log('CSP ' + e.violatedDirective + ' ' + e.blockedURI))")
    base, database = guarded.url.rsplit("/", 1)
    pages = ["/", f"/{database}", f"/{database}/aws_kms_key", f"/{database}/aws_kms_key?_facet=region",
             f"/{database}/aws_kms_key/1", f"/{database}/{SEED}", f"/{database}?sql=select+arn+from+aws_kms_key",
             f"/{database}?sql=select+nonsense", "/-/versions", "/nope"]
    for path in pages:
        page.goto(base + path)
        page.wait_for_load_state("load")
    assert violations == []
    # The inline scripts did run: the SQL editor is CodeMirror, the table page's flag is set.
    page.goto(f"{guarded.url}?sql=select+1")
    assert page.locator(".CodeMirror").count() == 1
    page.goto(f"{guarded.url}/aws_kms_key")
    assert page.evaluate("typeof DATASETTE_ALLOW_FACET") == "boolean"
    # A script that is not one of Datasette's does not run.
    ran = page.evaluate("""() => new Promise(resolve => {
        document.addEventListener('securitypolicyviolation', () => resolve(window.injected === true), {once: true});
        const script = document.createElement('script');
        script.textContent = 'window.injected = true';
        document.body.appendChild(script);
    })""")
    assert ran is False
    assert any("script-src" in v for v in violations)


def test_the_hosts_serve_answers() -> None:
    assert serve.answered_hosts("127.0.0.1", "127.0.0.1", 8001) == ("127.0.0.1:8001", "[::1]:8001", "localhost:8001")
    assert serve.answered_hosts("localhost", "127.0.0.1", 8001) == ("127.0.0.1:8001", "[::1]:8001", "localhost:8001")
    assert serve.answered_hosts("::1", "::1", 8001) == ("127.0.0.1:8001", "[::1]:8001", "localhost:8001")
    # A wildcard bind: the loopback names and what --allow-host names (its own port, or the one given).
    assert serve.answered_hosts("0.0.0.0", "0.0.0.0", 8001, ["Audit.Example.com", "proxy.example:443", "[fd00::5]:9"]) == (
        "0.0.0.0:8001", "127.0.0.1:8001", "[::1]:8001", "[fd00::5]:9", "audit.example.com:8001", "localhost:8001",
        "proxy.example:443")
    # A private address: itself only.
    assert serve.answered_hosts("10.1.2.3", "10.1.2.3", 8001) == ("10.1.2.3:8001",)
    # Browsers leave out port 80.
    assert "localhost" in serve.answered_hosts("127.0.0.1", "127.0.0.1", 80)
    assert "evil.example" not in " ".join(serve.answered_hosts("0.0.0.0", "0.0.0.0", 80, ["audit.example"]))


@pytest.mark.parametrize("value", ["*", "evil example", "http://x", "x:0", "x:99999", "[zz]:80", "a..b", "-x"])
def test_a_bad_allow_host_is_one_line(demo_db: Path, value: str, capsys) -> None:
    code, err = run_main(["--db", str(demo_db), "serve", "--port", "0", "--allow-host", value], capsys)
    assert code == 2 and err.count("\n") == 1 and "--allow-host" in err, err


def test_a_wildcard_bind_answers_the_names_given(demo_db: Path) -> None:
    server = RealServer(demo_db, "--host", "0.0.0.0", "--allow-host", "audit.example")
    try:
        said = "".join(server.stderr_lines)
        assert "answering only requests for" in said and f"audit.example:{server.port}" in said
        database = server.url.rsplit("/", 1)[1]
        path = f"/{database}.json?sql=select+1"
        assert raw_get(server.port, path, [f"Host: audit.example:{server.port}"]).status == 200
        assert raw_get(server.port, path, [f"Host: 127.0.0.1:{server.port}"]).status == 200
        assert raw_get(server.port, path, [f"Host: evil.example:{server.port}"]).status == 403
    finally:
        server.stop()


@pytest.mark.skipif(not socket.has_ipv6, reason="no IPv6")
def test_an_ipv6_loopback_bind_answers_its_bracketed_address(demo_db: Path) -> None:
    try:
        socket.create_server(("::1", 0), family=socket.AF_INET6).close()
    except OSError:
        pytest.skip("no IPv6 loopback here")
    server = RealServer(demo_db, "--host", "::1")
    try:
        assert server.url.startswith("http://[::1]:")
        database = server.url.rsplit("/", 1)[1]
        path = f"/{database}.json?sql=select+1"
        for host, status in ((f"[::1]:{server.port}", 200), (f"localhost:{server.port}", 200),
                             (f"evil.example:{server.port}", 403), ("[::1]", 403)):
            assert raw_get(server.port, path, [f"Host: {host}"], address="::1").status == status, host
    finally:
        server.stop()


def test_datasettes_connections_have_the_length_limit(served) -> None:
    response = get(served, f"/{served.database}.json?" + urllib.parse.urlencode({"sql": "select hex(zeroblob(4e8))"}))
    assert response.status_code == 400 and "string or blob too big" in response.json()["error"]
    assert get_json(served, f"/{served.database}.json?sql=select+length(zeroblob(1e7))+as+n&_shape=array") == [{"n": 10_000_000}]


def test_the_host_guard_in_process() -> None:
    """What the HTTP parser may already refuse (several Host headers, none) is refused by
    the guard itself too, and a refused request never reaches Datasette."""
    reached = []

    async def app(scope, receive, send):
        reached.append(scope["type"])
        await send({"type": "http.response.start", "status": 200, "headers": [(b"x-frame-options", b"SAMEORIGIN")]})
        await send({"type": "http.response.body", "body": b"snapshot"})

    guard = serve.HostGuard(app, ["127.0.0.1:8001", "localhost:8001"])

    def call(headers: list[tuple[bytes, bytes]], kind: str = "http") -> list[dict]:
        sent: list[dict] = []

        async def receive():
            return {"type": "http.request", "body": b""}

        async def send(message):
            sent.append(message)

        asyncio.run(guard({"type": kind, "headers": headers}, receive, send))
        return sent

    for headers in ([], [(b"host", b"evil.example:8001")], [(b"host", b"127.0.0.1:8001"), (b"host", b"evil.example")],
                    [(b"host", b"evil.example"), (b"host", b"127.0.0.1:8001")]):
        sent = call(headers)
        assert sent[0]["status"] == 403 and b"snapshot" not in sent[1]["body"], headers
    assert call([(b"host", b"evil.example")], "websocket") == [{"type": "websocket.close", "code": 1008}]
    assert reached == []
    sent = call([(b"Host", b"LocalHost:8001")])
    assert sent[0]["status"] == 200 and sent[1]["body"] == b"snapshot" and reached == ["http"]
    headers = dict(sent[0]["headers"])
    # Datasette's own header stays; the missing ones are added.
    assert headers[b"x-frame-options"] == b"SAMEORIGIN" and headers[b"x-content-type-options"] == b"nosniff"
    assert [key for key, _ in sent[0]["headers"]].count(b"x-frame-options") == 1
