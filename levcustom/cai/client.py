"""Claude through the Messages API, for generation: rate limited, and every reply cached by the
exact request, so a crashed or re-run generation pays only for calls it has not made yet.

The cache is an append-only JSONL log (one reply a line, flushed at once): a kill loses at most
the line being written, which is then ignored. The anthropic SDK reads ANTHROPIC_API_KEY and
ANTHROPIC_BASE_URL itself and retries 408/409/429/5xx and 529 (overloaded) with backoff; what
still fails is returned as an error for the caller to record, never turned into data.
"""

from __future__ import annotations

import hashlib
import json
import os
import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol

from levcustom.cai.settings import CaiSettings
from levcustom.errors import LevcustomError
from levcustom.evals.ratelimit import RateLimiter


@dataclass(frozen=True)
class Reply:
    text: str | None
    error: str | None = None
    cached: bool = False


@dataclass
class Usage:
    """Tokens the API reported for the calls made in this run (cached replies cost nothing)."""

    calls: int = 0
    cached: int = 0
    input_tokens: int = 0
    output_tokens: int = 0
    cache_read_input_tokens: int = 0
    cache_creation_input_tokens: int = 0
    lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def add(self, usage) -> None:
        with self.lock:
            self.calls += 1
            for name in ("input_tokens", "output_tokens", "cache_read_input_tokens", "cache_creation_input_tokens"):
                setattr(self, name, getattr(self, name) + (getattr(usage, name, None) or 0))

    def add_cached(self) -> None:
        with self.lock:
            self.cached += 1

    def as_dict(self) -> dict[str, int]:
        return {k: getattr(self, k) for k in ("calls", "cached", "input_tokens", "output_tokens",
                                              "cache_read_input_tokens", "cache_creation_input_tokens")}


class ReplyLog:
    """Replies by request hash, persisted as an append-only JSONL file."""

    def __init__(self, path: Path):
        self.path = path
        self._lock = threading.Lock()
        self.replies: dict[str, str] = {}
        if path.is_file():
            for line in path.read_text(encoding="utf-8", errors="replace").splitlines():
                try:
                    entry = json.loads(line)
                    self.replies[entry["key"]] = entry["text"]
                except (ValueError, KeyError, TypeError):
                    continue  # a line torn by a kill: that call is made again
        path.parent.mkdir(parents=True, exist_ok=True)
        self._file = open(path, "a", encoding="utf-8")  # noqa: SIM115 (closed by close())

    def get(self, key: str) -> str | None:
        return self.replies.get(key)

    def put(self, key: str, text: str) -> None:
        with self._lock:
            self.replies[key] = text
            self._file.write(json.dumps({"key": key, "text": text}, ensure_ascii=False) + "\n")
            self._file.flush()

    def close(self) -> None:
        self._file.close()


def request_key(model: str, system: str | None, user: str, max_tokens: int, sample: int) -> str:
    """The cache key of one generation request (``sample`` tells independent draws apart)."""
    return hashlib.sha256(json.dumps(["v1", model, system, user, max_tokens, sample],
                                     ensure_ascii=False).encode()).hexdigest()


def cached_reply(log: ReplyLog, usage: Usage, key: str) -> Reply | None:
    """The logged reply to a request already made (counted as cached), or None."""
    hit = log.get(key)
    if hit is None:
        return None
    usage.add_cached()
    return Reply(hit, cached=True)


class Completer(Protocol):
    """What CAI generation calls: Claude (``MessagesClient``) or a local stand-in (``cai.local``)."""

    settings: CaiSettings
    usage: Usage

    def complete(self, model: str, system: str | None, user: str, sample: int = 0) -> Reply:
        """The reply to one user message, or the error that kept it from being made."""


class MessagesClient:
    """``complete`` = one Messages API call, cached and rate limited."""

    def __init__(self, settings: CaiSettings, log: ReplyLog):
        if not (os.environ.get("ANTHROPIC_API_KEY") or os.environ.get("ANTHROPIC_AUTH_TOKEN")):
            raise LevcustomError("method cai: Claude generates the data: set ANTHROPIC_API_KEY (and "
                                 "ANTHROPIC_BASE_URL for a gateway)")
        import anthropic

        self.settings = settings
        self.log = log
        self.usage = Usage()
        self._errors = (anthropic.APIError,)
        self._client = anthropic.Anthropic(max_retries=settings.max_retries, timeout=settings.timeout_s)
        self._limiter = RateLimiter(settings.requests_per_minute)

    def complete(self, model: str, system: str | None, user: str, sample: int = 0) -> Reply:
        """The reply to one user message; ``sample`` tells apart independent draws of the same request
        (the model samples; this SDK takes no temperature)."""
        s = self.settings
        key = request_key(model, system, user, s.max_tokens, sample)
        if (hit := cached_reply(self.log, self.usage, key)) is not None:
            return hit
        kwargs = {}
        if system:
            block = {"type": "text", "text": system}
            if s.prompt_caching:  # the constitution is the prefix every critic call shares
                block["cache_control"] = {"type": "ephemeral"}
            kwargs["system"] = [block]
        self._limiter.acquire()
        try:
            message = self._client.messages.create(model=model, max_tokens=s.max_tokens,
                                                   messages=[{"role": "user", "content": user}], **kwargs)
        except self._errors as exc:
            status = getattr(exc, "status_code", None)
            where = f"HTTP {status}: " if status else ""
            return Reply(None, f"Messages API error after retries: {where}{str(exc)[:200]}")
        self.usage.add(message.usage)
        text = "".join(b.text for b in message.content if b.type == "text").strip()
        if not text:
            return Reply(None, f"empty reply (stop reason {message.stop_reason})")
        self.log.put(key, text)
        return Reply(text)
