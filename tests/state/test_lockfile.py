"""The lockfile: atomic, versioned writes that survive failures mid-write."""

from __future__ import annotations

import errno
import json
import os
import threading

import pytest

from levcustom.errors import LevcustomError, LockHeldError
from levcustom.state.lockfile import Lock, ModelState, StateStore, dump_lock, read_lock
from levcustom.state.statelock import StateLock, force_unlock, read_lock_info


def add_model(name):
    def mutate(lock: Lock) -> None:
        lock.models[name] = ModelState(spec_file=f"specs/{name}.yaml")
    return mutate


def test_missing_lock_is_empty_state(tmp_path):
    lock = read_lock(tmp_path / "levcustom.lock")
    assert lock.serial == 0 and lock.models == {} and lock.lineage == ""
    store = StateStore(tmp_path / "levcustom.lock")
    store.update(add_model("a"))
    assert len(store.lock.lineage) == 36 and read_lock(tmp_path / "levcustom.lock").lineage == store.lock.lineage


def test_each_write_bumps_serial_and_keeps_lineage_sorted(tmp_path):
    store = StateStore(tmp_path / "levcustom.lock")
    store.update(add_model("b"))
    store.update(add_model("a"))
    data = json.loads((tmp_path / "levcustom.lock").read_text())
    assert data["serial"] == 2
    assert list(data["models"]) == ["a", "b"]
    assert read_lock(tmp_path / "levcustom.lock").lineage == store.lock.lineage
    assert (tmp_path / "levcustom.lock").read_text() == dump_lock(store.lock)


def test_concurrent_updates_are_group_committed_and_durable_on_return(tmp_path):
    path = tmp_path / "levcustom.lock"
    store = StateStore(path)
    missing = []

    def apply(name):
        store.update(add_model(name))
        if name not in read_lock(path).models:  # update returned: its mutation must be on disk
            missing.append(name)

    threads = [threading.Thread(target=apply, args=(f"m{i}",)) for i in range(40)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    lock = read_lock(path)
    assert missing == [] and len(lock.models) == 40
    assert 1 <= lock.serial <= 40 and lock == store.lock


def test_full_disk_during_write_keeps_old_lockfile(tmp_path, monkeypatch):
    path = tmp_path / "levcustom.lock"
    store = StateStore(path)
    store.update(add_model("a"))
    before = path.read_text()

    def no_space(fd):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(os, "fsync", no_space)
    with pytest.raises(OSError):
        store.update(add_model("b"))
    monkeypatch.undo()
    assert path.read_text() == before
    assert store.lock.serial == 1 and "b" not in store.lock.models  # memory did not run ahead of disk
    assert [p.name for p in tmp_path.iterdir()] == ["levcustom.lock"]  # no temp file left behind


def test_corrupt_or_future_lockfile_is_a_clear_error(tmp_path):
    path = tmp_path / "levcustom.lock"
    path.write_text("{not json")
    with pytest.raises(LevcustomError, match="not valid JSON"):
        read_lock(path)
    path.write_text(json.dumps({"version": 99}))
    with pytest.raises(LevcustomError, match="version 99"):
        read_lock(path)


def test_state_lock_names_holder_and_unlocks_by_id(tmp_path):
    path = tmp_path / ".levcustom.lock.info"
    with StateLock(path, "apply") as held:
        with pytest.raises(LockHeldError) as exc:
            with StateLock(path, "apply"):
                pass
        assert f"pid {os.getpid()}" in str(exc.value)
        assert f"levcustom unlock {held.info.id}" in str(exc.value)
    assert not path.exists()
    with StateLock(path, "apply") as stale:
        pass
    path.write_text(json.dumps(stale.info.__dict__))  # as if the process had died holding it
    with pytest.raises(LevcustomError, match="does not match"):
        force_unlock(path, "wrong-id")
    assert force_unlock(path, stale.info.id).id == stale.info.id
    assert read_lock_info(path) is None
