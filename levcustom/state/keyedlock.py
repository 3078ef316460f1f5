"""Process-wide locks by key: threads doing the same keyed work (one job per fingerprint, one
upload per content hash) take turns, so the second finds what the first made."""

from __future__ import annotations

import threading

_GUARD = threading.Lock()
_LOCKS: dict[str, threading.Lock] = {}


def keyed_lock(key: str) -> threading.Lock:
    with _GUARD:
        return _LOCKS.setdefault(key, threading.Lock())
