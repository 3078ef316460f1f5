"""The dataset stage of ``method: cai``: the sources' rows are prompts; Claude turns them into SFT
examples (critique + revision) or DPO pairs (AI preference labels) against the constitution.

The built dataset is stored like any other (content-addressed, hash split) with a manifest that
holds every example's provenance, the failures and the API usage. Generation is resumable: the
replies are cached by request (``levcustom.cai.client``), so an interrupted build re-uses every
finished call. At plan time nothing is called: prompts and the constitution are validated with
file:line, and the cost is estimated from the number of calls and an upper bound of tokens.
"""

from __future__ import annotations

from array import array
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import orjson

from levcustom.cai.client import MessagesClient, ReplyLog
from levcustom.cai.constitution import load_constitution
from levcustom.cai.generate import Generator, Prompt, generate_all
from levcustom.cai.prompts import PROMPT_VERSION, system_prompt
from levcustom.cai.settings import cai_settings
from levcustom.config.models import ResolvedConfig
from levcustom.datasets.diff import file_line_hashes
from levcustom.datasets.jsonl import parse_messages, read_rows
from levcustom.datasets.sources import source_keys
from levcustom.datasets.split import SPLITS, assign
from levcustom.errors import Issue, LevcustomError, SpecError
from levcustom.providers.bedrock_format import CHARS_PER_TOKEN
from levcustom.spec.loader import LoadedSpec
from levcustom.spec.schema import ModelBody
from levcustom.workspace import Workspace

if TYPE_CHECKING:
    from levcustom.datasets.build import BuiltDataset


def cai_inputs(body: ModelBody, config: ResolvedConfig, constitution_sha256: str) -> dict[str, Any]:
    """What changes the generated data, for the dataset fingerprint (not concurrency or rate limits)."""
    s = cai_settings(config)
    return {"recipe": PROMPT_VERSION, **body.cai.model_dump(exclude={"constitution"}),
            "constitution": {"path": body.cai.constitution, "sha256": constitution_sha256},
            "generation": s.model_dump(include={"model", "responder_model", "max_tokens"})}


def calls_per_prompt(body: ModelBody) -> int:
    """Messages API calls per prompt: a sample and a critique + revision per round, or two samples and a label."""
    return 1 + 2 * body.cai.rounds if body.cai.train == "sft" else 3


def read_prompts(ws: Workspace, body: ModelBody) -> tuple[list[Prompt], list[Issue]]:
    """Every prompt row of the sources (``{"prompt": str}`` or ``{"messages": [... user]}``), and bad rows."""
    items, issues = [], []
    for src in body.dataset.sources:
        rows, bad = read_rows(ws.resolve_path(src.path), src.path)
        if src.on_error == "fail":
            issues += bad
        for n, row in rows:
            msgs, problem = parse_messages(row, need_assistant=False)
            if problem is None and msgs[-1][0] != "user":
                problem = "a cai prompt must end with the user's turn (the answer is generated)"
            if problem is None:
                items.append(Prompt(msgs, src.path, n))
            elif src.on_error == "fail":
                issues.append(Issue(src.path, n, 1, "", problem))
    return items, issues


def inspect_cai(ws: Workspace, ls: LoadedSpec, config: ResolvedConfig, provider) -> dict:
    """The plan's view of a cai dataset: located problems, the example count, an upper bound of the
    training tokens (answers are not generated yet) and the estimated generation cost."""
    body = ls.model.spec
    s = cai_settings(config)
    loaded, issues = load_constitution(ws.resolve_path(body.cai.constitution), body.cai.constitution)
    items, bad = read_prompts(ws, body)
    issues += bad
    if not s.local and s.model not in s.price_per_1m_tokens:
        issues.append(ls.doc.issue(("spec", "method"), f"no price for cai model {s.model!r} in "
                                                       "conf/cai/default.yaml price_per_1m_tokens"))
    prompt_tokens = [sum(len(c) for _, c in p.messages) // CHARS_PER_TOKEN + 1 for p in items]
    answers = 1 if body.cai.train == "sft" else 2
    train_tokens = sum(prompt_tokens) * answers + len(items) * answers * s.max_tokens
    calls = calls_per_prompt(body) * len(items)
    system = len(system_prompt(loaded.constitution)) // CHARS_PER_TOKEN if loaded else 0
    # Each call reads the system prompt, the prompt and up to two earlier replies, and writes one reply.
    tokens_in = sum(calls_per_prompt(body) * (system + t + 2 * s.max_tokens) for t in prompt_tokens)
    tokens_out = calls * s.max_tokens
    price = s.price_per_1m_tokens.get(s.model)
    usd = (tokens_in * price.input + tokens_out * price.output) / 1e6 if price else 0.0
    where = "generations on the local model (no API cost)" if s.local else "Messages API calls"
    note = (f"constitutional-AI data: {len(items)} prompts x {calls_per_prompt(body)} {where} = {calls:,} "
            f"calls on {s.model}, at most ~{tokens_in:,} input + {tokens_out:,} output tokens"
            + (f" x ${price.input:g}/${price.output:g} per 1M" if price else "") + " (less for cached replies)")
    return {"examples": len(items), "tokens": train_tokens, "issues": [i.__dict__ for i in issues],
            "note": f"upper bound: answers not generated yet, up to {s.max_tokens} tokens each",
            "generation": {"tokens": tokens_in + tokens_out, "usd": usd, "note": note}}


def build_cai_dataset(ws: Workspace, body: ModelBody, config: ResolvedConfig, min_examples: int,
                      progress: Callable[[int, int], None] | None = None) -> tuple[BuiltDataset, str]:
    """Generate, split and store the dataset; the summary names the failures. Fails when more
    prompts failed than ``max_failed_fraction`` allows (the finished calls stay cached)."""
    # Imported here: the planner imports this module (cai_inputs, inspect_cai) and must not load numpy.
    from levcustom.datasets.build import DATASET_FORMAT, Curated, Work, store_dataset
    from levcustom.datasets.dedupe import exact_key
    from levcustom.datasets.process import file_sha256

    s = cai_settings(config)
    loaded, issues = load_constitution(ws.resolve_path(body.cai.constitution), body.cai.constitution)
    items, bad = read_prompts(ws, body)
    if issues or bad:
        raise SpecError(issues + bad)
    log = ReplyLog(ws.cache / "cai" / "replies.jsonl")
    local = None
    try:
        if s.local:
            from levcustom.cai.local import LocalMessagesClient

            client = local = LocalMessagesClient(s, log, ws.root, config.provider.get("model_sources", {}))
        else:
            client = MessagesClient(s, log)
        generator = Generator(client, loaded.constitution, body.cai.train, body.cai.rounds, body.cai.seed)
        outcomes = generate_all(generator, items, s.concurrency, progress)
    finally:
        if local is not None:
            local.close()
        log.close()
    failures = [{"source": o.prompt.source, "line": o.prompt.line, "error": o.error} for o in outcomes if o.error]
    if len(failures) > s.max_failed_fraction * len(outcomes):
        first = failures[0]
        raise LevcustomError(f"cai: {len(failures)} of {len(outcomes)} prompts failed (more than max_failed_fraction "
                             f"{s.max_failed_fraction:g}); first: {first['source']}:{first['line']}: {first['error']}. "
                             "Finished calls are cached: apply again to retry only the rest")
    examples = [o.example for o in outcomes if o.example is not None]
    sp = body.dataset.split
    keys = [exact_key(ex) for ex in examples]
    sides: dict[str, list[int]] = {name: [] for name in SPLITS}
    for i, key in enumerate(keys):
        sides[assign(key, sp.validation, sp.eval, sp.seed)].append(i)
    if len(sides["train"]) < min_examples:
        raise LevcustomError(f"cai generated {len(sides['train'])} training examples; the provider needs at least "
                             f"{min_examples}")
    kind = "chat" if body.cai.train == "sft" else "preference"
    sources, lines = [], {}
    for i, (key, src) in enumerate(zip(source_keys(body.dataset.sources), body.dataset.sources, strict=True)):
        path = ws.resolve_path(src.path)
        hashes = file_line_hashes([path])
        lines[str(i)] = array("Q", hashes).tobytes()  # lines/<i>.bin belongs to manifest["sources"][i]
        prompts = sum(1 for p in items if p.source == src.path)
        sources.append({"key": key, "type": src.type, "path": src.path, "settings": src.model_dump(mode="json"),
                        "files": [{"path": src.path, "sha256": file_sha256(path), "bytes": path.stat().st_size,
                                   "records": len(hashes)}],
                        "records": len(hashes), "read": prompts, "invalid": 0, "filtered": {}, "kept": prompts,
                        "scrubbed": {}, "issues": []})
    manifest = {"format": DATASET_FORMAT, "kind": kind, "method": "cai",
                "constitution": {"path": body.cai.constitution, "sha256": loaded.sha256},
                "sources": sources, "persona": None, "scrubbed": {},
                "steps": {"read": len(items), "generated": len(examples), "kept": len(examples)},
                "curation": body.dataset.curation.model_dump(mode="json"), "split": sp.model_dump(mode="json"),
                "rows": {name: len(idx) for name, idx in sides.items()}, "failures": failures,
                "usage": client.usage.as_dict(),
                "provenance": [{"source": o.prompt.source, "line": o.prompt.line, **o.provenance}
                               for o in outcomes if o.example is not None]}
    rows = [orjson.dumps(ex.to_row()) for ex in examples]
    built = store_dataset(ws, Curated(rows, sides, manifest, lines, Work(len(items), 0)))
    u = client.usage
    summary = f"{len(examples)} of {len(items)} prompts generated ({u.calls} API calls, {u.cached} from the cache)"
    if failures:
        summary += f"; {len(failures)} failed, e.g. {failures[0]['source']}:{failures[0]['line']}: " \
                   f"{failures[0]['error']} (all in the manifest)"
    return built, summary
