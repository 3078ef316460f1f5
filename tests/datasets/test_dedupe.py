"""Exact keys fold case and whitespace; MinHash LSH finds near-duplicates, keeping the earlier row."""

from __future__ import annotations

import random

import numpy as np

from levcustom.datasets.dedupe import bands_for, exact_key, near_duplicates, near_text, signatures
from levcustom.datasets.jsonl import ChatExample, Provenance

P = Provenance("jsonl", "f", 1)
WORDS = [f"word{i}" for i in range(3000)]


def chat(user: str, answer: str, system: str = "sys") -> ChatExample:
    return ChatExample((("system", system), ("user", user), ("assistant", answer)), P)


def test_exact_key_folds_case_and_whitespace():
    assert exact_key(chat("Hello  World", "ok")) == exact_key(chat("hello world", "OK"))
    assert exact_key(chat("hello world", "ok")) != exact_key(chat("hello world", "no"))


def test_near_text_ignores_the_system_prompt():
    assert near_text(chat("a b c", "d", system="one")) == near_text(chat("a b c", "d", system="two"))
    assert near_text(chat("hi", "yo")).startswith("hi yo")  # short texts are padded to one shingle


def test_near_duplicates_found_and_distinct_rows_kept():
    rng = random.Random(1)
    base = [" ".join(rng.choice(WORDS) for _ in range(80)) for _ in range(200)]
    texts = list(base)
    for i in range(0, 200, 4):  # a copy with 2 words changed: Jaccard of 3-grams about 0.86
        words = base[i].split()
        words[10], words[50] = "changed", "edited"
        texts.append(" ".join(words))
    dup = near_duplicates(signatures(texts), 0.7)
    assert not dup[:200].any()  # the originals come first and always stay
    assert dup[200:].mean() > 0.9
    assert not near_duplicates(signatures(base), 0.7).any()


def test_signatures_do_not_depend_on_batching():
    rng = random.Random(2)
    texts = [" ".join(rng.choice(WORDS) for _ in range(rng.randint(1, 300))) for _ in range(500)]
    whole = signatures(texts)
    assert np.array_equal(whole[123:130], signatures(texts[123:130]))
    assert whole.dtype == np.uint32 and whole.shape == (500, 64)


def test_bands_sized_for_threshold():
    b, r = bands_for(0.8)
    assert b * r <= 64 and 0.6 < (1 / b) ** (1 / r) < 0.95


def test_keys_match_their_slow_definitions():
    from levcustom.datasets.dedupe import keys

    for ex in (chat("Hello  World", "ok"), chat("x", "y"), chat("a b c d", "e", system="s t")):
        assert keys(ex, True) == (exact_key(ex), near_text(ex))
