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
from levcustom.spec.schema import EXAMPLE_KIND, ModelSpec, Suite
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
        "kind": EXAMPLE_KIND[spec.spec.train_method],
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
        "suites": [_suite_inputs(s, suites) for s in ev.suites],
        "gates": [g.model_dump(exclude={"confidence"} if g.confidence is None else set()) for g in ev.gates],
    }


def _suite_inputs(suite: Suite, files: dict[str, FileInfo]) -> dict[str, Any]:
    """A suite's settings and the content hashes of its files (a held-out split is covered by the
    dataset fingerprint upstream)."""
    out = suite.model_dump(exclude_none=True, by_alias=True)
    if suite.path is not None:
        out["sha256"] = files[suite.path].sha256
    if suite.schema_path is not None:
        out["schema_sha256"] = files[suite.schema_path].sha256
    return out


def deploy_inputs(spec: ModelSpec, eval_fp: str, online: str | None = None,
                  serving: dict[str, Any] | None = None) -> dict[str, Any]:
    """``online`` is the A/B phase (see ``deploy.online``); ``serving`` a paid endpoint's settings
    (``providers.base.Serving``). Both keys appear only when used, so other deployments keep
    their fingerprints."""
    dep = spec.spec.deploy
    out: dict[str, Any] = {"eval": eval_fp, "agents": sorted(dep.agents), "tasks": sorted(dep.tasks)}
    if dep.traffic is not None:
        out.update(traffic=dep.traffic.model_dump(), online=online)
    if serving:
        out["serving"] = serving
    if dep.target != "registry":  # only then: registry deployments keep their fingerprints
        out["target"] = dep.target
        out[dep.target] = getattr(dep, dep.target).model_dump()
    return out


UPSTREAM_KEYS = {"train": "dataset", "eval": "train", "deploy": "eval"}
