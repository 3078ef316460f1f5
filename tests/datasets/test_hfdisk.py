"""A folder written by datasets' save_to_disk is read offline, without the datasets library."""

from __future__ import annotations

import json

import pytest

from conftest import chat_rows
from dsfixtures import spec
from levcustom.datasets.build import build_dataset
from levcustom.errors import LevcustomError
from levcustom.workspace import Workspace


def test_dataset_and_dataset_dict(tmp_path):
    from datasets import Dataset, DatasetDict

    Dataset.from_list(chat_rows(n=12)).save_to_disk(str(tmp_path / "single"))
    DatasetDict({"train": Dataset.from_list(chat_rows(n=8)),
                 "test": Dataset.from_list([{"prompt": "p", "completion": "c"}])}).save_to_disk(str(tmp_path / "dd"))
    ws = Workspace(tmp_path)
    built = build_dataset(ws, spec({"type": "hf_disk", "path": "single"}, split={"validation": 0.0}), 1)
    rows = [json.loads(line) for line in (built.artifact / "train.jsonl").read_text().splitlines()]
    assert len(rows) == 12 and rows[0]["provenance"] == {"source": "hf_disk", "file": "single", "line": 1,
                                                         "ref": None, "agent": None, "task": None, "persona": None}
    assert build_dataset(ws, spec({"type": "hf_disk", "path": "dd", "split": "train"}), 1).train_rows + \
        build_dataset(ws, spec({"type": "hf_disk", "path": "dd", "split": "train"}), 1).validation_rows == 8
    with pytest.raises(LevcustomError, match="a DatasetDict: set 'split' to one of train, test"):
        build_dataset(ws, spec({"type": "hf_disk", "path": "dd"}), 1)
    (tmp_path / "plain").mkdir()
    with pytest.raises(LevcustomError, match="not a folder written by save_to_disk"):
        build_dataset(ws, spec({"type": "hf_disk", "path": "plain"}), 1)
