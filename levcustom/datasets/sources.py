"""Source types: which files each one reads (for fingerprints) and how its rows become examples.

Row-wise sources turn each line into an example on its own, so a build can cache the result
per file and read only the appended tail of a file that grew. Whole sources (``hf_disk``,
``preferences`` derived from ratings) need all their rows at once and are cached whole.
``personality`` is not read: it renders the other sources' examples (see ``personality``).
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from levcustom.datasets.episodic import EpisodeReader
from levcustom.datasets.hfdisk import folder_files
from levcustom.datasets.interactions import InteractionReader
from levcustom.datasets.jsonl import Example, Kind, Provenance, example_from_row
from levcustom.datasets.outcomes import Filtered, Invalid
from levcustom.datasets.personality import persona_files
from levcustom.datasets.preferences import PairReader
from levcustom.datasets.records import jsonl_files
from levcustom.datasets.workflows import WorkflowReader
from levcustom.spec.schema import PersonalitySource, Source
from levcustom.workspace import Workspace

RowReader = Callable[[object, Provenance], Example | Filtered | Invalid]


def source_key(src: Source, index: int) -> str:
    """A source's name in plans and manifests: ``<index>:<type>:<path>``."""
    return f"{index}:{src.type}:{src.path}"


def source_files(ws: Workspace, src: Source) -> list[Path]:
    """Every file whose content the source's examples depend on, sorted (raises when missing)."""
    if isinstance(src, PersonalitySource):
        return persona_files(ws, src)
    path = ws.resolve_path(src.path)
    if src.type == "hf_disk":
        return folder_files(path)
    return jsonl_files(path)


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
