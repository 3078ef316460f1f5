"""File content hashes behind a stat cache (size, mtime_ns, inode, ctime_ns), like DVC's.

A no-change plan re-reads no file's contents: only ``os.stat`` per source. The ctime is in the key
because no user tool can set it back: a same-size edit whose mtime was restored (``touch -r``,
``cp -p``, some sync tools) is still re-hashed.
"""

from __future__ import annotations

import hashlib
import os
from dataclasses import dataclass
from pathlib import Path

from levcustom.state.jsoncache import JsonCache

_CHUNK = 1 << 20


@dataclass(frozen=True)
class FileInfo:
    """Content identity of a file: sha256, byte size and record (non-empty line) count."""

    sha256: str
    size: int
    records: int


def hash_file(path: Path) -> FileInfo:
    """Read a file once: sha256 and count of non-empty lines."""
    h = hashlib.sha256()
    size = records = 0
    carry = b""
    with open(path, "rb") as f:
        while chunk := f.read(_CHUNK):
            h.update(chunk)
            size += len(chunk)
            lines = (carry + chunk).split(b"\n")
            carry = lines.pop()
            records += sum(1 for line in lines if line.strip())
    if carry.strip():
        records += 1
    return FileInfo(h.hexdigest(), size, records)


class StatCache:
    """Maps path -> (stat key, FileInfo); persisted as one small JSON file."""

    def __init__(self, file: Path | None):
        self._cache = JsonCache(file)

    def info(self, path: Path) -> FileInfo:
        """FileInfo for ``path``; hashes only when size, mtime, inode or ctime changed."""
        st = os.stat(path)
        key = [st.st_size, st.st_mtime_ns, st.st_ino, st.st_ctime_ns]
        hit = self._cache.get(str(path))
        if hit and hit[:4] == key:
            return FileInfo(*hit[4:])
        info = hash_file(path)
        self._cache.put(str(path), key + [info.sha256, info.size, info.records])
        return info

    def save(self) -> None:
        self._cache.save()
