"""Files shared by the local provider and its child processes (one job folder per fingerprint).

``<work_dir>/request.json``  what to do (written by the parent before the child starts)
``<work_dir>/pid``           the running child's pid (a restarted apply follows it, never a second one)
``<work_dir>/events.jsonl``  progress events, appended by the child
``<work_dir>/checkpoints/``  trainer checkpoints: a killed run resumes from the newest
``<work_dir>/result.json``   written last, atomically: the job succeeded
``<work_dir>/error.json``    the job failed, with the cause
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict

from levcustom.config.models import EvalConfig, HardwareConfig, TrainingConfig
from levcustom.state.atomic import atomic_write_text


class LocalTrainJob(BaseModel):
    model_config = ConfigDict(extra="forbid")

    root: str
    base_model: str
    model_sources: dict[str, Any]
    method: str
    dataset_dir: str
    work_dir: str
    training: TrainingConfig
    hardware: HardwareConfig


class LocalGenerateJob(BaseModel):
    model_config = ConfigDict(extra="forbid")

    root: str
    base_model: str
    model_sources: dict[str, Any]
    adapters: list[str | None]  # None: the base model itself
    prompts: list[list[dict[str, str]]]
    eval: EvalConfig
    hardware: HardwareConfig
    output: str


class LocalExportJob(BaseModel):
    """Merge an adapter into its base and write a GGUF file (for Ollama)."""

    model_config = ConfigDict(extra="forbid")

    root: str
    base_model: str
    model_sources: dict
    adapter: str  # folder, relative to root
    precision: str
    dtype: str  # GGUF tensor type: f16 | f32
    name: str
    gguf: str  # where to write the file
    output: str


def write_json(path: Path, data: Any) -> None:
    atomic_write_text(path, json.dumps(data, indent=1))


def append_event(work_dir: Path, event: dict[str, Any]) -> None:
    with open(work_dir / "events.jsonl", "a", encoding="utf-8") as f:
        f.write(json.dumps(event) + "\n")


def last_event(work_dir: Path) -> dict[str, Any] | None:
    """The newest progress event (reads only the file's tail)."""
    path = work_dir / "events.jsonl"
    try:
        with open(path, "rb") as f:
            f.seek(0, 2)
            f.seek(max(0, f.tell() - 4096))
            lines = [ln for ln in f.read().splitlines() if ln.strip()]
        return json.loads(lines[-1]) if lines else None
    except (OSError, ValueError):
        return None
