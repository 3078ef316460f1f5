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
import time

from levcustom.plan import memo

AGE = memo.RACY_NS / 1e9 + 0.2  # inputs younger than this are not recorded (racy-clean rule)


def run(repo, *args: str, python: tuple[str, ...] = (), env: dict | None = None) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, *python, "-m", "levcustom", "plan", "--detailed-exitcode",
                           "-C", str(repo.root), *args], capture_output=True, text=True, stdin=subprocess.DEVNULL,
                          env={**os.environ, "COLUMNS": "200", **repo.env, **(env or {})}, timeout=300)


def plan(repo, *args: str, env: dict | None = None) -> tuple[subprocess.CompletedProcess, bool]:
    """Run ``levcustom plan`` as the console script does; also return whether it was replayed."""
    proc = run(repo, *args, python=("-X", "importtime"), env=env)
    return proc, re.search(r"\|\s+typer$", proc.stderr, re.M) is None


def record(repo, *args: str, env: dict | None = None) -> subprocess.CompletedProcess:
    """A plan once its inputs are old enough to be recorded (without -X importtime: a plan that
    writes to stderr is not recorded, and importtime writes there)."""
    time.sleep(AGE)
    return run(repo, *args, env=env)


def test_unchanged_plan_is_replayed_with_the_same_output_and_exit_code(repo):
    first = record(repo)
    assert first.returncode == 2 and "Plan: 4 to add" in first.stdout
    again, replayed = plan(repo)
    assert replayed and (again.returncode, again.stdout) == (first.returncode, first.stdout)
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
