"""Training throughput through levcustom vs a plain TRL script, same model/data/settings.

Runs both as child processes, interleaved (A B A B ...) so machine noise hits both, and
reports tokens/s medians, peak memory and the ratio levcustom / plain (target >= 0.95). On a
GPU it also reports MFU: trained tokens/s x FLOPs per token over the device's peak bf16 FLOPS,
where a LoRA step over a frozen base costs 4N FLOPs a token (forward 2N, input gradients 2N; no
weight gradients) plus attention; the 6N figure of full fine-tuning is given beside it.

    python benchmarks/train_throughput.py [--repeats 2] [--epochs 1] [--packing]
    python benchmarks/train_throughput.py --base-dir /tmp/models/smollm2-135m --device cuda \
        --batch 32 --rows 8000 --logging-steps 10 --label smollm2-135m
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from benchmarks.base_model import benchmark_base  # noqa: E402

PLAIN_TRL = r'''
import json, sys, time
import torch
from datasets import load_dataset
from peft import LoraConfig
from transformers import AutoModelForCausalLM, AutoTokenizer
from trl import SFTConfig, SFTTrainer

cfg = json.loads(sys.argv[1])
cuda = cfg["device"] == "cuda"
tok = AutoTokenizer.from_pretrained(cfg["model"])
model = AutoModelForCausalLM.from_pretrained(cfg["model"], dtype=torch.bfloat16 if cuda else torch.float32)
data = load_dataset("json", data_files={"train": cfg["train"]}).select_columns(["messages"])
data = data.map(lambda r: {"prompt": r["messages"][:-1], "completion": r["messages"][-1:]}, remove_columns=["messages"])
args = SFTConfig(output_dir=cfg["out"], num_train_epochs=cfg["epochs"], learning_rate=3e-4, lr_scheduler_type="cosine",
                 warmup_steps=0.03, per_device_train_batch_size=cfg["batch"], gradient_accumulation_steps=1,
                 max_length=cfg["max_length"], packing=cfg["packing"],
                 train_sampling_strategy="random" if cfg["packing"] else "group_by_length",
                 completion_only_loss=True, use_cpu=not cuda, bf16=cuda, fp16=False, seed=42, data_seed=42,
                 logging_steps=cfg["logging_steps"], save_strategy="no", report_to="none", disable_tqdm=True,
                 dataloader_num_workers=0, gradient_checkpointing=False)  # trl's default is True
trainer = SFTTrainer(model=model, args=args, train_dataset=data["train"], processing_class=tok,
                     peft_config=LoraConfig(r=8, lora_alpha=16, lora_dropout=0.05, target_modules="all-linear",
                                            task_type="CAUSAL_LM"))
if cuda:
    torch.cuda.reset_peak_memory_stats()
out = trainer.train()
tokens = [h["num_tokens"] for h in trainer.state.log_history if "num_tokens" in h][-1]
peak = torch.cuda.max_memory_allocated() / 2**30 if cuda else None
print(json.dumps({"tokens": tokens, "runtime": out.metrics["train_runtime"],
                  "tokens_per_second": tokens / out.metrics["train_runtime"], "peak_gib": peak}))
'''


@dataclass(frozen=True)
class Settings:
    """What both runs share: the same model, data and hyperparameters."""

    epochs: float
    max_length: int
    packing: bool
    device: str
    batch: int
    logging_steps: int

    @property
    def precision(self) -> str:
        return "bf16" if self.device == "cuda" else "fp32"


def run_plain(model: str, train: str, s: Settings, tmp: Path) -> dict:
    cfg = {"model": model, "train": train, "epochs": s.epochs, "max_length": s.max_length, "packing": s.packing,
           "device": s.device, "batch": s.batch, "logging_steps": s.logging_steps, "out": str(tmp / "plain")}
    proc = subprocess.run([sys.executable, "-c", PLAIN_TRL, json.dumps(cfg)], capture_output=True, text=True,
                          check=True, env={**os.environ, "HF_HUB_OFFLINE": "1"})
    return json.loads(proc.stdout.strip().splitlines()[-1])


def run_levcustom(base_model: str, sources: dict, dataset_dir: Path, s: Settings, tmp: Path, n: int) -> dict:
    from levcustom.config.models import HardwareConfig, LoraConfig, TrainingConfig
    from levcustom.providers.local.job import LocalTrainJob, write_json

    work = tmp / f"lev{n}"
    work.mkdir()
    job = LocalTrainJob(
        root=str(ROOT), base_model=base_model, model_sources=sources, method="sft", dataset_dir=str(dataset_dir),
        work_dir=str(work),
        training=TrainingConfig(epochs=s.epochs, learning_rate=3e-4, lr_scheduler_type="cosine", warmup_ratio=0.03,
                                weight_decay=0.0, max_length=s.max_length, seed=42, assistant_only_loss=False,
                                completion_only_loss=True,
                                lora=LoraConfig(r=8, alpha=16, dropout=0.05, target_modules="all-linear"),
                                logging_steps=s.logging_steps, save_steps=100_000),
        hardware=HardwareConfig(name=s.device, device=s.device, precision=s.precision, per_device_batch_size=s.batch,
                                gradient_accumulation_steps=1, quantization="none", packing=s.packing,
                                group_by_length=not s.packing, gradient_checkpointing=False, memory_gb=80,
                                tokens_per_second=85))
    write_json(work / "request.json", job.model_dump(mode="json"))
    subprocess.run([sys.executable, "-m", "levcustom.providers.local.train_child", str(work / "request.json")],
                   check=True, capture_output=True, cwd=ROOT, env={**os.environ, "HF_HUB_OFFLINE": "1"})
    m = json.loads((work / "result.json").read_text())["metrics"]
    return {"tokens": m["train_tokens"], "runtime": m["train_runtime"],
            "tokens_per_second": m["train_tokens_per_second"], "peak_gib": m.get("peak_gpu_memory_gib")}


def flops_per_token(config: dict, mean_tokens: float) -> tuple[float, float]:
    """(LoRA, full fine-tuning) training FLOPs per token of a Llama-shaped model: matmul parameters N
    (the LM head counted, embeddings not) cost 4N with a frozen base and 6N when all are trained;
    causal attention over a mean context of ``mean_tokens / 2`` adds 3 x 4 x layers x width x context."""
    from levcustom.providers.local.memory import ModelShape

    shape = ModelShape.from_config(config)
    n = shape.linear_params + config["hidden_size"] * config["vocab_size"]
    heads = config["num_attention_heads"] * config.get("head_dim",
                                                       config["hidden_size"] // config["num_attention_heads"])
    attention = 3 * 4 * config["num_hidden_layers"] * heads * mean_tokens / 2
    return 4 * n + attention, 6 * n + attention


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--repeats", type=int, default=2)
    ap.add_argument("--epochs", type=float, default=1.0)
    ap.add_argument("--max-length", type=int, default=160)
    ap.add_argument("--packing", action="store_true")
    ap.add_argument("--device", choices=["cpu", "cuda"], default="cpu")
    ap.add_argument("--batch", type=int, default=8, help="per-device batch size")
    ap.add_argument("--logging-steps", type=int, default=1)
    ap.add_argument("--rows", type=int, default=0, help="repeat the demo's training rows up to this many")
    ap.add_argument("--base-dir", help="a local model folder instead of the packaged SmolLM2-135M-Instruct")
    ap.add_argument("--peak-tflops", type=float, default=989.0, help="the device's dense bf16 peak (H100 SXM: 989)")
    ap.add_argument("--label", default="smollm2-135m")
    args = ap.parse_args()
    settings = Settings(args.epochs, args.max_length, args.packing, args.device, args.batch, args.logging_steps)

    from levcustom.datasets.build import build_dataset
    from levcustom.providers.local.models import resolve_base_model
    from levcustom.spec.schema import DatasetSpec
    from levcustom.workspace import Workspace

    base, sources = benchmark_base(args.base_dir)
    model_dir = resolve_base_model(base, sources, ROOT)  # converts once, outside the timings
    rows = (ROOT / "specs/data/routing-train.jsonl").read_text().splitlines()
    with tempfile.TemporaryDirectory() as t:
        tmp = Path(t)
        ws = Workspace(tmp)
        copies = max(1, -(-args.rows // len(rows)))
        (tmp / "d.jsonl").write_text("".join(line + "\n" for line in rows * copies))
        built = build_dataset(ws, DatasetSpec.model_validate(
            {"sources": [{"type": "jsonl", "path": "d.jsonl"}], "split": {"validation": 0.0},
             "curation": {"dedupe": "none"}}), 1)
        plain, lev = [], []
        for i in range(args.repeats):
            t0 = time.monotonic()
            plain.append(run_plain(model_dir, str(built.artifact / "train.jsonl"), settings, tmp))
            lev.append(run_levcustom(base, sources, built.artifact, settings, tmp, i))
            print(f"round {i + 1}: plain {plain[-1]['tokens_per_second']:.1f} tok/s, "
                  f"levcustom {lev[-1]['tokens_per_second']:.1f} tok/s ({time.monotonic() - t0:.0f} s)", flush=True)
    p = statistics.median(r["tokens_per_second"] for r in plain)
    lv = statistics.median(r["tokens_per_second"] for r in lev)
    result = {"model": args.label, "device": args.device, "examples": built.train_rows, "epochs": args.epochs,
              "batch": args.batch, "packing": args.packing, "plain_trl_tokens_per_s": p, "levcustom_tokens_per_s": lv,
              "ratio": lv / p, "runs": {"plain": plain, "levcustom": lev}}
    line = f"plain TRL {p:.1f} tok/s | levcustom {lv:.1f} tok/s | ratio {lv / p:.3f} (target >= 0.95)"
    if args.device == "cuda":
        config = json.loads((Path(model_dir) / "config.json").read_text())
        mean_tokens = statistics.mean(r["tokens"] for r in plain) / built.train_rows / args.epochs
        lora, full = flops_per_token(config, mean_tokens)
        peak_flops = args.peak_tflops * 1e12
        result.update(peak_gib={"plain": max(r["peak_gib"] for r in plain),
                                "levcustom": max(r["peak_gib"] for r in lev)},
                      mfu_lora=lv * lora / peak_flops, mfu_6n=lv * full / peak_flops)
        line += (f" | peak {result['peak_gib']['levcustom']:.2f} GiB (plain {result['peak_gib']['plain']:.2f})"
                 f" | MFU {result['mfu_lora']:.1%} (4N), {result['mfu_6n']:.1%} (6N)")
    out = ROOT / "benchmarks" / "_work"
    out.mkdir(parents=True, exist_ok=True)
    name = f"train_throughput_{args.device}_{args.label}{'_packing' if args.packing else ''}.json"
    (out / name).write_text(json.dumps(result, indent=1))
    print("\n" + line)


if __name__ == "__main__":
    main()
