"""``provider: local``: LoRA training and generation in child processes on this machine.

A job is the folder ``.levcustom/runs/train/<fingerprint>/``: submitting the same key again
follows the running child (found by its pid file) or returns the finished result; a child
killed mid-run is restarted and resumes from its newest checkpoint.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
from collections.abc import Callable
from datetime import date
from pathlib import Path
from typing import Any

from levcustom.config.models import ResolvedConfig
from levcustom.datasets.jsonl import Example, message_lists
from levcustom.errors import ProviderError
from levcustom.providers.base import (
    ConfigProblem,
    CostEstimate,
    DatasetReport,
    JobStatus,
    ModelRef,
    TrainRequest,
    TrainResult,
    Upload,
)
from levcustom.providers.local.job import LocalGenerateJob, LocalTrainJob, last_event, write_json
from levcustom.state.lockfile import TrainState
from levcustom.workspace import Workspace


def _child_env() -> dict[str, str]:
    env = dict(os.environ)
    env.setdefault("HF_HUB_OFFLINE", "1")  # nothing may download weights at run time
    env.setdefault("TOKENIZERS_PARALLELISM", "false")
    return env


def _alive(pid: int) -> bool:
    """True when ``pid`` runs our training child (not a reused pid of something else)."""
    try:
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes()
        status = Path(f"/proc/{pid}/status").read_text()
    except OSError:
        return False
    return b"train_child" in cmdline and "\nState:\tZ" not in status


def tree_sha256(folder: Path) -> str:
    """Content hash of a folder (relative paths + bytes), for content-addressed artifacts."""
    h = hashlib.sha256()
    for f in sorted(p for p in folder.rglob("*") if p.is_file()):
        h.update(str(f.relative_to(folder)).encode() + b"\0" + f.read_bytes() + b"\0")
    return h.hexdigest()


class LocalProvider:
    name = "local"

    def __init__(self, ws: Workspace):
        self.ws = ws
        self._procs: dict[str, subprocess.Popen] = {}

    def poll_intervals(self, config: ResolvedConfig) -> tuple[float, float]:
        return 0.5, 2.0  # a local child's progress file is cheap to read

    def min_examples(self, config: ResolvedConfig) -> int:
        return int(config.provider.get("min_examples", 1))

    def max_parallel_jobs(self, config: ResolvedConfig) -> int:
        return int(config.provider.get("max_parallel_jobs", 1))

    def result_config(self, config: ResolvedConfig) -> dict[str, Any]:
        # Speed/memory settings do not change the weights; hosted-only knobs do not apply here.
        hw = config.hardware.model_dump(exclude={"name", "gradient_checkpointing", "memory_gb", "tokens_per_second",
                                                  "per_device_batch_size", "gradient_accumulation_steps"})
        hw["effective_batch_size"] = config.hardware.per_device_batch_size * config.hardware.gradient_accumulation_steps
        training = config.training.model_dump(exclude={"batch_size", "learning_rate_multiplier", "beta",
                                                       "logging_steps", "save_steps"})
        return {"training": training, "hardware": hw}

    def check(self, method: str, base_model: str, config: ResolvedConfig) -> list[ConfigProblem]:
        problems = []
        if method != "sft":
            problems.append(ConfigProblem(("spec", "method"), f"the local provider trains 'sft' (got {method!r})"))
        if config.training.epochs == "auto":
            problems.append(ConfigProblem(("spec", "training", "epochs"), "local training needs a number of epochs"))
        return problems

    def inspect(self, examples: list[Example], method: str, base_model: str, config: ResolvedConfig) -> DatasetReport:
        # No tokenizer is loaded at plan time: ~4 characters per token is the usual estimate for English.
        chars = sum(len(c) for ex in examples for msgs in message_lists(ex) for _, c in msgs)
        return DatasetReport(len(examples), chars // 4, [], "estimated as characters / 4")

    def estimate(self, tokens: int, config: ResolvedConfig, base_model: str) -> CostEstimate:
        tps = config.hardware.tokens_per_second
        trained = int(tokens * float(config.training.epochs))
        hours = trained / tps / 3600
        usd = hours * float(config.provider.get("gpu_hour_usd", 0.0))
        return CostEstimate(trained, hours, usd,
                            f"~{trained:,} tokens at {tps:,.0f} tok/s ({config.hardware.name}) = {hours * 60:.1f} min")

    def risks(self, base_model: str, config: ResolvedConfig, today: date) -> list[str]:
        return []

    # -- training -------------------------------------------------------------------------

    def submit(self, request: TrainRequest, record_upload: Callable[[Upload], None]) -> str:
        work = request.work_dir
        work.mkdir(parents=True, exist_ok=True)
        job_id = f"local-{request.key[:16]}"
        if (work / "result.json").exists() or self._running(request) is not None:
            return job_id  # finished or still running: follow it, never start a second one
        (work / "error.json").unlink(missing_ok=True)
        job = LocalTrainJob(root=str(self.ws.root), base_model=request.base_model,
                            model_sources=request.config.provider.get("model_sources", {}),
                            method=request.method, dataset_dir=str(request.dataset_dir), work_dir=str(work),
                            training=request.config.training, hardware=request.config.hardware)
        write_json(work / "request.json", job.model_dump(mode="json"))
        log = open(work / "child.log", "ab")
        proc = subprocess.Popen([sys.executable, "-m", "levcustom.providers.local.train_child",
                                 str(work / "request.json")], stdout=log, stderr=subprocess.STDOUT,
                                stdin=subprocess.DEVNULL, env=_child_env(), cwd=self.ws.root)
        log.close()
        (work / "pid").write_text(str(proc.pid))
        self._procs[request.key] = proc
        return job_id

    def _running(self, request: TrainRequest) -> int | None:
        proc = self._procs.get(request.key)
        if proc is not None:
            return proc.pid if proc.poll() is None else None
        try:
            pid = int((request.work_dir / "pid").read_text())
        except (OSError, ValueError):
            return None
        return pid if _alive(pid) else None

    def poll(self, job_id: str, request: TrainRequest) -> JobStatus:
        work = request.work_dir
        if (work / "result.json").exists():
            return JobStatus("succeeded", "done", 1.0)
        if (work / "error.json").exists():
            err = json.loads((work / "error.json").read_text())
            return JobStatus("failed", err.get("error", "training failed"))
        event = last_event(work) or {}
        if self._running(request) is None:
            if (work / "result.json").exists():  # finished between the two checks
                return JobStatus("succeeded", "done", 1.0)
            tail = (work / "child.log").read_text(errors="replace").strip().splitlines()[-1:] \
                if (work / "child.log").exists() else []
            return JobStatus("failed", f"training process exited without a result: {' '.join(tail)[:300]}")
        step, total = event.get("step"), event.get("max_steps")
        metrics = {k: float(event[k]) for k in ("loss", "tokens_per_s", "epoch") if event.get(k) is not None}
        progress = step / total if step is not None and total else None
        message = "loading model" if step is None else f"step {step}/{total}"
        return JobStatus("running", message, progress, metrics)

    def result(self, job_id: str, request: TrainRequest) -> TrainResult:
        data = json.loads((request.work_dir / "result.json").read_text())
        adapter = Path(data["adapter"])
        sha = tree_sha256(adapter)
        stored = self.ws.store / "adapters" / sha
        if not stored.exists():
            tmp = Path(tempfile.mkdtemp(dir=_mk(stored.parent), prefix=".tmp-"))
            shutil.copytree(adapter, tmp, dirs_exist_ok=True)
            tmp.rename(stored)
        metrics = data.get("metrics", {})
        hours = metrics.get("train_runtime", 0.0) / 3600
        cost = hours * float(request.config.provider.get("gpu_hour_usd", 0.0))
        return TrainResult(job_id, self.ws.rel(stored), sha, metrics, cost)

    def cancel(self, job_id: str, request: TrainRequest) -> None:
        pid = self._running(request)
        if pid is not None:
            os.kill(pid, signal.SIGTERM)

    def delete(self, state: TrainState, config: ResolvedConfig) -> None:
        path = self.ws.root / state.model_ref
        if self.ws.store in path.parents:
            shutil.rmtree(path, ignore_errors=True)

    def refresh(self, state: TrainState, config: ResolvedConfig) -> str | None:
        if not (self.ws.root / state.model_ref / "adapter_config.json").is_file():
            return f"drift: adapter {state.model_ref} is missing from the local store"
        return None

    def logs(self, state: TrainState, config: ResolvedConfig) -> list[str]:
        path = self.ws.runs / "train" / state.fingerprint / "events.jsonl"
        return path.read_text().splitlines() if path.is_file() else []

    # -- inference ------------------------------------------------------------------------

    def generate(self, models: list[ModelRef], prompts: list[list[dict[str, str]]],
                 config: ResolvedConfig) -> list[list[str]]:
        bases = {m.base_model for m in models}
        if len(bases) != 1:
            raise ProviderError("local generation takes models that share one base model")
        out_dir = _mk(self.ws.runs / "generate")
        with tempfile.TemporaryDirectory(dir=out_dir) as tmp:
            job = LocalGenerateJob(root=str(self.ws.root), base_model=bases.pop(),
                                   model_sources=config.provider.get("model_sources", {}),
                                   adapters=[m.ref for m in models], prompts=prompts, eval=config.eval,
                                   hardware=config.hardware, output=str(Path(tmp) / "out.json"))
            write_json(Path(tmp) / "request.json", job.model_dump(mode="json"))
            proc = subprocess.run([sys.executable, "-m", "levcustom.providers.local.generate_child",
                                   str(Path(tmp) / "request.json")], capture_output=True, text=True,
                                  env=_child_env(), cwd=self.ws.root, stdin=subprocess.DEVNULL)
            if proc.returncode != 0:
                last = (proc.stderr.strip().splitlines() or ["no output"])[-1]
                raise ProviderError(f"local generation failed: {last}")
            return json.loads((Path(tmp) / "out.json").read_text())["outputs"]


def _mk(path: Path) -> Path:
    path.mkdir(parents=True, exist_ok=True)
    return path
