"""Bedrock's Claude training format: what the plan rejects and what apply uploads."""

from __future__ import annotations

from levcustom.providers.bedrock_format import format_problem, to_bedrock


def test_a_valid_conversation_converts_with_its_system_prompt():
    msgs = [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "Hi"},
            {"role": "assistant", "content": "Hello"}, {"role": "user", "content": "Bye"},
            {"role": "assistant", "content": "Goodbye"}]
    assert format_problem(tuple((m["role"], m["content"]) for m in msgs)) is None
    assert to_bedrock(msgs) == {"system": "Be brief.", "messages": msgs[1:]}
    assert "system" not in to_bedrock(msgs[1:])


def test_what_bedrock_would_refuse():
    u, a, s = ("user", "q"), ("assistant", "a"), ("system", "x")
    assert "start with a user message" in format_problem((s, a, u, a))
    assert "alternate" in format_problem((u, u, a))
    assert "last message must be the assistant's" in format_problem((u, a, u))
    assert "system message may only come first" in format_problem((u, s, a))
