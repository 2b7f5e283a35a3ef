"""A simulated Amazon Bedrock for what moto 5.2 does not implement: imported models, model
import and copy jobs, provisioned throughput and custom model deployments.

Why: bedrock-sql's tests and its offline ``demo`` run against moto, and moto answers none
of these operations, so without this module the tables that judge imported models, copies
and what serves each model could only be tested on hand-built snapshots -- never over the
wire, through botocore's parsers, bedrock-sql's answer checks and pagination.

What: :func:`install` adds one handler per operation to moto's
``moto.bedrock.responses.BedrockResponse`` (moto dispatches a Bedrock request to the method
named after the botocore operation, in snake_case), so the operations answer in process
under ``mock_aws`` and over HTTP from a ``ThreadedMotoServer`` started afterwards:

- Create/Get/List/Delete for imported models (made by CreateModelImportJob), import jobs,
  copy jobs, provisioned throughputs (and UpdateProvisionedModelThroughput) and custom
  model deployments;
- request and answer shapes are botocore's (``bedrock`` service model): the same member
  names, required members always present, optional ones absent rather than null;
- listings page with ``maxResults``/``nextToken`` (an opaque token; a forged one is a
  ValidationException), filter with every ``*Equals``/``*Contains``/time parameter the
  operation takes and sort by ``sortBy``/``sortOrder`` (newest first by default);
- an unknown name or ARN is ``ResourceNotFoundException`` (HTTP 404), a name in use is
  ``ConflictException`` (409), a bad enum or a KMS key that does not exist in the
  account and region is ``ValidationException`` (400);
- jobs finish at once (import and copy jobs are ``Completed`` when created; throughputs
  ``InService``; deployments ``Active``): nothing in a test waits;
- KMS keys are given in any form the API accepts (key ID, key ARN, alias name, alias
  ARN): a key of this account and region must exist in moto's KMS; the model then
  reports the ARN of what was named (key ARN for a key ID, alias ARN for an alias name,
  an ARN as given); a key ARN of another account or region is taken as given;
- a copy is a real moto custom model in the target region (ListCustomModels and
  GetCustomModel show it, with its key or none);
- tags (``jobTags``, ``importedModelTags``, ``tags``, ``targetModelTags``) live in moto's
  own Bedrock tagging service, so TagResource/ListTagsForResource work on every resource.

State lives on moto's Bedrock backend object of each account and region, so moto's reset
(``/moto-api/reset``, the end of ``mock_aws``) drops it with everything else.
"""

from __future__ import annotations

import base64
import json
import re
import threading
import uuid
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from typing import Any, Callable, Iterable
from urllib.parse import unquote

_STATE_ATTRIBUTE = "_bedrock_sql_simulation"
_install_lock = threading.Lock()
_installed = False

DEFAULT_MAX_RESULTS = 100
MAX_MAX_RESULTS = 1000


# --------------------------------------------------------------------------- state


@dataclass
class SimulatedState:
    """What one account and region holds, by ARN (insertion order = creation order)."""

    imported_models: dict[str, dict] = field(default_factory=dict)
    import_jobs: dict[str, dict] = field(default_factory=dict)
    copy_jobs: dict[str, dict] = field(default_factory=dict)
    throughputs: dict[str, dict] = field(default_factory=dict)
    deployments: dict[str, dict] = field(default_factory=dict)

    def arns(self) -> list[str]:
        return [*self.imported_models, *self.import_jobs, *self.copy_jobs, *self.throughputs, *self.deployments]


def state_of(backend: Any) -> SimulatedState:
    """The simulated state kept on moto's Bedrock backend object (reset with it)."""
    return backend.__dict__.setdefault(_STATE_ATTRIBUTE, SimulatedState())


def simulated_state(account_id: str, region: str) -> SimulatedState:
    """The state of one account and region (for tests that nudge what the API cannot set)."""
    from moto.bedrock.models import bedrock_backends

    return state_of(bedrock_backends[account_id][region])


# --------------------------------------------------------------------------- errors


def _error(code: str, message: str, status: int) -> Exception:
    from moto.core.exceptions import JsonRESTError

    error = JsonRESTError(code, message)
    error.code = status
    return error


def not_found(what: str, identifier: str) -> Exception:
    return _error("ResourceNotFoundException", f"{what} {identifier} not found.", 404)


def validation(message: str) -> Exception:
    return _error("ValidationException", message, 400)


def conflict(message: str) -> Exception:
    return _error("ConflictException", message, 409)


# --------------------------------------------------------------------------- helpers


def _now() -> datetime:
    return datetime.now(timezone.utc).replace(microsecond=0)


def _wire(value: Any) -> Any:
    """An item as the answer carries it: datetimes ISO-8601, None members left out."""
    if isinstance(value, datetime):
        return value.strftime("%Y-%m-%dT%H:%M:%SZ")
    if isinstance(value, dict):
        return {k: _wire(v) for k, v in value.items() if v is not None}
    if isinstance(value, list):
        return [_wire(v) for v in value]
    return value


def _short_id() -> str:
    return uuid.uuid4().hex[:12]


def _tags(backend: Any, arn: str, tags: list[dict] | None) -> None:
    if tags:
        backend.tagger.tag_resource(arn, [{"Key": t["key"], "Value": t["value"]} for t in tags])


def _find(items: dict[str, dict], identifier: str, name_key: str | None, what: str) -> dict:
    """An item by ARN, or by name where the operation takes a name."""
    if identifier in items:
        return items[identifier]
    if name_key:
        for item in items.values():
            if item.get(name_key) == identifier:
                return item
    raise not_found(what, identifier)


def _one_of(value: Any, allowed: Iterable[str], parameter: str) -> Any:
    allowed = tuple(allowed)
    if value is not None and value not in allowed:
        raise validation(f"1 validation error detected: Value '{value}' at '{parameter}' failed to satisfy "
                         f"constraint: Member must satisfy enum value set: [{', '.join(allowed)}]")
    return value


def _resolve_kms_key(key: str | None, account_id: str, region: str) -> str | None:
    """The ARN of the key (or alias) a request names; ValidationException if it names nothing here."""
    if not key:
        return None
    arn = re.fullmatch(r"arn:[\w-]+:kms:([\w-]+):(\d{12}):(key|alias)/.+", key)
    if arn and (arn.group(1), arn.group(2)) != (region, account_id):
        return key  # another account's (or region's) key: not ours to inspect
    from moto.kms.models import kms_backends

    kms = kms_backends[account_id][region]
    try:
        key_id = kms.any_id_to_key_id(key)
    except Exception:  # noqa: BLE001 - moto fails in several ways on an unknown alias
        key_id = None
    if key_id not in kms.keys:
        raise validation(f"The KMS key {key} does not exist or is not accessible.")
    if arn:
        return key
    partition = "aws-cn" if region.startswith("cn-") else "aws-us-gov" if region.startswith("us-gov-") else "aws"
    if key.startswith("alias/"):
        return f"arn:{partition}:kms:{region}:{account_id}:{key}"
    return kms.keys[key_id].arn


def _page(handler: Any, items: list[dict], filters: dict[str, Callable[[dict, str], bool]], time_key: str,
          list_key: str, shape: Callable[[dict], dict], *, after: str = "creationTimeAfter",
          before: str = "creationTimeBefore") -> str:
    """One page of a listing: filtered, sorted, cut at maxResults, with an opaque nextToken."""
    query = {k: v[0] if isinstance(v, list) else v for k, v in handler.querystring.items()}
    for parameter, matches in filters.items():
        if query.get(parameter) is not None:
            items = [item for item in items if matches(item, query[parameter])]
    for parameter, keep in ((after, lambda t, bound: t > bound), (before, lambda t, bound: t < bound)):
        if query.get(parameter):
            bound = _parse_time(query[parameter])
            items = [item for item in items if keep(item[time_key], bound)]
    _one_of(query.get("sortBy"), ("CreationTime",), "sortBy")
    order = _one_of(query.get("sortOrder"), ("Ascending", "Descending"), "sortOrder") or "Descending"
    items = sorted(items, key=lambda item: item[time_key], reverse=order == "Descending")
    try:
        limit = int(query.get("maxResults") or DEFAULT_MAX_RESULTS)
    except ValueError:
        raise validation("maxResults must be a number.") from None
    if not 1 <= limit <= MAX_MAX_RESULTS:
        raise validation(f"maxResults must be between 1 and {MAX_MAX_RESULTS}.")
    start = _offset(query.get("nextToken"))
    body: dict[str, Any] = {list_key: [_wire(shape(item)) for item in items[start:start + limit]]}
    if start + limit < len(items):
        body["nextToken"] = base64.urlsafe_b64encode(json.dumps({"offset": start + limit}).encode()).decode()
    return json.dumps(body)


def _offset(token: str | None) -> int:
    if not token:
        return 0
    try:
        return int(json.loads(base64.urlsafe_b64decode(token.encode()))["offset"])
    except Exception:  # noqa: BLE001 - any forged token
        raise validation("The nextToken is not valid.") from None


def _parse_time(value: str) -> datetime:
    try:
        parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        try:
            return datetime.fromtimestamp(float(value), timezone.utc)
        except ValueError:
            raise validation(f"Invalid timestamp {value}.") from None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=timezone.utc)


def _contains(key: str) -> Callable[[dict, str], bool]:
    return lambda item, value: value.lower() in (item.get(key) or "").lower()


def _equals(key: str) -> Callable[[dict, str], bool]:
    return lambda item, value: item.get(key) == value


def _pick(item: dict, keys: Iterable[str]) -> dict:
    return {k: item.get(k) for k in keys}


def _path_identifier(handler: Any, parameter: str) -> str:
    """A URI label (a name or an ARN), decoded whether or not the server decoded it."""
    return unquote(handler.uri_match[parameter])


def _body(handler: Any) -> dict:
    return json.loads(handler.body or "{}")


def _answer(body: dict, status: int = 200) -> tuple:
    # moto reads the status from the headers ("status"), not from the tuple alone.
    return status, {"status": status, "content-type": "application/json"}, json.dumps(body)


def _custom_model(account_id: str, region: str, identifier: str) -> Any:
    """moto's custom model by name or ARN; ResourceNotFoundException when there is none."""
    from moto.bedrock.models import bedrock_backends

    return bedrock_backends[account_id][region].get_custom_model(identifier)


# --------------------------------------------------------------------------- handlers
# Installed as methods of moto's BedrockResponse: ``self`` is the request being answered.

IMPORT_JOB_STATUSES = ("InProgress", "Completed", "Failed")
COPY_JOB_STATUSES = ("InProgress", "Completed", "Failed")
THROUGHPUT_STATUSES = ("Creating", "InService", "Updating", "Failed")
DEPLOYMENT_STATUSES = ("Creating", "Active", "Failed")
COMMITMENTS = {"OneMonth": timedelta(days=30), "SixMonths": timedelta(days=182)}


def _here(request: Any) -> tuple[Any, SimulatedState, str, str, str]:
    backend = request.bedrock_backend
    partition = backend.partition if hasattr(backend, "partition") else "aws"
    return backend, state_of(backend), request.current_account, request.region, partition


def create_model_import_job(self) -> tuple:
    backend, state, account, region, partition = _here(self)
    params = _body(self)
    if any(job["jobName"] == params["jobName"] for job in state.import_jobs.values()):
        raise conflict(f"A model import job named {params['jobName']} already exists.")
    if any(m["modelName"] == params["importedModelName"] for m in state.imported_models.values()):
        raise conflict(f"An imported model named {params['importedModelName']} already exists.")
    key_arn = _resolve_kms_key(params.get("importedModelKmsKeyId"), account, region)
    now = _now()
    job_arn = f"arn:{partition}:bedrock:{region}:{account}:model-import-job/{_short_id()}"
    model_arn = f"arn:{partition}:bedrock:{region}:{account}:imported-model/{_short_id()}"
    state.imported_models[model_arn] = {
        "modelArn": model_arn,
        "modelName": params["importedModelName"],
        "jobName": params["jobName"],
        "jobArn": job_arn,
        "modelDataSource": params["modelDataSource"],
        "creationTime": now,
        "modelArchitecture": "llama3",
        "modelKmsKeyArn": key_arn,
        "instructSupported": True,
        "customModelUnits": {"customModelUnitsPerModelCopy": 1, "customModelUnitsVersion": "1.0"},
    }
    state.import_jobs[job_arn] = {
        "jobArn": job_arn,
        "jobName": params["jobName"],
        "importedModelName": params["importedModelName"],
        "importedModelArn": model_arn,
        "roleArn": params["roleArn"],
        "modelDataSource": params["modelDataSource"],
        "status": "Completed",
        "creationTime": now,
        "lastModifiedTime": now,
        "endTime": now,
        "vpcConfig": params.get("vpcConfig"),
        "importedModelKmsKeyArn": key_arn,
    }
    _tags(backend, job_arn, params.get("jobTags"))
    _tags(backend, model_arn, params.get("importedModelTags"))
    return _answer({"jobArn": job_arn}, 201)


def get_model_import_job(self) -> str:
    state = _here(self)[1]
    job = _find(state.import_jobs, _path_identifier(self, "jobIdentifier"), "jobName", "Model import job")
    return json.dumps(_wire(job))


def list_model_import_jobs(self) -> str:
    summary = ("jobArn", "jobName", "status", "lastModifiedTime", "creationTime", "endTime",
               "importedModelArn", "importedModelName")
    filters = {"statusEquals": _equals("status"), "nameContains": _contains("jobName")}
    _one_of(self.querystring.get("statusEquals", [None])[0], IMPORT_JOB_STATUSES, "statusEquals")
    return _page(self, list(_here(self)[1].import_jobs.values()), filters, "creationTime",
                 "modelImportJobSummaries", lambda job: _pick(job, summary))


def get_imported_model(self) -> str:
    state = _here(self)[1]
    model = _find(state.imported_models, _path_identifier(self, "modelIdentifier"), "modelName", "Imported model")
    return json.dumps(_wire(model))


def list_imported_models(self) -> str:
    summary = ("modelArn", "modelName", "creationTime", "instructSupported", "modelArchitecture")
    return _page(self, list(_here(self)[1].imported_models.values()), {"nameContains": _contains("modelName")},
                 "creationTime", "modelSummaries", lambda model: _pick(model, summary))


def delete_imported_model(self) -> tuple:
    state = _here(self)[1]
    model = _find(state.imported_models, _path_identifier(self, "modelIdentifier"), "modelName", "Imported model")
    del state.imported_models[model["modelArn"]]
    return _answer({})


def create_model_copy_job(self) -> tuple:
    from moto.bedrock.models import CustomModel

    backend, state, account, region, partition = _here(self)
    params = _body(self)
    source_arn = params["sourceModelArn"]
    parts = source_arn.split(":")
    if len(parts) < 6 or not parts[5].startswith("custom-model/"):
        raise validation(f"{source_arn} is not a custom model ARN.")
    source = _custom_model(parts[4], parts[3], source_arn)
    name = params["targetModelName"]
    if name in backend.custom_models:
        raise conflict(f"A custom model named {name} already exists.")
    key_arn = _resolve_kms_key(params.get("modelKmsKeyId"), account, region)
    copy = CustomModel(
        model_name=name, job_name=source.job_name, job_arn=source.job_arn, base_model_arn=source.base_model_arn,
        hyper_parameters=source.hyper_parameters, output_data_config=source.output_data_config,
        training_data_config=source.training_data_config, training_metrics=source.training_metrics,
        base_model_name=source.base_model_name, region_name=region, account_id=account,
        customization_type=source.customization_type, model_kms_key_arn=key_arn,
        validation_data_config=source.validation_data_config, validation_metrics=source.validation_metrics,
    )
    backend.custom_models[name] = copy
    _tags(backend, copy.model_arn, params.get("targetModelTags"))
    job_arn = f"arn:{partition}:bedrock:{region}:{account}:model-copy-job/{_short_id()}"
    state.copy_jobs[job_arn] = {
        "jobArn": job_arn,
        "status": "Completed",
        "creationTime": _now(),
        "targetModelArn": copy.model_arn,
        "targetModelName": name,
        "sourceAccountId": parts[4],
        "sourceModelArn": source_arn,
        "targetModelKmsKeyArn": key_arn,
        "targetModelTags": params.get("targetModelTags"),
        "sourceModelName": source.model_name,
    }
    return _answer({"jobArn": job_arn}, 201)


_COPY_JOB_FIELDS = ("jobArn", "status", "creationTime", "targetModelArn", "targetModelName", "sourceAccountId",
                    "sourceModelArn", "targetModelKmsKeyArn", "targetModelTags", "failureMessage", "sourceModelName")


def get_model_copy_job(self) -> str:
    job = _find(_here(self)[1].copy_jobs, _path_identifier(self, "jobArn"), None, "Model copy job")
    return json.dumps(_wire(_pick(job, _COPY_JOB_FIELDS)))


def list_model_copy_jobs(self) -> str:
    _one_of(self.querystring.get("statusEquals", [None])[0], COPY_JOB_STATUSES, "statusEquals")
    filters = {
        "statusEquals": _equals("status"),
        "sourceAccountEquals": _equals("sourceAccountId"),
        "sourceModelArnEquals": _equals("sourceModelArn"),
        # botocore sends targetModelNameContains as outputModelNameContains
        "outputModelNameContains": _contains("targetModelName"),
    }
    return _page(self, list(_here(self)[1].copy_jobs.values()), filters, "creationTime",
                 "modelCopyJobSummaries", lambda job: _pick(job, _COPY_JOB_FIELDS))


def _served_model(account: str, region: str, identifier: str) -> tuple[str, str]:
    """(model ARN, foundation model ARN) of what a throughput is asked to serve."""
    if "foundation-model/" in identifier or not identifier.startswith("arn:") and "." in identifier:
        model_id = identifier.rsplit("/", 1)[-1]
        arn = f"arn:aws:bedrock:{region}::foundation-model/{model_id}"
        return arn, arn
    model = _custom_model(account, region, identifier)
    return model.model_arn, model.base_model_arn


def create_provisioned_model_throughput(self) -> tuple:
    backend, state, account, region, partition = _here(self)
    params = _body(self)
    name = params["provisionedModelName"]
    if any(t["provisionedModelName"] == name for t in state.throughputs.values()):
        raise conflict(f"A provisioned model named {name} already exists.")
    commitment = _one_of(params.get("commitmentDuration"), COMMITMENTS, "commitmentDuration")
    model_arn, foundation_arn = _served_model(account, region, params["modelId"])
    now = _now()
    arn = f"arn:{partition}:bedrock:{region}:{account}:provisioned-model/{_short_id()}"
    state.throughputs[arn] = {
        "provisionedModelArn": arn,
        "provisionedModelName": name,
        "modelArn": model_arn,
        "desiredModelArn": model_arn,
        "foundationModelArn": foundation_arn,
        "modelUnits": params["modelUnits"],
        "desiredModelUnits": params["modelUnits"],
        "status": "InService",
        "commitmentDuration": commitment,
        "commitmentExpirationTime": now + COMMITMENTS[commitment] if commitment else None,
        "creationTime": now,
        "lastModifiedTime": now,
    }
    _tags(backend, arn, params.get("tags"))
    return _answer({"provisionedModelArn": arn}, 201)


def _throughput(request: Any) -> dict:
    identifier = _path_identifier(request, "provisionedModelId")
    return _find(_here(request)[1].throughputs, identifier, "provisionedModelName", "Provisioned model")


def get_provisioned_model_throughput(self) -> str:
    return json.dumps(_wire(_throughput(self)))


def list_provisioned_model_throughputs(self) -> str:
    _one_of(self.querystring.get("statusEquals", [None])[0], THROUGHPUT_STATUSES, "statusEquals")
    filters = {
        "statusEquals": _equals("status"),
        "modelArnEquals": _equals("modelArn"),
        "nameContains": _contains("provisionedModelName"),
    }
    return _page(self, list(_here(self)[1].throughputs.values()), filters, "creationTime",
                 "provisionedModelSummaries", lambda t: {k: v for k, v in t.items() if k != "failureMessage"})


def update_provisioned_model_throughput(self) -> tuple:
    """Moves the throughput at once (AWS goes through Updating)."""
    throughput = _throughput(self)
    params = _body(self)
    account, region = self.current_account, self.region
    if params.get("desiredModelId"):
        model_arn, _foundation = _served_model(account, region, params["desiredModelId"])
        throughput["modelArn"] = throughput["desiredModelArn"] = model_arn
    if params.get("desiredProvisionedModelName"):
        throughput["provisionedModelName"] = params["desiredProvisionedModelName"]
    throughput["lastModifiedTime"] = _now()
    return _answer({})


def delete_provisioned_model_throughput(self) -> tuple:
    throughput = _throughput(self)
    del _here(self)[1].throughputs[throughput["provisionedModelArn"]]
    return _answer({})


def create_custom_model_deployment(self) -> tuple:
    backend, state, account, region, partition = _here(self)
    params = _body(self)
    name = params["modelDeploymentName"]
    if any(d["modelDeploymentName"] == name for d in state.deployments.values()):
        raise conflict(f"A custom model deployment named {name} already exists.")
    model = _custom_model(account, region, params["modelArn"])
    now = _now()
    arn = f"arn:{partition}:bedrock:{region}:{account}:custom-model-deployment/{_short_id()}"
    state.deployments[arn] = {
        "customModelDeploymentArn": arn,
        "modelDeploymentName": name,
        "modelArn": model.model_arn,
        "createdAt": now,
        "status": "Active",
        "description": params.get("description"),
        "lastUpdatedAt": now,
    }
    _tags(backend, arn, params.get("tags"))
    return _answer({"customModelDeploymentArn": arn}, 201)


def _deployment(request: Any) -> dict:
    identifier = _path_identifier(request, "customModelDeploymentIdentifier")
    return _find(_here(request)[1].deployments, identifier, "modelDeploymentName", "Custom model deployment")


def get_custom_model_deployment(self) -> str:
    return json.dumps(_wire(_deployment(self)))


def list_custom_model_deployments(self) -> str:
    _one_of(self.querystring.get("statusEquals", [None])[0], DEPLOYMENT_STATUSES, "statusEquals")
    filters = {
        "statusEquals": _equals("status"),
        "modelArnEquals": _equals("modelArn"),
        "nameContains": _contains("modelDeploymentName"),
    }

    def summary(deployment: dict) -> dict:
        return {
            "customModelDeploymentArn": deployment["customModelDeploymentArn"],
            "customModelDeploymentName": deployment["modelDeploymentName"],
            **_pick(deployment, ("modelArn", "createdAt", "status", "lastUpdatedAt", "failureMessage")),
        }

    return _page(self, list(_here(self)[1].deployments.values()), filters, "createdAt",
                 "modelDeploymentSummaries", summary, after="createdAfter", before="createdBefore")


def delete_custom_model_deployment(self) -> tuple:
    deployment = _deployment(self)
    del _here(self)[1].deployments[deployment["customModelDeploymentArn"]]
    return _answer({})


HANDLERS: tuple[Callable, ...] = (
    create_model_import_job, get_model_import_job, list_model_import_jobs,
    get_imported_model, list_imported_models, delete_imported_model,
    create_model_copy_job, get_model_copy_job, list_model_copy_jobs,
    create_provisioned_model_throughput, get_provisioned_model_throughput, list_provisioned_model_throughputs,
    update_provisioned_model_throughput, delete_provisioned_model_throughput,
    create_custom_model_deployment, get_custom_model_deployment, list_custom_model_deployments,
    delete_custom_model_deployment,
)


def install() -> None:
    """Teach moto's Bedrock the simulated operations.

    Idempotent. Call it before a ThreadedMotoServer starts serving (and before mock_aws
    requests): it adds methods to moto's BedrockResponse class, which every request uses.
    """
    global _installed
    with _install_lock:
        if _installed:
            return
        from moto.bedrock.models import BedrockBackend
        from moto.bedrock.responses import BedrockResponse

        for handler in HANDLERS:
            setattr(BedrockResponse, handler.__name__, handler)
        moto_arns = BedrockBackend._list_arns

        def _list_arns(backend: Any) -> list[str]:
            # moto's TagResource/ListTagsForResource check the ARN is one of the backend's.
            return [*moto_arns(backend), *state_of(backend).arns()]

        BedrockBackend._list_arns = _list_arns
        _installed = True
