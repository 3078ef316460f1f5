"""How the sources a spec names differ from those a built dataset was made of.

Counts are of source *records* (non-empty lines): each line's hash is compared as a multiset,
so an edited line counts as one removed and one added. The planner uses this for the reasons
of a dataset change; ``levcustom dataset diff`` prints it per file.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass
from pathlib import Path

from levcustom.datasets.records import line_hash


def file_line_hashes(paths: list[Path]) -> list[int]:
    """The hash of every non-empty line of these files, in order."""
    out = []
    for path in paths:
        with open(path, "rb") as f:
            out += [line_hash(raw) for raw in f if raw.strip()]
    return out


def record_delta(old: list[int], new: list[int]) -> tuple[int, int]:
    """(+added, -removed) records between two versions, by line content."""
    before, after = Counter(old), Counter(new)
    return sum((after - before).values()), sum((before - after).values())


@dataclass(frozen=True)
class FileChange:
    path: str
    change: str  # added | removed | changed
    added: int | None = None
    removed: int | None = None

    def __str__(self) -> str:
        counts = f": +{self.added} / -{self.removed} records" if self.added is not None else ""
        return f"{self.change} {self.path}{counts}"


def hashes_by_file(source: dict, hashes: list[int]) -> dict[str, list[int]] | None:
    """A manifest source's line hashes cut per file (files are stored in order with their record
    counts); None when the source does not record counts per file."""
    out, start = {}, 0
    for f in source.get("files", []):
        if "records" not in f:
            return None
        out[f["path"]] = hashes[start:start + f["records"]]
        start += f["records"]
    return out


def file_changes(old_files: list[dict], old_hashes: dict[str, list[int]] | None,
                 new_files: dict[str, tuple[Path, str]]) -> list[FileChange]:
    """Per file of one source: added, removed, or changed (by sha256, with record counts where the
    old hashes are known), from a manifest's file list and the current ``{path: (file, sha256)}``."""
    before = {f["path"]: f for f in old_files}
    out = []
    for rel, (path, sha) in new_files.items():
        if rel not in before:
            out.append(FileChange(rel, "added", len(file_line_hashes([path])), 0))
        elif before[rel]["sha256"] != sha:
            old = old_hashes.get(rel) if old_hashes else None
            counts = record_delta(old, file_line_hashes([path])) if old is not None else (None, None)
            out.append(FileChange(rel, "changed", *counts))
    out += [FileChange(rel, "removed", 0, f.get("records")) for rel, f in before.items() if rel not in new_files]
    return sorted(out, key=lambda c: c.path)
