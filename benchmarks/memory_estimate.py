"""The plan's memory estimate vs the measured peak of levcustom's training child, same settings.

Trains SmolLM2-135M-Instruct for one short epoch (rows long enough to fill ``max_length``, so
the estimate's worst case is what runs) under several settings, and reports estimate /
measured for each (target: within 15%).

Measured peak, on CPU: the child's peak resident memory minus its resident memory after
importing torch/transformers/trl/peft (before the model loads), with glibc's mmap threshold
pinned (``MALLOC_MMAP_THRESHOLD_=65536``) so freed tensors go back to the OS and the peak is
the live peak, not allocator caching. On CUDA: ``torch.cuda.max_memory_allocated`` plus the
estimate's runtime allowance (not run here: no GPU).

    python benchmarks/memory_estimate.py [--quick]
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from benchmarks.base_model import benchmark_base  # noqa: E402

MEASURE = r'''
import json, os, resource, sys
from pathlib import Path

def rss():
    return int(open("/proc/self/statm").read().split()[1]) * os.sysconf("SC_PAGE_SIZE")

import datasets, peft, torch, transformers, trl  # imported before the baseline: not training memory
from levcustom.providers.local import train_child
from levcustom.providers.local.job import LocalTrainJob

job = LocalTrainJob.model_validate_json(Path(sys.argv[1]).read_text())
baseline = rss()
if job.hardware.device == "cuda":
    torch.cuda.reset_peak_memory_stats()
train_child.run(job)
if job.hardware.device == "cuda":
    peak = torch.cuda.max_memory_allocated()
else:
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024 - baseline
print(json.dumps({"peak": peak}))
'''

SETTINGS = [  # (label, per-device batch, max_length, gradient checkpointing, LoRA dropout, quantization)
    ("batch 2, dropout 0.05", 2, 256, False, 0.05, "none"),
    ("batch 4, dropout 0.05", 4, 256, False, 0.05, "none"),
    ("batch 2, no dropout", 2, 256, False, 0.0, "none"),
    ("batch 2, gradient checkpointing", 2, 256, True, 0.05, "none"),
    ("batch 2, QLoRA nf4", 2, 256, False, 0.05, "nf4"),
]


def run_one(tmp: Path, base: str, sources: dict, label: str, batch: int, length: int, checkpointing: bool,
            dropout: float, quant: str, device: str) -> dict:
    from levcustom.config.models import HardwareConfig, LoraConfig, TrainingConfig
    from levcustom.providers.local.job import LocalTrainJob, write_json
    from levcustom.providers.local.memory import ModelShape, estimate_memory
    from levcustom.providers.local.modelinfo import find_model_config

    work = Path(tempfile.mkdtemp(dir=tmp))
    data = work / "data"
    data.mkdir()
    # Rows longer than max_length: truncation makes every row exactly max_length tokens.
    rows = [{"messages": [{"role": "user", "content": " ".join(f"word{j} of question {i}" for j in range(length))},
                          {"role": "assistant", "content": "fine " * length}]} for i in range(2 * batch)]
    (data / "train.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    (data / "validation.jsonl").write_text("")
    training = TrainingConfig(epochs=1, learning_rate=1e-4, lr_scheduler_type="constant", warmup_ratio=0.0,
                              weight_decay=0.0, max_length=length, seed=1, assistant_only_loss=False,
                              completion_only_loss=False,
                              lora=LoraConfig(r=8, alpha=16, dropout=dropout, target_modules="all-linear"),
                              logging_steps=1, save_steps=10_000)
    hardware = HardwareConfig(name=device, device=device, precision="fp32" if device == "cpu" else "bf16",
                              per_device_batch_size=batch, gradient_accumulation_steps=1, quantization=quant,
                              packing=False, group_by_length=False, gradient_checkpointing=checkpointing,
                              memory_gb=80, tokens_per_second=1)
    job = LocalTrainJob(root=str(ROOT), base_model=base, model_sources=sources, method="sft", dataset_dir=str(data),
                        work_dir=str(work), training=training, hardware=hardware)
    write_json(work / "request.json", job.model_dump(mode="json"))
    path = os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")]))
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "MALLOC_MMAP_THRESHOLD_": "65536", "PYTHONPATH": path}
    proc = subprocess.run([sys.executable, "-c", MEASURE, str(work / "request.json")], capture_output=True, text=True,
                          env=env, check=True)
    measured = json.loads(proc.stdout.strip().splitlines()[-1])["peak"]
    shape = ModelShape.from_config(find_model_config(base, sources, ROOT))
    est = estimate_memory(shape, training, hardware, per_device_batch=batch)
    if device == "cuda":
        measured += est.overhead  # the allocator's peak does not include the CUDA context
    return {"setting": label, "measured_gib": measured / 2**30, "estimate_gib": est.total / 2**30,
            "ratio": est.total / measured, "estimate": est.describe()}


# A GPU holds far larger batches: the same settings at 8x the batch and twice the length.
GPU_SETTINGS = [(label.replace(f"batch {b},", f"batch {8 * b},"), 8 * b, 2 * n, *rest)
                for label, b, n, *rest in SETTINGS]


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--quick", action="store_true", help="the first two settings only")
    ap.add_argument("--base-dir", help="a local model folder instead of the packaged SmolLM2-135M-Instruct")
    ap.add_argument("--label", default="smollm2-135m")
    args = ap.parse_args()
    from levcustom.providers.local.models import resolve_base_model

    base, sources = benchmark_base(args.base_dir)
    resolve_base_model(base, sources, ROOT)  # converts once, outside the measurements
    import torch

    device = "cuda" if torch.cuda.is_available() else "cpu"
    settings = GPU_SETTINGS if device == "cuda" else SETTINGS
    results = []
    with tempfile.TemporaryDirectory() as t:
        for setting in settings[:2] if args.quick else settings:
            if setting[5] != "none" and importlib.util.find_spec("bitsandbytes") is None:
                print(f"{setting[0]}: skipped (bitsandbytes is not installed)")
                continue
            r = run_one(Path(t), base, sources, *setting, device=device)
            results.append(r)
            print(f"{r['setting']:<34} measured {r['measured_gib']:.3f} GiB  estimate {r['estimate_gib']:.3f} GiB"
                  f"  estimate/measured {r['ratio']:.3f}", flush=True)
    out = ROOT / "benchmarks" / "_work"
    out.mkdir(parents=True, exist_ok=True)
    report = {"device": device, "model": args.label, "results": results}
    (out / f"memory_estimate_{device}_{args.label}.json").write_text(json.dumps(report, indent=1))
    worst = max(abs(r["ratio"] - 1) for r in results)
    print(f"\nworst deviation {worst:.1%} (target <= 15%) on {device}")


if __name__ == "__main__":
    main()
