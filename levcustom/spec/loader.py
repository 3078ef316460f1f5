"""Load spec files: YAML -> located documents -> validated ``ModelSpec``s.

All problems across all files are collected and raised together as one ``SpecError`` so a
user fixes everything in one pass, like a compiler.
"""

from __future__ import annotations

import difflib
import re
import types
import typing
from dataclasses import dataclass
from pathlib import Path

from pydantic import BaseModel, ValidationError

from levcustom.errors import Issue, SpecError
from levcustom.spec.schema import EXAMPLE_KIND, METRICS, SOURCE_KINDS, SOURCE_TYPES, ModelSpec
from levcustom.spec.yamlload import Document, Path_, load_yaml

# Names pydantic gives union members in an error's location (``constrained-float``, ``literal['auto']``).
_UNION_TAG = re.compile(r"^(constrained-\w+|function-.*|.*\[.*\]|int|float|str|bool)$")
ENV_REF = re.compile(r"^\$\{env:[A-Za-z_][A-Za-z0-9_]*\}$")
EACH_REF = re.compile(r"\$\{each\.([A-Za-z_]*)\}")
EACH_FIELDS = ("key", "path")


@dataclass(frozen=True)
class LoadedSpec:
    """A validated spec with the document it came from (for located errors later)."""

    model: ModelSpec
    doc: Document

    @property
    def name(self) -> str:
        return self.model.name

    @property
    def file(self) -> str:
        return self.doc.file


def spec_files(paths: list[Path], root: Path) -> list[Path]:
    """Expand files and folders to the sorted list of ``*.yaml``/``*.yml`` spec files."""
    out: list[Path] = []
    for p in paths:
        p = p if p.is_absolute() else root / p
        if p.is_dir():
            found = sorted(x for x in p.rglob("*") if x.suffix in (".yaml", ".yml") and x.is_file())
            # a link inside a spec folder must not pull in files from outside the repository
            escapes = [x for x in found if root.resolve() not in x.resolve().parents]
            if escapes:
                raise SpecError([Issue(_rel(x, root), 0, 0, "", "links outside the repository") for x in escapes])
            out.extend(found)
        elif p.exists():
            out.append(p)
        else:
            raise SpecError([Issue(_rel(p, root), 0, 0, "", "no such file or folder")])
    return out


def _rel(p: Path, root: Path) -> str:
    try:
        return str(p.resolve().relative_to(root.resolve()))
    except ValueError:
        return str(p)


def load_documents(files: list[Path], root: Path, read=lambda p: p.read_text("utf-8")) -> list[Document]:
    """Parse spec files into located documents, raising every YAML-level issue at once."""
    docs: list[Document] = []
    issues: list[Issue] = []
    for f in files:
        rel = _rel(f, root)
        try:
            text = read(f)
        except (OSError, UnicodeDecodeError) as exc:
            issues.append(Issue(rel, 0, 0, "", f"cannot read: {exc}"))
            continue
        found, problems = load_yaml(text, rel)
        docs.extend(found)
        issues.extend(problems)
    if issues:
        raise SpecError(issues)
    return docs


def validate_documents(docs: list[Document]) -> list[LoadedSpec]:
    """Validate documents against the schema and cross-document rules."""
    issues: list[Issue] = []
    loaded: list[LoadedSpec] = []
    for doc in docs:
        problems = _unsafe_values(doc, doc.data, ())
        try:
            model = ModelSpec.model_validate(doc.data)
        except ValidationError as exc:
            problems.extend(_pydantic_issues(doc, exc))
            issues.extend(problems)
            continue
        problems.extend(_gate_issues(doc, model))
        problems.extend(_dataset_issues(doc, model))
        issues.extend(problems)
        if not problems:
            loaded.append(LoadedSpec(model, doc))
    seen: dict[str, LoadedSpec] = {}
    for ls in loaded:
        if ls.name in seen:
            first = seen[ls.name]
            line, _ = first.doc.locate(("metadata", "name"))
            issues.append(ls.doc.issue(("metadata", "name"),
                                       f"duplicate model name {ls.name!r} (also in {first.file}:{line})"))
        seen[ls.name] = ls
    if issues:
        raise SpecError(list(dict.fromkeys(issues)))  # a for_each document repeats its issues per instance
    return loaded


def load_specs(paths: list[Path], root: Path) -> list[LoadedSpec]:
    """Load and validate every spec under ``paths`` (``for_each`` documents expanded)."""
    return validate_documents(expand_for_each(load_documents(spec_files(paths, root), root), root))


def _glob_regex(pattern: str) -> re.Pattern[str]:
    """The glob as a regex whose groups are what each wildcard matched (for ``each.key``)."""
    out = ""
    i = 0
    while i < len(pattern):
        if pattern.startswith("**", i):
            out, i = out + "(.*)", i + 2
        elif pattern[i] == "*":
            out, i = out + "([^/]*)", i + 1
        elif pattern[i] == "?":
            out, i = out + "([^/])", i + 1
        else:
            out, i = out + re.escape(pattern[i]), i + 1
    return re.compile(out + "$")


def expand_for_each(docs: list[Document], root: Path) -> list[Document]:
    """Terraform's ``for_each`` for specs: a document with ``for_each: <glob>`` becomes one document
    per matching file, with ``${each.key}`` (what the wildcards matched, joined by '-') and
    ``${each.path}`` (the file, relative to the repository) filled into every string."""
    out: list[Document] = []
    issues: list[Issue] = []
    for doc in docs:
        if not isinstance(doc.data, dict) or "for_each" not in doc.data:
            out.append(doc)
            continue
        data = dict(doc.data)
        pattern = data.pop("for_each")
        if not isinstance(pattern, str) or not pattern or pattern.startswith("/") or ".." in pattern.split("/"):
            issues.append(doc.issue(("for_each",), "expected a glob relative to the repository root, "
                                                   "e.g. personas/*/context.yaml"))
            continue
        regex = _glob_regex(pattern)
        matches = sorted(p for p in root.glob(pattern) if p.is_file())
        if not matches:
            issues.append(doc.issue(("for_each",), f"{pattern!r} matches no file"))
        for match in matches:
            rel = match.relative_to(root).as_posix()
            found = regex.match(rel)
            key = "-".join(g for g in found.groups() if g) if found else match.stem
            out.append(Document(doc.file, _fill_each(data, {"key": key, "path": rel}), doc.positions))
    if issues:
        raise SpecError(issues)
    return out


def _fill_each(value: object, each: dict[str, str]) -> object:
    if isinstance(value, dict):
        return {k: _fill_each(v, each) for k, v in value.items()}
    if isinstance(value, list):
        return [_fill_each(v, each) for v in value]
    if isinstance(value, str):
        return EACH_REF.sub(lambda m: each.get(m.group(1), m.group(0)), value)
    return value


def _unsafe_values(doc: Document, value: object, path: Path_) -> list[Issue]:
    """Refuse constructs that could run code or leak secrets: ``_target_`` and interpolations."""
    out: list[Issue] = []
    if isinstance(value, dict):
        for k, v in value.items():
            if k == "_target_":
                out.append(doc.issue(path + (k,), "'_target_' is not allowed in specs (no object construction)"))
            out.extend(_unsafe_values(doc, v, path + (k,)))
    elif isinstance(value, list):
        for i, v in enumerate(value):
            out.extend(_unsafe_values(doc, v, path + (i,)))
    elif isinstance(value, str) and "${" in value and not ENV_REF.match(value):
        each = EACH_REF.search(value)
        if each and each.group(1) in EACH_FIELDS:
            out.append(doc.issue(path, f"'{each.group(0)}' needs a 'for_each' at the top of the document"))
        elif each:
            out.append(doc.issue(path, f"unknown '{each.group(0)}'; expected one of: "
                                       + ", ".join(f"${{each.{f}}}" for f in EACH_FIELDS)))
        else:
            out.append(doc.issue(path, "only '${env:NAME}' interpolation is allowed, as a whole value"))
    return out


def _dataset_issues(doc: Document, model: ModelSpec) -> list[Issue]:
    """Sources must yield what the method trains on; a persona renders at least one other source."""
    body = model.spec
    kind = EXAMPLE_KIND[body.train_method]
    out = []
    personas = []
    for i, src in enumerate(body.dataset.sources):
        if body.cai and src.type != "jsonl":
            out.append(doc.issue(("spec", "dataset", "sources", i, "type"),
                                 "method cai reads its prompts from jsonl sources"))
        elif not body.cai and kind not in SOURCE_KINDS[src.type]:
            hint = " (use type: preferences, derive: ratings)" if src.type == "interactions" else ""
            out.append(doc.issue(("spec", "dataset", "sources", i, "type"),
                                 f"{src.type} sources yield {' or '.join(SOURCE_KINDS[src.type])} examples; "
                                 f"method {body.method} trains on {kind} examples{hint}"))
        if src.type == "personality":
            personas.append(i)
    for i in personas[1:]:
        out.append(doc.issue(("spec", "dataset", "sources", i), "only one personality source per dataset "
                                                                "(use for_each for one model per persona)"))
    if personas and len(personas) == len(body.dataset.sources):
        out.append(doc.issue(("spec", "dataset", "sources", personas[0]),
                             "a personality source renders the other sources' examples: add at least one"))
    return out


def _gate_issues(doc: Document, model: ModelSpec) -> list[Issue]:
    known = {f"{s.name}.{s.metric}" for s in model.spec.evals.suites}
    out = []
    for i, gate in enumerate(model.spec.evals.gates):
        if gate.metric not in known:
            hint = _suggest(gate.metric, known)
            choices = ", ".join(sorted(known)) or "none: declare evals.suites first"
            out.append(doc.issue(("spec", "evals", "gates", i, "metric"),
                                 f"unknown metric {gate.metric!r}{hint}; expected one of: {choices}"))
    pairwise = {f"{s.name}.judge" for s in model.spec.evals.suites if s.judge and s.judge.mode == "pairwise"}
    for i, gate in enumerate(model.spec.evals.gates):
        if gate.metric in pairwise and gate.min_delta_vs is not None:
            out.append(doc.issue(("spec", "evals", "gates", i, "min_delta_vs"),
                                 f"{gate.metric} is a pairwise judge: it already scores the tuned model against "
                                 "its reference (win rate), so bound it with min (e.g. min: 0.5)"))
    for i, suite in enumerate(model.spec.evals.suites):
        if suite.split is not None and getattr(model.spec.dataset.split, suite.split) == 0:
            out.append(doc.issue(("spec", "evals", "suites", i, "split"),
                                 f"the dataset holds nothing out (dataset.split.{suite.split} is 0)"))
    names = [s.name for s in model.spec.evals.suites]
    for i, name in enumerate(names):
        if name in names[:i]:
            out.append(doc.issue(("spec", "evals", "suites", i, "name"), f"duplicate suite name {name!r}"))
    return out


def pydantic_issues(doc: Document, exc: ValidationError, root_model: type[BaseModel],
                    prefix: Path_ = ()) -> list[Issue]:
    """Turn a pydantic error into located issues with expected values and key suggestions.

    A value that fails every member of a union (``float | 'auto'``) gives one issue whose
    message lists what each member expected.
    """
    merged: dict[Path_, tuple[list[str], list[str]]] = {}  # loc -> (messages, got)
    for err in exc.errors():
        loc = prefix + _strip_union_tags(err["loc"])
        kind = err["type"]
        if kind == "extra_forbidden":
            raw = tuple(p for p in err["loc"][:-1] if not (isinstance(p, str) and _UNION_TAG.match(p)))
            allowed = _fields_at(root_model, raw)  # with the source type tag: it selects the member
            msg = f"unknown key{_suggest(str(loc[-1]), allowed)}"
            if allowed:
                msg += f"; allowed keys: {', '.join(sorted(allowed))}"
        elif kind == "missing":
            msg = "required key is missing"
        else:
            msg = err["msg"]
        messages, got = merged.setdefault(loc, ([], []))
        if msg not in messages:
            messages.append(msg)
        if not got and kind != "extra_forbidden" and "input" in err and not isinstance(err["input"], (dict, list)):
            got.append(repr(err["input"]))
    return [doc.issue(loc, ", or ".join(messages) + (f" (got {got[0]})" if got else ""))
            for loc, (messages, got) in merged.items()]


def _pydantic_issues(doc: Document, exc: ValidationError) -> list[Issue]:
    return pydantic_issues(doc, exc, ModelSpec)


def _strip_union_tags(loc: tuple) -> Path_:
    # pydantic puts the union member's tag or class name in loc; users never wrote it.
    out: list[str | int] = []
    for p in loc:
        if isinstance(p, str) and (_UNION_TAG.match(p) or (p in SOURCE_TYPES and out[-2:-1] == ["sources"])):
            continue
        out.append(p)
    return tuple(out)


def _suggest(word: str, choices) -> str:
    close = difflib.get_close_matches(word, list(choices), n=1, cutoff=0.6)
    return f" (did you mean {close[0]!r}?)" if close else ""


def _fields_at(model: type[BaseModel], path: Path_) -> set[str]:
    """Field names allowed at ``path`` inside ``model`` (for 'did you mean')."""
    tp: object = model
    for part in path:
        tp = _unwrap(tp)
        if isinstance(part, int):
            args = typing.get_args(tp)
            tp = args[0] if args else None
        elif _member(tp, part) is not None:  # a discriminated union's tag selects the member
            tp = _member(tp, part)
        elif isinstance(tp, type) and issubclass(tp, BaseModel) and part in tp.model_fields:
            tp = tp.model_fields[part].annotation
        else:
            return set()
    tp = _unwrap(tp)
    return set(tp.model_fields) if isinstance(tp, type) and issubclass(tp, BaseModel) else set()


def _member(tp: object, tag: object) -> type[BaseModel] | None:
    """The member of a union of models whose ``type`` literal is ``tag``."""
    for arg in typing.get_args(tp):
        field = arg.model_fields.get("type") if isinstance(arg, type) and issubclass(arg, BaseModel) else None
        if field is not None and tag in typing.get_args(field.annotation):
            return arg
    return None


def _unwrap(tp: object) -> object:
    """Strip Optional[...] and Annotated[...] so nested models are reachable."""
    if typing.get_origin(tp) is typing.Annotated:
        tp = typing.get_args(tp)[0]
    args = [a for a in typing.get_args(tp) if a is not type(None)]
    if typing.get_origin(tp) in (typing.Union, types.UnionType) and len(args) == 1:
        return args[0]
    return tp


__all__ = ["LoadedSpec", "load_specs", "load_documents", "validate_documents", "spec_files", "METRICS"]
