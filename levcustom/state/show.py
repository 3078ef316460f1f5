"""Human view of the lockfile for ``levcustom show``."""

from __future__ import annotations

from rich.markup import escape

from levcustom.state.lockfile import Lock


def render_state(lock: Lock, only: str | None = None) -> str:
    """Per model: stages with fingerprints, artifacts, scores, gates and deployment."""
    if not lock.models:
        return "The lockfile holds no models yet: run levcustom apply."
    lines = [f"[dim]lineage {lock.lineage}  serial {lock.serial}[/]"]
    for name, m in sorted(lock.models.items()):
        if only and name != only:
            continue
        lines.append(f"\n[bold]{name}[/]  [dim]({m.spec_file})[/]")
        if m.dataset:
            d = m.dataset
            lines.append(f"  dataset  {d.fingerprint[:12]}  {d.train_rows} train / {d.validation_rows} validation"
                         f"  {d.artifact}")
        if m.train:
            t = m.train
            loss = t.metrics.get("train_loss")
            extra = f"  train loss {loss:.3f}" if loss is not None else ""
            lines.append(f"  train    {t.fingerprint[:12]}  {t.provider} {escape(t.model_ref)}{extra}")
        if m.eval:
            e = m.eval
            verdict = "[green]passed[/]" if e.passed else "[red]gate failed[/]"
            lines.append(f"  eval     {e.fingerprint[:12]}  {verdict}")
            for metric, r in e.results.items():
                base = f"  (base {r.base:.3f})" if r.base is not None else ""
                ci = f" [95% CI {r.ci_low:.3f}..{r.ci_high:.3f}]" if r.ci_low is not None else ""
                lines.append(f"             {metric}: {r.tuned:.3f}{ci}{base} over {r.cases} cases")
            for g in e.gates:
                lines.append(f"             {'✓' if g.passed else '✗'} {escape(g.detail)}")
        if m.deploy:
            p = m.deploy
            # escaped: rich would read "[router]" as a markup tag and drop it
            lines.append(f"  deploy   {p.fingerprint[:12]}  " + escape(f"agents [{', '.join(p.agents)}] "
                                                                   f"tasks [{', '.join(p.tasks)}]"))
        for stage, intent in m.intents.items():
            lines.append(f"  [yellow]interrupted {stage}[/] since {intent.started_at} (job {intent.job_id}): "
                         "the next apply resumes it")
    return "\n".join(lines)
