"""Per-case results (one row per suite case, with every model's answer and score) and their
summary: means, confidence intervals, paired comparisons. Pure functions over rows."""

from __future__ import annotations

import hashlib
import json
from dataclasses import asdict, dataclass, field
from pathlib import Path

from levcustom.errors import LevcustomError
from levcustom.evals import stats
from levcustom.evals.metrics import PASS_FAIL
from levcustom.state.lockfile import MetricResult, PairedResult

ROLES = ("tuned", "base", "deployed")  # the candidate, the untuned base model, the deployed version


@dataclass(frozen=True)
class CaseRow:
    """One case of one suite: every model's answer, its score (None: could not be scored) and why."""

    suite: str
    metric: str
    key: str
    line: int
    expected: str
    outputs: dict[str, str]
    scores: dict[str, float | None]
    tags: dict[str, str] = field(default_factory=dict)
    errors: dict[str, str] = field(default_factory=dict)
    reasons: dict[str, str] = field(default_factory=dict)
    reference: str | None = None  # pairwise judge: the model the tuned answer was compared with

    @property
    def metric_name(self) -> str:
        return f"{self.suite}.{self.metric}"

    def to_json(self) -> str:
        return json.dumps(asdict(self), ensure_ascii=False, sort_keys=True)

    @classmethod
    def from_json(cls, line: str) -> CaseRow:
        return cls(**json.loads(line))


def by_metric(rows: list[CaseRow]) -> dict[str, list[CaseRow]]:
    """Rows grouped by ``<suite>.<metric>``, in suite order."""
    out: dict[str, list[CaseRow]] = {}
    for row in rows:
        out.setdefault(row.metric_name, []).append(row)
    return out


def role_scores(rows: list[CaseRow], role: str) -> list[float] | None:
    """The role's score on every case, or None when the role was not scored (absent or any error)."""
    values = [r.scores.get(role) for r in rows]
    if not values or any(v is None for v in values):
        return None
    return [float(v) for v in values]  # type: ignore[arg-type]


def errors(rows: list[CaseRow], role: str = "tuned") -> list[str]:
    """Why cases could not be scored, as ``line N: error``."""
    return [f"line {r.line}: {r.errors[role]}" for r in rows if r.scores.get(role) is None and role in r.errors]


def compare(tuned: list[float], reference: list[float], metric: str, confidence: float) -> PairedResult:
    """Paired difference tuned - reference with its bootstrap CI (and McNemar for pass/fail metrics)."""
    ci = stats.paired_bootstrap_ci(tuned, reference, confidence)
    test = stats.mcnemar(tuned, reference) if metric in PASS_FAIL else None
    return PairedResult(cases=len(tuned), delta=ci.estimate, ci_low=ci.low, ci_high=ci.high, confidence=confidence,
                        p_value=test.p_value if test else None, improved=test.improved if test else None,
                        regressed=test.regressed if test else None)


def summarize(rows: list[CaseRow], confidence: float = 0.95) -> dict[str, MetricResult]:
    """Per metric: each model's mean over the cases it was scored on, the tuned mean's CI, the number
    of unscorable cases, and paired comparisons against base and deployed where both were scored."""
    out = {}
    for name, group in by_metric(rows).items():
        scored = [float(r.scores["tuned"]) for r in group if r.scores.get("tuned") is not None]
        means = {role: _mean(group, role) for role in ROLES}
        ci = stats.bootstrap_ci(scored, confidence) if scored else None
        tuned = role_scores(group, "tuned")
        paired = {}
        for ref in ("base", "deployed"):
            ref_scores = role_scores(group, ref)
            if tuned is not None and ref_scores is not None:
                paired[ref] = compare(tuned, ref_scores, group[0].metric, confidence)
        out[name] = MetricResult(tuned=means["tuned"] if means["tuned"] is not None else 0.0, base=means["base"],
                                 deployed=means["deployed"], cases=len(group),
                                 errors=len(group) - len(scored), ci_low=ci.low if ci else None,
                                 ci_high=ci.high if ci else None, paired=paired)
    return out


def _mean(rows: list[CaseRow], role: str) -> float | None:
    values = [float(r.scores[role]) for r in rows if r.scores.get(role) is not None]
    return sum(values) / len(values) if values else None


def slices(rows: list[CaseRow]) -> dict[str, dict[str, dict[str, float | int | None]]]:
    """Per ``tag=value`` slice and metric: each model's mean and the number of cases."""
    out: dict[str, dict[str, dict[str, float | int | None]]] = {}
    for row in rows:
        for tag, value in sorted(row.tags.items()):
            out.setdefault(f"{tag}={value}", {}).setdefault(row.metric_name, {})
    for name in out:
        tag, value = name.split("=", 1)
        for metric in out[name]:
            group = [r for r in rows if r.metric_name == metric and r.tags.get(tag) == value]
            out[name][metric] = {"cases": len(group), **{role: _mean(group, role) for role in ROLES}}
    return out


def load_rows(path: Path, sha256: str | None = None) -> list[CaseRow]:
    """Per-case rows of a run; a missing or altered file is an error (a report must match its state)."""
    if not path.is_file():
        raise LevcustomError(f"per-case results {path} are missing (the .levcustom/ work area is local): "
                             "run levcustom eval MODEL to produce them here")
    text = path.read_text("utf-8")
    if sha256 is not None and hashlib.sha256(text.encode()).hexdigest() != sha256:
        raise LevcustomError(f"{path} does not match the lockfile's eval (changed since): run levcustom eval MODEL")
    return [CaseRow.from_json(line) for line in text.splitlines() if line.strip()]
