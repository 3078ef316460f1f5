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
from functools import cached_property


@dataclass(frozen=True)
class Rule:
    kind: str
    pattern: re.Pattern[str]
    needles: tuple[str, ...] = ()  # the regex can only match text containing one of these (empty: see hint)
    lower: bool = False  # look for the needles in the lowercased text
    hint: Callable[[str], bool] | None = None  # a cheap test that must pass first (for needle-less shapes)
    keep_prefix: bool = False  # group 1 is the key name before the value: kept, so the text still reads well
    left: frozenset[str] | None = None  # a match extends left over these characters (at least one)

    @cached_property
    def replacement(self) -> str:
        placeholder = f"[REDACTED_{self.kind.upper()}]"
        return rf"\g<1>{placeholder}" if self.keep_prefix else placeholder

    @cached_property
    def lowered(self) -> tuple[str, ...]:
        return tuple(n.lower() for n in self.needles)

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


# Each pattern starts with a literal or a small character set and checks the character before
# it with a lookbehind placed after that start: a pattern that starts with \b or a lookbehind
# makes Python's regex engine try every position (about 15x slower on chat text).
_W = r"[A-Za-z0-9_]"


def _after(prefix: str) -> str:
    """``prefix`` not preceded by a word character (``\bprefix``, written to keep the literal first)."""
    return prefix + r"(?<!" + _W + re.escape(prefix) + ")"


# Order matters: specific token shapes first, so a key inside "api_key=..." is named for what it is.
RULES: tuple[Rule, ...] = (
    Rule("private_key", re.compile(r"-----BEGIN [A-Z ]*PRIVATE KEY-----.*?-----END [A-Z ]*PRIVATE KEY-----", re.S),
         ("PRIVATE KEY-----",)),
    Rule("api_key", re.compile(_after("sk-") + r"(?:ant-|proj-)?[A-Za-z0-9_-]{20,}"), ("sk-",)),
    Rule("api_key", re.compile(_after("gh") + r"(?:[pousr]_[A-Za-z0-9]{30,}|ithub_pat_[A-Za-z0-9_]{22,})"),
         ("gh",)),
    Rule("api_key", re.compile(_after("A") + r"(?:KIA|SIA)[0-9A-Z]{16}\b"), ("AKIA", "ASIA")),
    Rule("api_key", re.compile(_after("AIza") + r"[0-9A-Za-z_-]{35}"), ("AIza",)),
    Rule("api_key", re.compile(_after("hf_") + r"[A-Za-z0-9]{30,}"), ("hf_",)),
    Rule("token", re.compile(_after("xox") + r"[abprs]-[A-Za-z0-9-]{10,}"), ("xox",)),
    Rule("token", re.compile(_after("eyJ") + r"[A-Za-z0-9_-]{8,}\.[A-Za-z0-9_-]{8,}\.[A-Za-z0-9_-]{8,}"), ("eyJ",)),
    Rule("token", re.compile(r"([Bb][Ee][Aa][Rr][Ee][Rr] +)[A-Za-z0-9._~+/=-]{16,}"), ("bearer ",), lower=True,
         keep_prefix=True),
    Rule("secret", re.compile(r"([AaSsTtPp](?<![A-Za-z0-9][AaSsTtPp])(?i:pi[_-]?key|ecret|oken|assw(?:or)?d|wd)"
                              r"(?:\\?[\"'])?\s*[:=]\s*(?:\\?[\"'])?)(?!\[REDACTED)[^\s\"'\\,;}]{6,}"),
         ("key", "secret", "token", "pass", "pwd"), lower=True, keep_prefix=True),
    # Found from the "@" (a literal) on; the local part is then taken from the characters before it.
    Rule("email", re.compile(r"@[A-Za-z0-9-]+(?:\.[A-Za-z0-9-]+)*\.[A-Za-z]{2,}"), ("@",),
         left=frozenset("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789._%+-")),
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
        text, found = _scrub(text, RULES)
        self.counts.update(found)
        return text

    def scrub_all(self, texts: list[str]) -> list[str]:
        """Scrub each text of an example in one pass over all of them (most examples hold nothing)."""
        if any(_SEP in t for t in texts):  # cannot be split back safely: one by one
            return [self.scrub(t) for t in texts]
        joined = _SEP.join(texts)
        low = joined.lower()
        present = [n for n in _NEEDLES if n in low]
        digits = _digit_groups(joined)
        if not present and not digits:
            return texts  # most examples: one scan per needle over the joined text, and done
        rules = [r for r in RULES if (digits and r.hint is not None) or any(n in present for n in r.lowered)]
        scrubbed, found = _scrub(joined, rules)
        if not found:
            return texts
        parts = scrubbed.split(_SEP)
        if len(parts) != len(texts):  # a private key block spanned two texts: redo one by one
            return [self.scrub(t) for t in texts]
        self.counts.update(found)
        return parts


def _subn(rule: Rule, text: str) -> tuple[str, int]:
    if rule.left is None:
        return rule.pattern.subn(rule.replacement, text)
    out, end, n = [], 0, 0
    for m in rule.pattern.finditer(text):
        start = m.start()
        while start > end and text[start - 1] in rule.left:
            start -= 1
        if start == m.start():  # nothing before the "@": not an address
            continue
        out += [text[end:start], rule.replacement]
        end, n = m.end(), n + 1
    return ("".join(out) + text[end:], n) if n else (text, 0)


def _scrub(text: str, rules: list[Rule] | tuple[Rule, ...]) -> tuple[str, Counter[str]]:
    found: Counter[str] = Counter()
    low = text.lower()
    for rule in rules:
        if not rule.worth_running(text, low):
            continue
        text, n = _subn(rule, text)
        if n:
            found[rule.kind] += n
            low = text.lower()
    return text, found
