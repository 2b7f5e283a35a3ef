"""Errors that the CLI turns into one line on stderr and exit code 2, and how a failed AWS
call reads on that line."""

from __future__ import annotations

import re

import botocore.exceptions
import botocore.parsers


class UserError(Exception):
    """A mistake the user can fix: bad SQL, a missing snapshot, no credentials...

    The message is shown as is, on one line, without a traceback.
    """


# What an AWS or network failure can be raised as (UnitApi classifies with it; the CLI maps it): botocore's own
# errors, AWS's error answers, and an answer botocore could not parse at all (an HTML page from
# something that is not AWS). ResponseParserError is not a BotoCoreError, hence its own entry.
# bedrock_sql.aws.ApiError (which wraps these) is added by the CLI: aws.py imports this module.
BOTOCORE_FAILURES: tuple[type[BaseException], ...] = (
    botocore.exceptions.BotoCoreError,
    botocore.exceptions.ClientError,
    botocore.parsers.ResponseParserError,
)

REASON_MAX = 240

# botocore quotes the whole unparsable body after this; the first line says what was wrong.
_BODY_DUMP = re.compile(r"\s*Further retries may succeed:.*$", re.DOTALL)


def short_reason(message: str) -> str:
    """An AWS/botocore error message cut to what a person reads: no dumped body, one line."""
    text = _BODY_DUMP.sub("", message)
    text = " ".join(text.split())
    if len(text) > REASON_MAX:
        text = text[: REASON_MAX - 3].rstrip() + "..."
    return text


def describe_failure(code: str, message: str) -> str:
    """``code: reason``, or only the reason when the message already says it all."""
    reason = short_reason(message)
    if code == "ResponseParserError":
        return f"the answer is not an AWS response ({reason})"
    return reason if not code or reason.startswith(code) else f"{code}: {reason}"


def _error_answer(response: dict) -> str:
    """What an error answer said; one with no AWS error code is some web server's page."""
    error = response.get("Error") or {}
    code, message = error.get("Code") or "", error.get("Message") or ""
    meta = response.get("ResponseMetadata") or {}
    status = meta.get("HTTPStatusCode")
    if not code or code in ("Unknown", str(status)):  # botocore's stand-ins for "no AWS error here"
        content_type = (meta.get("HTTPHeaders") or {}).get("content-type")
        return f"the answer is not an AWS response (HTTP {status}{', ' + content_type if content_type else ''})"
    return describe_failure(code, message)


def aws_failure_message(exc: BaseException, endpoint: str | None = None) -> str:
    """One line for an AWS or network failure that reached the CLI.

    ``<API> failed: <short reason> (endpoint URL)``; the endpoint is named when it is not
    AWS's own (``--endpoint-url``/``AWS_ENDPOINT_URL``), as that is then the usual culprit.
    """
    operation = getattr(exc, "operation", None) or getattr(exc, "operation_name", None) or api_call_of(exc)
    cause = exc.__cause__
    if isinstance(exc, botocore.exceptions.ClientError):
        reason = _error_answer(exc.response)
    elif isinstance(cause, botocore.exceptions.ClientError):  # bedrock_sql.aws.ApiError, from the answer
        reason = _error_answer(cause.response)
    elif isinstance(cause, botocore.exceptions.BotoCoreError):  # ApiError, from the network
        reason = describe_failure("", str(cause))
    elif isinstance(getattr(exc, "code", None), str) and hasattr(exc, "message"):  # ApiError
        reason = describe_failure(exc.code, exc.message)  # type: ignore[attr-defined]
    elif isinstance(exc, botocore.parsers.ResponseParserError):
        reason = describe_failure("ResponseParserError", str(exc))
    elif isinstance(exc, botocore.exceptions.BotoCoreError):
        reason = describe_failure("", str(exc))  # botocore's messages say what happened ("Could not connect to ...")
    else:  # raised by botocore's parser on an answer that is not AWS's (a KeyError on an HTML page)
        reason = describe_failure("ResponseParserError", f"{type(exc).__name__}: {exc}")
    where = f" (endpoint {endpoint})" if endpoint and endpoint not in reason else ""
    return f"{operation or 'an AWS call'} failed: {reason}{where}"


def api_call_of(exc: BaseException) -> str | None:
    """The AWS API whose botocore call raised ``exc``, read from its traceback; None if none did.

    botocore's parser and network errors do not carry the operation, and its parsers raise
    plain KeyError/TypeError on answers that are not AWS's; the frame of
    ``BaseClient._make_api_call(self, operation_name, api_params)`` names the call either way.
    """
    tb = exc.__traceback__
    operation = None
    while tb is not None:
        if tb.tb_frame.f_code.co_name == "_make_api_call" and "botocore" in tb.tb_frame.f_code.co_filename:
            operation = tb.tb_frame.f_locals.get("operation_name") or operation
        tb = tb.tb_next
    return operation if isinstance(operation, str) else None
