"""PII and secret scrubbing: emails, phone numbers, API keys and tokens become placeholders.

Counts per kind are reported in the manifest; the values never are (nor logged anywhere).
Each pattern starts with a literal or a cheap pre-check, so text without a candidate costs a
few substring tests, not a regex scan per pattern.
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass


@dataclass(frozen=True)
class Rule:
    kind: str
    pattern: re.Pattern[str]
    applies: Callable[[str, str], bool]  # (text, lowercased text) -> worth running the regex
    keep_prefix: bool = False  # group 1 is the key name before the value: kept, so the text still reads well


def _has(*needles: str) -> Callable[[str, str], bool]:
    return lambda text, low: any(n in text for n in needles)


def _has_lower(*needles: str) -> Callable[[str, str], bool]:
    return lambda text, low: any(n in low for n in needles)


_DIGITS = re.compile(r"\d{3}")

# Order matters: specific token shapes first, so a key inside "api_key=..." is named for what it is.
RULES: tuple[Rule, ...] = (
    Rule("private_key", re.compile(r"-----BEGIN [A-Z ]*PRIVATE KEY-----.*?-----END [A-Z ]*PRIVATE KEY-----", re.S),
         _has("PRIVATE KEY-----")),
    Rule("api_key", re.compile(r"\bsk-(?:ant-|proj-)?[A-Za-z0-9_-]{20,}"), _has("sk-")),
    Rule("api_key", re.compile(r"\b(?:gh[pousr]_[A-Za-z0-9]{30,}|github_pat_[A-Za-z0-9_]{22,})"),
         _has("gh", "github_pat_")),
    Rule("api_key", re.compile(r"\b(?:AKIA|ASIA)[0-9A-Z]{16}\b"), _has("AKIA", "ASIA")),
    Rule("api_key", re.compile(r"\bAIza[0-9A-Za-z_-]{35}"), _has("AIza")),
    Rule("api_key", re.compile(r"\bhf_[A-Za-z0-9]{30,}"), _has("hf_")),
    Rule("token", re.compile(r"\bxox[abprs]-[A-Za-z0-9-]{10,}"), _has("xox")),
    Rule("token", re.compile(r"\beyJ[A-Za-z0-9_-]{8,}\.[A-Za-z0-9_-]{8,}\.[A-Za-z0-9_-]{8,}"), _has("eyJ")),
    Rule("token", re.compile(r"(?i)(?<=bearer )[A-Za-z0-9._~+/=-]{16,}"), _has_lower("bearer ")),
    Rule("secret", re.compile(r"(?i)((?<![A-Za-z0-9])(?:api[_-]?key|secret|token|password|passwd|pwd)"
                              r"(?:\\?[\"'])?\s*[:=]\s*(?:\\?[\"'])?)(?!\[REDACTED)[^\s\"'\\,;}]{6,}"),
         _has_lower("key", "secret", "token", "pass", "pwd"), keep_prefix=True),
    Rule("email", re.compile(r"[A-Za-z0-9._%+-]+@[A-Za-z0-9-]+(?:\.[A-Za-z0-9-]+)*\.[A-Za-z]{2,}"), _has("@")),
    Rule("phone", re.compile(r"(?<![\w.+-])(?:\+\d{1,3}[ .-]?)?(?:\(\d{2,4}\)[ .-]?|\d{2,4}[ .-])\d{3,4}[ .-]\d{3,4}"
                             r"(?![\w-])"), lambda text, low: _DIGITS.search(text) is not None),
)


class Scrubber:
    """Replaces every match with ``[REDACTED_<KIND>]`` and counts matches per kind."""

    def __init__(self) -> None:
        self.counts: Counter[str] = Counter()

    def scrub(self, text: str) -> str:
        low = text.lower()
        for rule in RULES:
            if not rule.applies(text, low):
                continue
            placeholder = f"[REDACTED_{rule.kind.upper()}]"
            text, n = rule.pattern.subn(rf"\g<1>{placeholder}" if rule.keep_prefix else placeholder, text)
            if n:
                self.counts[rule.kind] += n
                low = text.lower()
        return text
