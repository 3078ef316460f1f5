"""LLM judges: a rubric-graded score per answer (pointwise) or a preference between two answers
(pairwise), through the anthropic SDK (the default) or the openai SDK.

Every verdict is cached by a hash of (prompt, answers as shown, rubric, judge), so re-running an
eval costs no judge call. Pairwise order is randomized per case (deterministically, so the cache
holds): position bias then cancels over a suite instead of favoring one model. A judge API error
or an answer that is not the JSON asked for is a per-case error, recorded and never scored as a pass.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor, as_completed
from dataclasses import dataclass
from typing import Protocol

from levcustom.errors import LevcustomError
from levcustom.evals.ratelimit import RateLimiter
from levcustom.spec.schema import JudgeSpec
from levcustom.state.jsoncache import JsonCache

PROMPT_VERSION = "judge-v1"  # bump when the prompts change: cached verdicts no longer apply
SAVE_EVERY = 50  # verdicts between cache saves, so a killed eval keeps most of what it paid for

SYSTEM = ("You are a strict, impartial evaluator of AI assistant answers. Judge only against the rubric. "
          "Reply with a single JSON object and nothing else.")


@dataclass(frozen=True)
class JudgeRequest:
    """One judgment: a conversation, its reference answer, and the tuned model's answer (pointwise)
    or the tuned and the reference model's answers (pairwise)."""

    messages: list[dict[str, str]]
    expected: str
    answer: str
    other: str | None = None  # pairwise: the reference model's answer


@dataclass(frozen=True)
class Verdict:
    """score: 0..1 from the tuned answer's side (pairwise: 1 win, 0.5 tie, 0 loss); None with ``error``."""

    score: float | None
    reason: str = ""
    error: str | None = None
    cached: bool = False


class JudgeClient(Protocol):
    errors: tuple[type[BaseException], ...]  # the SDK's API errors: a per-case failure, not a crash

    def complete(self, system: str, user: str) -> str:
        """The judge model's text reply."""


class AnthropicJudge:
    """Claude through the Messages API; key and base URL from ANTHROPIC_API_KEY / ANTHROPIC_BASE_URL."""

    def __init__(self, spec: JudgeSpec):
        if not (os.environ.get("ANTHROPIC_API_KEY") or os.environ.get("ANTHROPIC_AUTH_TOKEN")):
            raise LevcustomError("the anthropic judge needs ANTHROPIC_API_KEY in the environment")
        from anthropic import Anthropic, APIError

        self.client = Anthropic()
        self.errors = (APIError,)
        self.spec = spec

    def complete(self, system: str, user: str) -> str:
        reply = self.client.messages.create(model=self.spec.model, max_tokens=self.spec.max_tokens, system=system,
                                            messages=[{"role": "user", "content": user}])
        return "".join(block.text for block in reply.content if block.type == "text")


class OpenAIJudge:
    """An OpenAI chat model; key and base URL from OPENAI_API_KEY / OPENAI_BASE_URL."""

    def __init__(self, spec: JudgeSpec):
        if not os.environ.get("OPENAI_API_KEY"):
            raise LevcustomError("the openai judge needs OPENAI_API_KEY in the environment")
        from openai import APIError, OpenAI

        self.client = OpenAI()
        self.errors = (APIError,)
        self.spec = spec

    def complete(self, system: str, user: str) -> str:
        reply = self.client.chat.completions.create(
            model=self.spec.model, max_completion_tokens=self.spec.max_tokens,
            messages=[{"role": "system", "content": system}, {"role": "user", "content": user}])
        return reply.choices[0].message.content or ""


def make_client(spec: JudgeSpec) -> JudgeClient:
    """The SDK client for ``spec.provider`` (imported only here: plan never loads an SDK)."""
    return AnthropicJudge(spec) if spec.provider == "anthropic" else OpenAIJudge(spec)


# -- prompts and parsing ------------------------------------------------------------------

def _conversation(messages: list[dict[str, str]]) -> str:
    return "\n".join(f"[{m['role']}] {m['content']}" for m in messages)


def swapped(request: JudgeRequest) -> bool:
    """Pairwise: show the tuned answer second for about half the cases (decided by content, so the
    same case is always shown the same way and its cached verdict stays valid)."""
    blob = json.dumps([request.messages, request.answer, request.other])
    return hashlib.sha256(blob.encode()).digest()[0] & 1 == 1


def render(spec: JudgeSpec, request: JudgeRequest) -> str:
    """The user message sent to the judge."""
    head = (f"Rubric:\n{spec.rubric}\n\nConversation given to the assistant:\n{_conversation(request.messages)}\n\n"
            f"Reference answer (may be empty):\n{request.expected}\n\n")
    if spec.mode == "pointwise":
        return (head + f"Answer to grade:\n<answer>\n{request.answer}\n</answer>\n\n"
                f"Grade the answer against the rubric from 1 (worst) to {spec.scale} (best). Reply with JSON "
                f'only: {{"score": <integer 1-{spec.scale}>, "reason": "<one sentence>"}}')
    first, second = (request.other, request.answer) if swapped(request) else (request.answer, request.other)
    return (head + f"Answer A:\n<answer>\n{first}\n</answer>\n\nAnswer B:\n<answer>\n{second}\n</answer>\n\n"
            "Which answer is better against the rubric? Reply with JSON only: "
            '{"winner": "A" | "B" | "tie", "reason": "<one sentence>"}')


def parse(spec: JudgeSpec, request: JudgeRequest, text: str) -> Verdict:
    """The judge's reply as a verdict from the tuned answer's side, or a parse error naming the reply."""
    match = re.search(r"\{.*\}", text, re.DOTALL)
    try:
        data = json.loads(match.group(0)) if match else None
    except ValueError:
        data = None
    shown = text.strip().replace("\n", " ")[:120]
    if not isinstance(data, dict):
        return Verdict(None, error=f"judge reply is not the JSON asked for: {shown!r}")
    reason = str(data.get("reason", ""))
    if spec.mode == "pointwise":
        value = data.get("score")
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not 1 <= value <= spec.scale:
            return Verdict(None, error=f"judge score is not a number in 1..{spec.scale}: {shown!r}")
        return Verdict((value - 1) / (spec.scale - 1), reason)
    winner = str(data.get("winner", "")).strip().upper()
    if winner not in ("A", "B", "TIE"):
        return Verdict(None, error=f"judge winner is not A, B or tie: {shown!r}")
    tuned = "B" if swapped(request) else "A"
    return Verdict(0.5 if winner == "TIE" else float(winner == tuned), reason)


def cache_key(spec: JudgeSpec, request: JudgeRequest) -> str:
    """Hash of everything the verdict depends on: the rendered prompt (rubric, case, answers in the
    order shown) and the judge (provider, model, mode, scale)."""
    blob = json.dumps([PROMPT_VERSION, spec.provider, spec.model, spec.mode, spec.scale, spec.max_tokens,
                       SYSTEM, render(spec, request)])
    return hashlib.sha256(blob.encode()).hexdigest()[:32]


# -- running ------------------------------------------------------------------------------

def judge_all(spec: JudgeSpec, requests: list[JudgeRequest], cache: JsonCache,
              client_factory: Callable[[JudgeSpec], JudgeClient] = make_client,
              progress: Callable[[int, int], None] | None = None) -> list[Verdict]:
    """Verdicts for every request, in order: cached ones at once, the rest concurrently
    (``spec.concurrency`` in flight, at most ``spec.requests_per_minute``). Errors are not cached,
    so the next run retries them."""
    keys = [cache_key(spec, r) for r in requests]
    verdicts: list[Verdict | None] = []
    for key in keys:
        hit = cache.get(key)
        verdicts.append(Verdict(hit["score"], hit.get("reason", ""), cached=True) if hit else None)
    todo = [i for i, v in enumerate(verdicts) if v is None]
    if todo:
        client = client_factory(spec)
        limiter = RateLimiter(spec.requests_per_minute)

        def one(i: int) -> Verdict:
            limiter.acquire()
            try:
                text = client.complete(SYSTEM, render(spec, requests[i]))
            except client.errors as exc:
                return Verdict(None, error=f"judge API error: {type(exc).__name__}: {str(exc)[:200]}")
            return parse(spec, requests[i], text)

        with ThreadPoolExecutor(max_workers=spec.concurrency, thread_name_prefix="judge") as pool:
            futures = {pool.submit(one, i): i for i in todo}
            for done, future in enumerate(as_completed(futures), start=1):
                i = futures[future]
                verdicts[i] = verdict = future.result()
                if verdict.error is None:
                    cache.put(keys[i], {"score": verdict.score, "reason": verdict.reason})
                if done % SAVE_EVERY == 0:
                    cache.save()
                if progress:
                    progress(done, len(todo))
        cache.save()
    return [v for v in verdicts if v is not None]
