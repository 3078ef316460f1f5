"""``type: episodic_memory``: Leviathan episodes and experiences become chat examples.

An episode is ``{episode_id, timestamp, type, content: {approach, outcome, context, confidence},
relationships}``; an experience is ``{approach, outcome, context, success, confidence}`` (with
optional ``id``/``timestamp``). A template turns one into a chat: by default the context is the
user's message and the approach the assistant's answer.
"""

from __future__ import annotations

from datetime import UTC, datetime

from levcustom.datasets.jsonl import ChatExample, Provenance
from levcustom.datasets.outcomes import Filtered, Invalid, names_match, text_of
from levcustom.spec.schema import EpisodicMemorySource

TEMPLATE_FIELDS = ("context", "approach", "outcome", "type")


def parse_time(value: object) -> datetime | None:
    """An ISO 8601 string or a Unix time (seconds or milliseconds), as an aware UTC datetime."""
    if isinstance(value, bool):
        return None
    if isinstance(value, (int, float)):
        return datetime.fromtimestamp(value / 1000 if value > 1e11 else value, UTC)
    if isinstance(value, str):
        try:
            t = datetime.fromisoformat(value.replace("Z", "+00:00"))
        except ValueError:
            return None
        return t if t.tzinfo else t.replace(tzinfo=UTC)
    return None


def _aware(t: datetime | None) -> datetime | None:
    return t if t is None or t.tzinfo else t.replace(tzinfo=UTC)


class EpisodeReader:
    """Filters and templates episodes, as configured by one source of a spec."""

    def __init__(self, src: EpisodicMemorySource):
        self.src = src
        self.outcomes = {o.casefold() for o in src.outcome} if src.outcome else None
        self.since, self.until = _aware(src.since), _aware(src.until)

    def __call__(self, row: object, prov: Provenance) -> ChatExample | Filtered | Invalid:
        if not isinstance(row, dict):
            return Invalid("expected a JSON object (an episode or an experience)")
        content = row.get("content", row)  # an experience is flat
        if not isinstance(content, dict):
            return Invalid("'content' must be an object with approach/outcome/context")
        src = self.src
        fields = {"context": text_of(content.get("context")), "approach": text_of(content.get("approach")),
                  "outcome": text_of(content.get("outcome")), "type": text_of(row.get("type"))}
        for name in ("context", "approach"):
            if not fields[name].strip():
                return Invalid(f"'{name}' is missing or empty")
        if self.outcomes is not None and fields["outcome"].strip().casefold() not in self.outcomes:
            return Filtered("outcome")
        success = content.get("success", row.get("success"))
        if src.success is not None and success is not src.success:
            return Filtered("success")
        if src.min_confidence is not None:
            confidence = content.get("confidence", row.get("confidence"))
            if isinstance(confidence, bool) or not isinstance(confidence, (int, float)):
                return Filtered("min_confidence")
            if confidence < src.min_confidence:
                return Filtered("min_confidence")
        if not names_match(row.get("type"), src.episode_type):
            return Filtered("episode_type")
        if self.since or self.until:
            t = parse_time(row.get("timestamp"))
            if t is None:
                return Invalid("'timestamp' must be an ISO 8601 time or a Unix time (since/until filter it)")
            if self.since and t < self.since:
                return Filtered("since")
            if self.until and t >= self.until:
                return Filtered("until")
        tpl = src.template
        messages = [("user", tpl.user.format_map(fields)), ("assistant", tpl.assistant.format_map(fields))]
        if tpl.system:
            messages.insert(0, ("system", tpl.system.format_map(fields)))
        ref = row.get("episode_id", row.get("id"))
        return ChatExample(tuple(messages), prov.about(ref, task=fields["type"] or None))
