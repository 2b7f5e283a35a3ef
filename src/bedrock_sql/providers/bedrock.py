"""What the Bedrock providers share: a get that also reads the resource's tags."""

from __future__ import annotations

from ..aws import ApiError, UnitApi
from .base import tags_to_dict

NOT_FOUND = {"ResourceNotFoundException", "ValidationException"}


def get_with_tags(api: UnitApi, operation: str, arn_key: str, **params) -> dict | None:
    """Call a Bedrock get ``operation``; add the resource's tags (ListTagsForResource).

    None when the resource does not exist (it vanished between list and get, or a key
    names nothing in this region). A failed tags call costs only the tags: it is recorded
    and ``tags`` is NULL.
    """
    try:
        item = api.call("bedrock", operation, **params)
    except ApiError as exc:
        if exc.code in NOT_FOUND:
            return None
        raise
    item.pop("ResponseMetadata", None)
    arn = item[arn_key]
    item["tags"] = api.optional(
        lambda: tags_to_dict(api.call("bedrock", "list_tags_for_resource", resourceARN=arn).get("tags")),
        resource=arn,
    )
    return item
