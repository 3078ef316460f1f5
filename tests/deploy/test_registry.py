"""Agent -> model resolution from the lockfile."""

from __future__ import annotations

import pytest

from levcustom.deploy.registry import resolve
from levcustom.errors import LevcustomError
from levcustom.state.lockfile import DeployState, Lock, ModelState


def deployed(lock: Lock, name: str, agents: list[str], tasks: list[str]) -> None:
    lock.models[name] = ModelState(spec_file=f"{name}.yaml", deploy=DeployState(
        fingerprint="f", inputs={}, agents=agents, tasks=tasks, provider="local", base_model="b",
        model_ref=f"store/{name}", eval_results={}))


def test_task_specific_model_wins_over_general():
    lock = Lock()
    deployed(lock, "general", ["reviewer"], [])
    deployed(lock, "security", ["reviewer"], ["security-review"])
    assert resolve(lock, "reviewer", "security-review").model == "security"
    assert resolve(lock, "reviewer", "style").model == "general"
    with pytest.raises(LevcustomError, match="several models"):
        resolve(lock, "reviewer")


def test_unknown_agent_lists_known_ones():
    lock = Lock()
    deployed(lock, "m", ["router"], [])
    with pytest.raises(LevcustomError, match="agents with models: router"):
        resolve(lock, "planner")
