"""Training examples (chat and preference) and how JSON rows become them, with file:line issues.

SFT rows (Hugging Face / TRL conversational and prompt-completion formats, OpenAI's chat format):
``{"messages": [{"role": "system"|"user"|"assistant"|"tool", "content": str}, ...]}`` or
``{"prompt": str, "completion": str}``. An assistant message may carry OpenAI-style
``tool_calls`` (``[{"id", "type": "function", "function": {"name", "arguments"}}]``, content
empty) and a ``tool`` message answers one by ``tool_call_id``.

Preference rows (for DPO), any of:
``{"prompt": [msgs], "chosen": [msgs], "rejected": [msgs]}`` (TRL conversational),
``{"prompt": str, "chosen": str, "rejected": str}`` (TRL standard), or OpenAI's
``{"input": {"messages": [...]}, "preferred_output": [msgs], "non_preferred_output": [msgs]}``.

Every example carries its provenance (source type, file, line, and the record's own id where
it has one) into the built dataset.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Literal

import orjson

from levcustom.errors import Issue

ROLES = ("system", "user", "assistant", "tool")
_ROLE_SET = frozenset(ROLES)
Messages = tuple[tuple[str, str], ...]  # (role, content) pairs
Kind = Literal["chat", "preference"]


def to_dicts(messages: Messages) -> list[dict[str, str]]:
    return [{"role": r, "content": c} for r, c in messages]


def normalize(text: str) -> str:
    """Case and whitespace folded: the identity of a text for dedupe and the split."""
    return " ".join(text.split()).lower()


def row_key(*parts: Messages) -> str:
    """Normalized text identity (case and whitespace folded) for dedupe and the split."""
    text = "\x1d".join("\x1e".join(f"{r}\x1f{normalize(c)}" for r, c in msgs) for msgs in parts)
    return hashlib.sha256(text.encode()).hexdigest()


@dataclass(frozen=True)
class ToolCall:
    """One function call an assistant message makes (OpenAI's shape; ``arguments`` is JSON text)."""

    id: str
    name: str
    arguments: str


@dataclass(frozen=True)
class ToolTurn:
    """Tool details of message ``index``: the calls an assistant makes, or the call a tool message answers."""

    index: int
    calls: tuple[ToolCall, ...] = ()
    call_id: str | None = None


@dataclass(frozen=True)
class Provenance:
    """Where an example came from. ``ref`` is the record's own id (episode, run, conversation)."""

    source: str
    file: str
    line: int
    ref: str | None = None
    agent: str | None = None
    task: str | None = None
    persona: str | None = None

    def about(self, ref: object = None, agent: object = None, task: object = None) -> Provenance:
        """This provenance with the record's own id, agent and task (non-strings are dropped, ids kept as text).
        The constructor, not ``dataclasses.replace``: this runs once a row."""
        return Provenance(self.source, self.file, self.line, None if ref is None else str(ref),
                          agent if isinstance(agent, str) else None, task if isinstance(task, str) else None,
                          self.persona)

    def to_row(self) -> dict:
        # Every key always present: a stable schema for columnar readers (datasets / pyarrow).
        return {"source": self.source, "file": self.file, "line": self.line, "ref": self.ref,
                "agent": self.agent, "task": self.task, "persona": self.persona}


def _message_dicts(messages: Messages, tools: tuple[ToolTurn, ...]) -> list[dict]:
    out: list[dict] = [{"role": r, "content": c} for r, c in messages]
    for turn in tools:
        if turn.calls:
            out[turn.index]["tool_calls"] = [{"id": c.id, "type": "function",
                                              "function": {"name": c.name, "arguments": c.arguments}}
                                             for c in turn.calls]
        if turn.call_id is not None:
            out[turn.index]["tool_call_id"] = turn.call_id
    return out


class _Located:
    """Where an example's row is, for located issues (``file:line``)."""

    provenance: Provenance

    @property
    def source(self) -> str:
        return self.provenance.file

    @property
    def line(self) -> int:
        return self.provenance.line


@dataclass(frozen=True)
class ChatExample(_Located):
    """One training conversation and where it came from (provenance)."""

    messages: Messages
    provenance: Provenance
    tools: tuple[ToolTurn, ...] = ()

    def key(self) -> str:
        calls = tuple(("call", f"{c.name} {c.arguments}") for t in self.tools for c in t.calls)
        return row_key(self.messages, calls) if calls else row_key(self.messages)

    def texts(self) -> list[str]:
        """Every text an example holds (message contents and tool-call arguments), for scrubbing."""
        return [c for _, c in self.messages] + [c.arguments for t in self.tools for c in t.calls]

    def to_row(self) -> dict:
        return {"messages": _message_dicts(self.messages, self.tools), "provenance": self.provenance.to_row()}


@dataclass(frozen=True)
class PreferenceExample(_Located):
    """A prompt with a chosen and a rejected answer (TRL's conversational preference format)."""

    prompt: Messages
    chosen: Messages
    rejected: Messages
    provenance: Provenance

    def key(self) -> str:
        return row_key(self.prompt, self.chosen, self.rejected)

    def texts(self) -> list[str]:
        return [c for msgs in (self.prompt, self.chosen, self.rejected) for _, c in msgs]

    def to_row(self) -> dict:
        return {"prompt": to_dicts(self.prompt), "chosen": to_dicts(self.chosen), "rejected": to_dicts(self.rejected),
                "provenance": self.provenance.to_row()}


Example = ChatExample | PreferenceExample


def message_lists(example: Example) -> tuple[Messages, ...]:
    """Every message list of an example (one for chat, three for a preference pair)."""
    if isinstance(example, ChatExample):
        return (example.messages,)
    return (example.prompt, example.chosen, example.rejected)


def with_texts(example: Example, texts: list[str]) -> Example:
    """The example with its texts replaced, in the order of ``example.texts()`` (after scrubbing)."""
    it = iter(texts)
    if isinstance(example, ChatExample):
        messages = tuple((r, next(it)) for r, _ in example.messages)
        if not example.tools:  # the common case, without dataclasses.replace (slow: once per scrubbed row)
            return ChatExample(messages, example.provenance)
        tools = tuple(replace(t, calls=tuple(replace(c, arguments=next(it)) for c in t.calls)) for t in example.tools)
        return replace(example, messages=messages, tools=tools)
    prompt, chosen, rejected = (tuple((r, next(it)) for r, _ in msgs)
                                for msgs in (example.prompt, example.chosen, example.rejected))
    return replace(example, prompt=prompt, chosen=chosen, rejected=rejected)


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


def _tool_calls(value: object, where: str) -> tuple[tuple[ToolCall, ...], str | None]:
    if not isinstance(value, list) or not value:
        return (), f"{where}.tool_calls must be a non-empty list"
    calls = []
    for j, call in enumerate(value):
        fn = call.get("function") if isinstance(call, dict) else None
        name = fn.get("name") if isinstance(fn, dict) else None
        if not isinstance(name, str) or not name:
            return (), f"{where}.tool_calls[{j}].function.name must be a non-empty string"
        args = fn.get("arguments", "")
        args = args if isinstance(args, str) else orjson.dumps(args, option=orjson.OPT_SORT_KEYS).decode()
        calls.append(ToolCall(str(call.get("id") or f"call_{j}"), name, args))
    return tuple(calls), None


def parse_chat(value: object, name: str = "messages") -> tuple[Messages, tuple[ToolTurn, ...], str | None]:
    """Validate a list of OpenAI-style messages: (role, content) pairs, tool details, or why not."""
    if not isinstance(value, list) or not value:
        return (), (), f"'{name}' must be a non-empty list of messages"
    out: list[tuple[str, str]] = []
    tools: list[ToolTurn] = []
    for i, m in enumerate(value):  # runs for every message of every row: kept lean
        if m.__class__ is not dict:
            return (), (), f"{name}[{i}] must be an object"
        role, content = m.get("role"), m.get("content")
        if role not in _ROLE_SET:
            return (), (), f"{name}[{i}].role must be one of {', '.join(ROLES)} (got {role!r})"
        if role == "assistant" and m.get("tool_calls"):
            calls, problem = _tool_calls(m["tool_calls"], f"{name}[{i}]")
            if problem:
                return (), (), problem
            if content is not None and content.__class__ is not str:
                return (), (), f"{name}[{i}].content must be a string or null"
            tools.append(ToolTurn(i, calls))
            out.append((role, content or ""))
            continue
        if content.__class__ is not str or not content or content.isspace():
            return (), (), f"{name}[{i}].content must be a non-empty string"
        if role == "tool" and m.get("tool_call_id") is not None:
            tools.append(ToolTurn(i, (), str(m["tool_call_id"])))
        out.append((role, content))
    return tuple(out), tuple(tools), None


def _messages(value: object, name: str) -> tuple[Messages, str | None]:
    msgs, _, problem = parse_chat(value, name)
    return msgs, problem


def parse_conversation(row: object, *, need_assistant: bool) -> tuple[Messages, tuple[ToolTurn, ...], str | None]:
    """Normalize an SFT row (``messages`` or ``prompt``/``completion``): messages, tool details, or why not."""
    if not isinstance(row, dict):
        return (), (), "expected a JSON object"
    if "messages" in row:
        msgs, tools, problem = parse_chat(row["messages"])
        if problem:
            return (), (), problem
        if need_assistant and msgs[-1][0] != "assistant":
            return (), (), "the last message must be the assistant's (the training target)"
        return msgs, tools, None
    if "prompt" in row:
        prompt, completion = row.get("prompt"), row.get("completion")
        if not isinstance(prompt, str) or not prompt.strip():
            return (), (), "'prompt' must be a non-empty string"
        if not need_assistant:
            return (("user", prompt),), (), None
        if not isinstance(completion, str) or not completion.strip():
            return (), (), "'completion' must be a non-empty string"
        return (("user", prompt), ("assistant", completion)), (), None
    return (), (), "expected 'messages' (chat) or 'prompt'/'completion' keys"


def parse_messages(row: object, *, need_assistant: bool) -> tuple[Messages, str | None]:
    """Normalize an SFT row to (role, content) pairs; return the pairs or why the row is invalid."""
    msgs, _, problem = parse_conversation(row, need_assistant=need_assistant)
    return msgs, problem


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


def example_from_row(row: object, kind: Kind, provenance: Provenance) -> tuple[Example | None, str | None]:
    """A chat or preference example from a plain row (jsonl and hf_disk sources), or why not."""
    if kind == "chat":
        msgs, tools, problem = parse_conversation(row, need_assistant=True)
        return (None, problem) if problem else (ChatExample(msgs, provenance, tools), None)
    parts, problem = parse_preference(row)
    return (None, problem) if problem else (PreferenceExample(*parts, provenance), None)


def load_examples(artifact_file: Path) -> list[dict]:
    """Rows of a built dataset split (as written by ``Example.to_row``)."""
    with open(artifact_file, encoding="utf-8") as f:
        return [json.loads(line) for line in f if line.strip()]
