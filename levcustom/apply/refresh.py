"""Drift: read each trained model's real state at its provider (network; never during a plain plan)."""

from __future__ import annotations

from levcustom.plan.desired import Context
from levcustom.providers import get_provider
from levcustom.state.lockfile import Lock


def detect_drift(ctx: Context, lock: Lock, targets: list[str] | None = None) -> dict[str, str | None]:
    """Per model with a trained version: None when the provider agrees with the lock, else the drift."""
    out: dict[str, str | None] = {}
    for name, m in sorted(lock.models.items()):
        if m.train is None or (targets and name not in targets):
            continue
        provider = get_provider(m.train.provider, ctx.ws)
        out[name] = provider.refresh(m.train, ctx.config_for(name, m.train.provider))
    return out


def mark_drift(lock: Lock, drift: dict[str, str | None]) -> None:
    """Record drift on the train stage, so the next plan replaces what the provider lost."""
    for name, reason in drift.items():
        lock.models[name].train.drift = reason
