"""Render a ``Plan``: Terraform-style text, versioned JSON, or markdown for a PR comment."""

from __future__ import annotations

import json

from rich.markup import escape

from levcustom.plan.model import Action, Plan

_STYLE = {Action.CREATE: "green", Action.UPDATE: "yellow", Action.REPLACE: "magenta", Action.DESTROY: "red"}


def summary_line(plan: Plan) -> str:
    c = plan.counts()
    return f"Plan: {c['add']} to add, {c['change']} to change, {c['destroy']} to destroy."


def render_text(plan: Plan) -> str:
    """Rich markup; the console strips colors when not on a TTY."""
    lines: list[str] = []
    if not plan.has_changes:
        lines.append("[bold green]No changes.[/] Your models match the specs and the lockfile.")
    else:
        lines.append("levcustom will perform the following actions "
                     "([green]+[/] create, [yellow]~[/] update, [magenta]-/+[/] replace, [red]-[/] destroy):")
        by_model: dict[str, list] = {}
        for c in plan.pending:
            by_model.setdefault(c.model, []).append(c)
        for model, pending in by_model.items():
            lines.append(f"\n  [bold]# {model}[/]")
            for c in pending:
                style = _STYLE[c.action]
                lines.append(f"  [{style}]{c.action.symbol:>3} {c.stage:<8}[/] {c.action.value}")
                lines.extend(f"        [dim]{escape(r)}[/]" for r in c.reasons)
    if plan.estimates:
        lines.append("\nEstimated cost:")
        for e in plan.estimates:
            lines.append(f"  {e.model}: ${e.usd:,.2f}  ({escape(e.note)})")
    for w in plan.warnings:
        lines.append(f"[bold yellow]Warning:[/] {escape(w)}")
    if plan.has_changes:
        lines.append(f"\n[bold]{summary_line(plan)}[/]")
    return "\n".join(lines)


def render_json(plan: Plan) -> str:
    """Stable, versioned machine output (like ``terraform show -json``)."""
    data = plan.model_dump(mode="json")
    data["summary"] = plan.counts()
    data["has_changes"] = plan.has_changes
    return json.dumps(data, indent=2, sort_keys=True)


def render_markdown(plan: Plan) -> str:
    """A pull-request comment: one table row per pending stage, then cost and warnings."""
    out = ["## levcustom plan", ""]
    if not plan.has_changes:
        out.append("**No changes.** Your models match the specs and the lockfile.")
    else:
        out += ["| model | stage | action | why |", "| --- | --- | --- | --- |"]
        for c in plan.pending:
            why = "<br>".join(r.replace("|", "\\|") for r in c.reasons)
            out.append(f"| `{c.model}` | {c.stage} | `{c.action.symbol}` {c.action.value} | {why} |")
        out += ["", f"**{summary_line(plan)}**"]
    if plan.estimates:
        out += ["", "| model | est. cost | detail |", "| --- | --- | --- |"]
        out += [f"| `{e.model}` | ${e.usd:,.2f} | {e.note} |" for e in plan.estimates]
    if plan.warnings:
        out += [""] + [f"> :warning: {w}" for w in plan.warnings]
    return "\n".join(out) + "\n"
