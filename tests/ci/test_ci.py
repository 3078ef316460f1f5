"""levcustom in CI: ci plan/check/apply, the lockfile merge driver, and the shipped workflow files."""

from __future__ import annotations

import json
import os
import re
import shlex
import subprocess
import sys
import time

import pytest
import yaml

from conftest import PROJECT, Repo, add_openai_spec


def git(repo: Repo, *args: str) -> str:
    return subprocess.run(["git", "-C", str(repo.root), *args], check=True, capture_output=True, text=True).stdout


@pytest.fixture
def gitrepo(openai_repo):
    (openai_repo.root / ".gitignore").write_text(".levcustom/\n.levcustom.lock.info\n")
    git(openai_repo, "init", "-q", "-b", "main")
    git(openai_repo, "config", "user.email", "t@example.invalid")
    git(openai_repo, "config", "user.name", "t")
    openai_repo.run("ci", "apply")
    git(openai_repo, "add", "-A")
    git(openai_repo, "commit", "-qm", "apply")
    return openai_repo


def test_ci_plan_uses_the_base_branch_lockfile(gitrepo):
    git(gitrepo, "checkout", "-qb", "pr")
    gitrepo.edit("specs/ft-one.yaml", "min: 0.9", "min: 0.8")
    # a pull request that also forged its lockfile cannot hide its changes
    lock = gitrepo.lock()
    lock["models"]["ft-one"]["eval"]["inputs"]["gates"][0]["min"] = 0.8
    (gitrepo.root / "levcustom.lock").write_text(json.dumps(lock))
    out = gitrepo.run("ci", "plan", "--base-ref", "main", check=2)
    assert "| `ft-one` | eval | `~` update | gates[0].min: 0.9 -> 0.8 |" in out.stdout
    assert (gitrepo.root / ".levcustom" / "ci" / "plan.md").read_text() == out.stdout
    assert json.loads((gitrepo.root / ".levcustom" / "ci" / "plan.json").read_text())["summary"]["change"] == 2


def test_ci_plan_reports_invalid_specs_in_the_comment(gitrepo):
    gitrepo.edit("specs/ft-one.yaml", "method: sft", "method: sftt")
    out = gitrepo.run("ci", "plan", "--base-ref", "main", check=1)
    assert "spec.method" in out.stderr
    assert "spec.method" in (gitrepo.root / ".levcustom" / "ci" / "plan.md").read_text()


def test_ci_check_fails_when_merged_without_apply_and_apply_writes_summary(gitrepo):
    assert "OK: the lockfile matches the specs" in gitrepo.run("ci", "check").stdout
    gitrepo.edit("specs/ft-one.yaml", "training: {epochs: 2}", "training: {epochs: 3}")
    err = gitrepo.run("ci", "check", check=1).stderr
    assert "ft-one: train replace pending (hyperparameters.n_epochs: 2 -> 3)" in err
    gitrepo.run("ci", "apply")
    summary = (gitrepo.root / ".levcustom" / "ci" / "summary.md").read_text()
    assert "### `ft-one`" in summary and "| golden.contains | 1.000 | 0.000 |" in summary
    gitrepo.run("ci", "check")
    # a stricter gate than the deployed version meets shows up in the check, not only in the plan
    gitrepo.edit("specs/ft-one.yaml", "min: 0.9", "min: 1.01")
    err = gitrepo.run("ci", "check", check=1).stderr
    assert "ft-one: the deployed version no longer passes golden.contains min 1.01" in err


def test_ci_apply_exits_3_when_a_gate_blocks(gitrepo, fake_openai):
    fake_openai.responder = lambda model, messages: "I think it depends."  # the tuned model regressed
    gitrepo.edit("specs/ft-one.yaml", "training: {epochs: 2}", "training: {epochs: 4}")
    gitrepo.run("ci", "apply", check=3)
    summary = (gitrepo.root / ".levcustom" / "ci" / "summary.md").read_text()
    assert ":x: FAILED golden.contains 0.000 >= 0.9" in summary
    assert "- the previous version stays deployed: `ft:gpt-4o-mini" in summary


def test_lock_merge_driver_resolves_separate_models_and_explains_conflicts(gitrepo):
    (gitrepo.root / ".gitattributes").write_text("levcustom.lock merge=levcustom\n")
    lev = f"{shlex.quote(sys.executable)} -m levcustom.cli"
    git(gitrepo, "config", "merge.levcustom.driver", f"{lev} lock merge %O %A %B")
    add_openai_spec(gitrepo, "ft-two")
    gitrepo.run("apply", "--auto-approve")
    git(gitrepo, "add", "-A")
    git(gitrepo, "commit", "-qm", "two models")

    git(gitrepo, "checkout", "-qb", "a")
    gitrepo.edit("specs/ft-one.yaml", "min: 0.9", "min: 0.8")
    gitrepo.run("apply", "--auto-approve")
    git(gitrepo, "commit", "-qam", "a")
    git(gitrepo, "checkout", "-q", "main")
    git(gitrepo, "checkout", "-qb", "b")
    gitrepo.edit("specs/ft-two.yaml", "min: 0.9", "min: 0.7")
    gitrepo.run("apply", "--auto-approve")
    git(gitrepo, "commit", "-qam", "b")
    git(gitrepo, "merge", "-q", "a", "-m", "merge a")  # the driver resolves: different models
    lock = gitrepo.lock()
    assert lock["models"]["ft-one"]["eval"]["inputs"]["gates"][0]["min"] == 0.8
    assert lock["models"]["ft-two"]["eval"]["inputs"]["gates"][0]["min"] == 0.7
    assert "No changes." in gitrepo.run("plan").stdout

    git(gitrepo, "checkout", "-qb", "c", "a")
    gitrepo.edit("specs/ft-one.yaml", "min: 0.8", "min: 0.6")
    gitrepo.run("apply", "--auto-approve")
    git(gitrepo, "commit", "-qam", "c")
    git(gitrepo, "checkout", "-q", "b")  # holds the merge of a: ft-one at 0.8 on both sides now
    gitrepo.edit("specs/ft-one.yaml", "min: 0.8", "min: 0.5")
    gitrepo.run("apply", "--auto-approve")
    git(gitrepo, "commit", "-qam", "b2")
    merge = subprocess.run(["git", "-C", str(gitrepo.root), "merge", "c", "-m", "merge c"], capture_output=True,
                           text=True)
    assert merge.returncode != 0
    assert "ft-one.eval: both branches changed it" in merge.stdout + merge.stderr
    json.loads((gitrepo.root / "levcustom.lock").read_text())  # still a valid lockfile, no conflict markers


def test_two_concurrent_applies_second_is_refused_naming_holder(openai_repo, fake_openai):
    fake = fake_openai
    fake.auto_advance = False
    first = subprocess.Popen([sys.executable, "-m", "levcustom.cli", "apply", "--auto-approve", "-C",
                              str(openai_repo.root)], env={**os.environ, **openai_repo.env},
                             stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        while not fake.jobs:
            assert first.poll() is None
            time.sleep(0.02)
        err = openai_repo.run("apply", "--auto-approve", check=1).stderr
        assert re.search(r"state is locked by .+ pid \d+ \(apply, since .+\); if that process is gone, "
                         r"run: levcustom unlock [0-9a-f-]{36}", " ".join(err.split()))
    finally:
        fake.auto_advance = True
        first.wait(timeout=120)
    assert first.returncode == 0


# -- the shipped CI definitions -------------------------------------------------------------

def _shell_lines(data: dict, name: str) -> list[str]:
    """The shell a workflow runs: GitHub steps' `run`, GitLab jobs' `script`."""
    if name == "github-actions.yml":
        scripts = [step.get("run", "") for job in data["jobs"].values() for step in job["steps"]]
    else:
        scripts = [line for job in data.values() if isinstance(job, dict) for line in job.get("script", [])]
    return [line for script in scripts for line in script.splitlines()]


def _commands(lines: list[str]) -> list[list[str]]:
    """Every `levcustom <command> [<subcommand>]` invocation."""
    found = []
    for line in lines:
        words = shlex.split(line.replace(";", " ; "), comments=True)
        for k, word in enumerate(words[:-1]):
            if word == "levcustom" and (k == 0 or words[k - 1] in (";", "&&", "||", "then")):
                cmd = words[k + 1:k + 3] if words[k + 1] in ("ci", "lock") else words[k + 1:k + 2]
                found.append(cmd)
    return found


@pytest.mark.parametrize("name", ["github-actions.yml", "gitlab-ci.yml"])
def test_workflows_parse_and_call_existing_commands(name, openai_repo):
    text = (PROJECT / "examples" / "ci" / name).read_text()
    data = yaml.safe_load(text)
    assert data
    commands = _commands(_shell_lines(data, name))
    assert ["ci", "plan"] in commands and ["ci", "apply"] in commands and ["ci", "check"] in commands
    for cmd in commands:
        help_text = openai_repo.run(*cmd, "--help").stdout
        assert "Usage" in help_text
    if name == "github-actions.yml":
        assert set(data.get("on") or data[True]) == {"pull_request", "push"}  # YAML 1.1 reads `on` as true
        plan_env = data["jobs"]["plan"].get("env", {})
        assert not plan_env, "the pull-request job must hold no secrets"
