"""Write a merged Llama-family model as one GGUF file (what Ollama and llama.cpp load).

The same layout llama.cpp's ``convert_hf_to_gguf.py`` writes for ``LlamaForCausalLM``: tensor
names from the ``gguf`` package's name map, the query/key rows permuted to GGML's rotary
layout, 1-D tensors (norms) in f32, matrices in f16 or f32, and the tokenizer (byte-level BPE:
tokens, types, merges, special ids, chat template) in the ``tokenizer.ggml.*`` keys.
Runs in a child process (imports torch through the caller's model).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

# HF model_type -> GGUF architecture. Mistral is a Llama in llama.cpp's eyes.
ARCHITECTURES = {"llama": "llama", "mistral": "llama"}
DTYPES = ("f16", "f32")

# llama.cpp's token types.
_NORMAL, _CONTROL, _USER_DEFINED = 1, 3, 4


class UnsupportedModel(ValueError):
    """The model's architecture or tokenizer has no GGUF export here."""


def _permute(weights, n_head: int):
    """HF's rotary layout (halves) -> GGML's (interleaved pairs), per head (llama.cpp ``permute``)."""
    return (weights.reshape(n_head, 2, weights.shape[0] // n_head // 2, *weights.shape[1:])
            .swapaxes(1, 2).reshape(weights.shape))


def gguf_architecture(config: dict[str, Any]) -> str:
    """The GGUF architecture for an HF ``config.json``, or why there is none."""
    arch = ARCHITECTURES.get(config.get("model_type", ""))
    if arch is None:
        raise UnsupportedModel(f"GGUF export supports {', '.join(sorted(ARCHITECTURES))} models "
                               f"(this base model is {config.get('model_type')!r})")
    if config.get("attention_bias") or config.get("mlp_bias"):
        raise UnsupportedModel("GGUF export of Llama models with bias terms is not supported")
    return arch


def _tokenizer_pre(pre_tokenizer: dict | None) -> str:
    """llama.cpp's name for the pre-tokenizer regex: GPT-2's byte-level split, alone or with single digits."""
    if pre_tokenizer is None:
        return "default"
    kinds = [p["type"] for p in pre_tokenizer.get("pretokenizers", [pre_tokenizer])]
    if kinds == ["ByteLevel"]:
        return "gpt2"
    if kinds == ["Digits", "ByteLevel"]:
        return "smollm"
    return "default"


def tokenizer_metadata(tokenizer_json: dict, tokenizer_config: dict) -> dict[str, Any]:
    """The ``tokenizer.ggml.*`` values of a byte-level BPE ``tokenizer.json`` (pure)."""
    model = tokenizer_json.get("model", {})
    if model.get("type") != "BPE" or not _is_byte_level(tokenizer_json):
        raise UnsupportedModel("GGUF export supports byte-level BPE tokenizers (GPT-2 style); "
                               f"this one is {model.get('type')!r}")
    vocab: dict[str, int] = dict(model["vocab"])
    added = {t["content"]: t for t in tokenizer_json.get("added_tokens", [])}
    for content, t in added.items():
        vocab[content] = t["id"]
    by_id = {i: tok for tok, i in vocab.items()}
    size = max(by_id) + 1
    tokens = [by_id.get(i, f"[PAD{i}]") for i in range(size)]
    types = [(_CONTROL if added[t].get("special") else _USER_DEFINED) if t in added else _NORMAL for t in tokens]
    merges = [m if isinstance(m, str) else " ".join(m) for m in model.get("merges", [])]

    def special_id(name: str) -> int | None:
        value = tokenizer_config.get(name)
        if isinstance(value, dict):
            value = value.get("content")
        return vocab.get(value) if value else None

    meta: dict[str, Any] = {"model": "gpt2", "pre": _tokenizer_pre(tokenizer_json.get("pre_tokenizer")),
                            "tokens": tokens, "token_type": types, "merges": merges,
                            "add_bos_token": bool(tokenizer_config.get("add_bos_token", False))}
    for key, name in (("bos_token_id", "bos_token"), ("eos_token_id", "eos_token"),
                      ("padding_token_id", "pad_token"), ("unknown_token_id", "unk_token")):
        found = special_id(name)
        if found is not None:
            meta[key] = found
    return meta


def _is_byte_level(tokenizer_json: dict) -> bool:
    decoder = tokenizer_json.get("decoder") or {}
    parts = decoder.get("decoders", [decoder])
    return any(p.get("type") == "ByteLevel" for p in parts)


def write_gguf(state_dict: dict, config: dict[str, Any], model_dir: Path, out: Path, *, name: str,
               dtype: str = "f16", chat_template: str | None = None) -> Path:
    """Write ``state_dict`` (a merged HF Llama model's tensors) and the tokenizer in ``model_dir`` to ``out``."""
    import gguf
    import numpy as np

    arch_name = gguf_architecture(config)
    if dtype not in DTYPES:
        raise UnsupportedModel(f"GGUF export writes {' or '.join(DTYPES)} (got {dtype!r})")
    tok_json = json.loads((model_dir / "tokenizer.json").read_text())
    tok_cfg_path = model_dir / "tokenizer_config.json"
    tok_cfg = json.loads(tok_cfg_path.read_text()) if tok_cfg_path.is_file() else {}
    tok_meta = tokenizer_metadata(tok_json, tok_cfg)

    n_layers, n_head = config["num_hidden_layers"], config["num_attention_heads"]
    n_kv = config.get("num_key_value_heads") or n_head
    head_dim = config.get("head_dim") or config["hidden_size"] // n_head
    rope = config.get("rope_parameters") or {}
    writer = gguf.GGUFWriter(str(out), arch_name)
    writer.add_name(name)
    writer.add_context_length(config.get("max_position_embeddings", 2048))
    writer.add_embedding_length(config["hidden_size"])
    writer.add_block_count(n_layers)
    writer.add_feed_forward_length(config["intermediate_size"])
    writer.add_head_count(n_head)
    writer.add_head_count_kv(n_kv)
    writer.add_rope_dimension_count(head_dim)
    writer.add_key_length(head_dim)
    writer.add_value_length(head_dim)
    writer.add_rope_freq_base(float(rope.get("rope_theta", config.get("rope_theta", 10000.0))))
    writer.add_layer_norm_rms_eps(float(config.get("rms_norm_eps", 1e-6)))
    writer.add_vocab_size(len(tok_meta["tokens"]))
    writer.add_file_type(gguf.LlamaFileType.MOSTLY_F16 if dtype == "f16" else gguf.LlamaFileType.ALL_F32)

    writer.add_tokenizer_model(tok_meta["model"])
    writer.add_tokenizer_pre(tok_meta["pre"])
    writer.add_token_list(tok_meta["tokens"])
    writer.add_token_types(tok_meta["token_type"])
    writer.add_token_merges(tok_meta["merges"])
    writer.add_add_bos_token(tok_meta["add_bos_token"])
    for key, add in (("bos_token_id", writer.add_bos_token_id), ("eos_token_id", writer.add_eos_token_id),
                     ("padding_token_id", writer.add_pad_token_id), ("unknown_token_id", writer.add_unk_token_id)):
        if key in tok_meta:
            add(tok_meta[key])
    if chat_template:
        writer.add_chat_template(chat_template)

    names = gguf.get_tensor_name_map(gguf.MODEL_ARCH.LLAMA, n_layers)
    tied = config.get("tie_word_embeddings", False)
    for hf_name, tensor in state_dict.items():
        if tied and hf_name == "lm_head.weight":
            continue  # llama.cpp reuses token_embd for a tied output layer
        gguf_name = names.get_name(hf_name, try_suffixes=(".weight", ".bias"))
        if gguf_name is None:
            raise UnsupportedModel(f"no GGUF name for tensor {hf_name!r}")
        data = tensor.detach().float().cpu().numpy()
        if hf_name.endswith("q_proj.weight"):
            data = _permute(data, n_head)
        elif hf_name.endswith("k_proj.weight"):
            data = _permute(data, n_kv)
        # llama.cpp keeps 1-D tensors (norms) in f32.
        data = data.astype(np.float16 if dtype == "f16" and data.ndim > 1 else np.float32)
        writer.add_tensor(gguf_name, data)
    out.parent.mkdir(parents=True, exist_ok=True)
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()
    return out
