"""The plan memo: a no-change ``levcustom plan`` answered before any heavy import.

Planning itself takes milliseconds; a plan process spends ~0.3 s importing pydantic, typer and
rich and building the schemas. So when a plan finishes, it records what its answer depended on:

* every path it opened, listed or stat'ed (an audit hook sees opens and directory listings; a
  wrapper around ``os.stat``/``os.lstat`` sees existence checks and the stat cache), with device,
  inode, size, mtime and ctime, or "absent";
* a context key: argv, cwd, the whole environment (hashed), the local date (provider sunset
  warnings), the terminals' sizes (rich wraps to them), the interpreter, and the stats of
  levcustom's own code and of the import path's folders (an upgrade changes them).

The next plan with the same context re-stats those paths and, when every one matches, prints the
recorded output and exits with the recorded code, in a few milliseconds.

A wrong "No changes" is the worst bug a planner can have, so the memo is conservative:

* ctime is compared, and no user tool can set it back: rewriting a file with the same size and
  a restored mtime still misses;
* nothing is recorded when any input changed less than ``RACY_NS`` before the plan started
  (git's racy-clean rule: a same-tick edit would be invisible), when the plan wrote to stderr,
  started a process, changed folder, read a pipe, a device or its own ``/proc/self`` files (a
  spec on ``/dev/stdin``), used a path it cannot name (a descriptor-relative stat), read from a
  network or FUSE filesystem (attribute caching can hide an edit from stat), or failed;
* only the files the plan itself writes (its caches) are not inputs: they are derived from the
  inputs. Anything else, in ``.levcustom/cache/`` too (``LEVCUSTOM_CACHE`` or ``HF_HOME`` may
  point there), is compared. A path is classified by the name the plan used, not where symlinks
  lead (a spec symlinked to /dev/null is an input, and refused as a device). A folder is
  compared in full (its entries) once it was listed or stat'ed, even if ``Path.resolve()``
  lstat'ed it first, and the symlinks in a listed folder are compared by their targets (glob
  follows them in C, unseen);
* each path is stat'ed when the plan first touches it and again at the end: a file changed,
  deleted or swapped while the plan ran refuses the recording. Paths keep the plan's spelling
  (``a/link/../b`` is not ``a/b`` when ``link`` is a symlink);
* a memo that cannot be read, or a path that cannot be stat'ed, means "plan for real", and a
  memo that cannot be written never changes the plan's outcome;
* ``--out``, ``--refresh`` and ``--help`` never use it; ``LEVCUSTOM_PLAN_MEMO=0`` turns it off.

The memo lives in ``.levcustom/cache/plan-memo/``, one file per context (the newest
``MAX_ENTRIES`` are kept), so a replay reads only its own entry. A committed copy cannot match:
the context includes inode numbers and ctimes of this checkout.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import sys
import time
from stat import S_ISDIR, S_ISLNK, S_ISREG

RACY_NS = 2_000_000_000  # coarse filesystem timestamps (FAT: 2 s) cannot order edits closer than this
MAX_ENTRIES = 16
SWITCH = "LEVCUSTOM_PLAN_MEMO"
_BYPASS = ("--out", "-out", "--refresh", "--help")
_VALUED = ("--set", "--target", "--format", "--out", "-out")  # options whose next word is their value
# O_RDWR alone is not a write: the file stays an input, and a change to it refuses the recording.
_WRITE_FLAGS = os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_APPEND
_SPAWN_EVENTS = {"os.fork", "os.forkpty", "os.posix_spawn", "os.spawn", "os.system", "os.exec", "subprocess.Popen",
                 "os.chdir", "os.fchdir"}
# Audit events that change paths: which arguments name a changed path, which hold a dir_fd (-1: none).
_WRITE_EVENTS = {"os.rename": ((0, 1), (2, 3)), "os.replace": ((0, 1), (2, 3)), "os.remove": ((0,), (1,)),
                 "os.rmdir": ((0,), (1,)), "os.truncate": ((0,), ()), "os.utime": ((0,), (3,)),
                 "os.chmod": ((0,), (2,)), "os.link": ((1,), (2, 3)), "os.symlink": ((1,), (2,)),
                 "shutil.rmtree": ((0,), ()), "shutil.move": ((0, 1), ()), "shutil.copyfile": ((1,), ())}
_PACKAGE = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))  # in the context key, not an input
_KERNEL = frozenset(("/proc", "/sys"))  # system facts (CPU features...), not inputs, except a process's own files:
_PROCESS = re.compile(r"/proc/(self|thread-self|\d+)(/|$)")
_DEVICES = frozenset(("/dev/null", "/dev/zero", "/dev/random", "/dev/urandom"))
_IGNORED_ENV = frozenset(("_", "OLDPWD", "SHLVL"))  # the shell's bookkeeping: no plan reads them
_REAL_STAT, _REAL_LSTAT = os.stat, os.lstat


def _eligible(argv: list[str]) -> bool:
    return (argv[:1] == ["plan"] and os.environ.get(SWITCH, "1") != "0"
            and not any(a.split("=")[0] in _BYPASS for a in argv))


def _root(argv: list[str]) -> str:
    """The ``-C/--chdir`` folder of a plan command line (click's spellings), default the cwd."""
    root, i = ".", 0
    while i < len(argv) and argv[i] != "--":  # after "--" every word is a spec path
        a = argv[i]
        if a in ("-C", "--chdir") and i + 1 < len(argv):
            root, i = argv[i + 1], i + 1
        elif a in _VALUED:
            i += 1  # `--set -Cx` sets a value; it names no folder
        elif a.startswith("--chdir="):
            root = a.split("=", 1)[1]
        elif a.startswith("-C") and len(a) > 2:
            root = a[2:]
        i += 1
    return os.path.realpath(root)


def memo_dir(root: str) -> str:
    return os.path.join(root, ".levcustom", "cache", "plan-memo")


def entry_file(root: str, key: str) -> str:
    return os.path.join(memo_dir(root), key + ".json")


def _stat(path: str, follow: bool = True) -> list[int] | None:
    try:
        st = _REAL_STAT(path) if follow else _REAL_LSTAT(path)
    except (FileNotFoundError, NotADirectoryError):
        return None
    if not follow and S_ISDIR(st.st_mode):
        # Path.resolve() lstat's every ancestor folder: what matters is which folder it is, not its entries.
        return [st.st_dev, st.st_ino, st.st_mode]
    return [st.st_dev, st.st_ino, st.st_mode, st.st_size, st.st_mtime_ns, st.st_ctime_ns]


def _code_stamp() -> list:
    """Stats of levcustom's source files and of the import path's folders."""
    stamp = [[p, _stat(p)] for p in sys.path if p and os.path.isdir(p)]
    for folder, _, files in os.walk(_PACKAGE):
        stamp += [[f, _stat(os.path.join(folder, f))] for f in sorted(files) if f.endswith(".py")]
    return stamp


def _terminals() -> list:
    out = []
    for fd in (0, 1, 2):
        try:
            out.append([os.isatty(fd), tuple(os.get_terminal_size(fd))])
        except OSError:
            out.append([False, None])
    return out


def context_key(argv: list[str]) -> str:
    """Everything besides files a plan's output depends on, hashed."""
    env = sorted((k, v) for k, v in os.environ.items() if k not in _IGNORED_ENV)
    parts = [argv, os.getcwd(), env, time.strftime("%Y-%m-%d"), _terminals(),
             sys.version, sys.executable, sys.flags.utf8_mode, sys.stdout.encoding, _code_stamp()]
    return hashlib.sha256(json.dumps(parts, default=str).encode()).hexdigest()


def replay() -> int | None:
    """Print the memo's output for the armed plan and return its exit code, or None when the plan must run."""
    if _armed is None:
        return None
    try:
        with open(entry_file(*_armed), "rb") as f:
            entry = json.loads(f.read())
        if not entry or not entry["paths"] or any(_stat(p, follow) != st for p, follow, st in entry["paths"]):
            return None
        out, code = entry["stdout"], entry["exit"]
        if not isinstance(out, str) or code not in (0, 2):
            return None
    except Exception:  # an unreadable memo, a path that cannot be stat'ed: plan for real
        return None
    try:
        sys.stdout.write(out)
        sys.stdout.flush()
    except OSError as exc:  # a closed pipe, a full disk: as the CLI reports it
        sys.stderr.write(f"Error: {exc}\n")
        return 1
    return code


class _Tee:
    """Stands in for sys.stdout (rich looks it up at each write): writes through and keeps a copy."""

    def __init__(self, inner, on_write) -> None:
        self._inner, self._on_write = inner, on_write

    def write(self, text: str) -> int:
        self._on_write(text)
        return self._inner.write(text)

    def __getattr__(self, name: str):
        return getattr(self._inner, name)


class Recorder:
    """Collects what one plan reads; ``done(code)`` saves the memo entry if it is safe to replay."""

    def __init__(self, root: str, key: str) -> None:
        self.root, self.key = root, key
        self.read: dict[str, bool] = {}  # path -> follow symlinks
        self.first: dict[tuple[str, bool], list[int] | None | str] = {}  # its stat when first seen
        self.listed: set[str] = set()
        self.written: set[str] = set()  # files the plan wrote, folders it renamed into place: derived
        self.made: set[str] = set()  # folders the plan created: derived themselves, not their contents
        self.stdout: list[str] = []
        self.spoiled = False
        self.closed = False  # set by done(): its own stats and listings are not the plan's
        self.start_ns = time.time_ns()

    # -- collection -------------------------------------------------------------------------
    def _path(self, path) -> str | None:
        """The path as the plan named it, made absolute. ``..`` is kept: the kernel resolves it
        after any symlink before it, so normalizing it away could name another file."""
        if isinstance(path, int) or path is None:
            return None
        try:
            p = os.fsdecode(path)
        except (TypeError, ValueError):
            self.spoiled = True
            return None
        return p if os.path.isabs(p) else os.path.join(os.getcwd(), p)

    def audit(self, event: str, args: tuple) -> None:
        if event == "open":
            path, mode, flags = args
            if isinstance(path, int):
                return
            p = self._path(path)
            if p is None:
                return
            if (flags & _WRITE_FLAGS) if mode is None else any(c in mode for c in "wax"):
                self.written.add(p)
            elif not (mode is None and os.path.normpath(p) in {os.path.normpath(os.path.dirname(w))
                                                                for w in self.written}):
                self._saw(p, True)  # (os.open of a folder it just wrote into is atomic_write_text's fsync)
        elif event in ("os.listdir", "os.scandir"):
            path = args[0] if args else "."
            if isinstance(path, int):
                self.spoiled = True  # a listing by file descriptor: its folder has no name here
            elif (p := self._path(path or ".")) is not None:
                self._saw(p, True)
                self.listed.add(p)
        elif event == "os.mkdir":
            p = self._path(args[0])
            if len(args) > 2 and args[2] not in (-1, None):
                self.spoiled = True  # relative to an open folder: no name to compare
            elif p is not None and _stat(p, follow=False) is None:  # makedirs(exist_ok=True) changes nothing
                self.made.add(os.path.normpath(p))
        elif event in _WRITE_EVENTS:
            changed, dir_fds = _WRITE_EVENTS[event]
            if any(i < len(args) and args[i] not in (-1, None) for i in dir_fds):
                self.spoiled = True  # relative to an open folder (rmtree's way): no name to compare
            for i in changed:  # a copy's or link's source is read, not changed
                if i < len(args) and isinstance(args[i], (str, bytes, os.PathLike)):
                    self.written.add(self._path(args[i]))
        elif event in _SPAWN_EVENTS:
            self.spoiled = True

    def stat_seen(self, path, follow: bool, dir_fd: int | None = None) -> None:
        if dir_fd is not None:
            self.spoiled = True  # relative to an open folder: no name to stat next time
        elif not isinstance(path, int):
            p = self._path(path)
            if p is not None:
                self._saw(p, follow)

    def _saw(self, path: str, follow: bool) -> None:
        # Once opened, listed or stat'ed through symlinks, a path is compared in full: an lstat
        # alone (Path.resolve() on a folder about to be globbed) would keep only its identity.
        follow = self.read[path] = self.read.get(path, False) or follow
        if (path, follow) not in self.first:  # compared at the end: a change during the plan refuses
            try:
                self.first[(path, follow)] = _stat(path, follow)
            except OSError as exc:
                self.first[(path, follow)] = str(exc)

    def on_stderr(self, text: str) -> None:
        if text:
            self.spoiled = True  # a warning the replay would not repeat

    # -- saving -----------------------------------------------------------------------------
    def done(self, code: int) -> None:
        """The plan succeeded with ``code``: record it unless anything makes a replay unsafe.
        Never raises: the memo must not change the outcome of a plan."""
        self.closed = True
        try:
            paths = None if self.spoiled else self._inputs()
            if paths:
                self._save(paths, code)
        except Exception:
            pass

    def _inputs(self) -> list | None:
        """[path, follow, stat] of every input, or None when one makes a replay unsafe.

        A path is classified by the name the plan used (a symlink to /dev/null is an input, and
        refused as a device); it is derived only if both its name and its target are the plan's
        own (its caches, the files it wrote, its code)."""
        derived = {os.path.normpath(p) for p in self.written} | {memo_dir(self.root), _PACKAGE}
        derived_real = {os.path.realpath(p) for p in derived}
        network = _network_mounts()
        paths = []
        for p, follow in sorted(self.read.items()):
            name, real = os.path.normpath(p), os.path.realpath(p)
            if _PROCESS.match(name) or _PROCESS.match(real):
                return None  # this process's own files (its stdin...): nothing to compare next time
            if _inside(real, network):
                return None  # NFS and the like cache attributes for seconds: a stat may not see an edit
            made = name in self.made and p not in self.listed  # a folder it made and then listed is compared
            mine = made or _inside(name, derived) and _inside(real, derived_real)
            if name in _DEVICES or _inside(name, _KERNEL) or mine:
                continue
            st = _stat(p, follow)
            if st != self.first.get((p, follow), st):
                return None  # it changed, appeared or vanished while the plan ran
            if not self._comparable(st):
                return None
            paths.append([p, follow, st])
        for folder in sorted(self.listed):
            if _inside(os.path.normpath(folder), derived):
                continue
            with os.scandir(folder) as entries:
                links = sorted(e.path for e in entries if e.is_symlink())
            for link in links:  # glob follows them in C (DirEntry.is_dir): compare where they lead
                st = _stat(link, True)
                if not self._comparable(st):
                    return None
                paths.append([link, True, st])
        return paths

    def _comparable(self, st: list[int] | None) -> bool:
        """Whether a stat can stand for the content next time."""
        if st is None:
            return True
        if not (S_ISREG(st[2]) or S_ISDIR(st[2]) or S_ISLNK(st[2])):
            return False  # a pipe or device (a spec read from /dev/stdin): it can change unseen
        # Changed too recently to tell a later same-tick edit apart (git's racy-clean rule).
        return len(st) == 3 or max(st[4], st[5]) < self.start_ns - RACY_NS

    def _save(self, paths: list, code: int) -> None:
        from pathlib import Path  # here, not at the top: a replay does not need it (~7 ms)

        from levcustom.state.atomic import atomic_write_text

        folder = memo_dir(self.root)
        os.makedirs(folder, exist_ok=True)
        entry = {"paths": paths, "stdout": "".join(self.stdout), "exit": code}
        atomic_write_text(Path(entry_file(self.root, self.key)), json.dumps(entry))
        with os.scandir(folder) as it:
            entries = sorted((e.stat().st_mtime_ns, e.path) for e in it if e.name.endswith(".json"))
        for _, old in entries[:-MAX_ENTRIES]:  # the least recently recorded contexts
            os.remove(old)


_NETWORK_FS = ("nfs", "nfs4", "cifs", "smb3", "smbfs", "9p", "ceph", "glusterfs", "lustre", "gpfs", "afs",
               "fuse")  # fuse.*: sshfs, s3fs... promise nothing about stat


def _network_mounts(mounts: str = "/proc/self/mounts") -> set[str]:
    """Mount points of network or FUSE filesystems (Linux; elsewhere none are known)."""
    try:
        with open(mounts) as f:
            rows = [line.split() for line in f]
    except OSError:
        return set()
    return {r[1].replace("\\040", " ") for r in rows if len(r) > 2 and r[2].split(".")[0] in _NETWORK_FS}


def _inside(path: str, folders) -> bool:
    """Whether ``path`` or one of its folders is in ``folders`` (a folder the plan wrote and renamed
    into place counts for every file in it)."""
    while True:
        if path in folders:
            return True
        parent = os.path.dirname(path)
        if parent == path:
            return False
        path = parent


_armed: tuple[str, str] | None = None  # (repository root, context key), set by the console entry point
_active: Recorder | None = None
_hooked = False


def arm(argv: list[str]) -> None:
    """Called by the console entry point before anything is imported: this plan may be replayed
    (``replay``) or recorded (``recording``). Computes its root and context key once."""
    global _armed
    try:
        if _eligible(argv):
            _armed = (_root(argv), context_key(argv))
    except Exception:  # no cwd, no stdout...: plan without the memo
        _armed = None


def _hook(event: str, args: tuple) -> None:
    _note(lambda rec: rec.audit(event, args))


def _note(what) -> None:
    """Report an access to the active recorder; a failure spoils the recording, never the plan."""
    rec = _active
    if rec is not None and not rec.closed:
        try:
            what(rec)
        except Exception:
            rec.spoiled = True


class recording:
    """Context for the plan command: records it when the entry point armed the memo, else nothing."""

    def __enter__(self) -> Recorder | None:
        global _active, _hooked
        if _armed is None:
            return None
        _active = Recorder(*_armed)
        if not _hooked:  # audit hooks cannot be removed: one per process, idle outside a recording
            sys.addaudithook(_hook)
            _hooked = True
        self._saved = os.stat, os.lstat, sys.stdout, sys.stderr
        real_stat, real_lstat = os.stat, os.lstat

        def stat(path, *a, **kw):
            _note(lambda rec: rec.stat_seen(path, kw.get("follow_symlinks", True), kw.get("dir_fd")))
            return real_stat(path, *a, **kw)

        def lstat(path, *a, **kw):
            _note(lambda rec: rec.stat_seen(path, False, kw.get("dir_fd")))
            return real_lstat(path, *a, **kw)

        os.stat, os.lstat = stat, lstat
        sys.stdout = _Tee(sys.stdout, _active.stdout.append)
        sys.stderr = _Tee(sys.stderr, _active.on_stderr)
        return _active

    def __exit__(self, *exc) -> None:
        global _active
        if _armed is not None:
            os.stat, os.lstat, sys.stdout, sys.stderr = self._saved
            _active = None
