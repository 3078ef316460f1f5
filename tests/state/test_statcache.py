"""The stat cache: unchanged files are not re-read."""

from __future__ import annotations

import os

from levcustom.state.statcache import StatCache, hash_file


def test_counts_records_ignoring_blank_lines(tmp_path):
    f = tmp_path / "x.jsonl"
    f.write_text('{"a": 1}\n\n{"a": 2}\n   \n{"a": 3}')
    assert hash_file(f).records == 3


def test_unchanged_stat_is_not_rehashed_and_changed_is(tmp_path):
    import json

    f = tmp_path / "x.jsonl"
    f.write_text("aaaa\n")
    cache = StatCache(tmp_path / "stat.json")
    first = cache.info(f)
    cache.save()
    # An unchanged stat is answered from the cache, not the file: a planted hash comes back.
    stored = json.loads((tmp_path / "stat.json").read_text())
    stored[str(f)][4] = "planted"
    (tmp_path / "stat.json").write_text(json.dumps(stored))
    assert StatCache(tmp_path / "stat.json").info(f).sha256 == "planted"
    # Same size, mtime put back, other bytes: the ctime moved, so the file is read again.
    st = os.stat(f)
    f.write_text("bbbb\n")
    os.utime(f, ns=(st.st_atime_ns, st.st_mtime_ns))
    assert (os.stat(f).st_size, os.stat(f).st_mtime_ns) == (st.st_size, st.st_mtime_ns)
    again = StatCache(tmp_path / "stat.json").info(f)
    assert again == hash_file(f) and again.sha256 != first.sha256
