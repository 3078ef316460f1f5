"""Child process: LoRA / QLoRA training with peft + trl (``SFTTrainer`` for sft, ``DPOTrainer`` for dpo).
Run as ``python -m levcustom.providers.local.train_child <work_dir>/request.json`` (or under
``accelerate launch`` for several processes).

Kept in its own process so the CLI never imports torch, and so a crash or kill here leaves
checkpoints that the next run resumes from.
"""

from __future__ import annotations

import json
import os
import shutil
import sys
import time
import traceback
from pathlib import Path

from levcustom.providers.local.job import LocalTrainJob, append_event, write_json
from levcustom.providers.local.models import resolve_base_model

DTYPES = {"fp32": "float32", "fp16": "float16", "bf16": "bfloat16"}
DEFAULT_DPO_BETA = 0.1  # trl's default, used when training.beta is 'auto'


def _is_main_process() -> bool:
    """Under accelerate/torchrun only rank 0 writes the job's files."""
    return int(os.environ.get("RANK", "0")) == 0


def load_model(job: LocalTrainJob):
    """The base model at the profile's precision, k-bit quantized for QLoRA, and its tokenizer."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer, BitsAndBytesConfig

    hw = job.hardware
    model_dir = resolve_base_model(job.base_model, job.model_sources, Path(job.root))
    tokenizer = AutoTokenizer.from_pretrained(model_dir)
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token
    dtype = getattr(torch, DTYPES[hw.precision])
    quant = None
    if hw.quantization == "nf4":
        quant = BitsAndBytesConfig(load_in_4bit=True, bnb_4bit_quant_type="nf4", bnb_4bit_use_double_quant=True,
                                   bnb_4bit_compute_dtype=dtype)
    elif hw.quantization == "int8":
        quant = BitsAndBytesConfig(load_in_8bit=True)
    model = AutoModelForCausalLM.from_pretrained(model_dir, dtype=dtype, quantization_config=quant)
    if quant is not None:
        from peft import prepare_model_for_kbit_training

        model = prepare_model_for_kbit_training(model, use_gradient_checkpointing=hw.gradient_checkpointing)
    return model, tokenizer


def _adapter(job: LocalTrainJob, model):
    """(model, peft_config): a fresh LoRA config, or the previous adapter loaded trainable (continued training)."""
    from peft import LoraConfig, PeftModel

    t = job.training
    if t.init_adapter:
        path = Path(job.root) / t.init_adapter
        return PeftModel.from_pretrained(model, str(path), is_trainable=True), None
    return model, LoraConfig(r=t.lora.r, lora_alpha=t.lora.alpha, lora_dropout=t.lora.dropout,
                             target_modules=t.lora.target_modules, task_type="CAUSAL_LM")


def _common_args(job: LocalTrainJob) -> dict:
    """TrainingArguments shared by SFT and DPO: schedule, batch, precision, checkpoints."""
    t, hw = job.training, job.hardware
    return dict(
        output_dir=str(Path(job.work_dir) / "checkpoints"),
        num_train_epochs=t.epochs,
        learning_rate=t.learning_rate,
        lr_scheduler_type=t.lr_scheduler_type,
        warmup_steps=t.warmup_ratio,  # transformers 5: a float < 1 is a ratio of total steps
        weight_decay=t.weight_decay,
        per_device_train_batch_size=hw.per_device_batch_size,
        per_device_eval_batch_size=hw.per_device_batch_size,
        gradient_accumulation_steps=hw.gradient_accumulation_steps,
        gradient_checkpointing=hw.gradient_checkpointing,
        max_length=t.max_length,
        use_cpu=hw.device == "cpu",
        bf16=hw.precision == "bf16",
        fp16=hw.precision == "fp16",
        seed=t.seed,
        data_seed=t.seed,
        logging_steps=t.logging_steps,
        save_strategy="steps",
        save_steps=t.save_steps,
        save_total_limit=2,
        eval_strategy="no",
        report_to="none",
        dataloader_num_workers=0,
        disable_tqdm=True,
    )


def _splits(job: LocalTrainJob, columns: list[str]):
    from datasets import load_dataset

    data_dir = Path(job.dataset_dir)
    files = {"train": str(data_dir / "train.jsonl")}
    if (data_dir / "validation.jsonl").stat().st_size:
        files["validation"] = str(data_dir / "validation.jsonl")
    return load_dataset("json", data_files=files).select_columns(columns)


def build_trainer(job: LocalTrainJob, callbacks=()):
    """The trl trainer for a job: exactly what a plain TRL script would build (no extra work)."""
    model, tokenizer = load_model(job)
    model, peft_config = _adapter(job, model)
    t, hw = job.training, job.hardware
    if job.method == "dpo":
        from trl import DPOConfig, DPOTrainer

        data = _splits(job, ["prompt", "chosen", "rejected"])
        beta = DEFAULT_DPO_BETA if t.beta == "auto" else t.beta
        args = DPOConfig(**_common_args(job), beta=beta)
        # With a peft adapter and no ref_model, the reference is the same model with the adapter disabled.
        return DPOTrainer(model=model, args=args, train_dataset=data["train"], eval_dataset=data.get("validation"),
                          processing_class=tokenizer, peft_config=peft_config, callbacks=list(callbacks))
    from trl import SFTConfig, SFTTrainer

    data = _splits(job, ["messages"])
    if t.completion_only_loss:
        # Conversational prompt-completion rows: trl computes the loss on the final answer only.
        data = data.map(lambda row: {"prompt": row["messages"][:-1], "completion": row["messages"][-1:]},
                        remove_columns=["messages"])
    args = SFTConfig(
        **_common_args(job),
        packing=hw.packing,
        train_sampling_strategy="group_by_length" if hw.group_by_length and not hw.packing else "random",
        assistant_only_loss=t.assistant_only_loss,
        completion_only_loss=t.completion_only_loss,
    )
    return SFTTrainer(model=model, args=args, train_dataset=data["train"], eval_dataset=data.get("validation"),
                      processing_class=tokenizer, peft_config=peft_config, callbacks=list(callbacks))


def _progress_callback(work_dir: Path):
    from transformers import TrainerCallback

    class Progress(TrainerCallback):
        """Appends one event per log step: step, loss, tokens/s (read live by the parent)."""

        def __init__(self):
            self.start = time.monotonic()
            self.start_tokens = None
            self.tokens = 0

        def on_log(self, args, state, control, logs=None, **kwargs):
            if not state.is_world_process_zero:
                return
            logs = logs or {}
            tokens = logs.get("num_tokens") or self.tokens  # trl's running count of trained tokens
            self.tokens = tokens
            if self.start_tokens is None:
                self.start_tokens, self.start = tokens, time.monotonic()
            elapsed = time.monotonic() - self.start
            event = {"step": state.global_step, "max_steps": state.max_steps, "epoch": state.epoch,
                     "tokens": tokens}
            if "loss" in logs:
                event["loss"] = logs["loss"]
            if elapsed > 0 and tokens > self.start_tokens:
                event["tokens_per_s"] = (tokens - self.start_tokens) / elapsed
            append_event(work_dir, event)

    return Progress()


def last_complete_checkpoint(ckpt_dir: Path, prune: bool) -> str | None:
    """The newest checkpoint that was saved completely. The Trainer writes trainer_state.json last, so
    a run killed while saving leaves a newer folder without it (or with it truncated): skip and
    remove such folders rather than fail to resume."""
    if not ckpt_dir.is_dir():
        return None
    found = sorted((p for p in ckpt_dir.glob("checkpoint-*") if p.name.split("-")[-1].isdigit()),
                   key=lambda p: int(p.name.split("-")[-1]), reverse=True)
    for folder in found:
        try:
            json.loads((folder / "trainer_state.json").read_text())
            return str(folder)
        except (OSError, ValueError):
            if prune:  # one process (rank 0) cleans up; the others only skip
                shutil.rmtree(folder, ignore_errors=True)
    return None


def _peak_memory(cuda: bool) -> dict[str, float]:
    """The measured peak, to set against the plan's estimate: the CUDA allocator's peak on a GPU,
    else the process's peak resident memory (which includes the interpreter and libraries)."""
    if cuda:
        import torch

        return {"peak_gpu_memory_gib": torch.cuda.max_memory_allocated() / 2**30}
    import resource

    return {"peak_rss_gib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20}


def run(job: LocalTrainJob) -> dict:
    work_dir = Path(job.work_dir)
    progress = _progress_callback(work_dir)
    trainer = build_trainer(job, callbacks=[progress])
    resume = last_complete_checkpoint(Path(trainer.args.output_dir), prune=_is_main_process())
    if _is_main_process():
        append_event(work_dir, {"status": "running", "resumed_from": resume})
    cuda = job.hardware.device == "cuda"
    if cuda:
        import torch

        torch.cuda.reset_peak_memory_stats()
    out = trainer.train(resume_from_checkpoint=resume)
    metrics = {k: float(v) for k, v in out.metrics.items() if isinstance(v, (int, float))}
    metrics["train_loss"] = float(out.training_loss)
    metrics.update(_peak_memory(cuda))
    if trainer.eval_dataset is not None:
        metrics.update({k: float(v) for k, v in trainer.evaluate().items() if isinstance(v, (int, float))})
    if progress.tokens and metrics.get("train_runtime"):
        metrics["train_tokens"] = float(progress.tokens)
        metrics["train_tokens_per_second"] = progress.tokens / metrics["train_runtime"]
    adapter = work_dir / "adapter"
    trainer.save_model(str(adapter))  # gathers sharded (FSDP / ZeRO-3) weights; writes on the main process
    if not _is_main_process():
        return {}
    # Trainer also pickles its arguments there: not part of the adapter (and no pickle in the store).
    (adapter / "training_args.bin").unlink(missing_ok=True)
    trainer.processing_class.save_pretrained(adapter)
    # What actually ran, for the job's record: the trainer class and how many linears were k-bit.
    quantized = sum(type(m).__module__.startswith("bitsandbytes") and type(m).__name__ in ("Linear4bit", "Linear8bitLt")
                    for m in trainer.model.modules())
    out = {"adapter": str(adapter), "metrics": metrics, "resumed_from": resume,
           "trainer": type(trainer).__name__, "quantized_linear_layers": quantized}
    if job.training.merge:
        from levcustom.providers.local.merge import save_merged

        model_dir = resolve_base_model(job.base_model, job.model_sources, Path(job.root))
        out["merged"] = str(save_merged(model_dir, adapter, work_dir / "merged", job.hardware.precision))
    return out


def main(argv: list[str]) -> int:
    request = Path(argv[1])
    job = LocalTrainJob.model_validate_json(request.read_text())
    work_dir = Path(job.work_dir)
    if "LOCAL_RANK" not in os.environ:  # under a launcher, the parent records the launcher's pid
        (work_dir / "pid").write_text(str(os.getpid()))
    try:
        result = run(job)
    except Exception as exc:  # report the cause to the parent, then fail
        write_json(work_dir / "error.json", {"error": f"{type(exc).__name__}: {exc}",
                                             "traceback": traceback.format_exc()})
        return 1
    if _is_main_process():
        write_json(work_dir / "result.json", result)
    return 0


if __name__ == "__main__":
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    sys.exit(main(sys.argv))
