"""How a training child is started: one process, ``accelerate launch`` for several (DDP, FSDP,
DeepSpeed ZeRO), and optionally as a Slurm job through submitit.

``accelerate_config`` is a pure function of the hardware profile; the YAML it becomes is what
``accelerate config`` would have written for the same choices.
"""

from __future__ import annotations

import contextlib
import os
import signal
import sys
from pathlib import Path
from typing import Any

from levcustom.config.models import HardwareConfig
from levcustom.errors import ProviderError

CHILD_MODULE = "levcustom.providers.local.train_child"
_MIXED = {"fp32": "no", "fp16": "fp16", "bf16": "bf16"}


def needs_accelerate(hw: HardwareConfig) -> bool:
    return hw.distributed.num_processes > 1 or hw.distributed.strategy != "none"


def accelerate_config(hw: HardwareConfig) -> dict[str, Any]:
    """An accelerate config file (as a dict) for the profile's distributed strategy."""
    dist = hw.distributed
    cpu = hw.device == "cpu"
    config: dict[str, Any] = {
        "compute_environment": "LOCAL_MACHINE",
        "debug": False,
        "machine_rank": 0,
        "num_machines": hw.slurm.nodes if hw.launcher == "slurm" else 1,
        "num_processes": dist.num_processes,
        "mixed_precision": _MIXED[hw.precision],
        "use_cpu": cpu,
        "main_training_function": "main",
        "rdzv_backend": "static",
        "same_network": True,
        "downcast_bf16": "no",
    }
    if dist.strategy in ("none", "ddp"):
        config["distributed_type"] = ("MULTI_CPU" if cpu else "MULTI_GPU") if dist.num_processes > 1 else "NO"
    elif dist.strategy == "fsdp":
        config["distributed_type"] = "FSDP"
        config["fsdp_config"] = {
            "fsdp_version": 2,
            "fsdp_auto_wrap_policy": "TRANSFORMER_BASED_WRAP",
            "fsdp_reshard_after_forward": True,  # FULL_SHARD
            "fsdp_state_dict_type": "FULL_STATE_DICT",  # the adapter is saved whole by the main process
            "fsdp_cpu_ram_efficient_loading": True,
            "fsdp_offload_params": False,
            "fsdp_activation_checkpointing": hw.gradient_checkpointing,
        }
    else:
        stage = 3 if dist.strategy == "deepspeed-zero3" else 2
        config["distributed_type"] = "DEEPSPEED"
        config["deepspeed_config"] = {
            "zero_stage": stage,
            "gradient_accumulation_steps": hw.gradient_accumulation_steps,
            "offload_optimizer_device": "none",
            "offload_param_device": "none",
            "zero3_init_flag": stage == 3,
            "zero3_save_16bit_model": stage == 3,
        }
    if not cpu:
        config["gpu_ids"] = "all"
    return config


def train_command(hw: HardwareConfig, request: Path) -> list[str]:
    """The command that trains ``request``; writes ``accelerate.yaml`` beside it when several processes run.

    DDP on CPU runs under torchrun (gloo): accelerate's multi-CPU launcher needs MPI.
    """
    if not needs_accelerate(hw):
        return [sys.executable, "-m", CHILD_MODULE, str(request)]
    if hw.device == "cpu":
        return [sys.executable, "-m", "torch.distributed.run", "--standalone",
                f"--nproc_per_node={hw.distributed.num_processes}", "--module", CHILD_MODULE, str(request)]
    import yaml

    config_file = request.parent / "accelerate.yaml"
    config_file.write_text(yaml.safe_dump(accelerate_config(hw), sort_keys=True))
    return [sys.executable, "-m", "accelerate.commands.launch", "--config_file", str(config_file),
            "--module", CHILD_MODULE, str(request)]


def slurm_parameters(hw: HardwareConfig) -> dict[str, Any]:
    """sbatch settings for the profile, in submitit's Slurm names (one task per node: accelerate spawns the rest)."""
    s = hw.slurm
    params: dict[str, Any] = {"time": s.timeout_min, "nodes": s.nodes, "ntasks_per_node": 1,
                              "cpus_per_task": s.cpus_per_task, "partition": s.partition, "account": s.account,
                              "gpus_per_node": s.gpus_per_node or None,
                              "mem": f"{s.mem_gb:g}GB" if s.mem_gb else None}
    return {k: v for k, v in params.items() if v is not None}


def submitit_executor(hw: HardwareConfig, folder: Path):
    """A submitit executor for the profile: Slurm, or submitit's local executor (``launcher: submitit-local``)."""
    import submitit

    if hw.launcher == "slurm":
        try:
            executor = submitit.SlurmExecutor(folder=str(folder))
        except RuntimeError as exc:  # no srun/sbatch on this machine
            raise ProviderError(f"hardware {hw.name!r} submits to Slurm: {exc}") from None
        executor.update_parameters(**slurm_parameters(hw))
        return executor
    executor = submitit.LocalExecutor(folder=str(folder))
    executor.update_parameters(timeout_min=hw.slurm.timeout_min)
    return executor


def submit_job(hw: HardwareConfig, command: list[str], cwd: Path, env: dict[str, str], folder: Path) -> str:
    """Submit ``command`` through submitit; returns the scheduler's job id."""
    import submitit

    job = submitit_executor(hw, folder).submit(submitit.helpers.CommandFunction(command, cwd=str(cwd), env=env,
                                                                                 verbose=False))
    return str(job.job_id)


def job_state(hw: HardwareConfig, folder: Path, job_id: str) -> str:
    """submitit's view of a job: ``RUNNING``, ``PENDING``, ``COMPLETED``, ``FAILED``, ... (``UNKNOWN`` if lost)."""
    import submitit

    if hw.launcher == "slurm":
        return submitit.SlurmJob(folder=str(folder), job_id=job_id).state
    # The local executor's job id is the pid of its runner process.
    try:
        status = Path(f"/proc/{int(job_id)}/status").read_text()
    except (OSError, ValueError):
        return "FINISHED"
    return "FINISHED" if "\nState:\tZ" in status else "RUNNING"


def cancel_job(hw: HardwareConfig, folder: Path, job_id: str) -> None:
    """Stop a submitted job: ``scancel`` on Slurm, SIGTERM to the local executor's runner."""
    if hw.launcher == "slurm":
        import submitit

        submitit.SlurmJob(folder=str(folder), job_id=job_id).cancel()
        return
    with contextlib.suppress(OSError, ValueError):
        os.kill(int(job_id), signal.SIGTERM)
