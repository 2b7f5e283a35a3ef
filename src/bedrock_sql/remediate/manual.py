"""Manual steps for custom models no job of the snapshot can re-create, with the API call a
human finishes.

A model made by CreateCustomModel is created again (:func:`.imports.created_model_step`);
a model whose job ran in another account or region, with no copy job on record, is copied
again (``CreateModelCopyJob``); a model whose job is gone gets the job's request with the
configuration the model still records. ``<...>`` marks what the human fills in.
(Imported models and copies with a copy job on record are real steps: :mod:`.imports`,
:mod:`.copies`.)
"""

from __future__ import annotations

from typing import Any

from ..providers.base import arn_account, arn_region
from .imports import created_model_step
from .jobs import new_name
from .parts import JOBS, FillIn, KeyChoice, ManualStep, Step, Target, json_value, query_rows

def manual_step(connection, target: Target, why: str, key: KeyChoice, suffix: str) -> ManualStep:
    row = target.row
    model_name = new_name(target.model_name, suffix, "customModelName")
    base = dict(
        service="bedrock",
        region=target.region,
        account_id=target.account_id,
        model_arn=target.model_arn,
        model_name=target.model_name,
    )
    if why == "imported":  # customization type IMPORTED: made by CreateCustomModel
        return created_model_step(target, key, suffix)
    if why in ("copied", "no-job"):
        source_arn: str | FillIn = FillIn("the ARN of the model this one was copied from")
        job_region = arn_region(row.get("job_arn") or "")
        if job_region is not None:
            found = query_rows(connection, f"SELECT output_model_arn FROM {JOBS} WHERE arn = ?", (row["job_arn"],))
            if found and found[0]["output_model_arn"]:
                source_arn = found[0]["output_model_arn"]
        origin = (
            f"was copied from another account or region (its job {row['job_arn']} ran in {arn_account(row['job_arn'])}/{job_region})"
            if why == "copied" and job_region is not None
            else "has no customization job on record (an imported or copied model)"
        )
        return ManualStep(
            operation="CreateModelCopyJob",
            params={"sourceModelArn": source_arn, "targetModelName": model_name, "modelKmsKeyId": key.manual_ref},
            reason=(
                f"Model {target.model_name} {origin}, so no job can be re-run here: copy the source model again "
                f"with CreateModelCopyJob and modelKmsKeyId = {key.alias or key.arn} (once the source is itself "
                "remediated, copy its replacement), or re-import it with CreateModelImportJob and importedModelKmsKeyId."
            ),
            **base,
        )
    # The job that produced the model is gone or unreadable: its recorded configuration is on the model.
    detail = why.split(": ", 1)[-1]
    job_name = row.get("job_name") or (row.get("job_arn") or "").rsplit("/", 1)[-1] or target.model_name
    params: dict[str, Any] = {
        "jobName": new_name(job_name, suffix, "jobName"),
        "customModelName": model_name,
        "roleArn": FillIn("the service role the original job ran as"),
        "baseModelIdentifier": row.get("base_model_arn") or FillIn("the base model"),
        "customizationType": row.get("customization_type") or "FINE_TUNING",
        "customModelKmsKeyId": key.manual_ref,
    }
    for param, column in (
        ("trainingDataConfig", "training_data_config"),
        ("validationDataConfig", "validation_data_config"),
        ("outputDataConfig", "output_data_config"),
        ("hyperParameters", "hyper_parameters"),
        ("customizationConfig", "customization_config"),
    ):
        value = json_value(row.get(column))
        if value:
            params[param] = value
    return ManualStep(
        operation="CreateModelCustomizationJob",
        params=params,
        reason=(
            f"The job that produced model {target.model_name} ({row.get('job_arn') or job_name}) is {detail}. "
            "The model still records its base model, data locations and hyperparameters, which this manual step "
            "carries; supply the service role (and the VPC configuration, if the job ran in one) and run the job by hand."
        ),
        **base,
    )


# The member naming the new model, and the one naming the key, in each model-making request.
_NAME_AND_KEY = {
    "CreateModelCustomizationJob": ("customModelName", "customModelKmsKeyId"),
    "CreateModelImportJob": ("importedModelName", "importedModelKmsKeyId"),
    "CreateModelCopyJob": ("targetModelName", "modelKmsKeyId"),
    "CreateCustomModel": ("modelName", "modelKmsKeyArn"),
}


def unnamed_step(target: Target, operation: str, why: str, key: KeyChoice) -> ManualStep:
    """A model whose new name cannot be derived from its own (``evil-`` + ``-cmk``): one manual
    step for it, naming the reason, while the plan goes on for every other model."""
    name_member, key_member = _NAME_AND_KEY[operation]
    params: dict[str, Any] = {name_member: FillIn("a valid name for the new model"), key_member: key.manual_ref}
    if operation in ("CreateModelCustomizationJob", "CreateModelImportJob"):
        params = {"jobName": FillIn("a valid name for the new job"), **params}
    return ManualStep(
        service="bedrock",
        operation=operation,
        region=target.region,
        account_id=target.account_id,
        params=params,
        model_arn=target.model_arn,
        model_name=target.model_name,
        reason=(
            f"Model {target.model_name} cannot be re-created under a derived name: {why}. Re-create it by hand "
            f"with {operation} under names of your choosing and {key_member} = {key.alias or key.arn}."
        ),
    )


def refused_step(step: Step, target: Target, why: str, key: KeyChoice) -> ManualStep:
    """A model's request that this tool will not run (its role is another account's, AWS would
    refuse a value...): the same request as a manual step, with the reason, for a human to fix."""
    params = {name: (key.manual_ref if value == key.ref else value) for name, value in step.params.items()}
    return ManualStep(
        service=step.service,
        operation=step.operation,
        region=step.region,
        account_id=step.account_id,
        params=params,
        model_arn=target.model_arn,
        model_name=target.model_name,
        reason=f"Model {target.model_name} is not re-created automatically: {why}. Its request is below: fix that, then run it by hand.",
    )
