"""Preference pairs for DPO: explicit rows, or derived from rated answers to the same prompt."""

from __future__ import annotations

import json

from dsfixtures import conversation, spec, write_jsonl
from levcustom.datasets.build import build_dataset
from levcustom.datasets.manifest import load_manifest
from levcustom.workspace import Workspace


def pairs(artifact):
    return [json.loads(line) for line in (artifact / "train.jsonl").read_text().splitlines()]


def test_pairs_derived_from_ratings(tmp_path):
    same = "Please review the retry loop"
    logs = [conversation(1, user=same, rating=5, answer="Bound the retries and back off."),
            conversation(2, user=same, rating=2, answer="Looks fine."),
            conversation(3, user=same, rating=4, answer="Add a timeout."),
            conversation(4, user="Another prompt", rating=5, answer="A"),
            conversation(5, user="Another prompt", rating=4.5, answer="B"),  # margin below 1: no pair
            conversation(6, user="Unrated", rating=None)]
    write_jsonl(tmp_path / "logs.jsonl", logs)
    built = build_dataset(Workspace(tmp_path), spec({"type": "preferences", "path": "logs.jsonl", "derive": "ratings"},
                                                    split={"validation": 0.0}), 1, "preference")
    [pair] = pairs(built.artifact)
    assert pair["prompt"][-1] == {"role": "user", "content": same}
    assert pair["chosen"] == [{"role": "assistant", "content": "Bound the retries and back off."}]
    assert pair["rejected"] == [{"role": "assistant", "content": "Looks fine."}]
    assert pair["provenance"]["ref"] == "conv-1 > conv-2"
    assert load_manifest(built.artifact)["steps"]["filtered"] == {"rating": 1, "min_margin": 2, "pairing": 2}


def test_explicit_pairs_in_any_shape(tmp_path):
    rows = [{"prompt": "Q1", "chosen": "good", "rejected": "bad"},
            {"input": {"messages": [{"role": "user", "content": "Q2"}]},
             "preferred_output": [{"role": "assistant", "content": "yes"}],
             "non_preferred_output": [{"role": "assistant", "content": "no"}]}]
    write_jsonl(tmp_path / "p.jsonl", rows)
    built = build_dataset(Workspace(tmp_path), spec({"type": "preferences", "path": "p.jsonl"},
                                                    split={"validation": 0.0}), 1, "preference")
    assert sorted(p["chosen"][0]["content"] for p in pairs(built.artifact)) == ["good", "yes"]
