"""Workflow runs become multi-turn examples with tool calls; only kept statuses."""

from __future__ import annotations

from dsfixtures import run
from levcustom.datasets.jsonl import Provenance
from levcustom.datasets.outcomes import Filtered, Invalid
from levcustom.datasets.workflows import WorkflowReader
from levcustom.spec.schema import WorkflowsSource

PROV = Provenance("workflows", "runs.jsonl", 2)


def read(row, **kw):
    return WorkflowReader(WorkflowsSource.model_validate({"type": "workflows", "path": "runs", **kw}))(row, PROV)


def test_run_becomes_tool_calling_conversation():
    ex = read(run(3))
    msgs = ex.to_row()["messages"]
    assert [m["role"] for m in msgs] == ["user", "assistant", "tool", "assistant", "tool", "assistant"]
    assert msgs[1]["content"] == "Look first."
    assert msgs[1]["tool_calls"] == [{"id": "run-3-0", "type": "function",
                                      "function": {"name": "search_code", "arguments": '{"q":"f3"}'}}]
    assert msgs[2] == {"role": "tool", "content": "src/f3.py:3 ", "tool_call_id": "run-3-0"}
    assert msgs[-1] == {"role": "assistant", "content": "Fixed finding 3."}
    assert (ex.provenance.ref, ex.provenance.task, ex.provenance.agent) == ("run-3", "fix-finding", "coder")


def test_status_and_workflow_filters():
    assert read(run(1, status="failed")) == Filtered("status")
    assert read(run(1, status="failed"), status=["failed"]).messages
    assert read(run(1), workflow="deploy") == Filtered("workflow")


def test_invalid_runs():
    assert read({**run(1), "output": ""}) == Invalid("'output' is missing or empty")
    assert read({**run(1), "steps": [{"arguments": {}}]}) == Invalid("steps[0] must be an object with a 'tool' name")
