"""Plan renderers and saved plans."""

from __future__ import annotations

import json

import pytest
from plan.test_diff import applied, desired

from levcustom.errors import StalePlanError
from levcustom.plan.diff import build_plan
from levcustom.plan.planfile import check_fresh, load_plan, save_plan
from levcustom.plan.render import render_json, render_markdown, render_text
from levcustom.state.lockfile import Lock


def test_text_has_symbols_reasons_and_summary():
    text = render_text(build_plan([desired(r=16)], applied(desired())))
    assert "-/+ train" in text and "training.lora.r: 8 -> 16" in text
    assert "Plan: 1 to add, 2 to change, 1 to destroy." in text


def test_json_is_versioned_and_complete():
    data = json.loads(render_json(build_plan([desired()], Lock())))
    assert data["format_version"] == "1.0" and data["has_changes"] is True
    assert data["summary"] == {"add": 4, "change": 0, "destroy": 0}
    assert {c["stage"] for c in data["changes"]} == {"dataset", "train", "eval", "deploy"}


def test_markdown_table_for_pull_requests():
    md = render_markdown(build_plan([desired(gate_min=0.9)], applied(desired())))
    assert "| `m` | eval | `~` update | gates[0].min: 0.8 -> 0.9 |" in md
    assert "**Plan: 0 to add, 2 to change, 0 to destroy.**" in md


def test_saved_plan_round_trips_and_detects_moved_state(tmp_path):
    lock = applied(desired())
    plan = build_plan([desired(gate_min=0.9)], lock)
    save_plan(plan, tmp_path / "p")
    saved = load_plan(tmp_path / "p")
    check_fresh(saved, lock, plan)  # fresh: no error
    lock.serial += 1
    with pytest.raises(StalePlanError, match="serial"):
        check_fresh(saved, lock, plan)
    lock.serial -= 1
    with pytest.raises(StalePlanError, match="specs, configs or data changed"):
        check_fresh(saved, lock, build_plan([desired(gate_min=0.95)], lock))
