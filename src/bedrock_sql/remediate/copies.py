"""Copied models: copied again from their source, with the CMK.

A model a copy job produced (its ARN is the job's ``target_model_arn``) is re-created by
``CreateModelCopyJob`` in the copy's own account and region, from the same source, with
``modelKmsKeyId``, the copy's tags and a deterministic client request token
(:func:`copy_step`). Two cases cannot be a step the plan runs:

- the source is in another account: this account cannot see whether the source is still
  shared with it or whether it passes the rule there, so the copy is a manual step that
  says so;
- the source itself fails the rule (same account): the plan re-creates the source first,
  and the copy must be made from the *fixed* source. The new source's ARN exists only once
  its job has completed (a customization job's model ARN ends in an ID Bedrock picks), so
  the copy is a follow-up step naming the new source by its name, to run once it is Active.
"""

from __future__ import annotations

from typing import Any

from ..errors import UserError
from .jobs import input_shape, new_name, request_token
from .parts import COPY_JOBS, MODELS, FillIn, KeyChoice, ManualStep, Step, Target, json_value, query_rows, tag_list
from .served import model_arn_lookup

_OPERATION = "CreateModelCopyJob"


def copy_source(connection, target: Target) -> dict[str, Any] | None:
    """The copy job that produced ``target`` (its snapshot row; the newest when several did)."""
    found = query_rows(
        connection,
        f"SELECT * FROM {COPY_JOBS} WHERE target_model_arn = ? ORDER BY creation_time DESC LIMIT 1",
        (target.model_arn,),
    )
    return found[0] if found else None


def _params(target: Target, copy: dict[str, Any], source_arn: str, key: KeyChoice, suffix: str) -> dict[str, Any]:
    tags = json_value(copy.get("target_model_tags")) or json_value(target.row.get("tags"))
    values = {
        "sourceModelArn": source_arn,
        "targetModelName": new_name(target.model_name, suffix, "targetModelName", _OPERATION),
        "modelKmsKeyId": key.ref,
        "targetModelTags": tag_list(tags),
        "clientRequestToken": request_token(copy["arn"], suffix, key),
    }
    return {m: values[m] for m in input_shape(_OPERATION).members if values.get(m) not in (None, [], {})}


def copy_step(
    connection, target: Target, copy: dict[str, Any], key: KeyChoice, suffix: str, fixed_sources: dict[str, "str | FillIn"]
) -> Step | ManualStep:
    """The re-copy of ``target``: a step, or a manual/follow-up step when the source rules it out.

    ``fixed_sources`` maps the ARN of each model this plan re-creates to the name of its
    replacement (a :class:`FillIn` when a human names it). Manual and follow-up steps name a
    new key by :attr:`KeyChoice.manual_ref`: they run later, outside the script.
    """
    source_arn = copy["source_model_arn"]
    source_account = copy.get("source_account_id") or source_arn.split(":")[4]
    params = _params(target, copy, source_arn, key, suffix)
    new_model = params["targetModelName"]
    now = target.encryption
    key_name = key.alias or key.arn
    manual = dict(
        service="bedrock", operation=_OPERATION, region=target.region, account_id=target.account_id,
        model_arn=target.model_arn, model_name=target.model_name,
    )
    if source_account != target.account_id:
        return ManualStep(
            params={**params, "modelKmsKeyId": key.manual_ref},
            reason=(
                f"Model {target.model_name} is a copy of {source_arn}, which belongs to account {source_account}. "
                f"This plan cannot see that model: make sure it is still shared with {target.account_id} and, if it "
                f"fails the rule there, remediate it in {source_account} first and copy its replacement; then copy it "
                f"again here with CreateModelCopyJob and modelKmsKeyId = {key_name}."
            ),
            **manual,
        )
    if source_arn in fixed_sources:
        replacement = fixed_sources[source_arn]
        source_region = source_arn.split(":")[3]
        if isinstance(replacement, str):
            lookup = model_arn_lookup(source_region, replacement)
            params["sourceModelArn"] = lookup
            named, how = replacement, f" (its ARN: {' '.join(lookup.command)})"
        else:  # the source is re-created by hand, under a name the human chooses
            named, how = "its replacement", ""
            params["sourceModelArn"] = FillIn("the ARN of the model that replaces the source")
        params["modelKmsKeyId"] = key.manual_ref
        return ManualStep(
            params=params,
            follow_up=True,
            reason=(
                f"Model {target.model_name} is a copy of {source_arn}, which fails the rule too and is re-created by "
                f"this plan as {named}. Copy the fixed model, not the old one: once {named} is Active{how}, run "
                f"CreateModelCopyJob in {target.region} with that ARN as sourceModelArn and modelKmsKeyId = {key_name}."
            ),
            **manual,
        )
    known = query_rows(connection, f"SELECT arn FROM {MODELS} WHERE arn = ?", (source_arn,))
    comment = (
        f"Model {target.model_name} ({target.model_arn}) is {now}. Copy its source {source_arn} again, "
        f"producing model {new_model} encrypted with {key_name}."
    )
    if not known:
        comment += " (The source is not in the snapshot: its own key was not checked.)"
    _check_name(connection, target, copy, new_model)
    return Step(
        service="bedrock",
        operation=_OPERATION,
        region=target.region,
        account_id=target.account_id,
        params=params,
        comment=comment,
        model_arn=target.model_arn,
        new_model_name=new_model,
    )


def _check_name(connection, target: Target, copy: dict[str, Any], new_model: str) -> None:
    """Refuse a new name another model already has, unless an earlier apply of this copy made it."""
    taken = query_rows(
        connection,
        f"SELECT arn FROM {MODELS} WHERE account_id = ? AND region = ? AND model_name = ?",
        (target.account_id, target.region, new_model),
    )
    if not taken:
        return
    ours = query_rows(
        connection,
        f"SELECT arn FROM {COPY_JOBS} WHERE target_model_arn = ? AND source_model_arn = ?",
        (taken[0]["arn"], copy["source_model_arn"]),
    )
    if not ours:
        raise UserError(f"a model named {new_model} already exists in {target.account_id}/{target.region}: choose another --suffix")
