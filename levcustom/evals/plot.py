"""A grouped bar chart with confidence-interval whiskers, as inline SVG (no plotting library:
the report stays one self-contained file and the CLI imports nothing heavy)."""

from __future__ import annotations

from dataclasses import dataclass
from html import escape

COLORS = {"base": "#9aa5b1", "deployed": "#e0a526", "tuned": "#2f6fde"}
LABELS = {"base": "base", "deployed": "deployed", "tuned": "candidate"}


@dataclass(frozen=True)
class Bar:
    role: str
    value: float
    low: float
    high: float


def bar_chart(groups: dict[str, list[Bar]], title: str) -> str:
    """One group of bars per metric on a 0..1 axis, each bar with its CI whisker and value label."""
    width_per_group, bar_w, left, top, height = 150, 34, 50, 40, 220
    width = left + 20 + width_per_group * max(1, len(groups))
    out = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{top + height + 70}" '
           f'viewBox="0 0 {width} {top + height + 70}" role="img" aria-label="{escape(title)}" '
           'font-family="system-ui, sans-serif" font-size="12">',
           f'<text x="{left}" y="20" font-size="14" font-weight="600">{escape(title)}</text>']

    def y(v: float) -> float:
        return top + height * (1 - max(0.0, min(1.0, v)))

    for tick in (0, 0.25, 0.5, 0.75, 1.0):
        out.append(f'<line x1="{left}" x2="{width - 10}" y1="{y(tick):.1f}" y2="{y(tick):.1f}" stroke="#e3e7ec"/>')
        out.append(f'<text x="{left - 6}" y="{y(tick) + 4:.1f}" text-anchor="end" fill="#555">{tick:g}</text>')
    for g, (name, bars) in enumerate(groups.items()):
        x0 = left + 10 + g * width_per_group + (width_per_group - 10 - bar_w * len(bars)) / 2
        for i, bar in enumerate(bars):
            x = x0 + i * bar_w
            out.append(f'<rect x="{x:.1f}" y="{y(bar.value):.1f}" width="{bar_w - 6}" '
                       f'height="{y(0) - y(bar.value):.1f}" fill="{COLORS[bar.role]}">'
                       f'<title>{LABELS[bar.role]} {bar.value:.3f} (CI {bar.low:.3f}..{bar.high:.3f})</title></rect>')
            cx = x + (bar_w - 6) / 2
            out.append(f'<line x1="{cx:.1f}" x2="{cx:.1f}" y1="{y(bar.low):.1f}" y2="{y(bar.high):.1f}" '
                       'stroke="#1b1f24" stroke-width="1.5"/>')
            for v in (bar.low, bar.high):
                out.append(f'<line x1="{cx - 5:.1f}" x2="{cx + 5:.1f}" y1="{y(v):.1f}" y2="{y(v):.1f}" '
                           'stroke="#1b1f24" stroke-width="1.5"/>')
            out.append(f'<text x="{cx:.1f}" y="{y(bar.high) - 4:.1f}" text-anchor="middle" font-size="10">'
                       f'{bar.value:.2f}</text>')
        out.append(f'<text x="{left + 10 + g * width_per_group + (width_per_group - 10) / 2:.1f}" '
                   f'y="{top + height + 18}" text-anchor="middle">{escape(name)}</text>')
    lx = left
    for role in ("base", "deployed", "tuned"):
        if any(b.role == role for bars in groups.values() for b in bars):
            out.append(f'<rect x="{lx}" y="{top + height + 36}" width="12" height="12" fill="{COLORS[role]}"/>')
            out.append(f'<text x="{lx + 16}" y="{top + height + 46}">{LABELS[role]}</text>')
            lx += 90
    out.append("</svg>")
    return "\n".join(out)
