"""Read JSONL rows as training examples, reporting bad rows with file:line.

SFT rows (Hugging Face / TRL conversational and prompt-completion formats):
``{"messages": [{"role": "system"|"user"|"assistant", "content": str}, ...]}`` or
``{"prompt": str, "completion": str}``.

Preference rows (for DPO), any of:
``{"prompt": [msgs], "chosen": [msgs], "rejected": [msgs]}`` (TRL conversational),
``{"prompt": str, "chosen": str, "rejected": str}`` (TRL standard), or OpenAI's
``{"input": {"messages": [...]}, "preferred_output": [msgs], "non_preferred_output": [msgs]}``.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from levcustom.errors import Issue

ROLES = ("system", "user", "assistant")
Messages = tuple[tuple[str, str], ...]  # (role, content) pairs
Kind = Literal["chat", "preference"]


def to_dicts(messages: Messages) -> list[dict[str, str]]:
    return [{"role": r, "content": c} for r, c in messages]


def row_key(*parts: Messages) -> str:
    """Normalized text identity (case and whitespace folded) for dedupe and the split."""
    text = "\x1d".join("\x1e".join(f"{r}\x1f{' '.join(c.split()).lower()}" for r, c in msgs) for msgs in parts)
    return hashlib.sha256(text.encode()).hexdigest()


@dataclass(frozen=True)
class ChatExample:
    """One training conversation and where it came from (provenance)."""

    messages: Messages
    source: str
    line: int

    def key(self) -> str:
        return row_key(self.messages)

    def to_row(self) -> dict:
        return {"messages": to_dicts(self.messages), "source": self.source, "line": self.line}


@dataclass(frozen=True)
class PreferenceExample:
    """A prompt with a chosen and a rejected answer (TRL's conversational preference format)."""

    prompt: Messages
    chosen: Messages
    rejected: Messages
    source: str
    line: int

    def key(self) -> str:
        return row_key(self.prompt, self.chosen, self.rejected)

    def to_row(self) -> dict:
        return {"prompt": to_dicts(self.prompt), "chosen": to_dicts(self.chosen), "rejected": to_dicts(self.rejected),
                "source": self.source, "line": self.line}


Example = ChatExample | PreferenceExample


def message_lists(example: Example) -> tuple[Messages, ...]:
    """Every message list of an example (one for chat, three for a preference pair)."""
    if isinstance(example, ChatExample):
        return (example.messages,)
    return (example.prompt, example.chosen, example.rejected)


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


def _messages(value: object, name: str) -> tuple[Messages, str | None]:
    """Validate a list of {role, content} messages."""
    if not isinstance(value, list) or not value:
        return (), f"'{name}' must be a non-empty list of messages"
    out = []
    for i, m in enumerate(value):
        if not isinstance(m, dict):
            return (), f"{name}[{i}] must be an object"
        role, content = m.get("role"), m.get("content")
        if role not in ROLES:
            return (), f"{name}[{i}].role must be one of {', '.join(ROLES)} (got {role!r})"
        if not isinstance(content, str) or not content.strip():
            return (), f"{name}[{i}].content must be a non-empty string"
        out.append((role, content))
    return tuple(out), None


def parse_messages(row: object, *, need_assistant: bool) -> tuple[Messages, str | None]:
    """Normalize an SFT row to (role, content) pairs; return the pairs or why the row is invalid."""
    if not isinstance(row, dict):
        return (), "expected a JSON object"
    if "messages" in row:
        msgs, problem = _messages(row["messages"], "messages")
        if problem:
            return (), problem
        if need_assistant and msgs[-1][0] != "assistant":
            return (), "the last message must be the assistant's (the training target)"
        return msgs, None
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


def parse_preference(row: object) -> tuple[tuple[Messages, Messages, Messages] | None, str | None]:
    """Normalize a preference row (TRL or OpenAI shape) to (prompt, chosen, rejected)."""
    if not isinstance(row, dict):
        return None, "expected a JSON object"
    if "preferred_output" in row:  # OpenAI's DPO format
        inp = row.get("input")
        if not isinstance(inp, dict):
            return None, "'input' must be an object with 'messages'"
        names = (("input.messages", inp.get("messages")), ("preferred_output", row.get("preferred_output")),
                 ("non_preferred_output", row.get("non_preferred_output")))
    elif "chosen" in row:
        prompt = row.get("prompt")
        if isinstance(prompt, str):  # TRL standard (plain text) format
            prompt = [{"role": "user", "content": prompt}]
        chosen, rejected = row.get("chosen"), row.get("rejected")
        if isinstance(chosen, str):
            chosen = [{"role": "assistant", "content": chosen}]
        if isinstance(rejected, str):
            rejected = [{"role": "assistant", "content": rejected}]
        names = (("prompt", prompt), ("chosen", chosen), ("rejected", rejected))
    else:
        return None, "expected a preference row: prompt/chosen/rejected or input/preferred_output/non_preferred_output"
    parts = []
    for name, value in names:
        msgs, problem = _messages(value, name)
        if problem:
            return None, problem
        parts.append(msgs)
    prompt, chosen, rejected = parts
    if prompt[-1][0] == "assistant":
        return None, f"'{names[0][0]}' must end before the answer (its last message is the assistant's)"
    for name, msgs in (names[1], chosen), (names[2], rejected):
        if msgs[-1][0] != "assistant":
            return None, f"'{name[0]}' must end with an assistant message"
    return (prompt, chosen, rejected), None


def read_examples(path: Path, rel: str, kind: Kind) -> tuple[list[Example], list[Issue]]:
    """Every valid example of ``kind`` in a JSONL file, plus an issue per invalid row."""
    rows, issues = read_rows(path, rel)
    examples: list[Example] = []
    for n, row in rows:
        if kind == "chat":
            msgs, problem = parse_messages(row, need_assistant=True)
            example = None if problem else ChatExample(msgs, rel, n)
        else:
            parts, problem = parse_preference(row)
            example = None if problem else PreferenceExample(*parts, rel, n)
        if problem:
            issues.append(Issue(rel, n, 1, "", problem))
        else:
            examples.append(example)
    return examples, issues


def load_examples(artifact_file: Path) -> list[dict]:
    """Rows of a built dataset split (as written by ``Example.to_row``)."""
    with open(artifact_file, encoding="utf-8") as f:
        return [json.loads(line) for line in f if line.strip()]
