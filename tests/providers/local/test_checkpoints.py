"""Resume picks the newest checkpoint that was saved completely."""

from __future__ import annotations

from levcustom.providers.local.train_child import last_complete_checkpoint


def test_incomplete_checkpoints_are_skipped_and_pruned(tmp_path):
    for step, state in ((2, '{"global_step": 2}'), (4, None), (6, '{"global_st')):
        folder = tmp_path / f"checkpoint-{step}"
        folder.mkdir()
        (folder / "adapter_model.safetensors").write_bytes(b"weights")
        if state is not None:
            (folder / "trainer_state.json").write_text(state)
    assert last_complete_checkpoint(tmp_path, prune=False) == str(tmp_path / "checkpoint-2")
    assert (tmp_path / "checkpoint-6").exists()  # a non-main process only skips
    assert last_complete_checkpoint(tmp_path, prune=True) == str(tmp_path / "checkpoint-2")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["checkpoint-2"]
    assert last_complete_checkpoint(tmp_path / "missing", prune=True) is None
