"""Reading a source's JSONL files line by line: parsed rows, located errors, line hashes.

A source ``path`` is a file or a folder (every ``*.jsonl`` below it, in sorted order). Reading
can start at a byte offset, so a file that only grew is read from where the last build stopped.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import orjson
import xxhash

from levcustom.errors import LevcustomError


def jsonl_files(path: Path) -> list[Path]:
    """The JSONL files of a source path: the file itself, or every ``*.jsonl`` under a folder."""
    if path.is_file():
        return [path]
    if path.is_dir():
        return sorted(p for p in path.rglob("*.jsonl") if p.is_file())
    raise LevcustomError(f"{path}: no such file or folder")


def line_hash(raw: bytes) -> int:
    """64-bit identity of a record's line (surrounding whitespace ignored), to count added/removed records."""
    return xxhash.xxh3_64_intdigest(raw.strip())


@dataclass(frozen=True)
class BadLine:
    """A line that is not valid JSON."""

    line: int
    column: int
    message: str


@dataclass
class ReadState:
    """Where reading a file stopped, and the hash of every record line read so far."""

    offset: int = 0
    lines: int = 0
    ends_with_newline: bool = True
    line_hashes: list[int] = field(default_factory=list)


def read_jsonl(path: Path, state: ReadState) -> Iterator[tuple[int, object | BadLine]]:
    """Yield ``(line number, parsed row or BadLine)`` for each non-empty line after ``state.offset``,
    advancing ``state`` (so a file that only grew can be read on from there)."""
    with open(path, "rb") as f:
        f.seek(state.offset)
        for raw in f:
            state.lines += 1
            state.offset += len(raw)
            state.ends_with_newline = raw.endswith(b"\n")
            if not raw.strip():
                continue
            state.line_hashes.append(line_hash(raw))
            try:
                row = orjson.loads(raw)
            except orjson.JSONDecodeError as exc:
                yield state.lines, BadLine(state.lines, exc.colno, f"invalid JSON: {exc.msg}")
                continue
            yield state.lines, row
