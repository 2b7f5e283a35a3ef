"""Faults and paging for the fault-injecting :class:`e2e_helpers.AwsProxy`.

- :class:`Fault` is a proxy rule answering one operation with one of :data:`FAULT_KINDS`
  (every attempt, or the first few: a storm that passes); :func:`mentions` aims it at one
  resource; :func:`call_of` names what a request calls, to compare with a matrix's cells.
- :class:`Pager` makes the proxy page every Bedrock and KMS listing at a few items a page
  (moto answers KMS listings in one page whatever their ``Limit``), so "page N of every
  listing" can be aimed at: :func:`page_number` tells which page a request asks for.
"""

from __future__ import annotations

import json
import threading
from dataclasses import dataclass
from functools import lru_cache
from typing import Callable
from urllib.parse import parse_qsl, urlencode, urlsplit

from e2e_helpers import AwsRequest, CannedResponse, protocol_of


# --------------------------------------------------------------------------- faults


FAULT_KINDS = (
    "throttling",  # ThrottlingException (STS: Throttling), HTTP 400
    "server-error",  # HTTP 500 with the service's internal-error code
    "access-denied",  # AccessDeniedException (STS: AccessDenied), HTTP 403 (KMS: 400)
    "validation",  # ValidationException (STS: ValidationError), HTTP 400
    "html",  # HTTP 200 with an HTML login page
    "truncated",  # HTTP 200 with moto's real answer cut in half
    "empty",  # HTTP 200 with no body at all
    "reset",  # the connection is reset, nothing answered
    "timeout",  # nothing answered until the client's read timeout
)

_ERRORS_BY_PROTOCOL = {
    # kind: {protocol: (status, code)}
    "server-error": {"rest-json": (500, "InternalServerException"), "json": (500, "KMSInternalException"),
                     "query": (500, "InternalFailure")},
    "access-denied": {"rest-json": (403, "AccessDeniedException"), "json": (400, "AccessDeniedException"),
                      "query": (403, "AccessDenied")},
    "validation": {"rest-json": (400, "ValidationException"), "json": (400, "ValidationException"),
                   "query": (400, "ValidationError")},
}
LOGIN_PAGE = b"<!DOCTYPE html><html><head><title>Sign in</title></head><body>Corporate proxy: please sign in</body></html>"


def fault_response(kind: str, request: AwsRequest) -> CannedResponse:
    """What the proxy answers ``request`` with for a fault of ``kind`` (one of :data:`FAULT_KINDS`)."""
    protocol = protocol_of(request)
    if kind == "throttling":
        return CannedResponse.throttle(request)
    if kind in _ERRORS_BY_PROTOCOL:
        status, code = _ERRORS_BY_PROTOCOL[kind][protocol]
        return CannedResponse.aws_error(status, code, f"injected {kind}", protocol)
    if kind == "html":
        return CannedResponse.ok_with(LOGIN_PAGE, "text/html; charset=utf-8")
    if kind == "truncated":
        return CannedResponse.truncated()
    if kind == "empty":
        return CannedResponse.ok_with(b"", "text/xml" if protocol == "query" else "application/json")
    if kind == "reset":
        return CannedResponse.hang_up(reset=True)
    if kind == "timeout":
        return CannedResponse.silence()
    raise ValueError(f"unknown fault kind {kind!r}")


class Fault:
    """A rule: ``operation`` of ``service`` (where ``where(request)`` holds) answers a fault of
    ``kind`` -- on every attempt, or on the first ``times`` only (a storm that passes).

    ``hits`` counts the requests it answered, so a test can prove the fault was met.
    """

    def __init__(
        self,
        kind: str,
        service: str,
        operation: str,
        *,
        where: Callable[[AwsRequest], bool] | None = None,
        times: int | None = None,
    ):
        if kind not in FAULT_KINDS:
            raise ValueError(f"unknown fault kind {kind!r}")
        self.kind, self.service, self.operation = kind, service, operation
        self.where = where
        self.times = times
        self.hits = 0
        self._lock = threading.Lock()

    def __call__(self, request: AwsRequest) -> CannedResponse | None:
        if request.service != self.service or request.operation != self.operation:
            return None
        if self.where is not None and not self.where(request):
            return None
        with self._lock:
            if self.times is not None and self.hits >= self.times:
                return None
            self.hits += 1
        return fault_response(self.kind, request)


def call_of(request: AwsRequest) -> tuple[str | None, str | None, str]:
    """(service, operation, resource type) of a request; the resource type only for a call
    every Bedrock table shares (ListTagsForResource: ``imported-model``, ``custom-model``...),
    so a fault matrix can tell a new table's tags call from the ones it already covers."""
    if request.service == "bedrock" and request.operation == "ListTagsForResource":
        arn = (json.loads(request.body or b"{}") or {}).get("resourceARN", "")
        return request.service, request.operation, arn.split(":", 5)[-1].split("/", 1)[0]
    return request.service, request.operation, ""


def mentions(text: str) -> Callable[[AwsRequest], bool]:
    """A ``where`` for :class:`Fault`: the request names ``text`` (in its path or body)."""

    def where(request: AwsRequest) -> bool:
        return text in request.path or text in request.body.decode("utf-8", "replace")

    return where


# --------------------------------------------------------------------------- paging


PAGE_TOKEN = "e2e-page-"


@dataclass(frozen=True)
class _Paginator:
    """What botocore's models say about a listing: its token, list and limit names."""

    input_token: str
    output_token: str
    result_key: str
    more_results: str | None
    wire_names: tuple[str, ...]  # the token's and limit's names in a query string


@lru_cache(maxsize=None)
def _paginator(service: str, operation: str) -> _Paginator | None:
    import botocore.session

    session = botocore.session.get_session()
    try:
        config = session.get_paginator_model(service).get_paginator(operation)
    except Exception:  # noqa: BLE001 - no paginator for it (or no such service)
        return None
    if not all(isinstance(config.get(k), str) for k in ("input_token", "output_token", "result_key")):
        return None  # a multi-token paginator: none of the listings paged here
    members = session.get_service_model(service).operation_model(operation).input_shape.members
    names = [n for n in (config["input_token"], config.get("limit_key")) if n]
    return _Paginator(
        config["input_token"],
        config["output_token"],
        config["result_key"],
        config.get("more_results"),
        tuple(members[n].serialization.get("name", n) for n in names),
    )


def _token(request: AwsRequest, paginator: _Paginator) -> str | None:
    if protocol_of(request) == "json":
        return (json.loads(request.body or b"{}") or {}).get(paginator.input_token)
    return (request.query.get(paginator.wire_names[0]) or [None])[0]


def page_number(request: AwsRequest) -> int:
    """Which page of a listing paged by the proxy ``request`` asks for (1: the first)."""
    paginator = _paginator(request.service or "", request.operation or "")
    token = _token(request, paginator) if paginator else None
    return int(token[len(PAGE_TOKEN):]) if token and token.startswith(PAGE_TOKEN) else 1


@dataclass
class _Page:
    """One page the proxy cuts from moto's whole answer."""

    request: AwsRequest
    number: int
    size: int
    paginator: _Paginator

    def upstream_request(self, raw_path: str, body: bytes) -> tuple[str, bytes]:
        """What moto is asked: the whole listing (no token, no limit)."""
        if protocol_of(self.request) == "json":
            params = json.loads(body or b"{}")
            for name in self.paginator.wire_names:
                params.pop(name, None)
            return raw_path, json.dumps(params).encode()
        split = urlsplit(raw_path)
        query = [(k, v) for k, v in parse_qsl(split.query, keep_blank_values=True) if k not in self.paginator.wire_names]
        return split.path + (f"?{urlencode(query)}" if query else ""), body

    def cut(self, body: bytes) -> bytes:
        """Page ``number`` of moto's whole answer, with the token of the next page."""
        paginator = self.paginator
        answer = json.loads(body)
        items = answer.get(paginator.result_key) or []
        start = (self.number - 1) * self.size
        answer[paginator.result_key] = items[start : start + self.size]
        more = start + self.size < len(items)
        answer.pop(paginator.output_token, None)
        if more:
            answer[paginator.output_token] = f"{PAGE_TOKEN}{self.number + 1}"
        if paginator.more_results:
            answer[paginator.more_results] = more
        return json.dumps(answer).encode()


class Pager:
    """Makes the proxy page every Bedrock and KMS listing at ``size`` items a page.

    The proxy asks moto for the whole listing and answers the page the request's token
    names (tokens are ``e2e-page-N``; see :func:`page_number`). moto pages Bedrock listings
    at 100 itself: keep a paged listing under 100 items.
    """

    def __init__(self, size: int):
        self.size = size

    def page(self, request: AwsRequest) -> _Page | None:
        if protocol_of(request) == "query":
            return None  # STS, EC2: not listed page by page here
        paginator = _paginator(request.service or "", request.operation or "")
        return _Page(request, page_number(request), self.size, paginator) if paginator else None
