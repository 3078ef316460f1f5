"""Carry out a plan: stages in dependency order per model, models concurrently (bounded).

A model whose stage fails stops there; other models go on. Ctrl-C stops waiting, leaves
intents and checkpoints in place, and the next apply resumes from them.
"""

from __future__ import annotations

import threading
from concurrent.futures import FIRST_EXCEPTION, ThreadPoolExecutor, wait
from dataclasses import dataclass, field

from levcustom.apply.progress import Reporter
from levcustom.apply.stages import RUNNERS, Interrupted, StageContext, run_destroy
from levcustom.errors import GateFailedError, LevcustomError
from levcustom.plan.desired import Context
from levcustom.plan.model import Action, Plan, StageChange
from levcustom.state.lockfile import StateStore


@dataclass
class Outcome:
    """What an apply did, for the summary line and the exit code."""

    done: list[StageChange] = field(default_factory=list)
    failed: dict[str, str] = field(default_factory=dict)
    gated: dict[str, str] = field(default_factory=dict)

    def counts(self) -> dict[str, int]:
        return Plan(lineage="", serial=0, changes=self.done).counts()


def execute(plan: Plan, ctx: Context, store: StateStore, reporter: Reporter, *, parallelism: int = 4) -> Outcome:
    """Apply every pending change of ``plan``; returns what succeeded, failed and was gated."""
    by_model: dict[str, list[StageChange]] = {}
    for change in plan.pending:
        by_model.setdefault(change.model, []).append(change)
    outcome = Outcome()
    sc = StageContext(ctx.ws, store, reporter, threading.Event(), {}, plan.purge)
    pool = ThreadPoolExecutor(max_workers=max(1, parallelism), thread_name_prefix="apply")
    futures = [pool.submit(_apply_model, sc, ctx, name, changes, outcome) for name, changes in by_model.items()]
    try:
        while futures:
            finished, pending = wait(futures, timeout=0.2, return_when=FIRST_EXCEPTION)
            for f in finished:
                f.result()
            futures = list(pending)
    except KeyboardInterrupt:
        sc.cancel.set()
        pool.shutdown(wait=True, cancel_futures=True)
        raise Interrupted("interrupted: the lockfile is consistent; run apply again to resume") from None
    pool.shutdown(wait=True)
    return outcome


def _apply_model(sc: StageContext, ctx: Context, name: str, changes: list[StageChange], outcome: Outcome) -> None:
    for change in changes:
        if sc.cancel.is_set():
            return
        sc.reporter.stage_started(name, change.stage, change.action.value)
        try:
            if change.action is Action.DESTROY:
                summary = run_destroy(sc, ctx, name, change)
            else:
                summary = RUNNERS[change.stage](sc, ctx.specs[name], ctx.configs[name], change)
        except Interrupted:
            return
        except GateFailedError as exc:
            outcome.gated[name] = str(exc)
            sc.reporter.stage_failed(name, change.stage, str(exc))
            return
        except LevcustomError as exc:
            outcome.failed[name] = f"{change.stage}: {exc}"
            sc.reporter.stage_failed(name, change.stage, str(exc))
            return
        outcome.done.append(change)
        sc.reporter.stage_done(name, change.stage, summary)
