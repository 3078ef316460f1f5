"""``levcustom ci check``: is the default branch's state what its specs say? (pure)"""

from __future__ import annotations

from levcustom.evals.gates import check_recorded
from levcustom.plan.model import Plan
from levcustom.spec.loader import LoadedSpec
from levcustom.state.lockfile import Lock


def state_problems(plan: Plan, lock: Lock, specs: dict[str, LoadedSpec]) -> list[str]:
    """Why the lockfile does not match the specs, and which deployed models fail their gates now."""
    problems = [f"{c.model}: {c.stage} {c.action.value} pending ({'; '.join(c.reasons)})" for c in plan.pending]
    for name, m in sorted(lock.models.items()):
        if m.deploy is None:
            continue
        if m.eval is not None and not m.eval.passed:
            failed = "; ".join(g.detail for g in m.eval.gates if not g.passed)
            problems.append(f"{name}: the newest candidate failed its gates ({failed}); "
                            "an older version stays deployed")
        spec = specs.get(name)
        if spec is None:
            continue
        gates = [g for g in spec.model.spec.evals.gates if g.metric in m.deploy.eval_results]
        for result in check_recorded(gates, m.deploy.eval_results):
            if not result.passed:
                problems.append(f"{name}: the deployed version no longer passes {result.gate}: {result.detail}")
    return problems
