"""GGUF export of a Llama model: transformers reads the file back to the same weights and tokenizer."""

from __future__ import annotations

import json

import pytest

from levcustom.providers.local.gguf_export import UnsupportedModel, gguf_architecture, write_gguf
from levcustom.providers.local.modelinfo import gguf_config

pytestmark = pytest.mark.slow


def test_round_trip_through_transformers_gguf_loader(tiny_model, tmp_path):
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    model = AutoModelForCausalLM.from_pretrained(tiny_model)
    config = json.loads((tiny_model / "config.json").read_text())
    tokenizer = AutoTokenizer.from_pretrained(tiny_model)
    out = write_gguf(model.state_dict(), config, tiny_model, tmp_path / "tiny.gguf", name="tiny", dtype="f32",
                     chat_template=tokenizer.chat_template)
    loaded = AutoModelForCausalLM.from_pretrained(tmp_path, gguf_file=out.name)
    loaded_tok = AutoTokenizer.from_pretrained(tmp_path, gguf_file=out.name)
    text = "<|system|>Answer with one word.<|end|><|user|>question number 3 about dogs<|end|><|assistant|>"
    ids = tokenizer(text, add_special_tokens=False)["input_ids"]
    assert loaded_tok(text, add_special_tokens=False)["input_ids"] == ids
    assert loaded_tok.eos_token == "<|end|>" and loaded_tok.chat_template == tokenizer.chat_template
    with torch.no_grad():
        expected = model(torch.tensor([ids])).logits
        got = loaded(torch.tensor([ids])).logits
    # f32 export: the q/k permutation and every tensor name round-trip exactly.
    assert torch.equal(expected, got)
    # The header reader used by plan sees the same architecture.
    shape = gguf_config(out)
    assert shape["num_hidden_layers"] == config["num_hidden_layers"] and shape["hidden_size"] == config["hidden_size"]
    assert shape["vocab_size"] == config["vocab_size"] and shape["tie_word_embeddings"] is True


def test_f16_export_halves_matrices_and_stays_close(tiny_model, tmp_path):
    import torch
    from transformers import AutoModelForCausalLM

    model = AutoModelForCausalLM.from_pretrained(tiny_model)
    config = json.loads((tiny_model / "config.json").read_text())
    f32 = write_gguf(model.state_dict(), config, tiny_model, tmp_path / "a" / "m.gguf", name="t", dtype="f32")
    f16 = write_gguf(model.state_dict(), config, tiny_model, tmp_path / "b" / "m.gguf", name="t", dtype="f16")
    assert f16.stat().st_size < 0.6 * f32.stat().st_size
    loaded = AutoModelForCausalLM.from_pretrained(f16.parent, gguf_file=f16.name)
    ids = torch.tensor([[3, 276, 277, 4]])
    with torch.no_grad():
        assert torch.allclose(model(ids).logits, loaded(ids).logits, atol=1e-2)


def test_unsupported_architectures_are_named():
    with pytest.raises(UnsupportedModel, match="this base model is 'qwen2'"):
        gguf_architecture({"model_type": "qwen2"})
    with pytest.raises(UnsupportedModel, match="bias"):
        gguf_architecture({"model_type": "llama", "attention_bias": True})
