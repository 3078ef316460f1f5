"""Finding a base model's architecture offline, without ML imports."""

from __future__ import annotations

import json

from levcustom.providers.local.modelinfo import find_model_config, gguf_metadata


def test_folder_config_and_missing_model(tiny_model, tmp_path, monkeypatch):
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "hub"))
    monkeypatch.setenv("LEVCUSTOM_CACHE", str(tmp_path / "cache"))
    found = find_model_config(str(tiny_model), {}, tmp_path)
    assert found == json.loads((tiny_model / "config.json").read_text())
    assert find_model_config("nobody/nothing", {}, tmp_path) is None


def test_hf_cache_snapshot_is_found(tmp_path, monkeypatch):
    snapshot = tmp_path / "hub" / "models--org--m" / "snapshots" / "abc"
    snapshot.mkdir(parents=True)
    (snapshot / "config.json").write_text(json.dumps({"hidden_size": 8}))
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "hub"))
    monkeypatch.setenv("LEVCUSTOM_CACHE", str(tmp_path / "cache"))
    assert find_model_config("org/m", {}, tmp_path) == {"hidden_size": 8}


def test_gguf_header_reader_matches_the_gguf_package(tmp_path):
    import gguf
    import numpy as np

    path = tmp_path / "x.gguf"
    writer = gguf.GGUFWriter(str(path), "llama")
    writer.add_block_count(3)
    writer.add_token_list(["a", "bb", "ccc"])
    writer.add_float32("custom.f", 0.5)
    writer.add_tensor("token_embd.weight", np.zeros((3, 4), dtype=np.float32))
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()
    meta, names = gguf_metadata(path)
    assert meta["general.architecture"] == "llama" and meta["llama.block_count"] == 3
    assert meta["tokenizer.ggml.tokens"] == 3 and meta["custom.f"] == 0.5
    assert names == ["token_embd.weight"]
