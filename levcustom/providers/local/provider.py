"""``provider: local``: LoRA / QLoRA training (SFT, DPO, continued SFT) and generation in child
processes on this machine, or on a Slurm cluster through submitit.

A job is the folder ``.levcustom/runs/train/<fingerprint>/``: submitting the same key again
follows the running child (found by its pid file or submitit job id) or returns the finished
result; a child killed mid-run is restarted and resumes from its newest checkpoint.
At plan time the provider estimates peak memory from the base model's ``config.json`` and
refuses a config that cannot fit its hardware profile (``memory.py``).
"""

from __future__ import annotations

import hashlib
import importlib.util
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from datetime import date
from pathlib import Path
from typing import Any

from levcustom.config.models import ResolvedConfig
from levcustom.datasets.jsonl import Example, message_lists
from levcustom.errors import LevcustomError, ProviderError
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
from levcustom.providers.local import launch
from levcustom.providers.local.card import CARD_FILE, CardData, write_card
from levcustom.providers.local.job import LocalExportJob, LocalGenerateJob, LocalTrainJob, last_event, write_json
from levcustom.providers.local.memory import (
    BatchChoice,
    ModelShape,
    choose_batch,
    effective_batch,
    gib,
    largest_fitting,
)
from levcustom.providers.local.modelinfo import find_model_config, find_model_dir
from levcustom.spec.schema import ModelBody
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


SUPPORTED_METHODS = ("sft", "dpo")


def tree_sha256(folder: Path) -> str:
    """Content hash of a folder (relative paths + bytes, the model card excluded), for content-addressed artifacts."""
    h = hashlib.sha256()
    for f in sorted(p for p in folder.rglob("*") if p.is_file() and p.relative_to(folder) != Path(CARD_FILE)):
        h.update(str(f.relative_to(folder)).encode() + b"\0" + f.read_bytes() + b"\0")
    return h.hexdigest()


class LocalProvider:
    name = "local"

    def __init__(self, ws: Workspace):
        self.ws = ws
        self._procs: dict[str, subprocess.Popen] = {}
        self._shapes: dict[str, ModelShape | None] = {}
        # Protocol.estimate() takes no method; check() runs first for the same config and records it here.
        self._methods: dict[tuple[int, str], str] = {}

    def poll_intervals(self, config: ResolvedConfig) -> tuple[float, float]:
        return 0.5, 2.0  # a local child's progress file is cheap to read

    def min_examples(self, config: ResolvedConfig) -> int:
        return int(config.provider.get("min_examples", 1))

    def max_parallel_jobs(self, config: ResolvedConfig) -> int:
        return int(config.provider.get("max_parallel_jobs", 1))

    def result_config(self, config: ResolvedConfig) -> dict[str, Any]:
        # Speed/memory settings do not change the weights; hosted-only knobs do not apply here.
        hw = config.hardware.model_dump(exclude={"name", "gradient_checkpointing", "memory_gb", "tokens_per_second",
                                                  "per_device_batch_size", "gradient_accumulation_steps",
                                                  "peak_tflops", "distributed", "launcher", "slurm"})
        hw["effective_batch_size"] = effective_batch(config.training, config.hardware)
        t = config.training
        training = t.model_dump(exclude={"batch_size", "learning_rate_multiplier", "beta", "logging_steps",
                                         "save_steps", "merge", "init_adapter"})
        # Added only when set, so the fingerprints of models trained before these existed do not move.
        if t.beta != "auto":
            training["beta"] = t.beta
        if t.merge:
            training["merge"] = True
        if t.init_adapter:
            training["init_adapter"] = {"path": t.init_adapter, "sha256": self._adapter_sha(t.init_adapter)}
        return {"training": training, "hardware": hw}

    def _adapter_sha(self, rel: str) -> str | None:
        """Content hash of a continued-training adapter (None while it is missing: ``check`` reports that)."""
        try:
            folder = self.ws.resolve_path(rel)
        except LevcustomError:
            return None
        return tree_sha256(folder) if (folder / "adapter_config.json").is_file() else None

    def _shape(self, base_model: str, config: ResolvedConfig) -> ModelShape | None:
        if base_model not in self._shapes:
            found = find_model_config(base_model, config.provider.get("model_sources", {}), self.ws.root)
            try:
                self._shapes[base_model] = ModelShape.from_config(found) if found else None
            except (KeyError, TypeError):
                self._shapes[base_model] = None
        return self._shapes[base_model]

    def batch(self, method: str, base_model: str, config: ResolvedConfig) -> BatchChoice | None:
        """Per-device batch, accumulation and memory estimate (None when the model's shape is unknown offline)."""
        shape = self._shape(base_model, config)
        return choose_batch(shape, config.training, config.hardware, method) if shape else None

    def check(self, method: str, base_model: str, config: ResolvedConfig) -> list[ConfigProblem]:
        hw, t = config.hardware, config.training
        self._methods[(id(config), base_model)] = method
        problems = []
        if method not in SUPPORTED_METHODS:
            trains = " or ".join(SUPPORTED_METHODS)
            problems.append(ConfigProblem(("spec", "method"), f"the local provider trains {trains} (got {method!r})"))
        if t.epochs == "auto":
            problems.append(ConfigProblem(("spec", "training", "epochs"), "local training needs a number of epochs"))
        if hw.quantization != "none" and hw.device == "mps":
            problems.append(ConfigProblem(("spec", "hardware"), f"quantization {hw.quantization!r} needs bitsandbytes,"
                                                                " which runs on cuda and cpu, not mps"))
        problems += self._check_init_adapter(t)
        problems += _check_distributed(config)
        if not problems:
            problems += self._check_memory(method, base_model, config)
        return problems

    def _check_init_adapter(self, t) -> list[ConfigProblem]:
        if not t.init_adapter:
            return []
        where = ("spec", "training", "init_adapter")
        try:
            folder = self.ws.resolve_path(t.init_adapter)
        except LevcustomError as exc:
            return [ConfigProblem(where, str(exc))]
        if not (folder / "adapter_config.json").is_file():
            return [ConfigProblem(where, f"{t.init_adapter}: no LoRA adapter there (adapter_config.json not found)")]
        saved = json.loads((folder / "adapter_config.json").read_text())
        if saved.get("r") != t.lora.r or saved.get("lora_alpha") != t.lora.alpha:
            return [ConfigProblem(where, f"the adapter has r={saved.get('r')}, alpha={saved.get('lora_alpha')}; "
                                         f"set training.lora to match (now r={t.lora.r}, alpha={t.lora.alpha})")]
        return []

    def _check_memory(self, method: str, base_model: str, config: ResolvedConfig) -> list[ConfigProblem]:
        choice = self.batch(method, base_model, config)
        if choice is None or choice.fits:
            return []
        hw, t = config.hardware, config.training
        msg = (f"training needs ~{choice.estimate.describe()} per device for batch {choice.per_device} x "
               f"{t.max_length} tokens, more than the {hw.memory_gb:g} GiB of hardware {hw.name!r}")
        shape = self._shape(base_model, config)
        fits = largest_fitting(shape, t, hw, method, choice.effective)
        if fits:
            acc = choice.effective // (fits * hw.distributed.num_processes)
            msg += (f"; batch {fits} fits: set hardware.per_device_batch_size={fits} and "
                    f"hardware.gradient_accumulation_steps={acc} (same effective batch {choice.effective})")
        else:
            msg += "; even batch 1 does not fit: lower training.max_length, enable hardware.gradient_checkpointing, "
            msg += "or quantize (hardware.quantization=nf4)"
        return [ConfigProblem(("spec", "hardware"), msg)]

    def inspect(self, examples: list[Example], method: str, base_model: str, config: ResolvedConfig) -> DatasetReport:
        # No tokenizer is loaded at plan time: ~4 characters per token is the usual estimate for English.
        chars = sum(len(c) for ex in examples for msgs in message_lists(ex) for _, c in msgs)
        return DatasetReport(len(examples), chars // 4, [], "estimated as characters / 4")

    def estimate(self, tokens: int, config: ResolvedConfig, base_model: str) -> CostEstimate:
        tps = config.hardware.tokens_per_second
        trained = int(tokens * float(config.training.epochs))
        hours = trained / tps / 3600
        usd = hours * float(config.provider.get("gpu_hour_usd", 0.0))
        note = f"~{trained:,} tokens at {tps:,.0f} tok/s ({config.hardware.name}) = {hours * 60:.1f} min"
        return CostEstimate(trained, hours, usd, note + "; " + self._memory_note(base_model, config))

    def _memory_note(self, base_model: str, config: ResolvedConfig) -> str:
        choice = self.batch(self._methods.get((id(config), base_model), "sft"), base_model, config)
        if choice is None:
            return "peak memory unknown (no config.json for the base model on this machine)"
        return (f"peak memory ~{gib(choice.estimate.total)} of {config.hardware.memory_gb:g} GiB per device "
                f"(batch {choice.per_device} x {config.training.max_length} tokens, "
                f"gradient accumulation {choice.accumulation})")

    def risks(self, base_model: str, config: ResolvedConfig, today: date) -> list[str]:
        return []

    # -- training -------------------------------------------------------------------------

    def submit(self, request: TrainRequest, record_upload: Callable[[Upload], None]) -> str:
        work = request.work_dir
        work.mkdir(parents=True, exist_ok=True)
        job_id = f"local-{request.key[:16]}"
        if (work / "result.json").exists() or self._running(request):
            return job_id  # finished or still running: follow it, never start a second one
        (work / "error.json").unlink(missing_ok=True)
        hw = request.config.hardware
        choice = self.batch(request.method, request.base_model, request.config)
        if choice is not None:  # the split the plan showed (same pure function)
            hw = hw.model_copy(update={"per_device_batch_size": choice.per_device,
                                       "gradient_accumulation_steps": choice.accumulation})
        job = LocalTrainJob(root=str(self.ws.root), base_model=request.base_model,
                            model_sources=request.config.provider.get("model_sources", {}),
                            method=request.method, dataset_dir=str(request.dataset_dir), work_dir=str(work),
                            training=request.config.training, hardware=hw)
        write_json(work / "request.json", job.model_dump(mode="json"))
        command = launch.train_command(hw, work / "request.json")
        if hw.launcher != "process":
            (work / "submitit_job").write_text(launch.submit_job(hw, command, self.ws.root, _child_env(),
                                                                 work / "submitit"))
            return job_id
        log = open(work / "child.log", "ab")
        proc = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT,
                                stdin=subprocess.DEVNULL, env=_child_env(), cwd=self.ws.root)
        log.close()
        (work / "pid").write_text(str(proc.pid))
        self._procs[request.key] = proc
        return job_id

    def _running(self, request: TrainRequest) -> bool:
        submitted = request.work_dir / "submitit_job"
        if submitted.is_file():
            state = launch.job_state(request.config.hardware, request.work_dir / "submitit", submitted.read_text())
            return state in ("RUNNING", "PENDING", "REQUEUED", "CONFIGURING", "COMPLETING")
        return self._pid(request) is not None

    def _pid(self, request: TrainRequest) -> int | None:
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
        if not self._running(request):
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
        metrics = data.get("metrics", {})
        card = CardData(model=request.model, base_model=request.base_model, method=request.method,
                        dataset_sha256=request.dataset_dir.name, hyperparameters=self.result_config(request.config),
                        metrics=metrics)
        adapter = Path(data["adapter"])
        write_card(adapter, card)
        sha = tree_sha256(adapter)
        stored = self._store(adapter, self.ws.store / "adapters" / sha)
        if data.get("merged"):  # kept beside its adapter's hash: store/merged/<adapter sha>/
            write_card(Path(data["merged"]), card)
            self._store(Path(data["merged"]), merged_dir(self.ws, sha))
        hours = metrics.get("train_runtime", 0.0) / 3600
        cost = hours * float(request.config.provider.get("gpu_hour_usd", 0.0))
        return TrainResult(job_id, self.ws.rel(stored), sha, metrics, cost)

    @staticmethod
    def _store(source: Path, stored: Path) -> Path:
        if not stored.exists():
            tmp = Path(tempfile.mkdtemp(dir=_mk(stored.parent), prefix=".tmp-"))
            shutil.copytree(source, tmp, dirs_exist_ok=True)
            tmp.rename(stored)
        return stored

    def cancel(self, job_id: str, request: TrainRequest) -> None:
        submitted = request.work_dir / "submitit_job"
        if submitted.is_file():
            launch.cancel_job(request.config.hardware, request.work_dir / "submitit", submitted.read_text())
            return
        pid = self._pid(request)
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

        def job(output: Path) -> LocalGenerateJob:
            return LocalGenerateJob(root=str(self.ws.root), base_model=bases.pop(),
                                    model_sources=config.provider.get("model_sources", {}),
                                    adapters=[m.ref for m in models], prompts=prompts, eval=config.eval,
                                    hardware=config.hardware, output=str(output))

        return self._run_child("generate_child", job, "local generation")["outputs"]

    def check_deploy(self, body: ModelBody, config: ResolvedConfig) -> list[ConfigProblem]:
        if body.deploy.target != "ollama":
            return []
        found = find_model_config(body.base_model, config.provider.get("model_sources", {}), self.ws.root)
        if found is None:  # not on disk yet: the export says why at deploy
            return []
        from levcustom.providers.local.gguf_export import UnsupportedModel, gguf_architecture

        try:
            gguf_architecture(found)
        except UnsupportedModel as exc:
            return [ConfigProblem(("spec", "deploy", "target"), f"deploy target ollama: {exc}")]
        return []

    def count_tokens(self, base_model: str, texts: list[str], config: ResolvedConfig) -> list[int] | None:
        folder = find_model_dir(base_model, self.ws.root)
        if folder is None or not (folder / "tokenizer.json").is_file():
            return None
        from tokenizers import Tokenizer  # the Rust tokenizer alone: no torch or transformers here

        tokenizer = Tokenizer.from_file(str(folder / "tokenizer.json"))
        return [len(e.ids) for e in tokenizer.encode_batch(texts, add_special_tokens=False)]

    def export_gguf(self, model_ref: str, adapter_sha: str, base_model: str, config: ResolvedConfig, *,
                    name: str, dtype: str) -> GgufExport:
        """The tuned model merged and written as GGUF, stored once per (adapter, base, dtype)."""
        key = hashlib.sha256(json.dumps([adapter_sha, base_model, dtype]).encode()).hexdigest()
        folder = self.ws.store / "gguf" / key
        meta = folder / "export.json"
        if not meta.is_file():
            def job(output: Path) -> LocalExportJob:
                return LocalExportJob(root=str(self.ws.root), base_model=base_model,
                                      model_sources=config.provider.get("model_sources", {}), adapter=model_ref,
                                      precision=config.hardware.precision, dtype=dtype, name=name,
                                      gguf=str(output.parent / "model.gguf"), output=str(output))

            tmp = Path(tempfile.mkdtemp(dir=_mk(folder.parent), prefix=".tmp-"))
            data = self._run_child("export_child", job, "GGUF export", work=tmp)
            write_json(tmp / "export.json", {**data, "gguf": "model.gguf"})
            (tmp / "request.json").unlink()
            (tmp / "out.json").unlink()
            shutil.rmtree(folder, ignore_errors=True)  # a half-written earlier attempt
            tmp.rename(folder)
        data = json.loads(meta.read_text())
        return GgufExport(path=folder / data["gguf"], chat_template=data["chat_template"],
                          bos_token=data["bos_token"], eos_token=data["eos_token"])

    def _run_child(self, module: str, make_job, what: str, work: Path | None = None) -> dict:
        """Run ``levcustom.providers.local.<module>`` on a job built for its output file; its JSON result."""
        with tempfile.TemporaryDirectory(dir=_mk(self.ws.runs / "generate")) as scratch:
            folder = work or Path(scratch)
            job = make_job(folder / "out.json")
            write_json(folder / "request.json", job.model_dump(mode="json"))
            proc = subprocess.run([sys.executable, "-m", f"levcustom.providers.local.{module}",
                                   str(folder / "request.json")], capture_output=True, text=True,
                                  env=_child_env(), cwd=self.ws.root, stdin=subprocess.DEVNULL)
            if proc.returncode != 0:
                last = (proc.stderr.strip().splitlines() or ["no output"])[-1]
                raise ProviderError(f"{what} failed: {last}")
            return json.loads((folder / "out.json").read_text())


@dataclass(frozen=True)
class GgufExport:
    """A GGUF file of a tuned model and the tokenizer facts a chat template needs."""

    path: Path
    chat_template: str | None
    bos_token: str
    eos_token: str


def merged_dir(ws: Workspace, adapter_sha: str) -> Path:
    """Where the merged model of an adapter is stored (``training.merge: true``)."""
    return ws.store / "merged" / adapter_sha


def _check_distributed(config: ResolvedConfig) -> list[ConfigProblem]:
    """Settings accelerate or submitit would reject only after the model loaded."""
    hw, t = config.hardware, config.training
    dist, where = hw.distributed, ("spec", "hardware")
    problems = []
    if dist.strategy == "none" and dist.num_processes > 1:
        problems.append(ConfigProblem(where, "hardware.distributed.num_processes > 1 needs a strategy "
                                             "(ddp, fsdp, deepspeed-zero2, deepspeed-zero3)"))
    if dist.strategy not in ("none", "ddp") and hw.device != "cuda":
        problems.append(ConfigProblem(where, f"distributed strategy {dist.strategy!r} needs device cuda"))
    if dist.strategy.startswith("deepspeed") and importlib.util.find_spec("deepspeed") is None:
        problems.append(ConfigProblem(where, f"distributed strategy {dist.strategy!r} needs the deepspeed package "
                                             "(pip install deepspeed)"))
    if dist.strategy != "none" and hw.quantization != "none" and dist.strategy != "ddp":
        problems.append(ConfigProblem(where, f"quantization {hw.quantization!r} with {dist.strategy!r} is not "
                                             "supported here: use ddp, or quantization none"))
    if hw.launcher == "slurm" and hw.slurm.nodes > 1:
        problems.append(ConfigProblem(where, "hardware.slurm.nodes > 1: multi-node training is not supported yet "
                                             "(one node, several GPUs is)"))
    if isinstance(t.batch_size, int) and t.batch_size % dist.num_processes:
        problems.append(ConfigProblem(("spec", "training", "batch_size"),
                                      f"batch_size {t.batch_size} must divide evenly over "
                                      f"{dist.num_processes} processes"))
    return problems


def _mk(path: Path) -> Path:
    path.mkdir(parents=True, exist_ok=True)
    return path
