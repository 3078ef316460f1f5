"""The lockfile as it is on the base branch (a pull request's own lockfile is untrusted input)."""

from __future__ import annotations

import subprocess

from levcustom.errors import LevcustomError
from levcustom.state.lockfile import Lock, parse_lock
from levcustom.workspace import Workspace


def lock_at_ref(ws: Workspace, ref: str) -> Lock:
    """``git show REF:levcustom.lock``; a ref without a lockfile is an empty state."""
    rel = ws.rel(ws.lockfile)
    try:
        proc = subprocess.run(["git", "-C", str(ws.root), "show", f"{ref}:{rel}"], capture_output=True, text=True,
                              timeout=30)
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise LevcustomError(f"cannot run git to read {rel} at {ref}: {exc}") from None
    if proc.returncode != 0:
        if "does not exist" in proc.stderr or "exists on disk, but not in" in proc.stderr:
            return Lock()
        raise LevcustomError(f"cannot read {rel} at {ref}: {proc.stderr.strip().splitlines()[-1:]}")
    return parse_lock(proc.stdout, f"{rel} at {ref}")
