"""The deploy target part of the spec: defaults, validation and located errors."""

from __future__ import annotations

from pathlib import Path

import pytest

from conftest import dedent
from levcustom.errors import SpecError
from levcustom.spec.loader import load_specs

SPEC = dedent("""
    apiVersion: levcustom/v1
    kind: Model
    metadata:
      name: router
    spec:
      base_model: some/model
      provider: {provider}
      dataset:
        sources:
          - {{type: jsonl, path: data/a.jsonl}}
      deploy:
        agents: [router]
    {deploy}
""")


def load(tmp_path: Path, provider: str = "local", deploy: str = ""):
    (tmp_path / "s.yaml").write_text(SPEC.format(provider=provider, deploy=deploy))
    return load_specs([tmp_path / "s.yaml"], tmp_path)


def test_registry_is_the_default_target(tmp_path):
    [spec] = load(tmp_path)
    assert spec.model.spec.deploy.target == "registry"
    assert spec.model.spec.deploy.ollama.host == "http://127.0.0.1:11434"


def test_ollama_target_settings(tmp_path):
    [spec] = load(tmp_path, deploy="    target: ollama\n    ollama: {model: 'team/router:v2', system: Be brief., "
                                   "parameters: {temperature: 0, stop: ['<|end|>']}, dtype: f32}")
    ollama = spec.model.spec.deploy.ollama
    assert (ollama.model, ollama.system, ollama.dtype) == ("team/router:v2", "Be brief.", "f32")
    assert ollama.parameters == {"temperature": 0, "stop": ["<|end|>"]}


def test_bad_ollama_settings_are_located(tmp_path):
    with pytest.raises(SpecError) as exc:
        load(tmp_path, deploy="    target: ollama\n    ollama: {model: 'bad name!', dtype: q4}")
    text = str(exc.value)
    assert "s.yaml:14:14: spec.deploy.ollama.model" in text and "s.yaml:14:34: spec.deploy.ollama.dtype" in text
    assert "(got 'bad name!')" in text and "spec.deploy.ollama.model" in text and "spec.deploy.ollama.dtype" in text
    with pytest.raises(SpecError) as exc:
        load(tmp_path, provider="openai", deploy="    target: ollama")
    assert "deploy.target 'ollama' serves models trained by provider 'local'" in str(exc.value)
