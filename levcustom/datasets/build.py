"""Build a model's dataset: read sources, curate, dedupe, split, store content-addressed.

The artifact is a folder ``store/datasets/<sha256>/``: ``train.jsonl``, ``validation.jsonl``
and ``eval.jsonl`` (one example a line, with its provenance), ``manifest.json`` (source file
hashes, rows in/out per filter and step, scrub counts, curation and split settings) and
``lines/<source>.bin`` (the 64-bit hash of every source record line, so a later plan can
count added and removed records). The address covers all of it, so equal inputs give the
same artifact and different inputs never share one.

Per-file work (parsing, filters, scrubbing, keys, MinHash signatures) is cached per file by
``process``; the cross-row steps (dedupe, caps, split) run on every build, vectorized.
"""

from __future__ import annotations

import hashlib
import json
import shutil
import tempfile
from array import array
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import orjson

from levcustom.datasets.dedupe import NUM_PERM, near_duplicates
from levcustom.datasets.jsonl import Example, Kind, Provenance, example_from_row
from levcustom.datasets.personality import Persona, load_persona
from levcustom.datasets.process import (
    FileJob,
    Unit,
    UnitCache,
    UnitStats,
    file_sha256,
    make_pipeline,
    read_whole,
    run_file_jobs,
)
from levcustom.datasets.records import ReadState
from levcustom.datasets.sources import is_whole, source_files, source_keys
from levcustom.datasets.split import SPLITS, assign, bucket
from levcustom.errors import Issue, LevcustomError
from levcustom.spec.schema import DatasetSpec, PersonalitySource, Source
from levcustom.state.statcache import StatCache
from levcustom.workspace import Workspace

DATASET_FORMAT = "dataset-v2"
ROW_CURATION = ("scrub_pii", "min_chars", "max_chars", "max_tokens", "tokenizer", "languages", "answer_format")


@dataclass(frozen=True)
class Work:
    """Source rows this build read from files, and rows whose per-row work came from the cache."""

    read: int
    reused: int


@dataclass(frozen=True)
class BuiltDataset:
    artifact: Path
    sha256: str
    rows: dict[str, int]
    work: Work

    @property
    def train_rows(self) -> int:
        return self.rows["train"]

    @property
    def validation_rows(self) -> int:
        return self.rows["validation"]


@dataclass
class SourceResult:
    """A source's units (one per file, or one for a whole source) and its per-file accounting."""

    key: str
    src: Source
    units: list[Unit]
    files: list[dict]

    def stats(self) -> UnitStats:
        total = UnitStats()
        for unit in self.units:
            total.add(unit.stats)
        return total


def _digest(*parts: object) -> str:
    return hashlib.sha256(json.dumps(parts, sort_keys=True, default=str).encode()).hexdigest()[:32]


def _persona(ws: Workspace, spec: DatasetSpec) -> Persona | None:
    found = [s for s in spec.sources if isinstance(s, PersonalitySource)]
    return load_persona(ws, found[0]) if found else None


class Builder:
    """One dataset build: the spec, the caches, and the shared per-row curation."""

    def __init__(self, ws: Workspace, spec: DatasetSpec, kind: Kind):
        self.ws, self.spec, self.kind = ws, spec, kind
        self.persona = _persona(ws, spec)
        self.near = spec.curation.dedupe == "near"
        self.cache = UnitCache(ws.cache / "datasets")
        self.read = self.reused = 0
        self.stat = StatCache(ws.cache / "stat.json")
        persona_id = None if self.persona is None else (self.persona.id, self.persona.template,
                                                          self.persona.variables)
        self.shape = (DATASET_FORMAT, kind, persona_id, self.near,
                      spec.curation.model_dump(mode="json", include=set(ROW_CURATION)))

    def persona_manifest(self, spec: DatasetSpec) -> dict:
        """The persona's id, files (with hashes) and settings, for the manifest and ``dataset diff``."""
        p = self.persona
        key, src = next((k, s) for k, s in zip(source_keys(spec.sources), spec.sources, strict=True)
                        if isinstance(s, PersonalitySource))
        files = [{"path": self.ws.rel(f), "sha256": self.stat.info(f).sha256}
                 for f in (p.context_file, p.template_file)]
        return {"key": key, "id": p.id, "context": self.ws.rel(p.context_file),
                "template": self.ws.rel(p.template_file), "files": files, "settings": src.model_dump(mode="json")}

    def read_source(self, key: str, src: Source) -> SourceResult:
        paths = source_files(self.ws, src)
        infos = [(p, self.ws.rel(p), self.stat.info(p)) for p in paths]
        settings = src.model_dump(mode="json")
        if is_whole(src):
            unit_key = _digest(self.shape, settings, [(rel, info.sha256) for _, rel, info in infos])
            unit = self.cache.load(unit_key)
            if unit is None:
                pipeline = make_pipeline(src, self.kind, self.spec.curation, self.persona)
                unit = read_whole(pipeline, self.ws.resolve_path(src.path), src, [(p, rel) for p, rel, _ in infos])
                unit.sha256 = unit_key
                self.cache.save(unit_key, unit)
                self.read += unit.stats.read
            else:
                self.reused += unit.stats.read
            files = [{"path": rel, "sha256": info.sha256, "bytes": info.size} for _, rel, info in infos]
            return SourceResult(key, src, [unit], files)
        units = [self._plan_file(src, _digest(self.shape, settings, rel), path, rel, info.sha256)
                 for path, rel, info in infos]
        jobs = [u for u in units if isinstance(u, _Pending)]
        for pending, done in zip(jobs, run_file_jobs([p.job for p in jobs]), strict=True):
            self.read += done.stats.read
            if pending.cached is not None:  # the file grew: the cached rows plus the new tail
                pending.cached.extend(done)
                done = pending.cached
            done.sha256 = pending.sha256
            self.cache.save(pending.unit_key, done)
            units[units.index(pending)] = done
        files = []
        for (_, rel, info), unit in zip(infos, units, strict=True):
            s = unit.stats
            files.append({"path": rel, "sha256": info.sha256, "bytes": info.size,
                          "records": len(unit.state.line_hashes), "read": s.read, "invalid": s.invalid,
                          "filtered": dict(s.filtered), "kept": unit.kept})
        return SourceResult(key, src, units, files)

    def _plan_file(self, src: Source, unit_key: str, path: Path, rel: str, sha: str) -> Unit | _Pending:
        """The file's unit from the cache, or the job that reads it: its appended tail, or all of it."""
        cached = self.cache.load(unit_key)
        if cached is not None and cached.sha256 == sha:
            self.reused += cached.stats.read
            return cached
        grown = cached is not None and cached.state.ends_with_newline and path.stat().st_size > cached.state.offset \
            and file_sha256(path, cached.state.offset) == cached.sha256
        if grown:
            self.reused += cached.stats.read
            state = ReadState(cached.state.offset, cached.state.lines, True, list(cached.state.line_hashes))
        else:
            cached, state = None, ReadState()
        job = FileJob(src, self.kind, self.spec.curation, self.persona, path, rel, state)
        return _Pending(unit_key, sha, job, cached)


@dataclass(eq=False)
class _Pending:
    """A file unit still to read (``cached``: the rows read before, when only a tail is new)."""

    unit_key: str
    sha256: str
    job: FileJob
    cached: Unit | None


class InvalidRowsError(LevcustomError):
    """A source has malformed rows and ``on_error: fail``; ``issues`` locates them (the first ones)."""

    def __init__(self, issues: list[Issue], total: int):
        self.issues = issues
        more = f" (and {total - 1} more)" if total > 1 else ""
        super().__init__(f"{issues[0]}{more}; set on_error: skip to drop bad rows")


def _check_source(result: SourceResult, invalid: list[Issue] | None) -> None:
    """Malformed rows (with on_error: fail) and sources left empty by their filters are errors;
    with an ``invalid`` list, malformed rows are collected there instead."""
    src, stats = result.src, result.stats()
    where = f"source {result.key}"
    if stats.invalid and getattr(src, "on_error", "fail") == "fail":
        if invalid is None:
            raise InvalidRowsError(stats.issues, stats.invalid)
        invalid += stats.issues
    if sum(u.kept for u in result.units):
        return
    if not stats.read:
        raise LevcustomError(f"{where}: no rows (the files are empty)")
    removed = ", ".join(f"{name} removed {n}" for name, n in stats.filtered.items() if n)
    invalid = f", {stats.invalid} invalid rows skipped" if stats.invalid else ""
    raise LevcustomError(f"{where}: no rows left after filters ({stats.read} read: {removed or 'none filtered'}"
                         f"{invalid})")


def _first_occurrences(keys: list[bytes]) -> np.ndarray:
    seen: set[bytes] = set()
    keep = np.zeros(len(keys), dtype=bool)
    for i, key in enumerate(keys):
        if key not in seen:
            seen.add(key)
            keep[i] = True
    return keep


def _cap(rows: list[bytes], keys: list[bytes], keep: np.ndarray, by: str, limit: int, seed: int) -> np.ndarray:
    """Keep at most ``limit`` rows per group: those with the lowest hash bucket (deterministic)."""
    groups: dict[object, list[tuple[float, int]]] = {}
    for i in np.flatnonzero(keep):
        group = orjson.loads(rows[i])["provenance"][by]
        groups.setdefault(group, []).append((bucket(keys[i], seed), int(i)))
    out = np.zeros_like(keep)
    for members in groups.values():
        for _, i in sorted(members)[:limit]:
            out[i] = True
    return out


@dataclass
class Curated:
    """A dataset after every curation step, before it is stored: rows, their split, the manifest."""

    rows: list[bytes]
    sides: dict[str, list[int]]
    manifest: dict
    lines: dict[str, bytes]
    work: Work

    def examples(self, split: str) -> list[Example]:
        """The examples of one split, parsed back from their rows (for a provider's offline checks)."""
        kind = self.manifest["kind"]
        out = []
        for i in self.sides[split]:
            row = orjson.loads(self.rows[i])
            p = row.pop("provenance")
            example, _ = example_from_row(row, kind, Provenance(**p))
            out.append(example)
        return out


def build_dataset(ws: Workspace, spec: DatasetSpec, min_examples: int, kind: Kind = "chat") -> BuiltDataset:
    """Read, curate, dedupe and split the sources; store the result by content hash (idempotent).

    ``kind`` is ``chat`` for SFT and ``preference`` (prompt/chosen/rejected) for DPO.
    """
    curated = curate_dataset(ws, spec, kind)
    train = len(curated.sides["train"])
    if train < min_examples:
        raise LevcustomError(f"dataset has {train} training examples; the provider needs at least {min_examples}")
    return store_dataset(ws, curated)


def curate_dataset(ws: Workspace, spec: DatasetSpec, kind: Kind, invalid: list[Issue] | None = None) -> Curated:
    """Every step of a build but storing it. The planner's preflight uses this too, passing ``invalid``
    to collect every malformed row while the valid ones still reach the provider's checks."""
    builder = Builder(ws, spec, kind)
    results = []
    for key, src in zip(source_keys(spec.sources), spec.sources, strict=True):
        if isinstance(src, PersonalitySource):
            continue
        result = builder.read_source(key, src)
        _check_source(result, invalid)
        results.append(result)
    units = [u for r in results for u in r.units]
    rows = [row for u in units for row in u.rows]
    keys = [k for u in units for k in u.keys]
    total = UnitStats()
    for u in units:
        total.add(u.stats)
    steps: dict[str, object] = {"read": total.read, "invalid": total.invalid, "filtered": dict(total.filtered),
                                "after_filters": len(rows)}
    c = spec.curation
    keep = np.ones(len(rows), dtype=bool)
    if c.dedupe != "none":
        keep = _first_occurrences(keys)
        steps["exact_duplicates"] = int(len(rows) - keep.sum())
    if c.dedupe == "near":
        sig = np.concatenate([u.sig for u in units]) if units else np.zeros((0, NUM_PERM), np.uint32)
        kept = np.flatnonzero(keep)
        dup = near_duplicates(sig[kept], c.near_threshold)
        keep[kept[dup]] = False
        steps["near_duplicates"] = int(dup.sum())
    if c.cap is not None:
        capped = _cap(rows, keys, keep, c.cap.by, c.cap.max, spec.split.seed)
        steps["capped"] = int(keep.sum() - capped.sum())
        keep = capped
    steps["kept"] = int(keep.sum())
    if not keep.any():
        raise LevcustomError(f"dataset is empty after curation (rows per step: {steps})")
    sp = spec.split
    sides: dict[str, list[int]] = {name: [] for name in SPLITS}
    for i in np.flatnonzero(keep):
        sides[assign(keys[i], sp.validation, sp.eval, sp.seed)].append(int(i))
    manifest = {
        "format": DATASET_FORMAT, "kind": kind,
        "sources": [_source_manifest(r) for r in results],
        "persona": None if builder.persona is None else builder.persona_manifest(spec),
        "steps": steps, "scrubbed": dict(total.scrubbed),
        "curation": c.model_dump(mode="json"), "split": sp.model_dump(mode="json"),
        "rows": {name: len(idx) for name, idx in sides.items()},
        "provenance": "each row's 'provenance': source type, file, line, ref (episode, run or conversation id), "
                      "agent, task, persona",
    }
    builder.stat.save()
    lines = {str(i): array("Q", [h for u in r.units for h in u.state.line_hashes]).tobytes()
             for i, r in enumerate(results)}  # lines/<i>.bin belongs to manifest["sources"][i]
    return Curated(rows, sides, manifest, lines, Work(builder.read, builder.reused))


def _source_manifest(r: SourceResult) -> dict:
    s = r.stats()
    return {"key": r.key, "type": r.src.type, "path": r.src.path, "settings": r.src.model_dump(mode="json"),
            "files": r.files, "records": sum(len(u.state.line_hashes) for u in r.units), "read": s.read,
            "invalid": s.invalid, "filtered": dict(s.filtered), "kept": sum(u.kept for u in r.units),
            "scrubbed": dict(s.scrubbed), "issues": [str(i) for i in s.issues[:10]]}


def store_dataset(ws: Workspace, curated: Curated) -> BuiltDataset:
    """Write a curated dataset to the content-addressed store (a no-op when the same content is there)."""
    rows, sides, manifest, lines = curated.rows, curated.sides, curated.manifest, curated.lines
    root = ws.store / "datasets"
    root.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(dir=root, prefix=".build-"))
    try:
        digest = hashlib.sha256()
        for name in SPLITS:
            h = hashlib.sha256()
            with open(tmp / f"{name}.jsonl", "wb") as f:
                for start in range(0, len(sides[name]), 10_000):
                    chunk = b"".join(rows[i] + b"\n" for i in sides[name][start:start + 10_000])
                    h.update(chunk)
                    f.write(chunk)
            digest.update(f"{name}.jsonl\0{h.hexdigest()}\0".encode())
        text = json.dumps(manifest, indent=1, sort_keys=True)
        (tmp / "manifest.json").write_text(text)
        digest.update(b"manifest.json\0" + text.encode() + b"\0")
        (tmp / "lines").mkdir()
        for index, blob in lines.items():
            (tmp / "lines" / f"{index}.bin").write_bytes(blob)
            digest.update(f"lines/{index}.bin\0".encode() + hashlib.sha256(blob).digest())
        sha = digest.hexdigest()
        final = root / sha
        if final.exists():  # same content already stored: reuse it
            shutil.rmtree(tmp)
        else:
            tmp.rename(final)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return BuiltDataset(final, sha, {name: len(idx) for name, idx in sides.items()}, curated.work)
