"""Child process of ``cai.local``: loads a local model once, then answers one JSON request a line
on stdin (``{system, user, max_tokens, seed}``) with one JSON line on stdout (``{text,
input_tokens, output_tokens}``) until stdin closes. Kept apart so the CLI never imports torch."""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path


def main() -> int:
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from levcustom.providers.local.models import resolve_base_model

    setup = json.loads(sys.stdin.readline())
    model_dir = resolve_base_model(setup["base_model"], setup["model_sources"], Path(setup["root"]))
    tokenizer = AutoTokenizer.from_pretrained(model_dir)
    device = "cuda" if torch.cuda.is_available() else "cpu"
    pad_id = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else tokenizer.eos_token_id
    model = AutoModelForCausalLM.from_pretrained(
        model_dir, dtype=torch.bfloat16 if device == "cuda" else torch.float32).to(device).eval()
    for line in sys.stdin:
        request = json.loads(line)
        messages = ([{"role": "system", "content": request["system"]}] if request["system"] else []) + \
            [{"role": "user", "content": request["user"]}]
        ids = tokenizer.apply_chat_template(messages, add_generation_prompt=True, return_tensors="pt",
                                            return_dict=True).to(device)
        torch.manual_seed(request["seed"])
        with torch.inference_mode():
            out = model.generate(**ids, max_new_tokens=request["max_tokens"], do_sample=True, temperature=1.0,
                                 top_p=1.0, pad_token_id=pad_id)
        new = out[0, ids["input_ids"].shape[1]:]
        text = tokenizer.decode(new, skip_special_tokens=True).strip()
        sys.stdout.write(json.dumps({"text": text, "input_tokens": int(ids["input_ids"].shape[1]),
                                     "output_tokens": int(new.shape[0])}) + "\n")
        sys.stdout.flush()
    return 0


if __name__ == "__main__":
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    sys.exit(main())
