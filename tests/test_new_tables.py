"""The five tables of the whole custom-model estate (imported models, import and copy jobs,
provisioned throughput, custom model deployments), live over HTTP against a
ThreadedMotoServer taught those operations by bedrock_sql.simulated_bedrock."""

from __future__ import annotations

import json

import boto3
import pytest

from bedrock_sql.estate import DEFAULT_ACCOUNT_ID, create_key, seed_models
from bedrock_sql.estate_served import copy_model, deploy_model, import_model, provision_throughput
from helpers import deny, make_live

REGION, OTHER = "us-east-1", "eu-west-1"
IMPORTED = "aws_bedrock_imported_model"
IMPORT_JOBS = "aws_bedrock_model_import_job"
COPY_JOBS = "aws_bedrock_model_copy_job"
THROUGHPUT = "aws_bedrock_provisioned_model_throughput"
DEPLOYMENTS = "aws_bedrock_custom_model_deployment"


@pytest.fixture
def estate(moto_url: str):
    """Over HTTP: a CMK, two custom models, two imported models (one on the CMK), a keyless
    copy into OTHER, a throughput and a deployment serving the keyless model."""
    session = boto3.Session(region_name=REGION)
    key = create_key(session, REGION, alias="alias/imports", endpoint_url=moto_url)
    (owned,) = seed_models(session, REGION, 1, prefix="owned", endpoint_url=moto_url)
    (keyed,) = seed_models(session, REGION, 1, prefix="keyed", key_arn=key.arn, endpoint_url=moto_url)
    bedrock = session.client("bedrock", region_name=REGION, endpoint_url=moto_url)
    other = session.client("bedrock", region_name=OTHER, endpoint_url=moto_url)
    return {
        "key": key,
        "owned": owned,
        "keyed": keyed,
        "plain_import": import_model(bedrock, "plain-import", tags={"team": "a"}),
        "cmk_import": import_model(bedrock, "cmk-import", kms_key="alias/imports"),
        "copy": copy_model(other, owned.model_arn, "owned-copy", tags={"from": REGION}),
        "throughput": provision_throughput(bedrock, "owned-pt", owned.model_arn, commitment="OneMonth"),
        "deployment": deploy_model(bedrock, "owned-deploy", owned.model_arn, description="chat"),
        "url": moto_url,
    }


@pytest.fixture
def live(estate):
    handle = make_live((REGION, OTHER), endpoint_url=estate["url"])
    try:
        yield handle
    finally:
        handle.close()


def test_imported_models_listed_with_their_key(estate, live) -> None:
    rows = {r["model_name"]: r for r in live.rows(f"SELECT * FROM {IMPORTED}")}
    assert set(rows) == {"plain-import", "cmk-import"}
    plain, cmk = rows["plain-import"], rows["cmk-import"]
    assert plain["model_kms_key_arn"] is None
    assert cmk["model_kms_key_arn"] == f"arn:aws:kms:{REGION}:{DEFAULT_ACCOUNT_ID}:alias/imports"
    assert plain["arn"] == estate["plain_import"]["model_arn"] and plain["job_name"] == "plain-import-import"
    assert json.loads(plain["tags"]) == {"team": "a"}
    assert json.loads(plain["model_data_source"])["s3DataSource"]["s3Uri"].startswith("s3://")
    assert plain["instruct_supported"] == 1 and json.loads(plain["akas"]) == [plain["arn"]]
    assert live.calls("GetImportedModel") == 2 and live.errors.records() == []


def test_import_jobs_name_their_model_and_key(estate, live) -> None:
    rows = {r["job_name"]: r for r in live.rows(f"SELECT * FROM {IMPORT_JOBS}")}
    assert rows["cmk-import-import"]["imported_model_arn"] == estate["cmk_import"]["model_arn"]
    assert rows["cmk-import-import"]["imported_model_kms_key_arn"].endswith(":alias/imports")
    assert rows["plain-import-import"]["imported_model_kms_key_arn"] is None
    assert rows["plain-import-import"]["status"] == "Completed"
    assert rows["plain-import-import"]["role_arn"].startswith("arn:aws:iam::")


def test_copy_job_joins_the_custom_model_it_made(estate, live) -> None:
    rows = live.rows(
        f"SELECT j.source_model_arn, j.target_model_kms_key_arn, m.model_name, m.model_kms_key_arn, "
        f"j.target_model_tags, j.region FROM {COPY_JOBS} j JOIN aws_bedrock_custom_model m "
        "ON m.arn = j.target_model_arn"
    )
    assert rows == [{
        "source_model_arn": estate["owned"].model_arn, "target_model_kms_key_arn": None,
        "model_name": "owned-copy", "model_kms_key_arn": None,
        "target_model_tags": '{"from":"us-east-1"}', "region": OTHER,
    }]


def test_throughput_and_deployment_join_the_model_they_serve(estate, live) -> None:
    served = live.values(
        f"SELECT t.provisioned_model_name FROM {THROUGHPUT} t JOIN aws_bedrock_custom_model m ON t.model_arn = m.arn "
        "WHERE m.model_kms_key_arn IS NULL"
    )
    assert served == ["owned-pt"]
    throughput = live.rows(f"SELECT * FROM {THROUGHPUT}")[0]
    assert throughput["desired_model_arn"] == estate["owned"].model_arn
    assert throughput["commitment_duration"] == "OneMonth" and throughput["commitment_expiration_time"]
    assert throughput["status"] == "InService" and throughput["model_units"] == 1
    deployment = live.rows(f"SELECT * FROM {DEPLOYMENTS}")[0]
    assert (deployment["model_deployment_name"], deployment["model_arn"]) == ("owned-deploy", estate["owned"].model_arn)
    assert deployment["description"] == "chat" and deployment["status"] == "Active"


@pytest.mark.parametrize(
    ("table", "arn_of", "get", "listing"),
    [
        (IMPORTED, lambda e: e["cmk_import"]["model_arn"], "GetImportedModel", "ListImportedModels"),
        (IMPORT_JOBS, lambda e: e["cmk_import"]["job_arn"], "GetModelImportJob", "ListModelImportJobs"),
        (COPY_JOBS, lambda e: e["copy"]["job_arn"], "GetModelCopyJob", "ListModelCopyJobs"),
        (THROUGHPUT, lambda e: e["throughput"], "GetProvisionedModelThroughput", "ListProvisionedModelThroughputs"),
        (DEPLOYMENTS, lambda e: e["deployment"], "GetCustomModelDeployment", "ListCustomModelDeployments"),
    ],
)
def test_arn_is_one_get_and_no_listing(estate, live, table, arn_of, get, listing) -> None:
    arn = arn_of(estate)
    assert live.values(f"SELECT arn FROM {table} WHERE arn = ?", (arn,)) == [arn]
    assert live.calls(get) == 1 and live.calls(listing) == 0
    unknown = arn[: arn.rindex("/") + 1] + "000000000000"
    live.reset_calls()
    assert live.rows(f"SELECT * FROM {table} WHERE arn = ?", (unknown,)) == []
    assert live.calls(get) == 1 and live.calls(listing) == 0
    assert live.errors.records() == []  # not found: no row, no error


@pytest.mark.parametrize(
    ("table", "column", "value", "get"),
    [
        (IMPORTED, "model_name", "plain-import", "GetImportedModel"),
        (IMPORT_JOBS, "job_name", "plain-import-import", "GetModelImportJob"),
        (THROUGHPUT, "provisioned_model_name", "owned-pt", "GetProvisionedModelThroughput"),
        (DEPLOYMENTS, "model_deployment_name", "owned-deploy", "GetCustomModelDeployment"),
    ],
)
def test_name_is_a_get_in_each_region(estate, live, table, column, value, get) -> None:
    assert live.values(f"SELECT {column} FROM {table} WHERE {column} = ?", (value,)) == [value]
    assert live.calls(get) == 2 and live.calls(service="bedrock") == live.calls(get) + live.calls("ListTagsForResource")
    assert live.errors.records() == []


def test_filters_are_pushed_into_the_listing(estate, live) -> None:
    owned = estate["owned"].model_arn
    assert live.values(f"SELECT provisioned_model_name FROM {THROUGHPUT} WHERE model_arn = ?", (owned,)) == ["owned-pt"]
    assert live.values(f"SELECT model_deployment_name FROM {DEPLOYMENTS} WHERE model_arn = ? AND status = 'Active'", (owned,)) == ["owned-deploy"]
    assert live.values(f"SELECT target_model_name FROM {COPY_JOBS} WHERE source_model_arn = ?", (owned,)) == ["owned-copy"]
    assert live.values(f"SELECT job_name FROM {IMPORT_JOBS} WHERE status = 'Failed'") == []
    assert live.values(f"SELECT count(*) FROM {IMPORTED} WHERE creation_time > '2000-01-01'") == [2]
    assert live.values(f"SELECT count(*) FROM {IMPORTED} WHERE creation_time < '2000-01-01'") == [0]


def test_filter_parameters_reach_the_api(estate, live) -> None:
    from helpers import capture_params

    # Hooks reach clients created afterwards: register both before the first query.
    throughputs = capture_params(live.scope, "bedrock", "ListProvisionedModelThroughputs")
    deployments = capture_params(live.scope, "bedrock", "ListCustomModelDeployments")
    live.values(f"SELECT arn FROM {THROUGHPUT} WHERE model_arn = ? AND status = 'InService'", (estate["owned"].model_arn,))
    owned = estate["owned"].model_arn
    assert throughputs and all(p["modelArnEquals"] == owned and p["statusEquals"] == "InService" for p in throughputs)
    assert live.values(f"SELECT count(*) FROM {DEPLOYMENTS} WHERE created_at >= '2020-01-01T00:00:00Z'") == [1]
    assert deployments and all("createdAfter" in p for p in deployments)


def test_listings_page(moto_url: str) -> None:
    session = boto3.Session(region_name=REGION)
    bedrock = session.client("bedrock", region_name=REGION, endpoint_url=moto_url)
    (model,) = seed_models(session, REGION, 1, endpoint_url=moto_url)
    other = session.client("bedrock", region_name=OTHER, endpoint_url=moto_url)
    for n in range(3):
        import_model(bedrock, f"import-{n}")
        provision_throughput(bedrock, f"pt-{n}", model.model_arn)
        deploy_model(bedrock, f"deploy-{n}", model.model_arn)
        copy_model(other, model.model_arn, f"copy-{n}")
    pages = [p for p in bedrock.get_paginator("list_imported_models").paginate(PaginationConfig={"PageSize": 2})]
    assert [len(p["modelSummaries"]) for p in pages] == [2, 1]
    handle = make_live((REGION, OTHER), endpoint_url=moto_url)
    try:
        with pytest.MonkeyPatch.context() as patch:
            patch.setattr("bedrock_sql.simulated_bedrock.DEFAULT_MAX_RESULTS", 2)  # every listing takes 2 pages
            counts = {t: handle.values(f"SELECT count(DISTINCT arn) || '/' || count(*) FROM {t}")[0]
                      for t in (IMPORTED, IMPORT_JOBS, COPY_JOBS, THROUGHPUT, DEPLOYMENTS)}
        assert set(counts.values()) == {"3/3"}
        for listing in ("ListImportedModels", "ListModelImportJobs", "ListProvisionedModelThroughputs",
                        "ListCustomModelDeployments"):
            assert handle.calls(listing, REGION) == 2, listing
        assert handle.calls("ListModelCopyJobs", OTHER) == 2
    finally:
        handle.close()


def test_access_denied_on_one_listing_costs_that_table_only(estate, live) -> None:
    deny(live.scope, "bedrock", "ListProvisionedModelThroughputs", when=lambda p, c: c.get("client_region") == REGION)
    assert live.values(f"SELECT count(*) FROM {THROUGHPUT}") == [0]
    assert live.values(f"SELECT count(*) FROM {DEPLOYMENTS}") == [1]
    assert live.values(f"SELECT count(*) FROM {IMPORTED}") == [2]
    errors = live.errors.records()
    assert [(e.table_name, e.region, e.error_code) for e in errors] == [
        (THROUGHPUT, REGION, "AccessDeniedException")
    ], errors


def test_simulation_rejects_what_bedrock_rejects(estate) -> None:
    bedrock = boto3.client("bedrock", region_name=REGION, endpoint_url=estate["url"])
    with pytest.raises(bedrock.exceptions.ResourceNotFoundException):
        bedrock.get_imported_model(modelIdentifier="no-such-model")
    with pytest.raises(bedrock.exceptions.ValidationException):
        import_model(bedrock, "bad-key", kms_key="alias/does-not-exist")
    with pytest.raises(bedrock.exceptions.ConflictException):
        import_model(bedrock, "plain-import")
    with pytest.raises(bedrock.exceptions.ValidationException):
        bedrock.list_imported_models(nextToken="forged")
    with pytest.raises(bedrock.exceptions.ResourceNotFoundException):
        provision_throughput(bedrock, "pt-x", f"arn:aws:bedrock:{REGION}:{DEFAULT_ACCOUNT_ID}:custom-model/none")


def test_reset_drops_the_simulated_state(estate) -> None:
    from conftest import reset_moto_server

    bedrock = boto3.client("bedrock", region_name=REGION, endpoint_url=estate["url"])
    assert bedrock.list_imported_models()["modelSummaries"]
    reset_moto_server(estate["url"])
    assert bedrock.list_imported_models()["modelSummaries"] == []
    assert bedrock.list_provisioned_model_throughputs()["provisionedModelSummaries"] == []


def test_value_formats(estate, live) -> None:
    """Timestamps ISO-8601 UTC, JSON objects as JSON text, akas the ARN, as in every table."""
    import re

    iso = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}Z$")
    times = {IMPORTED: ["creation_time"], IMPORT_JOBS: ["creation_time", "last_modified_time", "end_time"],
             COPY_JOBS: ["creation_time"], THROUGHPUT: ["creation_time", "last_modified_time", "commitment_expiration_time"],
             DEPLOYMENTS: ["created_at", "last_updated_at"]}
    objects = {IMPORTED: ["tags", "model_data_source", "custom_model_units"], IMPORT_JOBS: ["tags", "model_data_source"],
               COPY_JOBS: ["target_model_tags"], THROUGHPUT: ["tags"], DEPLOYMENTS: ["tags"]}
    for table in times:
        rows = live.rows(f"SELECT * FROM {table}")
        assert rows, table
        for row in rows:
            assert all(iso.match(row[c]) for c in times[table]), (table, row)
            assert all(isinstance(json.loads(row[c]), dict) for c in objects[table]), (table, row)
            assert json.loads(row["akas"]) == [row["arn"]] and row["title"], (table, row)
