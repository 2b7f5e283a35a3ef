"""Helpers for the end-to-end tests: run the CLI as a subprocess, and a fault-injecting proxy.

:class:`AwsProxy` is a small HTTP proxy that sits between the CLI and the moto server. Every
request is parsed into an :class:`AwsRequest` (service, region, operation, from the SigV4
credential scope and botocore's service models) and recorded; a *rule* function sees each
request first and may answer it with a canned :class:`CannedResponse` (an AWS error, a
throttle...) instead of forwarding it to moto. Rules are plain callables, so a test can
deny one region, throttle every third call, or count calls without touching moto.

The proxy can also add a fixed ``latency`` to every request (as Bedrock's control plane
takes 50-200 ms to answer), and a rule can make it hang up without answering
(:meth:`CannedResponse.hang_up`), as an unreachable endpoint does. Ready-made rules:
:func:`deny`, :class:`ThrottleFirstAttempts` (a deterministic throttling storm),
:func:`throttle` (one operation, every attempt) and :func:`unreachable` (one region);
:class:`aws_faults.Fault` answers one operation with any of its ``FAULT_KINDS``
(throttling, 5xx, AccessDenied, ValidationException, a 200 with HTML, truncated or empty,
a reset connection, or no answer until the client's read timeout).

With a ``pager`` (:class:`aws_faults.Pager`), the proxy pages every listing itself (moto
answers KMS listings in one page whatever their ``Limit``).
"""

from __future__ import annotations

import hashlib
import http.client
import json
import os
import re
import socket
import struct
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field
from functools import lru_cache
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import TYPE_CHECKING, Callable, Mapping, Sequence
from urllib.parse import parse_qs, unquote, urlsplit

if TYPE_CHECKING:
    from aws_faults import Pager

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


def start_cli(args: Sequence[str], *, cwd: Path, env: Mapping[str, str]) -> subprocess.Popen:
    """Start ``bedrock-sql ARGS`` in the background (to signal or kill it), output captured."""
    return subprocess.Popen(
        cli_command(*args), cwd=cwd, env=dict(env), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
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
    # Set: answer nothing and drop the connection ("close": a clean FIN, "reset": an RST).
    hangup: str | None = None
    # Set: forward the request, then answer with what moto said, its body passed through this.
    rewrite_body: Callable[[bytes], bytes] | None = None
    # Set: say nothing for this many seconds (or until the proxy closes), then hang up.
    stall: float | None = None

    @classmethod
    def aws_error(cls, status: int, code: str, message: str, protocol: str = "rest-json") -> "CannedResponse":
        """An AWS error as the service's protocol writes it (rest-json, json or query).

        rest-json (Bedrock) names the code in the ``x-amzn-ErrorType`` header; json
        (KMS) in the body's ``__type``, which is all botocore reads there; query (STS) in XML.
        """
        if protocol == "query":
            body = (
                f'<ErrorResponse xmlns="https://sts.amazonaws.com/doc/2011-06-15/"><Error><Type>Sender</Type>'
                f"<Code>{code}</Code><Message>{message}</Message></Error><RequestId>e2e</RequestId></ErrorResponse>"
            ).encode()
            return cls(status, body, {"Content-Type": "text/xml"})
        if protocol == "json":
            body = json.dumps({"__type": code, "message": message}).encode()
            return cls(status, body, {"Content-Type": "application/x-amz-json-1.1", "x-amzn-RequestId": "e2e"})
        body = json.dumps({"message": message}).encode()
        return cls(status, body, {"Content-Type": "application/json", "x-amzn-ErrorType": code, "x-amzn-RequestId": "e2e"})

    @classmethod
    def aws_error_for(cls, request: "AwsRequest", status: int, code: str, message: str) -> "CannedResponse":
        """An AWS error in the protocol of the service ``request`` was sent to."""
        return cls.aws_error(status, code, message, protocol_of(request))

    @classmethod
    def throttle(cls, request: "AwsRequest") -> "CannedResponse":
        """What AWS answers a call over its rate: HTTP 400 ThrottlingException (STS: Throttling)."""
        code = "Throttling" if protocol_of(request) == "query" else "ThrottlingException"
        return cls.aws_error_for(request, 400, code, "Rate exceeded")

    @classmethod
    def hang_up(cls, reset: bool = False) -> "CannedResponse":
        """No answer at all: the connection is closed (or reset) once the request is read."""
        return cls(0, hangup="reset" if reset else "close")

    @classmethod
    def ok_with(cls, body: bytes, content_type: str) -> "CannedResponse":
        """A 200 whose body is ``body`` (HTML, nothing...), as a captive portal answers."""
        return cls(200, body, {"Content-Type": content_type, "x-amzn-RequestId": "e2e"})

    @classmethod
    def truncated(cls) -> "CannedResponse":
        """moto's real answer, cut in the middle (a connection that dropped mid-body)."""
        return cls(200, rewrite_body=lambda body: body[: max(1, len(body) // 2)])

    @classmethod
    def silence(cls, seconds: float = 30.0) -> "CannedResponse":
        """No answer for ``seconds``: the client's read timeout fires first."""
        return cls(0, hangup="close", stall=seconds)


def protocol_of(request: "AwsRequest") -> str:
    """The wire protocol of the request's service: query (STS), json (KMS) or rest-json (Bedrock)."""
    if request.headers.get("x-amz-target"):
        return "json"
    if request.headers.get("content-type", "").startswith("application/x-www-form-urlencoded"):
        return "query"
    return "rest-json"


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
    # socketserver's default backlog is 5: a burst of new keep-alive connections (a pool of
    # workers starting at once) would overflow it and wait out a 1 s SYN retransmit.
    request_queue_size = 128

    def handle_error(self, request, client_address):
        # A client that went away (a killed CLI) is expected here; anything else is loud.
        if not isinstance(sys.exc_info()[1], (ConnectionError, TimeoutError)):
            super().handle_error(request, client_address)


class AwsProxy:
    """A local HTTP proxy to ``upstream`` (the moto server) that applies a rule to each request.

    Use as a context manager; ``url`` is where to point the CLI (``--endpoint-url`` or
    ``AWS_ENDPOINT_URL``). ``requests`` holds every request seen (answered or forwarded).
    ``latency`` (seconds) is added to every request, slept in the request's own handler
    thread (so concurrent requests overlap, as they do against AWS).
    """

    def __init__(self, upstream: str, rule: Rule | None = None, *, latency: float = 0.0, pager: "Pager | None" = None):
        parts = urlsplit(upstream)
        self.upstream_host = parts.hostname or "127.0.0.1"
        self.upstream_port = parts.port or 80
        self.rule = rule
        self.latency = latency
        self.pager = pager
        self.closing = threading.Event()  # ends stalls when the proxy closes
        self.requests: list[AwsRequest] = []
        self.answered: list[AwsRequest] = []  # the ones the rule answered
        self._lock = threading.Lock()
        self._server = _QuietServer(("127.0.0.1", 0), self._handler_class())
        # A short poll interval: shutdown() waits up to one interval (0.5 s by default) per proxy.
        self._thread = threading.Thread(
            target=self._server.serve_forever, kwargs={"poll_interval": 0.02}, name="e2e-aws-proxy", daemon=True
        )

    @property
    def url(self) -> str:
        host, port = self._server.server_address[:2]
        return f"http://{host}:{port}"

    def __enter__(self) -> "AwsProxy":
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self.closing.set()
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

    def clear(self) -> None:
        """Forget the requests seen so far (to count a second run separately)."""
        with self._lock:
            self.requests.clear()
            self.answered.clear()

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
                if proxy.latency:
                    time.sleep(proxy.latency)
                canned = proxy.rule(request) if proxy.rule else None
                proxy._record(request, canned is not None)
                if canned is not None and canned.stall:
                    proxy.closing.wait(canned.stall)
                if canned is not None and canned.hangup:
                    self._hang_up(canned.hangup == "reset")
                    return
                if canned is not None and canned.rewrite_body is None:
                    self._reply(canned.status, list(canned.headers.items()), canned.body)
                    return
                page = proxy.pager.page(request) if proxy.pager else None
                path, body = page.upstream_request(self.path, body) if page else (self.path, body)
                status, reply_headers, reply_body = self._forward(body, path)
                if page is not None and status == 200:
                    reply_body = page.cut(reply_body)
                if canned is not None and canned.rewrite_body is not None:
                    reply_body = canned.rewrite_body(reply_body)
                self._reply(status, reply_headers, reply_body)

            def _forward(self, body: bytes, path: str | None = None):
                connection = getattr(self, "_upstream", None)
                for attempt in (1, 2):  # a kept-alive upstream connection may have been closed
                    if connection is None:
                        connection = http.client.HTTPConnection(proxy.upstream_host, proxy.upstream_port, timeout=60)
                        self._upstream = connection
                    try:
                        headers = {k: v for k, v in self.headers.items() if k.lower() not in _HOP_BY_HOP}
                        connection.request(self.command, path or self.path, body=body, headers=headers)
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

            def _hang_up(self, reset: bool):
                self.close_connection = True
                if reset:  # SO_LINGER 0: close() sends an RST instead of a FIN
                    self.connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
                    self.connection.close()
                else:
                    try:
                        self.connection.shutdown(socket.SHUT_RDWR)
                    except OSError:
                        pass

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
    """A rule answering ``operation`` in ``region`` with HTTP 403 and ``code`` (in the service's protocol)."""

    def rule(request: AwsRequest) -> CannedResponse | None:
        if request.service == service and request.operation == operation and request.region == region:
            return CannedResponse.aws_error_for(request, 403, code, message)
        return None

    return rule


def throttle(service: str, operation: str, region: str | None = None, *, times: int | None = None) -> Rule:
    """A rule throttling ``operation`` (in ``region``, or everywhere): every attempt, or the first ``times``."""
    lock = threading.Lock()
    seen = [0]

    def rule(request: AwsRequest) -> CannedResponse | None:
        if request.service != service or request.operation != operation:
            return None
        if region is not None and request.region != region:
            return None
        with lock:
            seen[0] += 1
            if times is not None and seen[0] > times:
                return None
        return CannedResponse.throttle(request)

    return rule


def unreachable(region: str, *, reset: bool = False) -> Rule:
    """A rule that hangs up on every call signed for ``region``, answering nothing."""

    def rule(request: AwsRequest) -> CannedResponse | None:
        return CannedResponse.hang_up(reset) if request.region == region else None

    return rule


def request_key(request: AwsRequest) -> bytes:
    """What identifies a call across its retries: the signature and dates change, this does not."""
    query = sorted((k, tuple(v)) for k, v in request.query.items())
    return repr((request.service, request.region, request.method, request.path, query, request.body)).encode()


class ThrottleFirstAttempts:
    """A throttling storm: the first attempt of a ``share`` of all calls answers ThrottlingException.

    Deterministic: whether a call is throttled depends only on a hash of what it asks
    (service, region, method, path, query, body; see :func:`request_key`), never on timing
    or order, and a call is throttled once -- its retry goes through. ``throttled`` holds
    the calls throttled so far; ``services`` limits the storm to those signing names.
    """

    def __init__(self, share: float = 0.6, *, services: Sequence[str] | None = None, salt: str = ""):
        self.share = share
        self.services = set(services) if services is not None else None
        self.salt = salt.encode()
        self.throttled: set[bytes] = set()
        self._lock = threading.Lock()

    def selected(self, request: AwsRequest) -> bool:
        digest = hashlib.sha256(self.salt + request_key(request)).digest()
        return int.from_bytes(digest[:8], "big") < self.share * 2**64

    def __call__(self, request: AwsRequest) -> CannedResponse | None:
        if self.services is not None and request.service not in self.services:
            return None
        if not self.selected(request):
            return None
        key = request_key(request)
        with self._lock:
            if key in self.throttled:
                return None
            self.throttled.add(key)
        return CannedResponse.throttle(request)


def first_match(*rules: Rule) -> Rule:
    """A rule applying ``rules`` in order: the first one that answers wins."""

    def rule(request: AwsRequest) -> CannedResponse | None:
        for candidate in rules:
            canned = candidate(request)
            if canned is not None:
                return canned
        return None

    return rule


# --------------------------------------------------------------------------- many collects in one process


class _SearchPaths(list):
    """A loader's search paths: boto3 appends its data folder for every Session it makes;
    on a loader shared by hundreds of sessions, the folder is kept once."""

    def append(self, path) -> None:
        if path not in self:
            super().append(path)


def shared_service_models():
    """While in effect, every botocore session (boto3's included) shares one data loader.

    Why: each in-process ``collect`` resolves a fresh scope, whose sessions would each parse
    the Bedrock, KMS and STS service models again (about 0.1 CPU-second a client): in a
    test running hundreds of collects that is most of the time. The models are read-only
    data; what the collector sends and parses is unchanged. (bedrock-sql's own
    ``ClientFactory`` shares a loader the same way across the sessions it makes.)
    """
    from unittest import mock

    import botocore.loaders
    import botocore.session

    loaders: dict[object, botocore.loaders.Loader] = {}
    lock = threading.Lock()

    def create_loader(search_path_string=None):
        with lock:
            loader = loaders.get(search_path_string)
            if loader is None:
                loader = botocore.loaders.create_loader(search_path_string)
                loader._search_paths = _SearchPaths(loader.search_paths)
                loaders[search_path_string] = loader
            return loader

    return mock.patch.object(botocore.session, "create_loader", create_loader)
