"""JSON Schema of spec files, for yaml-language-server completion and validation in editors."""

from __future__ import annotations

from typing import Any

from levcustom.config.models import TrainingConfig
from levcustom.spec.schema import ModelSpec


def _optional(schema: dict[str, Any]) -> dict[str, Any]:
    """Every key of a partial override is optional."""
    schema = dict(schema)
    schema.pop("required", None)
    return schema


def spec_json_schema() -> dict[str, Any]:
    schema = ModelSpec.model_json_schema()
    training = TrainingConfig.model_json_schema()
    defs = schema.setdefault("$defs", {})
    for name, sub in training.get("$defs", {}).items():
        defs[name] = _optional(sub)
    body = defs["ModelBody"]["properties"]
    body["training"] = {**_optional({k: v for k, v in training.items() if k != "$defs"}),
                        "description": "Overrides of the training config group (conf/config.yaml: training)."}
    schema["$schema"] = "https://json-schema.org/draft/2020-12/schema"
    schema["title"] = "levcustom Model spec (apiVersion levcustom/v1)"
    return schema
