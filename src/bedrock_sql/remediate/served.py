"""What serves a model the plan re-creates: the follow-ups that move it to the new model.

A provisioned throughput (``model_arn`` or ``desired_model_arn``) or a custom model
deployment that serves an old model keeps serving it until someone moves it. Moving it
while the new model is still being made would fail, and moving it at all changes what
applications are answered by, so neither ``--apply`` nor the script does it: the plan lists
each as a follow-up step with the exact request, to run once the new model is Active.

- a throughput: ``UpdateProvisionedModelThroughput`` with ``desiredModelId`` = the new
  model's name (the API takes a name);
- a deployment: there is no update of a deployment's model, so a new
  ``CreateCustomModelDeployment`` (same description and tags) for the new model's ARN,
  known once the model exists; then the old deployment can be deleted.
"""

from __future__ import annotations

from typing import Any, Iterable

from .jobs import NameNotDerivable, new_name
from .parts import FillIn, Lookup, ManualStep, Target, json_value, query_rows, tag_list

THROUGHPUTS = "aws_bedrock_provisioned_model_throughput"
DEPLOYMENTS = "aws_bedrock_custom_model_deployment"


def model_arn_lookup(region: str, new_model: str, imported: bool = False) -> Lookup:
    """The new model's ARN, which exists once the model does: the command that prints it."""
    operation = "get-imported-model" if imported else "get-custom-model"
    return Lookup(
        f"the ARN of {new_model}",
        ("aws", "bedrock", operation, "--region", region, "--model-identifier", new_model, "--query", "modelArn", "--output", "text"),
    )


def served_follow_ups(connection, targets: Iterable[tuple[Target, "str | FillIn"]], suffix: str) -> list[ManualStep]:
    """For each (target, name of its replacement): a follow-up per throughput and deployment
    serving it. A replacement whose name the human chooses (a :class:`FillIn`) is named so."""
    steps: list[ManualStep] = []
    for target, new_model in targets:
        shown = new_model if isinstance(new_model, str) else f"the model that replaces {target.model_name}"
        base = dict(
            service="bedrock", region=target.region, account_id=target.account_id,
            model_arn=target.model_arn, model_name=target.model_name, follow_up=True,
        )
        for row in query_rows(
            connection,
            f"SELECT * FROM {THROUGHPUTS} WHERE model_arn = ? OR desired_model_arn = ? ORDER BY provisioned_model_name",
            (target.model_arn, target.model_arn),
        ):
            steps.append(ManualStep(
                operation="UpdateProvisionedModelThroughput",
                params={"provisionedModelId": row["arn"], "desiredModelId": new_model},
                reason=(
                    f"Provisioned throughput {row['provisioned_model_name']} ({row['arn']}) serves {target.model_name}. "
                    f"Once {shown} is Active, move it there (UpdateProvisionedModelThroughput takes the model's name); "
                    "it answers from the old model until the update completes."
                ),
                **base,
            ))
        for row in query_rows(
            connection,
            f"SELECT * FROM {DEPLOYMENTS} WHERE model_arn = ? ORDER BY model_deployment_name",
            (target.model_arn,),
        ):
            unnamed = ""
            try:
                deployment_name: str | FillIn = new_name(
                    row["model_deployment_name"], suffix, "modelDeploymentName", "CreateCustomModelDeployment"
                )
            except NameNotDerivable as exc:
                deployment_name = FillIn("a name for the new deployment")
                unnamed = f" Name it yourself: {exc}."
            params: dict[str, Any] = {
                "modelDeploymentName": deployment_name,
                "modelArn": (
                    model_arn_lookup(target.region, new_model, target.kind == "imported")
                    if isinstance(new_model, str) else FillIn(f"the ARN of {shown}")
                ),
            }
            if row.get("description"):
                params["description"] = row["description"]
            tags = tag_list(json_value(row.get("tags")))
            if tags:
                params["tags"] = tags
            steps.append(ManualStep(
                operation="CreateCustomModelDeployment",
                params=params,
                reason=(
                    f"Custom model deployment {row['model_deployment_name']} ({row['arn']}) serves {target.model_name}. "
                    f"A deployment's model cannot be changed: once {shown} is Active, deploy it as "
                    f"{deployment_name if isinstance(deployment_name, str) else 'a new deployment'}, point applications "
                    f"at the new deployment, then delete the old one.{unnamed}"
                ),
                **base,
            ))
    return steps


# What a failed listing in a target's unit leaves unknown to the plan.
_UNKNOWN_WHEN_UNLISTED = {
    THROUGHPUTS: "what serves the models there is unknown, so the follow-ups may miss a throughput or deployment to move",
    DEPLOYMENTS: "what serves the models there is unknown, so the follow-ups may miss a throughput or deployment to move",
    "aws_bedrock_model_copy_job": "a copied model there cannot be told from a trained one, so it may be planned as "
    "a re-run of its job instead of a re-copy: check the plan for those models",
}


def unknown_serving(connection, targets: Iterable[Target]) -> list[str]:
    """Warnings for the units where a listing the plan relies on failed: the throughputs or
    deployments (what serves a model) or the copy jobs (which models are copies)."""
    units = sorted({(t.account_id, t.region) for t in targets})
    names = ", ".join(f"'{name}'" for name in _UNKNOWN_WHEN_UNLISTED)
    warnings = []
    for account_id, region in units:
        for row in query_rows(
            connection,
            "SELECT table_name, cause FROM bedrock_listing_error WHERE account_id = ? AND region = ? "
            f"AND table_name IN ({names}) ORDER BY table_name",
            (account_id, region),
        ):
            warnings.append(
                f"{account_id}/{region}: {row['table_name']} could not be listed ({row['cause']}): "
                + _UNKNOWN_WHEN_UNLISTED[row["table_name"]]
            )
    return warnings
