"""Child process: greedy answers of the base model and of LoRA adapters to chat prompts.
Run as ``python -m levcustom.providers.local.generate_child <request.json>``.

The base weights are loaded once; each adapter is applied on top in turn, so scoring
base vs tuned costs one model load.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

from levcustom.providers.local.job import LocalGenerateJob, write_json
from levcustom.providers.local.models import resolve_base_model
from levcustom.providers.local.train_child import DTYPES


def generate(job: LocalGenerateJob) -> list[list[str]]:
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    torch.manual_seed(0)
    model_dir = resolve_base_model(job.base_model, job.model_sources, Path(job.root))
    tokenizer = AutoTokenizer.from_pretrained(model_dir, padding_side="left")
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token
    base = AutoModelForCausalLM.from_pretrained(model_dir, dtype=getattr(torch, DTYPES[job.hardware.precision]))
    device = "cuda" if job.hardware.device == "cuda" and torch.cuda.is_available() else "cpu"
    base.to(device).eval()
    texts = [tokenizer.apply_chat_template(p, tokenize=False, add_generation_prompt=True) for p in job.prompts]
    outputs = []
    peft_model = None
    for i, adapter in enumerate(job.adapters):
        model = peft_model or base  # LoRA layers are injected in place: base runs with them disabled
        if adapter is not None:
            from peft import PeftModel

            name = f"a{i}"
            path = str(Path(job.root) / adapter)
            if peft_model is None:
                peft_model = PeftModel.from_pretrained(base, path, adapter_name=name)
            else:
                peft_model.load_adapter(path, adapter_name=name)
            peft_model.set_adapter(name)
            model = peft_model
        base_only = adapter is None and peft_model is not None
        outputs.append(_answers(model, tokenizer, texts, job, device, base_only=base_only))
    return outputs


def _answers(model, tokenizer, texts, job: LocalGenerateJob, device, base_only) -> list[str]:
    import contextlib

    import torch

    answers = []
    # After an adapter was attached, the base model is reached by disabling it.
    ctx = model.disable_adapter() if base_only else contextlib.nullcontext()
    with ctx, torch.inference_mode():
        for start in range(0, len(texts), job.eval.batch_size):
            batch = tokenizer(texts[start:start + job.eval.batch_size], return_tensors="pt", padding=True,
                              add_special_tokens=False).to(device)
            out = model.generate(**batch, max_new_tokens=job.eval.max_new_tokens, do_sample=False,
                                 pad_token_id=tokenizer.pad_token_id)
            new = out[:, batch["input_ids"].shape[1]:]
            answers.extend(t.strip() for t in tokenizer.batch_decode(new, skip_special_tokens=True))
    return answers


def main(argv: list[str]) -> int:
    job = LocalGenerateJob.model_validate_json(Path(argv[1]).read_text())
    write_json(Path(job.output), {"outputs": generate(job)})
    return 0


if __name__ == "__main__":
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    sys.exit(main(sys.argv))
