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


def _flat(value: object, prefix: str = "") -> dict[str, object]:
    if isinstance(value, dict):
        out: dict[str, object] = {}
        for k, v in value.items():
            out.update(_flat(v, f"{prefix}.{k}" if prefix else str(k)))
        return out
    return {prefix: value}


def setting_changes(old: dict, new: dict) -> list[str]:
    """``key: old -> new`` for every setting that differs (nested keys dotted)."""
    a, b = _flat(old), _flat(new)
    return [f"{k}: {a.get(k)!r} -> {b.get(k)!r}" for k in sorted(a.keys() | b.keys()) if a.get(k) != b.get(k)]


def dataset_diff(ws_root: Path, manifest: dict, artifact: Path, current: list[tuple[str, dict, list[tuple[str, str]]]],
                 curation: dict, split: dict) -> list[str]:
    """What building now would change, per source and file, against a built dataset's manifest.

    ``current`` is ``(key, settings, [(file, sha256)])`` per source the spec names now (a persona too).
    """
    from levcustom.datasets.manifest import load_line_hashes

    built = {s["key"]: s for s in manifest["sources"]}
    persona = manifest.get("persona")
    if persona:
        built[persona["key"]] = {"key": persona["key"], "settings": persona["settings"], "files": persona["files"],
                                 "records": 0}
    lines: list[str] = []
    plus = minus = changed = 0
    for key, settings, files in current:
        old = built.pop(key, None)
        if old is None:
            records = len(file_line_hashes([ws_root / rel for rel, _ in files])) if key.split(":")[0] != \
                "personality" else 0
            lines.append(f"+ source {key} ({records} records)")
            plus, changed = plus + records, changed + 1
            continue
        hashes = load_line_hashes(artifact, manifest, key)
        per_file = hashes_by_file(old, hashes) if hashes is not None else None
        changes = file_changes(old["files"], per_file, {rel: (ws_root / rel, sha) for rel, sha in files})
        settings_diff = setting_changes(old.get("settings", {}), settings)
        if changes or settings_diff:
            changed += 1
            lines.append(f"~ source {key}")
            lines += [f"    {c}" for c in changes] + [f"    {s}" for s in settings_diff]
            plus += sum(c.added or 0 for c in changes)
            minus += sum(c.removed or 0 for c in changes)
    for key, old in built.items():
        lines.append(f"- source {key} ({old.get('records', 0)} records)")
        minus, changed = minus + old.get("records", 0), changed + 1
    lines += [f"~ curation.{c}" for c in setting_changes(manifest["curation"], curation)]
    lines += [f"~ split.{c}" for c in setting_changes(manifest["split"], split)]
    if changed:
        lines.insert(0, f"+{plus} / -{minus} records ({changed} source{'s' if changed != 1 else ''} changed)")
    return lines
