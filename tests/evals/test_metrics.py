"""Deterministic metrics: each one passes and fails where it should, overlap scores match hand counts."""

from __future__ import annotations

import pytest

from levcustom.evals.metrics import chrf, json_schema_scorer, regex, rouge_l, score, tool_call_match


def test_pass_fail_metrics():
    assert score("exact_match", [' {"a": 1} ', "x"], ['{"a": 1}', "y"]) == 0.5
    assert score("contains", ["The answer is OK."], ["ok"]) == 1.0
    assert score("json_valid", ['{"tool": "x"}', "{tool: x}"], ["", ""]) == 0.5
    assert regex("order #A-1234 shipped", r"#A-\d{4}") == 1.0 and regex("order 1234", r"#A-\d{4}") == 0.0


def test_json_schema():
    scorer = json_schema_scorer({"type": "object", "required": ["tool"],
                                 "properties": {"tool": {"enum": ["weather", "email"]}}})
    assert scorer('{"tool": "weather"}', "") == 1.0
    assert scorer('{"tool": "fax"}', "") == 0.0
    assert scorer('{"tool": ', "") == 0.0


def test_tool_call_match_accepts_the_usual_shapes_and_compares_arguments_as_json():
    want = '{"name": "get_weather", "arguments": {"city": "Paris", "unit": "C"}}'
    openai_style = ('{"tool_calls": [{"type": "function", "function": {"name": "get_weather", '
                    '"arguments": "{\\"unit\\": \\"C\\", \\"city\\": \\"Paris\\"}"}}]}')
    anthropic_style = '{"type": "tool_use", "name": "get_weather", "input": {"city": "Paris", "unit": "C"}}'
    assert tool_call_match(openai_style, want) == tool_call_match(anthropic_style, want) == 1.0
    assert tool_call_match('{"name": "get_weather", "arguments": {"city": "Rome", "unit": "C"}}', want) == 0.0
    assert tool_call_match('{"name": "get_time", "arguments": {"city": "Paris", "unit": "C"}}', want) == 0.0
    assert tool_call_match("call get_weather(Paris)", want) == 0.0
    assert tool_call_match('{"tool": "calendar"}', '{"name": "calendar"}') == 1.0


def test_rouge_l_counts_the_longest_common_subsequence():
    # LCS("the cat sat on the mat", "the cat is on the mat") = the cat on the mat = 5 words of 6 each.
    assert rouge_l("the cat sat on the mat", "The cat is on the mat.") == pytest.approx(5 / 6)
    assert rouge_l("a b c d", "a b") == pytest.approx(2 * 0.5 * 1 / 1.5)
    assert rouge_l("x", "y") == 0.0 and rouge_l("", "") == 1.0


def test_chrf_by_hand():
    # "ab" vs "ac": unigrams a,b vs a,c -> P = R = 1/2; bigrams ab vs ac -> 0. Averages P = R = 1/4.
    assert chrf("ab", "ac") == pytest.approx(0.25)
    # "abc" vs "ab": n=1 P 2/3 R 1; n=2 P 1/2 R 1; n=3 only in the hypothesis (skipped).
    p, r = (2 / 3 + 1 / 2) / 2, 1.0
    assert chrf("a b c", "ab") == pytest.approx(5 * p * r / (4 * p + r))
    assert chrf("same text", "same  text") == 1.0 and chrf("xyz", "abc") == 0.0
