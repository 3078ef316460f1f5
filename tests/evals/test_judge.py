"""LLM judges through the real anthropic / openai SDKs against loopback fakes."""

from __future__ import annotations

import json
import re

import pytest

from fakes.anthropic_server import FakeAnthropic, FakeError
from levcustom.errors import LevcustomError
from levcustom.evals.judge import JudgeRequest, judge_all, swapped
from levcustom.spec.schema import JudgeSpec
from levcustom.state.jsoncache import JsonCache

QUESTION = [{"role": "user", "content": "What is the capital of France?"}]


def answers_in(body: dict) -> list[str]:
    text = body["messages"][-1]["content"]
    return re.findall(r"<answer>\n(.*?)\n</answer>", text, re.DOTALL)


def grade_by_content(body: dict) -> str:
    """A judge that reads the answer: Paris scores 5, anything else 1."""
    [answer] = answers_in(body)
    return json.dumps({"score": 5 if "Paris" in answer else 1, "reason": "checked the city"})


@pytest.fixture
def anthropic_env(monkeypatch):
    def start(responder, **kw) -> FakeAnthropic:
        fake = FakeAnthropic(responder, **kw)
        monkeypatch.setenv("ANTHROPIC_API_KEY", "test")
        monkeypatch.setenv("ANTHROPIC_BASE_URL", fake.base_url)
        return fake
    return start


def spec(**kw) -> JudgeSpec:
    return JudgeSpec(**{"model": "claude-judge", "rubric": "Correct and concise.", **kw})


def test_pointwise_scores_are_normalized_and_cached(anthropic_env, tmp_path):
    requests = [JudgeRequest(QUESTION, "Paris", a) for a in ("Paris.", "Lyon.", "It is Paris.")]
    cache = JsonCache(tmp_path / "judge.json")
    with anthropic_env(grade_by_content) as fake:
        verdicts = judge_all(spec(), requests, cache)
        assert [v.score for v in verdicts] == [1.0, 0.0, 1.0] and not any(v.cached for v in verdicts)
        assert len(fake.requests) == 3
        body = fake.requests[0]
        assert body["model"] == "claude-judge" and "impartial" in body["system"]
        assert "Correct and concise." in body["messages"][0]["content"]
        again = judge_all(spec(), requests, JsonCache(tmp_path / "judge.json"))  # a new run, from disk
        assert [v.score for v in again] == [1.0, 0.0, 1.0] and all(v.cached for v in again)
        assert len(fake.requests) == 3  # the re-run cost no judge call
        judge_all(spec(rubric="Answer in French."), requests[:1], cache)  # another rubric is another verdict
        assert len(fake.requests) == 4


def test_pairwise_order_is_randomized_so_position_bias_cancels(anthropic_env, tmp_path):
    requests = [JudgeRequest([{"role": "user", "content": f"question {i}"}], "", f"tuned {i}", f"base {i}")
                for i in range(40)]
    shown_first = sum(not swapped(r) for r in requests)
    assert 12 <= shown_first <= 28  # about half the cases show the tuned answer first
    with anthropic_env(lambda body: '{"winner": "A", "reason": "first is best"}'):
        biased = judge_all(spec(mode="pairwise", requests_per_minute=60000), requests, JsonCache(None))
    # a judge that always picks the first answer gives the tuned model a win exactly when it came first
    assert sum(v.score for v in biased) == shown_first

    def prefers_tuned(body: dict) -> str:
        first, second = answers_in(body)
        return json.dumps({"winner": "A" if first.startswith("tuned") else "B"})
    with anthropic_env(prefers_tuned):
        fair = judge_all(spec(mode="pairwise", requests_per_minute=60000), requests, JsonCache(None))
    assert all(v.score == 1.0 for v in fair)


def test_unparsable_replies_and_api_errors_are_per_case_failures_and_retried(anthropic_env, tmp_path):
    replies = iter(["I think it is good", '{"score": 9}', '{"score": 4, "reason": "ok"}'])

    def responder(body: dict) -> str:
        if "broken" in body["messages"][0]["content"]:
            raise FakeError(400, "prompt is too long")
        return next(replies)
    cache = JsonCache(tmp_path / "judge.json")
    requests = [JudgeRequest(QUESTION, "", a) for a in ("one", "two", "three", "broken")]
    with anthropic_env(responder, ) as fake:
        verdicts = judge_all(spec(concurrency=1), requests, cache)
        assert verdicts[0].score is None and "not the JSON asked for: 'I think it is good'" in verdicts[0].error
        assert verdicts[1].score is None and "not a number in 1..5" in verdicts[1].error
        assert verdicts[2].score == 0.75 and verdicts[2].error is None
        assert verdicts[3].score is None and "BadRequestError" in verdicts[3].error \
            and "prompt is too long" in verdicts[3].error
        fake.responder = lambda body: '{"score": 5}'
        retried = judge_all(spec(concurrency=1), requests, cache)
    assert [v.cached for v in retried] == [False, False, True, False]  # only good verdicts were cached
    assert [v.score for v in retried] == [1.0, 1.0, 0.75, 1.0]


def test_concurrent_calls_respect_the_rate_limit(anthropic_env):
    requests = [JudgeRequest(QUESTION, "", f"answer {i}") for i in range(30)]
    with anthropic_env(lambda body: '{"score": 3}', latency=0.2, max_requests_per_s=20) as fake:
        verdicts = judge_all(spec(concurrency=8, requests_per_minute=1100), requests, JsonCache(None))
    assert all(v.score == 0.5 for v in verdicts)
    assert fake.max_in_flight > 1  # concurrent ...
    assert fake.rejected == 0  # ... and never over the server's rate limit


def test_missing_key_is_a_clear_error(monkeypatch):
    monkeypatch.delenv("ANTHROPIC_API_KEY", raising=False)
    monkeypatch.delenv("ANTHROPIC_AUTH_TOKEN", raising=False)
    with pytest.raises(LevcustomError, match="needs ANTHROPIC_API_KEY"):
        judge_all(spec(), [JudgeRequest(QUESTION, "", "x")], JsonCache(None))
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    with pytest.raises(LevcustomError, match="needs OPENAI_API_KEY"):
        judge_all(spec(provider="openai"), [JudgeRequest(QUESTION, "", "x")], JsonCache(None))


def test_openai_judge_through_the_openai_sdk(monkeypatch):
    from fakes.openai_server import FakeOpenAI

    def responder(model: str, messages: list[dict]) -> str:
        assert messages[0]["role"] == "system"
        return json.dumps({"score": 5 if "Paris" in messages[-1]["content"].split("Answer to grade:")[1] else 2})
    with FakeOpenAI(responder=responder) as fake:
        monkeypatch.setenv("OPENAI_API_KEY", "test")
        monkeypatch.setenv("OPENAI_BASE_URL", fake.base_url)
        verdicts = judge_all(spec(provider="openai", model="gpt-4.1-mini"),
                             [JudgeRequest(QUESTION, "Paris", "Paris"), JudgeRequest(QUESTION, "Paris", "Rome")],
                             JsonCache(None))
    assert [v.score for v in verdicts] == [1.0, 0.25]
