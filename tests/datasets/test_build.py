"""Dataset builds: curated, split by content hash, stored content-addressed, rebuilt incrementally."""

from __future__ import annotations

import json

import pytest

from conftest import chat_rows, write_jsonl
from dsfixtures import conversation, episode, run, spec
from levcustom.datasets.build import build_dataset
from levcustom.datasets.manifest import load_manifest
from levcustom.errors import LevcustomError
from levcustom.workspace import Workspace


def jsonl_spec(**kw):
    return spec({"type": "jsonl", "path": "d.jsonl", **kw}, split={"validation": 0.25, "seed": 3})


def rows(path):
    return [json.loads(line) for line in path.read_text("utf-8").split("\n") if line]  # not splitlines: U+2028


def contents(path):
    return [r["messages"][1]["content"] for r in rows(path)]


def test_dedupe_split_and_content_address(tmp_path):
    ws = Workspace(tmp_path)
    data = chat_rows(n=32)
    write_jsonl(tmp_path / "d.jsonl", data + [data[0]] + [{"prompt": "P", "completion": "C"}])
    built = build_dataset(ws, jsonl_spec(), 1)
    assert built.train_rows + built.validation_rows == 33  # one exact duplicate dropped
    assert 0 < built.validation_rows < 33
    manifest = load_manifest(built.artifact)
    assert manifest["steps"]["read"] == 34 and manifest["steps"]["exact_duplicates"] == 1
    assert manifest["sources"][0]["files"][0]["path"] == "d.jsonl"
    again = build_dataset(ws, jsonl_spec(), 1)
    assert again.artifact == built.artifact  # same content, same artifact
    assert again.work.read == 0 and again.work.reused == 34  # nothing re-read: the per-file cache answered

    # Appending rows never moves an old row to the other split.
    write_jsonl(tmp_path / "d.jsonl", data + [{"prompt": f"new {i}", "completion": "x"} for i in range(20)])
    grown = build_dataset(ws, jsonl_spec(), 1)
    old_val, new_val = set(contents(built.artifact / "validation.jsonl")), \
        set(contents(grown.artifact / "validation.jsonl"))
    assert old_val - {"P"} <= new_val
    assert not (set(contents(built.artifact / "train.jsonl")) & new_val)


def test_rows_carry_provenance(tmp_path):
    write_jsonl(tmp_path / "logs" / "a.jsonl", [conversation(i) for i in range(6)])
    write_jsonl(tmp_path / "ep.jsonl", [episode(i) for i in range(4)])
    built = build_dataset(Workspace(tmp_path), spec({"type": "interactions", "path": "logs"},
                                                    {"type": "episodic_memory", "path": "ep.jsonl"},
                                                    split={"validation": 0.0}), 1)
    got = {(r["provenance"]["source"], r["provenance"]["file"], r["provenance"]["line"], r["provenance"]["ref"])
           for r in rows(built.artifact / "train.jsonl")}
    assert ("interactions", "logs/a.jsonl", 3, "conv-2") in got
    assert ("episodic_memory", "ep.jsonl", 4, "ep-3") in got
    assert len(got) == 10


def test_appended_rows_are_read_alone(tmp_path):
    ws = Workspace(tmp_path)
    logs = [conversation(i) for i in range(40)]
    write_jsonl(tmp_path / "logs" / "day1.jsonl", logs)
    first = build_dataset(ws, spec({"type": "interactions", "path": "logs"}), 1)
    assert first.work.read == 40
    with open(tmp_path / "logs" / "day1.jsonl", "a") as f:
        f.write("".join(json.dumps(conversation(i)) + "\n" for i in range(40, 45)))
    grown = build_dataset(ws, spec({"type": "interactions", "path": "logs"}), 1)
    assert (grown.work.read, grown.work.reused) == (5, 40)
    # the incremental result is exactly what a build from scratch gives
    fresh_ws = Workspace(tmp_path)
    for cache in (tmp_path / ".levcustom" / "cache").iterdir():
        cache.unlink() if cache.is_file() else __import__("shutil").rmtree(cache)
    fresh = build_dataset(fresh_ws, spec({"type": "interactions", "path": "logs"}), 1)
    assert fresh.work.read == 45 and fresh.artifact == grown.artifact
    # an edit in the middle is not an append: the file is read again
    text = (tmp_path / "logs" / "day1.jsonl").read_text().replace("patch number 3 ", "patch number three ")
    (tmp_path / "logs" / "day1.jsonl").write_text(text)
    assert build_dataset(ws, spec({"type": "interactions", "path": "logs"}), 1).work.read == 45
    # a new file in the folder is read alone
    write_jsonl(tmp_path / "logs" / "day2.jsonl", [conversation(i) for i in range(100, 103)])
    assert build_dataset(ws, spec({"type": "interactions", "path": "logs"}), 1).work.read == 3


def test_bad_rows_fail_with_file_line_or_are_skipped(tmp_path):
    ws = Workspace(tmp_path)
    write_jsonl(tmp_path / "d.jsonl", chat_rows(n=4))
    with open(tmp_path / "d.jsonl", "a") as f:
        f.write("{broken\n")
    with pytest.raises(LevcustomError, match=r"d.jsonl:5:2: invalid JSON"):
        build_dataset(ws, jsonl_spec(), 1)
    assert build_dataset(ws, jsonl_spec(on_error="skip"), 1).train_rows >= 1
    write_jsonl(tmp_path / "logs.jsonl", [conversation(1), {"agent": "x", "messages": [{"role": "user"}]}])
    with pytest.raises(LevcustomError, match=r"logs.jsonl:2:1: messages\[0\].content must be a non-empty string"):
        build_dataset(ws, spec({"type": "interactions", "path": "logs.jsonl"}), 1)


def test_source_emptied_by_filters_names_them(tmp_path):
    write_jsonl(tmp_path / "logs.jsonl", [conversation(i, agent="planner", rating=2) for i in range(3)]
                + [conversation(9, agent="reviewer", rating=1)])
    with pytest.raises(LevcustomError, match=r"source interactions:logs.jsonl: no rows left after filters "
                                             r"\(4 read: agent removed 3, min_rating removed 1\)"):
        build_dataset(Workspace(tmp_path), spec({"type": "interactions", "path": "logs.jsonl", "agent": "reviewer",
                                                 "min_rating": 4}), 1)
    (tmp_path / "empty.jsonl").write_text("\n\n")
    with pytest.raises(LevcustomError, match="no rows \\(the files are empty\\)"):
        build_dataset(Workspace(tmp_path), spec({"type": "jsonl", "path": "empty.jsonl"}), 1)


def test_too_few_examples_for_provider(tmp_path):
    write_jsonl(tmp_path / "d.jsonl", chat_rows(n=3))
    with pytest.raises(LevcustomError, match="the provider needs at least 10"):
        build_dataset(Workspace(tmp_path), jsonl_spec(), 10)


def test_source_outside_repository_refused(tmp_path):
    (tmp_path / "repo").mkdir()
    write_jsonl(tmp_path / "outside.jsonl", chat_rows(n=3))
    for path in ("../outside.jsonl", str(tmp_path / "outside.jsonl")):
        with pytest.raises(LevcustomError, match="outside the repository"):
            build_dataset(Workspace(tmp_path / "repo"), spec({"type": "jsonl", "path": path}), 1)
    (tmp_path / "repo" / "link.jsonl").symlink_to(tmp_path / "outside.jsonl")
    with pytest.raises(LevcustomError, match="outside the repository"):
        build_dataset(Workspace(tmp_path / "repo"), spec({"type": "jsonl", "path": "link.jsonl"}), 1)


def test_nasty_inputs(tmp_path):
    """Unicode, a huge line, duplicates across sources, secrets inside tool outputs and workflow steps."""
    nasty = "Ünïcödé ✓ 𝔘𝔫𝔦 שלום مرحبا 你好 e\u0301 \u200b\u2028 🚀" * 3
    huge = "x" * 1_500_000
    logs = [conversation(1, user=nasty, answer=nasty),
            conversation(2, answer=huge),
            conversation(3, tool_output="export GITHUB_TOKEN=ghp_0123456789abcdefghijklmnopqrstuvwxyzAB\n"
                                        "AWS AKIAIOSFODNN7EXAMPLE call +1 (415) 555-0132"),
            conversation(4)]
    write_jsonl(tmp_path / "logs" / "a.jsonl", logs)
    write_jsonl(tmp_path / "logs" / "b.jsonl", [conversation(4)])  # the same conversation in a second file
    write_jsonl(tmp_path / "chats.jsonl", [{"messages": conversation(4)["messages"]}])  # ... and another source
    write_jsonl(tmp_path / "runs.jsonl", [run(1, secret="password=hunter2hunter2 mail ops@example.org")])
    built = build_dataset(Workspace(tmp_path), spec(
        {"type": "interactions", "path": "logs"}, {"type": "jsonl", "path": "chats.jsonl"},
        {"type": "workflows", "path": "runs.jsonl"}, curation={"dedupe": "near", "max_chars": 1_000_000},
        split={"validation": 0.0}), 1)
    manifest = load_manifest(built.artifact)
    assert manifest["steps"]["filtered"] == {"max_chars": 1}  # the huge line, by the length filter
    assert manifest["steps"]["exact_duplicates"] == 2  # conversation 4 in b.jsonl and in chats.jsonl
    assert manifest["scrubbed"] == {"api_key": 2, "phone": 1, "secret": 1, "email": 1}
    text = (built.artifact / "train.jsonl").read_text("utf-8")
    for secret in ("ghp_0123", "AKIAIOSFODNN7EXAMPLE", "555-0132", "hunter2", "ops@example.org"):
        assert secret not in text and secret not in json.dumps(manifest)
    assert nasty in {m["content"] for r in rows(built.artifact / "train.jsonl") for m in r["messages"]}
    assert built.train_rows == 4


def test_files_read_in_worker_processes_give_the_same_dataset(tmp_path, monkeypatch):
    from levcustom.datasets import process

    for day in range(3):
        write_jsonl(tmp_path / "logs" / f"day{day}.jsonl", [conversation(day * 100 + i) for i in range(30)])
    serial = build_dataset(Workspace(tmp_path), spec({"type": "interactions", "path": "logs"},
                                                     curation={"dedupe": "near"}), 1)
    import shutil

    shutil.rmtree(tmp_path / ".levcustom")
    monkeypatch.setattr(process, "PARALLEL_MIN_BYTES", 0)  # what counts as "large" here: everything
    parallel = build_dataset(Workspace(tmp_path), spec({"type": "interactions", "path": "logs"},
                                                       curation={"dedupe": "near"}), 1)
    assert parallel.work.read == 90 and parallel.artifact == serial.artifact
