"""Generated source files for dataset tests: interactions, episodes, workflow runs, personas."""

from __future__ import annotations

from pathlib import Path

from conftest import write_jsonl
from levcustom.spec.schema import DatasetSpec

SYSTEM = "You are the reviewer agent."


def conversation(i: int, *, agent: str = "reviewer", task: str = "code-review", rating: float | None = 5,
                 answer: str | None = None, tool_output: str | None = None, user: str | None = None) -> dict:
    msgs = [{"role": "system", "content": SYSTEM},
            {"role": "user", "content": user or f"Please review patch number {i} of the billing service"}]
    if tool_output is not None:
        call = {"id": f"c{i}", "type": "function", "function": {"name": "read_file", "arguments": {"path": "a"}}}
        msgs += [{"role": "assistant", "content": None, "tool_calls": [call]},
                 {"role": "tool", "tool_call_id": f"c{i}", "content": tool_output}]
    msgs.append({"role": "assistant", "content": answer or f"Patch {i}: check the error on line {i}."})
    row = {"id": f"conv-{i}", "agent": agent, "task": task, "messages": msgs}
    if rating is not None:
        row["rating"] = rating
    return row


def episode(i: int, *, outcome: str = "success", confidence: float = 0.9, type_: str = "code_review",
            timestamp: str = "2026-10-05T10:00:00Z") -> dict:
    return {"episode_id": f"ep-{i}", "timestamp": timestamp, "type": type_,
            "content": {"context": f"Review change {i} of the parser", "approach": f"Add a bounds check before {i}.",
                        "outcome": outcome, "confidence": confidence}, "relationships": {}}


def run(i: int, status: str = "succeeded", secret: str = "") -> dict:
    return {"run_id": f"run-{i}", "workflow": "fix-finding", "agent": "coder", "status": status,
            "input": f"Fix finding {i}", "output": f"Fixed finding {i}.",
            "steps": [{"thought": "Look first.", "tool": "search_code", "arguments": {"q": f"f{i}"},
                       "output": f"src/f{i}.py:3 {secret}"},
                      {"tool": "run_tests", "arguments": {}, "output": "3 passed"}]}


def spec(*sources: dict, **kw) -> DatasetSpec:
    return DatasetSpec.model_validate({"sources": list(sources), "split": {"validation": 0.2, "seed": 3}, **kw})


def write_persona(root: Path, pid: str = "nfj-visionary", template: str | None = None) -> str:
    folder = root / "personas" / pid
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "context.yaml").write_text(
        f"metadata: {{id: {pid}, type: agent}}\n"
        "agent_config:\n  name: Visionary\n  core_attributes: {core_emotion: anticipation}\n"
        "  endpoints: {default: {prompt_template: prompt.md}}\n  decision_prompts: [\"What will this enable?\"]\n")
    (folder / "prompt.md").write_text(template or "You are {{name}} ({{id}}), feeling {{core_emotion}}.\n"
                                                 "{{decision_prompts}}\nWas: {{context_data}}")
    return f"personas/{pid}/context.yaml"


__all__ = ["conversation", "episode", "run", "spec", "write_jsonl", "write_persona", "SYSTEM"]
