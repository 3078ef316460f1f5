"""The critic's instructions and the parsing of its replies (pure: text in, text out).

Following Constitutional AI (Bai et al., 2022): a critique request, then a revision request,
per principle; and a multiple-choice question for AI preference labels. The conversation is
shown as a transcript inside one user message, so every call is independent and cacheable.
"""

from __future__ import annotations

import hashlib
import json
import re
from dataclasses import dataclass

from levcustom.cai.constitution import Constitution, Principle
from levcustom.datasets.jsonl import Messages

PROMPT_VERSION = "cai-v1"  # bump when the instructions change: cached replies no longer apply


def system_prompt(constitution: Constitution) -> str:
    """Shared by every critic call; the constitution goes here so prompt caching can keep it."""
    return ("You help build training data for an AI assistant that is helpful, honest and harmless. You critique "
            "and revise assistant responses, and compare them, against this constitution "
            f"({constitution.name}):\n{constitution.text()}\n"
            "Follow the request exactly and reply with only what it asks for.")


def transcript(messages: Messages) -> str:
    return "\n".join(f"[{role}] {content}" for role, content in messages)


def critique_request(conversation: Messages, principle: Principle) -> str:
    return (f"<conversation>\n{transcript(conversation)}\n</conversation>\n\n"
            f"Critique request: {principle.critique}\nWrite the critique of the assistant's last response only.")


def revision_request(conversation: Messages, principle: Principle, critique: str) -> str:
    return (f"<conversation>\n{transcript(conversation)}\n</conversation>\n\n"
            f"Critique request: {principle.critique}\n<critique>\n{critique}\n</critique>\n\n"
            f"Revision request: {principle.revision}\n"
            "Reply with the revised assistant response only: no preamble, no quotes.")


def label_request(prompt: Messages, first: str, second: str, principle: Principle) -> str:
    return (f"<conversation>\n{transcript(prompt)}\n</conversation>\n\n{principle.preference}\n"
            f"(A) {first}\n(B) {second}\n\n"
            'Reply with JSON only: {"choice": "A" | "B", "reason": "<one sentence>"}')


def choose(seed: int, key: str, step: str, count: int) -> int:
    """A reproducible pick (principle, answer order) per prompt and step."""
    return int(hashlib.sha256(f"{seed}:{key}:{step}".encode()).hexdigest()[:8], 16) % count


@dataclass(frozen=True)
class Label:
    choice: str | None  # "A" | "B", or None when the reply was malformed
    reason: str = ""
    error: str | None = None


def parse_label(text: str) -> Label:
    """The labeler's choice, or why its reply is not the JSON asked for (recorded, never guessed)."""
    match = re.search(r"\{.*\}", text, re.DOTALL)
    try:
        data = json.loads(match.group(0)) if match else None
    except ValueError:
        data = None
    shown = " ".join(text.split())[:120]
    if not isinstance(data, dict):
        return Label(None, error=f"label reply is not the JSON asked for: {shown!r}")
    choice = str(data.get("choice", "")).strip().upper()
    if choice not in ("A", "B"):
        return Label(None, error=f"label choice is not A or B: {shown!r}")
    return Label(choice, str(data.get("reason", "")))
