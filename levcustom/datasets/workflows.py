"""``type: workflows``: successful workflow runs become multi-turn examples with tool calls.

A run is ``{"run_id", "workflow", "agent"?, "status", "system"?, "input", "steps": [{"thought"?,
"tool", "arguments", "output"}], "output"}``: the input is the user's message, each step an
assistant tool call answered by a tool message, and the final output the assistant's answer.
"""

from __future__ import annotations

import orjson

from levcustom.datasets.jsonl import ChatExample, Provenance, ToolCall, ToolTurn
from levcustom.datasets.outcomes import Filtered, Invalid, names_match, text_of
from levcustom.spec.schema import WorkflowsSource


class WorkflowReader:
    def __init__(self, src: WorkflowsSource):
        self.src = src

    def __call__(self, row: object, prov: Provenance) -> ChatExample | Filtered | Invalid:
        if not isinstance(row, dict):
            return Invalid("expected a JSON object (a workflow run)")
        task = text_of(row.get("input")).strip()
        answer = text_of(row.get("output")).strip()
        steps = row.get("steps", [])
        if not task:
            return Invalid("'input' is missing or empty")
        if not answer:
            return Invalid("'output' is missing or empty")
        if not isinstance(steps, list):
            return Invalid("'steps' must be a list")
        if not names_match(row.get("status"), self.src.status):
            return Filtered("status")
        if not names_match(row.get("workflow"), self.src.workflow):
            return Filtered("workflow")
        run_id = str(row.get("run_id", row.get("id", prov.line)))
        messages: list[tuple[str, str]] = []
        if isinstance(row.get("system"), str) and row["system"].strip():
            messages.append(("system", row["system"]))
        messages.append(("user", task))
        tools: list[ToolTurn] = []
        for k, step in enumerate(steps):
            if not isinstance(step, dict) or not isinstance(step.get("tool"), str) or not step["tool"]:
                return Invalid(f"steps[{k}] must be an object with a 'tool' name")
            args = step.get("arguments", {})
            args = args if isinstance(args, str) else orjson.dumps(args, option=orjson.OPT_SORT_KEYS).decode()
            call_id = f"{run_id}-{k}"
            tools.append(ToolTurn(len(messages), (ToolCall(call_id, step["tool"], args),)))
            messages.append(("assistant", text_of(step.get("thought")).strip()))
            tools.append(ToolTurn(len(messages), call_id=call_id))
            messages.append(("tool", text_of(step.get("output")) or "(no output)"))
        messages.append(("assistant", answer))
        workflow, agent = row.get("workflow"), row.get("agent")
        return ChatExample(tuple(messages), prov.about(run_id, agent, workflow), tuple(tools))
