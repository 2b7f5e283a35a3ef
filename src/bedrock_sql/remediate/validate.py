"""Whether a plan can run, checked against the APIs' own model before anything changes.

botocore's client-side validation checks a request's types, required members and minimum
lengths; AWS checks the rest (maximum lengths, patterns, enums) only when the call arrives --
after the calls before it have created a key or started a job. A plan that fails half-way
leaves that behind, so the planner and ``--apply`` check every request here first, from the
same service model botocore ships (each string member's ``min``/``max``/``pattern``, each
list's and map's sizes, each enum):

- :func:`request_problems`: one request (the planner makes a manual step, with the reason, of
  a model whose request AWS would refuse: one resource's data never fails the whole plan);
- :func:`plan_problems`: the whole plan, as ``--apply`` runs it -- every variable a step uses
  is set by an earlier step of its account, every identifier is one, every request valid.

Patterns are matched whole (``fullmatch``) and ASCII-only (``\\s`` and ``\\w`` as Java reads
them): stricter than a search, never looser, so text that AWS would refuse is refused here.
"""

from __future__ import annotations

import re
from functools import lru_cache
from typing import Any

from .. import identifiers
from .parts import FillIn, Lookup, Placeholder, Plan, Step, Variable, placeholders
from .shell import IDENTIFIER, representable_problem

#: The operations --apply carries out (apply.py has a branch for each).
APPLIED = {
    ("kms", "CreateKey"),
    ("kms", "CreateAlias"),
    ("kms", "EnableKeyRotation"),
    ("bedrock", "CreateModelCustomizationJob"),
    ("bedrock", "CreateModelImportJob"),
    ("bedrock", "CreateModelCopyJob"),
}
# What a Variable stands for when a request is checked before it runs: the ARN of a key the
# plan creates (CreateKey's KeyMetadata.Arn), whose real value --apply checks when it has it.
_KEY_ARN_STAND_IN = "arn:aws:kms:{region}:{account}:key/00000000-0000-0000-0000-000000000000"
_SHOWN = 80  # characters of a refused value shown in a message


@lru_cache(maxsize=None)
def _session():
    import botocore.session

    return botocore.session.get_session()


@lru_cache(maxsize=None)
def input_shape(service: str, operation: str):
    """The request shape of ``operation`` in botocore's service model of ``service``."""
    return _session().get_service_model(service).operation_model(operation).input_shape


@lru_cache(maxsize=None)
def _pattern(text: str) -> re.Pattern[str]:
    return re.compile(text, re.ASCII)


def _shown(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= _SHOWN else text[: _SHOWN - 3] + "..."


def string_problem(shape, value: str) -> str | None:
    """Why ``value`` is no valid value of the string ``shape``, or None."""
    meta = shape.metadata
    if "min" in meta and len(value) < meta["min"]:
        return f"is shorter than {meta['min']} character(s)"
    if "max" in meta and len(value) > meta["max"]:
        return f"is longer than {meta['max']} characters"
    if getattr(shape, "enum", None) and value not in shape.enum:
        return f"is none of {', '.join(shape.enum)}"
    if "pattern" in meta and not _pattern(meta["pattern"]).fullmatch(value):
        return "does not match the API's pattern for it"
    return None


def member_problem(service: str, operation: str, member: str, value: str) -> str | None:
    """Why ``value`` is no valid ``member`` of an ``operation`` request, or None."""
    return string_problem(input_shape(service, operation).members[member], value)


def member_max(service: str, operation: str, member: str, default: int) -> int:
    return input_shape(service, operation).members[member].metadata.get("max", default)


def _walk(shape, value: Any, path: str, problems: list[str]) -> None:
    """What botocore's own validator leaves to AWS: lengths, patterns, enums, sizes."""
    kind = shape.type_name
    meta = shape.metadata
    if kind == "string" and isinstance(value, str):
        problem = string_problem(shape, value)
        if problem:
            problems.append(f"{path} {_shown(value)} {problem}")
    elif kind == "structure" and isinstance(value, dict):
        for name, member in value.items():
            if name in shape.members:
                _walk(shape.members[name], member, f"{path}.{name}", problems)
    elif kind == "list" and isinstance(value, list):
        if "max" in meta and len(value) > meta["max"]:
            problems.append(f"{path} has more than {meta['max']} items")
        for i, item in enumerate(value):
            _walk(shape.member, item, f"{path}[{i}]", problems)
    elif kind == "map" and isinstance(value, dict):
        if "max" in meta and len(value) > meta["max"]:
            problems.append(f"{path} has more than {meta['max']} entries")
        for k, v in value.items():
            _walk(shape.key, k, f"{path} key", problems)
            _walk(shape.value, v, f"{path}[{k!r}]", problems)
    elif kind in ("integer", "long") and isinstance(value, int):
        if "min" in meta and value < meta["min"] or "max" in meta and value > meta["max"]:
            problems.append(f"{path} {value} is outside {meta.get('min')}..{meta.get('max')}")


def request_problems(service: str, operation: str, params: dict[str, Any], *, account_id: str, region: str) -> list[str]:
    """Why AWS would refuse this request (empty: it would not, as far as its model says).

    A :class:`Variable` stands for the ARN of a key the plan creates; a :class:`Lookup` or
    :class:`FillIn` has no value yet, so a request holding one cannot run.
    """
    from botocore.validate import ParamValidator

    problems: list[str] = []
    for path, placeholder in placeholders(params):
        if not isinstance(placeholder, Variable):
            what = "a value to look up" if isinstance(placeholder, Lookup) else "a value to fill in"
            problems.append(f"{'.'.join(map(str, path))} is {what} ({_placeholder_text(placeholder)}): it cannot run as it is")
    if problems:
        return problems
    stand_in = _KEY_ARN_STAND_IN.format(region=region, account=account_id)
    concrete = _substitute(params, stand_in)
    for name, value in concrete.items():
        if isinstance(value, str) and representable_problem(value):
            problems.append(f"{name} {_shown(value)}: {representable_problem(value)}")
    shape = input_shape(service, operation)
    report = ParamValidator().validate(concrete, shape)
    if report.has_errors():
        problems.extend(" ".join(line.split()) for line in report.generate_report().splitlines()[1:] if line.strip())
    _walk(shape, concrete, "", problems)
    return [p.lstrip(".") for p in problems]


def _placeholder_text(placeholder: Placeholder) -> str:
    return placeholder.text if isinstance(placeholder, FillIn) else getattr(placeholder, "description", "")


def _substitute(value: Any, stand_in: str) -> Any:
    if isinstance(value, Variable):
        return stand_in
    if isinstance(value, dict):
        return {k: _substitute(v, stand_in) for k, v in value.items()}
    if isinstance(value, list):
        return [_substitute(v, stand_in) for v in value]
    return value


def step_problems(step: Step) -> list[str]:
    """What is wrong with one step on its own (its identifiers and request)."""
    problems = []
    if (step.service, step.operation) not in APPLIED:
        problems.append(f"{step.service} {step.operation} is no operation this tool carries out")
    for kind, value in (("account_id", step.account_id), ("region", step.region)):
        reason = identifiers.invalid_reason(kind, value)
        if reason:
            problems.append(reason)
    if step.model_arn is not None and not identifiers.is_valid("arn", step.model_arn):
        problems.append(f"model {_shown(step.model_arn)} is no ARN")
    for name in step.outputs:
        if not IDENTIFIER.fullmatch(name):
            problems.append(f"output {_shown(name)} is no variable name")
    if problems or (step.service, step.operation) not in APPLIED:
        return problems
    return request_problems(step.service, step.operation, step.params, account_id=step.account_id, region=step.region)


def plan_problems(plan: Plan) -> list[str]:
    """Everything that would stop the plan part-way, each as "step N (WHAT): PROBLEM".

    Checked in the order the steps run: a variable must be set by an earlier step of the same
    account (the script runs one account's steps at a time, and --apply resolves in order).
    """
    problems: list[str] = []
    set_by: dict[str, str] = {}  # variable -> the account whose step sets it
    for number, step in enumerate(plan.steps, 1):
        where = f"step {number} ({step.operation} in {step.account_id}/{step.region})"
        for path, placeholder in placeholders(step.params):
            if isinstance(placeholder, Variable):
                setter = set_by.get(placeholder.name)
                if setter is None:
                    problems.append(f"{where}: {'.'.join(map(str, path))} uses {placeholder.name}, which no earlier step sets")
                elif setter != step.account_id:
                    problems.append(f"{where}: {'.'.join(map(str, path))} uses {placeholder.name}, set in account {setter}")
        problems.extend(f"{where}: {problem}" for problem in step_problems(step))
        for name in step.outputs:
            if name in set_by:
                problems.append(f"{where}: sets {name} again")
            set_by[name] = step.account_id
    for key in plan.keys:
        if key.arn is not None and not identifiers.is_valid("kms_key_arn", key.arn):
            problems.append(f"key {_shown(key.arn)} of {key.account_id}/{key.region} is no KMS key ARN")
    return problems
