"""PII and secrets become placeholders; counts per kind, never values; ordinary text is left alone."""

from __future__ import annotations

import pytest

from levcustom.datasets.scrub import Scrubber


@pytest.mark.parametrize("text, kind", [
    ("mail jane.doe+ops@mail.example.co.uk now", "email"),
    ("call +1 (415) 555-0132 or 030 1234 5678", "phone"),
    ("key sk-proj-Abcdefghijklmnopqrstuvwxyz012345", "api_key"),
    ("sk-ant-api03-abcdefghijklmnopqrstuvwxyz", "api_key"),
    ("token ghp_0123456789abcdefghijklmnopqrstuvwxyzAB", "api_key"),
    ("AKIAIOSFODNN7EXAMPLE", "api_key"),
    ("AIzaSyA1234567890abcdefghijklmnopqrstuv", "api_key"),
    ("hf_abcdefghijklmnopqrstuvwxyzABCDEFGH", "api_key"),
    ("xoxb-1234567890-abcdefghij", "token"),
    ("Authorization: Bearer abcdefghijklmnop1234567890", "token"),
    ("eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxMjM0NTY3ODkwIn0.dozjgNryP4J3jVmNHl0w5N_XgL0n3I9PlFUP0THsR8U", "token"),
    ('{"password": "correct-horse-battery"}', "secret"),
    ("DB_PASSWD=s3cr3t-value!", "secret"),
    ("-----BEGIN RSA PRIVATE KEY-----\nMIIEow\n-----END RSA PRIVATE KEY-----", "private_key"),
])
def test_each_kind_is_replaced_and_counted(text, kind):
    s = Scrubber()
    out = s.scrub(text)
    assert f"[REDACTED_{kind.upper()}]" in out
    assert s.counts[kind] >= 1


def test_values_never_survive_and_text_still_reads():
    s = Scrubber()
    out = s.scrub('config: {"api_key": "zz9-plural-z-alpha"} then mail bob@example.com')
    assert out == 'config: {"api_key": "[REDACTED_SECRET]"} then mail [REDACTED_EMAIL]'
    assert dict(s.counts) == {"secret": 1, "email": 1}


@pytest.mark.parametrize("text", [
    "Released version 1.2.3 on 2024-01-15 at 10:30.",
    "The loop runs 1000 times; order #12345678 costs 12.50 EUR.",
    "Use the tokenizer and the password prompt of the CLI.",
    "Ünïcödé ✓ 你好 🚀 e\u0301",
    "Ping @reviewer about task-abcdefghijklmnopqrstuvwx1234 and the ghost_0123456789abcdefghijklmnopqrstuvwxyz.",
    "Write to root@localhost (no domain) or see the Bearer section.",
])
def test_ordinary_text_untouched(text):
    s = Scrubber()
    assert s.scrub(text) == text and not s.counts


def test_texts_of_an_example_scrubbed_together_come_back_apart():
    s = Scrubber()
    texts = ["mail a@b.io", "nothing here", "-----BEGIN RSA PRIVATE KEY-----\nx", "y\n-----END RSA PRIVATE KEY-----"]
    out = s.scrub_all(texts)
    assert out[:2] == ["mail [REDACTED_EMAIL]", "nothing here"] and len(out) == 4
    assert s.counts == {"email": 1}  # a key block split over two messages is not one match
    assert s.scrub_all(["plain", "text"]) == ["plain", "text"]
