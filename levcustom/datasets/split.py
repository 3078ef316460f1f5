"""Hash-based train / validation / eval assignment, and per-group caps.

A row's side depends only on its content and the seed, so appending rows never moves an old
row to another split, and the eval split is never trained on.
"""

from __future__ import annotations

import hashlib
from typing import Literal

SplitName = Literal["train", "validation", "eval"]
SPLITS: tuple[SplitName, ...] = ("train", "validation", "eval")


def bucket(key: bytes, seed: int) -> float:
    """A row's position in [0, 1), from its content key and the seed."""
    return int.from_bytes(hashlib.blake2b(key, digest_size=8, key=str(seed).encode()).digest()) / 2**64


def assign(key: bytes, validation: float, eval_: float, seed: int) -> SplitName:
    """``eval`` takes the lowest buckets, ``validation`` the next ones, the rest trains."""
    b = bucket(key, seed)
    if b < eval_:
        return "eval"
    return "validation" if b < eval_ + validation else "train"

