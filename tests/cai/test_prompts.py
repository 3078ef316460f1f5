"""The labeler's reply parsing and the reproducible choices (pure functions)."""

from __future__ import annotations

from levcustom.cai.prompts import choose, parse_label


def test_labels_are_parsed_or_recorded_as_malformed():
    assert parse_label('Sure. {"choice": "b", "reason": "safer"}').choice == "B"
    assert parse_label('{"choice": "A"}').reason == ""
    bad = parse_label("I prefer the first one")
    assert bad.choice is None and "not the JSON asked for" in bad.error
    assert "not A or B" in parse_label('{"choice": "C"}').error


def test_choices_are_reproducible_and_spread():
    picks = [choose(0, f"prompt-{i}", "round1", 4) for i in range(200)]
    assert picks == [choose(0, f"prompt-{i}", "round1", 4) for i in range(200)]
    assert set(picks) == {0, 1, 2, 3}
    assert picks != [choose(1, f"prompt-{i}", "round1", 4) for i in range(200)]
