"""What one pair of observations means: the change between a resource's two verdicts
(or two inventory values), and the sentence that says it. Used by :mod:`bedrock_sql.diff`.

Each (control, account, region, resource) seen in either snapshot gives one row: ``before``
and ``after`` are its status in OLD and in NEW (NULL where
it is absent; a control giving one resource several rows counts its worst), and ``change``
says what happened:

=================  ============================================================================
regressed          ``ok``, ``info`` or ``skip`` before, ``alarm`` now.
new alarm          ``alarm`` now, and OLD did not report it: absent from OLD, or ``error`` there
                   (it could not be judged), or absent because OLD's listing of it failed.
error appeared     ``error`` now; before absent, or anything but ``error``.
unknown            absent from NEW because NEW's listing of its table, in its account and
                   region, failed (``bedrock_listing_error``): whether it still exists is
                   unknown. Never "removed". (Inventory rows: present on one side only, and
                   the other side's listing failed; or a value one side could not read.)
still failing      ``alarm`` both times, or ``error`` both times.
resource removed   absent from NEW (its listing there succeeded); OLD said anything but ``error``.
resource added     absent from OLD (its listing there succeeded), ``ok``, ``info`` or ``skip`` now.
status changed     between ``ok``, ``info`` and ``skip`` (e.g. a model's key moved to another
                   account: ok -> info).
error cleared      ``error`` before (or absent because OLD's listing failed); now ``ok``, ``info``
                   or ``skip``, or absent (the row of a failed listing, resource
                   ``account/region``, goes once the listing works). Not "fixed": OLD never
                   showed it failing.
fixed              ``alarm`` before, ``ok``, ``info`` or ``skip`` now.
out of scope       present on one side only, in an account/region that only one snapshot
                   collected (``bedrock_sql_runs.accounts`` x ``regions``): not comparable.
unchanged          the same status both times.
=================  ============================================================================

Inventory changes that matter come as extra rows, with ``control`` = ``inventory``, the ARN as
``resource`` and the values as ``before``/``after``: for the KMS keys that encrypt a model in
either snapshot (``bedrock_model_encryption.key_arn``; other keys of the account are no
concern of this audit) ``key disabled`` (Enabled -> Disabled), ``key enabled``
(Disabled -> Enabled), ``key pending deletion`` (-> PendingDeletion), ``key deletion
cancelled`` (PendingDeletion -> Enabled/Disabled), ``key state changed`` (any other state
change), ``rotation turned off``/``rotation turned on`` (``key_rotation_enabled``), ``key
deleted``/``key added``; for every model (custom and imported) ``model key changed``
(``model_kms_key_arn``; "Bedrock-owned key" for none), ``model deleted``/``model added``;
and ``unknown``, ``out of scope``, ``unchanged`` as above.
"""

from __future__ import annotations

# Every change, worst first: the order of the table's groups and of every format's rows.
CHANGES = (
    "regressed", "new alarm", "error appeared", "unknown", "still failing",
    "key pending deletion", "key disabled", "key deleted", "rotation turned off", "model key changed", "key state changed",
    "resource removed", "model deleted", "resource added", "model added", "key added", "status changed",
    "error cleared", "key deletion cancelled", "key enabled", "rotation turned on", "fixed",
    "out of scope", "unchanged",
)
# Shown only with --all.
HIDDEN_CHANGES = ("out of scope", "unchanged")
# --fail-on NAME -> the change it fails on.
FAIL_ON = {"regressed": "regressed", "new-alarm": "new alarm"}
INVENTORY = "inventory"
BEDROCK_OWNED = "Bedrock-owned key"

# The table that lists a resource, from its ARN's (service, resource type): a resource absent
# from NEW is "unknown", not removed, when that listing failed in its account and region.
_LISTED_IN = {
    ("bedrock", "custom-model"): "aws_bedrock_custom_model",
    ("bedrock", "model-customization-job"): "aws_bedrock_model_customization_job",
    ("bedrock", "imported-model"): "aws_bedrock_imported_model",
    ("bedrock", "model-import-job"): "aws_bedrock_model_import_job",
    ("bedrock", "model-copy-job"): "aws_bedrock_model_copy_job",
    ("bedrock", "provisioned-model"): "aws_bedrock_provisioned_model_throughput",
    ("bedrock", "custom-model-deployment"): "aws_bedrock_custom_model_deployment",
    ("kms", "key"): "aws_kms_key",
    ("kms", "alias"): "aws_kms_alias",
}
_KEY_STATE_CHANGES = {
    ("Enabled", "Disabled"): "key disabled",
    ("Disabled", "Enabled"): "key enabled",
    ("PendingDeletion", "Enabled"): "key deletion cancelled",
    ("PendingDeletion", "Disabled"): "key deletion cancelled",
}


def listed_in(resource: object) -> str | None:
    """The table whose listing yields ``resource`` (an ARN); None when it cannot be told,
    and then a failed listing of any table in its account and region counts."""
    parts = resource.split(":", 5) if isinstance(resource, str) else []
    if len(parts) != 6 or parts[0] != "arn":
        return None
    kind = parts[5].split("/", 1)[0]
    return _LISTED_IN.get((parts[2], kind))


# --- what a pair of observations means -------------------------------------------------------


def control_change(
    before: str | None, after: str | None, *, in_scope: bool = True, old_unlisted: bool = False,
    new_unlisted: bool = False,
) -> str:
    """The change of one control's verdict on one resource (see the module docstring)."""
    if after is None:
        if not in_scope:
            return "out of scope"
        if new_unlisted:
            return "unknown"
        # A failed listing's own row (resource "account/region") goes once the listing works.
        return "error cleared" if before == "error" else "resource removed"
    if before is None:
        if not in_scope:
            return "out of scope"
        if not old_unlisted:
            return {"alarm": "new alarm", "error": "error appeared"}.get(after, "resource added")
        before = "error"  # OLD could not list it: it was not judged
    if after == "alarm":
        return {"alarm": "still failing", "error": "new alarm"}.get(before, "regressed")
    if after == "error":
        return "still failing" if before == "error" else "error appeared"
    if before == "alarm":
        return "fixed"
    if before == "error":
        return "error cleared"
    return "unchanged" if before == after else "status changed"


def inventory_change(
    facet: str, before: str | None, after: str | None, *, in_old: bool, in_new: bool, in_scope: bool = True,
    old_unlisted: bool = False, new_unlisted: bool = False,
) -> str | None:
    """The change of one inventory fact (``facet``: key, rotation or model); None when there
    is nothing to say: a rotation status that did not change, or is known on one side only
    (the key's own row says that it is unchanged, or why)."""
    if not (in_old and in_new):
        if facet == "rotation":
            return None
        if not in_scope:
            return "out of scope"
        if (in_old and new_unlisted) or (in_new and old_unlisted):
            return "unknown"
        return f"{facet} deleted" if in_old else f"{facet} added"
    if before == after:
        return None if facet == "rotation" else "unchanged"  # one unchanged row per key: its state's
    if before is None or after is None:
        return "unknown"  # the value could not be read on one side
    if facet == "rotation":
        return f"rotation turned {after}"
    if facet == "model":
        return "model key changed"
    if after in ("PendingDeletion", "PendingReplicaDeletion"):
        return "key pending deletion"
    return _KEY_STATE_CHANGES.get((before, after), "key state changed")


def control_reason(change, account, region, old_note, new_note, old_unlisted, new_unlisted) -> str:
    if change == "unknown":
        return (f"The new snapshot could not list {account}/{region} ({new_unlisted}), so whether this resource "
                f"still exists is unknown. Before: {old_note}")
    if change == "resource removed":
        return f"No longer in the new snapshot. Before: {old_note}"
    if change == "out of scope":
        only = "old" if new_note is None else "new"
        return f"Only the {only} snapshot covers {account}/{region}. {old_note or new_note}"
    if old_unlisted and old_note is None:
        return f"{new_note} (The old snapshot could not list {account}/{region}: {old_unlisted}.)"
    return new_note


def inventory_reason(change, facet, name, before, after, account, region, old_unlisted, new_unlisted, in_old,
                      in_new) -> str:
    thing = f"Model {name}" if facet == "model" else f"Key {name}"
    if change == "out of scope":
        return f"{thing}: only the {'old' if in_old else 'new'} snapshot covers {account}/{region}."
    if change == "unknown" and not (in_old and in_new):
        side, cause = ("new", new_unlisted) if in_old else ("old", old_unlisted)
        return f"{thing}: the {side} snapshot could not list {account}/{region} ({cause}), so it cannot be compared."
    if change == "unknown":
        return f"{thing}: its {'key' if facet == 'model' else 'state'} could not be read in the {'new' if after is None else 'old'} snapshot."
    if facet == "rotation":
        return f"Automatic rotation of key {name} is {after}" + ("." if change == "unchanged" else f" (was {before}).")
    if change.endswith("deleted"):
        return f"{thing} is no longer in the new snapshot (it was {_value(facet, before)})."
    if change.endswith("added"):
        return f"{thing} is new ({_value(facet, after)})."
    if change == "unchanged":
        return f"{thing} is {_value(facet, after)}."
    return f"{thing} was {_value(facet, before)}; now {_value(facet, after)}."


def _value(facet: str, value: str | None) -> str:
    if facet != "model":
        return str(value)
    return "encrypted with the Bedrock-owned key" if value == BEDROCK_OWNED else f"encrypted with key {value}"
