"""Reading a stored dataset's manifest and record line hashes (light: the planner uses it)."""

from __future__ import annotations

import json
from array import array
from pathlib import Path


def load_manifest(artifact: Path) -> dict | None:
    """The manifest of a stored dataset, or None when the store no longer has it (fresh clone)."""
    try:
        return json.loads((artifact / "manifest.json").read_text())
    except (OSError, ValueError):
        return None


def load_line_hashes(artifact: Path, manifest: dict, key: str) -> list[int] | None:
    """The record line hashes a stored dataset kept for the source named ``key``, or None."""
    index = next((i for i, s in enumerate(manifest.get("sources", [])) if s.get("key") == key), None)
    if index is None:
        return None
    try:
        blob = (artifact / "lines" / f"{index}.bin").read_bytes()
    except OSError:
        return None
    hashes = array("Q")
    hashes.frombytes(blob)
    return hashes.tolist()
