"""Read one unit of a source (a file, or a whole source) into curated rows, cached on disk.

A unit's result is everything the later, cross-row steps need: each kept example serialized
(with provenance), its exact-dedupe key and MinHash signature, plus counts per filter, scrub
counts, located issues and the hash of every record line. It is cached under
``.levcustom/cache/datasets/<unit key>/``, keyed by what shapes it (file, source settings,
persona, per-row curation), and records how far the file was read: when the file only grew,
the next build reads the appended tail alone.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import tempfile
from array import array
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import orjson

from levcustom.datasets.curate import RowCurator
from levcustom.datasets.dedupe import NUM_PERM, keys, signatures
from levcustom.datasets.jsonl import Example, Kind, Provenance
from levcustom.datasets.outcomes import Filtered, Invalid
from levcustom.datasets.personality import Persona, apply_persona
from levcustom.datasets.records import BadLine, ReadState, read_jsonl
from levcustom.datasets.scrub import Scrubber
from levcustom.datasets.sources import RowReader, row_reader
from levcustom.errors import Issue
from levcustom.spec.schema import Curation, HfDiskSource, PreferencesSource, Source

MAX_ISSUES = 50  # kept per unit (all are counted): enough to fix a file, bounded for a huge broken one
UNIT_FORMAT = "unit-v1"  # bump when a unit's content changes meaning: old cache entries are then ignored


@dataclass
class UnitStats:
    read: int = 0
    invalid: int = 0
    filtered: Counter[str] = field(default_factory=Counter)
    scrubbed: Counter[str] = field(default_factory=Counter)
    issues: list[Issue] = field(default_factory=list)

    def add(self, other: UnitStats) -> None:
        self.read += other.read
        self.invalid += other.invalid
        self.filtered.update(other.filtered)
        self.scrubbed.update(other.scrubbed)
        self.issues.extend(other.issues[:max(0, MAX_ISSUES - len(self.issues))])


@dataclass
class Unit:
    """The curated rows of one file (or whole source) and how they were obtained."""

    rows: list[bytes]
    keys: list[bytes]
    sig: np.ndarray | None
    stats: UnitStats
    state: ReadState
    sha256: str = ""  # of the content read (a file's bytes up to state.offset)

    @property
    def kept(self) -> int:
        return len(self.rows)

    def extend(self, tail: Unit) -> None:
        """Append the result of reading this unit's file on from where it stopped."""
        self.rows += tail.rows
        self.keys += tail.keys
        if self.sig is not None and tail.sig is not None:
            self.sig = np.concatenate((self.sig, tail.sig))
        self.stats.add(tail.stats)
        self.state = tail.state
        self.sha256 = tail.sha256


@dataclass
class Pipeline:
    """What turns a source's rows into curated, keyed rows (one per source of a build)."""

    source_type: str
    reader: RowReader | None
    curator: RowCurator
    persona: Persona | None
    near: bool

    def curate(self, example: Example, stats: UnitStats) -> tuple[bytes, bytes, str] | None:
        """Persona, then per-row curation; the serialized row, its key and near-dedupe text, or None."""
        if self.persona is not None:
            example = apply_persona(self.persona, example)
        curated = self.curator(example)
        if isinstance(curated, Filtered):
            stats.filtered[curated.name] += 1
            return None
        return (orjson.dumps(curated.to_row()), *keys(curated, self.near))

    def new_unit(self, state: ReadState) -> tuple[Unit, list[str]]:
        self.curator.scrubber = Scrubber()  # counts per unit, so cached units report their own
        return Unit([], [], None, UnitStats(), state), []

    def finish(self, unit: Unit, texts: list[str]) -> Unit:
        unit.stats.scrubbed = Counter(self.curator.scrubber.counts)
        unit.sig = signatures(texts) if self.near else None
        return unit

    def read_file(self, path: Path, rel: str, state: ReadState) -> Unit:
        """Read a JSONL file from ``state`` on (a fresh state reads it all)."""
        unit, texts = self.new_unit(state)
        stats = unit.stats
        for line, row in read_jsonl(path, state):
            stats.read += 1
            out = Invalid(row.message) if isinstance(row, BadLine) else \
                self.reader(row, Provenance(self.source_type, rel, line))
            self.take(out, line, rel, unit, texts, row.column if isinstance(row, BadLine) else 1)
        return self.finish(unit, texts)

    def take(self, out: Example | Filtered | Invalid, line: int, rel: str, unit: Unit, texts: list[str],
             column: int = 1) -> None:
        """Record one read row's outcome in ``unit``."""
        stats = unit.stats
        if isinstance(out, Invalid):
            stats.invalid += 1
            if len(stats.issues) < MAX_ISSUES:
                stats.issues.append(Issue(rel, line, column, "", out.message))
        elif isinstance(out, Filtered):
            stats.filtered[out.name] += 1
        else:
            curated = self.curate(out, stats)
            if curated is not None:
                unit.rows.append(curated[0])
                unit.keys.append(curated[1])
                texts.append(curated[2])


def make_pipeline(src: Source, kind: Kind, curation: Curation, persona: Persona | None) -> Pipeline:
    """The pipeline of one source of a build."""
    reader = None if src.type == "preferences" and src.derive == "ratings" else row_reader(src, kind)
    return Pipeline(src.type, reader, RowCurator(curation), persona, curation.dedupe == "near")


@dataclass(frozen=True)
class FileJob:
    """Reading one file of a row-wise source from ``state`` on; picklable, for a worker process."""

    src: Source
    kind: Kind
    curation: Curation
    persona: Persona | None
    path: Path
    rel: str
    state: ReadState


def run_file_job(job: FileJob) -> Unit:
    return make_pipeline(job.src, job.kind, job.curation, job.persona).read_file(job.path, job.rel, job.state)


# Files are read in worker processes (one per core) when there is this much to read: below it,
# starting workers and sending their rows back costs more than it saves.
PARALLEL_MIN_BYTES = 32 << 20


def run_file_jobs(jobs: list[FileJob]) -> list[Unit]:
    """Run jobs in order of results; in parallel processes when they are several and large enough."""
    todo = sum(max(0, j.path.stat().st_size - j.state.offset) for j in jobs)
    workers = min(len(jobs), os.cpu_count() or 1)
    if workers < 2 or todo < PARALLEL_MIN_BYTES:
        return [run_file_job(j) for j in jobs]
    import multiprocessing
    from concurrent.futures import ProcessPoolExecutor

    # fork: workers start in milliseconds and share the loaded modules (no re-import per worker)
    with ProcessPoolExecutor(workers, mp_context=multiprocessing.get_context("fork")) as pool:
        return list(pool.map(run_file_job, jobs))


def file_sha256(path: Path, limit: int | None = None) -> str:
    """sha256 of a file's first ``limit`` bytes (all when None)."""
    h = hashlib.sha256()
    left = limit
    with open(path, "rb") as f:
        while chunk := f.read(1 << 20 if left is None else min(1 << 20, left)):
            h.update(chunk)
            if left is not None:
                left -= len(chunk)
                if left <= 0:
                    break
    return h.hexdigest()


class UnitCache:
    """Unit results on disk, one folder per unit key; a damaged entry is a miss, never an error."""

    def __init__(self, root: Path):
        self.root = root

    def load(self, key: str) -> Unit | None:
        folder = self.root / key
        try:
            meta = json.loads((folder / "meta.json").read_text())
            if meta["format"] != UNIT_FORMAT:
                return None
            blob = (folder / "rows.bin").read_bytes()
            rows = blob.split(b"\n") if blob else []
            keys_blob = (folder / "keys.bin").read_bytes()
            keys = [keys_blob[i:i + 16] for i in range(0, len(keys_blob), 16)]
            sig = np.load(folder / "sig.npy") if (folder / "sig.npy").is_file() else None
            hashes = array("Q")
            hashes.frombytes((folder / "lines.bin").read_bytes())
        except (OSError, ValueError, KeyError):
            return None
        if len(rows) != meta["kept"] or len(keys) != meta["kept"] or (sig is not None and len(sig) != meta["kept"]):
            return None
        s = meta["stats"]
        stats = UnitStats(s["read"], s["invalid"], Counter(s["filtered"]), Counter(s["scrubbed"]),
                          [Issue(**i) for i in s["issues"]])
        state = ReadState(meta["offset"], meta["lines"], meta["ends_with_newline"], hashes.tolist())
        return Unit(rows, keys, sig, stats, state, meta["sha256"])

    def save(self, key: str, unit: Unit) -> None:
        self.root.mkdir(parents=True, exist_ok=True)
        tmp = Path(tempfile.mkdtemp(dir=self.root, prefix=".tmp-"))
        try:
            (tmp / "rows.bin").write_bytes(b"\n".join(unit.rows))
            (tmp / "keys.bin").write_bytes(b"".join(unit.keys))
            if unit.sig is not None:
                np.save(tmp / "sig.npy", unit.sig.reshape(-1, NUM_PERM))
            (tmp / "lines.bin").write_bytes(array("Q", unit.state.line_hashes).tobytes())
            s = unit.stats
            meta = {"format": UNIT_FORMAT, "kept": unit.kept, "sha256": unit.sha256, "offset": unit.state.offset,
                    "lines": unit.state.lines, "ends_with_newline": unit.state.ends_with_newline,
                    "stats": {"read": s.read, "invalid": s.invalid, "filtered": dict(s.filtered),
                              "scrubbed": dict(s.scrubbed), "issues": [i.__dict__ for i in s.issues]}}
            (tmp / "meta.json").write_text(json.dumps(meta))
            final = self.root / key
            old = self.root / f".old-{key}"
            if final.exists():
                final.rename(old)
            tmp.rename(final)
            shutil.rmtree(old, ignore_errors=True)
        except BaseException:
            shutil.rmtree(tmp, ignore_errors=True)
            raise


def read_whole(pipeline: Pipeline, root: Path, src: HfDiskSource | PreferencesSource,
               files: list[tuple[Path, str]]) -> Unit:
    """Read a source that needs all its rows at once: ``hf_disk`` (the folder ``root``), or
    ``preferences`` derived from ratings (its JSONL ``files``)."""
    unit, texts = pipeline.new_unit(ReadState())
    stats = unit.stats
    if isinstance(src, HfDiskSource):
        from levcustom.datasets.hfdisk import read_rows

        for index, row in read_rows(root, src):
            stats.read += 1
            pipeline.take(pipeline.reader(row, Provenance("hf_disk", src.path, index)), index, src.path, unit, texts)
        return pipeline.finish(unit, texts)
    from levcustom.datasets.preferences import RatingPairs

    pairs = RatingPairs(src)
    hashes: list[int] = []
    for path, rel in files:
        state = ReadState()
        for line, row in read_jsonl(path, state):
            stats.read += 1
            problem = Invalid(row.message) if isinstance(row, BadLine) else pairs.add(row, Provenance("preferences",
                                                                                                     rel, line))
            if problem is not None:
                pipeline.take(problem, line, rel, unit, texts)
        hashes += state.line_hashes
    for example in pairs.pairs():
        pipeline.take(example, example.provenance.line, example.provenance.file, unit, texts)
    stats.filtered.update(pairs.filtered)  # after pairing, which counts the rows it could not pair
    unit.state.line_hashes = hashes
    return pipeline.finish(unit, texts)
