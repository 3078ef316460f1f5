"""Online A/B tests: split an agent's requests between a candidate and the stable version by a
hash of the request key, record outcomes, and decide to keep splitting, promote or roll back.

Deciding is pure (``decide``, ``phase``); outcomes are an append-only JSONL file per model under
``.levcustom/outcomes/`` that the agent system (or ``levcustom outcome``) writes.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import asdict, dataclass
from pathlib import Path

from levcustom.errors import LevcustomError
from levcustom.evals import stats
from levcustom.spec.schema import TrafficSpec
from levcustom.state.lockfile import DeployState, PreviousDeployment

SPLIT, PROMOTED, ROLLED_BACK, FULL = "split", "promoted", "rolled-back", "full"


def bucket(key: str, model: str) -> int:
    """0..99, fixed for a (request key, model): the same request always goes to the same arm."""
    return int.from_bytes(hashlib.sha256(f"{model}\0{key}".encode()).digest()[:8], "big") % 100


def stable(dep: DeployState) -> PreviousDeployment:
    """The version serving the majority of requests: the previous one while a split is undecided or
    after a rollback, else this deployment itself."""
    if dep.previous is not None and dep.phase in (SPLIT, ROLLED_BACK):
        return dep.previous
    return PreviousDeployment(fingerprint=dep.fingerprint, provider=dep.provider, base_model=dep.base_model,
                              model_ref=dep.model_ref)


@dataclass(frozen=True)
class Outcome:
    """How one request served by ``model_ref`` went."""

    key: str
    model_ref: str
    arm: str
    success: bool
    rating: float | None = None


def outcomes_path(work: Path, model: str) -> Path:
    return work / "outcomes" / f"{model}.jsonl"


def record(path: Path, outcome: Outcome) -> None:
    """Append one outcome (one short line: appends from several writers do not interleave)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "a", encoding="utf-8") as f:
        f.write(json.dumps(asdict(outcome), sort_keys=True) + "\n")


def read(path: Path) -> list[Outcome]:
    """Every recorded outcome; a malformed line is an error naming file:line."""
    if not path.is_file():
        return []
    out = []
    for n, line in enumerate(path.read_text("utf-8").splitlines(), start=1):
        if not line.strip():
            continue
        try:
            out.append(Outcome(**json.loads(line)))
        except (ValueError, TypeError) as exc:
            raise LevcustomError(f"{path}:{n}: not an outcome record ({exc})") from None
    return out


@dataclass(frozen=True)
class Decision:
    phase: str
    reason: str


def decide(traffic: TrafficSpec, outcomes: list[Outcome], candidate_ref: str, stable_ref: str) -> Decision:
    """Promote when the lower CI bound of (candidate - stable) success rate clears ``min_delta``, roll
    back when the upper bound falls below it, else keep splitting; never before each arm has
    ``min_outcomes`` (requests are independent here, so the difference is unpaired)."""
    cand = [float(o.success) for o in outcomes if o.model_ref == candidate_ref and o.arm == "candidate"]
    base = [float(o.success) for o in outcomes if o.model_ref == stable_ref and o.arm == "stable"]
    if min(len(cand), len(base)) < traffic.min_outcomes:
        return Decision(SPLIT, f"waiting for outcomes: candidate {len(cand)}, stable {len(base)} "
                               f"(need {traffic.min_outcomes} each)")
    ci = stats.unpaired_bootstrap_ci(cand, base, traffic.confidence)
    rates = f"success candidate {sum(cand) / len(cand):.3f} (n={len(cand)}) vs stable {sum(base) / len(base):.3f} " \
            f"(n={len(base)}): difference {ci.format(signed=True)}"
    if ci.low >= traffic.min_delta:
        return Decision(PROMOTED, f"{rates}; lower bound >= {traffic.min_delta:+}: promote")
    if ci.high < traffic.min_delta:
        return Decision(ROLLED_BACK, f"{rates}; upper bound < {traffic.min_delta:+}: roll back")
    return Decision(SPLIT, f"{rates}; undecided")


def phase(traffic: TrafficSpec | None, deployed: DeployState | None, eval_fp: str,
          outcomes: list[Outcome]) -> Decision | None:
    """The A/B phase a deploy should be in: a new version starts as a split against what serves now;
    the same version moves on only from a split (promoted and rolled-back are final for it)."""
    if traffic is None:
        return None
    if deployed is None:
        return Decision(FULL, "nothing deployed to split against")
    if deployed.inputs.get("eval") != eval_fp:
        return Decision(SPLIT, f"new version gets {traffic.candidate}% of requests")
    if deployed.phase != SPLIT or deployed.previous is None:
        return Decision(deployed.phase or FULL, "decided")
    return decide(traffic, outcomes, deployed.model_ref, deployed.previous.model_ref)
