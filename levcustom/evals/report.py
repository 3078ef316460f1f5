"""``levcustom report``: a self-contained HTML page (inline SVG plot) and a markdown summary for a
pull-request comment, built from the lockfile's eval state and the run's per-case rows."""

from __future__ import annotations

from dataclasses import dataclass
from html import escape

from levcustom.evals import stats
from levcustom.evals.metrics import UNBOUNDED
from levcustom.evals.plot import Bar, bar_chart
from levcustom.evals.results import ROLES, CaseRow, by_metric, errors, slices
from levcustom.state.lockfile import EvalState, MetricResult, PairedResult

MAX_EXAMPLES = 10  # regressed cases shown in the HTML report


@dataclass(frozen=True)
class Report:
    html: str
    markdown: str


def _fmt(v: float | None) -> str:
    return "–" if v is None else f"{v:.3f}"


def _paired(p: PairedResult | None) -> str:
    if p is None:
        return "–"
    test = f", McNemar p={p.p_value:.2g}" if p.p_value is not None else ""
    return f"{p.delta:+.3f} [{p.ci_low:+.3f}, {p.ci_high:+.3f}]{test}"


def _role_bars(group: list[CaseRow]) -> list[Bar]:
    bars = []
    for role in ("base", "deployed", "tuned"):
        values = [float(r.scores[role]) for r in group if r.scores.get(role) is not None]
        if values:
            ci = stats.bootstrap_ci(values)
            bars.append(Bar(role, ci.estimate, ci.low, ci.high))
    return bars


def _plot(rows: list[CaseRow]) -> str:
    groups = {name: _role_bars(g) for name, g in by_metric(rows).items() if g[0].metric not in UNBOUNDED}
    return bar_chart({k: v for k, v in groups.items() if v}, "Score per metric (95% bootstrap CI)")


def _metric_lines(results: dict[str, MetricResult]) -> list[list[str]]:
    out = []
    for name, r in results.items():
        ci = f" [{r.ci_low:.3f}, {r.ci_high:.3f}]" if r.ci_low is not None else ""
        out.append([name, _fmt(r.base), _fmt(r.deployed), f"{r.tuned:.3f}{ci}", _paired(r.paired.get("base")),
                    _paired(r.paired.get("deployed")), str(r.cases), str(r.errors)])
    return out


METRIC_HEAD = ["metric", "base", "deployed", "candidate [95% CI]", "Δ vs base [95% CI]", "Δ vs deployed [95% CI]",
               "cases", "unscored"]


def _slice_lines(rows: list[CaseRow]) -> list[list[str]]:
    out = []
    for name, metrics in slices(rows).items():
        for metric, s in metrics.items():
            out.append([name, metric, str(s["cases"]), _fmt(s["base"]), _fmt(s["deployed"]), _fmt(s["tuned"])])
    return out


SLICE_HEAD = ["slice", "metric", "cases", "base", "deployed", "candidate"]


def _html_table(head: list[str], lines: list[list[str]]) -> str:
    th = "".join(f"<th>{escape(h)}</th>" for h in head)
    body = "".join("<tr>" + "".join(f"<td>{escape(c)}</td>" for c in line) + "</tr>" for line in lines)
    return f"<table><thead><tr>{th}</tr></thead><tbody>{body}</tbody></table>"


def _md_table(head: list[str], lines: list[list[str]]) -> str:
    rows = [head, ["---"] * len(head), *lines]
    return "\n".join("| " + " | ".join(c.replace("|", "\\|") for c in r) + " |" for r in rows)


def _regressions(rows: list[CaseRow]) -> list[CaseRow]:
    """Cases where the candidate scored below the base or deployed model."""
    out = []
    for r in rows:
        t = r.scores.get("tuned")
        refs = [r.scores.get(x) for x in ("base", "deployed") if r.scores.get(x) is not None]
        if t is not None and refs and t < max(refs):
            out.append(r)
    return out


def build_report(model: str, state: EvalState, rows: list[CaseRow]) -> Report:
    """The HTML page and the markdown summary of one eval run."""
    verdict = "all gates passed" if state.passed else "a gate failed: not deployed"
    gates_md = "\n".join(f"- {'✅' if g.passed else '❌'} `{g.gate}`: {g.detail}" for g in state.gates)
    unscored = [f"{name}: {e}" for name, group in by_metric(rows).items() for role in ROLES
                for e in errors(group, role)]
    md = [f"### levcustom eval: `{model}` — {verdict}", "",
          _md_table(METRIC_HEAD, _metric_lines(state.results)), "",
          "**Gates**", "", gates_md or "- (none)", ""]
    slice_lines = _slice_lines(rows)
    if slice_lines:
        md += ["<details><summary>Per-slice scores</summary>", "", _md_table(SLICE_HEAD, slice_lines), "",
               "</details>", ""]
    if unscored:
        md += [f"**{len(unscored)} unscored cases** (counted as not passing):", "",
               *[f"- {u}" for u in unscored[:20]], ""]
    md.append(f"<sub>eval {state.fingerprint[:12]} · per-case results in `{state.run_dir}/cases.jsonl`</sub>")

    examples = "".join(
        f"<tr><td>{escape(r.metric_name)}:{r.line}</td><td><code>{escape(r.expected)}</code></td>"
        + "".join(f"<td><code>{escape(r.outputs.get(role, ''))}</code> ({_fmt(r.scores.get(role))})</td>"
                  for role in ("base", "deployed", "tuned"))
        + "</tr>" for r in _regressions(rows)[:MAX_EXAMPLES])
    gates_html = "".join(f"<li class='{'ok' if g.passed else 'bad'}'><b>{'PASS' if g.passed else 'FAIL'}</b> "
                         f"<code>{escape(g.gate)}</code>: {escape(g.detail)}</li>" for g in state.gates)
    html = f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>levcustom eval report: {escape(model)}</title>
<style>
body {{ font-family: system-ui, sans-serif; margin: 24px; color: #1b1f24; max-width: 1100px; }}
h1 {{ font-size: 22px; }} h2 {{ font-size: 17px; margin-top: 28px; }}
table {{ border-collapse: collapse; font-size: 13px; }}
th, td {{ border: 1px solid #d0d7de; padding: 4px 8px; text-align: left; vertical-align: top; }}
th {{ background: #f3f5f7; }}
.ok b {{ color: #1a7f37; }} .bad b {{ color: #cf222e; }} li {{ margin: 4px 0; }}
.verdict {{ padding: 6px 10px; display: inline-block; border-radius: 4px;
           background: {'#dafbe1' if state.passed else '#ffebe9'}; }}
code {{ font-size: 12px; }}
</style></head><body>
<h1>Eval report: {escape(model)}</h1>
<p class="verdict">{escape(verdict)}</p>
<p>eval {escape(state.fingerprint[:12])} · {escape(state.updated_at)} · the candidate against the base model and
the deployed version, on the same cases</p>
{_plot(rows)}
<h2>Metrics</h2>
{_html_table(METRIC_HEAD, _metric_lines(state.results))}
<h2>Gates</h2>
<ul>{gates_html or '<li>(none)</li>'}</ul>
<h2>Per-slice scores</h2>
{_html_table(SLICE_HEAD, slice_lines) if slice_lines else '<p>No tagged cases.</p>'}
<h2>Unscored cases</h2>
{'<ul>' + ''.join(f'<li>{escape(u)}</li>' for u in unscored) + '</ul>' if unscored else '<p>None.</p>'}
<h2>Regressions (candidate below a reference, first {MAX_EXAMPLES})</h2>
{'<table><thead><tr><th>case</th><th>expected</th><th>base</th><th>deployed</th><th>candidate</th></tr></thead>'
 '<tbody>' + examples + '</tbody></table>' if examples else '<p>None.</p>'}
</body></html>
"""
    return Report(html, "\n".join(md) + "\n")
