"""Where things live in a levcustom repository (one place, so no module guesses paths)."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from levcustom.errors import LevcustomError


@dataclass(frozen=True)
class Workspace:
    """A repository root: specs, conf, lockfile, and the git-ignored ``.levcustom/`` work area."""

    root: Path

    def __post_init__(self) -> None:
        object.__setattr__(self, "root", Path(self.root).resolve())  # resolved once, compared often

    @property
    def lockfile(self) -> Path:
        return self.root / "levcustom.lock"

    @property
    def state_lock(self) -> Path:
        return self.root / ".levcustom.lock.info"

    @property
    def conf_dir(self) -> Path:
        return self.root / "conf"

    @property
    def specs_dir(self) -> Path:
        return self.root / "specs"

    @property
    def work(self) -> Path:
        return self.root / ".levcustom"

    @property
    def cache(self) -> Path:
        return self.work / "cache"

    @property
    def store(self) -> Path:
        """Content-addressed artifacts: ``store/<kind>/<sha256>/``."""
        return self.work / "store"

    @property
    def runs(self) -> Path:
        """Per-job working folders (checkpoints, logs), keyed by stage fingerprint."""
        return self.work / "runs"

    def resolve_path(self, rel: str) -> Path:
        """A user-given path, confined to the repository (no ``..`` or symlink escapes)."""
        p = (self.root / rel).resolve()
        if p != self.root and self.root not in p.parents:
            raise LevcustomError(f"path {rel!r} points outside the repository")
        return p

    def rel(self, p: Path) -> str:
        return os.path.relpath(p, self.root)


def model_cache_dir() -> Path:
    """Shared cache of converted base models (outside any repo: they are hundreds of MB)."""
    return Path(os.environ.get("LEVCUSTOM_CACHE", Path.home() / ".cache" / "levcustom"))
