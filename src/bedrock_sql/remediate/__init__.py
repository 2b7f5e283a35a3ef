"""Remediation of the CMK rules: re-create non-compliant custom and imported models with a CMK.

Customization models get their job re-run (:mod:`.jobs`), imported models are imported
again (:mod:`.imports`), copies copied again (:mod:`.copies`); what serves an old model is
listed as follow-ups to run once the new model is Active (:mod:`.served`).

The key of an existing Bedrock custom model cannot change. The fix for a model that fails
``bedrock_custom_model_encrypted_with_cmk`` is a symmetric KMS customer-managed key (CMK) in
the model's region, whose key policy lets the customization job's service role use it, and
the model customization job re-run with the same configuration plus ``customModelKmsKeyId``.

This package turns a snapshot into a :class:`Plan` -- ordered :class:`Step` objects, each an
AWS API call with its exact parameters (``params`` is what boto3 takes), plus
:class:`ManualStep` objects for models no customization job produced -- and then into a
bash script of AWS CLI commands (:func:`render_script`), a JSON document
(:func:`plan_json`), or changes in AWS (:func:`apply_plan`). Planning reads only the
snapshot (and, for a source job missing from it, ``GetModelCustomizationJob``); nothing is
created, changed or deleted anywhere but in :func:`apply_plan`, and that never deletes.

Keys created by the plan are not known when planning: later steps refer to them with a
typed placeholder, :class:`Variable` ``KEY_ARN_<account>_<region>``, which :func:`apply_plan`
replaces with the ARN ``CreateKey`` returned and the script turns into a shell variable of
the same name. Placeholders are objects the planner builds (:class:`Variable`,
:class:`Lookup`, :class:`FillIn`), never string shapes recognised in data: every str from AWS
stays a literal in the script (:mod:`.shell` quotes it), in the JSON and in ``--apply``.
:mod:`.validate` checks every request against the APIs' own model before anything runs.

The workflow, one module a stage (``script`` and ``apply`` build on ``plan``, never on
each other):

1. :mod:`.plan` -- :func:`plan_remediation` reads the snapshot: the failing models (the
   targets), the key of each account and region (:mod:`.keys`: an existing key, or one to
   create with :func:`key_policy`), the customization job that re-creates each model
   (:mod:`.jobs`), and the manual steps (:mod:`.manual`); :func:`plan_json`,
   :func:`describe_plan` and :func:`next_steps` say what it does. :mod:`.parts` holds the
   dataclasses they share.
2. :mod:`.script` -- :func:`render_script` / :func:`write_script`: the plan as a bash
   script and the key policy files it reads, for a human to review and run (the default).
3. :mod:`.apply` -- :class:`LiveAws`, :func:`apply_plan` and :func:`apply_report`: the
   plan carried out with boto3 (``remediate --apply``), after a preflight.
"""

from .apply import ApplyResult, LiveAws, apply_plan, apply_report
from .jobs import request_token
from .keys import key_policy, key_variable
from .parts import SEED_CONTROL, FillIn, KeyChoice, Lookup, ManualStep, Placeholder, Plan, Step, Target, Unavailable, Variable
from .plan import describe_plan, next_steps, plan_json, plan_remediation
from .script import SCRIPT_NAME, render_script, write_script
from .validate import plan_problems

__all__ = [
    "ApplyResult",
    "FillIn",
    "KeyChoice",
    "LiveAws",
    "Lookup",
    "ManualStep",
    "Placeholder",
    "Plan",
    "SEED_CONTROL",
    "SCRIPT_NAME",
    "Step",
    "Target",
    "Unavailable",
    "Variable",
    "apply_plan",
    "apply_report",
    "describe_plan",
    "key_policy",
    "key_variable",
    "next_steps",
    "plan_json",
    "plan_problems",
    "plan_remediation",
    "render_script",
    "request_token",
    "write_script",
]
