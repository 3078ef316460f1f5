"""The split is a function of content and seed: stable under appends, eval never trained on."""

from __future__ import annotations

import hashlib
from collections import Counter

from levcustom.datasets.split import assign


def key(i: int) -> bytes:
    return hashlib.sha256(str(i).encode()).digest()[:16]


def test_fractions_and_determinism():
    sides = Counter(assign(key(i), 0.1, 0.05, 7) for i in range(20000))
    assert abs(sides["validation"] / 20000 - 0.1) < 0.01 and abs(sides["eval"] / 20000 - 0.05) < 0.01
    assert [assign(key(i), 0.1, 0.05, 7) for i in range(50)] == [assign(key(i), 0.1, 0.05, 7) for i in range(50)]
    assert [assign(key(i), 0.1, 0.05, 7) for i in range(50)] != [assign(key(i), 0.1, 0.05, 8) for i in range(50)]


def test_growing_validation_never_moves_eval_rows():
    before = {i for i in range(5000) if assign(key(i), 0.1, 0.05, 1) == "eval"}
    after = {i for i in range(5000) if assign(key(i), 0.2, 0.05, 1) == "eval"}
    assert before == after
