"""What hosted fine-tuning providers (openai, anthropic on Bedrock) share: validated settings,
hyperparameter range checks, and training files built from a stored dataset."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any, TypeVar

from pydantic import BaseModel, ValidationError

from levcustom.datasets.jsonl import load_examples
from levcustom.errors import LevcustomError
from levcustom.providers.base import ConfigProblem

S = TypeVar("S", bound=BaseModel)


def validated_settings(cls: type[S], data: dict[str, Any], conf_file: str) -> S:
    """A provider's config group as its typed settings; a bad value names the file and the key."""
    try:
        return cls.model_validate(data)
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(p) for p in first["loc"])
        raise LevcustomError(f"{conf_file}: {where}: {first['msg']}") from None


def range_problems(values: Iterable[tuple[str, Any]], ranges: dict[str, tuple[float, float]],
                   vendor: str) -> list[ConfigProblem]:
    """``spec.training.<key>`` values outside the vendor's documented ranges ('auto' is always fine)."""
    problems = []
    for key, value in values:
        lo, hi = ranges.get(key, (float("-inf"), float("inf")))
        if value != "auto" and not lo <= float(value) <= hi:
            problems.append(ConfigProblem(("spec", "training", key), f"{value:g} is outside {vendor}'s range "
                                                                     f"[{lo:g}, {hi:g}]"))
    return problems


def training_file(dataset_dir: Path, split: str, format_row: Callable[[dict], dict]) -> bytes:
    """One split of a built dataset in the provider's JSONL format (empty bytes for an empty split)."""
    return b"".join(json.dumps(format_row(row), ensure_ascii=False).encode() + b"\n"
                    for row in load_examples(dataset_dir / f"{split}.jsonl"))

