"""Spec loading: every error at once, each with file:line:column, key path and expectation."""

from __future__ import annotations

from pathlib import Path

import pytest

from conftest import dedent
from levcustom.errors import SpecError
from levcustom.spec.loader import load_specs

VALID = dedent("""
    apiVersion: levcustom/v1
    kind: Model
    metadata:
      name: reviewer
    spec:
      base_model: some/model
      dataset:
        sources:
          - {type: jsonl, path: data/a.jsonl}
      evals:
        suites:
          - {name: golden, path: evals/g.jsonl, metric: exact_match}
        gates:
          - {metric: golden.exact_match, min: 0.8}
""")


def load(tmp_path: Path, text: str, name: str = "s.yaml"):
    (tmp_path / name).write_text(text)
    return load_specs([tmp_path / name], tmp_path)


def errors(tmp_path: Path, text: str) -> list[str]:
    with pytest.raises(SpecError) as exc:
        load(tmp_path, text)
    return [str(i) for i in exc.value.issues]


def test_valid_spec_loads_with_defaults(tmp_path):
    [spec] = load(tmp_path, VALID)
    assert spec.name == "reviewer"
    assert spec.model.spec.provider == "local" and spec.model.spec.hardware == "cpu"
    assert spec.model.spec.dataset.split.validation == 0.1


def test_unknown_key_is_located_with_suggestion(tmp_path):
    text = VALID.replace("  base_model: some/model\n", "  base_model: some/model\n  methd: sft\n")
    [err] = errors(tmp_path, text)
    assert err.startswith("s.yaml:7:3: spec.methd: unknown key (did you mean 'method'?)")


def test_all_errors_reported_at_once_with_expected_values(tmp_path):
    text = VALID.replace("name: reviewer", "name: Bad_Name").replace("metric: exact_match", "metric: exactmatch")
    errs = errors(tmp_path, text)
    assert len(errs) == 2
    assert any(e.startswith("s.yaml:4:3: metadata.name: String should match pattern") for e in errs)
    assert any("spec.evals.suites[0].metric" in e and "'exact_match'" in e and "got 'exactmatch'" in e
               for e in errs)


def test_missing_key_and_wrong_type(tmp_path):
    text = VALID.replace("  base_model: some/model\n", "").replace("min: 0.8", "min: high")
    errs = errors(tmp_path, text)
    assert any("spec.base_model: required key is missing" in e for e in errs)
    assert any("spec.evals.gates[0].min" in e and "valid number" in e for e in errs)


def test_gate_on_unknown_metric(tmp_path):
    [err] = errors(tmp_path, VALID.replace("metric: golden.exact_match", "metric: golden.exact_mach"))
    assert "spec.evals.gates[0].metric: unknown metric 'golden.exact_mach' (did you mean 'golden.exact_match'?)" in err


def test_invalid_yaml_reports_line(tmp_path):
    [err] = errors(tmp_path, VALID + "  bad: [unclosed\n")
    assert err.startswith("s.yaml:") and "invalid YAML" in err


@pytest.mark.parametrize("snippet, message", [
    ("  base_model: !!python/object/apply:os.system ['echo pwned']\n", "YAML tag"),
    ("  base_model: some/model\n  _target_: os.system\n", "'_target_' is not allowed"),
    ("  base_model: ${oc.env:HOME}\n", "only '${env:NAME}' interpolation"),
])
def test_unsafe_constructs_refused(tmp_path, snippet, message):
    text = VALID.replace("  base_model: some/model\n", snippet)
    assert any(message in e for e in errors(tmp_path, text))


def test_env_reference_allowed_and_kept_unresolved(tmp_path, monkeypatch):
    monkeypatch.setenv("SECRET_MODEL", "do-not-print")
    [spec] = load(tmp_path, VALID.replace("base_model: some/model", "base_model: ${env:SECRET_MODEL}"))
    assert spec.model.spec.base_model == "${env:SECRET_MODEL}"


def test_alias_bomb_refused_quickly(tmp_path):
    levels = zip("abcdefg", "bcdefgh", strict=True)
    bomb = "a: &a [x, x, x, x, x, x, x, x, x]\n"
    bomb += "".join(f"{c}: &{c} [{', '.join([f'*{p}'] * 9)}]\n" for p, c in levels)
    assert any("alias bomb" in e for e in errors(tmp_path, bomb))


def test_duplicate_keys_and_model_names(tmp_path):
    twice = VALID.replace("kind: Model\n", "kind: Model\nkind: Model\n")
    assert any("duplicate key" in e for e in errors(tmp_path, twice))
    (tmp_path / "a.yaml").write_text(VALID)
    (tmp_path / "b.yaml").write_text(VALID)
    with pytest.raises(SpecError) as exc:
        load_specs([tmp_path / "a.yaml", tmp_path / "b.yaml"], tmp_path)
    assert "b.yaml:4:3: metadata.name: duplicate model name 'reviewer' (also in a.yaml:4)" in str(exc.value)


def test_deep_nesting_refused(tmp_path):
    deep = "a: " + "[" * 40 + "]" * 40 + "\n"
    assert any("nesting deeper" in e for e in errors(tmp_path, deep))


def test_source_types_are_validated_per_type(tmp_path):
    text = VALID.replace("- {type: jsonl, path: data/a.jsonl}",
                         "- {type: interactions, path: logs/, agnt: reviewer}\n"
                         "      - {type: episodic_memory, path: e.jsonl, min_confidence: 2,"
                         " template: {user: '{ctx}'}}\n"
                         "      - {type: podcasts, path: p}")
    out = errors(tmp_path, text)
    assert any("spec.dataset.sources[0].agnt: unknown key (did you mean 'agent'?); allowed keys: agent, min_rating,"
               in e for e in out), out
    assert any("sources[1].min_confidence: Input should be less than or equal to 1" in e for e in out), out
    assert any("sources[1].template: Value error, unknown template field 'ctx'" in e for e in out), out
    assert any("sources[2]" in e and "'jsonl', 'episodic_memory', 'interactions'" in e for e in out), out


def test_sources_must_yield_what_the_method_trains_on(tmp_path):
    text = VALID.replace("base_model: some/model", "base_model: some/model\n  method: dpo").replace(
        "- {type: jsonl, path: data/a.jsonl}", "- {type: interactions, path: logs/}\n"
                                               "      - {type: personality, persona: p.yaml}\n"
                                               "      - {type: personality, persona: q.yaml}")
    out = errors(tmp_path, text)
    assert any("sources[0].type: interactions sources yield chat examples; method dpo trains on preference examples "
               "(use type: preferences, derive: ratings)" in e for e in out), out
    assert any("sources[2]: only one personality source per dataset" in e for e in out), out


def test_for_each_declares_one_model_per_file(tmp_path):
    for pid in ("nfj-visionary", "stp-adapter"):
        (tmp_path / "personas" / pid).mkdir(parents=True)
        (tmp_path / "personas" / pid / "context.yaml").write_text("metadata: {}\n")
    text = "for_each: personas/*/context.yaml\n" + VALID.replace("name: reviewer", "name: reviewer-${each.key}") \
        .replace("- {type: jsonl, path: data/a.jsonl}", "- {type: jsonl, path: data/a.jsonl}\n"
                                                         "      - {type: personality, persona: '${each.path}'}")
    specs = load(tmp_path, text)
    assert [s.name for s in specs] == ["reviewer-nfj-visionary", "reviewer-stp-adapter"]
    assert specs[1].model.spec.dataset.sources[1].persona == "personas/stp-adapter/context.yaml"
    assert specs[0].file == specs[1].file == "s.yaml"


def test_for_each_errors(tmp_path):
    out = errors(tmp_path, "for_each: personas/*/context.yaml\n" + VALID)
    assert out == ["s.yaml:1:1: for_each: 'personas/*/context.yaml' matches no file"]
    out = errors(tmp_path, "for_each: ../*.yaml\n" + VALID)
    assert "expected a glob relative to the repository root" in out[0]
    out = errors(tmp_path, VALID.replace("name: reviewer", "name: r-${each.key}"))
    assert out[0] == "s.yaml:4:3: metadata.name: '${each.key}' needs a 'for_each' at the top of the document"


def test_eval_suite_and_gate_rules(tmp_path):
    from conftest import dedent
    from levcustom.errors import SpecError
    from levcustom.spec.loader import load_specs

    spec = tmp_path / "m.yaml"
    spec.write_text(dedent("""
        apiVersion: levcustom/v1
        kind: Model
        metadata: {name: m}
        spec:
          base_model: b
          dataset:
            sources: [{type: jsonl, path: d.jsonl}]
            split: {validation: 0}
          evals:
            suites:
              - {name: a, path: a.jsonl, split: validation, metric: contains}
              - {name: s, path: a.jsonl, metric: json_schema}
              - {name: h, split: validation, metric: exact_match}
              - {name: j, path: a.jsonl, metric: judge, judge: {model: claude-x, rubric: r, mode: pairwise}}
            gates:
              - {metric: j.judge, min_delta_vs: base}
              - {metric: h.exact_match, min: 0.5, confidence: 1.5}
              - {metric: h.exactmatch, min: 0.5}
    """))
    with pytest.raises(SpecError) as err:
        load_specs([spec], tmp_path)
    text = str(err.value)
    assert "m.yaml:11:" in text and "a suite needs exactly one of path, split" in text
    assert "'schema' is required by metric json_schema" in text
    assert "spec.evals.gates[1].confidence" in text
    first = "      - {name: a, path: a.jsonl, split: validation, metric: contains}\n"
    spec.write_text(spec.read_text().replace(first, "")
                    .replace("      - {name: s, path: a.jsonl, metric: json_schema}\n", "")
                    .replace("confidence: 1.5", "confidence: 0.9"))
    with pytest.raises(SpecError) as err:
        load_specs([spec], tmp_path)
    text = str(err.value)
    assert "spec.evals.gates[0].min_delta_vs: j.judge is a pairwise judge" in text
    assert "spec.evals.suites[0].split: the dataset holds nothing out" in text
    assert "unknown metric 'h.exactmatch' (did you mean 'h.exact_match'?)" in text
