"""Safe YAML loading that keeps the line and column of every key.

Specs come from untrusted pull requests, so this refuses everything that is more than
plain data: explicit tags (``!!python/object``...), duplicate keys, alias expansion past a
small budget (billion-laughs), deep nesting and huge files.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import yaml

from levcustom.errors import Issue

try:  # libyaml's composer is ~5x faster and yields the same nodes and marks
    _BaseLoader = yaml.CSafeLoader
except AttributeError:  # pragma: no cover - libyaml missing
    _BaseLoader = yaml.SafeLoader

MAX_FILE_BYTES = 1_000_000
MAX_NODES = 20_000
MAX_DEPTH = 32

_PLAIN_TAGS = {
    "tag:yaml.org,2002:" + t for t in ("str", "int", "float", "bool", "null", "map", "seq")
}

_TIMESTAMP = "tag:yaml.org,2002:timestamp"
_PLAIN_TAGS.add(_TIMESTAMP)

Path_ = tuple[str | int, ...]


@dataclass
class Document:
    """Plain data of one YAML document plus where each key path sits in the file."""

    file: str
    data: object
    positions: dict[Path_, tuple[int, int]] = field(default_factory=dict)

    def locate(self, path: Path_) -> tuple[int, int]:
        """Line/column of ``path``, falling back to the nearest located ancestor."""
        for n in range(len(path), -1, -1):
            pos = self.positions.get(tuple(path[:n]))
            if pos:
                return pos
        return (1, 1)

    def issue(self, path: Path_, message: str) -> Issue:
        line, col = self.locate(path)
        return Issue(self.file, line, col, format_path(path), message)


def format_path(path: Path_) -> str:
    """``("spec", "dataset", "sources", 0, "path")`` -> ``spec.dataset.sources[0].path``."""
    out = ""
    for part in path:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out


class _Budget(Exception):
    pass


def load_yaml(text: str, file: str) -> tuple[list[Document], list[Issue]]:
    """Parse every document in ``text``; return documents and the issues found."""
    if len(text.encode("utf-8", "ignore")) > MAX_FILE_BYTES:
        return [], [Issue(file, 1, 1, "", f"file is larger than {MAX_FILE_BYTES} bytes")]
    try:
        nodes = list(yaml.compose_all(text, Loader=_BaseLoader))
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        line, col = (mark.line + 1, mark.column + 1) if mark else (1, 1)
        return [], [Issue(file, line, col, "", f"invalid YAML: {exc.problem or exc}")]
    except yaml.YAMLError as exc:
        return [], [Issue(file, 1, 1, "", f"invalid YAML: {exc}")]
    docs: list[Document] = []
    issues: list[Issue] = []
    for node in nodes:
        if node is None:
            continue
        doc = Document(file=file, data=None)
        counter = [0]
        try:
            doc.data = _build(node, (), doc, issues, counter)
        except _Budget as exc:
            issues.append(Issue(file, node.start_mark.line + 1, 1, "", str(exc)))
            continue
        docs.append(doc)
    return docs, issues


def _build(node: yaml.Node, path: Path_, doc: Document, issues: list[Issue], counter: list[int]) -> object:
    counter[0] += 1
    if counter[0] > MAX_NODES:
        raise _Budget(f"document expands to more than {MAX_NODES} nodes (alias bomb?)")
    if len(path) > MAX_DEPTH:
        raise _Budget(f"nesting deeper than {MAX_DEPTH} levels")
    here = (node.start_mark.line + 1, node.start_mark.column + 1)
    doc.positions.setdefault(path, here)
    if node.tag not in _PLAIN_TAGS:
        issues.append(Issue(doc.file, *here, format_path(path), f"YAML tag {node.tag!r} is not allowed in specs"))
        return None
    if isinstance(node, yaml.MappingNode):
        out: dict[str, object] = {}
        for key_node, value_node in node.value:
            if key_node.tag == "tag:yaml.org,2002:merge":
                issues.append(Issue(doc.file, key_node.start_mark.line + 1, key_node.start_mark.column + 1,
                                    format_path(path), "YAML merge keys ('<<') are not allowed in specs"))
                continue
            key = _scalar(key_node)
            if not isinstance(key, str):
                key = str(key)
            child = path + (key,)
            if key in out:
                issues.append(Issue(doc.file, key_node.start_mark.line + 1, key_node.start_mark.column + 1,
                                    format_path(child), "duplicate key"))
            doc.positions[child] = (key_node.start_mark.line + 1, key_node.start_mark.column + 1)
            out[key] = _build(value_node, child, doc, issues, counter)
        return out
    if isinstance(node, yaml.SequenceNode):
        return [_build(item, path + (i,), doc, issues, counter) for i, item in enumerate(node.value)]
    return _scalar(node)


_constructor = yaml.SafeLoader("")


def _scalar(node: yaml.Node) -> object:
    """Construct a scalar with YAML 1.1 core resolution (ints, floats, bools, null)."""
    if not isinstance(node, yaml.ScalarNode):
        return None
    if node.tag == _TIMESTAMP:  # keep dates as the text the user wrote
        return node.value
    return _constructor.construct_object(node)
