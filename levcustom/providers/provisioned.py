"""Bedrock provisioned throughput: what a custom model needs to answer requests, billed per hour.

Idempotent like the training job: the name and the clientRequestToken are derived from the
model and the requested capacity, and the name is looked up before creating, so a crash
between create and the lockfile write finds the same throughput again instead of paying twice.
"""

from __future__ import annotations

import hashlib
import time
from dataclasses import dataclass

from levcustom.errors import ProviderError
from levcustom.providers.aws import AwsClients, tag_list

TERMINAL_BAD = {"Failed"}


@dataclass(frozen=True)
class Capacity:
    model_units: int
    commitment: str  # none | OneMonth | SixMonths
    wait_timeout_s: float
    poll_interval_s: float


def throughput_name(model_arn: str, capacity: Capacity) -> str:
    """Deterministic name (Bedrock's pattern, at most 63 characters) for this model and capacity."""
    digest = hashlib.sha256(f"{model_arn}|{capacity.model_units}|{capacity.commitment}".encode()).hexdigest()
    return f"lc-pt-{digest[:32]}"


def ensure(aws: AwsClients, client, model_arn: str, capacity: Capacity, tags: dict[str, str]) -> str:
    """The ARN of an in-service provisioned throughput for ``model_arn``: found by name, else created;
    waits until it is InService."""
    name = throughput_name(model_arn, capacity)
    found = aws.call("read provisioned throughput",
                     lambda: client.get_provisioned_model_throughput(provisionedModelId=name), missing_ok=True)
    if found is None or found["status"] in TERMINAL_BAD:
        if found is not None:  # a failed one blocks its name: delete it, then try once more
            delete(aws, client, found["provisionedModelArn"])
        kwargs = {"commitmentDuration": capacity.commitment} if capacity.commitment != "none" else {}
        created = aws.call("create provisioned throughput", lambda: client.create_provisioned_model_throughput(
            clientRequestToken=name, modelUnits=capacity.model_units, provisionedModelName=name, modelId=model_arn,
            tags=tag_list(tags), **kwargs))
        arn = created["provisionedModelArn"]
    else:
        arn = found["provisionedModelArn"]
    return _wait(aws, client, arn, capacity)


def _wait(aws: AwsClients, client, arn: str, capacity: Capacity) -> str:
    deadline = time.monotonic() + capacity.wait_timeout_s
    delay = capacity.poll_interval_s
    while True:
        state = aws.call("read provisioned throughput",
                         lambda: client.get_provisioned_model_throughput(provisionedModelId=arn))
        if state["status"] == "InService":
            return arn
        if state["status"] in TERMINAL_BAD:
            raise ProviderError(f"anthropic: provisioned throughput {arn} failed: "
                                f"{state.get('failureMessage') or 'no reason given'}")
        if time.monotonic() > deadline:
            raise ProviderError(f"anthropic: provisioned throughput {arn} is still {state['status']} after "
                                f"{capacity.wait_timeout_s:g} s; apply again to keep waiting (it is billed already)")
        time.sleep(delay)
        delay = min(delay * 1.5, 60.0)


def serving(aws: AwsClients, client, model_arn: str) -> str | None:
    """An in-service provisioned throughput already serving ``model_arn``, if any."""
    page = aws.call("list provisioned throughputs", lambda: client.list_provisioned_model_throughputs(
        modelArnEquals=model_arn, statusEquals="InService"))
    summaries = page.get("provisionedModelSummaries", [])
    return summaries[0]["provisionedModelArn"] if summaries else None


def delete(aws: AwsClients, client, arn: str) -> None:
    """Delete a provisioned throughput (one already gone is fine)."""
    aws.call("delete provisioned throughput",
             lambda: client.delete_provisioned_model_throughput(provisionedModelId=arn), missing_ok=True)
