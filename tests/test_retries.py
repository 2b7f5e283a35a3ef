"""Retries: every attempt is ours (botocore makes one), so attempts never multiply."""

from __future__ import annotations

import pytest
from botocore.awsrequest import AWSResponse

from bedrock_sql import aws as aws_module
from bedrock_sql.aws import Account, ApiError, ClientFactory, Unit, UnitApi


class _Body:
    def __init__(self, data: bytes):
        self.data = data

    def stream(self, **kwargs):
        yield self.data


def answer_with(status: int, code: str, sends: list):
    def handler(request, **kwargs):
        sends.append(request.url)
        headers = {"x-amzn-ErrorType": code, "Content-Type": "application/json"}
        return AWSResponse(request.url, status, headers, _Body(b'{"message": "no"}'))

    return handler


@pytest.fixture
def api(aws, monkeypatch):
    monkeypatch.setattr(aws_module, "backoff_delay", lambda attempt: 0)  # no sleeping in tests
    account = Account(session=aws, label="test", account_id="123456789012")
    return UnitApi(ClientFactory(), Unit(account=account, account_id="123456789012", region="us-east-1"))


@pytest.mark.parametrize(
    "max_attempts, status, code, expected_sends",
    [
        ("3", 400, "ThrottlingException", 3),  # AWS_MAX_ATTEMPTS in all, not 3 x botocore's
        ("5", 400, "ThrottlingException", 5),
        ("5", 500, "InternalServerException", 3),  # transient: TRANSIENT_ATTEMPTS
        ("5", 403, "AccessDeniedException", 1),  # a refusal is final at once
    ],
)
def test_attempts_per_call(api, monkeypatch, max_attempts, status, code, expected_sends):
    monkeypatch.setenv("AWS_MAX_ATTEMPTS", max_attempts)
    api.factory.max_attempts = aws_module.max_attempts()
    sends: list = []
    api.client("bedrock").meta.events.register(
        "before-send.bedrock.ListCustomModels", answer_with(status, code, sends)
    )
    with pytest.raises(ApiError) as failure:
        api.call("bedrock", "list_custom_models")
    assert failure.value.code == code
    assert failure.value.operation == "ListCustomModels"
    assert len(sends) == expected_sends


def test_a_throttle_that_clears_is_invisible(api):
    sends: list = []
    throttle = answer_with(400, "ThrottlingException", sends)

    def first_two_throttled(request, **kwargs):
        if len(sends) < 2:
            return throttle(request)
        sends.append(request.url)
        return None  # let moto answer

    api.client("bedrock").meta.events.register("before-send.bedrock.ListCustomModels", first_two_throttled)
    assert api.call("bedrock", "list_custom_models")["modelSummaries"] == []
    assert len(sends) == 3
