"""Stage inputs and fingerprints: pure functions of spec, resolved config and file hashes.

Each stage hashes exactly what changes its result, plus its upstream stage's fingerprint:
a new eval threshold re-runs eval (and deploy) only; a new LoRA rank re-trains; an edited
source file rebuilds the dataset only when its content changed.
"""

from __future__ import annotations

import hashlib
import json
from typing import Any

from levcustom.config.models import ResolvedConfig
from levcustom.spec.schema import EXAMPLE_KIND, ModelSpec
from levcustom.state.statcache import FileInfo

# Bump when a stage's meaning changes (e.g. a new dataset format) to rebuild everything once.
DATASET_FORMAT = "chat-v1"
TRAIN_RECIPE = "lora-sft-v1"
EVAL_RECIPE = "greedy-v1"


def fingerprint(inputs: dict[str, Any]) -> str:
    """Stable short hash of canonical JSON."""
    blob = json.dumps(inputs, sort_keys=True, separators=(",", ":"), default=str).encode()
    return hashlib.sha256(blob).hexdigest()[:32]


def dataset_inputs(spec: ModelSpec, sources: dict[str, FileInfo]) -> dict[str, Any]:
    ds = spec.spec.dataset
    return {
        "format": DATASET_FORMAT,
        "kind": EXAMPLE_KIND[spec.spec.train_method],
        "sources": [
            {**src.model_dump(), "sha256": sources[src.path].sha256, "records": sources[src.path].records}
            for src in ds.sources
        ],
        "curation": ds.curation.model_dump(),
        "split": ds.split.model_dump(),
    }


def train_inputs(spec: ModelSpec, provider: str, result_config: dict[str, Any], dataset_fp: str) -> dict[str, Any]:
    """``result_config`` is what the provider says changes its result (``Provider.result_config``)."""
    return {
        "recipe": TRAIN_RECIPE,
        "dataset": dataset_fp,
        "base_model": spec.spec.base_model,
        "provider": provider,
        "method": spec.spec.method,
        **result_config,
    }


def eval_inputs(spec: ModelSpec, cfg: ResolvedConfig, train_fp: str, suites: dict[str, FileInfo]) -> dict[str, Any]:
    ev = spec.spec.evals
    return {
        "recipe": EVAL_RECIPE,
        "train": train_fp,
        "generation": cfg.eval.model_dump(),
        "suites": [{**s.model_dump(), "sha256": suites[s.path].sha256} for s in ev.suites],
        "gates": [g.model_dump() for g in ev.gates],
    }


def deploy_inputs(spec: ModelSpec, eval_fp: str, serving: dict[str, Any] | None = None) -> dict[str, Any]:
    """``serving``: a paid endpoint's settings (``providers.base.Serving``); absent when there is none,
    so models without one keep their fingerprints."""
    dep = spec.spec.deploy
    inputs = {"eval": eval_fp, "agents": sorted(dep.agents), "tasks": sorted(dep.tasks)}
    return {**inputs, "serving": serving} if serving else inputs


UPSTREAM_KEYS = {"train": "dataset", "eval": "train", "deploy": "eval"}
