"""The local provider end to end through the CLI on the tiny model: QLoRA SFT, DPO, merge and model
card, Ollama deployment (against the loopback fake), and the plan's memory estimate and refusal."""

from __future__ import annotations

import json
import re

import pytest

from conftest import QUESTIONS, SYSTEM, write_jsonl
from fakes.ollama_server import FakeOllama

pytestmark = pytest.mark.slow


def preference_rows(n: int = 16) -> list[dict]:
    return [{"prompt": [{"role": "system", "content": SYSTEM}, {"role": "user", "content": q}],
             "chosen": [{"role": "assistant", "content": "ok"}],
             "rejected": [{"role": "assistant", "content": "no"}]} for q in QUESTIONS[:n]]


def test_qlora_sft_with_merge_and_model_card(repo):
    repo.edit("specs/tiny.yaml", '["hardware.per_device_batch_size=8"]',
              '["hardware.per_device_batch_size=8", "hardware.quantization=nf4", "training.merge=true"]')
    plan = repo.run("plan").stdout
    assert "peak memory ~" in plan and "of 16 GiB per device (batch 8 x 64 tokens" in plan, plan
    out = repo.run("apply", "--auto-approve")
    assert "golden.contains 1.00 (base 0.00); gates passed" in out.stdout, out.stdout
    lock = repo.lock()["models"]["tiny"]
    [work] = repo.root.glob(".levcustom/runs/train/*")
    result = json.loads((work / "result.json").read_text())
    # QLoRA: every linear of the tiny model's 2 decoder blocks (7 each) ran in 4 bits under the adapter.
    assert result["trainer"] == "SFTTrainer" and result["quantized_linear_layers"] == 2 * 7
    assert 0 < result["metrics"]["peak_rss_gib"] < 16  # the measured peak, beside the plan's estimate
    adapter = repo.root / lock["train"]["model_ref"]
    merged = repo.root / ".levcustom" / "store" / "merged" / lock["train"]["artifact_sha256"]
    assert (merged / "config.json").is_file() and (merged / "model.safetensors").is_file()
    card = (adapter / "README.md").read_text()
    # The card names base, data and hyperparameters, and gained the eval results at deploy.
    assert f"base_model: {lock['train']['inputs']['base_model']}" in card
    assert lock["dataset"]["sha256"] in card and '"quantization": "nf4"' in card
    assert "| golden.contains | 1.000 | 0.000 | 6 |" in card
    assert (merged / "README.md").read_text() == card


def test_dpo_trains_on_preference_pairs(repo):
    write_jsonl(repo.root / "data" / "train.jsonl", preference_rows())
    repo.edit("specs/tiny.yaml", "  dataset:", "  method: dpo\n  dataset:")
    repo.edit("specs/tiny.yaml", "min: 0.5", "min: 0.0")
    repo.edit("specs/tiny.yaml", "learning_rate: 0.01", "learning_rate: 0.01\n    beta: 0.1")
    assert "Plan: 4 to add" in repo.run("plan").stdout
    repo.run("apply", "--auto-approve")
    train = repo.lock()["models"]["tiny"]["train"]
    assert train["inputs"]["method"] == "dpo" and train["inputs"]["training"]["beta"] == 0.1
    # DPO's loss starts at ln 2 (chosen and rejected equally likely under the reference); learning lowers it.
    assert train["metrics"]["train_loss"] < 0.69
    [work] = repo.root.glob(".levcustom/runs/train/*")
    dataset = repo.lock()["models"]["tiny"]["dataset"]["artifact"]
    row = json.loads((repo.root / dataset / "train.jsonl").read_text().splitlines()[0])
    assert set(row) >= {"prompt", "chosen", "rejected"}
    assert json.loads((work / "result.json").read_text())["trainer"] == "DPOTrainer"


def test_plan_refuses_a_config_that_cannot_fit(repo):
    repo.edit("specs/tiny.yaml", '["hardware.per_device_batch_size=8"]',
              '["hardware.per_device_batch_size=8", "hardware.memory_gb=0.156"]')
    out = repo.run("plan", check=1)
    # The tiny model needs a little over 0.156 GiB at batch 8 (mostly the trainer's runtime), less at batch 4.
    needs = re.search(r"specs/tiny.yaml:\d+:\d+: spec.hardware: training needs ~([\d.]+) MiB \(weights", out.stderr)
    assert needs and float(needs.group(1)) > 0.156 * 1024, out.stderr
    assert "per device for batch 8 x 64 tokens, more than the 0.156 GiB of hardware 'cpu'" in out.stderr
    assert ("batch 4 fits: set hardware.per_device_batch_size=4 and hardware.gradient_accumulation_steps=2 "
            "(same effective batch 8)") in out.stderr
    assert "Traceback" not in out.stderr
    # With the effective batch given, levcustom splits it itself into what fits; apply trains with that split.
    repo.edit("specs/tiny.yaml", "max_length: 64", "max_length: 64\n    batch_size: 8")
    plan = repo.run("plan").stdout
    fits = re.search(r"peak memory ~([\d.]+) MiB of 0.156 GiB per device \(batch 4 x 64 tokens, "
                     r"gradient accumulation 2\)", plan)
    assert fits and float(fits.group(1)) <= 0.156 * 1024, plan


def test_ollama_deploy_round_trip(repo, tmp_path):
    with FakeOllama(tmp_path / "ollama") as fake:
        repo.edit("specs/tiny.yaml", "    tasks: [answering]",
                  "    tasks: [answering]\n    target: ollama\n"
                  f"    ollama: {{host: '{fake.host}', model: 'tiny-helper', parameters: {{temperature: 0}}}}")
        out = repo.run("apply", "--auto-approve")
        assert "served by Ollama as tiny-helper" in out.stdout, out.stdout
        deploy = repo.lock()["models"]["tiny"]["deploy"]
        assert deploy["ollama"]["model"] == "tiny-helper" and deploy["ollama"]["host"] == fake.host
        shown = fake.show({"model": "tiny-helper"})[1]
        assert shown["details"]["family"] == "llama" and shown["model_info"]["llama.block_count"] == 2
        assert '<|user|>{{ .Content }}<|end|>' in shown["template"]
        # The served GGUF answers like the tuned model did in levcustom's own eval.
        [cases] = repo.root.glob(".levcustom/runs/eval/*/cases.jsonl")
        first = json.loads(cases.read_text().splitlines()[0])
        messages = json.loads((repo.root / "evals" / "golden.jsonl").read_text().splitlines()[0])["messages"]
        answer = fake.chat({"model": "tiny-helper", "messages": messages, "options": {"num_predict": 24}})[1]
        assert answer["message"]["content"] == first["outputs"]["tuned"]
        modelfile = next(repo.root.glob(".levcustom/store/gguf/*/Modelfile")).read_text()
        assert modelfile.startswith("FROM ./model.gguf\nTEMPLATE") and "PARAMETER temperature 0" in modelfile

        # Re-applying an unchanged spec touches nothing; a changed system prompt re-creates the model
        # from the blob the server already has (HEAD says so: no second upload).
        assert "No changes." in repo.run("plan").stdout
        repo.edit("specs/tiny.yaml", "model: 'tiny-helper',", "model: 'tiny-helper', system: 'Be brief.',")
        before = list(fake.requests)
        repo.run("apply", "--auto-approve")
        new = fake.requests[len(before):]
        assert [m for m, p in new if p.startswith("/api/blobs/")] == ["HEAD"]
        assert fake.show({"model": "tiny-helper"})[1]["system"] == "Be brief."

        # Removing the spec deletes the Ollama model.
        (repo.root / "specs" / "tiny.yaml").unlink()
        out = repo.run("apply", "--auto-approve")
        assert "deleted Ollama model tiny-helper" in out.stdout
        assert fake.tags()[1]["models"] == []


def test_ollama_target_refuses_an_architecture_it_cannot_export_at_plan(repo, tiny_model, tmp_path):
    import shutil

    qwen = tmp_path / "qwen-shaped"
    shutil.copytree(tiny_model, qwen)
    config = json.loads((qwen / "config.json").read_text())
    (qwen / "config.json").write_text(json.dumps({**config, "model_type": "qwen2",
                                                  "architectures": ["Qwen2ForCausalLM"]}))
    repo.edit("specs/tiny.yaml", f"base_model: {tiny_model}", f"base_model: {qwen}")
    repo.edit("specs/tiny.yaml", "    tasks: [answering]", "    tasks: [answering]\n    target: ollama")
    err = repo.run("plan", check=1).stderr
    assert "spec.deploy.target: deploy target ollama: GGUF export supports llama, mistral models " \
           "(this base model is 'qwen2')" in err, err
    assert "Traceback" not in err


def losses(work) -> list[float]:
    return [e["loss"] for e in map(json.loads, (work / "events.jsonl").read_text().splitlines()) if "loss" in e]


def test_continued_sft_starts_from_the_previous_adapter(repo):
    repo.run("apply", "--auto-approve")
    first = repo.lock()["models"]["tiny"]["train"]
    [first_work] = repo.root.glob(".levcustom/runs/train/*")
    repo.edit("specs/tiny.yaml", "learning_rate: 0.01", f"learning_rate: 0.01\n    init_adapter: {first['model_ref']}")
    plan = repo.run("plan").stdout
    assert "training.init_adapter added" in plan, plan
    repo.run("apply", "--auto-approve")
    second = repo.lock()["models"]["tiny"]["train"]
    assert second["inputs"]["training"]["init_adapter"] == {"path": first["model_ref"],
                                                            "sha256": first["artifact_sha256"]}
    second_work = next(w for w in repo.root.glob(".levcustom/runs/train/*") if w != first_work)
    # The continued run starts where the first ended, not where the first started.
    before, after = losses(first_work), losses(second_work)
    assert after[0] < before[-1] + 0.25 * (before[0] - before[-1])
    # An adapter of another rank is refused at plan time, with the numbers.
    repo.edit("specs/tiny.yaml", "lora: {r: 8, alpha: 16", "lora: {r: 4, alpha: 16")
    out = repo.run("plan", check=1)
    assert "spec.training.init_adapter: the adapter has r=8, alpha=16; set training.lora to match (now r=4" \
        in out.stderr

