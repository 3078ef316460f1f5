"""Run an eval: load the suites, get every model's answers (through a ``generate`` callback, so
the provider and its cache stay with the caller), score them deterministically or with a judge,
summarize and check the gates. The tuned, base and (when one is deployed) deployed models answer
the same cases, so every comparison is paired."""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from levcustom.errors import LevcustomError
from levcustom.evals.gates import check_gates
from levcustom.evals.judge import JudgeClient, JudgeRequest, judge_all, make_client
from levcustom.evals.metrics import METRIC_FUNCTIONS, Scorer, json_schema_scorer
from levcustom.evals.results import CaseRow, summarize
from levcustom.evals.suite import EvalCase, held_out_cases, load_suite
from levcustom.spec.schema import EvalSpec, JudgeSpec, Suite
from levcustom.state.jsoncache import JsonCache
from levcustom.state.lockfile import GateResult, MetricResult
from levcustom.workspace import Workspace


@dataclass(frozen=True)
class Generation:
    """A model's answers to the prompts, and the wall time it took to produce them."""

    outputs: list[str]
    seconds: float


Generate = Callable[[str, list[list[dict[str, str]]]], Generation]  # (role, prompts) -> answers
# (role, texts) -> tokens per text with that model's tokenizer, or None when it has none on disk
CountTokens = Callable[[str, list[str]], list[int] | None]
APPROX_TOKENS = "counted as characters / 4: no tokenizer for this model"


def approx_tokens(text: str) -> int:
    """The usual rule of thumb for English text when the model's tokenizer is unavailable."""
    return (len(text) + 3) // 4


@dataclass(frozen=True)
class LoadedSuite:
    spec: Suite
    cases: list[EvalCase]
    schema: dict | None = None


@dataclass(frozen=True)
class EvalRun:
    rows: list[CaseRow]
    results: dict[str, MetricResult]
    gates: list[GateResult]

    @property
    def passed(self) -> bool:
        return all(g.passed for g in self.gates)


def load_suites(ws: Workspace, evals: EvalSpec, dataset_dir: Path | None) -> list[LoadedSuite]:
    """Every suite's cases (from its file or the held-out split) and JSON Schema; bad input is an error."""
    out = []
    for suite in evals.suites:
        if suite.path is not None:
            cases = load_suite(ws.resolve_path(suite.path), suite.path)
        else:
            if dataset_dir is None:
                raise LevcustomError(f"suite {suite.name}: the dataset is not built yet")
            cases = held_out_cases(dataset_dir, suite.split, f"{suite.name} ({suite.split} split)")
        out.append(LoadedSuite(suite, cases, _schema(ws, suite.schema_path) if suite.schema_path else None))
    return out


def _schema(ws: Workspace, rel: str) -> dict:
    from jsonschema import Draft202012Validator
    from jsonschema.exceptions import SchemaError

    try:
        schema = json.loads(ws.resolve_path(rel).read_text("utf-8"))
        Draft202012Validator.check_schema(schema)
    except (OSError, ValueError) as exc:
        raise LevcustomError(f"{rel}: cannot read the JSON Schema: {exc}") from None
    except SchemaError as exc:
        raise LevcustomError(f"{rel}: not a valid JSON Schema: {exc.message}") from None
    return schema


def evaluate(suites: list[LoadedSuite], gates_spec, roles: list[str], generate: Generate, judge_cache: JsonCache,
             judge_client: Callable[[JudgeSpec], JudgeClient] = make_client,
             judge_progress: Callable[[str, int, int], None] | None = None,
             count_tokens: CountTokens = lambda role, texts: None) -> EvalRun:
    """Answers of every role to every distinct prompt, scored per suite, summarized and gated."""
    index: dict[str, int] = {}
    prompts: list[list[dict[str, str]]] = []
    for suite in suites:  # suites sharing prompts share answers
        for case in suite.cases:
            key = json.dumps(case.as_messages())
            if key not in index:
                index[key] = len(prompts)
                prompts.append(case.as_messages())
    generations = {role: generate(role, prompts) for role in roles}
    rows: list[CaseRow] = []
    for suite in suites:
        answers = [{role: generations[role].outputs[index[json.dumps(c.as_messages())]] for role in roles}
                   for c in suite.cases]
        if suite.spec.judge is not None:
            rows += _judged(suite, answers, roles, judge_cache, judge_client, judge_progress)
        else:
            rows += _scored(suite, answers, roles, generations, len(prompts), count_tokens)
    return EvalRun(rows, summarize(rows), check_gates(list(gates_spec), rows))


def _row(suite: LoadedSuite, case: EvalCase, outputs: dict[str, str], scores: dict[str, float | None],
         **extra) -> CaseRow:
    return CaseRow(suite=suite.spec.name, metric=suite.spec.metric, key=case.key, line=case.line,
                   expected=case.expected, outputs=outputs, scores=scores, tags=dict(case.tags), **extra)


def _scored(suite: LoadedSuite, answers: list[dict[str, str]], roles: list[str],
            generations: dict[str, Generation], prompts: int, count_tokens: CountTokens) -> list[CaseRow]:
    if suite.spec.metric == "latency":
        # Batched generation gives no per-answer clock: each case gets its model's mean seconds per answer.
        per_case = {role: generations[role].seconds / prompts for role in roles}
        return [_row(suite, c, a, dict(per_case)) for c, a in zip(suite.cases, answers, strict=True)]
    if suite.spec.metric == "tokens":
        return _token_rows(suite, answers, roles, count_tokens)
    fn: Scorer = json_schema_scorer(suite.schema) if suite.schema is not None else METRIC_FUNCTIONS[suite.spec.metric]
    return [_row(suite, c, a, {role: fn(a[role], c.expected) for role in roles})
            for c, a in zip(suite.cases, answers, strict=True)]


def _token_rows(suite: LoadedSuite, answers: list[dict[str, str]], roles: list[str],
                count_tokens: CountTokens) -> list[CaseRow]:
    """Each answer's length in tokens (lower is cheaper and faster to serve)."""
    counts, approx = {}, set()
    for role in roles:
        texts = [a[role] for a in answers]
        exact = count_tokens(role, texts)
        if exact is None:
            approx.add(role)
        counts[role] = exact if exact is not None else [approx_tokens(t) for t in texts]
    reasons = {role: APPROX_TOKENS for role in approx}
    return [_row(suite, c, a, {role: float(counts[role][i]) for role in roles}, reasons=dict(reasons))
            for i, (c, a) in enumerate(zip(suite.cases, answers, strict=True))]


def _judged(suite: LoadedSuite, answers: list[dict[str, str]], roles: list[str], cache: JsonCache,
            client: Callable[[JudgeSpec], JudgeClient],
            progress: Callable[[str, int, int], None] | None) -> list[CaseRow]:
    judge = suite.spec.judge
    assert judge is not None
    report = (lambda done, total: progress(suite.spec.name, done, total)) if progress else None
    if judge.mode == "pairwise":
        ref = judge.vs if judge.vs in roles else "base"
        requests = [JudgeRequest(c.as_messages(), c.expected, a["tuned"], a[ref])
                    for c, a in zip(suite.cases, answers, strict=True)]
        verdicts = judge_all(judge, requests, cache, client, report)
        return [_row(suite, c, a, {"tuned": v.score}, errors={"tuned": v.error} if v.error else {},
                     reasons={"tuned": v.reason}, reference=ref)
                for c, a, v in zip(suite.cases, answers, verdicts, strict=True)]
    requests = [JudgeRequest(c.as_messages(), c.expected, a[role])
                for c, a in zip(suite.cases, answers, strict=True) for role in roles]
    verdicts = judge_all(judge, requests, cache, client, report)
    rows = []
    for i, (case, outputs) in enumerate(zip(suite.cases, answers, strict=True)):
        mine = dict(zip(roles, verdicts[i * len(roles):(i + 1) * len(roles)], strict=True))
        rows.append(_row(suite, case, outputs, {r: v.score for r, v in mine.items()},
                         errors={r: v.error for r, v in mine.items() if v.error},
                         reasons={r: v.reason for r, v in mine.items() if v.reason}))
    return rows
