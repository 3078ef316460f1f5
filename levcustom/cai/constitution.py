"""A constitution: named principles, each a critique request, a revision request and
(optionally) the question a labeler answers to prefer one of two responses.

Loaded with the same safe, located YAML loader as specs, so a mistake is reported with
file:line and the key path.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from levcustom.errors import Issue
from levcustom.spec.yamlload import load_yaml

DEFAULT_PREFERENCE = "Which of these assistant responses is more helpful, honest and harmless?"


class Principle(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str = Field(min_length=1)
    critique: str = Field(min_length=1, description="Asks the critic what is wrong with a response.")
    revision: str = Field(min_length=1, description="Asks the reviser to rewrite the response.")
    preference: str = Field(DEFAULT_PREFERENCE, min_length=1, description="Asks the labeler to pick the better one.")


class Constitution(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str = Field(min_length=1)
    principles: list[Principle] = Field(min_length=1)

    def text(self) -> str:
        """The principles as one block: shared by every critic call (so it is what prompt caching keeps)."""
        return "\n".join(f"- {p.name}: {p.critique}" for p in self.principles)


@dataclass(frozen=True)
class LoadedConstitution:
    constitution: Constitution
    sha256: str


def load_constitution(path: Path, rel: str) -> tuple[LoadedConstitution | None, list[Issue]]:
    """The constitution in ``path``, or the located issues that make it invalid."""
    try:
        raw = path.read_bytes()
    except OSError as exc:
        return None, [Issue(rel, 0, 0, "", f"cannot read the constitution: {exc.strerror}")]
    docs, issues = load_yaml(raw.decode("utf-8", errors="replace"), rel)
    if issues:
        return None, issues
    if len(docs) != 1:
        return None, [Issue(rel, 1, 1, "", "expected one YAML document: {name, principles: [...]}")]
    doc = docs[0]
    try:
        constitution = Constitution.model_validate(doc.data)
    except ValidationError as exc:
        return None, [doc.issue(tuple(err["loc"]), "required key is missing" if err["type"] == "missing"
                                else err["msg"]) for err in exc.errors()]
    return LoadedConstitution(constitution, hashlib.sha256(raw).hexdigest()), []
