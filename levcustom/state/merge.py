"""Three-way merge of lockfiles (a git merge driver): what one branch changed is taken; what both
changed differently is explained, and ours is kept there so the file always parses."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from levcustom.state.lockfile import STAGES, Lock, ModelState

_PARTS = ("spec_file", *STAGES, "intents")


@dataclass
class MergeResult:
    lock: Lock
    conflicts: list[str] = field(default_factory=list)
    taken: list[str] = field(default_factory=list)  # what came from the other branch


def _dump(value: Any) -> Any:
    return value.model_dump(mode="json") if hasattr(value, "model_dump") else value


def _three_way(base: Any, ours: Any, theirs: Any) -> tuple[Any, str | None]:
    """(value, None) when resolvable, else (ours, 'conflict')."""
    b, o, t = _dump(base), _dump(ours), _dump(theirs)
    if o == t or t == b:
        return ours, None
    if o == b:
        return theirs, "theirs"
    return ours, "conflict"


def merge_locks(base: Lock, ours: Lock, theirs: Lock) -> MergeResult:
    """Merge per model and per stage block; serial moves past both sides."""
    if ours.lineage and theirs.lineage and ours.lineage != theirs.lineage:
        return MergeResult(ours, [f"the branches hold different states (lineage {ours.lineage} vs "
                                  f"{theirs.lineage}); keep one lockfile and re-run apply"])
    merged = ours.model_copy(deep=True)
    result = MergeResult(merged)
    for name in sorted(set(base.models) | set(ours.models) | set(theirs.models)):
        b, o, t = base.models.get(name), ours.models.get(name), theirs.models.get(name)
        value, how = _three_way(b, o, t)
        if how != "conflict":
            _set_model(merged, name, value)
            if how == "theirs":
                result.taken.append(f"{name}: taken from theirs")
            continue
        if o is None or t is None:  # one side removed the model, the other changed it
            result.conflicts.append(f"{name}: removed on one branch, changed on the other; kept ours")
            continue
        block = o.model_copy(deep=True)
        for part in _PARTS:
            v, how = _three_way(getattr(b, part) if b else None, getattr(o, part), getattr(t, part))
            setattr(block, part, v)
            if how == "theirs":
                result.taken.append(f"{name}.{part}: taken from theirs")
            elif how == "conflict":
                fo, ft = (getattr(getattr(x, part), "fingerprint", "?") for x in (o, t))
                result.conflicts.append(f"{name}.{part}: both branches changed it (ours {str(fo)[:12]}, theirs "
                                        f"{str(ft)[:12]}); kept ours: run plan and apply on the merged specs")
        merged.models[name] = block
    for key, up in theirs.uploads.items():
        merged.uploads.setdefault(key, up)
    merged.serial = max(ours.serial, theirs.serial) + 1
    merged.lineage = ours.lineage or theirs.lineage
    return result


def _set_model(lock: Lock, name: str, value: ModelState | None) -> None:
    if value is None:
        lock.models.pop(name, None)
    else:
        lock.models[name] = value
