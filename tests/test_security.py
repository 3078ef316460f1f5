"""Untrusted pull requests: plan must be safe on hostile specs and conf trees (SECURITY.md)."""

from __future__ import annotations

import json
import os
import shutil
import textwrap

import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from conftest import PROJECT, Repo, chat_rows, write_jsonl
from levcustom.errors import SpecError
from levcustom.spec.loader import load_documents, validate_documents
from levcustom.spec.yamlload import load_yaml

SECRET = "s3cr3t-value-that-must-not-leak"


@pytest.fixture
def bare(tmp_path) -> Repo:
    shutil.copytree(PROJECT / "conf", tmp_path / "conf")
    write_jsonl(tmp_path / "data" / "train.jsonl", chat_rows())
    (tmp_path / "specs").mkdir()
    (tmp_path / "specs" / "m.yaml").write_text(textwrap.dedent("""\
        apiVersion: levcustom/v1
        kind: Model
        metadata: {name: m}
        spec:
          base_model: org/model
          dataset: {sources: [{type: jsonl, path: data/train.jsonl}]}
        """))
    return Repo(tmp_path)


def test_yaml_code_execution_is_refused(bare, tmp_path):
    marker = tmp_path / "pwned"
    bare.edit("specs/m.yaml", "base_model: org/model",
              f"base_model: !!python/object/apply:os.system ['touch {marker}']")
    err = bare.run("plan", check=1).stderr
    assert "YAML tag" in err and not marker.exists()


def test_conf_tree_resolvers_hydra_and_target_are_refused(bare, monkeypatch):
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", SECRET)
    bare.env["AWS_SECRET_ACCESS_KEY"] = SECRET
    local = bare.root / "conf" / "provider" / "local.yaml"
    original = local.read_text()
    for bad, message in (("gpu_hour_usd: ${oc.env:AWS_SECRET_ACCESS_KEY}", "resolvers are not allowed"),
                         ("gpu_hour_usd: 0.0\n_target_: os.system", "'_target_' is not allowed"),
                         ("gpu_hour_usd: 0.0\nhydra: {searchpath: ['file:///etc']}", "'hydra' is not allowed")):
        local.write_text(original.replace("gpu_hour_usd: 0.0", bad))
        shutil.rmtree(bare.root / ".levcustom", ignore_errors=True)
        for args in (("plan",), ("config", "m")):
            out = bare.run(*args, check=1)
            assert message in out.stderr and SECRET not in out.stdout + out.stderr


def test_paths_are_confined_to_the_repository(bare, tmp_path_factory):
    outside = tmp_path_factory.mktemp("outside")
    write_jsonl(outside / "leak.jsonl", chat_rows())
    os.symlink(outside / "leak.jsonl", bare.root / "data" / "link.jsonl")
    bare.edit("specs/m.yaml", "data/train.jsonl", "data/link.jsonl")
    assert "points outside the repository" in bare.run("plan", check=1).stderr
    bare.edit("specs/m.yaml", "data/link.jsonl", "../outside/leak.jsonl")
    assert "points outside the repository" in bare.run("plan", check=1).stderr
    (outside / "evil.yaml").write_text((bare.root / "specs" / "m.yaml").read_text())
    os.symlink(outside / "evil.yaml", bare.root / "specs" / "evil.yaml")
    assert "links outside the repository" in bare.run("plan", check=1).stderr


def test_plan_uses_no_network_and_prints_no_secret(bare, tmp_path):
    # Every socket connection fails in the child: plan must not need one.
    guard = tmp_path / "guard"
    guard.mkdir()
    (guard / "sitecustomize.py").write_text(
        "import socket\n"
        "def _refuse(*a, **k):\n    raise OSError('network use during plan')\n"
        "socket.socket.connect = _refuse\nsocket.create_connection = _refuse\n")
    bare.env.update({"PYTHONPATH": str(guard), "MY_TOKEN": SECRET})
    bare.edit("specs/m.yaml", "base_model: org/model", "base_model: ${env:MY_TOKEN}")
    for args in (("plan",), ("plan", "--json"), ("plan", "--format", "markdown"), ("validate",)):
        out = bare.run(*args)
        assert SECRET not in out.stdout + out.stderr
        if "--json" in args:
            assert "${env:MY_TOKEN}" in out.stdout  # kept as written, never resolved


def test_huge_spec_file_is_refused_quickly(bare):
    (bare.root / "specs" / "huge.yaml").write_text("a: " + "x" * 2_000_000 + "\n")
    assert "larger than" in bare.run("plan", check=1).stderr


# -- property-based: any text, any structure, only clear errors ---------------------------

KEYS = st.sampled_from(["apiVersion", "kind", "metadata", "name", "spec", "base_model", "provider", "dataset",
                        "sources", "type", "path", "evals", "gates", "metric", "min", "training", "_target_",
                        "deploy", "agents", "overrides", "x", "${env:A}", "<<"])
SCALARS = st.one_of(st.none(), st.booleans(), st.integers(), st.floats(allow_nan=False), st.text(max_size=20),
                    st.sampled_from(["levcustom/v1", "Model", "jsonl", "${oc.env:HOME}", "${env:HOME}", "!!python"]))
TREES = st.recursive(SCALARS, lambda children: st.one_of(st.lists(children, max_size=4),
                                                         st.dictionaries(KEYS, children, max_size=5)), max_leaves=30)


def _check_issues(exc: SpecError, name: str) -> None:
    assert exc.issues
    for issue in exc.issues:
        assert issue.file == name and issue.line >= 0 and issue.message


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(TREES)
def test_random_spec_structures_give_located_errors_or_valid_specs(tree):
    text = yaml.safe_dump(tree, allow_unicode=True)
    docs, issues = load_yaml(text, "s.yaml")
    try:
        if issues:
            raise SpecError(issues)
        validate_documents(docs)
    except SpecError as exc:
        _check_issues(exc, "s.yaml")


@settings(max_examples=200, deadline=None)
@given(st.text(max_size=300))
def test_random_text_never_crashes_the_loader(tmp_path_factory, text):
    path = tmp_path_factory.mktemp("fuzz") / "s.yaml"
    path.write_text(text)
    try:
        validate_documents(load_documents([path], path.parent))
    except SpecError as exc:
        _check_issues(exc, "s.yaml")


def test_security_doc_exists():
    doc = (PROJECT / "SECURITY.md").read_text()
    for topic in ("untrusted", "_target_", "${env:", "network", "symlink", "secret"):
        assert topic in doc


def test_ci_plan_of_untrusted_pr_needs_no_secrets(bare):
    out = bare.run("ci", "plan", check=2)
    assert "| `m` | dataset | `+` create |" in out.stdout
    assert json.loads((bare.root / ".levcustom" / "ci" / "plan.json").read_text())["has_changes"] is True
