"""The state lock: one apply at a time, with who holds it (like Terraform's lock info)."""

from __future__ import annotations

import json
import os
import socket
import uuid
from dataclasses import asdict, dataclass
from pathlib import Path

from levcustom.errors import LevcustomError, LockHeldError
from levcustom.state.lockfile import now_iso


@dataclass(frozen=True)
class LockInfo:
    id: str
    operation: str
    who: str
    pid: int
    host: str
    created: str


class StateLock:
    """Exclusive lock created with O_EXCL; released on exit, cleared by ``levcustom unlock ID``."""

    def __init__(self, path: Path, operation: str):
        self.path = path
        self.operation = operation
        self.info: LockInfo | None = None

    def __enter__(self) -> StateLock:
        info = LockInfo(id=str(uuid.uuid4()), operation=self.operation,
                        who=os.environ.get("USER") or os.environ.get("LOGNAME") or "unknown",
                        pid=os.getpid(), host=socket.gethostname(), created=now_iso())
        try:
            fd = os.open(self.path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
        except FileExistsError:
            held = read_lock_info(self.path)
            if held is None:
                raise LockHeldError(f"state is locked ({self.path.name} exists but is unreadable); "
                                    f"if no apply is running, delete it") from None
            raise LockHeldError(
                f"state is locked by {held.who}@{held.host} pid {held.pid} ({held.operation}, since {held.created}); "
                f"if that process is gone, run: levcustom unlock {held.id}") from None
        with os.fdopen(fd, "w") as f:
            json.dump(asdict(info), f)
            f.flush()
            os.fsync(f.fileno())
        self.info = info
        return self

    def __exit__(self, *exc) -> None:
        if self.info and read_lock_info(self.path) == self.info:
            self.path.unlink(missing_ok=True)


def read_lock_info(path: Path) -> LockInfo | None:
    try:
        return LockInfo(**json.loads(path.read_text()))
    except (OSError, ValueError, TypeError):
        return None


def force_unlock(path: Path, lock_id: str) -> LockInfo:
    """Remove a stale lock, only when ``lock_id`` matches the holder's id."""
    if not path.exists():
        raise LevcustomError("state is not locked")
    held = read_lock_info(path)
    if held is None:
        raise LevcustomError(f"{path.name} is unreadable, so its id cannot be checked; delete it by hand")
    if held.id != lock_id:
        raise LevcustomError(f"lock id does not match: the lock is held under {held.id}")
    path.unlink()
    return held
