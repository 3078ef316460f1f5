"""Bedrock's training format for Claude: ``{"system": str, "messages": [...]}`` with messages that
start with the user, strictly alternate user/assistant and end with the assistant's answer.

Pure functions: the plan validates examples with :func:`format_problem` (so a bad row is reported
with its file:line before anything is uploaded) and apply converts rows with :func:`to_bedrock`.
"""

from __future__ import annotations

from levcustom.datasets.jsonl import Messages

CHARS_PER_TOKEN = 4  # no Claude tokenizer ships offline: the usual English estimate


def format_problem(messages: Messages) -> str | None:
    """Why Bedrock would reject this conversation, or None."""
    body = _after_system(messages)
    if any(role == "system" for role, _ in body):
        return "a system message may only come first (Bedrock takes one system prompt per example)"
    if not body or body[0][0] != "user":
        return "the conversation must start with a user message after the system prompt"
    for i in range(1, len(body)):
        if body[i][0] == body[i - 1][0]:
            return f"messages must alternate user/assistant (two {body[i][0]} messages in a row at turn {i + 1})"
    if body[-1][0] != "assistant":
        return "the last message must be the assistant's (the training target)"
    return None


def to_bedrock(messages: list[dict[str, str]]) -> dict:
    """A validated conversation in Bedrock's Claude format."""
    pairs = tuple((m["role"], m["content"]) for m in messages)
    system = "\n\n".join(c for r, c in pairs if r == "system")
    row: dict = {"system": system} if system else {}
    row["messages"] = [{"role": r, "content": c} for r, c in _after_system(pairs)]
    return row


def estimate_tokens(messages: Messages) -> int:
    """Tokens of one example, estimated from characters (what the plan's cost line uses)."""
    return sum(len(c) for _, c in messages) // CHARS_PER_TOKEN + 1


def _after_system(messages: Messages) -> Messages:
    i = 0
    while i < len(messages) and messages[i][0] == "system":
        i += 1
    return messages[i:]
