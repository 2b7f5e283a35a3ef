"""Helpers for the end-to-end tests: run the CLI as a subprocess, and a fault-injecting proxy.

:class:`AwsProxy` is a small HTTP proxy that sits between the CLI and the moto server. Every
request is parsed into an :class:`AwsRequest` (service, region, operation, from the SigV4
credential scope and botocore's service models) and recorded; a *rule* function sees each
request first and may answer it with a canned :class:`CannedResponse` (an AWS error, a
throttle...) instead of forwarding it to moto. Rules are plain callables, so a test can
deny one region, throttle every third call, or count calls without touching moto.
"""

from __future__ import annotations

import http.client
import json
import os
import re
import subprocess
import sys
import threading
from dataclasses import dataclass, field
from functools import lru_cache
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Callable, Mapping, Sequence
from urllib.parse import parse_qs, unquote, urlsplit

ACCOUNT_ID = "123456789012"  # moto's default account

# Variables that could point the CLI at a real account, profile, endpoint or proxy.
_ENV_TO_DROP_PREFIXES = ("AWS_", "BEDROCK_SQL_")
_ENV_TO_DROP = ("HTTP_PROXY", "HTTPS_PROXY", "http_proxy", "https_proxy", "NO_PROXY", "no_proxy", "ALL_PROXY", "all_proxy")


def cli_env(endpoint_url: str | None = None, *, credentials: bool = True, **extra: str) -> dict[str, str]:
    """The environment for a CLI subprocess: os.environ minus anything AWS, plus fakes.

    ``endpoint_url`` becomes AWS_ENDPOINT_URL; ``credentials=False`` leaves no credentials
    at all (no keys, no config or credentials file).
    """
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(_ENV_TO_DROP_PREFIXES) and k not in _ENV_TO_DROP
    }
    env.update(
        AWS_CONFIG_FILE=os.devnull,
        AWS_SHARED_CREDENTIALS_FILE=os.devnull,
        AWS_EC2_METADATA_DISABLED="true",
        AWS_DEFAULT_REGION="us-east-1",
        PYTHONDONTWRITEBYTECODE="1",
    )
    if credentials:
        env.update(AWS_ACCESS_KEY_ID="testing", AWS_SECRET_ACCESS_KEY="testing", AWS_SESSION_TOKEN="testing")
    if endpoint_url:
        env["AWS_ENDPOINT_URL"] = endpoint_url
    env.update(extra)
    return env


def cli_command(*args: str) -> list[str]:
    return [sys.executable, "-m", "bedrock_sql", *args]


def run_cli(
    args: Sequence[str],
    *,
    cwd: Path,
    env: Mapping[str, str],
    timeout: float = 60,
    stdin: str | None = None,
    umask: int = -1,
) -> subprocess.CompletedProcess:
    """Run ``bedrock-sql ARGS`` in ``cwd`` and capture its output (text)."""
    return subprocess.run(
        cli_command(*args),
        cwd=cwd,
        env=dict(env),
        input=stdin,
        capture_output=True,
        text=True,
        timeout=timeout,
        umask=umask,
    )


def describe(result: subprocess.CompletedProcess) -> str:
    """A failure message showing what the CLI said."""
    return f"exit {result.returncode}\n--- stdout ---\n{result.stdout[-4000:]}\n--- stderr ---\n{result.stderr[-4000:]}"


# --------------------------------------------------------------------------- the proxy


@dataclass
class AwsRequest:
    """One request the CLI sent, as the proxy understood it."""

    method: str
    path: str  # without the query string, percent-decoded
    query: dict[str, list[str]]
    headers: dict[str, str]  # lower-case names
    body: bytes
    service: str | None  # the SigV4 signing name (bedrock, kms, sts...)
    region: str | None  # the SigV4 credential scope's region
    operation: str | None  # the API name (ListCustomModels...)


@dataclass
class CannedResponse:
    """What a rule answers instead of forwarding to moto."""

    status: int
    body: bytes = b""
    headers: dict[str, str] = field(default_factory=dict)

    @classmethod
    def aws_error(cls, status: int, code: str, message: str, protocol: str = "rest-json") -> "CannedResponse":
        """An AWS error as the service's protocol writes it (rest-json/json or query)."""
        if protocol == "query":
            body = (
                f'<ErrorResponse xmlns="https://sts.amazonaws.com/doc/2011-06-15/"><Error><Type>Sender</Type>'
                f"<Code>{code}</Code><Message>{message}</Message></Error><RequestId>e2e</RequestId></ErrorResponse>"
            ).encode()
            return cls(status, body, {"Content-Type": "text/xml"})
        body = json.dumps({"message": message}).encode()
        return cls(status, body, {"Content-Type": "application/json", "x-amzn-ErrorType": code, "x-amzn-RequestId": "e2e"})


Rule = Callable[[AwsRequest], "CannedResponse | None"]

_CREDENTIAL_SCOPE = re.compile(r"Credential=[^/,\s]+/\d{8}/([^/]+)/([^/]+)/aws4_request")
# Hop-by-hop headers (RFC 9110) and the ones the proxy recomputes.
_HOP_BY_HOP = {
    "connection",
    "keep-alive",
    "proxy-authenticate",
    "proxy-authorization",
    "te",
    "trailer",
    "transfer-encoding",
    "upgrade",
    "content-length",
}


@lru_cache(maxsize=None)
def _rest_routes(service: str) -> list[tuple[str, re.Pattern, int, str]]:
    """(method, path regex, specificity, operation) for a rest protocol service, most specific first."""
    import botocore.session

    model = botocore.session.get_session().get_service_model(service)
    routes = []
    for name in model.operation_names:
        http = model.operation_model(name).http
        uri = http["requestUri"].split("?", 1)[0]
        pattern = ""
        for part in re.split(r"(\{[^}]+\})", uri):
            if part.startswith("{"):
                pattern += ".+" if part.endswith("+}") else "[^/]+"
            else:
                pattern += re.escape(part)
        literal = len(re.sub(r"\{[^}]+\}", "", uri))
        routes.append((http["method"], re.compile(pattern.rstrip("/") + "/?$"), literal, name))
    routes.sort(key=lambda r: -r[2])
    return routes


def _operation(service: str | None, method: str, path: str, headers: Mapping[str, str], body: bytes) -> str | None:
    target = headers.get("x-amz-target")
    if target:  # json protocol: TrentService.ListKeys
        return target.rsplit(".", 1)[-1]
    if body and headers.get("content-type", "").startswith("application/x-www-form-urlencoded"):
        action = parse_qs(body.decode("utf-8", "replace")).get("Action")  # query protocol (STS)
        if action:
            return action[0]
    if service is None:
        return None
    try:
        routes = _rest_routes(service)
    except Exception:  # noqa: BLE001 - not a service botocore knows
        return None
    for route_method, pattern, _, name in routes:
        if route_method == method and pattern.match(path):
            return name
    return None


class _QuietServer(ThreadingHTTPServer):
    daemon_threads = True

    def handle_error(self, request, client_address):
        # A client that went away (a killed CLI) is expected here; anything else is loud.
        if not isinstance(sys.exc_info()[1], (ConnectionError, TimeoutError)):
            super().handle_error(request, client_address)


class AwsProxy:
    """A local HTTP proxy to ``upstream`` (the moto server) that applies a rule to each request.

    Use as a context manager; ``url`` is where to point the CLI (``--endpoint-url`` or
    ``AWS_ENDPOINT_URL``). ``requests`` holds every request seen (answered or forwarded).
    """

    def __init__(self, upstream: str, rule: Rule | None = None):
        parts = urlsplit(upstream)
        self.upstream_host = parts.hostname or "127.0.0.1"
        self.upstream_port = parts.port or 80
        self.rule = rule
        self.requests: list[AwsRequest] = []
        self.answered: list[AwsRequest] = []  # the ones the rule answered
        self._lock = threading.Lock()
        self._server = _QuietServer(("127.0.0.1", 0), self._handler_class())
        self._thread = threading.Thread(target=self._server.serve_forever, name="e2e-aws-proxy", daemon=True)

    @property
    def url(self) -> str:
        host, port = self._server.server_address[:2]
        return f"http://{host}:{port}"

    def __enter__(self) -> "AwsProxy":
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(timeout=5)

    def operations(self, service: str | None = None, region: str | None = None) -> list[str | None]:
        """The operations seen, in arrival order, optionally for one service/region."""
        with self._lock:
            return [
                r.operation
                for r in self.requests
                if (service is None or r.service == service) and (region is None or r.region == region)
            ]

    def _record(self, request: AwsRequest, answered: bool) -> None:
        with self._lock:
            self.requests.append(request)
            if answered:
                self.answered.append(request)

    def _handler_class(self):
        proxy = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"  # keep-alive, as botocore expects
            disable_nagle_algorithm = True  # or Nagle + delayed ACKs add ~40 ms a request

            def log_message(self, format, *args):  # noqa: A002 - quiet
                pass

            def _handle(self):
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length) if length else b""
                headers = {k.lower(): v for k, v in self.headers.items()}
                split = urlsplit(self.path)
                scope = _CREDENTIAL_SCOPE.search(headers.get("authorization", ""))
                region, service = (scope.group(1), scope.group(2)) if scope else (None, None)
                request = AwsRequest(
                    method=self.command,
                    path=unquote(split.path),
                    query=parse_qs(split.query),
                    headers=headers,
                    body=body,
                    service=service,
                    region=region,
                    # Match the raw path: a percent-encoded ARN holds a '/'.
                    operation=_operation(service, self.command, split.path, headers, body),
                )
                canned = proxy.rule(request) if proxy.rule else None
                proxy._record(request, canned is not None)
                if canned is not None:
                    self._reply(canned.status, list(canned.headers.items()), canned.body)
                    return
                status, reply_headers, reply_body = self._forward(body)
                self._reply(status, reply_headers, reply_body)

            def _forward(self, body: bytes):
                connection = getattr(self, "_upstream", None)
                for attempt in (1, 2):  # a kept-alive upstream connection may have been closed
                    if connection is None:
                        connection = http.client.HTTPConnection(proxy.upstream_host, proxy.upstream_port, timeout=60)
                        self._upstream = connection
                    try:
                        headers = {k: v for k, v in self.headers.items() if k.lower() not in _HOP_BY_HOP}
                        connection.request(self.command, self.path, body=body, headers=headers)
                        response = connection.getresponse()
                        data = response.read()
                        reply_headers = [(k, v) for k, v in response.getheaders() if k.lower() not in _HOP_BY_HOP]
                        if response.will_close:
                            connection.close()
                            self._upstream = None
                        return response.status, reply_headers, data
                    except (http.client.HTTPException, ConnectionError):
                        connection.close()
                        self._upstream = connection = None
                        if attempt == 2:
                            raise
                raise AssertionError("unreachable")

            def _reply(self, status: int, headers, body: bytes):
                self.send_response(status)
                for name, value in headers:
                    if name.lower() not in ("server", "date"):
                        self.send_header(name, value)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                if self.command != "HEAD":
                    self.wfile.write(body)

            do_GET = do_POST = do_PUT = do_DELETE = do_PATCH = do_HEAD = _handle

        return Handler


def deny(service: str, operation: str, region: str, *, code: str = "AccessDeniedException", message: str = "denied") -> Rule:
    """A rule answering ``operation`` in ``region`` with HTTP 403 and ``code``."""

    def rule(request: AwsRequest) -> CannedResponse | None:
        if request.service == service and request.operation == operation and request.region == region:
            return CannedResponse.aws_error(403, code, message)
        return None

    return rule
