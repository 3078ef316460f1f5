"""The exported JSON Schema describes specs, including the training block's keys."""

from __future__ import annotations

from levcustom.spec.jsonschema import spec_json_schema


def test_schema_has_spec_and_training_completion():
    schema = spec_json_schema()
    assert schema["additionalProperties"] is False
    body = schema["$defs"]["ModelBody"]["properties"]
    assert set(body["training"]["properties"]) >= {"epochs", "learning_rate", "lora"}
    assert "required" not in body["training"]
    assert body["method"]["enum"] == ["sft", "dpo", "cai"]


def test_committed_schema_is_current():
    """Editors read schema/model-spec.schema.json; regenerate with `levcustom schema -o ...`."""
    import json

    from conftest import PROJECT

    committed = json.loads((PROJECT / "schema" / "model-spec.schema.json").read_text())
    assert committed == spec_json_schema()
