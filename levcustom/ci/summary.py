"""Markdown summary of an apply, for a CI job summary or a merge comment."""

from __future__ import annotations

from levcustom.plan.model import Plan
from levcustom.state.lockfile import Lock


def apply_summary(plan: Plan, done: list, failed: dict[str, str], gated: dict[str, str], lock: Lock) -> str:
    """What was planned, what ran, and each touched model's scores, gates and deployment."""
    out = ["## levcustom apply", ""]
    c = Plan(lineage="", serial=0, changes=done).counts()
    out.append(f"**Stages: {c['add']} added, {c['change']} changed, {c['destroy']} destroyed** "
               f"(lockfile serial {lock.serial})")
    for name in plan.models_touched():
        m = lock.models.get(name)
        out += ["", f"### `{name}`"]
        if name in failed:
            out.append(f"- :x: failed: {failed[name]}")
        if name in gated:
            out.append(f"- :no_entry: gate: {gated[name]}")
        if m is None:
            out.append("- removed")
            continue
        if m.eval:
            out += ["", "| metric | tuned | base |", "| --- | --- | --- |"]
            out += [f"| {k} | {r.tuned:.3f} | {'' if r.base is None else f'{r.base:.3f}'} |"
                    for k, r in m.eval.results.items()]
            out += [f"- {':white_check_mark:' if g.passed else ':x:'} {g.detail}" for g in m.eval.gates]
        if m.deploy:
            which = "the previous version stays deployed" if name in gated else "deployed"
            out.append(f"- {which}: `{m.deploy.model_ref}` to agents {', '.join(m.deploy.agents) or '-'}")
    return "\n".join(out) + "\n"
