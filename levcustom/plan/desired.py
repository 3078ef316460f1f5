"""Observe the repository for a plan: load specs, resolve configs, hash inputs (the I/O edge).

Everything after this (``diff.build_plan``) is pure. Reading is bounded by the stat cache:
a no-change plan stats each source file and reads none.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date
from pathlib import Path

from levcustom.config.compose import ConfigResolver
from levcustom.config.models import ResolvedConfig
from levcustom.datasets.diff import file_line_hashes, record_delta
from levcustom.datasets.manifest import load_line_hashes, load_manifest
from levcustom.datasets.sources import SourceInfo, source_info, source_keys
from levcustom.deploy import online
from levcustom.errors import Issue, LevcustomError, SpecError
from levcustom.plan import fingerprint as fp
from levcustom.plan.diff import DesiredModel, build_plan
from levcustom.plan.model import Action, Estimate, Plan
from levcustom.providers import get_provider
from levcustom.providers.base import DeployChecker, Serving
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
        sources = _source_infos(ws, ls, stat, issues)
        constitution = _infos(ws, ls, stat, [(("spec", "cai", "constitution"), body.cai.constitution)]
                              if body.cai else [], issues)
        suites = _infos(ws, ls, stat, [(("spec", "evals", "suites", i, key), path)
                                       for i, s in enumerate(body.evals.suites)
                                       for key, path in (("path", s.path), ("schema", s.schema_path)) if path], issues)
        if len(issues) > before:
            continue
        cfg = configs[ls.name]
        d_in = fp.dataset_inputs(ls.model, sources)
        if body.cai:
            from levcustom.datasets.cai import cai_inputs  # lazy: the CAI client stack, only for cai specs

            d_in["cai"] = cai_inputs(body, cfg, constitution[body.cai.constitution].sha256)
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
        raise SpecError(list(dict.fromkeys(issues)))  # for_each instances share a file's lines
    return out


def _source_infos(ws: Workspace, ls: LoadedSpec, stat: StatCache, issues: list[Issue]) -> list[SourceInfo]:
    found = []
    sources = ls.model.spec.dataset.sources
    for i, (key, src) in enumerate(zip(source_keys(sources), sources, strict=True)):
        field = "persona" if src.type == "personality" else "path"
        try:
            found.append(source_info(ws, key, src, stat))
        except LevcustomError as exc:
            issues.append(ls.doc.issue(("spec", "dataset", "sources", i, field), str(exc)))
    return found


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


def _source_deltas(ws: Workspace, state: ModelState | None, sources: list[SourceInfo]) -> dict[str, tuple[int, int]]:
    """+added / -removed records of each changed source, when the old build's line hashes are at hand."""
    if state is None or state.dataset is None:
        return {}
    old = {s.get("key"): s.get("sha256") for s in state.dataset.inputs.get("sources", [])}
    changed = [s for s in sources if s.key in old and old[s.key] != s.sha256]
    if not changed:
        return {}
    artifact = ws.root / state.dataset.artifact
    manifest = load_manifest(artifact)
    if manifest is None:
        return {}
    out = {}
    for info in changed:
        before = load_line_hashes(artifact, manifest, info.key)
        if before is not None:
            out[info.key] = record_delta(before, file_line_hashes([ws.root / rel for rel, _ in info.files]))
    return out


def preflight(ws: Workspace, plan: Plan, specs: dict[str, LoadedSpec], configs: dict[str, ResolvedConfig],
              stat: StatCache) -> tuple[list[Estimate], list[Issue]]:
    """For each training the plan will run: the provider's offline checks of settings and data
    (located issues) and its cost estimate, on the examples the dataset build will keep. Reads
    source files only for those trainings (the build's per-file cache is filled on the way, so
    apply reuses that work), and caches the verdict by content: re-planning reads nothing."""
    cache = JsonCache(ws.cache / "inspect.json")
    estimates: list[Estimate] = []
    issues: list[Issue] = []
    for change in plan.pending:
        if change.action is Action.DESTROY:
            continue
        ls, cfg = specs[change.model], configs[change.model]
        body = ls.model.spec
        provider = get_provider(body.provider, ws)
        if change.stage == "deploy":
            if isinstance(provider, DeployChecker):
                issues += [ls.doc.issue(p.key_path, p.message) for p in provider.check_deploy(body, cfg)]
            hourly = provider.serving_estimate(body.base_model, cfg) if isinstance(provider, Serving) else None
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
            from levcustom.datasets.cai import inspect_cai

            report = (inspect_cai if body.cai else _inspect)(ws, ls, cfg, provider)
            cache.put(key, report)
        if "generation" in report:
            g = report["generation"]
            estimates.append(Estimate(model=change.model, tokens=g["tokens"], hours=0.0, usd=g["usd"], note=g["note"]))
        issues += [Issue(**i) for i in report["issues"]]
        if report["examples"] is None:  # the dataset cannot be built: its issues say why
            continue
        if report["examples"] < provider.min_examples(cfg):
            issues.append(ls.doc.issue(("spec", "dataset", "sources"), f"{report['examples']} examples; the "
                                       f"{provider.name} provider needs at least {provider.min_examples(cfg)}"))
        est = provider.estimate(report["tokens"], cfg, body.base_model)
        estimates.append(Estimate(model=change.model, tokens=est.tokens, hours=est.hours, usd=est.usd,
                                  note=f"{report['examples']} examples, {est.note} (tokens {report['note']})"))
    cache.save()
    return estimates, issues


def _inspect(ws: Workspace, ls: LoadedSpec, cfg: ResolvedConfig, provider) -> dict:
    from levcustom.datasets.build import curate_dataset  # lazy: numpy, only when a training is planned

    body = ls.model.spec
    invalid: list[Issue] = []  # every malformed row, located in its file; the valid rows are still checked
    try:
        curated = curate_dataset(ws, body.dataset, EXAMPLE_KIND[body.train_method], invalid)
    except LevcustomError as exc:
        return {"examples": None, "tokens": 0, "note": "", "issues": [i.__dict__ for i in invalid] + [
            ls.doc.issue(("spec", "dataset"), str(exc)).__dict__]}
    report = provider.inspect(curated.examples("train"), body.train_method, body.base_model, cfg)
    return {"examples": report.examples, "tokens": report.tokens, "note": report.note,
            "issues": [i.__dict__ for i in invalid + report.issues]}


def make_plan(ws: Workspace, lock: Lock, spec_paths: list[Path], *, sets: list[str] | None = None,
              targets: list[str] | None = None, purge: bool = False, today: date | None = None,
              refresh: bool = False, check_trainings: bool = True) -> tuple[Plan, Context]:
    """Load, observe and diff: the whole ``levcustom plan`` minus rendering.

    ``refresh`` first reads each trained model's real state at its provider (network, credentials)
    and plans replacements for what drifted; the lockfile itself is not written.
    ``check_trainings=False`` skips the providers' preflight of planned trainings (for commands
    that train nothing).
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
    estimates, issues = preflight(ws, plan, by_name, configs, stat) if check_trainings else ([], [])
    if issues:
        raise SpecError(issues)
    plan = plan.model_copy(update={"estimates": estimates, "warnings": warnings})
    stat.save()
    return plan, Context(ws, by_name, configs, {d.name: d for d in desired}, resolver)
