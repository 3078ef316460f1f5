"""``levcustom dataset export``: a built dataset's examples as JSONL in the provider-neutral format.

Chat rows are ``{"messages": [...]}`` (OpenAI-style, tool calls included); preference rows are
``{"prompt", "chosen", "rejected"}``. Provenance is dropped unless asked for.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

import orjson

from levcustom.datasets.split import SPLITS


def export_rows(artifact: Path, splits: list[str] | None, output: Path, provenance: bool = False) -> int:
    """Write the rows of ``splits`` (all, in train/validation/eval order, when None) to ``output``,
    streaming (a dataset may not fit in memory twice); returns how many rows were written. The
    file is replaced atomically: a failed export leaves the old file."""
    output.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{output.name}.", suffix=".tmp", dir=output.parent)
    n = 0
    try:
        with os.fdopen(fd, "wb") as out:
            for split in splits or list(SPLITS):
                with open(artifact / f"{split}.jsonl", "rb") as f:
                    for raw in f:
                        row = orjson.loads(raw)
                        if not provenance:
                            row.pop("provenance", None)
                        out.write(orjson.dumps(row) + b"\n")
                        n += 1
        os.replace(tmp, output)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return n
