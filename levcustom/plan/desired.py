"""Observe the repository for a plan: load specs, resolve configs, hash inputs (the I/O edge).

Everything after this (``diff.build_plan``) is pure. Reading is bounded by the stat cache:
a no-change plan stats each source file and reads none.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass
from datetime import date
from pathlib import Path

from levcustom.config.compose import ConfigResolver
from levcustom.config.models import ResolvedConfig
from levcustom.datasets.build import line_hashes, load_manifest
from levcustom.datasets.cai import cai_inputs, inspect_cai
from levcustom.datasets.jsonl import read_examples
from levcustom.deploy import online
from levcustom.errors import Issue, LevcustomError, SpecError
from levcustom.plan import fingerprint as fp
from levcustom.plan.diff import DesiredModel, build_plan
from levcustom.plan.model import Action, Estimate, Plan
from levcustom.providers import get_provider
from levcustom.providers.base import Serving
from levcustom.spec.loader import LoadedSpec, load_specs
from levcustom.spec.schema import EXAMPLE_KIND
from levcustom.state.jsoncache import JsonCache
from levcustom.state.lockfile import Lock, ModelState
from levcustom.state.statcache import FileInfo, StatCache
from levcustom.workspace import Workspace


@dataclass
class Context:
    """Everything loaded for one plan; the executor reuses it."""

    ws: Workspace
    specs: dict[str, LoadedSpec]
    configs: dict[str, ResolvedConfig]
    desired: dict[str, DesiredModel]
    resolver: ConfigResolver

    def config_for(self, model: str, provider: str) -> ResolvedConfig:
        """A model's resolved config, or its provider's defaults once its spec is gone."""
        return self.configs.get(model) or self.resolver.defaults(provider)


def load_and_resolve(ws: Workspace, spec_paths: list[Path],
                     sets: list[str]) -> tuple[list[LoadedSpec], dict[str, ResolvedConfig], ConfigResolver]:
    """Validated specs and their resolved configs; every problem is raised at once."""
    specs = load_specs(spec_paths, ws.root)
    resolver = ConfigResolver(ws.conf_dir, ws.cache / "configs.json", sets)
    return specs, resolver.resolve_all(specs), resolver


def observe(ws: Workspace, specs: list[LoadedSpec], configs: dict[str, ResolvedConfig], lock: Lock,
            stat: StatCache) -> list[DesiredModel]:
    """Each spec's stage inputs, from file hashes (stat-cached) and resolved config."""
    issues: list[Issue] = []
    out = []
    for ls in specs:
        body = ls.model.spec
        before = len(issues)
        cai = [(("spec", "cai", "constitution"), body.cai.constitution)] if body.cai else []
        sources = _infos(ws, ls, stat, [(("spec", "dataset", "sources", i, "path"), s.path)
                                        for i, s in enumerate(body.dataset.sources)] + cai, issues)
        suites = _infos(ws, ls, stat, [(("spec", "evals", "suites", i, key), path)
                                       for i, s in enumerate(body.evals.suites)
                                       for key, path in (("path", s.path), ("schema", s.schema_path)) if path], issues)
        if len(issues) > before:
            continue
        cfg = configs[ls.name]
        d_in = fp.dataset_inputs(ls.model, sources)
        if body.cai:
            d_in["cai"] = cai_inputs(body, cfg, sources[body.cai.constitution].sha256)
        provider = get_provider(ls.model.spec.provider, ws)
        t_in = fp.train_inputs(ls.model, provider.name, provider.result_config(cfg), fp.fingerprint(d_in))
        e_in = fp.eval_inputs(ls.model, cfg, fp.fingerprint(t_in), suites)
        ab = ab_phase(ws, ls, lock.models.get(ls.name), fp.fingerprint(e_in))
        serving = provider.serving_config(cfg) if isinstance(provider, Serving) else None
        p_in = fp.deploy_inputs(ls.model, fp.fingerprint(e_in), ab.phase if ab else None, serving)
        deltas = _source_deltas(ws, lock.models.get(ls.name), sources)
        out.append(DesiredModel(ls.name, ls.file, {"dataset": d_in, "train": t_in, "eval": e_in, "deploy": p_in},
                                deltas))
    stat.save()
    if issues:
        raise SpecError(issues)
    return out


def ab_phase(ws: Workspace, ls: LoadedSpec, state: ModelState | None, eval_fp: str) -> online.Decision | None:
    """The online A/B phase of the model's deployment; reads recorded outcomes only while a split runs."""
    deployed = state.deploy if state else None
    live = deployed is not None and deployed.phase == online.SPLIT
    outcomes = online.read(online.outcomes_path(ws.work, ls.name)) if live else []
    return online.phase(ls.model.spec.deploy.traffic, deployed, eval_fp, outcomes)


def _infos(ws: Workspace, ls: LoadedSpec, stat: StatCache, paths, issues: list[Issue]) -> dict[str, FileInfo]:
    found = {}
    for key_path, rel in paths:
        try:
            path = ws.resolve_path(rel)
        except LevcustomError as exc:
            issues.append(ls.doc.issue(key_path, str(exc)))
            continue
        if not path.is_file():
            issues.append(ls.doc.issue(key_path, f"file not found: {rel}"))
            continue
        found[rel] = stat.info(path)
    return found


def _source_deltas(ws: Workspace, state: ModelState | None, sources: dict[str, FileInfo]) -> dict[str, tuple[int, int]]:
    """+added / -removed records for changed sources, when the old build's manifest is at hand."""
    if state is None or state.dataset is None:
        return {}
    changed = {s.path for s in state.dataset.sources if s.path in sources and sources[s.path].sha256 != s.sha256}
    if not changed:
        return {}
    manifest = load_manifest(ws.root / state.dataset.artifact)
    if manifest is None:
        return {}
    old = {s["path"]: s.get("line_hashes", []) for s in manifest["sources"]}
    out = {}
    for path in changed & old.keys():
        before, after = Counter(old[path]), Counter(line_hashes(ws.resolve_path(path)))
        out[path] = (sum((after - before).values()), sum((before - after).values()))
    return out


def preflight(ws: Workspace, plan: Plan, specs: dict[str, LoadedSpec], configs: dict[str, ResolvedConfig],
              stat: StatCache) -> tuple[list[Estimate], list[Issue]]:
    """For each training the plan will run: the provider's offline checks of settings and data
    (located issues) and its cost estimate. Reads source files only for those trainings, and
    caches the verdict by content, so re-planning the same change reads nothing."""
    cache = JsonCache(ws.cache / "inspect.json")
    estimates: list[Estimate] = []
    issues: list[Issue] = []
    for change in plan.pending:
        if change.action is Action.DESTROY:
            continue
        ls, cfg = specs[change.model], configs[change.model]
        body = ls.model.spec
        provider = get_provider(body.provider, ws)
        if change.stage == "deploy" and isinstance(provider, Serving):
            hourly = provider.serving_estimate(body.base_model, cfg)
            if hourly is not None:
                estimates.append(Estimate(model=change.model, tokens=0, hours=hourly.hours, usd=hourly.usd,
                                          note=hourly.note))
        if change.stage != "train" or change.action not in (Action.CREATE, Action.REPLACE):
            continue
        issues += [ls.doc.issue(p.key_path, p.message)
                   for p in provider.check(body.train_method, body.base_model, cfg)]
        key = fp.fingerprint({"provider": provider.name, "train": change.inputs, "config": cfg.provider})
        report = cache.get(key)
        if report is None:
            report = (inspect_cai if body.cai else _inspect)(ws, ls, cfg, provider)
            cache.put(key, report)
        if "generation" in report:
            g = report["generation"]
            estimates.append(Estimate(model=change.model, tokens=g["tokens"], hours=0.0, usd=g["usd"], note=g["note"]))
        issues += [Issue(**i) for i in report["issues"]]
        if report["examples"] < provider.min_examples(cfg):
            issues.append(ls.doc.issue(("spec", "dataset", "sources"), f"{report['examples']} examples; the "
                                       f"{provider.name} provider needs at least {provider.min_examples(cfg)}"))
        est = provider.estimate(report["tokens"], cfg, body.base_model)
        estimates.append(Estimate(model=change.model, tokens=est.tokens, hours=est.hours, usd=est.usd,
                                  note=f"{report['examples']} examples, {est.note} (tokens {report['note']})"))
    cache.save()
    return estimates, issues


def _inspect(ws: Workspace, ls: LoadedSpec, cfg: ResolvedConfig, provider) -> dict:
    body = ls.model.spec
    examples, issues = [], []
    for src in body.dataset.sources:
        found, bad = read_examples(ws.resolve_path(src.path), src.path, EXAMPLE_KIND[body.method])
        examples += found
        if src.on_error == "fail":
            issues += bad
    report = provider.inspect(examples, body.train_method, body.base_model, cfg)
    return {"examples": report.examples, "tokens": report.tokens, "note": report.note,
            "issues": [i.__dict__ for i in issues + report.issues]}


def make_plan(ws: Workspace, lock: Lock, spec_paths: list[Path], *, sets: list[str] | None = None,
              targets: list[str] | None = None, purge: bool = False, today: date | None = None,
              refresh: bool = False) -> tuple[Plan, Context]:
    """Load, observe and diff: the whole ``levcustom plan`` minus rendering.

    ``refresh`` first reads each trained model's real state at its provider (network, credentials)
    and plans replacements for what drifted; the lockfile itself is not written.
    """
    specs, configs, resolver = load_and_resolve(ws, spec_paths, sets or [])
    if refresh:
        from levcustom.apply.refresh import detect_drift, mark_drift

        lock = lock.model_copy(deep=True)
        mark_drift(lock, detect_drift(Context(ws, {s.name: s for s in specs}, configs, {}, resolver), lock, targets))
    unknown = sorted(set(targets or []) - {s.name for s in specs} - set(lock.models))
    if unknown:
        raise LevcustomError(f"--target names no model: {', '.join(unknown)}")
    stat = StatCache(ws.cache / "stat.json")
    desired = observe(ws, specs, configs, lock, stat)
    plan = build_plan(desired, lock, targets=targets, purge=purge)
    by_name = {s.name: s for s in specs}
    warnings = []
    for ls in specs:
        if targets and ls.name not in targets:
            continue
        provider = get_provider(ls.model.spec.provider, ws)
        warnings += [f"{ls.name}: {w}" for w in provider.risks(ls.model.spec.base_model, configs[ls.name],
                                                               today or date.today())]
    estimates, issues = preflight(ws, plan, by_name, configs, stat)
    if issues:
        raise SpecError(issues)
    plan = plan.model_copy(update={"estimates": estimates, "warnings": warnings})
    stat.save()
    return plan, Context(ws, by_name, configs, {d.name: d for d in desired}, resolver)
