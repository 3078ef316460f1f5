"""Deterministic per-case metrics: each returns 1.0 (pass) or 0.0 (fail)."""

from __future__ import annotations

import json
from collections.abc import Callable


def exact_match(output: str, expected: str) -> float:
    return float(output.strip() == expected.strip())


def contains(output: str, expected: str) -> float:
    return float(expected.strip().casefold() in output.casefold())


def json_valid(output: str, expected: str) -> float:
    try:
        json.loads(output.strip())
    except ValueError:
        return 0.0
    return 1.0


METRIC_FUNCTIONS: dict[str, Callable[[str, str], float]] = {
    "exact_match": exact_match,
    "contains": contains,
    "json_valid": json_valid,
}


def score(metric: str, outputs: list[str], expected: list[str]) -> float:
    """Mean of the per-case metric over a suite."""
    fn = METRIC_FUNCTIONS[metric]
    return sum(fn(o, e) for o, e in zip(outputs, expected, strict=True)) / len(outputs)
