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
from levcustom.datasets.sources import SourceInfo
from levcustom.spec.schema import EXAMPLE_KIND, ModelSpec
from levcustom.state.statcache import FileInfo

# Bump when a stage's meaning changes (e.g. a new dataset format) to rebuild everything once.
DATASET_FORMAT = "dataset-v2"
TRAIN_RECIPE = "lora-sft-v1"
EVAL_RECIPE = "greedy-v1"


def fingerprint(inputs: dict[str, Any]) -> str:
    """Stable short hash of canonical JSON."""
    blob = json.dumps(inputs, sort_keys=True, separators=(",", ":"), default=str).encode()
    return hashlib.sha256(blob).hexdigest()[:32]


def dataset_inputs(spec: ModelSpec, sources: list[SourceInfo]) -> dict[str, Any]:
    """Exactly what a built dataset depends on: each source's settings and file hashes, curation, split."""
    ds = spec.spec.dataset
    return {
        "format": DATASET_FORMAT,
        "kind": EXAMPLE_KIND[spec.spec.method],
        "sources": [{**src.model_dump(mode="json"), **info.fingerprint_inputs()}
                    for src, info in zip(ds.sources, sources, strict=True)],
        "curation": ds.curation.model_dump(mode="json"),
        "split": ds.split.model_dump(mode="json"),
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


def deploy_inputs(spec: ModelSpec, eval_fp: str) -> dict[str, Any]:
    dep = spec.spec.deploy
    return {"eval": eval_fp, "agents": sorted(dep.agents), "tasks": sorted(dep.tasks)}


UPSTREAM_KEYS = {"train": "dataset", "eval": "train", "deploy": "eval"}
