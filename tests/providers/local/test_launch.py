"""Launch configs: accelerate configs per strategy (read back by accelerate itself), and trainings
started through accelerate (2 CPU processes, DDP) and through submitit's local executor."""

from __future__ import annotations

import json

import pytest
import yaml

from conftest import PROJECT
from levcustom.config.models import HardwareConfig
from levcustom.providers.local.launch import accelerate_config, slurm_parameters, train_command


def profile(**kw) -> HardwareConfig:
    base = dict(name="gpus", device="cuda", precision="bf16", per_device_batch_size=4, gradient_accumulation_steps=2,
                quantization="none", packing=True, group_by_length=False, gradient_checkpointing=True,
                memory_gb=80, tokens_per_second=1000)
    return HardwareConfig(**{**base, **kw})


@pytest.mark.parametrize(("strategy", "distributed_type"), [
    ("ddp", "MULTI_GPU"), ("fsdp", "FSDP"), ("deepspeed-zero2", "DEEPSPEED"), ("deepspeed-zero3", "DEEPSPEED")])
def test_accelerate_reads_the_generated_configs(tmp_path, strategy, distributed_type):
    from accelerate.commands.config.config_args import load_config_from_file

    hw = profile(distributed={"strategy": strategy, "num_processes": 8})
    command = train_command(hw, tmp_path / "request.json")
    assert command[1:5] == ["-m", "accelerate.commands.launch", "--config_file", str(tmp_path / "accelerate.yaml")]
    assert command[-3:] == ["--module", "levcustom.providers.local.train_child", str(tmp_path / "request.json")]
    loaded = load_config_from_file(str(tmp_path / "accelerate.yaml"))
    assert str(loaded.distributed_type).endswith(distributed_type) and loaded.num_processes == 8
    assert str(loaded.mixed_precision).endswith("bf16")
    if strategy == "fsdp":
        assert loaded.fsdp_config["fsdp_version"] == 2 and loaded.fsdp_config["fsdp_activation_checkpointing"]
    if strategy.startswith("deepspeed"):
        stage = int(strategy[-1])
        assert loaded.deepspeed_config["zero_stage"] == stage
        assert loaded.deepspeed_config["gradient_accumulation_steps"] == 2
        assert loaded.deepspeed_config["zero3_init_flag"] is (stage == 3)


def test_single_process_needs_no_launcher_and_cpu_ddp_uses_torchrun(tmp_path):
    command = train_command(profile(), tmp_path / "request.json")
    assert command[1:] == ["-m", "levcustom.providers.local.train_child", str(tmp_path / "request.json")]
    assert not (tmp_path / "accelerate.yaml").exists()
    cpu = profile(device="cpu", precision="fp32", distributed={"strategy": "ddp", "num_processes": 2})
    assert train_command(cpu, tmp_path / "request.json")[1:5] == ["-m", "torch.distributed.run", "--standalone",
                                                                   "--nproc_per_node=2"]
    assert accelerate_config(cpu)["distributed_type"] == "MULTI_CPU"


def test_slurm_profile_becomes_an_sbatch_script(tmp_path):
    from submitit.slurm.slurm import _make_sbatch_string

    with open(PROJECT / "conf" / "hardware" / "slurm-a100x4.yaml") as f:
        hw = HardwareConfig.model_validate(yaml.safe_load(f))
    hw = hw.model_copy(update={"slurm": hw.slurm.model_copy(update={"partition": "gpu", "account": "ml",
                                                                      "mem_gb": 256})})
    script = _make_sbatch_string(command="python -m x", folder=tmp_path, **slurm_parameters(hw))
    for line in ("#SBATCH --partition=gpu", "#SBATCH --account=ml", "#SBATCH --gpus-per-node=4",
                 "#SBATCH --time=240", "#SBATCH --nodes=1", "#SBATCH --ntasks-per-node=1",
                 "#SBATCH --cpus-per-task=32", "#SBATCH --mem=256GB"):
        assert line in script.splitlines()
    # The node runs accelerate for the profile's 4 processes.
    assert train_command(hw, tmp_path / "request.json")[2] == "accelerate.commands.launch"


@pytest.mark.slow
def test_ddp_on_two_cpu_processes(repo):
    repo.edit("specs/tiny.yaml", '["hardware.per_device_batch_size=8"]',
              '["hardware.per_device_batch_size=4", "hardware.distributed.strategy=ddp", '
              '"hardware.distributed.num_processes=2"]')
    out = repo.run("apply", "--auto-approve")
    assert "gates passed" in out.stdout, out.stdout
    [work] = repo.root.glob(".levcustom/runs/train/*")
    events = [json.loads(line) for line in (work / "events.jsonl").read_text().splitlines()]
    # 29 training rows, effective batch 2 x 4 = 8: 4 optimizer steps per epoch (a single process would take 8 at 4).
    steps = max(e.get("max_steps", 0) for e in events)
    train_rows = repo.lock()["models"]["tiny"]["dataset"]["train_rows"]
    assert steps == 4 * -(-train_rows // 8)


@pytest.mark.slow
def test_submitit_local_executor_runs_the_training(repo):
    repo.edit("specs/tiny.yaml", '["hardware.per_device_batch_size=8"]',
              '["hardware.per_device_batch_size=8", "hardware.launcher=submitit-local"]')
    out = repo.run("apply", "--auto-approve")
    assert "gates passed" in out.stdout, out.stdout
    [work] = repo.root.glob(".levcustom/runs/train/*")
    job_id = (work / "submitit_job").read_text()
    assert list((work / "submitit").glob(f"{job_id}_*")), "submitit kept no job files"
    assert json.loads((work / "result.json").read_text())["trainer"] == "SFTTrainer"
