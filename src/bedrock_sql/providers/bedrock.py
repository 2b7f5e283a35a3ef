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


def get_with_tags(api: UnitApi, operation: str, arn_key: str, **params) -> dict | None:
    """:func:`get_detail`, plus the resource's tags (ListTagsForResource) as ``item["tags"]``.

    A failed tags call costs only the tags: it is recorded and ``tags`` is NULL.
    """
    item = get_detail(api, operation, arn_key, **params)
    if item is None:
        return None
    arn = item[arn_key]
    item["tags"] = api.optional(
        lambda: tags_to_dict(api.call("bedrock", "list_tags_for_resource", resourceARN=arn).get("tags")),
        resource=arn,
    )
    return item


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
