"""What reading one source row can give: an example, a row a filter removed, or an invalid row."""

from __future__ import annotations

from dataclasses import dataclass

import orjson


@dataclass(frozen=True)
class Filtered:
    """The row is valid but a filter removed it; ``name`` is the filter as the spec spells it."""

    name: str


@dataclass(frozen=True)
class Invalid:
    """The row is malformed; ``message`` says what was expected."""

    message: str


def text_of(value: object) -> str:
    """A field as text: strings as they are, anything else (objects, lists, numbers) as compact JSON."""
    if isinstance(value, str):
        return value
    if value is None:
        return ""
    return orjson.dumps(value, option=orjson.OPT_SORT_KEYS).decode()


def names_match(value: object, wanted: list[str] | None) -> bool:
    """A string filter (agent, task, type...): no filter keeps everything; matching ignores case."""
    return wanted is None or (isinstance(value, str) and value.casefold() in {w.casefold() for w in wanted})
