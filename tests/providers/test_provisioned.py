"""Bedrock provisioned throughput with the real boto3 client and botocore's Stubber (moto 5.2.5 has no
create_provisioned_model_throughput), so every request is checked against Bedrock's API model.
The plan's hourly price line is tested with the provider, in test_anthropic.py."""

from __future__ import annotations

import boto3
import pytest
from botocore.stub import ANY, Stubber

from levcustom.errors import ProviderError
from levcustom.providers import provisioned
from levcustom.providers.aws import AwsClients

MODEL_ARN = "arn:aws:bedrock:us-west-2:123456789012:custom-model/haiku-support-abc"
PT_ARN = "arn:aws:bedrock:us-west-2:123456789012:provisioned-model/xyz123"
CAPACITY = provisioned.Capacity(model_units=2, commitment="none", wait_timeout_s=60, poll_interval_s=0.001)


def status(state: str, **extra) -> dict:
    return {"modelUnits": 2, "desiredModelUnits": 2, "provisionedModelName": "n", "provisionedModelArn": PT_ARN,
            "modelArn": MODEL_ARN, "desiredModelArn": MODEL_ARN, "foundationModelArn": "arn:aws:bedrock:x",
            "status": state, "creationTime": "2026-11-25T00:00:00Z", "lastModifiedTime": "2026-11-25T00:00:00Z",
            **extra}


@pytest.fixture
def bedrock():
    client = boto3.client("bedrock", region_name="us-west-2", aws_access_key_id="k", aws_secret_access_key="s")
    with Stubber(client) as stub:
        yield client, stub
        stub.assert_no_pending_responses()


def test_created_once_by_a_derived_name_and_awaited(bedrock):
    client, stub = bedrock
    name = provisioned.throughput_name(MODEL_ARN, CAPACITY)
    stub.add_client_error("get_provisioned_model_throughput", "ResourceNotFoundException", "not found",
                          expected_params={"provisionedModelId": name})
    stub.add_response("create_provisioned_model_throughput", {"provisionedModelArn": PT_ARN},
                      {"clientRequestToken": name, "modelUnits": 2, "provisionedModelName": name,
                       "modelId": MODEL_ARN, "tags": [{"key": "team", "value": "support"}]})
    stub.add_response("get_provisioned_model_throughput", status("Creating"), {"provisionedModelId": PT_ARN})
    stub.add_response("get_provisioned_model_throughput", status("InService"), {"provisionedModelId": PT_ARN})
    assert provisioned.ensure(AwsClients("anthropic"), client, MODEL_ARN, CAPACITY, {"team": "support"}) == PT_ARN


def test_found_again_after_a_crash_instead_of_paying_twice(bedrock):
    client, stub = bedrock
    stub.add_response("get_provisioned_model_throughput", status("Creating"), {"provisionedModelId": ANY})
    stub.add_response("get_provisioned_model_throughput", status("InService"), {"provisionedModelId": PT_ARN})
    # no create call is stubbed: Stubber fails the test if one is made
    assert provisioned.ensure(AwsClients("anthropic"), client, MODEL_ARN, CAPACITY, {}) == PT_ARN


def test_commitment_is_passed_and_a_failure_is_one_line(bedrock):
    client, stub = bedrock
    committed = provisioned.Capacity(1, "OneMonth", 60, 0.001)
    assert provisioned.throughput_name(MODEL_ARN, committed) != provisioned.throughput_name(MODEL_ARN, CAPACITY)
    stub.add_client_error("get_provisioned_model_throughput", "ResourceNotFoundException", "not found")
    stub.add_response("create_provisioned_model_throughput", {"provisionedModelArn": PT_ARN},
                      {"clientRequestToken": ANY, "modelUnits": 1, "provisionedModelName": ANY, "modelId": MODEL_ARN,
                       "tags": [], "commitmentDuration": "OneMonth"})
    stub.add_response("get_provisioned_model_throughput", status("Failed", failureMessage="Insufficient capacity"))
    with pytest.raises(ProviderError, match="provisioned throughput .* failed: Insufficient capacity"):
        provisioned.ensure(AwsClients("anthropic"), client, MODEL_ARN, committed, {})


def test_delete_tolerates_one_already_gone(bedrock):
    client, stub = bedrock
    stub.add_client_error("delete_provisioned_model_throughput", "ResourceNotFoundException", "gone",
                          expected_params={"provisionedModelId": PT_ARN})
    provisioned.delete(AwsClients("anthropic"), client, PT_ARN)
    stub.add_client_error("delete_provisioned_model_throughput", "AccessDeniedException", "not allowed")
    with pytest.raises(ProviderError, match="delete provisioned throughput failed: AccessDeniedException"):
        provisioned.delete(AwsClients("anthropic"), client, PT_ARN)
