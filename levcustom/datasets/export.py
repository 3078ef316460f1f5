"""``levcustom dataset export``: a built dataset's examples as JSONL in the provider-neutral format.

Chat rows are ``{"messages": [...]}`` (OpenAI-style, tool calls included); preference rows are
``{"prompt", "chosen", "rejected"}``. Provenance is dropped unless asked for.
"""

from __future__ import annotations

from pathlib import Path

import orjson

from levcustom.datasets.split import SPLITS
from levcustom.state.atomic import atomic_write_text


def export_rows(artifact: Path, splits: list[str] | None, output: Path, provenance: bool = False) -> int:
    """Write the rows of ``splits`` (all, in train/validation/eval order, when None) to ``output``;
    returns how many rows were written. The file is replaced atomically."""
    lines = []
    for split in splits or list(SPLITS):
        with open(artifact / f"{split}.jsonl", "rb") as f:
            for raw in f:
                row = orjson.loads(raw)
                if not provenance:
                    row.pop("provenance", None)
                lines.append(orjson.dumps(row).decode())
    output.parent.mkdir(parents=True, exist_ok=True)
    atomic_write_text(output, "".join(line + "\n" for line in lines))
    return len(lines)
