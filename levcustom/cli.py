"""The ``levcustom`` command: parse, call, render, map errors to exit codes. Nothing else.

Exit codes: 0 ok / no changes, 1 error, 2 changes pending (plan --detailed-exitcode),
3 an eval gate blocked a deployment.
"""

from __future__ import annotations

import json
import sys
from enum import StrEnum
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console

from levcustom.errors import LevcustomError
from levcustom.workspace import Workspace

app = typer.Typer(add_completion=False, no_args_is_help=True, pretty_exceptions_enable=False,
                  help="Infrastructure-as-code for fine-tuned models: plan, train, evaluate, gate, deploy.")
console = Console(highlight=False)
err_console = Console(stderr=True, highlight=False)

Root = Annotated[Path, typer.Option("--chdir", "-C", help="Repository root (holds conf/, specs/, levcustom.lock).")]
SpecPaths = Annotated[list[Path] | None, typer.Argument(help="Spec files or folders (default: specs/).")]
Sets = Annotated[list[str] | None, typer.Option("--set", help="Extra config override key=value (repeatable).")]
Targets = Annotated[list[str] | None, typer.Option("--target", help="Limit to these models (repeatable).")]


class Format(StrEnum):
    text = "text"
    json = "json"
    markdown = "markdown"


def _ws(root: Path) -> Workspace:
    root = root.resolve()
    if not root.is_dir():
        raise LevcustomError(f"{root}: no such folder")
    return Workspace(root)


def _paths(ws: Workspace, paths: list[Path] | None) -> list[Path]:
    return paths or [ws.specs_dir]


def main() -> None:
    """Console entry point: every expected failure is one clear line (never a traceback)."""
    try:
        code = app(standalone_mode=False)  # returns typer.Exit's code instead of exiting
    except LevcustomError as exc:
        err_console.print(f"Error: {exc}", markup=False, soft_wrap=True, style="red")
        sys.exit(exc.exit_code)
    except KeyboardInterrupt:
        err_console.print("Interrupted: the lockfile is consistent; run apply again to resume.", style="red")
        sys.exit(1)
    except OSError as exc:
        err_console.print(f"Error: {exc}", markup=False, style="red")
        sys.exit(1)
    except Exception as exc:  # click's usage errors carry their own exit code
        kind = _click_kind(exc)
        if kind == "usage":
            exc.show()
            sys.exit(exc.exit_code)
        if kind == "exit":
            sys.exit(exc.exit_code)
        if kind == "abort":
            err_console.print("Aborted.", style="red")
            sys.exit(1)
        raise
    sys.exit(code if isinstance(code, int) else 0)


def _click_kind(exc: Exception) -> str | None:
    """"usage", "exit" or "abort" for click's exceptions: click's own, or those of the copy of click
    that recent typer versions bundle, whose classes are not click's."""
    import click

    usage = (click.ClickException, *(c for c in typer.BadParameter.__mro__ if c.__name__ == "ClickException"))
    if isinstance(exc, usage):
        return "usage"
    if isinstance(exc, (click.exceptions.Exit, typer.Exit)):
        return "exit"
    if isinstance(exc, (click.exceptions.Abort, typer.Abort)):
        return "abort"
    return None


@app.command()
def validate(paths: SpecPaths = None, root: Root = Path("."), set_: Sets = None) -> None:
    """Check specs and their resolved configs; report every error with file:line:column."""
    from levcustom.plan.desired import load_and_resolve

    ws = _ws(root)
    specs, _, _ = load_and_resolve(ws, _paths(ws, paths), set_ or [])
    console.print(f"[green]Success![/] {len(specs)} spec{'s' if len(specs) != 1 else ''} valid.")


@app.command()
def schema(output: Annotated[Path | None, typer.Option("--output", "-o", help="Write to a file.")] = None) -> None:
    """Print (or write) the JSON Schema of spec files, for editor completion."""
    from levcustom.spec.jsonschema import spec_json_schema

    text = json.dumps(spec_json_schema(), indent=2)
    if output:
        output.write_text(text + "\n")
        console.print(f"Wrote {output}. Add to a spec: # yaml-language-server: $schema={output}")
    else:
        print(text)


@app.command()
def config(model: str, root: Root = Path("."), set_: Sets = None, paths: SpecPaths = None) -> None:
    """Print the resolved config of MODEL (Hydra groups + spec + overrides + --set)."""
    from levcustom.plan.desired import load_and_resolve

    ws = _ws(root)
    _, configs, _ = load_and_resolve(ws, _paths(ws, paths), set_ or [])
    if model not in configs:
        raise LevcustomError(f"no spec defines model {model!r} (models: {', '.join(sorted(configs))})")
    import yaml

    print(yaml.safe_dump(configs[model].model_dump(mode="json"), sort_keys=False), end="")


@app.command()
def plan(paths: SpecPaths = None, root: Root = Path("."), set_: Sets = None, target: Targets = None,
         out: Annotated[Path | None, typer.Option("-out", "--out", help="Save the plan for apply.")] = None,
         json_: Annotated[bool, typer.Option("--json", help="Machine-readable plan.")] = False,
         format_: Annotated[Format, typer.Option("--format")] = Format.text,
         detailed_exitcode: Annotated[bool, typer.Option("--detailed-exitcode",
                                                         help="Exit 0 no changes, 2 changes, 1 error.")] = False,
         purge: Annotated[bool, typer.Option("--purge", help="Destroy deletes artifacts too.")] = False,
         refresh: Annotated[bool, typer.Option("--refresh", help="Read providers' real state first (drift); "
                                                                "needs credentials.")] = False) -> None:
    """Show what apply would do, and why. Read-only: no credentials, no jobs, no ML imports."""
    from levcustom.plan import memo
    from levcustom.plan.desired import make_plan
    from levcustom.plan.planfile import save_plan
    from levcustom.state.lockfile import read_lock

    with memo.recording() as recorder:  # records for the next identical plan (see plan/memo.py)
        ws = _ws(root)
        lock = read_lock(ws.lockfile)
        the_plan, _ = make_plan(ws, lock, _paths(ws, paths), sets=set_, targets=target, purge=purge,
                                refresh=refresh)
        _render(the_plan, Format.json if json_ else format_)
        if out:
            save_plan(the_plan, out)
            if not json_ and format_ is Format.text:
                console.print(f"\nSaved the plan to {out}. To perform exactly these actions, run: "
                              f"levcustom apply {out}")
        code = 2 if detailed_exitcode and the_plan.has_changes else 0
        if recorder:
            recorder.done(code)
    if code:
        raise typer.Exit(code)


def _render(the_plan, fmt: Format) -> None:
    from levcustom.plan.render import render_json, render_markdown, render_text

    if fmt is Format.json:
        print(render_json(the_plan))
    elif fmt is Format.markdown:
        print(render_markdown(the_plan), end="")
    else:
        console.print(render_text(the_plan))


@app.command()
def apply(plan_file: Annotated[Path | None, typer.Argument(help="A plan saved with plan -out.")] = None,
          root: Root = Path("."), set_: Sets = None, target: Targets = None,
          specs: Annotated[list[Path] | None, typer.Option("--specs", help="Spec files or folders.")] = None,
          auto_approve: Annotated[bool, typer.Option("--auto-approve", help="Skip the confirmation.")] = False,
          parallelism: Annotated[int, typer.Option(help="Models applied at once (each provider further bounds "
                                                                 "its own concurrent jobs).")] = 64,
          purge: Annotated[bool, typer.Option("--purge", help="Destroy deletes artifacts too.")] = False) -> None:
    """Build datasets, train, evaluate, gate and deploy what the plan says, resumably."""
    _apply(_ws(root), plan_file=plan_file, specs=specs, sets=set_, target=target, auto_approve=auto_approve,
           parallelism=parallelism, purge=purge)


def _apply(ws: Workspace, *, plan_file: Path | None = None, specs: list[Path] | None = None,
           sets: list[str] | None = None, target: list[str] | None = None, auto_approve: bool = False,
           parallelism: int = 64, purge: bool = False, summary: Path | None = None) -> None:
    """apply and ci apply: plan under the state lock, confirm, execute, report; exit 1 / 3 on failure."""
    from levcustom.apply.executor import execute
    from levcustom.apply.progress import PlainReporter, RichReporter
    from levcustom.plan.desired import make_plan
    from levcustom.plan.planfile import check_fresh, load_plan
    from levcustom.state.lockfile import StateStore
    from levcustom.state.statelock import StateLock

    saved = load_plan(plan_file) if plan_file else None
    with StateLock(ws.state_lock, "apply"):
        store = StateStore(ws.lockfile)
        the_plan, ctx = make_plan(ws, store.lock, _paths(ws, specs),
                                  sets=sets, targets=saved.targets if saved else target,
                                  purge=saved.purge if saved else purge)
        if saved:
            check_fresh(saved, store.lock, the_plan)
        _render(the_plan, Format.text)
        if not the_plan.has_changes:
            return
        if not (auto_approve or saved):
            if not sys.stdin.isatty():
                raise LevcustomError("apply needs confirmation: run it in a terminal, pass --auto-approve, "
                                     "or apply a saved plan file")
            if not typer.confirm("\nDo you want to perform these actions?"):
                raise LevcustomError("apply cancelled")
        console.print()
        reporter = RichReporter(console) if console.is_terminal else PlainReporter(console)
        try:
            outcome = execute(the_plan, ctx, store, reporter, parallelism=parallelism)
        finally:
            reporter.close()
    c = outcome.counts()
    console.print(f"\n[bold]Apply complete![/] Stages: {c['add']} added, {c['change']} changed, "
                  f"{c['destroy']} destroyed.")
    for name, why in outcome.failed.items():
        err_console.print(f"Error: {name}: {why}", markup=False, style="red")
    for why in outcome.gated.values():
        err_console.print(f"Gate: {why}", markup=False, style="yellow")
    if summary:
        from levcustom.ci.summary import apply_summary

        summary.parent.mkdir(parents=True, exist_ok=True)
        summary.write_text(apply_summary(the_plan, outcome.done, outcome.failed, outcome.gated, store.lock))
    if outcome.failed:
        raise typer.Exit(1)
    if outcome.gated:
        raise typer.Exit(3)


@app.command(name="refresh")
def refresh_cmd(paths: SpecPaths = None, root: Root = Path("."), target: Targets = None) -> None:
    """Read each trained model's real state at its provider and record drift in the lockfile."""
    from levcustom.apply.refresh import detect_drift, mark_drift
    from levcustom.plan.desired import Context, load_and_resolve
    from levcustom.state.lockfile import StateStore
    from levcustom.state.statelock import StateLock

    ws = _ws(root)
    specs, configs, resolver = load_and_resolve(ws, _paths(ws, paths), [])
    with StateLock(ws.state_lock, "refresh"):
        store = StateStore(ws.lockfile)
        drift = detect_drift(Context(ws, {s.name: s for s in specs}, configs, {}, resolver), store.lock, target)
        if any(store.lock.models[n].train.drift != reason for n, reason in drift.items()):
            store.update(lambda lock: mark_drift(lock, drift))
    for name, reason in drift.items():
        console.print(f"{name}: {reason or 'in sync'}", markup=False)


@app.command()
def logs(model: str, root: Root = Path("."), paths: SpecPaths = None) -> None:
    """Print the training job's events (loss lines, status changes) of MODEL."""
    from levcustom.plan.desired import load_and_resolve
    from levcustom.providers import get_provider
    from levcustom.state.lockfile import read_lock

    ws = _ws(root)
    state = read_lock(ws.lockfile).models.get(model)
    train = state.train if state else None
    if train is None:
        raise LevcustomError(f"model {model!r} has no trained version in the lockfile")
    _, configs, resolver = load_and_resolve(ws, _paths(ws, paths), [])
    config = configs.get(model) or resolver.defaults(train.provider)
    for line in get_provider(train.provider, ws).logs(train, config):
        console.print(line, markup=False, highlight=False)


@app.command()
def show(model: Annotated[str | None, typer.Argument()] = None, root: Root = Path("."),
         json_: Annotated[bool, typer.Option("--json")] = False) -> None:
    """Print the state: per model, each stage's fingerprint, artifacts, scores and deployment."""
    from levcustom.state.lockfile import read_lock
    from levcustom.state.show import render_state

    ws = _ws(root)
    lock = read_lock(ws.lockfile)
    if model and model not in lock.models:
        raise LevcustomError(f"model {model!r} is not in the lockfile")
    if json_:
        data = lock.model_dump(mode="json", exclude_none=True)
        print(json.dumps(data["models"].get(model) if model else data, indent=2, sort_keys=True))
    else:
        console.print(render_state(lock, model))


RequestKey = Annotated[str | None, typer.Option("--key", help="Request id: picks the version during an A/B split.")]


@app.command()
def resolve(agent: str, task: Annotated[str | None, typer.Option(help="Task type.")] = None,
            key: RequestKey = None, root: Root = Path("."),
            json_: Annotated[bool, typer.Option("--json")] = False) -> None:
    """Which model AGENT should use (for TASK): model name, provider, base model and adapter/model id."""
    from dataclasses import asdict

    from levcustom.deploy.registry import resolve as resolve_agent
    from levcustom.state.lockfile import read_lock

    ws = _ws(root)
    r = resolve_agent(read_lock(ws.lockfile), agent, task, key)
    if json_:
        print(json.dumps(asdict(r), indent=2))
    else:
        ab = f"\tarm={r.arm} ({r.traffic}% candidate)" if r.traffic is not None else ""
        console.print(f"{r.model}\tprovider={r.provider}\tbase={r.base_model}\tref={r.model_ref}{ab}", markup=False)


@app.command()
def outcome(agent: str, key: Annotated[str, typer.Option("--key", help="The request id given to resolve.")],
            success: Annotated[bool, typer.Option("--success/--failure", help="How the request went.")],
            task: Annotated[str | None, typer.Option(help="Task type.")] = None,
            rating: Annotated[float | None, typer.Option(help="Optional rating (kept, not used to decide).")] = None,
            root: Root = Path(".")) -> None:
    """Record how a request served by AGENT went; during an A/B split the next apply uses the outcomes
    to promote or roll back the candidate."""
    from levcustom.deploy import online
    from levcustom.deploy.registry import resolve as resolve_agent
    from levcustom.state.lockfile import read_lock

    ws = _ws(root)
    r = resolve_agent(read_lock(ws.lockfile), agent, task, key)
    online.record(online.outcomes_path(ws.work, r.model),
                  online.Outcome(key=key, model_ref=r.model_ref, arm=r.arm, success=success, rating=rating))
    console.print(f"Recorded {'success' if success else 'failure'} of {r.model} ({r.arm}) for request {key}.",
                  markup=False)


@app.command("eval")
def eval_(model: str, root: Root = Path("."), set_: Sets = None,
          specs: Annotated[list[Path] | None, typer.Option("--specs", help="Spec files or folders.")] = None) -> None:
    """Run MODEL's evals alone on its trained version; results go to the lockfile (exit 3: a gate failed)."""
    from levcustom.apply.eval_only import eval_model
    from levcustom.apply.progress import PlainReporter

    ws = _ws(root)
    state = eval_model(ws, _paths(ws, specs), model, set_ or [], PlainReporter(console))
    console.print(f"Per-case results: {state.run_dir}/cases.jsonl. HTML report: levcustom report {model}",
                  markup=False)
    if not state.passed:
        raise typer.Exit(3)


@app.command()
def report(model: str, root: Root = Path("."),
           output: Annotated[Path | None, typer.Option("--output", "-o", help="Folder for report.html and "
                                                       "report.md (default .levcustom/reports/MODEL).")] = None,
           markdown: Annotated[bool, typer.Option("--markdown", help="Also print the markdown summary.")] = False
           ) -> None:
    """Write MODEL's last eval as a self-contained HTML report (plot, CIs, slices) and a PR-comment summary."""
    from levcustom.evals.report import build_report
    from levcustom.evals.results import load_rows
    from levcustom.state.atomic import atomic_write_text
    from levcustom.state.lockfile import read_lock

    ws = _ws(root)
    m = read_lock(ws.lockfile).models.get(model)
    if m is None or m.eval is None:
        raise LevcustomError(f"model {model!r} has no eval in the lockfile: run levcustom apply or levcustom eval")
    rows = load_rows(ws.root / m.eval.run_dir / "cases.jsonl", m.eval.cases_sha256)
    built = build_report(model, m.eval, rows)
    folder = output or ws.work / "reports" / model
    folder.mkdir(parents=True, exist_ok=True)
    atomic_write_text(folder / "report.html", built.html)
    atomic_write_text(folder / "report.md", built.markdown)
    if markdown:
        print(built.markdown, end="")
    console.print(f"Wrote {folder / 'report.html'} and {folder / 'report.md'}", markup=False)


dataset_app = typer.Typer(no_args_is_help=True, help="Build, inspect, compare and export datasets.")
app.add_typer(dataset_app, name="dataset")
Split = Annotated[str | None, typer.Option("--split", help="train, validation or eval (default: all).")]


def _built(ws: Workspace, model: str) -> tuple[Path, dict]:
    """A model's built dataset folder and manifest, from the lockfile."""
    from levcustom.datasets.manifest import load_manifest
    from levcustom.state.lockfile import read_lock

    state = read_lock(ws.lockfile).models.get(model)
    if state is None or state.dataset is None:
        raise LevcustomError(f"model {model!r} has no built dataset: run levcustom dataset build {model}")
    artifact = ws.root / state.dataset.artifact
    manifest = load_manifest(artifact)
    if manifest is None:
        raise LevcustomError(f"{state.dataset.artifact} is not in the local store (a fresh clone?): "
                             f"run levcustom dataset build {model}")
    return artifact, manifest


@dataset_app.command("build")
def dataset_build(model: Annotated[str | None, typer.Argument(help="Model (default: every model).")] = None,
                  root: Root = Path("."), set_: Sets = None,
                  specs: Annotated[list[Path] | None, typer.Option("--specs", help="Spec files or folders.")] = None
                  ) -> None:
    """Build (and record in the lockfile) only the dataset stage of MODEL: no training."""
    from levcustom.apply.executor import execute
    from levcustom.apply.progress import PlainReporter
    from levcustom.plan.desired import make_plan
    from levcustom.plan.model import Action
    from levcustom.state.lockfile import StateStore
    from levcustom.state.statelock import StateLock

    ws = _ws(root)
    with StateLock(ws.state_lock, "dataset build"):
        store = StateStore(ws.lockfile)
        the_plan, ctx = make_plan(ws, store.lock, _paths(ws, specs), sets=set_, targets=[model] if model else None,
                                  check_trainings=False)
        only = [c for c in the_plan.changes if c.stage == "dataset" and c.action in (Action.CREATE, Action.REPLACE)]
        if not only:
            console.print("Datasets are up to date.")
            return
        outcome = execute(the_plan.model_copy(update={"changes": only}), ctx, store, PlainReporter(console))
    for name, why in outcome.failed.items():
        err_console.print(f"Error: {name}: {why}", markup=False, style="red")
    if outcome.failed:
        raise typer.Exit(1)


@dataset_app.command("show")
def dataset_show(model: str, root: Root = Path("."),
                 samples: Annotated[int, typer.Option(help="Sample rows to print.")] = 3,
                 json_: Annotated[bool, typer.Option("--json", help="Print the manifest as JSON.")] = False) -> None:
    """Print MODEL's built dataset: sources, rows in/out per filter, scrub counts, split sizes, samples."""
    from levcustom.datasets.show import render_manifest

    artifact, manifest = _built(_ws(root), model)
    if json_:
        print(json.dumps(manifest, indent=2, sort_keys=True))
    else:
        console.print(render_manifest(manifest, artifact, samples))


@dataset_app.command("diff")
def dataset_diff(model: str, root: Root = Path("."), paths: SpecPaths = None) -> None:
    """Compare the sources MODEL's spec names now with the ones its built dataset was made from."""
    from levcustom.datasets.diff import dataset_diff as diff_sources
    from levcustom.datasets.sources import source_info, source_keys
    from levcustom.spec.loader import load_specs
    from levcustom.state.statcache import StatCache

    ws = _ws(root)
    spec = next((s for s in load_specs(_paths(ws, paths), ws.root) if s.name == model), None)
    if spec is None:
        raise LevcustomError(f"no spec defines model {model!r}")
    artifact, manifest = _built(ws, model)
    ds = spec.model.spec.dataset
    stat = StatCache(ws.cache / "stat.json")
    current = [(key, src.model_dump(mode="json"), list(source_info(ws, key, src, stat).files))
               for key, src in zip(source_keys(ds.sources), ds.sources, strict=True)]
    stat.save()
    lines = diff_sources(ws.root, manifest, artifact, current, ds.curation.model_dump(mode="json"),
                         ds.split.model_dump(mode="json"))
    console.print("\n".join(lines) if lines else "No differences: building now gives the same dataset.",
                  markup=False)


@dataset_app.command("export")
def dataset_export(model: str, output: Annotated[Path, typer.Option("--output", "-o", help="JSONL file to write.")],
                   split: Split = None, root: Root = Path("."),
                   provenance: Annotated[bool, typer.Option(help="Keep each row's provenance.")] = False) -> None:
    """Write MODEL's built examples as JSONL in the provider-neutral chat format."""
    from levcustom.datasets.export import export_rows
    from levcustom.datasets.split import SPLITS

    if split is not None and split not in SPLITS:
        raise LevcustomError(f"--split must be one of: {', '.join(SPLITS)} (got {split!r})")
    artifact, _ = _built(_ws(root), model)
    n = export_rows(artifact, [split] if split else None, output, provenance)
    console.print(f"Wrote {n} examples to {output}.", markup=False)


@app.command()
def unlock(lock_id: str, root: Root = Path(".")) -> None:
    """Clear a stale state lock left by a crashed apply (needs the LOCK_ID the error printed)."""
    from levcustom.state.statelock import force_unlock

    held = force_unlock(_ws(root).state_lock, lock_id)
    console.print(f"Unlocked (was held by {held.who}@{held.host} pid {held.pid} since {held.created}).",
                  markup=False)


ci_app = typer.Typer(no_args_is_help=True, help="Commands for CI: plan on pull requests, check the default "
                                                "branch, apply on merge.")
app.add_typer(ci_app, name="ci")
OutDir = Annotated[Path, typer.Option("--out-dir", help="Where plan.md / plan.json / summary.md are written.")]


@ci_app.command("plan")
def ci_plan(paths: SpecPaths = None, root: Root = Path("."),
            base_ref: Annotated[str | None, typer.Option("--base-ref", help="Plan against the lockfile of this git "
                                                       "ref (the PR's base branch), not the working tree's.")] = None,
            out_dir: OutDir = Path(".levcustom/ci")) -> None:
    """For pull requests: validate and plan; write plan.md (a PR comment) and plan.json.
    Exit 0 no changes, 2 changes, 1 invalid. Needs no secrets, starts no job."""
    from levcustom.plan.desired import make_plan
    from levcustom.plan.render import render_json, render_markdown
    from levcustom.state.lockfile import read_lock

    ws = _ws(root)
    out = out_dir if out_dir.is_absolute() else ws.root / out_dir
    out.mkdir(parents=True, exist_ok=True)
    try:
        if base_ref:
            from levcustom.ci.baseref import lock_at_ref

            lock = lock_at_ref(ws, base_ref)
        else:
            lock = read_lock(ws.lockfile)
        the_plan, _ = make_plan(ws, lock, _paths(ws, paths))
    except LevcustomError as exc:  # the PR comment must say why, too
        (out / "plan.md").write_text(f"## levcustom plan\n\n:x: **Invalid:**\n\n```\n{exc}\n```\n")
        (out / "plan.json").write_text(json.dumps({"valid": False, "error": str(exc)}, indent=2))
        raise
    (out / "plan.md").write_text(render_markdown(the_plan))
    (out / "plan.json").write_text(render_json(the_plan))
    print(render_markdown(the_plan), end="")
    if the_plan.has_changes:
        raise typer.Exit(2)


@ci_app.command("check")
def ci_check(paths: SpecPaths = None, root: Root = Path(".")) -> None:
    """For the default branch: fail when the lockfile does not match the specs (merged without apply)
    or a deployed model no longer passes its gates."""
    from levcustom.ci.check import state_problems
    from levcustom.plan.desired import make_plan
    from levcustom.state.lockfile import read_lock

    ws = _ws(root)
    lock = read_lock(ws.lockfile)
    the_plan, ctx = make_plan(ws, lock, _paths(ws, paths))
    problems = state_problems(the_plan, lock, ctx.specs)
    if problems:
        raise LevcustomError("levcustom state check failed:\n" + "\n".join(f"  - {p}" for p in problems))
    console.print(f"[green]OK:[/] the lockfile matches the specs; {len(lock.models)} model(s) pass their gates.")


@ci_app.command("apply")
def ci_apply(paths: SpecPaths = None, root: Root = Path("."), out_dir: OutDir = Path(".levcustom/ci"),
             parallelism: Annotated[int, typer.Option(help="Models applied at once.")] = 64) -> None:
    """For merges: take the state lock, apply without prompting, write levcustom.lock and summary.md.
    Commits nothing. Exit 3 when a gate blocks a deployment."""
    ws = _ws(root)
    out = out_dir if out_dir.is_absolute() else ws.root / out_dir
    _apply(ws, specs=paths, auto_approve=True, parallelism=parallelism, summary=out / "summary.md")


lock_app = typer.Typer(no_args_is_help=True, help="Lockfile tools.")
app.add_typer(lock_app, name="lock")


@lock_app.command("merge")
def lock_merge(base: Path, ours: Path, theirs: Path,
               output: Annotated[Path | None, typer.Option("--output", "-o", help="Default: OURS (git's %A).")]
               = None) -> None:
    """Three-way merge of levcustom.lock (a git merge driver: levcustom lock merge %O %A %B).
    Exit 1 with an explanation for what both branches changed differently (ours is kept there)."""
    from levcustom.state.atomic import atomic_write_text
    from levcustom.state.lockfile import Lock, dump_lock, read_lock
    from levcustom.state.merge import merge_locks

    result = merge_locks(read_lock(base) if base.stat().st_size else Lock(), read_lock(ours), read_lock(theirs))
    atomic_write_text(output or ours, dump_lock(result.lock))
    for line in result.taken:
        console.print(f"merged: {line}", markup=False)
    if result.conflicts:
        raise LevcustomError("levcustom.lock: conflicts left for you:\n" +
                             "\n".join(f"  - {c}" for c in result.conflicts))


if __name__ == "__main__":
    main()
