"""Saved plans (``plan -out FILE`` / ``apply FILE``) and their staleness check."""

from __future__ import annotations

from pathlib import Path

from pydantic import ValidationError

from levcustom.errors import LevcustomError, StalePlanError
from levcustom.plan.model import PLAN_FORMAT_VERSION, Plan
from levcustom.state.atomic import atomic_write_text
from levcustom.state.lockfile import Lock


def save_plan(plan: Plan, path: Path) -> None:
    atomic_write_text(path, plan.model_dump_json(indent=1))


def load_plan(path: Path) -> Plan:
    try:
        plan = Plan.model_validate_json(path.read_text())
    except (OSError, ValidationError, ValueError) as exc:
        raise LevcustomError(f"{path}: not a levcustom plan file ({str(exc).splitlines()[0]})") from None
    if plan.format_version != PLAN_FORMAT_VERSION:
        raise LevcustomError(f"{path}: plan format {plan.format_version}, this levcustom reads {PLAN_FORMAT_VERSION}")
    return plan


def check_fresh(saved: Plan, lock: Lock, current: Plan) -> None:
    """Refuse a saved plan when the state or the specs moved since it was made."""
    if saved.lineage != lock.lineage:
        raise StalePlanError(f"saved plan is for another state (lineage {saved.lineage}, lockfile has {lock.lineage})")
    if saved.serial != lock.serial:
        raise StalePlanError(f"saved plan is stale: the lockfile moved from serial {saved.serial} to {lock.serial}; "
                             "run plan again")
    def key(p: Plan):
        return [(c.model, c.stage, c.action, c.fingerprint) for c in p.pending]
    if key(saved) != key(current):
        raise StalePlanError("saved plan is stale: specs, configs or data changed since it was made; run plan again")
