"""``type: hf_disk``: a Hugging Face ``datasets`` folder written by ``save_to_disk``.

The folder is read with pyarrow directly (``state.json`` lists the Arrow stream files; a
``DatasetDict`` has ``dataset_dict.json`` and one folder per split), so neither a hub nor the
``datasets`` library is needed. Rows are read as a jsonl source's rows; the provenance line is
the row's index (from 1).
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

from levcustom.errors import LevcustomError
from levcustom.spec.schema import HfDiskSource


def folder_files(path: Path) -> list[Path]:
    """Every file of a saved dataset folder, for its fingerprint."""
    if not path.is_dir():
        raise LevcustomError(f"{path}: not a folder saved with save_to_disk")
    return sorted(p for p in path.rglob("*") if p.is_file())


def _json(path: Path) -> dict:
    try:
        data = json.loads(path.read_text("utf-8"))
    except (OSError, ValueError) as exc:
        raise LevcustomError(f"{path}: cannot read ({exc})") from None
    if not isinstance(data, dict):
        raise LevcustomError(f"{path}: expected a JSON object")
    return data


def split_folder(root: Path, src: HfDiskSource) -> Path:
    """The folder holding the rows: the dataset itself, or the chosen split of a DatasetDict."""
    if (root / "dataset_dict.json").is_file():
        splits = [str(s) for s in _json(root / "dataset_dict.json").get("splits", [])]
        if src.split not in splits:
            want = f"split {src.split!r} is not among" if src.split else "a DatasetDict: set 'split' to one of"
            raise LevcustomError(f"{src.path}: {want} {', '.join(splits)}")
        return root / src.split
    if not (root / "state.json").is_file():
        raise LevcustomError(f"{src.path}: no state.json or dataset_dict.json: not a folder written by save_to_disk")
    if src.split:
        raise LevcustomError(f"{src.path}: a single dataset has no splits; remove 'split'")
    return root


def read_rows(root: Path, src: HfDiskSource) -> Iterator[tuple[int, dict]]:
    """``(index from 1, row)`` for every row of the saved dataset, in order."""
    import pyarrow as pa  # lazy: only builds read Arrow files

    folder = split_folder(root, src)
    files = [f.get("filename") for f in _json(folder / "state.json").get("_data_files", [])]
    n = 0
    for name in files:
        path = folder / str(name)
        if not path.is_file() or path.parent != folder:
            raise LevcustomError(f"{src.path}: data file {name!r} listed in state.json is missing")
        with pa.memory_map(str(path)) as source:
            table = pa.ipc.open_stream(source).read_all()
        for row in table.to_pylist():
            n += 1
            yield n, row
