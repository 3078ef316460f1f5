"""The agent registry: which model an agent uses, per task (read from the lockfile).

During an online A/B test a deployment serves two versions: ``traffic`` percent of request keys
go to the candidate, the rest to the stable version, decided by a hash of the key (so a request,
retried or replayed, always lands on the same version)."""

from __future__ import annotations

from dataclasses import dataclass

from levcustom.deploy.online import bucket, stable
from levcustom.errors import LevcustomError
from levcustom.state.lockfile import Lock


@dataclass(frozen=True)
class Resolution:
    agent: str
    task: str | None
    model: str
    provider: str
    base_model: str
    model_ref: str
    arm: str = "only"  # only | candidate | stable (online A/B)
    traffic: int | None = None  # percent of requests for the candidate, during an A/B test


def resolve(lock: Lock, agent: str, task: str | None = None, key: str | None = None) -> Resolution:
    """The deployed model for ``agent`` (and ``task``): a task-specific model wins over a general one.
    With an A/B split, ``key`` (the request id) picks the version; without one, the stable version."""
    candidates = sorted((name, m.deploy) for name, m in lock.models.items()
                        if m.deploy is not None and agent in m.deploy.agents)
    if not candidates:
        known = sorted({a for m in lock.models.values() if m.deploy for a in m.deploy.agents})
        raise LevcustomError(f"no model is deployed to agent {agent!r} "
                             f"(agents with models: {', '.join(known) or 'none'})")
    if task is not None:
        for_task = [c for c in candidates if task in c[1].tasks]
        general = [c for c in candidates if not c[1].tasks]
        candidates = for_task or general
        if not candidates:
            raise LevcustomError(f"agent {agent!r} has no model for task {task!r} and no general model")
    if len(candidates) > 1:
        names = ", ".join(n for n, _ in candidates)
        raise LevcustomError(f"agent {agent!r} has several models ({names}); pass --task to choose")
    name, dep = candidates[0]
    if dep.previous is None or dep.traffic is None:
        return Resolution(agent, task, name, dep.provider, dep.base_model, dep.model_ref)
    if key is not None and bucket(key, name) < dep.traffic:
        return Resolution(agent, task, name, dep.provider, dep.base_model, dep.model_ref, "candidate", dep.traffic)
    s = stable(dep)
    return Resolution(agent, task, name, s.provider, s.base_model, s.model_ref, "stable", dep.traffic)
