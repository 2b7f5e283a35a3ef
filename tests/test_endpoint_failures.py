"""One line, exit 2: an endpoint that is not AWS (a web server's HTML page, a closed port)
never ends in a traceback or in exit 1 (which CI reads as "alarm"), whatever the command.

The CLI runs as a subprocess; the "endpoint" is a plain ``http.server`` in a thread of this
process, answering the same HTML page to every request.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from e2e_helpers import AwsProxy, AwsRequest, CannedResponse, cli_env, describe, run_cli
from snapshot_builder import ACCOUNT, REGION, SnapshotBuilder

CLOSED_PORT_URL = "http://127.0.0.1:9"  # discard: nothing listens, connections are refused
LOGIN_PAGE = b"<!DOCTYPE html><html><head><title>Sign in</title></head><body><h1>Corporate proxy</h1></body></html>"
KEY_ARN = f"arn:aws:kms:{REGION}:{ACCOUNT}:key/11111111-2222-3333-4444-555555555555"


def html_server(status: int) -> ThreadingHTTPServer:
    """A web server on 127.0.0.1 (port chosen by the system) answering ``status`` and an HTML page."""

    class Handler(BaseHTTPRequestHandler):
        def answer(self) -> None:
            self.rfile.read(int(self.headers.get("Content-Length") or 0))
            self.send_response(status)
            self.send_header("Content-Type", "text/html; charset=utf-8")
            self.send_header("Content-Length", str(len(LOGIN_PAGE)))
            self.end_headers()
            self.wfile.write(LOGIN_PAGE)

        do_GET = do_POST = do_PUT = do_DELETE = do_PATCH = answer

        def log_message(self, *args) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    return server


@pytest.fixture(params=["html-200", "html-404", "closed-port"])
def not_aws(request: pytest.FixtureRequest) -> Iterator[str]:
    """The URL of something that is not AWS."""
    if request.param == "closed-port":
        yield CLOSED_PORT_URL
        return
    server = html_server(200 if request.param == "html-200" else 404)
    thread = threading.Thread(target=server.serve_forever, name="not-aws", daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)


@pytest.fixture
def failing_model_snapshot(tmp_path: Path) -> Path:
    """A snapshot with one model on the Bedrock-owned key: something for remediate to fix."""
    builder = SnapshotBuilder(tmp_path / "bedrock.db")
    builder.add_model("orders-classifier")
    builder.add_job("orders-classifier-job", output_model_name="orders-classifier",
                    training_data_config={"s3Uri": "s3://orders-ml/train.jsonl"}, output_data_config={"s3Uri": "s3://orders-ml/out/"})
    builder.add_run()
    return builder.path


COMMANDS = {
    "collect": ["--db", "new.db", "collect", "--region", REGION],
    "query --live": ["query", "--live", "--region", REGION, "SELECT arn FROM aws_bedrock_custom_model"],
    "check --live": ["check", "--live", "--region", REGION],
    "remediate --apply": ["remediate", "--apply", "--yes", "--region", REGION, "--kms-key", KEY_ARN],
}


def assert_one_line(result, *, endpoint: str) -> str:
    assert result.returncode == 2, describe(result)
    assert "Traceback" not in result.stderr + result.stdout, describe(result)
    lines = result.stderr.splitlines()
    assert len(lines) == 1, describe(result)
    assert lines[0].startswith("bedrock-sql: error: "), describe(result)
    assert endpoint in lines[0], describe(result)  # the endpoint is the culprit: say which
    assert len(lines[0]) < 400 and "Corporate proxy" not in lines[0], lines[0]  # never the page itself
    return lines[0]


@pytest.mark.parametrize("command", COMMANDS)
def test_an_endpoint_that_is_not_aws_is_one_line(
    not_aws: str, command: str, failing_model_snapshot: Path, tmp_path: Path
) -> None:
    before = sorted(p.name for p in tmp_path.iterdir())
    # --endpoint-url for half of them, AWS_ENDPOINT_URL for the others: both are named.
    args = [*COMMANDS[command], "--endpoint-url", not_aws] if command in ("collect", "check --live") else COMMANDS[command]
    env = cli_env(None if "--endpoint-url" in args else not_aws)
    line = assert_one_line(run_cli(args, cwd=tmp_path, env=env, timeout=120), endpoint=not_aws)
    # Account resolution (STS) comes first: it is what fails, and the line says so.
    assert "GetCallerIdentity failed: " in line, line
    assert sorted(p.name for p in tmp_path.iterdir()) == before  # no snapshot, no partial file


def html_for(service: str):
    """A proxy rule: ``service``'s calls get a 200 HTML page; STS and the rest reach moto."""

    def rule(request: AwsRequest) -> CannedResponse | None:
        if request.service == service:
            return CannedResponse(200, LOGIN_PAGE, {"Content-Type": "text/html"})
        return None

    return rule


def test_remediate_apply_with_bedrock_answering_html(
    server_session, moto_url: str, failing_model_snapshot: Path, tmp_path: Path
) -> None:
    """Past STS and KMS: the first Bedrock call of --apply gets an HTML page. One line, exit 2."""
    key_arn = server_session.client("kms", endpoint_url=moto_url).create_key()["KeyMetadata"]["Arn"]
    args = [arg if arg != KEY_ARN else key_arn for arg in COMMANDS["remediate --apply"]]
    with AwsProxy(moto_url, html_for("bedrock")) as proxy:
        result = run_cli(args, cwd=tmp_path, env=cli_env(proxy.url))
        answered = [r.operation for r in proxy.answered]
    assert answered, describe(result)  # the proxy answered a Bedrock call
    assert result.returncode == 2, describe(result)
    assert "Traceback" not in result.stderr + result.stdout, describe(result)
    errors = [line for line in result.stderr.splitlines() if line.startswith("bedrock-sql: error: ")]
    assert len(errors) == 1, describe(result)
    assert answered[0] in errors[0], describe(result)  # names the call that failed


def test_live_query_with_kms_answering_html_is_an_error_not_an_empty_table(moto_url: str, tmp_path: Path) -> None:
    """Past STS: KMS answers HTML. The (empty) rows print, the failure is listed, exit 2."""
    with AwsProxy(moto_url, html_for("kms")) as proxy:
        result = run_cli(
            ["query", "--live", "--region", REGION, "--output", "json", "SELECT arn FROM aws_kms_key"],
            cwd=tmp_path, env=cli_env(proxy.url),
        )
    assert result.returncode == 2, describe(result)
    assert "Traceback" not in result.stderr, describe(result)
    assert "us-east-1 aws_kms_key: " in result.stderr, describe(result)


# --- the CLI's own net, for whatever the library lets through (in process) ------------------


def raw_sts_call(endpoint: str):
    """GetCallerIdentity with a bare botocore client (no bedrock-sql checks or retries): what
    botocore itself raises on an answer that is not AWS's."""
    import boto3
    from botocore.config import Config

    sts = boto3.client("sts", region_name=REGION, endpoint_url=endpoint, config=Config(retries={"total_max_attempts": 1}))
    return sts.get_caller_identity()


EXPECTED_REASONS = {
    # botocore's XML parser raises a plain KeyError on an HTML page: not even a botocore error
    "html-200": "GetCallerIdentity failed: the answer is not an AWS response (KeyError: 'GetCallerIdentityResult')",
    "html-404": "GetCallerIdentity failed: the answer is not an AWS response (HTTP 404, text/html; charset=utf-8)",
    "closed-port": f'GetCallerIdentity failed: Could not connect to the endpoint URL: "{CLOSED_PORT_URL}/"',
}


def test_raw_botocore_failures_in_an_aws_command_are_one_line(
    not_aws: str, request: pytest.FixtureRequest, capsys, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    import bedrock_sql.cli.collect
    from helpers import run_main

    monkeypatch.setattr(bedrock_sql.cli.collect, "resolve_scope", lambda options, shard=None: raw_sts_call(options.endpoint_url))
    code, out, err = run_main(capsys, "--db", tmp_path / "x.db", "collect", "--endpoint-url", not_aws)
    assert code == 2, err
    expected = EXPECTED_REASONS[request.node.callspec.params["not_aws"]]
    suffix = "" if not_aws == CLOSED_PORT_URL else f" (endpoint {not_aws})"  # named once
    assert err.splitlines() == [f"bedrock-sql: error: {expected}{suffix}"]


def test_raw_botocore_failure_outside_the_aws_commands_is_one_line(
    capsys, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    import bedrock_sql.demo
    from helpers import run_main

    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(bedrock_sql.demo, "run_demo", lambda db, out: raw_sts_call(CLOSED_PORT_URL))
    code, out, err = run_main(capsys, "demo")
    assert code == 2, err
    assert err.splitlines() == [f'bedrock-sql: error: GetCallerIdentity failed: Could not connect to the endpoint URL: "{CLOSED_PORT_URL}/"']
