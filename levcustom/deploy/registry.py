"""The agent registry: which model an agent uses, per task (read from the lockfile)."""

from __future__ import annotations

from dataclasses import dataclass

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


def resolve(lock: Lock, agent: str, task: str | None = None) -> Resolution:
    """The deployed model for ``agent`` (and ``task``): a task-specific model wins over a general one."""
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
    return Resolution(agent, task, name, dep.provider, dep.base_model, dep.model_ref)
