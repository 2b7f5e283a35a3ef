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
    assert (code, err) == (2, "bedrock-sql: error: serve needs Datasette: pip install 'bedrock-sql[serve]'\n")


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
    monkeypatch.setattr(serve, "run_server", lambda datasette, sock: bound.append(sock.getsockname()))
    code, err = run_main(["--db", str(demo_db), "serve", "--port", "0"], capsys)
    assert code == 0
    (host, port), = bound
    assert host == "127.0.0.1"
    assert f"serving {demo_db} read-only at http://127.0.0.1:{port}/demo" in err
    assert "warning" not in err


def test_another_host_is_served_with_a_warning(demo_db: Path, monkeypatch, capsys) -> None:
    bound = []
    monkeypatch.setattr(serve, "run_server", lambda datasette, sock: bound.append(sock.getsockname()))
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
    """``bedrock-sql serve --port 0`` in a subprocess; ``url`` is the database's page."""

    def __init__(self, db: Path):
        self.process = start_cli(["--db", str(db), "serve", "--port", "0"], cwd=db.parent, env=cli_env())
        self.stderr_lines = []
        for line in self.process.stderr:  # blocks until the line comes (or the process ends)
            self.stderr_lines.append(line)
            found = re.search(r"read-only at (http://127\.0\.0\.1:\d+/\S+) ", line)
            if found:
                self.url = found.group(1)
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
