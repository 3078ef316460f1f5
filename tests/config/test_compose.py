"""Config resolution: Hydra groups, spec training block, overrides, --set; located errors; cache."""

from __future__ import annotations

import subprocess
import sys

import pytest

from conftest import PROJECT
from levcustom.config.compose import ConfigResolver
from levcustom.errors import SpecError
from levcustom.spec.loader import load_specs

SPEC = """\
apiVersion: levcustom/v1
kind: Model
metadata: {{name: m}}
spec:
  base_model: org/model
  hardware: {hardware}
  overrides: {overrides}
  dataset:
    sources: [{{type: jsonl, path: data/x.jsonl}}]
  training:
    {training}
"""


def resolve(tmp_path, hardware="cpu", overrides="[]", training="epochs: 2", sets=None, cache=None):
    (tmp_path / "m.yaml").write_text(SPEC.format(hardware=hardware, overrides=overrides, training=training))
    [spec] = load_specs([tmp_path / "m.yaml"], tmp_path)
    return ConfigResolver(PROJECT / "conf", cache, sets).resolve_all([spec])["m"]


def test_groups_spec_block_overrides_and_sets_compose_in_order(tmp_path):
    cfg = resolve(tmp_path, hardware="gpu-24gb", overrides='["training.lora.r=16", "training.epochs=5"]',
                  training="{epochs: 2, learning_rate: 1.0e-4}", sets=["training.lora.alpha=64"])
    assert cfg.hardware.name == "gpu-24gb" and cfg.hardware.quantization == "nf4"
    assert cfg.training.learning_rate == 1e-4  # spec block
    assert cfg.training.epochs == 5  # overrides come after the spec block
    assert cfg.training.lora.r == 16 and cfg.training.lora.alpha == 64
    assert cfg.provider["name"] == "local"


def test_unknown_group_value_suggests(tmp_path):
    with pytest.raises(SpecError) as exc:
        resolve(tmp_path, hardware="gpu-24g")
    assert "m.yaml:6:3: spec.hardware: unknown hardware 'gpu-24g' (did you mean 'gpu-24gb'?)" in str(exc.value)


def test_bad_training_key_points_at_spec_line(tmp_path):
    with pytest.raises(SpecError) as exc:
        resolve(tmp_path, training="lora: {rr: 4}")
    assert "m.yaml:11:12: spec.training.lora.rr: unknown key (did you mean 'r'?)" in str(exc.value)


def test_bad_override_points_at_override(tmp_path):
    with pytest.raises(SpecError) as exc:
        resolve(tmp_path, overrides='["training.epochs=-1"]')
    assert "m.yaml:7:15: spec.overrides[0]: training.epochs: Input should be greater than 0" in str(exc.value)


def test_disk_cache_skips_hydra(tmp_path):
    cache = tmp_path / "cache.json"
    first = resolve(tmp_path, cache=cache)
    code = (
        "import sys; from pathlib import Path\n"
        "from levcustom.config.compose import ConfigResolver\n"
        "from levcustom.spec.loader import load_specs\n"
        f"[s] = load_specs([Path({str(tmp_path / 'm.yaml')!r})], Path({str(tmp_path)!r}))\n"
        f"r = ConfigResolver(Path({str(PROJECT / 'conf')!r}), Path({str(cache)!r}), None).resolve_all([s])['m']\n"
        "print(r.training.epochs, 'hydra' in sys.modules)\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.split() == [str(first.training.epochs), "False"]


def test_conf_digest_follows_symlinked_folders(tmp_path):
    from levcustom.config.compose import conf_digest

    shared = tmp_path / "shared-hardware"
    shared.mkdir()
    (shared / "cpu.yaml").write_text("tokens_per_second: 85\n")
    conf = tmp_path / "conf"
    conf.mkdir()
    (conf / "config.yaml").write_text("defaults: []\n")
    (conf / "hardware").symlink_to(shared)
    (conf / "loop").symlink_to(conf)  # a cycle ends instead of recursing
    before = conf_digest(conf)
    (shared / "cpu.yaml").write_text("tokens_per_second: 42\n")
    assert conf_digest(conf) != before  # Hydra reads through the link, so the resolved-config cache must too
