"""What the Bedrock providers share: a get that also reads the resource's tags."""

from __future__ import annotations

from ..aws import ApiError, UnitApi
from .base import tags_to_dict

# The only answer that means "no such resource here". Bedrock (and moto) answer it for a
# well-formed name or ARN that names nothing, so it also answers a live `WHERE arn = ...` in
# a region that does not hold the resource. ValidationException is not one: it is an error
# against the resource (a malformed key in a live query is reported, not hidden).
NOT_FOUND = {"ResourceNotFoundException"}


def get_with_tags(api: UnitApi, operation: str, arn_key: str, **params) -> dict | None:
    """Call a Bedrock get ``operation``; add the resource's tags (ListTagsForResource).

    None only when Bedrock says the resource does not exist (it was deleted between list
    and get, or a key names nothing in this region); any other failure raises ApiError. A
    failed tags call costs only the tags: it is recorded and ``tags`` is NULL.
    """
    try:
        item = api.call("bedrock", operation, **params)
    except ApiError as exc:
        if exc.code in NOT_FOUND:
            return None
        raise
    item.pop("ResponseMetadata", None)
    arn = item[arn_key]  # required by the service model: checked in responses.py
    item["tags"] = api.optional(
        lambda: tags_to_dict(api.call("bedrock", "list_tags_for_resource", resourceARN=arn).get("tags")),
        resource=arn,
    )
    return item
