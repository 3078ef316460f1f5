"""``type: preferences``: chosen/rejected pairs for DPO.

``derive: none`` reads explicit pairs (any preference row shape of ``jsonl.parse_preference``).
``derive: ratings`` reads agent conversation logs (as ``type: interactions``) and pairs answers
to the same prompt: the highest-rated answer is chosen, the lowest rejected, when their ratings
differ by at least ``min_margin``. Provenance points at the chosen answer's line; ``ref`` is
``<chosen id> > <rejected id>``.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, replace

from levcustom.datasets.interactions import conversation, rating_of
from levcustom.datasets.jsonl import Messages, PreferenceExample, Provenance, example_from_row, row_key
from levcustom.datasets.outcomes import Filtered, Invalid
from levcustom.spec.schema import PreferencesSource


class PairReader:
    """``derive: none``: one explicit pair a row."""

    def __call__(self, row: object, prov: Provenance) -> PreferenceExample | Invalid:
        example, problem = example_from_row(row, "preference", prov)
        return Invalid(problem) if problem else example


@dataclass(frozen=True)
class _Rated:
    prompt: Messages
    answer: Messages
    rating: float
    provenance: Provenance


class RatingPairs:
    """``derive: ratings``: collects rated answers, then pairs them per prompt (needs every row first)."""

    def __init__(self, src: PreferencesSource):
        self.src = src
        self.groups: dict[str, list[_Rated]] = {}
        self.filtered: Counter[str] = Counter()

    def add(self, row: object, prov: Provenance) -> Invalid | None:
        """Take one log row; returns why it is invalid, if it is."""
        found = conversation(row, self.src, prov)
        if isinstance(found, Invalid):
            return found
        if isinstance(found, Filtered):
            self.filtered[found.name] += 1
            return None
        msgs, _, prov = found
        rating = rating_of(row)
        if rating is None:
            self.filtered["rating"] += 1
            return None
        prompt, answer = msgs[:-1], msgs[-1:]
        if not prompt:
            return Invalid("a rated conversation needs a prompt before its answer")
        self.groups.setdefault(row_key(prompt), []).append(_Rated(prompt, answer, rating, prov))
        return None

    def pairs(self) -> list[PreferenceExample]:
        """One pair per prompt whose best and worst answers differ enough, in first-seen order."""
        out = []
        for rated in self.groups.values():
            best = max(rated, key=lambda r: r.rating)  # max/min keep the first of equals: deterministic
            worst = min(rated, key=lambda r: r.rating)
            if best.rating - worst.rating < self.src.min_margin or best.answer == worst.answer:
                self.filtered["min_margin"] += len(rated)
                continue
            self.filtered["pairing"] += len(rated) - 1  # the other answers of the prompt went into this one pair
            ref = f"{best.provenance.ref or best.provenance.line} > {worst.provenance.ref or worst.provenance.line}"
            out.append(PreferenceExample(best.prompt, best.answer, worst.answer, replace(best.provenance, ref=ref)))
        return out
