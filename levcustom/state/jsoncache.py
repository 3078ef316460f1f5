"""A small on-disk JSON cache (a dict), rewritten atomically when it changed. Only a cache:
an unreadable file is treated as empty."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from levcustom.state.atomic import atomic_write_text


class JsonCache:
    def __init__(self, file: Path | None):
        self.file = file
        self.data: dict[str, Any] = {}
        self._dirty = False
        if file and file.is_file():
            try:
                loaded = json.loads(file.read_text())
                self.data = loaded if isinstance(loaded, dict) else {}
            except (OSError, ValueError):
                self.data = {}

    def get(self, key: str) -> Any:
        return self.data.get(key)

    def put(self, key: str, value: Any) -> None:
        self.data[key] = value
        self._dirty = True

    def save(self) -> None:
        if self.file and self._dirty:
            self.file.parent.mkdir(parents=True, exist_ok=True)
            atomic_write_text(self.file, json.dumps(self.data))
            self._dirty = False
