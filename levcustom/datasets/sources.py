"""Source types: which files each one reads (for fingerprints) and how its rows become examples.

Row-wise sources turn each line into an example on its own, so a build can cache the result
per file and read only the appended tail of a file that grew. Whole sources (``hf_disk``,
``preferences`` derived from ratings) need all their rows at once and are cached whole.
``personality`` is not read: it renders the other sources' examples (see ``personality``).
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from levcustom.datasets.hfdisk import folder_files
from levcustom.datasets.jsonl import Example, Kind, Provenance, example_from_row
from levcustom.datasets.outcomes import Filtered, Invalid
from levcustom.datasets.personality import persona_files
from levcustom.datasets.records import jsonl_files
from levcustom.errors import LevcustomError
from levcustom.spec.schema import PersonalitySource, Source
from levcustom.state.statcache import StatCache
from levcustom.workspace import Workspace

RowReader = Callable[[object, Provenance], Example | Filtered | Invalid]


@dataclass(frozen=True)
class SourceInfo:
    """A source's content identity for fingerprints: its files' hashes (stat-cached) and record count."""

    key: str
    sha256: str
    records: int
    files: tuple[tuple[str, str], ...]  # (path relative to the repository, sha256)

    def fingerprint_inputs(self) -> dict:
        return {"key": self.key, "sha256": self.sha256, "records": self.records, "files": len(self.files)}


def source_keys(sources: list[Source]) -> list[str]:
    """Each source's name in plans and manifests: ``<type>:<path>`` (``#2``... for repeats), stable
    when other sources are added or reordered."""
    seen: dict[str, int] = {}
    out = []
    for src in sources:
        base = f"{src.type}:{src.path}"
        seen[base] = seen.get(base, 0) + 1
        out.append(base if seen[base] == 1 else f"{base}#{seen[base]}")
    return out


def source_files(ws: Workspace, src: Source) -> list[Path]:
    """Every file whose content the source's examples depend on, sorted (raises when missing)."""
    if isinstance(src, PersonalitySource):
        return persona_files(ws, src)
    path = ws.resolve_path(src.path)
    if not path.exists():
        raise LevcustomError(f"file or folder not found: {src.path}")
    if src.type == "hf_disk":
        return folder_files(path)
    return jsonl_files(path)


def source_info(ws: Workspace, key: str, src: Source, stat: StatCache) -> SourceInfo:
    """Hash a source's files through the stat cache: an unchanged file is stat-ed, not read."""
    files = []
    records = 0
    for path in source_files(ws, src):
        info = stat.info(path)
        files.append((ws.rel(path), info.sha256))
        records += info.records
    digest = hashlib.sha256("\n".join(f"{rel}\0{sha}" for rel, sha in files).encode()).hexdigest()
    return SourceInfo(key, digest, records, tuple(files))


def is_whole(src: Source) -> bool:
    """Sources that need every row before they can yield one example."""
    return src.type == "hf_disk" or (src.type == "preferences" and src.derive == "ratings")


class _PlainReader:
    """``jsonl`` rows: chat or preference examples as the method needs."""

    def __init__(self, kind: Kind):
        self.kind = kind

    def __call__(self, row: object, prov: Provenance) -> Example | Invalid:
        example, problem = example_from_row(row, self.kind, prov)
        return Invalid(problem) if problem else example


def row_reader(src: Source, kind: Kind) -> RowReader:
    """How one row of a row-wise source (or of ``hf_disk``) becomes an example."""
    # Readers are imported here, not at the top: the planner imports this module for source_info only.
    from levcustom.datasets.episodic import EpisodeReader
    from levcustom.datasets.interactions import InteractionReader
    from levcustom.datasets.preferences import PairReader
    from levcustom.datasets.workflows import WorkflowReader

    if src.type in ("jsonl", "hf_disk"):
        return _PlainReader(kind)
    if src.type == "episodic_memory":
        return EpisodeReader(src)
    if src.type == "interactions":
        return InteractionReader(src)
    if src.type == "workflows":
        return WorkflowReader(src)
    if src.type == "preferences":
        return PairReader()
    raise ValueError(f"{src.type} sources are not read row by row")
