"""The plan as data (like Terraform's ``internal/plans``): computed purely, rendered and saved."""

from __future__ import annotations

from enum import StrEnum
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

PLAN_FORMAT_VERSION = "1.0"


class Action(StrEnum):
    NOOP = "no-op"
    CREATE = "create"
    UPDATE = "update"
    REPLACE = "replace"
    DESTROY = "destroy"

    @property
    def symbol(self) -> str:
        return {"no-op": " ", "create": "+", "update": "~", "replace": "-/+", "destroy": "-"}[self.value]


class _Frozen(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class StageChange(_Frozen):
    """One stage of one model: what will happen and why."""

    model: str
    stage: str
    action: Action
    fingerprint: str | None = None
    previous_fingerprint: str | None = None
    reasons: list[str] = Field(default_factory=list)
    inputs: dict[str, Any] | None = None


class Estimate(_Frozen):
    """Cost of the plan's trainings: hosted token prices or local compute hours."""

    model: str
    tokens: int
    hours: float
    usd: float
    note: str


class Plan(_Frozen):
    format_version: str = PLAN_FORMAT_VERSION
    lineage: str
    serial: int
    changes: list[StageChange]
    estimates: list[Estimate] = Field(default_factory=list)
    warnings: list[str] = Field(default_factory=list)
    targets: list[str] = Field(default_factory=list)
    purge: bool = False

    @property
    def pending(self) -> list[StageChange]:
        return [c for c in self.changes if c.action is not Action.NOOP]

    @property
    def has_changes(self) -> bool:
        return bool(self.pending)

    def models_touched(self) -> list[str]:
        """Models with a pending change, in plan order."""
        return list(dict.fromkeys(c.model for c in self.pending))

    def counts(self) -> dict[str, int]:
        """Terraform's summary: a replace counts as one add and one destroy."""
        add = sum(c.action in (Action.CREATE, Action.REPLACE) for c in self.changes)
        change = sum(c.action is Action.UPDATE for c in self.changes)
        destroy = sum(c.action in (Action.DESTROY, Action.REPLACE) for c in self.changes)
        return {"add": add, "change": change, "destroy": destroy}
