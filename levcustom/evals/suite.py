"""Eval suites: golden JSONL cases ``{messages | prompt, expected, tags?}``."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from levcustom.datasets.jsonl import parse_messages, read_rows
from levcustom.errors import LevcustomError


@dataclass(frozen=True)
class EvalCase:
    """A prompt (chat messages without the answer), the expected output and slice tags."""

    messages: tuple[tuple[str, str], ...]
    expected: str
    line: int
    tags: dict[str, str] = field(default_factory=dict)

    def as_messages(self) -> list[dict[str, str]]:
        return [{"role": r, "content": c} for r, c in self.messages]


def load_suite(path: Path, rel: str) -> list[EvalCase]:
    """All cases of a suite; any malformed row or an empty suite is an error naming file:line."""
    if not path.is_file():
        raise LevcustomError(f"{rel}: eval suite not found")
    rows, issues = read_rows(path, rel)
    cases = []
    for n, row in rows:
        msgs, problem = parse_messages(row, need_assistant=False)
        if problem is None and msgs[-1][0] == "assistant":
            problem = "a case's messages must end before the answer (put the answer in 'expected')"
        expected = row.get("expected") if isinstance(row, dict) else None
        if problem is None and not isinstance(expected, str):
            problem = "'expected' must be a string"
        tags = row.get("tags", {}) if isinstance(row, dict) else {}
        if problem is None and not (isinstance(tags, dict) and all(isinstance(v, str) for v in tags.values())):
            problem = "'tags' must map names to strings"
        if problem:
            raise LevcustomError(f"{rel}:{n}: {problem}")
        cases.append(EvalCase(msgs, expected, n, tags))
    if issues:
        raise LevcustomError(str(issues[0]))
    if not cases:
        raise LevcustomError(f"{rel}: eval suite has no cases")
    return cases
