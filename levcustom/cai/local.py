"""A local model standing in for Claude in CAI generation, for offline runs: ``cai.model:
local:<base model>`` (a folder, an HF-cache id, or with ``provider: local`` a packaged model).

One child process (``levcustom.cai.local_child``) loads the model once and answers requests one
at a time, sampling at temperature 1 with a seed taken from the request, so a re-run draws the
same text and two draws of one prompt differ, as Claude's do. Replies share the append-only
cache of ``MessagesClient``: a killed generation pays only for the calls it had not finished.
A small model writes weak critiques and rarely the JSON a preference label needs; that shows up
as recorded failures, never as invented data.
"""

from __future__ import annotations

import json
import subprocess
import sys
import threading
from pathlib import Path
from types import SimpleNamespace

from levcustom.cai.client import Reply, ReplyLog, Usage, cached_reply, request_key
from levcustom.cai.settings import LOCAL_PREFIX, CaiSettings
from levcustom.errors import LevcustomError


class LocalMessagesClient:
    """``complete`` = one generation by the local model, cached like a Messages API call."""

    def __init__(self, settings: CaiSettings, log: ReplyLog, root: Path, model_sources: dict):
        self.settings = settings
        self.log = log
        self.usage = Usage()
        self._root = root
        self._sources = model_sources
        self._lock = threading.Lock()  # one model, one request at a time
        self._proc: subprocess.Popen | None = None

    def complete(self, model: str, system: str | None, user: str, sample: int = 0) -> Reply:
        key = request_key(model, system, user, self.settings.max_tokens, sample)
        if (hit := cached_reply(self.log, self.usage, key)) is not None:
            return hit
        request = {"system": system, "user": user, "max_tokens": self.settings.max_tokens, "seed": int(key[:8], 16)}
        with self._lock:
            proc = self._child(model.removeprefix(LOCAL_PREFIX))
            proc.stdin.write(json.dumps(request) + "\n")
            proc.stdin.flush()
            line = proc.stdout.readline()
        if not line:
            raise LevcustomError(f"cai: the local model {model!r} stopped: {proc.stderr.read()[-500:].strip()}")
        answer = json.loads(line)
        self.usage.add(SimpleNamespace(input_tokens=answer["input_tokens"], output_tokens=answer["output_tokens"]))
        if not answer["text"]:
            return Reply(None, "empty reply from the local model")
        self.log.put(key, answer["text"])
        return Reply(answer["text"])

    def _child(self, base_model: str) -> subprocess.Popen:
        if self._proc is None:
            self._proc = subprocess.Popen(
                [sys.executable, "-m", "levcustom.cai.local_child"], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                stderr=subprocess.PIPE, text=True, encoding="utf-8")
            self._proc.stdin.write(json.dumps({"base_model": base_model, "model_sources": self._sources,
                                               "root": str(self._root)}) + "\n")
            self._proc.stdin.flush()
        return self._proc

    def close(self) -> None:
        if self._proc is not None:
            self._proc.stdin.close()  # the child ends at end of input
            try:
                self._proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self._proc.kill()
            self._proc = None
