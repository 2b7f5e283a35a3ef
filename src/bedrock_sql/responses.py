"""Every AWS answer is checked before it is believed: one place, for every client.

botocore parses a 200 whose body is an HTML page (a captive portal, a proxy's login page),
empty, or JSON cut short as an *empty result*, without an error: a listing would then say
"no models here" and every control would pass. :func:`install` hooks each client that
:class:`~bedrock_sql.aws.ClientFactory` creates (Bedrock, KMS, STS, Organizations, EC2, and
any future provider's) so that a successful answer must be what its operation returns,
judged from botocore's own service and paginator models -- nothing is written per operation:

- before parsing, the body is a JSON object whose objects and arrays have the output
  shape's form (json and rest-json protocols), or XML whose root is the operation's answer
  (query and ec2 protocols; any XML for rest-xml); an empty body is accepted only when the
  operation's output has no body members. (botocore's parsers crash with bare Python
  errors on a body of the wrong form: these checks come first.)
- after parsing, every scalar member the output shape marks required (the identifiers,
  names and timestamps) is present, in nested structures and list items too; an output
  with members carries at least one of them (``{}`` is no answer); a paginated operation
  carries its result key as a list, and a page that says it is truncated names its next
  token. A caller may require more (:func:`require_fields`: the field it names a resource by).

A failed check raises :class:`InvalidResponseError` (a botocore error):
:class:`~bedrock_sql.aws.UnitApi` retries it like a network failure, then records it as an
``InvalidResponse`` against the unit (a listing) or the resource (a get).

Empty listings are not errors: Bedrock and KMS send the list member empty
(``{"modelSummaries": []}``, ``{"Keys": [], "Truncated": false}``), as moto does; EC2's
query answers carry their (empty) set element. A service that omitted an empty list would
be reported here as an error -- visible and fixable -- rather than trusted silently.
"""

from __future__ import annotations

import json
import xml.etree.ElementTree as ElementTree
from dataclasses import dataclass
from typing import Any, Callable, Iterator

import botocore.exceptions
import jmespath
from botocore.model import ListShape, MapShape, OperationModel, Shape, StructureShape

INVALID_RESPONSE = "InvalidResponse"
JSON_PROTOCOLS = frozenset({"json", "rest-json"})
XML_PROTOCOLS = frozenset({"query", "ec2", "rest-xml"})
# Answers of query/ec2 protocols are <OperationNameResponse>; rest-xml roots vary.
_ROOT_NAMED_AFTER_OPERATION = frozenset({"query", "ec2"})
_CONTAINER_TYPES = frozenset({"structure", "list", "map"})


class InvalidResponseError(botocore.exceptions.BotoCoreError):
    """A successful (2xx) AWS answer that is not what its operation must return."""

    fmt = "{operation}: {reason}"
    code = INVALID_RESPONSE

    @property
    def operation_name(self) -> str:
        return self.kwargs["operation"]

    @property
    def reason(self) -> str:
        return self.kwargs["reason"]


@dataclass(frozen=True)
class Pagination:
    """An operation's paginator, from botocore's paginator model (``paginators-1``)."""

    input_tokens: tuple[str, ...]
    output_tokens: tuple[str, ...]  # JMESPath expressions into a page
    result_keys: tuple[str, ...]  # JMESPath expressions: the lists a page carries
    more_results: str | None = None  # e.g. KMS's Truncated

    @classmethod
    def from_model(cls, config: dict) -> "Pagination":
        def names(value: Any) -> tuple[str, ...]:
            return tuple(value) if isinstance(value, list) else (value,)

        return cls(
            input_tokens=names(config["input_token"]),
            output_tokens=names(config["output_token"]),
            result_keys=names(config["result_key"]),
            more_results=config.get("more_results"),
        )

    def next_request(self, page: dict) -> dict[str, Any] | None:
        """The token parameters asking for the page after ``page``; None after the last page."""
        if self.more_results and not jmespath.search(self.more_results, page):
            return None
        tokens = {
            name: value
            for name, expression in zip(self.input_tokens, self.output_tokens)
            if (value := jmespath.search(expression, page)) not in (None, "")
        }
        return tokens or None


PaginationLookup = Callable[[OperationModel], "Pagination | None"]


def install(client: Any, pagination: PaginationLookup) -> None:
    """Check every answer ``client`` receives (``pagination`` finds an operation's paginator)."""
    events = client.meta.events
    events.register("before-parse", _check_body, unique_id="bedrock-sql-check-body")

    def check_parsed(http_response, parsed, model, **_kwargs):
        _check_parsed(http_response, parsed, model, pagination(model))

    events.register("after-call", check_parsed, unique_id="bedrock-sql-check-parsed")


def require_fields(response: dict, paths: tuple[str, ...], operation: str) -> None:
    """Raise :class:`InvalidResponseError` unless every dotted path of ``paths`` has a value.

    For what the service model leaves optional but a provider needs to name a resource
    (DescribeKey's ``KeyMetadata.Arn``, say).
    """
    for path in paths:
        value: Any = response
        for part in path.split("."):
            value = value.get(part) if isinstance(value, dict) else None
        if value is None:
            raise InvalidResponseError(operation=operation, reason=f"200 answer has no {path}")


# --------------------------------------------------------------------------- the raw body


def _body_members(shape: Shape | None) -> list[str]:
    if not isinstance(shape, StructureShape):
        return []
    return [name for name, member in shape.members.items() if not member.serialization.get("location")]


def _check_body(operation_model: OperationModel, response_dict: dict, **_kwargs) -> None:
    if response_dict.get("status_code", 0) >= 300 or operation_model.has_streaming_output:
        return  # errors are botocore's to parse; streams are read by the caller
    output = operation_model.output_shape
    if not _body_members(output) or (output is not None and output.serialization.get("payload")):
        return  # nothing is expected in the body (or it is a raw payload)
    protocol = operation_model.service_model.resolved_protocol
    body = response_dict.get("body") or b""
    content_type = _content_type(response_dict.get("headers") or {})
    if not body.strip():
        _invalid(operation_model, f"{_status(response_dict)} answer has an empty body ({content_type})")
    if protocol in JSON_PROTOCOLS:
        _check_json(operation_model, response_dict, body, content_type)
    elif protocol in XML_PROTOCOLS:
        _check_xml(operation_model, response_dict, body, content_type, protocol)


def _check_json(operation_model: OperationModel, response_dict: dict, body: bytes, content_type: str) -> None:
    status = _status(response_dict)
    try:
        document = json.loads(body)
    except UnicodeDecodeError:
        _invalid(operation_model, f"{status} answer is not JSON ({content_type}): {_start(body)}")
    except ValueError as exc:
        what = "truncated or invalid JSON" if body.lstrip()[:1] in (b"{", b"[") else "not JSON"
        _invalid(operation_model, f"{status} answer is {what} ({content_type}): {exc}; it starts {_start(body)}")
    if not isinstance(document, dict):
        _invalid(operation_model, f"{status} answer is JSON but {_json_type(document)}, not an object")
    mismatch = _container_mismatch(operation_model.output_shape, document, "")
    if mismatch:
        _invalid(operation_model, f"{status} answer's {mismatch}")


def _container_mismatch(shape: Shape, value: Any, path: str) -> str | None:
    """Where the JSON's objects and arrays do not have the output shape's form, if anywhere.

    botocore's parser trusts the form: an object where a list must be crashes it (an
    AttributeError, no botocore error). Scalars are left to the parser, which is lenient.
    """
    expected = {"structure": dict, "map": dict, "list": list}.get(shape.type_name)
    if expected is None or value is None:
        return None
    if not isinstance(value, expected):
        return f"{path.rstrip('.') or 'body'} is {_json_type(value)}, not {_json_type(expected())}"
    if isinstance(shape, StructureShape):
        for name, member in shape.members.items():
            if member.serialization.get("location"):
                continue
            key = member.serialization.get("name", name)
            found = _container_mismatch(member, value.get(key), f"{path}{name}.")
            if found:
                return found
    elif isinstance(shape, ListShape):
        for index, item in enumerate(value):
            found = _container_mismatch(shape.member, item, f"{path.rstrip('.')}[{index}].")
            if found:
                return found
    elif isinstance(shape, MapShape):
        for key, item in value.items():
            found = _container_mismatch(shape.value, item, f"{path}{key}.")
            if found:
                return found
    return None


def _json_type(value: Any) -> str:
    return {dict: "an object", list: "a list", str: "a string", bool: "a boolean"}.get(type(value), "a number")


def _check_xml(operation_model: OperationModel, response_dict: dict, body: bytes, content_type: str, protocol: str) -> None:
    status = _status(response_dict)
    try:
        root = ElementTree.fromstring(body)
    except ElementTree.ParseError as exc:
        _invalid(operation_model, f"{status} answer is not XML ({content_type}): {exc}; it starts {_start(body)}")
    expected = f"{operation_model.name}Response"
    if protocol in _ROOT_NAMED_AFTER_OPERATION and _local(root.tag) != expected:
        _invalid(operation_model, f"{status} answer is XML but not a {operation_model.name} answer (root <{root.tag}>)")
    wrapper = operation_model.output_shape.serialization.get("resultWrapper")
    if wrapper and not any(_local(child.tag) == wrapper for child in root):
        # botocore's query parser would fail on it with a bare KeyError
        _invalid(operation_model, f"{status} answer has no {wrapper}")


def _local(tag: str) -> str:
    return tag.rsplit("}", 1)[-1]


# --------------------------------------------------------------------------- the parsed answer


def _check_parsed(http_response: Any, parsed: dict, model: OperationModel, pagination: Pagination | None) -> None:
    if getattr(http_response, "status_code", 200) >= 300 or model.has_streaming_output:
        return
    output = model.output_shape
    if not isinstance(output, StructureShape) or not output.members:
        return
    missing = list(_missing_required(output, parsed, ""))
    if missing:
        more = f" (and {len(missing) - 3} more)" if len(missing) > 3 else ""
        _invalid(model, f"200 answer lacks required {', '.join(missing[:3])}{more}")
    body_members = _body_members(output)
    if body_members and not any(parsed.get(name) is not None for name in body_members):
        _invalid(model, f"200 answer carries none of {', '.join(body_members[:4])}")
    if pagination is None:
        return
    for key in pagination.result_keys:
        items = jmespath.search(key, parsed)
        if not isinstance(items, list):
            found = "no" if items is None else f"a {type(items).__name__} as"
            _invalid(model, f"200 answer has {found} {key} (the list it must return)")
    if pagination.more_results and jmespath.search(pagination.more_results, parsed):
        if pagination.next_request(parsed) is None:
            _invalid(model, f"200 answer says {pagination.more_results} but names no next page")


def _missing_required(shape: Shape, value: Any, path: str) -> Iterator[str]:
    """Dotted paths of required scalar members absent from ``value`` (parsed per ``shape``).

    Only scalars (identifiers, names, timestamps, flags): a required *structure or list* is
    often a configuration block that services -- and moto -- leave out when it is empty
    (GetModelCustomizationJob's ``validationDataConfig`` for a job without validation data),
    so demanding it would turn healthy resources into errors.
    """
    if isinstance(shape, StructureShape) and isinstance(value, dict):
        for name in shape.required_members:
            if value.get(name) is None and shape.members[name].type_name not in _CONTAINER_TYPES:
                yield f"{path}{name}"
        for name, member in shape.members.items():
            if value.get(name) is not None:
                yield from _missing_required(member, value[name], f"{path}{name}.")
    elif isinstance(shape, ListShape) and isinstance(value, list):
        for index, item in enumerate(value):
            yield from _missing_required(shape.member, item, f"{path.rstrip('.')}[{index}].")


# --------------------------------------------------------------------------- helpers


def _invalid(model: OperationModel, reason: str):
    raise InvalidResponseError(operation=model.name, reason=reason)


def _status(response_dict: dict) -> int:
    return response_dict.get("status_code", 200)


def _content_type(headers: Any) -> str:
    # Asked of every answer: botocore's headers are case-insensitive, so look it up directly.
    value = headers.get("content-type") or headers.get("Content-Type")
    if value is None:
        value = next((v for name, v in dict(headers).items() if name.lower() == "content-type"), None)
    return (value or "").split(";", 1)[0].strip() or "no content type"


def _start(body: bytes, length: int = 40) -> str:
    """The first characters of ``body``, on one line, for a message."""
    text = body[:length].decode("utf-8", "replace")
    return repr(" ".join(text.split()) + ("..." if len(body) > length else ""))
