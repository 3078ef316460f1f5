"""The stat cache: unchanged files are not re-read."""

from __future__ import annotations

import os

from levcustom.state.statcache import StatCache, hash_file


def test_counts_records_ignoring_blank_lines(tmp_path):
    f = tmp_path / "x.jsonl"
    f.write_text('{"a": 1}\n\n{"a": 2}\n   \n{"a": 3}')
    assert hash_file(f).records == 3


def test_unchanged_stat_is_not_rehashed_and_changed_is(tmp_path):
    f = tmp_path / "x.jsonl"
    f.write_text("aaaa\n")
    cache = StatCache(tmp_path / "stat.json")
    first = cache.info(f)
    cache.save()
    st = os.stat(f)
    # Same size and mtime but other bytes: only a cache that did not re-read returns the old hash.
    f.write_text("bbbb\n")
    os.utime(f, ns=(st.st_atime_ns, st.st_mtime_ns))
    assert StatCache(tmp_path / "stat.json").info(f) == first
    os.utime(f, ns=(st.st_atime_ns, st.st_mtime_ns + 1_000_000))
    assert StatCache(tmp_path / "stat.json").info(f).sha256 != first.sha256
