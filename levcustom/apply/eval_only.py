"""``levcustom eval MODEL``: run a model's eval stage alone, on its current trained version, and
record the result in the lockfile (the deploy stage is left to apply)."""

from __future__ import annotations

import threading
from pathlib import Path

from levcustom.apply.progress import Reporter
from levcustom.apply.stages import StageContext, run_eval
from levcustom.errors import LevcustomError
from levcustom.plan.desired import make_plan
from levcustom.plan.model import Action
from levcustom.state.lockfile import EvalState, StateStore
from levcustom.state.statelock import StateLock
from levcustom.workspace import Workspace


def eval_model(ws: Workspace, spec_paths: list[Path], model: str, sets: list[str], reporter: Reporter) -> EvalState:
    """Evaluate ``model`` now (also when its eval is up to date: judge errors are retried, cached
    answers and verdicts are reused). Refused while its dataset or training is out of date."""
    with StateLock(ws.state_lock, "eval"):
        store = StateStore(ws.lockfile)
        plan, ctx = make_plan(ws, store.lock, spec_paths, sets=sets)
        if model not in ctx.specs:
            raise LevcustomError(f"no spec defines model {model!r} (models: {', '.join(sorted(ctx.specs))})")
        changes = {c.stage: c for c in plan.changes if c.model == model}
        stale = [s for s in ("dataset", "train") if changes[s].action is not Action.NOOP]
        if stale:
            raise LevcustomError(f"{model}: {' and '.join(stale)} not up to date; eval needs the trained model, "
                                 "run levcustom apply")
        sc = StageContext(ws, store, reporter, threading.Event(), {})
        summary = run_eval(sc, ctx.specs[model], ctx.configs[model], changes["eval"])
        reporter.stage_done(model, "eval", summary)
        return store.lock.models[model].eval
