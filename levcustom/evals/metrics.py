"""Deterministic per-case metrics: ``fn(output, expected) -> score`` in 0..1.

Pass/fail metrics return exactly 1.0 or 0.0 (so McNemar's test applies to them); the text
overlap metrics (``rouge_l``, ``chrf``) return a fraction.
"""

from __future__ import annotations

import json
import re
from collections import Counter
from collections.abc import Callable
from typing import Any

Scorer = Callable[[str, str], float]

# Metrics scored 1/0 per case; the rest are graded (a fraction, seconds, or a judge's score).
PASS_FAIL = frozenset({"exact_match", "contains", "regex", "json_valid", "json_schema", "tool_call_match"})
# Metrics measured in units (seconds, tokens; lower is better), not scored in 0..1: gate them with max.
UNBOUNDED = frozenset({"latency", "tokens"})


def exact_match(output: str, expected: str) -> float:
    return float(output.strip() == expected.strip())


def contains(output: str, expected: str) -> float:
    return float(expected.strip().casefold() in output.casefold())


def regex(output: str, expected: str) -> float:
    """``expected`` is a Python regular expression searched anywhere in the output."""
    return float(re.search(expected, output) is not None)


def _json(output: str) -> Any:
    return json.loads(output.strip())


def json_valid(output: str, expected: str) -> float:
    try:
        _json(output)
    except ValueError:
        return 0.0
    return 1.0


def json_schema_scorer(schema: dict) -> Scorer:
    """The output parses as JSON and validates against ``schema`` (checked valid when loaded)."""
    from jsonschema import Draft202012Validator

    validator = Draft202012Validator(schema)

    def score(output: str, expected: str) -> float:
        try:
            value = _json(output)
        except ValueError:
            return 0.0
        return float(validator.is_valid(value))

    return score


def _tool_call(value: Any) -> tuple[str, Any] | None:
    """(name, arguments) from the usual tool-call shapes: ``{"name", "arguments"}``, OpenAI's
    ``{"tool_calls": [{"function": {...}}]}`` / ``{"function": {...}}``, Anthropic's ``{"name", "input"}``,
    or a bare ``{"tool": name}``. Arguments given as a JSON string are parsed."""
    if not isinstance(value, dict):
        return None
    if isinstance(value.get("tool_calls"), list) and value["tool_calls"]:
        return _tool_call(value["tool_calls"][0])
    if isinstance(value.get("function"), dict):
        return _tool_call(value["function"])
    name = value.get("name", value.get("tool"))
    if not isinstance(name, str):
        return None
    args = value.get("arguments", value.get("input", {}))
    if isinstance(args, str):
        try:
            args = json.loads(args) if args.strip() else {}
        except ValueError:
            return None
    return name, args


def tool_call_match(output: str, expected: str) -> float:
    """The output is a tool call with the expected name and the same arguments (compared as JSON)."""
    try:
        got, want = _tool_call(_json(output)), _tool_call(_json(expected))
    except ValueError:
        return 0.0
    return float(got is not None and got == want)


def _words(text: str) -> list[str]:
    return re.findall(r"\w+", text.casefold())


def rouge_l(output: str, expected: str) -> float:
    """ROUGE-L F1: longest common subsequence of words over the output and reference lengths."""
    a, b = _words(output), _words(expected)
    if not a or not b:
        return float(a == b)
    prev = [0] * (len(b) + 1)
    for x in a:
        cur = [0]
        for j, y in enumerate(b):
            cur.append(prev[j] + 1 if x == y else max(prev[j + 1], cur[j]))
        prev = cur
    lcs = prev[-1]
    if lcs == 0:
        return 0.0
    precision, recall = lcs / len(a), lcs / len(b)
    return 2 * precision * recall / (precision + recall)


def chrf(output: str, expected: str, max_n: int = 6, beta: float = 2.0) -> float:
    """chrF (Popović 2015): character n-gram F-score, n = 1..6, whitespace ignored, recall weighted
    by beta = 2; precision and recall are averaged over the n-gram orders that occur (as sacrebleu)."""
    hyp, ref = re.sub(r"\s+", "", output), re.sub(r"\s+", "", expected)
    if not hyp or not ref:
        return float(hyp == ref)
    precisions, recalls = [], []
    for n in range(1, max_n + 1):
        h = Counter(hyp[i:i + n] for i in range(len(hyp) - n + 1))
        r = Counter(ref[i:i + n] for i in range(len(ref) - n + 1))
        if not h or not r:
            continue
        common = sum((h & r).values())
        precisions.append(common / sum(h.values()))
        recalls.append(common / sum(r.values()))
    p, r = sum(precisions) / len(precisions), sum(recalls) / len(recalls)
    if p == 0 and r == 0:
        return 0.0
    return (1 + beta ** 2) * p * r / (beta ** 2 * p + r)


METRIC_FUNCTIONS: dict[str, Scorer] = {
    "exact_match": exact_match,
    "contains": contains,
    "regex": regex,
    "json_valid": json_valid,
    "tool_call_match": tool_call_match,
    "rouge_l": rouge_l,
    "chrf": chrf,
}


def score(metric: str, outputs: list[str], expected: list[str]) -> float:
    """Mean of the per-case metric over a suite."""
    fn = METRIC_FUNCTIONS[metric]
    return sum(fn(o, e) for o, e in zip(outputs, expected, strict=True)) / len(outputs)
