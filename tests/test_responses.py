"""Every answer checked (bedrock_sql.responses), every page asked once (UnitApi.paginate).

No network: a ``before-send`` handler answers each request with raw bytes, so botocore
parses them exactly as it would parse AWS (or a captive portal).
"""

from __future__ import annotations

import json
from typing import Callable
from urllib.parse import parse_qs, urlsplit

import boto3
import botocore.exceptions
import pytest
from botocore.awsrequest import AWSResponse
from botocore.parsers import ResponseParserError

from bedrock_sql import aws as aws_module
from bedrock_sql.aws import Account, ApiError, ClientFactory, Unit, UnitApi
from bedrock_sql.errors import UserError

ACCOUNT = "123456789012"
JSON = "application/json"
KMS_JSON = "application/x-amz-json-1.1"
STS_IDENTITY = (
    b'<GetCallerIdentityResponse xmlns="https://sts.amazonaws.com/doc/2011-06-15/"><GetCallerIdentityResult>'
    b"<Arn>arn:aws:iam::123456789012:user/a</Arn><UserId>AIDA</UserId><Account>123456789012</Account>"
    b"</GetCallerIdentityResult><ResponseMetadata><RequestId>r</RequestId></ResponseMetadata></GetCallerIdentityResponse>"
)
MODEL = {
    "modelArn": f"arn:aws:bedrock:us-east-1:{ACCOUNT}:custom-model/amazon.titan-text-express-v1:0:8k/abcdefghijkl",
    "modelName": "m",
    "creationTime": "2026-11-28T12:00:00Z",
    "baseModelArn": "arn:aws:bedrock:us-east-1::foundation-model/amazon.titan-text-express-v1:0:8k",
    "baseModelName": "titan",
}


class _Body:
    def __init__(self, data: bytes):
        self.data = data

    def stream(self, **kwargs):
        yield self.data


Answer = tuple[int, str, bytes]  # status, content type, body


class Server:
    """Answers the requests of one operation from a script; records what was asked."""

    def __init__(self, api: UnitApi, service: str, operation: str, answers: list[Answer | Exception] | Callable):
        self.asked: list[dict] = []
        self.answers = answers

        def answer(request, **_kwargs):
            self.asked.append(_params(request))
            scripted = self.answers(self.asked[-1]) if callable(self.answers) else self.answers.pop(0)
            if isinstance(scripted, Exception):
                raise scripted
            status, content_type, body = scripted
            return AWSResponse(request.url, status, {"Content-Type": content_type}, _Body(body))

        api.client(service).meta.events.register(f"before-send.{service}.{operation}", answer)


def _params(request) -> dict:
    query = {k: v[0] for k, v in parse_qs(urlsplit(request.url).query).items()}
    body = request.body or b""
    if isinstance(body, str):
        body = body.encode()
    try:
        return {**query, **(json.loads(body) if body else {})}
    except ValueError:
        return {**query, **{k: v[0] for k, v in parse_qs(body.decode()).items()}}


def ok(document: dict, content_type: str = JSON) -> Answer:
    return 200, content_type, json.dumps(document).encode()


def throttled() -> Answer:
    return 400, JSON, b'{"__type": "ThrottlingException", "message": "Rate exceeded"}'


@pytest.fixture
def api(monkeypatch: pytest.MonkeyPatch) -> UnitApi:
    monkeypatch.setattr(aws_module, "backoff_delay", lambda attempt: 0)  # no sleeping
    session = boto3.Session(aws_access_key_id="a", aws_secret_access_key="b", region_name="us-east-1")
    account = Account(session=session, label="test", account_id=ACCOUNT)
    return UnitApi(ClientFactory(), Unit(account=account, account_id=ACCOUNT, region="us-east-1"))


def failure(api: UnitApi, call: Callable) -> ApiError:
    with pytest.raises(ApiError) as raised:
        call()
    return raised.value


# --------------------------------------------------------------------------- bad answers


@pytest.mark.parametrize(
    "answer, says",
    [
        ((200, "text/html", b"<html><body>Please sign in</body></html>"), "200 answer is not JSON (text/html)"),
        ((200, JSON, b""), "200 answer has an empty body (application/json)"),
        ((200, JSON, b'{"modelSummaries": [{"modelArn": "arn:aws:bedr'), "200 answer is truncated or invalid JSON"),
        ((200, JSON, b"[1, 2]"), "200 answer is JSON but a list, not an object"),
        ((200, JSON, b"{}"), "200 answer carries none of nextToken, modelSummaries"),
        (ok({"nextToken": "x"}), "200 answer has no modelSummaries (the list it must return)"),
        (ok({"modelSummaries": {"a": 1}}), "200 answer's modelSummaries is an object, not a list"),
        (ok({"modelSummaries": ["arn"]}), "200 answer's modelSummaries[0] is a string, not an object"),
        (ok({"modelSummaries": [{"modelName": "m"}]}), "200 answer lacks required modelSummaries[0].modelArn"),
    ],
    ids=["html", "empty", "truncated", "json-list", "empty-object", "no-list", "list-not-a-list", "item-not-an-object",
         "item-without-arn"],
)
def test_a_bad_listing_answer_is_an_error_after_three_attempts(api: UnitApi, answer: Answer, says: str) -> None:
    server = Server(api, "bedrock", "ListCustomModels", lambda params: answer)
    error = failure(api, lambda: list(api.paginate("bedrock", "list_custom_models")))
    assert (error.operation, error.code) == ("ListCustomModels", "InvalidResponse")
    assert error.message.startswith(says), error.message
    assert "\n" not in error.message
    assert len(server.asked) == aws_module.TRANSIENT_ATTEMPTS


def test_a_bad_answer_that_heals_is_invisible(api: UnitApi) -> None:
    server = Server(api, "bedrock", "ListCustomModels", [(200, "text/html", b"<html/>"), ok({"modelSummaries": [MODEL]})])
    assert [m["modelName"] for m in api.paginate("bedrock", "list_custom_models")] == ["m"]
    assert len(server.asked) == 2


@pytest.mark.parametrize(
    "service, operation, method, answer",
    [
        ("bedrock", "ListCustomModels", "list_custom_models", ok({"modelSummaries": []})),
        ("bedrock", "ListModelCustomizationJobs", "list_model_customization_jobs", ok({"modelCustomizationJobSummaries": []})),
        ("kms", "ListKeys", "list_keys", ok({"Keys": [], "Truncated": False}, KMS_JSON)),
        ("kms", "ListAliases", "list_aliases", ok({"Aliases": [], "Truncated": False}, KMS_JSON)),
    ],
    ids=lambda value: value if isinstance(value, str) and value[0].isupper() else "",
)
def test_an_empty_region_is_no_error(api: UnitApi, service: str, operation: str, method: str, answer: Answer) -> None:
    server = Server(api, service, operation, [answer])
    assert list(api.paginate(service, method)) == []
    assert len(server.asked) == 1


def test_a_page_that_says_truncated_must_name_the_next(api: UnitApi) -> None:
    Server(api, "kms", "ListKeys", lambda params: ok({"Keys": [{"KeyId": "k"}], "Truncated": True}, KMS_JSON))
    error = failure(api, lambda: list(api.paginate("kms", "list_keys")))
    assert error.message == "200 answer says Truncated but names no next page"


def test_a_get_must_carry_what_names_its_resource(api: UnitApi) -> None:
    Server(api, "bedrock", "GetCustomModel", lambda params: ok({"modelName": "m", "creationTime": "2026-11-28T12:00:00Z"}))
    error = failure(api, lambda: api.call("bedrock", "get_custom_model", modelIdentifier="m"))
    assert error.message == "200 answer lacks required modelArn"


def test_a_caller_may_require_more_than_the_model(api: UnitApi) -> None:
    Server(api, "kms", "DescribeKey", lambda params: ok({"KeyMetadata": {"KeyId": "k"}}, KMS_JSON))
    error = failure(api, lambda: api.call("kms", "describe_key", KeyId="k", require=("KeyMetadata.Arn",)))
    assert (error.operation, error.code, error.message) == ("DescribeKey", "InvalidResponse", "200 answer has no KeyMetadata.Arn")


def test_an_optional_configuration_block_may_be_absent(api: UnitApi) -> None:
    """validationDataConfig is "required" in botocore's model, yet absent for jobs without
    validation data (moto, and plausibly AWS): only required scalars are demanded."""
    job = {
        "jobArn": f"arn:aws:bedrock:us-east-1:{ACCOUNT}:model-customization-job/amazon.titan-text-express-v1:0:8k/abcdefghijkl",
        "jobName": "j", "outputModelName": "m", "roleArn": f"arn:aws:iam::{ACCOUNT}:role/r",
        "creationTime": "2026-11-28T12:00:00Z", "baseModelArn": MODEL["baseModelArn"],
        "trainingDataConfig": {"s3Uri": "s3://b/t"}, "outputDataConfig": {"s3Uri": "s3://b/o"},
    }
    Server(api, "bedrock", "GetModelCustomizationJob", [ok(job)])
    assert api.call("bedrock", "get_model_customization_job", jobIdentifier="j")["jobName"] == "j"


@pytest.mark.parametrize(
    "answer, says",
    [
        ((200, "text/html", b"<html><body>Please sign in</body></html>"), "200 answer is XML but not a GetCallerIdentity answer"),
        ((200, "text/html", b"<!DOCTYPE html><p>Sign in<br></p>"), "200 answer is not XML (text/html)"),
        ((200, "text/xml", STS_IDENTITY[:120]), "200 answer is not XML (text/xml)"),
        ((200, "text/xml", b""), "200 answer has an empty body"),
        ((200, "text/xml", b"<GetCallerIdentityResponse/>"), "200 answer has no GetCallerIdentityResult"),
        ((200, "text/xml", b"<GetCallerIdentityResponse><GetCallerIdentityResult/></GetCallerIdentityResponse>"),
         "200 answer carries none of UserId, Account, Arn"),
    ],
    ids=["html-as-xml", "html", "truncated", "empty", "no-result", "no-members"],
)
def test_a_bad_sts_answer_is_an_error(api: UnitApi, answer: Answer, says: str) -> None:
    Server(api, "sts", "GetCallerIdentity", lambda params: answer)
    error = failure(api, lambda: api.call("sts", "get_caller_identity"))
    assert (error.operation, error.code) == ("GetCallerIdentity", "InvalidResponse")
    assert error.message.startswith(says), error.message


def test_a_good_sts_answer_passes(api: UnitApi) -> None:
    Server(api, "sts", "GetCallerIdentity", [(200, "text/xml", STS_IDENTITY)])
    assert api.call("sts", "get_caller_identity")["Account"] == ACCOUNT


# --------------------------------------------------------------------------- network failures


@pytest.mark.parametrize(
    "raised, code",
    [
        (botocore.exceptions.ReadTimeoutError(endpoint_url="https://x"), "ReadTimeoutError"),
        (botocore.exceptions.EndpointConnectionError(endpoint_url="https://x"), "EndpointConnectionError"),
        (botocore.exceptions.SSLError(endpoint_url="https://x", error="bad certificate"), "SSLError"),
        (botocore.exceptions.ProxyConnectionError(proxy_url="http://proxy", error="refused"), "ProxyConnectionError"),
        (ResponseParserError("Unable to parse response"), "ResponseParserError"),
    ],
    ids=lambda value: value if isinstance(value, str) else "",
)
def test_network_and_parser_failures_are_api_errors_after_three_attempts(api: UnitApi, raised: Exception, code: str) -> None:
    server = Server(api, "bedrock", "ListCustomModels", lambda params: raised)
    error = failure(api, lambda: list(api.paginate("bedrock", "list_custom_models")))
    assert (error.operation, error.code) == ("ListCustomModels", code)
    assert len(server.asked) == aws_module.TRANSIENT_ATTEMPTS


def test_read_timeout_is_configurable(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("BEDROCK_SQL_READ_TIMEOUT", "1.5")
    assert ClientFactory().config.read_timeout == 1.5
    monkeypatch.delenv("BEDROCK_SQL_READ_TIMEOUT")
    assert ClientFactory().config.read_timeout == aws_module.DEFAULT_READ_TIMEOUT
    for bad in ("soon", "0", "-1"):
        monkeypatch.setenv("BEDROCK_SQL_READ_TIMEOUT", bad)
        with pytest.raises(UserError, match="BEDROCK_SQL_READ_TIMEOUT"):
            ClientFactory()


def test_backoff_base_is_configurable(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("BEDROCK_SQL_BACKOFF_BASE", "0.002")
    assert all(0 <= aws_module.backoff_delay(attempt) <= 0.002 * 2 ** (attempt - 1) for attempt in range(1, 6))
    monkeypatch.setenv("BEDROCK_SQL_BACKOFF_BASE", "fast")
    with pytest.raises(UserError, match="BEDROCK_SQL_BACKOFF_BASE"):
        ClientFactory()


# --------------------------------------------------------------------------- pagination


def model(i: int) -> dict:
    return {**MODEL, "modelName": f"m{i}", "modelArn": MODEL["modelArn"][:-12] + f"{i:012d}"}


def pages_of(items: list[dict], size: int) -> Callable[[dict], Answer]:
    """Answers ListCustomModels page by page; the token is the next item's index."""

    def answer(params: dict) -> Answer:
        start = int(params.get("nextToken", 0))
        page = {"modelSummaries": items[start : start + size]}
        if start + size < len(items):
            page["nextToken"] = str(start + size)
        return ok(page)

    return answer


def test_a_throttled_page_is_asked_again_from_its_own_token(api: UnitApi) -> None:
    items = [model(i) for i in range(7)]
    paged = pages_of(items, 3)
    throttles = {"3": 2}  # page 2 (token "3") is throttled twice

    def answer(params: dict) -> Answer:
        token = params.get("nextToken")
        if throttles.get(token):
            throttles[token] -= 1
            return throttled()
        return paged(params)

    server = Server(api, "bedrock", "ListCustomModels", answer)
    names = [m["modelName"] for m in api.paginate("bedrock", "list_custom_models", creationTimeAfter="2026-01-01")]
    assert names == [f"m{i}" for i in range(7)]  # each once, in order
    assert [p.get("nextToken") for p in server.asked] == [None, "3", "3", "3", "6"]
    assert all(p["creationTimeAfter"].startswith("2026-01-01") for p in server.asked)  # filters kept on every page


def test_the_same_token_twice_is_an_error_not_a_loop(api: UnitApi) -> None:
    Server(api, "bedrock", "ListCustomModels", lambda params: ok({"modelSummaries": [model(0)], "nextToken": "again"}))
    seen = []
    with pytest.raises(ApiError) as raised:
        for item in api.paginate("bedrock", "list_custom_models"):
            seen.append(item["modelName"])
    assert (raised.value.operation, raised.value.code) == ("ListCustomModels", "RepeatedPageToken")
    assert seen == ["m0", "m0"]  # the pages before the repeat were yielded, then it stopped


def test_kms_pages_follow_next_marker_until_not_truncated(api: UnitApi) -> None:
    def answer(params: dict) -> Answer:
        if params.get("Marker") is None:
            return ok({"Keys": [{"KeyId": "a"}], "NextMarker": "m2", "Truncated": True}, KMS_JSON)
        return ok({"Keys": [{"KeyId": "b"}], "Truncated": False}, KMS_JSON)

    server = Server(api, "kms", "ListKeys", answer)
    assert [k["KeyId"] for k in api.paginate("kms", "list_keys")] == ["a", "b"]
    assert [p.get("Marker") for p in server.asked] == [None, "m2"]


def test_names_come_from_the_paginator_model(api: UnitApi) -> None:
    with pytest.raises(ValueError, match="not paginated"):
        next(api.paginate("bedrock", "get_custom_model"))
    with pytest.raises(ValueError, match="modelSummaries"):
        next(api.paginate("bedrock", "list_custom_models", "Items"))
