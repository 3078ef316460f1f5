"""The planner is pure: desired stage inputs vs lock -> actions with reasons."""

from __future__ import annotations

import copy

from levcustom.plan.diff import DesiredModel, build_plan
from levcustom.plan.fingerprint import fingerprint
from levcustom.plan.model import Action
from levcustom.state.lockfile import (
    DatasetState,
    DeployState,
    EvalState,
    Intent,
    Lock,
    ModelState,
    SourceRecord,
    TrainState,
)


def desired(name="m", r=8, gate_min=0.8, sha="aaa", records=10) -> DesiredModel:
    d = {"format": "dataset-v2", "sources": [{"key": "jsonl:data/x.jsonl", "type": "jsonl", "path": "data/x.jsonl",
                                              "on_error": "fail", "sha256": sha, "records": records, "files": 1}],
         "curation": {}, "split": {}}
    t = {"dataset": fingerprint(d), "base_model": "b", "training": {"lora": {"r": r}}}
    e = {"train": fingerprint(t), "gates": [{"metric": "g.exact_match", "min": gate_min}]}
    p = {"eval": fingerprint(e), "agents": ["a"], "tasks": []}
    return DesiredModel(name, f"specs/{name}.yaml", {"dataset": d, "train": t, "eval": e, "deploy": p})


def applied(*models: DesiredModel) -> Lock:
    """A lock as if ``models`` had been applied (test data, built by hand)."""
    lock = Lock()
    for m in models:
        s = m.stages
        lock.models[m.name] = ModelState(
            spec_file=m.spec_file,
            dataset=DatasetState(fingerprint=fingerprint(s["dataset"]), inputs=copy.deepcopy(s["dataset"]),
                                 artifact="a", sha256="x", train_rows=9, validation_rows=1,
                                 sources=[SourceRecord(path="data/x.jsonl", sha256="aaa", records=10)]),
            train=TrainState(fingerprint=fingerprint(s["train"]), inputs=copy.deepcopy(s["train"]), provider="local",
                             job_id="j", model_ref="r"),
            eval=EvalState(fingerprint=fingerprint(s["eval"]), inputs=copy.deepcopy(s["eval"]), results={}, gates=[],
                           passed=True, run_dir="d"),
            deploy=DeployState(fingerprint=fingerprint(s["deploy"]), inputs=copy.deepcopy(s["deploy"]), agents=["a"],
                               tasks=[], provider="local", base_model="b", model_ref="r", eval_results={}))
    return lock


def actions(plan) -> dict[str, str]:
    return {c.stage: c.action.value for c in plan.changes}


def test_empty_lock_creates_every_stage():
    plan = build_plan([desired()], Lock())
    assert actions(plan) == {"dataset": "create", "train": "create", "eval": "create", "deploy": "create"}
    assert plan.counts() == {"add": 4, "change": 0, "destroy": 0}


def test_no_change_plans_nothing():
    plan = build_plan([desired()], applied(desired()))
    assert not plan.has_changes


def test_eval_threshold_replans_only_eval_and_deploy():
    plan = build_plan([desired(gate_min=0.9)], applied(desired()))
    assert actions(plan) == {"dataset": "no-op", "train": "no-op", "eval": "update", "deploy": "update"}
    ev = next(c for c in plan.changes if c.stage == "eval")
    assert ev.reasons == ["gates[0].min: 0.8 -> 0.9"]
    dep = next(c for c in plan.changes if c.stage == "deploy")
    assert dep.reasons == ["upstream eval changes"]


def test_lora_rank_retrains_and_reevaluates():
    plan = build_plan([desired(r=16)], applied(desired()))
    assert actions(plan) == {"dataset": "no-op", "train": "replace", "eval": "update", "deploy": "update"}
    train = next(c for c in plan.changes if c.stage == "train")
    assert train.reasons == ["training.lora.r: 8 -> 16"]
    assert plan.counts() == {"add": 1, "change": 2, "destroy": 1}


def test_source_change_reports_record_delta():
    new = desired(sha="bbb", records=126)
    new = DesiredModel(new.name, new.spec_file, new.stages, {"jsonl:data/x.jsonl": (120, 4)})
    plan = build_plan([new], applied(desired()))
    ds = next(c for c in plan.changes if c.stage == "dataset")
    assert ds.action is Action.REPLACE
    assert ds.reasons == ["+120 / -4 records (1 source changed)",
                          "source jsonl:data/x.jsonl changed: +120 / -4 records"]
    # without the old build's line hashes at hand, the record counts give a lower bound
    plan = build_plan([desired(sha="bbb", records=126)], applied(desired()))
    assert next(c for c in plan.changes if c.stage == "dataset").reasons == \
        ["at least +116 / -0 records (1 source changed)", "source jsonl:data/x.jsonl changed: 10 -> 126 records"]


def test_added_and_removed_sources_are_summed():
    new = desired(sha="bbb", records=12)
    extra = {"key": "interactions:logs", "type": "interactions", "path": "logs", "sha256": "c", "records": 30,
             "files": 2}
    stages = {**new.stages, "dataset": {**new.stages["dataset"], "sources": new.stages["dataset"]["sources"] + [extra]}}
    plan = build_plan([DesiredModel("m", "specs/m.yaml", stages, {"jsonl:data/x.jsonl": (3, 1)})], applied(desired()))
    reasons = next(c for c in plan.changes if c.stage == "dataset").reasons
    assert reasons[0] == "+33 / -1 records (2 sources changed)"
    assert "source interactions:logs added (30 records)" in reasons


def test_removed_spec_destroys_consumer_first_and_keeps_artifacts():
    plan = build_plan([], applied(desired("gone")))
    assert [(c.stage, c.action.value) for c in plan.changes] == [
        ("deploy", "destroy"), ("eval", "destroy"), ("train", "destroy"), ("dataset", "destroy")]
    assert "artifacts kept (use --purge to delete)" in plan.changes[2].reasons[0]


def test_target_limits_plan():
    plan = build_plan([desired("a"), desired("b")], Lock(), targets=["b"])
    assert {c.model for c in plan.changes} == {"b"}


def test_interrupted_train_is_planned_as_resume():
    d = desired()
    lock = applied(d)
    lock.models["m"].train = None
    lock.models["m"].intents["train"] = Intent(stage="train", fingerprint=fingerprint(d.stages["train"]),
                                               provider="local", key="k", job_id="local-1", pid=1)
    train = next(c for c in build_plan([d], lock).changes if c.stage == "train")
    assert train.action is Action.CREATE
    assert any("resumes the apply interrupted" in r and "local-1" in r for r in train.reasons)
