"""What the Bedrock providers share: a get that also reads the resource's tags, and the
pushdown of an enumerated status filter."""

from __future__ import annotations

from typing import Any, Callable

from ..aws import ApiError, UnitApi
from .base import tags_to_dict

# The only answer that means "no such resource here". Bedrock (and moto) answer it for a
# well-formed name or ARN that names nothing, so it also answers a live `WHERE arn = ...` in
# a region that does not hold the resource. ValidationException is not one: it is an error
# against the resource (a malformed key in a live query is reported, not hidden).
NOT_FOUND = {"ResourceNotFoundException"}

# The tables of models. Where a model came from (its import or copy job) and what serves it
# (provisioned throughput, deployments) live in the model's own account and region: those
# tables are listed, by default, only where a model is (Table.context_of).
MODEL_TABLES = ("aws_bedrock_custom_model", "aws_bedrock_imported_model")


def get_detail(api: UnitApi, operation: str, arn_key: str, **params) -> dict | None:
    """Call a Bedrock get ``operation``; None only when Bedrock says the resource does not exist.

    The answer must name the resource (``arn_key``), even where the service model leaves
    it optional (GetImportedModel): an answer without it is an error, never a row without
    an ARN. Any failure other than not-found raises ApiError.
    """
    try:
        item = api.call("bedrock", operation, require=(arn_key,), **params)
    except ApiError as exc:
        if exc.code in NOT_FOUND:
            return None
        raise
    item.pop("ResponseMetadata", None)
    return item


def get_with_tags(api: UnitApi, operation: str, arn_key: str, *, tags_of: str | None = None, **params) -> dict | None:
    """:func:`get_detail`, plus the resource's tags (ListTagsForResource) as ``item["tags"]``.

    When the resource's ARN is known before the get (``tags_of``, or an identifier that is
    an ARN: the listing gave it), the tags are read during the get, not after it. A failed
    tags call costs only the tags: it is recorded and ``tags`` is NULL.
    """
    known = tags_of or next((v for v in params.values() if isinstance(v, str) and v.startswith("arn:")), None)
    early_tags = api.start(lambda: _tags_outcome(api, known)) if known else None
    item = get_detail(api, operation, arn_key, **params)
    if item is None:
        return None  # not found: whatever its tags call said is moot
    arn = item[arn_key]
    # The answer names the resource: tags read under another name are read again under it.
    tags = early_tags() if early_tags is not None and known == arn else _tags_outcome(api, arn)
    if isinstance(tags, ApiError):
        api.record(tags, resource=arn)
        tags = None
    item["tags"] = tags
    return item


def _tags_outcome(api: UnitApi, arn: str) -> dict | ApiError:
    """The resource's tags, or the failure that cost them (recorded only once the resource is known to exist)."""
    try:
        return tags_to_dict(api.call("bedrock", "list_tags_for_resource", resourceARN=arn).get("tags"))
    except ApiError as exc:
        return exc


def one_of(*allowed: str) -> Callable[[Any], str]:
    """A ListFilter converter for an enumerated API parameter (``statusEquals``).

    AWS rejects any other value (so would every region): raising ValueError leaves the
    filter to SQLite alone, which then finds no row, as it should.
    """

    def convert(value: Any) -> str:
        if value not in allowed:
            raise ValueError(value)
        return value

    return convert
