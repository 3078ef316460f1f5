"""Human view of a built dataset for ``levcustom dataset show``: manifest summary and samples."""

from __future__ import annotations

from pathlib import Path

import orjson
from rich.markup import escape

from levcustom.datasets.split import SPLITS


def _counts(counts: dict[str, int]) -> str:
    return ", ".join(f"{k} {v}" for k, v in counts.items() if v) or "none"


def samples(artifact: Path, split: str, n: int) -> list[dict]:
    """The first ``n`` rows of one split of a built dataset."""
    out = []
    with open(artifact / f"{split}.jsonl", "rb") as f:
        for line in f:
            if len(out) >= n:
                break
            out.append(orjson.loads(line))
    return out


def _sample_lines(row: dict) -> list[str]:
    p = row["provenance"]
    where = f"{p['source']} {p['file']}:{p['line']}" + (f" ({p['ref']})" if p["ref"] else "") + \
        (f" persona {p['persona']}" if p["persona"] else "")
    lines = [f"  [dim]# {escape(where)}[/]"]
    messages = row.get("messages") or row["prompt"] + [{"role": "chosen", "content": row["chosen"][-1]["content"]},
                                                       {"role": "rejected", "content": row["rejected"][-1]["content"]}]
    for m in messages:
        text = m.get("content") or ""
        if m.get("tool_calls"):
            text += " ".join(f"{c['function']['name']}({c['function']['arguments']})" for c in m["tool_calls"])
        text = " ".join(text.split())
        lines.append(f"  [bold]{m['role']:>9}[/] {escape(text[:160] + ('...' if len(text) > 160 else ''))}")
    return lines


def render_manifest(manifest: dict, artifact: Path, n_samples: int) -> str:
    """Sources (files, rows in/out per filter), curation steps, scrub counts, split sizes, samples."""
    steps = manifest["steps"]
    lines = [f"[bold]{escape(str(artifact))}[/]  ({manifest['kind']} examples)",
             "rows: " + ", ".join(f"{s} {manifest['rows'][s]}" for s in SPLITS)]
    if manifest.get("persona"):
        p = manifest["persona"]
        lines.append(f"persona: {escape(p['id'])} ({escape(p['context'])}, template {escape(p['template'])})")
    lines.append("\nSources:")
    for s in manifest["sources"]:
        lines.append(f"  {escape(s['key'])}: read {s['read']}, invalid {s['invalid']}, "
                     f"filtered {escape(_counts(s['filtered']))}, kept {s['kept']}")
        for f in s["files"]:
            lines.append(f"    [dim]{escape(f['path'])}  sha256 {f['sha256'][:12]}  {f['bytes']:,} bytes[/]")
    order = ("read", "invalid", "filtered", "after_filters", "exact_duplicates", "near_duplicates", "capped", "kept")
    lines.append("\nSteps: " + ", ".join(
        f"{k} {escape(_counts(steps[k]) if isinstance(steps[k], dict) else str(steps[k]))}"
        for k in order if k in steps))
    lines.append(f"Scrubbed: {escape(_counts(manifest['scrubbed']))}")
    if n_samples:
        lines.append(f"\nSamples (train, first {n_samples}):")
        for row in samples(artifact, "train", n_samples):
            lines += _sample_lines(row)
    return "\n".join(lines)
