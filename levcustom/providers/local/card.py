"""Model cards: what an artifact is (base, data, hyperparameters, metrics, eval results) as markdown.

Written into the adapter (and merged model) folder as ``README.md`` when training finishes, and
rewritten with the eval results when the model is deployed. The card is excluded from the
folder's content hash, so adding results never changes the artifact's identity.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from levcustom.state.atomic import atomic_write_text

CARD_FILE = "README.md"


@dataclass(frozen=True)
class CardData:
    model: str
    base_model: str
    method: str
    dataset_sha256: str
    hyperparameters: dict[str, Any]
    metrics: dict[str, float]
    eval_results: dict[str, dict[str, Any]] = field(default_factory=dict)


def render_card(card: CardData) -> str:
    """The card as markdown with a YAML-like front matter (the fields Hugging Face model cards use)."""
    lines = ["---", f"base_model: {card.base_model}", "library_name: peft",
             f"tags: [levcustom, lora, {card.method}]", "---", "", f"# {card.model}", "",
             f"LoRA adapter for `{card.base_model}`, trained by levcustom with method `{card.method}`.", "",
             "## Training data", "", f"Dataset manifest sha256: `{card.dataset_sha256}`", "",
             "## Hyperparameters", "", "```json", json.dumps(card.hyperparameters, indent=2, sort_keys=True), "```",
             "", "## Training metrics", ""]
    lines += [f"- {k}: {v:.4g}" for k, v in sorted(card.metrics.items())] or ["(none)"]
    lines += ["", "## Evaluation", ""]
    if card.eval_results:
        lines += ["| metric | tuned | base | cases |", "| --- | --- | --- | --- |"]
        for name, r in sorted(card.eval_results.items()):
            base = "" if r.get("base") is None else f"{r['base']:.3f}"
            lines.append(f"| {name} | {r['tuned']:.3f} | {base} | {r['cases']} |")
    else:
        lines.append("Not evaluated yet.")
    return "\n".join(lines) + "\n"


def write_card(folder: Path, card: CardData) -> Path:
    path = folder / CARD_FILE
    atomic_write_text(path, render_card(card))
    return path
