"""Desired stages vs the lockfile -> ``Plan``. Pure: no I/O, no clock, no providers."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

from levcustom.plan.fingerprint import UPSTREAM_KEYS, fingerprint
from levcustom.plan.model import Action, Estimate, Plan, StageChange
from levcustom.spec.yamlload import format_path
from levcustom.state.lockfile import STAGES, Lock, ModelState

# Stages whose re-run produces a new artifact replacing the old one; others update in place.
_REPLACED = {"dataset", "train"}


@dataclass(frozen=True)
class DesiredModel:
    """What a spec asks for, already observed: each stage's fingerprinted inputs."""

    name: str
    spec_file: str
    stages: dict[str, dict[str, Any]]
    source_deltas: dict[str, tuple[int, int]] = field(default_factory=dict)


def build_plan(desired: list[DesiredModel], lock: Lock, *, targets: list[str] | None = None,
               estimates: list[Estimate] | None = None, warnings: list[str] | None = None,
               purge: bool = False) -> Plan:
    """Diff every desired model (and every model only in the lock) stage by stage."""
    wanted = set(targets or [])
    changes: list[StageChange] = []
    names = {d.name for d in desired}
    for d in desired:
        if wanted and d.name not in wanted:
            continue
        changes.extend(_model_changes(d, lock.models.get(d.name)))
    for name, state in sorted(lock.models.items()):
        if name in names or (wanted and name not in wanted):
            continue
        for stage in reversed(STAGES):  # tear down from the consumer side
            old = state.stage(stage)
            if old is not None:
                reason = "spec removed" + ("; artifacts purged" if purge and stage in _REPLACED else
                                           "; artifacts kept (use --purge to delete)" if stage in _REPLACED else "")
                changes.append(StageChange(model=name, stage=stage, action=Action.DESTROY,
                                           previous_fingerprint=old.fingerprint, reasons=[reason]))
    return Plan(lineage=lock.lineage, serial=lock.serial, changes=changes, estimates=estimates or [],
                warnings=warnings or [], targets=sorted(wanted), purge=purge)


def _model_changes(d: DesiredModel, state: ModelState | None) -> list[StageChange]:
    out = []
    for stage in STAGES:
        inputs = d.stages[stage]
        fp = fingerprint(inputs)
        old = state.stage(stage) if state else None
        intent = state.intents.get(stage) if state else None
        if old is None:
            action, reasons = Action.CREATE, ["not yet built" if stage != "deploy" else "not yet deployed"]
        elif old.drift:
            action, reasons = (Action.REPLACE if stage in _REPLACED else Action.UPDATE), [old.drift]
        elif old.fingerprint != fp:
            action = Action.REPLACE if stage in _REPLACED else Action.UPDATE
            reasons = explain(stage, old.inputs, inputs, d.source_deltas)
        else:
            action, reasons = Action.NOOP, []
        if action is not Action.NOOP and intent is not None and intent.fingerprint == fp:
            job = f", job {intent.job_id}" if intent.job_id else ""
            reasons.append(f"resumes the apply interrupted at {intent.started_at}{job}")
        if stage == "deploy" and action is not Action.NOOP and state and state.eval and not state.eval.passed \
                and d.stages["eval"] and fingerprint(d.stages["eval"]) == state.eval.fingerprint:
            failed = "; ".join(g.detail for g in state.eval.gates if not g.passed)
            reasons.append(f"blocked unless results change: the last eval failed its gates ({failed})")
        out.append(StageChange(model=d.name, stage=stage, action=action, fingerprint=fp,
                               previous_fingerprint=old.fingerprint if old else None, reasons=reasons,
                               inputs=inputs))
    return out


def explain(stage: str, old: dict[str, Any], new: dict[str, Any], deltas: dict[str, tuple[int, int]]) -> list[str]:
    """Human reasons for a changed fingerprint: which key changed, old -> new."""
    reasons: list[str] = []
    old, new = dict(old), dict(new)
    upstream = UPSTREAM_KEYS.get(stage)
    if upstream and old.pop(upstream, None) != new.pop(upstream, None):
        reasons.append(f"upstream {upstream} changes")
    if stage == "dataset":
        reasons.extend(_source_reasons(old.pop("sources", []), new.pop("sources", []), deltas))
    if old != new:
        reasons.extend(_key_reasons(old, new))
    return reasons or ["inputs changed"]


def _source_reasons(old: list[dict], new: list[dict], deltas: dict[str, tuple[int, int]]) -> list[str]:
    """A summary (``+120 / -4 records (3 sources changed)``), then one line per changed source."""
    before = {s.get("key", s.get("path")): s for s in old}
    after = {s["key"]: s for s in new}
    out = [f"source {k} added ({after[k]['records']} records)" for k in after if k not in before]
    out += [f"source {k} removed ({before[k]['records']} records)" for k in before if k not in after]
    plus = sum(after[k]["records"] for k in after if k not in before)
    minus = sum(before[k]["records"] for k in before if k not in after)
    known = True
    for k in after:
        if k not in before:
            continue
        a, b = before[k], after[k]
        if a["sha256"] != b["sha256"]:
            if k in deltas:
                added, removed = deltas[k]
                out.append(f"source {k} changed: +{added} / -{removed} records")
            else:
                added, removed = max(0, b["records"] - a["records"]), max(0, a["records"] - b["records"])
                known = False
                out.append(f"source {k} changed: {a['records']} -> {b['records']} records")
            plus, minus = plus + added, minus + removed
        rest_a = {x: v for x, v in a.items() if x not in ("sha256", "records", "files")}
        rest_b = {x: v for x, v in b.items() if x not in ("sha256", "records", "files")}
        if rest_a != rest_b:
            out.extend(f"source {k}: {r}" for r in _key_reasons(rest_a, rest_b))
    changed = sum(1 for k in after if k not in before or before[k]["sha256"] != after[k]["sha256"]) + \
        sum(1 for k in before if k not in after)
    if changed:
        about = "" if known else "at least "
        out.insert(0, f"{about}+{plus} / -{minus} records ({changed} source{'s' if changed != 1 else ''} changed)")
    return out


_PATH_PART = re.compile(r"\['([^']*)'\]|\[(\d+)\]")


def _key_reasons(old: dict[str, Any], new: dict[str, Any]) -> list[str]:
    from deepdiff import DeepDiff  # lazy: only a plan with changes pays its import

    diff = DeepDiff(old, new, verbose_level=2)
    out = []
    for kind in ("values_changed", "type_changes"):
        for path, change in diff.get(kind, {}).items():
            out.append(f"{_dotted(path)}: {change['old_value']!r} -> {change['new_value']!r}")
    for kind, verb in (("dictionary_item_added", "added"), ("iterable_item_added", "added"),
                       ("dictionary_item_removed", "removed"), ("iterable_item_removed", "removed")):
        for path, value in diff.get(kind, {}).items():
            out.append(f"{_dotted(path)} {verb}: {value!r}")
    return sorted(out)


def _dotted(deepdiff_path: str) -> str:
    """``root['training']['lora']['r']`` -> ``training.lora.r``."""
    return format_path(tuple(int(idx) if idx else key for key, idx in _PATH_PART.findall(deepdiff_path)))
