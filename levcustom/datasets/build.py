"""Build a model's dataset: read sources, curate, split, store content-addressed.

The artifact is a folder ``store/datasets/<sha256>/`` with ``train.jsonl``,
``validation.jsonl`` (chat format, one example a line) and ``manifest.json`` (source hashes,
row counts in/out per step, provenance of every row, row hashes for later diffs).
"""

from __future__ import annotations

import hashlib
import json
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path

from levcustom.datasets.jsonl import Example, Kind, read_examples
from levcustom.errors import LevcustomError
from levcustom.spec.schema import DatasetSpec
from levcustom.workspace import Workspace


@dataclass(frozen=True)
class BuiltDataset:
    artifact: Path
    sha256: str
    train_rows: int
    validation_rows: int


def line_hashes(path: Path) -> list[str]:
    """Short hashes of every non-empty line, to count added/removed records between versions."""
    with open(path, "rb") as f:
        return [hashlib.sha1(line.strip()).hexdigest()[:16] for line in f if line.strip()]


def in_validation(key: str, fraction: float, seed: int) -> bool:
    """Hash-based split: a row's side depends only on its content, so appends never move old rows."""
    bucket = int(hashlib.sha256(f"{seed}:{key}".encode()).hexdigest()[:8], 16) / 0xFFFFFFFF
    return bucket < fraction


def build_dataset(ws: Workspace, spec: DatasetSpec, min_examples: int, kind: Kind = "chat") -> BuiltDataset:
    """Read, dedupe and split the sources; store the result by content hash (idempotent).

    ``kind`` is ``chat`` for SFT and ``preference`` (prompt/chosen/rejected) for DPO.
    """
    examples: list[Example] = []
    sources = []
    for src in spec.sources:
        path = ws.resolve_path(src.path)
        if not path.is_file():
            raise LevcustomError(f"{src.path}: source file not found")
        found, issues = read_examples(path, src.path, kind)
        if issues and src.on_error == "fail":
            more = f" (and {len(issues) - 1} more)" if len(issues) > 1 else ""
            raise LevcustomError(f"{issues[0]}{more}; set on_error: skip to drop bad rows")
        sources.append({"path": src.path, "sha256": hashlib.sha256(path.read_bytes()).hexdigest(),
                        "rows_read": len(found) + len(issues), "rows_invalid": len(issues),
                        "line_hashes": line_hashes(path)})
        examples.extend(found)
    steps = {"read": len(examples)}
    if spec.curation.dedupe == "exact":
        seen: set[str] = set()
        unique = []
        for ex in examples:
            key = ex.key()
            if key not in seen:
                seen.add(key)
                unique.append(ex)
        examples = unique
        steps["after_exact_dedupe"] = len(examples)
    if not examples:
        raise LevcustomError(f"dataset is empty after curation (rows per step: {steps})")
    train, validation = [], []
    for ex in examples:
        held_out = in_validation(ex.key(), spec.split.validation, spec.split.seed)
        (validation if held_out else train).append(ex)
    if len(train) < min_examples:
        raise LevcustomError(f"dataset has {len(train)} training examples; the provider needs at least {min_examples}")
    manifest = {"kind": kind, "sources": sources, "steps": steps, "curation": spec.curation.model_dump(),
                "split": spec.split.model_dump(), "train_rows": len(train), "validation_rows": len(validation)}
    return _store(ws, {"train.jsonl": train, "validation.jsonl": validation}, manifest)


def _store(ws: Workspace, splits: dict[str, list[Example]], manifest: dict) -> BuiltDataset:
    root = ws.store / "datasets"
    root.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(dir=root, prefix=".build-"))
    try:
        digest = hashlib.sha256()
        for name, rows in splits.items():
            lines = [json.dumps(ex.to_row(), ensure_ascii=False) for ex in rows]
            data = ("\n".join(lines) + "\n" if lines else "").encode()
            digest.update(name.encode() + b"\0" + data)
            (tmp / name).write_bytes(data)
        sha = digest.hexdigest()
        (tmp / "manifest.json").write_text(json.dumps(manifest, indent=1))
        final = root / sha
        if final.exists():  # same content already stored: reuse it
            shutil.rmtree(tmp)
        else:
            tmp.rename(final)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return BuiltDataset(final, sha, len(splits["train.jsonl"]), len(splits["validation.jsonl"]))


def load_manifest(artifact: Path) -> dict | None:
    """The manifest of a stored dataset, or None when the store no longer has it (fresh clone)."""
    try:
        return json.loads((artifact / "manifest.json").read_text())
    except (OSError, ValueError):
        return None
