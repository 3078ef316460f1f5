"""Episodes and experiences become chat examples through filters and a template."""

from __future__ import annotations

from dsfixtures import episode
from levcustom.datasets.episodic import EpisodeReader
from levcustom.datasets.jsonl import ChatExample, Provenance
from levcustom.datasets.outcomes import Filtered, Invalid
from levcustom.spec.schema import EpisodicMemorySource

PROV = Provenance("episodic_memory", "ep.jsonl", 1)


def read(row, **kw):
    src = EpisodicMemorySource.model_validate({"type": "episodic_memory", "path": "ep", **kw})
    return EpisodeReader(src)(row, PROV)


def test_default_template_and_provenance():
    ex = read(episode(7))
    assert isinstance(ex, ChatExample)
    assert ex.messages == (("user", "Review change 7 of the parser"), ("assistant", "Add a bounds check before 7."))
    assert (ex.provenance.ref, ex.provenance.task, ex.provenance.line) == ("ep-7", "code_review", 1)


def test_custom_template_fills_fields():
    ex = read(episode(1, outcome="success"), template={"system": "Type {type}.", "user": "Context: {context}",
                                                       "assistant": "{approach} ({outcome})"})
    assert ex.messages[0] == ("system", "Type code_review.")
    assert ex.messages[2] == ("assistant", "Add a bounds check before 1. (success)")


def test_filters_name_themselves():
    assert read(episode(1, outcome="failure"), outcome="success") == Filtered("outcome")
    assert isinstance(read(episode(1, outcome="SUCCESS"), outcome=["success", "partial"]), ChatExample)
    assert read(episode(1, confidence=0.5), min_confidence=0.8) == Filtered("min_confidence")
    assert read(episode(1, type_="planning"), episode_type="code_review") == Filtered("episode_type")
    assert read(episode(1, timestamp="2026-09-30T23:59:59Z"), since="2026-10-01") == Filtered("since")
    assert read(episode(1, timestamp="2026-10-01T00:00:00+00:00"), since="2026-10-01T00:00:00Z").messages
    assert read(episode(1, timestamp="2026-11-01T00:00:00Z"), until="2026-11-01") == Filtered("until")
    assert isinstance(read({**episode(1), "timestamp": 1790000000}, since="2026-01-01"), ChatExample)  # Unix time


def test_experiences_are_flat_and_filtered_by_success():
    exp = {"approach": "Retry with backoff.", "outcome": "worked", "context": "Flaky API", "success": True,
           "confidence": 0.9, "id": "exp-1"}
    assert read(exp, success=True).messages[1] == ("assistant", "Retry with backoff.")
    assert read({**exp, "success": False}, success=True) == Filtered("success")
    assert read({**exp, "context": {"repo": "x"}}).messages[0] == ("user", '{"repo":"x"}')  # objects become JSON


def test_invalid_episodes():
    assert read("text") == Invalid("expected a JSON object (an episode or an experience)")
    assert read({"content": {"approach": "a"}}) == Invalid("'context' is missing or empty")
    assert isinstance(read({**episode(1), "timestamp": "yesterday"}, since="2026-01-01"), Invalid)
