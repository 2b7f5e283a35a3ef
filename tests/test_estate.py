"""The simulated estate: what seeding creates is what the AWS APIs report."""

from __future__ import annotations

import boto3
import pytest

from bedrock_sql.estate import (
    CASES,
    FOREIGN_ACCOUNT_ID,
    Estate,
    create_key,
    estate_summary,
    seed_demo_estate,
    seed_models,
)

REGIONS = ("us-east-1", "eu-west-1")


def list_all_models(bedrock) -> list[dict]:
    pages = bedrock.get_paginator("list_custom_models").paginate()
    return [m for page in pages for m in page["modelSummaries"]]


def list_all_jobs(bedrock) -> list[dict]:
    pages = bedrock.get_paginator("list_model_customization_jobs").paginate()
    return [j for page in pages for j in page["modelCustomizationJobSummaries"]]


@pytest.fixture
def demo(aws: boto3.Session) -> Estate:
    return seed_demo_estate(aws, regions=REGIONS)


def test_demo_estate_shape(demo: Estate) -> None:
    assert len(demo.models) >= 12
    assert demo.regions == sorted(REGIONS)
    assert {m.case for m in demo.models} == set(CASES)
    for region in REGIONS:
        assert len(demo.models_in(region)) >= 6
    # Every job ran with the same role; statuses beyond Completed exist, without models.
    statuses = {j["status"] for j in demo.jobs}
    assert statuses == {"Completed", "InProgress", "Failed", "Stopped"}
    for job in demo.jobs:
        assert (job["model_arn"] is not None) == (job["status"] == "Completed")
    assert {j["customization_type"] for j in demo.jobs} == {"FINE_TUNING", "CONTINUED_PRE_TRAINING"}
    assert any(j["vpc"] for j in demo.jobs) and not all(j["vpc"] for j in demo.jobs)
    summary = estate_summary(demo)
    assert summary["models"] == len(demo.models)
    assert sum(summary["models_by_case"].values()) == len(demo.models)


def test_demo_models_report_their_seeded_key(aws: boto3.Session, demo: Estate) -> None:
    for region in REGIONS:
        bedrock = aws.client("bedrock", region_name=region)
        listed = {m["modelName"] for m in list_all_models(bedrock)}
        assert listed == {m.model_name for m in demo.models_in(region)}
        for seeded in demo.models_in(region):
            model = bedrock.get_custom_model(modelIdentifier=seeded.model_name)
            assert model["modelArn"] == seeded.model_arn
            assert model["jobArn"] == seeded.job_arn
            assert model.get("modelKmsKeyArn") == seeded.kms_key_arn
            assert not model.get("modelKmsKeyArn", "").endswith("-kms-key")


def test_each_case_points_at_the_right_key(aws: boto3.Session, demo: Estate) -> None:
    for seeded in demo.by_case("bedrock_owned"):
        assert seeded.kms_key_arn is None
    for seeded in demo.by_case("foreign_account_key"):
        assert f":{FOREIGN_ACCOUNT_ID}:key/" in seeded.kms_key_arn
        assert demo.key_by_arn(seeded.kms_key_arn) is None
        kms = aws.client("kms", region_name=seeded.region)
        with pytest.raises(kms.exceptions.NotFoundException):
            kms.describe_key(KeyId=seeded.kms_key_arn)
    expected = {
        "cmk": ("CUSTOMER", "Enabled"),
        "aws_managed": ("AWS", "Enabled"),
        "disabled_key": ("CUSTOMER", "Disabled"),
        "pending_deletion_key": ("CUSTOMER", "PendingDeletion"),
    }
    for case, (manager, state) in expected.items():
        models = demo.by_case(case)
        assert models, case
        for seeded in models:
            kms = aws.client("kms", region_name=seeded.region)
            meta = kms.describe_key(KeyId=seeded.kms_key_arn)["KeyMetadata"]
            assert (meta["KeyManager"], meta["KeyState"]) == (manager, state), seeded.model_name
            assert meta["Enabled"] is (state == "Enabled")
            if state == "PendingDeletion":
                assert "DeletionDate" in meta


def test_aws_managed_key_has_the_bedrock_alias(aws: boto3.Session, demo: Estate) -> None:
    for region in REGIONS:
        key = demo.key("alias/aws/bedrock", region)
        kms = aws.client("kms", region_name=region)
        meta = kms.describe_key(KeyId="alias/aws/bedrock")["KeyMetadata"]
        assert meta["Arn"] == key.arn
        assert meta["KeyManager"] == "AWS"
        aws_managed = demo.by_case("aws_managed")
        assert any(m.kms_key_arn == key.arn for m in aws_managed if m.region == region)


def test_customer_keys_have_aliases_and_rotation(aws: boto3.Session, demo: Estate) -> None:
    kms = aws.client("kms", region_name="us-east-1")
    rotated = demo.key("alias/bedrock/custom-models", "us-east-1")
    legacy = demo.key("alias/bedrock/legacy-models", "us-east-1")
    assert kms.get_key_rotation_status(KeyId=rotated.key_id)["KeyRotationEnabled"] is True
    assert kms.get_key_rotation_status(KeyId=legacy.key_id)["KeyRotationEnabled"] is False
    aliases = {a["AliasName"]: a.get("TargetKeyId") for a in kms.list_aliases()["Aliases"]}
    for key in demo.keys:
        if key.region == "us-east-1":
            assert aliases[key.alias] == key.key_id
    policy = kms.get_key_policy(KeyId=rotated.key_id, PolicyName="default")["Policy"]
    assert "role/BedrockCustomizationRole" in policy


def test_jobs_are_realistic(aws: boto3.Session, demo: Estate) -> None:
    bedrock = aws.client("bedrock", region_name="us-east-1")
    summaries = {j["jobName"]: j for j in list_all_jobs(bedrock)}
    assert set(summaries) == {j["job_name"] for j in demo.jobs if j["region"] == "us-east-1"}

    job = bedrock.get_model_customization_job(jobIdentifier="support-chat-ft-2026-10")
    seeded = demo.model("support-chat-v3")
    assert job["status"] == "Completed"
    assert job["outputModelArn"] == seeded.model_arn
    assert job["outputModelName"] == "support-chat-v3"
    assert job["outputModelKmsKeyArn"] == seeded.kms_key_arn
    assert job["roleArn"] == "arn:aws:iam::123456789012:role/BedrockCustomizationRole"
    assert job["hyperParameters"] == {"epochCount": "2", "batchSize": "1", "learningRate": "0.00001"}
    assert job["baseModelArn"].endswith("foundation-model/amazon.titan-text-express-v1:0:8k")
    assert job["trainingDataConfig"]["s3Uri"].startswith("s3://")
    assert job["validationDataConfig"]["validators"][0]["s3Uri"].endswith("validation.jsonl")
    assert job["vpcConfig"]["subnetIds"] and job["vpcConfig"]["securityGroupIds"]
    assert "failureMessage" not in job
    assert job["creationTime"].year == 2026 and job["creationTime"].month == 10
    tags = bedrock.list_tags_for_resource(resourceARN=seeded.model_arn)["tags"]
    assert {"key": "team", "value": "support"} in tags

    failed = bedrock.get_model_customization_job(jobIdentifier="legal-corpus-cpt-2026-11")
    assert failed["status"] == "Failed" and failed["failureMessage"].endswith(".")
    assert "outputModelArn" not in failed and "outputModelKmsKeyArn" not in failed
    in_progress = bedrock.get_model_customization_job(jobIdentifier="support-chat-ft-2026-11")
    assert in_progress["status"] == "InProgress" and "endTime" not in in_progress
    no_vpc = bedrock.get_model_customization_job(jobIdentifier="marketing-copy-ft-2026-07")
    assert "vpcConfig" not in no_vpc and "outputModelKmsKeyArn" not in no_vpc


def test_create_key_states(aws: boto3.Session) -> None:
    kms = aws.client("kms")
    disabled = create_key(aws, "us-east-1", state="Disabled", alias="alias/test/disabled")
    pending = create_key(aws, "us-east-1", state="PendingDeletion")
    managed = create_key(aws, "us-east-1", manager="AWS", alias="alias/aws/bedrock", rotation=True)
    assert kms.describe_key(KeyId=disabled.arn)["KeyMetadata"]["KeyState"] == "Disabled"
    assert kms.describe_key(KeyId=pending.key_id)["KeyMetadata"]["KeyState"] == "PendingDeletion"
    assert kms.describe_key(KeyId=managed.key_id)["KeyMetadata"]["KeyManager"] == "AWS"
    with pytest.raises(ValueError):
        create_key(aws, "us-east-1", state="Deleted")


def test_seed_models_paginates_past_one_page(aws: boto3.Session) -> None:
    key = create_key(aws, "us-west-2", alias="alias/bulk")
    seeded = seed_models(aws, "us-west-2", 120, key_arn=key.arn, prefix="bulk")
    assert len(seeded) == 120 and {m.case for m in seeded} == {"cmk"}
    bedrock = aws.client("bedrock", region_name="us-west-2")
    first = bedrock.list_custom_models()
    assert len(first["modelSummaries"]) == 100 and first.get("nextToken")
    listed = list_all_models(bedrock)
    assert sorted(m["modelArn"] for m in listed) == sorted(m.model_arn for m in seeded)
    small_pages = bedrock.get_paginator("list_custom_models").paginate(PaginationConfig={"PageSize": 50})
    assert [len(p["modelSummaries"]) for p in small_pages] == [50, 50, 20]
    assert bedrock.get_custom_model(modelIdentifier="bulk-0119")["modelKmsKeyArn"] == key.arn
    assert len(list_all_jobs(bedrock)) == 120


def test_seed_models_bedrock_owned_and_case_from_key(aws: boto3.Session) -> None:
    owned = seed_models(aws, "us-east-1", 2, prefix="owned")
    assert [m.case for m in owned] == ["bedrock_owned"] * 2
    bedrock = aws.client("bedrock")
    assert "modelKmsKeyArn" not in bedrock.get_custom_model(modelIdentifier="owned-0000")
    disabled = create_key(aws, "us-east-1", state="Disabled")
    assert {m.case for m in seed_models(aws, "us-east-1", 1, key_arn=disabled.arn, prefix="dis")} == {"disabled_key"}


def test_account_mismatch_is_refused(aws: boto3.Session) -> None:
    with pytest.raises(ValueError, match="account"):
        seed_models(aws, "us-east-1", 1, account_id="111122223333")


def test_seeding_over_http(server_session: boto3.Session, moto_url: str) -> None:
    estate = seed_demo_estate(server_session, endpoint_url=moto_url)
    for region in REGIONS:
        bedrock = server_session.client("bedrock", region_name=region, endpoint_url=moto_url)
        models = list_all_models(bedrock)
        assert {m["modelArn"] for m in models} == {m.model_arn for m in estate.models_in(region)}
        for seeded in estate.models_in(region):
            got = bedrock.get_custom_model(modelIdentifier=seeded.model_name)
            assert got.get("modelKmsKeyArn") == seeded.kms_key_arn
        jobs = list_all_jobs(bedrock)
        assert {j["jobName"] for j in jobs} == {j["job_name"] for j in estate.jobs if j["region"] == region}
        kms = server_session.client("kms", region_name=region, endpoint_url=moto_url)
        key = estate.key("alias/aws/bedrock", region)
        assert kms.describe_key(KeyId=key.arn)["KeyMetadata"]["KeyManager"] == "AWS"


def test_moto_url_starts_empty(server_session: boto3.Session, moto_url: str) -> None:
    """The reset between tests works: nothing from the previous test is left."""
    seed_models(server_session, "us-east-1", 3, endpoint_url=moto_url)
    bedrock = server_session.client("bedrock", endpoint_url=moto_url)
    assert len(list_all_models(bedrock)) == 3


def test_moto_url_is_reset(server_session: boto3.Session, moto_url: str) -> None:
    bedrock = server_session.client("bedrock", endpoint_url=moto_url)
    assert list_all_models(bedrock) == []
