"""Dataset builds: curated, split by content hash, stored content-addressed."""

from __future__ import annotations

import json

import pytest

from conftest import chat_rows, write_jsonl
from levcustom.datasets.build import build_dataset, load_manifest
from levcustom.errors import LevcustomError
from levcustom.spec.schema import DatasetSpec
from levcustom.workspace import Workspace


def spec(**kw) -> DatasetSpec:
    return DatasetSpec.model_validate({"sources": [{"type": "jsonl", "path": "d.jsonl", **kw}],
                                       "split": {"validation": 0.25, "seed": 3}})


def rows(path):
    return [json.loads(line)["messages"][1]["content"] for line in path.read_text().splitlines()]


def test_dedupe_split_and_content_address(tmp_path):
    ws = Workspace(tmp_path)
    data = chat_rows(n=32)
    write_jsonl(tmp_path / "d.jsonl", data + [data[0]] + [{"prompt": "P", "completion": "C"}])
    built = build_dataset(ws, spec(), 1)
    assert built.train_rows + built.validation_rows == 33  # one exact duplicate dropped
    assert 0 < built.validation_rows < 33
    manifest = load_manifest(built.artifact)
    assert manifest["steps"] == {"read": 34, "after_exact_dedupe": 33}
    assert build_dataset(ws, spec(), 1).artifact == built.artifact  # same content, same artifact

    # Appending rows never moves an old row to the other split.
    write_jsonl(tmp_path / "d.jsonl", data + [{"prompt": f"new {i}", "completion": "x"} for i in range(20)])
    grown = build_dataset(ws, spec(), 1)
    old_val, new_val = set(rows(built.artifact / "validation.jsonl")), set(rows(grown.artifact / "validation.jsonl"))
    assert old_val - {"P"} <= new_val
    assert not (set(rows(built.artifact / "train.jsonl")) & new_val)


def test_bad_rows_fail_with_file_line_or_are_skipped(tmp_path):
    ws = Workspace(tmp_path)
    write_jsonl(tmp_path / "d.jsonl", chat_rows(n=4))
    with open(tmp_path / "d.jsonl", "a") as f:
        f.write("{broken\n")
    with pytest.raises(LevcustomError, match=r"d.jsonl:5:2: invalid JSON"):
        build_dataset(ws, spec(), 1)
    assert build_dataset(ws, spec(on_error="skip"), 1).train_rows >= 1


def test_too_few_examples_for_provider(tmp_path):
    write_jsonl(tmp_path / "d.jsonl", chat_rows(n=3))
    with pytest.raises(LevcustomError, match="the provider needs at least 10"):
        build_dataset(Workspace(tmp_path), spec(), 10)


def test_source_outside_repository_refused(tmp_path):
    with pytest.raises(LevcustomError, match="outside the repository"):
        build_dataset(Workspace(tmp_path), DatasetSpec.model_validate(
            {"sources": [{"type": "jsonl", "path": "../etc/passwd"}]}), 1)
