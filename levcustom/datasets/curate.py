"""Per-row curation: scrubbing, then the length, token, language and format filters.

Runs on each example as it is read (so a build can cache its result per source file); the
steps that compare rows with each other (dedupe, caps, split) run later, in ``build``.
"""

from __future__ import annotations

from collections.abc import Callable

import orjson

from levcustom.datasets.jsonl import ChatExample, Example, message_lists, with_texts
from levcustom.datasets.outcomes import Filtered
from levcustom.datasets.scrub import Scrubber
from levcustom.spec.schema import Curation


def _token_counter(tokenizer: str) -> Callable[[str], int]:
    if tokenizer == "approx":
        return lambda text: (len(text) + 3) // 4  # ~4 characters per token for English text
    import quicktok  # lazy: only a spec asking for an exact count pays for loading an encoding

    enc = quicktok.get_encoding(tokenizer)
    return enc.count


def _language_of() -> Callable[[str], str]:
    import py3langid  # lazy: ~0.15 s to load its model, and ~50 us a row

    return lambda text: py3langid.classify(text)[0]


def final_answer(example: Example) -> str:
    """The text the model learns to produce: the last assistant message (the chosen one for a pair)."""
    msgs = example.messages if isinstance(example, ChatExample) else example.chosen
    return msgs[-1][1]


class RowCurator:
    """One spec's per-row curation; ``scrubber.counts`` holds how many values of each kind were replaced."""

    def __init__(self, curation: Curation):
        self.c = curation
        self.scrubber = Scrubber()
        self.count_tokens = _token_counter(curation.tokenizer) if curation.max_tokens else None
        self.language = _language_of() if curation.languages else None
        self.languages = {lang.lower() for lang in curation.languages or []}

    def __call__(self, example: Example) -> Example | Filtered:
        c = self.c
        texts = example.texts()
        if c.scrub_pii:
            scrubbed = self.scrubber.scrub_all(texts)
            if scrubbed != texts:  # most rows hold nothing to scrub: keep them as they are
                example, texts = with_texts(example, scrubbed), scrubbed
        if c.min_chars is not None or c.max_chars is not None:
            chars = sum(len(t) for t in texts)
            if c.min_chars is not None and chars < c.min_chars:
                return Filtered("min_chars")
            if c.max_chars is not None and chars > c.max_chars:
                return Filtered("max_chars")
        if self.count_tokens and sum(self.count_tokens(t) for t in texts) > c.max_tokens:
            return Filtered("max_tokens")
        if self.language:
            spoken = " ".join(t for msgs in message_lists(example) for r, t in msgs if r in ("user", "assistant"))
            if self.language(spoken) not in self.languages:
                return Filtered("languages")
        if c.answer_format == "json":
            try:
                orjson.loads(final_answer(example))
            except orjson.JSONDecodeError:
                return Filtered("answer_format")
        return example
