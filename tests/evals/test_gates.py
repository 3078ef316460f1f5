"""Gates decide deploys from per-case results: check both directions of each rule."""

from __future__ import annotations

from levcustom.evals.gates import check_gates
from levcustom.evals.results import CaseRow
from levcustom.spec.schema import Gate


def rows(tuned: list[float], base: list[float], deployed: list[float] | None = None, metric: str = "exact_match",
         errors: dict[int, str] | None = None) -> list[CaseRow]:
    out = []
    for i, (t, b) in enumerate(zip(tuned, base, strict=True)):
        scores = {"tuned": None if errors and i in errors else t, "base": b}
        if deployed is not None:
            scores["deployed"] = deployed[i]
        out.append(CaseRow(suite="s", metric=metric, key=str(i), line=i + 1, expected="x", outputs={},
                           scores=scores, errors={"tuned": errors[i]} if errors and i in errors else {}))
    return out


def test_min_max_bound_the_mean_and_show_its_interval():
    data = rows([1.0] * 8 + [0.0] * 2, [1.0] * 7 + [0.0] * 3)
    ok, too_low, strict = check_gates([Gate(metric="s.exact_match", min=0.8, max=0.9),
                                       Gate(metric="s.exact_match", min=0.81),
                                       Gate(metric="s.exact_match", min=0.6, confidence=0.95)], data)
    assert ok.passed and not too_low.passed
    assert too_low.detail.startswith("FAILED s.exact_match 0.800 >= 0.81 (95% CI 0.")
    # 8/10 has a 95% lower bound of 0.5: "at least 0.6 with confidence" is not shown by 10 cases
    assert not strict.passed and "s.exact_match 0.800: lower 95% CI bound 0.500 >= 0.6" in strict.detail


def test_a_regressed_model_fails_the_paired_gate_with_its_interval():
    # 40 cases: base passes 30, the candidate breaks 8 of those and fixes 1.
    base = [1.0] * 30 + [0.0] * 10
    tuned = [0.0] * 8 + [1.0] * 22 + [1.0] + [0.0] * 9
    [gate] = check_gates([Gate(metric="s.exact_match", min_delta_vs="base", min_delta=0.0, confidence=0.95)],
                         rows(tuned, base))
    assert not gate.passed
    assert "s.exact_match 0.575 vs base 0.750: lower 95% CI bound -0.325 >= +0.0" in gate.detail
    assert "delta -0.175" in gate.detail and "McNemar p=0.039" in gate.detail and "n=40" in gate.detail
    assert "too small to decide" not in gate.detail  # the whole interval is below zero: decided


def test_a_suite_too_small_to_decide_says_how_many_cases_would():
    # 16 cases, the candidate fixes 3 and breaks 1: +0.125, but the interval straddles zero.
    base = [1.0] * 8 + [0.0] * 8
    tuned = [0.0] + [1.0] * 7 + [1.0] * 3 + [0.0] * 5
    [gate] = check_gates([Gate(metric="s.exact_match", min_delta_vs="base", confidence=0.95)], rows(tuned, base))
    assert not gate.passed
    assert "the suite is too small to decide: about " in gate.detail and "(it has 16)" in gate.detail
    need = int(gate.detail.split("about ")[1].split()[0])
    assert need > 16


def test_demo_gate_passes_a_clear_improvement_over_base():
    # The demo: base 0/16, tuned 12/16 must clear +0.25 with 95% confidence.
    [gate] = check_gates([Gate(metric="s.exact_match", min_delta_vs="base", min_delta=0.25, confidence=0.95)],
                         rows([1.0] * 12 + [0.0] * 4, [0.0] * 16))
    assert gate.passed and "lower 95% CI bound +0.5" in gate.detail


def test_delta_vs_deployed_uses_the_deployed_answers_else_base():
    tuned, base = [1.0] * 8 + [0.0] * 2, [0.0] * 10
    gate = Gate(metric="s.exact_match", min_delta_vs="deployed")
    [regressed] = check_gates([gate], rows(tuned, base, deployed=[1.0] * 9 + [0.0]))
    assert not regressed.passed and "vs deployed 0.900: delta -0.100" in regressed.detail
    [first] = check_gates([gate], rows(tuned, base))
    assert first.passed and "vs base 0.000" in first.detail


def test_unscored_cases_fail_the_gate_never_pass():
    data = rows([1.0] * 10, [0.0] * 10, metric="judge", errors={3: "judge reply is not the JSON asked for: 'hmm'"})
    [gate] = check_gates([Gate(metric="s.judge", min=0.1)], data)
    assert not gate.passed
    assert "1 of 10 cases could not be scored (line 4: judge reply is not the JSON asked for" in gate.detail


def test_graded_metrics_use_the_normal_sample_size():
    tuned = [0.6, 0.7, 0.5, 0.8, 0.6, 0.7]
    base = [0.5, 0.7, 0.6, 0.6, 0.5, 0.6]
    [gate] = check_gates([Gate(metric="s.rouge_l", min_delta_vs="base", confidence=0.95)],
                         rows(tuned, base, metric="rouge_l"))
    assert "McNemar" not in gate.detail
    assert gate.passed or "paired cases would detect" in gate.detail


def test_recorded_summaries_are_rechecked_without_per_case_rows():
    from levcustom.evals.gates import check_recorded
    from levcustom.evals.results import summarize

    [result] = summarize(rows([1.0] * 12 + [0.0] * 4, [0.0] * 16)).values()
    gates = [Gate(metric="s.exact_match", min=0.7), Gate(metric="s.exact_match", min=0.7, confidence=0.95),
             Gate(metric="s.exact_match", min_delta_vs="deployed", min_delta=0.25, confidence=0.95),
             Gate(metric="s.exact_match", min_delta_vs="base", min_delta=0.8)]
    point, strict, delta, too_much = check_recorded(gates, {"s.exact_match": result})
    assert point.passed and not strict.passed and "0.5" in strict.detail  # the recorded lower bound
    assert delta.passed and not too_much.passed and "delta vs base +0.750 >= +0.8" in too_much.detail
