"""The parts of a remediation plan: steps, targets, key choices, the plan itself.

Shared by the planning modules (:mod:`.plan`, :mod:`.keys`, :mod:`.jobs`, :mod:`.manual`)
and by what carries a plan out (:mod:`.script`, :mod:`.apply`), with the two snapshot
helpers they all read through.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any, Callable, Iterator, Sequence

from ..sql import run_query
from .shell import IDENTIFIER

SEED_CONTROL = "bedrock_custom_model_encrypted_with_cmk"
IMPORTED_CONTROL = "bedrock_imported_model_encrypted_with_cmk"
#: The rules whose failing models a plan re-creates.
CONTROLS = (SEED_CONTROL, IMPORTED_CONTROL)
DEFAULT_SUFFIX = "-cmk"

MODELS = "aws_bedrock_custom_model"
IMPORTED_MODELS = "aws_bedrock_imported_model"
JOBS = "aws_bedrock_model_customization_job"
IMPORT_JOBS = "aws_bedrock_model_import_job"
COPY_JOBS = "aws_bedrock_model_copy_job"
KEYS = "aws_kms_key"
ALIASES = "aws_kms_alias"

#: The operations that make a new model (one step per model re-created).
MODEL_OPERATIONS = ("CreateModelCustomizationJob", "CreateModelImportJob", "CreateModelCopyJob", "CreateCustomModel")

class Unavailable(Exception):
    """A live lookup that cannot answer (no credentials, account out of reach, denied...)."""


#: ``lookup(account_id, region, job_name) -> job`` (GetModelCustomizationJob's fields and a
#: ``tags`` dict) or None when the job does not exist; raises :class:`Unavailable`.
JobLookup = Callable[[str, str, str], "dict[str, Any] | None"]
#: ``lookup(key_arn) -> key`` (the columns of aws_kms_key) or None when the key does not
#: exist; raises :class:`UserError` when it cannot tell.
KeyLookup = Callable[[str], "dict[str, Any] | None"]


# --------------------------------------------------------------------------- placeholders
# A value a step needs that is not known when planning is a typed object the planner builds,
# never a string shape recognised in data: a name, tag or description from AWS that reads
# "${AWS_SECRET_ACCESS_KEY}" or "<the ARN of x: COMMAND>" is a str, and every renderer (the
# script, --output json, --apply, the printed follow-ups) dispatches on the type, so such a
# string stays literal everywhere.


class Placeholder:
    """A value the plan cannot write down when planning (the subclasses say why)."""

    def as_json(self) -> dict[str, Any]:
        raise NotImplementedError


@dataclass(frozen=True)
class Variable(Placeholder):
    """A value an earlier step returns (its ``outputs``), e.g. the ARN of a key it creates:
    a shell variable of this name in the script, the response's value in ``--apply``."""

    name: str

    def __post_init__(self) -> None:
        if not IDENTIFIER.fullmatch(self.name):
            raise ValueError(f"not a variable name: {self.name!r}")

    def as_json(self) -> dict[str, Any]:
        return {"variable": self.name}


@dataclass(frozen=True)
class Lookup(Placeholder):
    """A value that exists only once something the plan makes exists (the ARN of a new model):
    ``command`` (an AWS CLI argv, every item one argument) prints it. The script and the
    printed follow-ups write it as ``"$(COMMAND)"``; a human runs it when the time comes."""

    description: str
    command: tuple[str, ...]

    def as_json(self) -> dict[str, Any]:
        return {"lookup": self.description, "command": list(self.command)}


@dataclass(frozen=True)
class FillIn(Placeholder):
    """What a human must supply before running a manual step (shown as ``<DESCRIPTION>``)."""

    description: str

    @property
    def text(self) -> str:
        return f"<{self.description}>"

    def as_json(self) -> dict[str, Any]:
        return {"fill_in": self.description}


def placeholders(value: Any, path: tuple = ()) -> Iterator[tuple[tuple, Placeholder]]:
    """Every placeholder in ``value`` (params, nested), with its path of keys and indices."""
    if isinstance(value, Placeholder):
        yield path, value
    elif isinstance(value, dict):
        for k, v in value.items():
            yield from placeholders(v, (*path, k))
    elif isinstance(value, list):
        for i, v in enumerate(value):
            yield from placeholders(v, (*path, i))


def json_params(value: Any) -> Any:
    """``value`` with each placeholder as its JSON object (``{"variable": NAME}``...)."""
    if isinstance(value, Placeholder):
        return value.as_json()
    if isinstance(value, dict):
        return {k: json_params(v) for k, v in value.items()}
    if isinstance(value, list):
        return [json_params(v) for v in value]
    return value


def _json_entry(data: dict[str, Any], params: dict[str, Any]) -> dict[str, Any]:
    """``params`` in JSON, and where a placeholder sits (``placeholders``: a list of paths),
    so that a consumer tells the tool's placeholders from data without knowing the API's shapes."""
    data["params"] = json_params(params)
    found = [list(path) for path, _ in placeholders(params)]
    if found:
        data["placeholders"] = found
    return data


# --------------------------------------------------------------------------- the plan


@dataclass
class Step:
    """One AWS API call: ``operation`` is the API's name, ``params`` its exact parameters.

    ``outputs`` maps a variable that later steps refer to (a :class:`Variable` of that
    name) to the path of the value in this call's response (``KeyMetadata.Arn``).
    """

    service: str
    operation: str
    region: str
    account_id: str
    params: dict[str, Any]
    comment: str = ""
    outputs: dict[str, str] = field(default_factory=dict)
    model_arn: str | None = None  # the model a job step re-creates
    new_model_name: str | None = None  # the name of the model the step makes
    alias: str | None = None  # CreateKey: the alias that will name the key (reused when it exists)

    def as_json(self) -> dict[str, Any]:
        data: dict[str, Any] = {
            "service": self.service,
            "operation": self.operation,
            "region": self.region,
            "account_id": self.account_id,
            "params": None,
            "manual": False,
            "comment": self.comment,
        }
        _json_entry(data, self.params)
        if self.outputs:
            data["outputs"] = self.outputs
        if self.model_arn:
            data["model_arn"] = self.model_arn
        return data


@dataclass
class ManualStep:
    """A model this tool cannot re-create: the alternative API call, for a human to finish.

    ``params`` holds what is known; a :class:`FillIn` marks what the human must supply, a
    :class:`Lookup` what a command prints once the plan's new model exists.
    """

    service: str
    operation: str
    region: str
    account_id: str
    params: dict[str, Any]
    model_arn: str
    model_name: str
    reason: str
    #: True for a step to run once the plan's new model is Active (moving what serves the
    #: old model, copying a re-created source): never run by --apply.
    follow_up: bool = False

    @property
    def comment(self) -> str:
        return self.reason

    def as_json(self) -> dict[str, Any]:
        data = {
            "service": self.service,
            "operation": self.operation,
            "region": self.region,
            "account_id": self.account_id,
            "params": None,
            "manual": True,
            "comment": self.reason,
            "model_arn": self.model_arn,
        }
        _json_entry(data, self.params)
        if self.follow_up:
            data["follow_up"] = True
        return data


@dataclass
class Target:
    """A model to re-create with a CMK, and why."""

    model_arn: str
    model_name: str
    account_id: str
    region: str
    partition: str
    reason: str
    row: dict[str, Any]
    #: bedrock_model.kind: customization, copy, created (CreateCustomModel) or imported.
    kind: str = "customization"

    @property
    def encryption(self) -> str:
        """How the model is encrypted today, as a plan's comment says it."""
        current = self.row.get("model_kms_key_arn")
        return f"encrypted with {current}" if current else "encrypted with the Bedrock-owned key"


@dataclass
class KeyChoice:
    """The CMK the models of one account and region get: an existing key, or one to create."""

    account_id: str
    region: str
    arn: str | None = None  # known key (--kms-key, or an existing alias's key)
    variable: str | None = None  # a key this plan creates: the variable holding its ARN
    alias: str | None = None
    policy: dict[str, Any] | None = None  # the key policy of a key to create
    users: list[str] = field(default_factory=list)
    admins: list[str] = field(default_factory=list)
    policy_text: str | None = None  # the key policy of an existing key, when known

    @property
    def create(self) -> bool:
        return self.variable is not None

    @property
    def ref(self) -> str | Variable:
        """What a step names the key with: its ARN, or the variable holding a new key's ARN."""
        return self.arn if self.arn else Variable(str(self.variable))

    @property
    def manual_ref(self) -> str | Lookup:
        """What a manual step or follow-up names the key with: its ARN, or for a new key the
        command that prints it by its alias (a human runs it later, anywhere)."""
        if self.arn:
            return self.arn
        return Lookup(
            f"the ARN of the key {self.alias} in {self.region}",
            ("aws", "kms", "describe-key", "--region", self.region, "--key-id", str(self.alias),
             "--query", "KeyMetadata.Arn", "--output", "text"),
        )

    @property
    def policy_file(self) -> str:
        return f"key-policy-{self.account_id}-{self.region}.json"


@dataclass
class Plan:
    targets: list[Target] = field(default_factory=list)
    keys: list[KeyChoice] = field(default_factory=list)
    steps: list[Step] = field(default_factory=list)
    manual_steps: list[ManualStep] = field(default_factory=list)
    #: What to run once the new models are Active (follow_up manual steps), in order.
    follow_ups: list[ManualStep] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    snapshot: str = ""
    collected_at: str | None = None
    nothing_message: str = ""

    @property
    def empty(self) -> bool:
        return not self.targets

    @property
    def account_ids(self) -> list[str]:
        return sorted({s.account_id for s in self.steps} | {m.account_id for m in [*self.manual_steps, *self.follow_ups]})

    @property
    def regions(self) -> list[str]:
        return sorted({t.region for t in self.targets})

    @property
    def job_steps(self) -> list[Step]:
        return [s for s in self.steps if s.operation == "CreateModelCustomizationJob"]

    @property
    def model_steps(self) -> list[Step]:
        """Every step that makes a new model: customization, import and copy jobs."""
        return [s for s in self.steps if s.operation in MODEL_OPERATIONS]


# --------------------------------------------------------------------------- snapshot helpers


def query_rows(connection, sql: str, params: Sequence[Any] = ()) -> list[dict[str, Any]]:
    result = run_query(connection, sql, tuple(params))
    return [dict(zip(result.columns, row)) for row in result.rows]

def json_value(value: Any) -> Any:
    if value is None or not isinstance(value, str):
        return value
    try:
        return json.loads(value)
    except ValueError:
        return value


def tag_list(tags: Any) -> list[dict[str, str]]:
    """A tags object ({"k": "v"}) as Bedrock's request lists take it ([{"key", "value"}])."""
    if isinstance(tags, dict):
        return [{"key": str(k), "value": str(v)} for k, v in sorted(tags.items())]
    return []
