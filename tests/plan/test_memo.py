"""The plan memo: an unchanged plan is replayed without importing the CLI; any change runs it again.

A replay is told apart from a real plan by ``python -X importtime``: a real plan imports typer.
The key leaves ``-X`` options out, so the same command line with it finds the same memo entry.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pytest

from conftest import write_jsonl
from levcustom.plan import memo

AGE = memo.RACY_NS / 1e9 + 0.2  # inputs younger than this are not recorded (racy-clean rule)


def run(repo, *args: str, python: tuple[str, ...] = (), env: dict | None = None,
        stdin: str | None = None) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, *python, "-m", "levcustom", "plan", "--detailed-exitcode",
                           "-C", str(repo.root), *args], capture_output=True, text=True, input=stdin,
                          stdin=subprocess.DEVNULL if stdin is None else None,
                          env={**os.environ, "COLUMNS": "200", **repo.env, **(env or {})}, timeout=300)


def plan(repo, *args: str, env: dict | None = None, stdin: str | None = None
         ) -> tuple[subprocess.CompletedProcess, bool]:
    """Run ``levcustom plan`` as the console script does; also return whether it was replayed."""
    proc = run(repo, *args, python=("-X", "importtime"), env=env, stdin=stdin)
    return proc, re.search(r"\|\s+typer$", proc.stderr, re.M) is None


def record(repo, *args: str, env: dict | None = None, stdin: str | None = None) -> subprocess.CompletedProcess:
    """A plan, as users run it, once its inputs are old enough to be recorded."""
    if not (repo.root / ".levcustom").is_dir():
        run(repo)  # the first plan creates .levcustom/ in the root folder, so the root is not old enough yet
    time.sleep(AGE)
    return run(repo, *args, env=env, stdin=stdin)


def test_unchanged_plan_is_replayed_with_the_same_output_and_exit_code(repo):
    first = record(repo)
    assert first.returncode == 2 and "Plan: 4 to add" in first.stdout
    again, replayed = plan(repo)
    assert replayed and (again.returncode, again.stdout) == (first.returncode, first.stdout)
    if os.path.exists("/dev/full"):  # a replay that cannot write reports it as the CLI does, in one line
        with open("/dev/full", "w") as full:
            proc = subprocess.run([sys.executable, "-m", "levcustom", "plan", "--detailed-exitcode", "-C",
                                   str(repo.root)], stdout=full, stderr=subprocess.PIPE, text=True,
                                  stdin=subprocess.DEVNULL, env={**os.environ, "COLUMNS": "200", **repo.env})
        assert proc.returncode == 1 and proc.stderr.startswith("Error: [Errno 28]"), proc.stderr
    as_json = record(repo, "--json")
    again, replayed = plan(repo, "--json")
    assert replayed and again.stdout == as_json.stdout and json.loads(again.stdout)["has_changes"]


def test_every_kind_of_input_change_runs_the_plan_again(repo):
    first = record(repo)
    spec = repo.root / "specs" / "tiny.yaml"
    st = spec.stat()
    # Same size, mtime put back: only the ctime tells, and the plan must see the new epochs.
    repo.edit("specs/tiny.yaml", "epochs: 4", "epochs: 5")
    os.utime(spec, ns=(st.st_atime_ns, st.st_mtime_ns))
    assert spec.stat().st_size == st.st_size
    edited, replayed = plan(repo)
    assert not replayed and edited.returncode == 2 and edited.stdout != first.stdout
    # Inputs changed within the racy window were not recorded: the next plan runs too.
    _, replayed = plan(repo)
    assert not replayed

    before = record(repo)
    with (repo.root / "data" / "train.jsonl").open("a") as f:
        f.write(json.dumps({"messages": [{"role": "user", "content": "one more question"},
                                         {"role": "assistant", "content": "ok"}]}) + "\n")
    appended, replayed = plan(repo)
    assert not replayed and appended.stdout != before.stdout  # one more example in the estimate

    record(repo)
    (repo.root / "specs" / "notes.yaml").write_text("# not a spec yet\n")
    _, replayed = plan(repo)
    assert not replayed  # a new file in a folder the plan lists

    record(repo)
    _, replayed = plan(repo, env={"COLUMNS": "100"})
    assert not replayed  # rich wraps to the terminal: another environment is another plan


def test_saved_plans_and_failures_are_never_replayed(repo, tmp_path):
    record(repo, "--out", str(tmp_path / "p.plan"))
    (tmp_path / "p.plan").unlink()
    _, replayed = plan(repo, "--out", str(tmp_path / "p.plan"))
    assert not replayed and (tmp_path / "p.plan").is_file()  # --out writes a file each time

    repo.edit("specs/tiny.yaml", "epochs: 4", "epochs: -1")
    failed = record(repo)
    assert failed.returncode == 1 and "spec.training.epochs" in failed.stderr
    again, replayed = plan(repo)
    assert not replayed and again.returncode == 1


def test_recorder_sees_every_input_of_a_plan(repo):
    from levcustom.plan.desired import make_plan
    from levcustom.state.lockfile import read_lock
    from levcustom.workspace import Workspace

    ws = Workspace(repo.root)
    memo.arm(["plan", "-C", str(repo.root)])
    try:
        with memo.recording() as recorder:
            make_plan(ws, read_lock(ws.lockfile), [ws.specs_dir])
            subprocess.run(["true"], check=True)
    finally:
        memo._armed = None
    seen = set(recorder.read)
    expected = {ws.lockfile, ws.specs_dir, ws.specs_dir / "tiny.yaml", repo.root / "data" / "train.jsonl",
                repo.root / "evals" / "golden.jsonl", *ws.conf_dir.rglob("*.yaml")}
    assert {str(p) for p in expected} <= seen
    assert recorder.spoiled  # it started a process: a replay could not repeat that


def test_a_new_file_in_a_folder_source_runs_the_plan_again(repo):
    # The folder is lstat'ed (Path.resolve) before it is listed: the listing must still be compared.
    repo.edit("specs/tiny.yaml", "path: data/train.jsonl", "path: data")
    before = record(repo)
    write_jsonl(repo.root / "data" / "extra.jsonl", [
        {"messages": [{"role": "user", "content": f"a brand new question {i}"},
                      {"role": "assistant", "content": "ok"}]} for i in range(5)])
    after, replayed = plan(repo)
    assert not replayed and after.returncode == 2 and after.stdout != before.stdout


def test_a_spec_piped_on_stdin_is_never_recorded(repo):
    spec = (repo.root / "specs" / "tiny.yaml").read_text()
    first = record(repo, "/dev/stdin", stdin=spec)
    assert first.returncode == 2, first.stderr
    other, replayed = plan(repo, "/dev/stdin", stdin=spec.replace("epochs: 4", "epochs: 9"))
    assert not replayed and other.stdout != first.stdout


def test_special_files_are_compared_skipped_or_refused(tmp_path, waive_racy_window):
    rec = memo.Recorder(str(tmp_path), "key")
    spec = tmp_path / "spec.yaml"
    spec.write_text("x")
    for path in (str(spec), "/dev/null", "/proc/cpuinfo", memo.entry_file(str(tmp_path), "key")):
        rec._saw(path, True)
    assert [p for p, _, _ in rec._inputs()] == [str(spec)]  # devices, kernel facts and the memo itself are not inputs
    if os.path.isdir("/dev/shm"):  # a repository on a tmpfs under /dev is compared like any other
        with tempfile.NamedTemporaryFile(dir="/dev/shm") as f:
            rec._saw(f.name, True)
            assert f.name in [p for p, _, _ in rec._inputs()]
    fifo = tmp_path / "fifo"
    os.mkfifo(fifo)
    for refused in (str(fifo), f"/proc/self/fd/{os.open(spec, os.O_RDONLY)}"):
        other = memo.Recorder(str(tmp_path), "key")
        other._saw(refused, True)
        assert other._inputs() is None  # a pipe, or this process's own descriptor, can change unseen


def test_a_change_while_the_plan_runs_refuses_the_recording(tmp_path, waive_racy_window):
    data = tmp_path / "data.jsonl"
    for change in (lambda: data.unlink(), lambda: data.write_text("other bytes")):
        data.write_text("rows\n")
        rec = memo.Recorder(str(tmp_path), "key")
        rec._saw(str(data), True)  # what the plan read...
        assert rec._inputs() is not None
        change()  # ...is deleted or rewritten before the plan ends: its output may be stale already
        assert rec._inputs() is None


def test_paths_keep_the_spelling_the_kernel_resolved(tmp_path, monkeypatch, waive_racy_window):
    (tmp_path / "x" / "sub").mkdir(parents=True)
    (tmp_path / "x" / "tiny").mkdir()
    (tmp_path / "x" / "tiny" / "config.json").write_text("{}")
    (tmp_path / "models").mkdir()
    (tmp_path / "models" / "lnk").symlink_to(tmp_path / "x" / "sub")
    monkeypatch.chdir(tmp_path)
    rec = memo.Recorder(str(tmp_path), "key")
    rec.audit("open", ("models/lnk/../tiny/config.json", "r", 0))  # x/tiny/config.json, not models/tiny/...
    [(path, _, st)] = rec._inputs()
    assert path == str(tmp_path / "models/lnk/../tiny/config.json")
    assert st == memo._stat(str(tmp_path / "x" / "tiny" / "config.json"))


def test_symlinks_are_followed_where_glob_follows_them(tmp_path, waive_racy_window):
    personas = tmp_path / "personas"
    personas.mkdir()
    (personas / "b").symlink_to(tmp_path / "extra" / "b")  # dangling until extra/b is made
    rec = memo.Recorder(str(tmp_path), "key")
    rec.audit("os.scandir", (str(personas),))  # glob tells folders by DirEntry.is_dir(), in C
    assert [str(personas / "b"), True, None] in rec._inputs()
    masked = tmp_path / "masked.yaml"
    masked.symlink_to("/dev/null")  # a spec masked the systemd way is an input, and a device: refused
    other = memo.Recorder(str(tmp_path), "key")
    other._saw(str(masked), True)
    assert other._inputs() is None


def test_caches_the_plan_did_not_write_are_inputs(tmp_path, waive_racy_window):
    # LEVCUSTOM_CACHE or HF_HOME may point into .levcustom/cache: a model config there is an input.
    config = Path(memo.memo_dir(str(tmp_path))).parent / "shared" / "models" / "acme--big" / "config.json"
    config.parent.mkdir(parents=True)
    config.write_text("{}")
    rec = memo.Recorder(str(tmp_path), "key")
    rec._saw(str(config), True)
    rec.audit("open", (str(config.parent / "new.json"), "w", 0))  # written by the plan: derived
    rec._saw(str(config.parent / "new.json"), True)
    assert [p for p, _, _ in rec._inputs()] == [str(config)]


def test_network_filesystems_are_never_recorded(tmp_path, monkeypatch, waive_racy_window):
    mounts = tmp_path / "mounts"
    mounts.write_text(f"server:/export {tmp_path}/nfs nfs4 rw 0 0\n/dev/sda1 / ext4 rw 0 0\n"
                      f"sshfs#me@host: {tmp_path}/my\\040drive fuse.sshfs rw 0 0\n")
    assert memo._network_mounts(str(mounts)) == {f"{tmp_path}/nfs", f"{tmp_path}/my drive"}
    monkeypatch.setattr(memo, "_network_mounts", lambda: {str(tmp_path / "nfs")})
    (tmp_path / "nfs").mkdir()
    (tmp_path / "nfs" / "spec.yaml").write_text("x")
    rec = memo.Recorder(str(tmp_path), "key")
    rec._saw(str(tmp_path / "nfs" / "spec.yaml"), True)
    assert rec._inputs() is None  # attribute caching can hide an edit from stat for seconds


def test_creating_a_folder_that_exists_derives_nothing_inside_it(tmp_path, waive_racy_window):
    cache = Path(memo.memo_dir(str(tmp_path))).parent
    config = cache / "shared" / "models" / "acme--big" / "config.json"
    config.parent.mkdir(parents=True)
    config.write_text("{}")
    memo.arm(["plan", "-C", str(tmp_path)])
    with memo.recording() as rec:
        cache.mkdir(parents=True, exist_ok=True)  # as JsonCache.save does on every write
        config.read_text()
        (tmp_path / "fresh").mkdir()  # made by the plan: itself derived
    inputs = [p for p, _, _ in rec._inputs()]
    assert str(config) in inputs and str(tmp_path / "fresh") not in inputs


def test_the_root_folder_is_read_as_click_reads_it(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "d").mkdir()
    here, d = os.path.realpath("."), os.path.realpath("d")
    for argv, root in ((["plan", "-C", "d"], d), (["plan", "--chdir=d"], d), (["plan", "-Cd"], d),
                       (["plan", "--set", "-Cx", "--target", "m"], here),  # a value, not an option
                       (["plan", "--", "-C", "d"], here)):  # after "--": spec paths
        assert memo._root(argv) == root, argv


def test_arming_without_a_working_folder_plans_without_the_memo(tmp_path, monkeypatch):
    gone = tmp_path / "gone"
    gone.mkdir()
    monkeypatch.chdir(gone)
    gone.rmdir()
    memo.arm(["plan"])
    assert memo._armed is None


def test_a_broken_memo_never_breaks_a_plan(repo, tmp_path, waive_racy_window):
    from levcustom.plan.desired import make_plan
    from levcustom.state.lockfile import read_lock
    from levcustom.workspace import Workspace

    argv = ["plan", "-C", str(repo.root)]
    key = memo.context_key(argv)
    file = Path(memo.entry_file(memo._root(argv), key))
    file.parent.mkdir(parents=True, exist_ok=True)
    loop = tmp_path / "loop"
    loop.symlink_to(loop)
    for entry in ({"paths": [[str(loop), True, None]], "stdout": "stale", "exit": 0},  # stat fails: ELOOP
                  {"paths": [["/x"]], "stdout": "stale", "exit": 0}, "not an entry", [1]):
        file.write_text(json.dumps(entry))
        memo.arm(argv)
        assert memo.replay() is None
    ws = Workspace(repo.root)
    make_plan(ws, read_lock(ws.lockfile), [ws.specs_dir])  # fills the caches: the next plan changes nothing
    for broken in ("{not json", None):
        if broken is None:  # the memo cannot be written: the plan still succeeds
            file.unlink()
            file.mkdir()
        else:
            file.write_text(broken)
        memo.arm(argv)
        try:
            with memo.recording() as recorder:
                make_plan(ws, read_lock(ws.lockfile), [ws.specs_dir])
                recorder.done(2)
        finally:
            memo._armed = None
        if broken is not None:  # an unreadable entry is simply replaced
            assert json.loads(file.read_text())["exit"] == 2
    file.rmdir()
    with memo.recording():  # not armed: records nothing
        pass
    assert not file.exists()


def test_the_memo_keeps_the_newest_contexts(tmp_path, monkeypatch, waive_racy_window):
    monkeypatch.setattr(memo, "MAX_ENTRIES", 3)
    (tmp_path / "spec.yaml").write_text("x")
    for i in range(5):
        rec = memo.Recorder(str(tmp_path), f"context-{i}")
        rec._saw(str(tmp_path / "spec.yaml"), True)
        rec.done(0)
        time.sleep(0.01)  # distinct mtimes
    kept = sorted(os.listdir(memo.memo_dir(str(tmp_path))))
    assert kept == ["context-2.json", "context-3.json", "context-4.json"]


@pytest.fixture(autouse=True)
def _disarmed():
    yield
    memo._armed = None


def test_only_what_the_plan_changed_is_derived(tmp_path, waive_racy_window):
    import shutil

    src, db = tmp_path / "in.jsonl", tmp_path / "state.db"
    src.write_text("rows\n")
    db.write_text("x")
    memo.arm(["plan", "-C", str(tmp_path)])
    with memo.recording() as rec:
        shutil.copyfile(src, tmp_path / "copy.jsonl")  # the source is read, the copy written
        (tmp_path / "link").symlink_to(src)  # the target is not changed by linking to it
        os.close(os.open(db, os.O_RDWR))  # opened read-write, not written: still an input
        (tmp_path / "new").mkdir()
        os.listdir(tmp_path / "new")  # a folder it made and then listed is compared
    inputs = [p for p, _, _ in rec._inputs()]
    assert {str(src), str(db), str(tmp_path / "new")} <= set(inputs)
    assert str(tmp_path / "copy.jsonl") not in inputs and str(tmp_path / "link") not in inputs
    memo.arm(["plan", "-C", str(tmp_path)])
    with memo.recording() as rec:
        fd = os.open(tmp_path, os.O_RDONLY)
        try:
            os.remove("copy.jsonl", dir_fd=fd)  # relative to an open folder (rmtree's way): no name to compare
        finally:
            os.close(fd)
    assert rec.spoiled


@pytest.fixture
def waive_racy_window(monkeypatch):
    """Lets the recorder keep the files a test has just written (they are inside the racy window)."""
    monkeypatch.setattr(memo, "RACY_NS", -(10**19))
