"""Hand-build a bedrock-sql snapshot file for tests of the controls and of `check`.

Every table is created with the real schema (the providers' ``create_sql()`` and the
snapshot's meta tables), so a control that runs here runs on a collected snapshot too.
Rows get sensible defaults -- account 123456789012, region us-east-1, partition aws,
``title`` and ``akas`` filled -- and any column can be given as a keyword; dicts and lists
are stored as JSON text, as the collector stores them. An unknown column is an error.

    snap = SnapshotBuilder(tmp_path / "s.db")
    key = snap.add_key(alias="alias/models")
    snap.add_model("m1", model_kms_key_arn=key["arn"])
    snap.add_error(table_name="aws_bedrock_custom_model", operation="ListCustomModels", region="eu-west-1")
    with snapshot_connection(snap.path) as connection: ...

:func:`bedrock_sql.snapshot.open_snapshot` accepts the file (the runs table exists from
the start; :meth:`SnapshotBuilder.add_run` adds a run row). `check` dates its findings by
that run and refuses a snapshot without one, as no collect writes such a snapshot: call
``add_run()`` (``finished_at`` is when the findings were true) before checking.
"""

from __future__ import annotations

import itertools
import json
import sqlite3
import uuid
from pathlib import Path
from typing import Any

from bedrock_sql.policy import PolicyError, canonical
from bedrock_sql.providers import TABLES
from bedrock_sql.snapshot import ERRORS_TABLE, META_TABLES, RUNS_TABLE, _create_sql
from bedrock_sql.snapshot_file import APPLICATION_ID

ACCOUNT = "123456789012"
REGION = "us-east-1"
PARTITION = "aws"
FOREIGN_ACCOUNT = "999999999999"
WHEN = "2026-11-28T12:00:00Z"

MODELS = "aws_bedrock_custom_model"
JOBS = "aws_bedrock_model_customization_job"
KEYS = "aws_kms_key"
ALIASES = "aws_kms_alias"
IMPORTED_MODELS = "aws_bedrock_imported_model"
IMPORT_JOBS = "aws_bedrock_model_import_job"
COPY_JOBS = "aws_bedrock_model_copy_job"
THROUGHPUTS = "aws_bedrock_provisioned_model_throughput"
DEPLOYMENTS = "aws_bedrock_custom_model_deployment"

_counter = itertools.count(1)


def key_arn(key_id: str, *, account_id: str = ACCOUNT, region: str = REGION, partition: str = PARTITION) -> str:
    return f"arn:{partition}:kms:{region}:{account_id}:key/{key_id}"


def default_key_policy(account_id: str = ACCOUNT, partition: str = PARTITION) -> dict[str, Any]:
    """The policy KMS gives a key by default: the account root may do everything."""
    return {
        "Version": "2012-10-17",
        "Id": "key-default-1",
        "Statement": [
            {
                "Sid": "Enable IAM User Permissions",
                "Effect": "Allow",
                "Principal": {"AWS": f"arn:{partition}:iam::{account_id}:root"},
                "Action": "kms:*",
                "Resource": "*",
            }
        ],
    }


class SnapshotBuilder:
    """A snapshot file with every table, filled row by row."""

    def __init__(self, path: str | Path):
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        if self.path.exists():
            self.path.unlink()
        self.columns: dict[str, list[str]] = {}
        with self._connect() as db:
            for name, table in TABLES.items():
                db.execute(table.create_sql())
                self.columns[name] = table.column_names
            for name, (_, columns) in META_TABLES.items():
                db.execute(_create_sql(name, columns))
                self.columns[name] = [c.name for c in columns]
            db.execute(f"PRAGMA application_id = {APPLICATION_ID}")  # as every collected snapshot
        self.close()

    # --- plumbing ---------------------------------------------------------------------

    def _connect(self) -> sqlite3.Connection:
        self._db = sqlite3.connect(self.path)
        return self._db

    def close(self) -> None:
        db = getattr(self, "_db", None)
        if db is not None:
            db.close()
            self._db = None

    def insert(self, table: str, **values: Any) -> dict[str, Any]:
        """Insert one row of ``table`` as given (JSON-encoding dicts and lists); returns it."""
        unknown = sorted(set(values) - set(self.columns[table]))
        if unknown:
            raise KeyError(f"{table} has no column(s) {', '.join(unknown)}")
        row = {name: _sql_value(values.get(name)) for name in self.columns[table]}
        names = ", ".join(f'"{n}"' for n in row)
        marks = ", ".join("?" for _ in row)
        with self._connect() as db:
            db.execute(f"INSERT INTO {table}({names}) VALUES ({marks})", tuple(row.values()))
        self.close()
        return {name: values.get(name) for name in self.columns[table]}

    @staticmethod
    def _common(account_id: str, region: str, partition: str, title: Any, arn: str | None) -> dict[str, Any]:
        return {
            "account_id": account_id,
            "region": region,
            "partition": partition,
            "title": title,
            "akas": [arn] if arn else [],
        }

    # --- rows -------------------------------------------------------------------------

    def add_model(
        self,
        model_name: str | None = None,
        *,
        account_id: str = ACCOUNT,
        region: str = REGION,
        partition: str = PARTITION,
        **cols: Any,
    ) -> dict[str, Any]:
        """A custom model; ``model_kms_key_arn`` defaults to NULL (the Bedrock-owned key)."""
        name = model_name or f"model-{next(_counter)}"
        arn = cols.pop("arn", None) or f"arn:{partition}:bedrock:{region}:{account_id}:custom-model/{name}"
        job_name = cols.pop("job_name", None) or f"{name}-job"
        row = {
            "arn": arn,
            "model_name": name,
            "job_name": job_name,
            "job_arn": f"arn:{partition}:bedrock:{region}:{account_id}:model-customization-job/{job_name}",
            "base_model_arn": f"arn:{partition}:bedrock:{region}::foundation-model/amazon.titan-text-express-v1:0:8k",
            "base_model_name": "amazon.titan-text-express-v1:0:8k",
            "customization_type": "FINE_TUNING",
            "model_status": "Active",
            "owner_account_id": account_id,
            "model_kms_key_arn": None,
            "creation_time": WHEN,
            "hyper_parameters": {"epochCount": "2"},
            "tags": {},
            **self._common(account_id, region, partition, name, arn),
        }
        row.update(cols)
        return self.insert(MODELS, **row)

    def add_job(
        self,
        job_name: str | None = None,
        *,
        account_id: str = ACCOUNT,
        region: str = REGION,
        partition: str = PARTITION,
        **cols: Any,
    ) -> dict[str, Any]:
        """A customization job, Completed, no output key (Bedrock-owned), no VPC."""
        name = job_name or f"job-{next(_counter)}"
        arn = cols.pop("arn", None) or f"arn:{partition}:bedrock:{region}:{account_id}:model-customization-job/{name}"
        row = {
            "arn": arn,
            "job_name": name,
            "status": "Completed",
            "base_model_arn": f"arn:{partition}:bedrock:{region}::foundation-model/amazon.titan-text-express-v1:0:8k",
            "output_model_name": f"{name}-model",
            "output_model_arn": f"arn:{partition}:bedrock:{region}:{account_id}:custom-model/{name}-model",
            "output_model_kms_key_arn": None,
            "role_arn": f"arn:{partition}:iam::{account_id}:role/BedrockCustomization",
            "customization_type": "FINE_TUNING",
            "vpc_config": None,
            "creation_time": WHEN,
            "last_modified_time": WHEN,
            "tags": {},
            **self._common(account_id, region, partition, name, arn),
        }
        row.update(cols)
        return self.insert(JOBS, **row)

    def add_key(
        self,
        alias: str | None = None,
        *,
        account_id: str = ACCOUNT,
        region: str = REGION,
        partition: str = PARTITION,
        **cols: Any,
    ) -> dict[str, Any]:
        """A KMS key: customer managed, Enabled, symmetric AWS_KMS, rotation on, default policy.

        ``key_manager="AWS"`` gives an AWS managed key (rotation on; no policy or tags, as the
        collector stores one). Returns the row; ``row["arn"]`` is what models point at.
        ``policy_std`` is derived from ``policy`` unless given.
        """
        key_id = cols.pop("id", None) or str(uuid.UUID(int=next(_counter)))
        arn = cols.pop("arn", None) or key_arn(key_id, account_id=account_id, region=region, partition=partition)
        manager = cols.get("key_manager", "CUSTOMER")
        state = cols.get("key_state", "Enabled")
        customer = manager == "CUSTOMER"
        row = {
            "arn": arn,
            "id": key_id,
            "key_manager": manager,
            "key_state": state,
            "enabled": int(state == "Enabled"),
            "origin": "AWS_KMS",
            "key_usage": "ENCRYPT_DECRYPT",
            "key_spec": "SYMMETRIC_DEFAULT",
            "customer_master_key_spec": cols.get("key_spec", "SYMMETRIC_DEFAULT"),
            "description": "a test key",
            "aws_account_id": account_id,
            "creation_date": WHEN,
            "deletion_date": "2026-12-28T12:00:00Z" if state == "PendingDeletion" else None,
            "valid_to": None,
            "multi_region": 0,
            "multi_region_configuration": None,
            "key_rotation_enabled": 1,
            "policy": default_key_policy(account_id, partition) if customer else None,
            "aliases": [
                {
                    "AliasArn": f"arn:{partition}:kms:{region}:{account_id}:{alias}",
                    "AliasName": alias,
                    "CreationDate": WHEN,
                    "LastUpdatedDate": WHEN,
                    "TargetKeyId": key_id,
                }
            ] if alias else [],
            "tags_src": [] if customer else None,
            "tags": {} if customer else None,
            **self._common(account_id, region, partition, alias or key_id, arn),
        }
        row.update(cols)
        if "policy_std" not in cols:
            policy = json.loads(row["policy"]) if isinstance(row["policy"], str) else row["policy"]
            try:
                row["policy_std"] = None if policy is None else canonical(policy)
            except PolicyError:  # a deliberately broken policy: no canonical form
                row["policy_std"] = None
        return self.insert(KEYS, **row)

    def add_alias(
        self, alias_name: str, target_key_id: str, *, account_id: str = ACCOUNT, region: str = REGION,
        partition: str = PARTITION, **cols: Any,
    ) -> dict[str, Any]:
        arn = f"arn:{partition}:kms:{region}:{account_id}:{alias_name}"
        row = {
            "alias_name": alias_name,
            "arn": arn,
            "target_key_id": target_key_id,
            "creation_date": WHEN,
            "last_updated_date": WHEN,
            **self._common(account_id, region, partition, alias_name, arn),
        }
        row.update(cols)
        return self.insert(ALIASES, **row)

    def _bedrock_row(self, table: str, kind: str, name: str, account_id: str, region: str, partition: str,
                     defaults: dict[str, Any], cols: dict[str, Any]) -> dict[str, Any]:
        """A row of a Bedrock table whose ARN is ``arn:...:bedrock:REGION:ACCOUNT:KIND/NAME``."""
        arn = cols.pop("arn", None) or f"arn:{partition}:bedrock:{region}:{account_id}:{kind}/{name}"
        row = {"arn": arn, **defaults, **self._common(account_id, region, partition, name, arn)}
        if "tags" in self.columns[table]:
            row["tags"] = {}
        row.update(cols)
        return self.insert(table, **row)

    def add_imported_model(self, model_name: str | None = None, *, account_id: str = ACCOUNT, region: str = REGION,
                           partition: str = PARTITION, **cols: Any) -> dict[str, Any]:
        """An imported model (Custom Model Import); ``model_kms_key_arn`` defaults to NULL."""
        name = model_name or f"imported-{next(_counter)}"
        job_name = cols.pop("job_name", None) or f"{name}-import"
        defaults = {
            "model_name": name,
            "job_name": job_name,
            "job_arn": f"arn:{partition}:bedrock:{region}:{account_id}:model-import-job/{job_name}",
            "model_data_source": {"s3DataSource": {"s3Uri": f"s3://models-{account_id}/{name}/"}},
            "model_architecture": "llama3",
            "model_kms_key_arn": None,
            "instruct_supported": 1,
            "creation_time": WHEN,
        }
        return self._bedrock_row(IMPORTED_MODELS, "imported-model", name, account_id, region, partition, defaults, cols)

    def add_import_job(self, job_name: str | None = None, *, account_id: str = ACCOUNT, region: str = REGION,
                       partition: str = PARTITION, **cols: Any) -> dict[str, Any]:
        """A Completed model import job, no key."""
        name = job_name or f"import-{next(_counter)}"
        defaults = {
            "job_name": name,
            "status": "Completed",
            "imported_model_name": f"{name}-model",
            "imported_model_arn": f"arn:{partition}:bedrock:{region}:{account_id}:imported-model/{name}-model",
            "imported_model_kms_key_arn": None,
            "role_arn": f"arn:{partition}:iam::{account_id}:role/BedrockImport",
            "model_data_source": {"s3DataSource": {"s3Uri": f"s3://models-{account_id}/{name}/"}},
            "creation_time": WHEN,
            "last_modified_time": WHEN,
            "end_time": WHEN,
        }
        return self._bedrock_row(IMPORT_JOBS, "model-import-job", name, account_id, region, partition, defaults, cols)

    def add_copy_job(self, source_model_arn: str, target_model_arn: str, *, account_id: str = ACCOUNT,
                     region: str = REGION, partition: str = PARTITION, **cols: Any) -> dict[str, Any]:
        """A Completed copy job from ``source_model_arn`` to ``target_model_arn``, no key."""
        job_id = f"copy-{next(_counter)}"
        defaults = {
            "status": "Completed",
            "source_account_id": source_model_arn.split(":")[4],
            "source_model_arn": source_model_arn,
            "source_model_name": source_model_arn.rsplit("/", 1)[-1],
            "target_model_arn": target_model_arn,
            "target_model_name": target_model_arn.rsplit("/", 1)[-1],
            "target_model_kms_key_arn": None,
            "target_model_tags": {},
            "creation_time": WHEN,
        }
        return self._bedrock_row(COPY_JOBS, "model-copy-job", job_id, account_id, region, partition, defaults, cols)

    def add_throughput(self, model_arn: str | None, name: str | None = None, *, account_id: str = ACCOUNT,
                       region: str = REGION, partition: str = PARTITION, **cols: Any) -> dict[str, Any]:
        """A provisioned throughput InService serving ``model_arn`` (``desired_model_arn`` too, unless given)."""
        name = name or f"pt-{next(_counter)}"
        defaults = {
            "provisioned_model_name": name,
            "model_arn": model_arn,
            "desired_model_arn": model_arn,
            "foundation_model_arn": f"arn:{partition}:bedrock:{region}::foundation-model/amazon.titan-text-express-v1:0:8k",
            "model_units": 1,
            "desired_model_units": 1,
            "status": "InService",
            "creation_time": WHEN,
            "last_modified_time": WHEN,
        }
        return self._bedrock_row(THROUGHPUTS, "provisioned-model", name, account_id, region, partition, defaults, cols)

    def add_deployment(self, model_arn: str, name: str | None = None, *, account_id: str = ACCOUNT,
                       region: str = REGION, partition: str = PARTITION, **cols: Any) -> dict[str, Any]:
        """An Active custom model deployment serving ``model_arn``."""
        name = name or f"deployment-{next(_counter)}"
        defaults = {
            "model_deployment_name": name,
            "model_arn": model_arn,
            "status": "Active",
            "created_at": WHEN,
            "last_updated_at": WHEN,
        }
        return self._bedrock_row(DEPLOYMENTS, "custom-model-deployment", name, account_id, region, partition,
                                 defaults, cols)

    def add_error(
        self,
        *,
        table_name: str,
        operation: str,
        resource: str | None = None,
        account_id: str = ACCOUNT,
        region: str = REGION,
        error_code: str = "AccessDeniedException",
        message: str = "User is not authorized to perform this operation",
        occurred_at: str = WHEN,
    ) -> dict[str, Any]:
        """A row of bedrock_sql_errors; ``resource`` None means the whole listing failed."""
        return self.insert(
            ERRORS_TABLE,
            account_id=account_id,
            region=region,
            table_name=table_name,
            operation=operation,
            error_code=error_code,
            message=message,
            occurred_at=occurred_at,
            resource=resource,
        )

    def add_run(self, **cols: Any) -> dict[str, Any]:
        row = {
            "run_id": str(uuid.uuid4()),
            "started_at": WHEN,
            "finished_at": WHEN,
            "status": "complete",
            "accounts": [ACCOUNT],
            "regions": [REGION],
            "tool_version": "test",
            "api_calls": 0,
        }
        row.update(cols)
        return self.insert(RUNS_TABLE, **row)


def _sql_value(value: Any) -> Any:
    if isinstance(value, bool):
        return int(value)
    if isinstance(value, (dict, list, tuple)):
        return json.dumps(value, sort_keys=True, separators=(",", ":"))
    return value


# The bundled controls, by id.
SEED = "bedrock_custom_model_encrypted_with_cmk"
IMPORTED_SEED = "bedrock_imported_model_encrypted_with_cmk"
USABLE = "bedrock_custom_model_cmk_usable"
ROTATION = "bedrock_custom_model_cmk_rotation_enabled"
POLICY = "bedrock_custom_model_cmk_policy_not_public"
JOB_CMK = "bedrock_customization_job_output_encrypted_with_cmk"
JOB_VPC = "bedrock_customization_job_in_vpc"
