"""Per-row filters: length, tokens, language, answer format; each names itself when it removes a row."""

from __future__ import annotations

from levcustom.datasets.curate import RowCurator
from levcustom.datasets.jsonl import ChatExample, Provenance
from levcustom.datasets.outcomes import Filtered
from levcustom.spec.schema import Curation

P = Provenance("jsonl", "f", 1)


def chat(user: str, answer: str) -> ChatExample:
    return ChatExample((("user", user), ("assistant", answer)), P)


def curate(example, **kw):
    return RowCurator(Curation.model_validate({"scrub_pii": False, **kw}))(example)


def test_length_filters():
    assert curate(chat("hi", "yo"), min_chars=10) == Filtered("min_chars")
    assert curate(chat("hello there", "x" * 100), max_chars=50) == Filtered("max_chars")
    assert isinstance(curate(chat("hello there", "fine"), min_chars=5, max_chars=50), ChatExample)


def test_token_filter_with_real_encoding():
    text = "tokenization " * 30
    assert curate(chat(text, "ok"), max_tokens=20) == Filtered("max_tokens")  # approx: chars / 4
    assert curate(chat(text, "ok"), max_tokens=40, tokenizer="cl100k_base") == Filtered("max_tokens")
    assert isinstance(curate(chat(text, "ok"), max_tokens=100, tokenizer="cl100k_base"), ChatExample)


def test_language_filter():
    english = chat("Could you please review this change to the billing service?", "It looks correct to me.")
    french = chat("Pourriez-vous relire cette modification du service de facturation ?", "Elle me semble correcte.")
    assert isinstance(curate(english, languages="en"), ChatExample)
    assert curate(french, languages=["en"]) == Filtered("languages")


def test_answer_format_json():
    assert curate(chat("route", "calendar"), answer_format="json") == Filtered("answer_format")
    assert isinstance(curate(chat("route", '{"tool": "calendar"}'), answer_format="json"), ChatExample)


def test_scrubbing_happens_before_filters_and_covers_tool_arguments():
    curator = RowCurator(Curation())
    from levcustom.datasets.jsonl import ToolCall, ToolTurn

    ex = ChatExample((("user", "mail a@b.io"), ("assistant", ""), ("tool", "ok"), ("assistant", "done")), P,
                     (ToolTurn(1, (ToolCall("c", "send", '{"to": "a@b.io"}'),)),))
    out = curator(ex)
    assert "a@b.io" not in str(out.to_row()) and curator.scrubber.counts["email"] == 2
