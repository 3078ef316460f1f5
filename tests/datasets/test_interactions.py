"""Agent conversation logs: filters by agent, task, rating; the last answer is the target."""

from __future__ import annotations

from dsfixtures import conversation
from levcustom.datasets.interactions import InteractionReader
from levcustom.datasets.jsonl import ChatExample, Provenance
from levcustom.datasets.outcomes import Filtered, Invalid
from levcustom.spec.schema import InteractionsSource

PROV = Provenance("interactions", "logs/a.jsonl", 4)


def read(row, **kw):
    return InteractionReader(InteractionsSource.model_validate({"type": "interactions", "path": "logs", **kw}))(
        row, PROV)


def test_filters():
    assert read(conversation(1, agent="planner"), agent="reviewer") == Filtered("agent")
    assert isinstance(read(conversation(1, agent="Reviewer"), agent=["reviewer", "critic"]), ChatExample)
    assert read(conversation(1, task="planning"), task="code-review") == Filtered("task")
    assert read(conversation(1, rating=3), min_rating=4) == Filtered("min_rating")
    assert read(conversation(1, rating=None), min_rating=4) == Filtered("min_rating")  # unrated
    row = conversation(1, rating=None)
    row["feedback"] = {"rating": 5, "comment": "great"}
    assert isinstance(read(row, min_rating=4), ChatExample)


def test_tool_calls_kept_and_trailing_turns_dropped():
    row = conversation(2, tool_output="file contents")
    row["messages"].append({"role": "user", "content": "thanks!"})
    ex = read(row)
    assert [r for r, _ in ex.messages] == ["system", "user", "assistant", "tool", "assistant"]
    out = ex.to_row()["messages"]
    assert out[2]["tool_calls"][0]["function"] == {"name": "read_file", "arguments": '{"path":"a"}'}
    assert out[3]["tool_call_id"] == "c2"
    assert (ex.provenance.agent, ex.provenance.task, ex.provenance.ref) == ("reviewer", "code-review", "conv-2")


def test_invalid_logs():
    assert read({"messages": []}) == Invalid("'messages' must be a non-empty list of messages")
    assert read({"messages": [{"role": "user", "content": "hi"}]}) == Invalid("the conversation has no assistant "
                                                                              "message")
    assert read({"messages": [{"role": "robot", "content": "hi"}]}).message.startswith("messages[0].role must be")
