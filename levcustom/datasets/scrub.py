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
    needles: tuple[str, ...] = ()  # the regex can only match text containing one of these (empty: see hint)
    lower: bool = False  # look for the needles in the lowercased text
    hint: Callable[[str], bool] | None = None  # a cheap test that must pass first (for needle-less shapes)
    keep_prefix: bool = False  # group 1 is the key name before the value: kept, so the text still reads well

    def worth_running(self, text: str, low: str) -> bool:
        if self.hint is not None:
            return self.hint(text)
        return any(map((low if self.lower else text).__contains__, self.needles))


_DIGIT_SHAPE = bytes.maketrans(b"0123456789 .-()", b"0000000000-----")


def _digit_groups(text: str) -> bool:
    """Two digits split by one or two separators ("5 5", "5) 5"), the least a phone number has.
    A byte translation and two substring tests: far cheaper than a regex scan."""
    shape = text.encode("utf-8", "surrogatepass").translate(_DIGIT_SHAPE)
    return b"0-0" in shape or b"0--0" in shape


# Order matters: specific token shapes first, so a key inside "api_key=..." is named for what it is.
RULES: tuple[Rule, ...] = (
    Rule("private_key", re.compile(r"-----BEGIN [A-Z ]*PRIVATE KEY-----.*?-----END [A-Z ]*PRIVATE KEY-----", re.S),
         ("PRIVATE KEY-----",)),
    Rule("api_key", re.compile(r"\bsk-(?:ant-|proj-)?[A-Za-z0-9_-]{20,}"), ("sk-",)),
    Rule("api_key", re.compile(r"\b(?:gh[pousr]_[A-Za-z0-9]{30,}|github_pat_[A-Za-z0-9_]{22,})"),
         ("gh", "github_pat_")),
    Rule("api_key", re.compile(r"\b(?:AKIA|ASIA)[0-9A-Z]{16}\b"), ("AKIA", "ASIA")),
    Rule("api_key", re.compile(r"\bAIza[0-9A-Za-z_-]{35}"), ("AIza",)),
    Rule("api_key", re.compile(r"\bhf_[A-Za-z0-9]{30,}"), ("hf_",)),
    Rule("token", re.compile(r"\bxox[abprs]-[A-Za-z0-9-]{10,}"), ("xox",)),
    Rule("token", re.compile(r"\beyJ[A-Za-z0-9_-]{8,}\.[A-Za-z0-9_-]{8,}\.[A-Za-z0-9_-]{8,}"), ("eyJ",)),
    Rule("token", re.compile(r"(?i)(?<=bearer )[A-Za-z0-9._~+/=-]{16,}"), ("bearer ",), lower=True),
    Rule("secret", re.compile(r"(?i)((?<![A-Za-z0-9])(?:api[_-]?key|secret|token|password|passwd|pwd)"
                              r"(?:\\?[\"'])?\s*[:=]\s*(?:\\?[\"'])?)(?!\[REDACTED)[^\s\"'\\,;}]{6,}"),
         ("key", "secret", "token", "pass", "pwd"), lower=True, keep_prefix=True),
    Rule("email", re.compile(r"[A-Za-z0-9._%+-]+@[A-Za-z0-9-]+(?:\.[A-Za-z0-9-]+)*\.[A-Za-z]{2,}"), ("@",)),
    Rule("phone", re.compile(r"(?<![\w.+-])(?:\+\d{1,3}[ .-]?)?(?:\(\d{2,4}\)[ .-]?|\d{2,4}[ .-])\d{3,4}[ .-]\d{3,4}"
                             r"(?![\w-])"), hint=_digit_groups),
)


# Texts of one example are scrubbed as one string: no pattern matches across this separator
# (every value pattern stops at a newline), so each text comes back on its own.
_SEP = "\n\x00\n"
_NEEDLES = tuple(sorted({n.lower() for r in RULES for n in r.needles}))
assert all(r.needles or r.hint is _digit_groups for r in RULES), "the quick check must cover every rule"


class Scrubber:
    """Replaces every match with ``[REDACTED_<KIND>]`` and counts matches per kind."""

    def __init__(self) -> None:
        self.counts: Counter[str] = Counter()

    def scrub(self, text: str) -> str:
        low = text.lower()
        for rule in RULES:
            if not rule.worth_running(text, low):
                continue
            placeholder = f"[REDACTED_{rule.kind.upper()}]"
            text, n = rule.pattern.subn(rf"\g<1>{placeholder}" if rule.keep_prefix else placeholder, text)
            if n:
                self.counts[rule.kind] += n
                low = text.lower()
        return text

    def scrub_all(self, texts: list[str]) -> list[str]:
        """Scrub each text of an example in one pass over all of them (most examples hold nothing)."""
        if any(_SEP in t for t in texts):  # cannot be split back safely: one by one
            return [self.scrub(t) for t in texts]
        joined = _SEP.join(texts)
        if not any(map(joined.lower().__contains__, _NEEDLES)) and not _digit_groups(joined):
            return texts  # no rule could match: two cheap scans instead of one check per rule
        counts = Counter(self.counts)
        scrubbed = self.scrub(joined)
        if scrubbed == joined:
            return texts
        parts = scrubbed.split(_SEP)
        if len(parts) != len(texts):  # a private key block spanned two texts: redo one by one
            self.counts = counts
            return [self.scrub(t) for t in texts]
        return parts
