"""Eval suites: golden JSONL cases ``{messages | prompt, expected, tags?}``, or the held-out
split of the model's own dataset."""

from __future__ import annotations

import hashlib
import json
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

    @property
    def key(self) -> str:
        """Identity of the case (prompt and expected answer), stable when rows move within a file."""
        blob = json.dumps([self.messages, self.expected], ensure_ascii=False)
        return hashlib.sha256(blob.encode()).hexdigest()[:16]


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


def held_out_cases(dataset_dir: Path, split: str, rel: str) -> list[EvalCase]:
    """A held-out split (``eval`` or ``validation``) as cases: the conversation up to its last answer
    is the prompt, that answer is expected; each case is tagged with the source file it came from."""
    path = dataset_dir / f"{split}.jsonl"
    rows, issues = read_rows(path, rel) if path.is_file() else ([], [])
    if issues:
        raise LevcustomError(str(issues[0]))
    cases = []
    for n, row in rows:
        msgs, problem = parse_messages(row, need_assistant=True)
        if problem:
            raise LevcustomError(f"{rel}:{n}: {problem}")
        provenance = row.get("provenance") if isinstance(row, dict) else None
        source = provenance.get("file") if isinstance(provenance, dict) else None
        cases.append(EvalCase(msgs[:-1], msgs[-1][1], n, {"source": source} if isinstance(source, str) else {}))
    if not cases:
        raise LevcustomError(f"{rel}: the {split} split is empty (too few examples, or dataset.split.{split} "
                             "is 0 or too small)")
    return cases
