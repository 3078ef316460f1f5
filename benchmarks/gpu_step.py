"""The floor under the trainers' step time on a GPU: forward + backward + optimizer step of a
LoRA model in a bare PyTorch loop (no Trainer, no data loading), for the same model, batch and
length as train_throughput.py. Where the trainers' tokens/s is far below this, the time goes to
per-step overhead, not to the GPU's arithmetic.

    python benchmarks/gpu_step.py --model /tmp/models/smollm2-135m --batch 64 --length 160
"""

from __future__ import annotations

import argparse
import json
import time


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--model", required=True)
    ap.add_argument("--batch", type=int, default=64)
    ap.add_argument("--length", type=int, default=160)
    ap.add_argument("--steps", type=int, default=20)
    args = ap.parse_args()
    import torch
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM

    model = AutoModelForCausalLM.from_pretrained(args.model, dtype=torch.bfloat16).cuda()
    model = get_peft_model(model, LoraConfig(r=8, lora_alpha=16, lora_dropout=0.05, target_modules="all-linear",
                                             task_type="CAUSAL_LM"))
    opt = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=1e-4)
    ids = torch.randint(0, model.config.vocab_size, (args.batch, args.length), device="cuda")

    def step() -> None:
        loss = model(input_ids=ids, labels=ids).loss
        loss.backward()
        opt.step()
        opt.zero_grad(set_to_none=True)

    for _ in range(3):
        step()
    torch.cuda.synchronize()
    start = time.perf_counter()
    for _ in range(args.steps):
        step()
    torch.cuda.synchronize()
    seconds = (time.perf_counter() - start) / args.steps
    tokens = args.batch * args.length
    print(json.dumps({"model": args.model, "batch": args.batch, "length": args.length, "ms_per_step": seconds * 1e3,
                      "tokens_per_s": tokens / seconds}))


if __name__ == "__main__":
    main()
