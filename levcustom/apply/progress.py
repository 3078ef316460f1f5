"""Live progress for apply: a rich progress display on a terminal, plain lines in CI logs."""

from __future__ import annotations

import threading
import time
from typing import Protocol

from rich.console import Console
from rich.markup import escape
from rich.progress import (
    BarColumn,
    Progress,
    SpinnerColumn,
    TaskProgressColumn,
    TextColumn,
    TimeRemainingColumn,
)

from levcustom.providers.base import JobStatus


class Reporter(Protocol):
    def stage_started(self, model: str, stage: str, action: str) -> None: ...
    def job_status(self, model: str, status: JobStatus) -> None: ...
    def stage_done(self, model: str, stage: str, summary: str) -> None: ...
    def stage_failed(self, model: str, stage: str, error: str) -> None: ...
    def close(self) -> None: ...


def describe(status: JobStatus) -> str:
    parts = [status.message]
    if "loss" in status.metrics:
        parts.append(f"loss {status.metrics['loss']:.3f}")
    if "tokens_per_s" in status.metrics:
        parts.append(f"{status.metrics['tokens_per_s']:.0f} tok/s")
    return "  ".join(p for p in parts if p)


class RichReporter:
    """One progress bar per model; finished stages print above the bars."""

    def __init__(self, console: Console):
        self.console = console
        self.progress = Progress(SpinnerColumn(), TextColumn("[bold]{task.description}"), BarColumn(),
                                 TaskProgressColumn(), TimeRemainingColumn(), TextColumn("{task.fields[info]}"),
                                 console=console, transient=True)
        self.tasks: dict[str, int] = {}
        self._lock = threading.Lock()
        self.progress.start()

    def _task(self, model: str) -> int:
        with self._lock:
            if model not in self.tasks:
                self.tasks[model] = self.progress.add_task(model, total=None, info="")
            return self.tasks[model]

    def stage_started(self, model: str, stage: str, action: str) -> None:
        self.progress.update(self._task(model), description=f"{model}: {stage}", total=None, completed=0,
                             info=action)

    def job_status(self, model: str, status: JobStatus) -> None:
        task = self._task(model)
        if status.progress is not None:
            self.progress.update(task, total=1.0, completed=status.progress, info=escape(describe(status)))
        else:
            self.progress.update(task, info=escape(describe(status)))

    def stage_done(self, model: str, stage: str, summary: str) -> None:
        self.progress.console.print(f"[green]✓[/] {model}: {stage} {escape(summary)}")

    def stage_failed(self, model: str, stage: str, error: str) -> None:
        self.progress.console.print(f"[red]✗[/] {model}: {stage} {escape(error)}")

    def close(self) -> None:
        self.progress.stop()


class PlainReporter:
    """Line output for logs: training progress at most every ``every`` seconds per model."""

    def __init__(self, console: Console, every: float = 10.0):
        self.console = console
        self.every = every
        self._last: dict[str, float] = {}

    def stage_started(self, model: str, stage: str, action: str) -> None:
        self.console.print(f"{model}: {stage}: {action}...", markup=False)

    def job_status(self, model: str, status: JobStatus) -> None:
        now = time.monotonic()
        if now - self._last.get(model, 0.0) >= self.every:
            self._last[model] = now
            pct = f" {status.progress:.0%}" if status.progress is not None else ""
            self.console.print(f"{model}: {status.state}{pct} {describe(status)}", markup=False)

    def stage_done(self, model: str, stage: str, summary: str) -> None:
        self.console.print(f"{model}: {stage}: done {summary}", markup=False)

    def stage_failed(self, model: str, stage: str, error: str) -> None:
        self.console.print(f"{model}: {stage}: FAILED {error}", markup=False)

    def close(self) -> None:
        pass
