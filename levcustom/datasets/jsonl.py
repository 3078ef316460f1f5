"""Read JSONL rows as chat examples, reporting bad rows with file:line.

Accepted rows (Hugging Face / TRL conversational and prompt-completion formats):
``{"messages": [{"role": "system"|"user"|"assistant", "content": str}, ...]}`` or
``{"prompt": str, "completion": str}``.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

from levcustom.errors import Issue

ROLES = ("system", "user", "assistant")


@dataclass(frozen=True)
class ChatExample:
    """One training conversation and where it came from (provenance)."""

    messages: tuple[tuple[str, str], ...]  # (role, content) pairs
    source: str
    line: int

    def as_messages(self) -> list[dict[str, str]]:
        return [{"role": r, "content": c} for r, c in self.messages]


def read_rows(path: Path, rel: str) -> tuple[list[tuple[int, object]], list[Issue]]:
    """Parse every non-empty line of a JSONL file; JSON errors become located issues."""
    rows, issues = [], []
    with open(path, encoding="utf-8", errors="replace") as f:
        for n, line in enumerate(f, start=1):
            if not line.strip():
                continue
            try:
                rows.append((n, json.loads(line)))
            except json.JSONDecodeError as exc:
                issues.append(Issue(rel, n, exc.colno, "", f"invalid JSON: {exc.msg}"))
    return rows, issues


def parse_messages(row: object, *, need_assistant: bool) -> tuple[tuple[tuple[str, str], ...], str | None]:
    """Normalize a row to (role, content) pairs; return the pairs or why the row is invalid."""
    if not isinstance(row, dict):
        return (), "expected a JSON object"
    if "messages" in row:
        msgs = row["messages"]
        if not isinstance(msgs, list) or not msgs:
            return (), "'messages' must be a non-empty list"
        out = []
        for i, m in enumerate(msgs):
            if not isinstance(m, dict):
                return (), f"messages[{i}] must be an object"
            role, content = m.get("role"), m.get("content")
            if role not in ROLES:
                return (), f"messages[{i}].role must be one of {', '.join(ROLES)} (got {role!r})"
            if not isinstance(content, str) or not content.strip():
                return (), f"messages[{i}].content must be a non-empty string"
            out.append((role, content))
        if need_assistant and out[-1][0] != "assistant":
            return (), "the last message must be the assistant's (the training target)"
        return tuple(out), None
    if "prompt" in row:
        prompt, completion = row.get("prompt"), row.get("completion")
        if not isinstance(prompt, str) or not prompt.strip():
            return (), "'prompt' must be a non-empty string"
        if not need_assistant:
            return (("user", prompt),), None
        if not isinstance(completion, str) or not completion.strip():
            return (), "'completion' must be a non-empty string"
        return (("user", prompt), ("assistant", completion)), None
    return (), "expected 'messages' (chat) or 'prompt'/'completion' keys"


def read_chat_examples(path: Path, rel: str) -> tuple[list[ChatExample], list[Issue]]:
    """Every valid training example in a JSONL file, plus an issue per invalid row."""
    rows, issues = read_rows(path, rel)
    examples = []
    for n, row in rows:
        msgs, problem = parse_messages(row, need_assistant=True)
        if problem:
            issues.append(Issue(rel, n, 1, "", problem))
        else:
            examples.append(ChatExample(msgs, rel, n))
    return examples, issues
