"""``type: personality``: render every example with an EEPS persona's system prompt.

A persona is a Leviathan agent context file (``contexts/agents/eeps/<id>/context.yaml``)::

    metadata: {id: nfj-visionary, ...}
    agent_config:
      core_attributes: {core_emotion: ..., moral_lens: ...}
      endpoints: {default: {prompt_template: prompt.md}}     # relative to the context file
      decision_prompts: [...]
      activation_conditions: [...]

The template is markdown with ``{{variable}}`` slots. They are filled from the persona (``id``,
``name``, each core attribute, ``core_attributes``, ``decision_prompts``, ``activation_conditions``
as bullet lists), the spec's ``variables``, and per example ``challenge`` (its first user
message) and ``context_data`` (the system message it replaces, if any). The persona's system
prompt replaces the example's own; the persona id goes into the row's provenance.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass, replace
from pathlib import Path

import yaml

from levcustom.datasets.jsonl import ChatExample, Example, Messages, PreferenceExample
from levcustom.errors import LevcustomError
from levcustom.spec.schema import PersonalitySource
from levcustom.workspace import Workspace

VARIABLE = re.compile(r"\{\{\s*([A-Za-z_][A-Za-z0-9_]*)\s*\}\}")
PER_EXAMPLE = ("challenge", "context_data")
MAX_CONTEXT_BYTES = 256_000


@dataclass(frozen=True)
class Persona:
    id: str
    context_file: Path
    template_file: Path
    template: str
    variables: dict[str, str]  # everything but the per-example ones


def _bullets(value: object) -> str:
    if isinstance(value, dict):
        return "\n".join(f"- {k}: {v}" for k, v in value.items())
    if isinstance(value, list):
        return "\n".join(f"- {v}" for v in value)
    return "" if value is None else str(value)


def _context(ws: Workspace, rel: str) -> tuple[Path, dict]:
    path = ws.resolve_path(rel)
    if not path.is_file():
        raise LevcustomError(f"persona file not found: {rel}")
    if path.stat().st_size > MAX_CONTEXT_BYTES:
        raise LevcustomError(f"{rel}: a persona context is at most {MAX_CONTEXT_BYTES} bytes")
    try:
        data = yaml.safe_load(path.read_text("utf-8"))
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        raise LevcustomError(f"{rel}:{mark.line + 1 if mark else 1}: invalid YAML: {exc.problem}") from None
    except (yaml.YAMLError, UnicodeDecodeError) as exc:
        raise LevcustomError(f"{rel}: invalid YAML: {exc}") from None
    if not isinstance(data, dict) or not isinstance(data.get("metadata"), dict) \
            or not isinstance(data.get("agent_config"), dict):
        raise LevcustomError(f"{rel}: expected a Leviathan agent context with 'metadata' and 'agent_config'")
    return path, data


def _template_path(ws: Workspace, rel: str, context_file: Path, config: dict) -> Path:
    endpoints = config.get("endpoints")
    default = endpoints.get("default") if isinstance(endpoints, dict) else None
    template = default.get("prompt_template") if isinstance(default, dict) else None
    if not isinstance(template, str) or not template:
        raise LevcustomError(f"{rel}: agent_config.endpoints.default.prompt_template must name the persona's "
                             "markdown template")
    for candidate in (os.path.relpath(context_file.parent / template, ws.root), template):
        path = ws.resolve_path(candidate)  # next to the context first, then from the repository root
        if path.is_file():
            return path
    raise LevcustomError(f"{rel}: prompt template {template!r} not found (next to the context or from the "
                         "repository root)")


def persona_files(ws: Workspace, src: PersonalitySource) -> list[Path]:
    """The files a persona's prompt depends on (its context and template), for fingerprints."""
    context_file, data = _context(ws, src.persona)
    return [context_file, _template_path(ws, src.persona, context_file, data["agent_config"])]


def load_persona(ws: Workspace, src: PersonalitySource) -> Persona:
    """Read a persona and check that every template variable will be filled."""
    context_file, data = _context(ws, src.persona)
    meta, config = data["metadata"], data["agent_config"]
    pid = meta.get("id")
    if not isinstance(pid, str) or not pid:
        raise LevcustomError(f"{src.persona}: metadata.id must name the persona")
    template_file = _template_path(ws, src.persona, context_file, config)
    template = template_file.read_text("utf-8")
    attributes = config.get("core_attributes")
    values = {"id": pid, "name": str(config.get("name") or meta.get("name") or pid),
              "core_attributes": _bullets(attributes), "decision_prompts": _bullets(config.get("decision_prompts")),
              "activation_conditions": _bullets(config.get("activation_conditions"))}
    if isinstance(attributes, dict):
        values.update({str(k): _bullets(v) for k, v in attributes.items()})
    values.update(src.variables)
    unknown = sorted({m.group(1) for m in VARIABLE.finditer(template)} - set(values) - set(PER_EXAMPLE))
    if unknown:
        raise LevcustomError(f"{ws.rel(template_file)}: template variables without a value: {', '.join(unknown)} "
                             f"(set them in the personality source's 'variables')")
    return Persona(pid, context_file, template_file, template, values)


def _render(persona: Persona, messages: Messages) -> tuple[str, Messages]:
    system = "\n\n".join(c for r, c in messages if r == "system")
    first_user = next((c for r, c in messages if r == "user"), "")
    values = {"challenge": first_user, "context_data": system, **persona.variables}
    prompt = VARIABLE.sub(lambda m: values[m.group(1)], persona.template).strip()
    return prompt, (("system", prompt),) + tuple((r, c) for r, c in messages if r != "system")


def apply_persona(persona: Persona, example: Example) -> Example:
    """The example spoken by the persona: its system prompt replaces the example's own."""
    prov = replace(example.provenance, persona=persona.id)
    if isinstance(example, PreferenceExample):
        _, prompt = _render(persona, example.prompt)
        return replace(example, prompt=prompt, provenance=prov)
    _, messages = _render(persona, example.messages)
    kept = [i for i, (r, _) in enumerate(example.messages) if r != "system"]
    where = {old: new + 1 for new, old in enumerate(kept)}  # system messages merged into one at the front
    tools = tuple(replace(t, index=where[t.index]) for t in example.tools if t.index in where)
    return ChatExample(messages, prov, tools)
