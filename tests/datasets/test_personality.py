"""EEPS personas: the template becomes every example's system prompt; the id goes into provenance."""

from __future__ import annotations

import json

import pytest

from dsfixtures import conversation, spec, write_jsonl, write_persona
from levcustom.datasets.build import build_dataset
from levcustom.datasets.manifest import load_manifest
from levcustom.datasets.personality import load_persona
from levcustom.errors import LevcustomError
from levcustom.spec.schema import PersonalitySource
from levcustom.workspace import Workspace


def test_examples_are_rendered_with_the_persona(tmp_path):
    persona = write_persona(tmp_path)
    write_jsonl(tmp_path / "logs.jsonl", [conversation(i, tool_output="ok") for i in range(4)])
    built = build_dataset(Workspace(tmp_path), spec({"type": "interactions", "path": "logs.jsonl"},
                                                    {"type": "personality", "persona": persona},
                                                    split={"validation": 0.0}), 1)
    rows = [json.loads(line) for line in (built.artifact / "train.jsonl").read_text().splitlines()]
    first = rows[0]["messages"]
    assert first[0] == {"role": "system", "content": "You are Visionary (nfj-visionary), feeling anticipation.\n"
                                                     "- What will this enable?\nWas: You are the reviewer agent."}
    assert [m["role"] for m in first] == ["system", "user", "assistant", "tool", "assistant"]
    assert first[3]["tool_call_id"].startswith("c")  # tool details follow their message
    assert {r["provenance"]["persona"] for r in rows} == {"nfj-visionary"}
    assert load_manifest(built.artifact)["persona"]["id"] == "nfj-visionary"


def test_variables_from_spec_and_example(tmp_path):
    persona = write_persona(tmp_path, template="{{name}} on: {{challenge}} ({{tone}})")
    src = PersonalitySource(type="personality", persona=persona, variables={"tone": "brief"})
    p = load_persona(Workspace(tmp_path), src)
    assert p.variables["tone"] == "brief"
    with pytest.raises(LevcustomError, match="template variables without a value: tone"):
        load_persona(Workspace(tmp_path), PersonalitySource(type="personality", persona=persona))


def test_bad_persona_files(tmp_path):
    ws = Workspace(tmp_path)
    with pytest.raises(LevcustomError, match="persona file not found"):
        load_persona(ws, PersonalitySource(type="personality", persona="nope.yaml"))
    (tmp_path / "bad.yaml").write_text("metadata: [1]\n")
    with pytest.raises(LevcustomError, match="expected a Leviathan agent context"):
        load_persona(ws, PersonalitySource(type="personality", persona="bad.yaml"))
    persona = write_persona(tmp_path)
    context = tmp_path / persona
    context.write_text(context.read_text().replace("prompt.md", "../../../outside.md"))
    with pytest.raises(LevcustomError, match="outside the repository"):
        load_persona(ws, PersonalitySource(type="personality", persona=persona))
