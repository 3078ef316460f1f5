"""An eval run end to end on hand-made answers: suites, every metric family, judge, gates."""

from __future__ import annotations

import json

import pytest

from conftest import write_jsonl
from fakes.anthropic_server import FakeAnthropic
from levcustom.errors import LevcustomError
from levcustom.evals.runner import APPROX_TOKENS, Generation, evaluate, load_suites
from levcustom.spec.schema import EvalSpec
from levcustom.state.jsoncache import JsonCache
from levcustom.workspace import Workspace

CITIES = {"France": "Paris", "Italy": "Rome", "Spain": "Madrid", "Peru": "Lima"}


def case(country: str, tags: dict | None = None) -> dict:
    return {"messages": [{"role": "user", "content": f"Capital of {country}?"}], "expected": CITIES[country],
            "tags": tags or {"region": "europe" if country != "Peru" else "americas"}}


def answers_by_role(prompts_answered: dict[str, dict[str, str]]):
    calls = []

    def generate(role: str, prompts: list[list[dict[str, str]]]) -> Generation:
        calls.append((role, len(prompts)))
        country = [p[-1]["content"].removeprefix("Capital of ").rstrip("?") for p in prompts]
        return Generation([prompts_answered[role].get(c, "no idea") for c in country], seconds=0.5 * len(prompts))
    return generate, calls


@pytest.fixture
def ws(tmp_path) -> Workspace:
    write_jsonl(tmp_path / "evals" / "capitals.jsonl", [case(c) for c in CITIES])
    (tmp_path / "evals" / "city.schema.json").write_text(json.dumps({"type": "string", "minLength": 3}))
    return Workspace(tmp_path)


def test_deterministic_suites_share_answers_and_are_paired(ws):
    spec = EvalSpec.model_validate({
        "suites": [{"name": "capitals", "path": "evals/capitals.jsonl", "metric": "exact_match"},
                   {"name": "overlap", "path": "evals/capitals.jsonl", "metric": "chrf"},
                   {"name": "speed", "path": "evals/capitals.jsonl", "metric": "latency"}],
        "gates": [{"metric": "capitals.exact_match", "min_delta_vs": "base", "min_delta": 0.25},
                  {"metric": "speed.latency", "max": 1.0}]})
    generate, calls = answers_by_role({"tuned": {"France": "Paris", "Italy": "Rome", "Spain": "Madrid"},
                                       "base": {"France": "Paris", "Peru": "Lim"}})
    run = evaluate(load_suites(ws, spec, None), spec.gates, ["tuned", "base"], generate, JsonCache(None))
    assert calls == [("tuned", 4), ("base", 4)]  # three suites over one file: each model answers once
    cap = run.results["capitals.exact_match"]
    assert (cap.tuned, cap.base, cap.cases) == (0.75, 0.25, 4)
    assert cap.paired["base"].improved == 2 and cap.paired["base"].regressed == 0
    assert run.results["overlap.chrf"].base < run.results["overlap.chrf"].tuned
    assert run.results["speed.latency"].tuned == 0.5
    assert [g.passed for g in run.gates] == [True, True]
    by_line = {(r.suite, r.line): r for r in run.rows}
    assert by_line[("capitals", 4)].outputs == {"tuned": "no idea", "base": "Lim"}
    assert by_line[("capitals", 4)].tags == {"region": "americas"}


def test_judge_suite_through_the_anthropic_fake(ws, monkeypatch):
    def grade(body: dict) -> str:
        text = body["messages"][0]["content"]
        answer = text.split("<answer>\n")[1].split("\n</answer>")[0]
        reference = text.split("Reference answer (may be empty):\n")[1].split("\n")[0]
        return json.dumps({"score": 5 if answer == reference else 1, "reason": "compared with the reference"})
    spec = EvalSpec.model_validate({
        "suites": [{"name": "quality", "path": "evals/capitals.jsonl", "metric": "judge",
                    "judge": {"model": "claude-judge", "rubric": "Names the right capital."}}],
        "gates": [{"metric": "quality.judge", "min_delta_vs": "base", "min_delta": 0.2}]})
    generate, _ = answers_by_role({"tuned": {c: CITIES[c] for c in CITIES}, "base": {"France": "Paris"}})
    with FakeAnthropic(grade) as fake:
        monkeypatch.setenv("ANTHROPIC_API_KEY", "test")
        monkeypatch.setenv("ANTHROPIC_BASE_URL", fake.base_url)
        run = evaluate(load_suites(ws, spec, None), spec.gates, ["tuned", "base"], generate,
                       JsonCache(ws.root / "judge.json"))
        assert len(fake.requests) == 8  # each model's answer to each case, judged once
    result = run.results["quality.judge"]
    assert (result.tuned, result.base, result.errors) == (1.0, 0.25, 0)
    assert run.passed and run.rows[0].reasons["tuned"] == "compared with the reference"


def test_held_out_split_and_json_schema_suites(ws, tmp_path):
    dataset = tmp_path / "store" / "ds"
    write_jsonl(dataset / "validation.jsonl", [
        {"messages": [{"role": "user", "content": "Capital of Peru?"}, {"role": "assistant", "content": "Lima"}],
         "provenance": {"source": "jsonl", "file": "data/train.jsonl", "line": 3, "ref": None, "agent": None,
                        "task": None, "persona": None}}])
    spec = EvalSpec.model_validate({"suites": [
        {"name": "held", "split": "validation", "metric": "exact_match"},
        {"name": "shape", "path": "evals/capitals.jsonl", "metric": "json_schema",
         "schema": "evals/city.schema.json"}]})
    suites = load_suites(ws, spec, dataset)
    assert suites[0].cases[0].expected == "Lima" and suites[0].cases[0].tags == {"source": "data/train.jsonl"}
    generate, _ = answers_by_role({"tuned": {"Peru": '"Lima"', "France": '"Paris"'}, "base": {}})
    run = evaluate(suites, [], ["tuned", "base"], generate, JsonCache(None))
    assert run.results["held.exact_match"].tuned == 0.0  # '"Lima"' is not 'Lima'
    assert run.results["shape.json_schema"].tuned == 0.5 and run.results["shape.json_schema"].base == 0.0


def test_tokens_metric_counts_with_the_models_tokenizer_or_says_it_estimated(ws):
    spec = EvalSpec.model_validate({
        "suites": [{"name": "length", "path": "evals/capitals.jsonl", "metric": "tokens"}],
        "gates": [{"metric": "length.tokens", "max": 2}]})
    generate, _ = answers_by_role({"tuned": {c: CITIES[c] for c in CITIES},
                                   "base": {c: f"The capital of {c} is {CITIES[c]}." for c in CITIES}})

    def words(role: str, texts: list[str]) -> list[int] | None:  # a tokenizer for the tuned model only
        return [len(t.split()) for t in texts] if role == "tuned" else None

    run = evaluate(load_suites(ws, spec, None), spec.gates, ["tuned", "base"], generate, JsonCache(None),
                   count_tokens=words)
    result = run.results["length.tokens"]
    assert result.tuned == 1.0  # one word each
    # the base's answers were estimated as characters / 4 ("The capital of France is Paris." -> 8)
    assert result.base == sum((len(f"The capital of {c} is {CITIES[c]}.") + 3) // 4 for c in CITIES) / 4
    assert run.rows[0].reasons == {"base": APPROX_TOKENS}
    assert run.passed  # max 2 tokens: the upper CI bound of the tuned model's mean is 1


def test_held_out_eval_split_is_read(ws, tmp_path):
    dataset = tmp_path / "store" / "ds"
    write_jsonl(dataset / "validation.jsonl", [])
    write_jsonl(dataset / "eval.jsonl", [
        {"messages": [{"role": "user", "content": "Capital of Spain?"}, {"role": "assistant", "content": "Madrid"}]}])
    spec = EvalSpec.model_validate({"suites": [{"name": "held", "split": "eval", "metric": "exact_match"}]})
    assert [c.expected for c in load_suites(ws, spec, dataset)[0].cases] == ["Madrid"]
    spec = EvalSpec.model_validate({"suites": [{"name": "held", "split": "validation", "metric": "exact_match"}]})
    with pytest.raises(LevcustomError, match=r"held \(validation split\): the validation split is empty"):
        load_suites(ws, spec, dataset)


def test_bad_suite_inputs_are_clear_errors(ws, tmp_path):
    (tmp_path / "evals" / "bad.schema.json").write_text('{"type": 12}')
    spec = EvalSpec.model_validate({"suites": [
        {"name": "shape", "path": "evals/capitals.jsonl", "metric": "json_schema", "schema": "evals/bad.schema.json"}]})
    with pytest.raises(LevcustomError, match="evals/bad.schema.json: not a valid JSON Schema"):
        load_suites(ws, spec, None)
    (tmp_path / "evals" / "rows.jsonl").write_text('{"messages": [{"role": "user", "content": "hi"}]}\n')
    spec = EvalSpec.model_validate({"suites": [{"name": "r", "path": "evals/rows.jsonl", "metric": "contains"}]})
    with pytest.raises(LevcustomError, match="evals/rows.jsonl:1: 'expected' must be a string"):
        load_suites(ws, spec, None)
    (tmp_path / "evals" / "empty.jsonl").write_text("\n")
    spec = EvalSpec.model_validate({"suites": [{"name": "e", "path": "evals/empty.jsonl", "metric": "contains"}]})
    with pytest.raises(LevcustomError, match="eval suite has no cases"):
        load_suites(ws, spec, None)
