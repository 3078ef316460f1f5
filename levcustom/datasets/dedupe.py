"""Exact and near-duplicate detection.

Exact: a 16-byte digest of the example's normalized text (case and whitespace folded).
Near: MinHash signatures over word 3-gram shingles of the non-system text (a shared system
prompt would make every row look alike), computed for a whole batch with numpy:

* shingle hashes come from prefix hashes of the batch's bytes (a substring's polynomial hash
  is an O(1) difference), so no Python code runs per shingle;
* one-permutation hashing (Li et al. 2012) bins each shingle hash into one of ``NUM_PERM``
  bins and keeps the minimum per bin; empty bins are filled by rotation densification
  (Shrivastava & Li 2014), so a signature costs one hash per shingle instead of ``NUM_PERM``;
* LSH bands (sized for the threshold as in datasketch) find candidate pairs; a candidate is a
  duplicate when the share of equal signature bins (the Jaccard estimate) reaches the threshold.
  The earlier row always wins, so appending rows never drops a row that was kept before.
"""

from __future__ import annotations

import hashlib
from functools import lru_cache

import numpy as np

from levcustom.datasets.jsonl import ChatExample, Example, message_lists, normalize

NUM_PERM = 64
BATCH_BYTES = 1 << 22
_P = 0x100000001B3  # odd, so invertible modulo 2**64
_MIX = np.uint64(0x9E3779B97F4A7C15)


def exact_key(example: Example) -> bytes:
    """16-byte identity of an example's normalized text."""
    return bytes.fromhex(example.key()[:32])


def near_text(example: Example) -> str:
    """The text near-dedupe compares: every non-system message and tool call, normalized."""
    parts = [c for msgs in message_lists(example) for r, c in msgs if r != "system"]
    if isinstance(example, ChatExample):
        parts += [f"{c.name} {c.arguments}" for t in example.tools for c in t.calls]
    text = normalize(" ".join(parts))
    return text if text.count(" ") >= 2 else text + " \x01 \x02"  # at least one 3-word shingle


def keys(example: Example, near: bool) -> tuple[bytes, str]:
    """``exact_key`` and (when ``near``) ``near_text`` of an example, normalizing each message once."""
    if not isinstance(example, ChatExample) or example.tools:
        return exact_key(example), near_text(example) if near else ""
    norm = [(r, normalize(c)) for r, c in example.messages]
    key = hashlib.sha256("\x1e".join(f"{r}\x1f{n}" for r, n in norm).encode()).digest()[:16]
    if not near:
        return key, ""
    text = " ".join(n for r, n in norm if r != "system" and n)
    return key, text if text.count(" ") >= 2 else text + " \x01 \x02"


@lru_cache(maxsize=4)
def _powers(n: int) -> tuple[np.ndarray, np.ndarray]:
    """P**i and P**-i modulo 2**64 for i < n (uint64 arithmetic wraps, which is the modulus)."""
    with np.errstate(over="ignore"):
        pw = np.cumprod(np.full(n, _P, dtype=np.uint64))
        ipw = np.cumprod(np.full(n, pow(_P, -1, 2**64), dtype=np.uint64))
    return np.concatenate(([np.uint64(1)], pw[:-1])), np.concatenate(([np.uint64(1)], ipw[:-1]))


def signatures(texts: list[str]) -> np.ndarray:
    """MinHash signatures (``len(texts)`` x ``NUM_PERM``, uint32) of normalized texts (from ``near_text``)."""
    out = [np.zeros((0, NUM_PERM), dtype=np.uint32)]
    batch: list[str] = []
    size = 0
    for text in texts:  # batches of about BATCH_BYTES keep the power tables small and reused
        if batch and size + len(text) > BATCH_BYTES:
            out.append(_batch_signatures(batch))
            batch, size = [], 0
        batch.append(text)
        size += len(text) + 1
    if batch:
        out.append(_batch_signatures(batch))
    return np.concatenate(out)


def _batch_signatures(texts: list[str]) -> np.ndarray:
    n = len(texts)
    buf = np.frombuffer("\n".join(texts).encode(), dtype=np.uint8)
    pw, ipw = _powers(max(BATCH_BYTES, 1 << (len(buf) - 1).bit_length()))
    with np.errstate(over="ignore"):
        prefix = np.cumsum((buf.astype(np.uint64) + np.uint64(1)) * ipw[:len(buf)])
    seps = np.flatnonzero((buf == 32) | (buf == 10))
    starts = np.concatenate(([0], seps + 1))
    ends = np.concatenate((seps, [len(buf)]))
    row = np.searchsorted(np.flatnonzero(buf == 10), starts, side="right")  # row of each word
    same = row[:-2] == row[2:]  # a shingle is three consecutive words of one row
    first, last, shingle_row = starts[:-2][same], ends[2:][same], row[:-2][same]
    with np.errstate(over="ignore"):
        before = np.where(first > 0, prefix[np.maximum(first - 1, 0)], np.uint64(0))
        h = (prefix[last - 1] - before) * pw[last - 1]
        h = ((h * _MIX) >> np.uint64(32)).astype(np.uint32)
    bins = h >> np.uint32(32 - 6)  # NUM_PERM = 64 = 2**6 bins
    value = h & np.uint32((1 << 26) - 1)
    sig = np.full(n * NUM_PERM, np.iinfo(np.uint32).max, dtype=np.uint32)
    np.minimum.at(sig, shingle_row * NUM_PERM + bins, value)
    return _densify(sig.reshape(n, NUM_PERM))


def _densify(sig: np.ndarray) -> np.ndarray:
    """Fill each empty bin from the next non-empty bin to its right (circularly), offset by the distance,
    so two rows agree on an empty bin only when they agree on the bin it borrows from."""
    empty = sig == np.iinfo(np.uint32).max
    if not empty.any():
        return sig
    k = sig.shape[1]
    idx = np.where(~np.concatenate((empty, empty), axis=1), np.arange(2 * k), 2 * k)
    nxt = np.minimum.accumulate(idx[:, ::-1], axis=1)[:, ::-1][:, :k]  # next filled position (may wrap)
    src = nxt % k
    dist = (nxt - np.arange(k)).astype(np.uint32)
    rows = np.arange(sig.shape[0])[:, None]
    out = sig[rows, src] + dist * np.uint32(0x9E3779B1)
    return np.where(empty, out, sig).astype(np.uint32)


@lru_cache(maxsize=16)
def bands_for(threshold: float, num_perm: int = NUM_PERM) -> tuple[int, int]:
    """(bands, rows per band) minimizing false positives + false negatives around ``threshold`` (datasketch's rule)."""
    xs = np.linspace(0.0, 1.0, 201)
    best, best_err = (1, num_perm), float("inf")
    for b in range(1, num_perm + 1):
        for r in range(1, num_perm // b + 1):
            p = 1 - (1 - xs ** r) ** b
            fp = np.trapezoid(np.where(xs < threshold, p, 0), xs)
            fn = np.trapezoid(np.where(xs >= threshold, 1 - p, 0), xs)
            if fp + fn < best_err:
                best, best_err = (b, r), fp + fn
    return best


def near_duplicates(sig: np.ndarray, threshold: float) -> np.ndarray:
    """For each row, whether an earlier row is a near-duplicate of it (estimated Jaccard >= threshold)."""
    n = sig.shape[0]
    dup = np.zeros(n, dtype=bool)
    if n < 2:
        return dup
    bands, rows = bands_for(threshold)
    weights = np.array([int(hashlib.blake2b(bytes([i]), digest_size=8).hexdigest(), 16) | 1 for i in range(rows)],
                       dtype=np.uint64)
    index = np.arange(n)
    for band in range(bands):
        cols = sig[:, band * rows:(band + 1) * rows].astype(np.uint64)
        with np.errstate(over="ignore"):
            key = (cols * weights).sum(axis=1, dtype=np.uint64)
        _, first, inverse = np.unique(key, return_index=True, return_inverse=True)
        rep = first[inverse]  # earliest row of the same bucket
        cand = np.flatnonzero(rep != index)
        if len(cand):
            agree = (sig[cand] == sig[rep[cand]]).mean(axis=1)
            dup[cand[agree >= threshold]] = True
    return dup
