"""``type: interactions``: agent conversation logs become chat examples.

A row is ``{"id"?, "agent", "task", "messages": [OpenAI-style, tool calls included], "rating"?,
"feedback"?}`` (the rating may also sit in ``feedback.rating``). Messages after the last
assistant message are dropped: the last answer is the training target.
"""

from __future__ import annotations

from levcustom.datasets.jsonl import ChatExample, Messages, Provenance, ToolTurn, parse_chat
from levcustom.datasets.outcomes import Filtered, Invalid, names_match
from levcustom.spec.schema import InteractionsSource, PreferencesSource


def rating_of(row: dict) -> float | None:
    """The user's rating of a conversation, top-level or inside ``feedback``; None when unrated."""
    rating = row.get("rating")
    feedback = row.get("feedback")
    if rating is None and isinstance(feedback, dict):
        rating = feedback.get("rating")
    if isinstance(rating, bool) or not isinstance(rating, (int, float)):
        return None
    return float(rating)


def conversation(row: object, src: InteractionsSource | PreferencesSource,
                 prov: Provenance) -> tuple[Messages, tuple[ToolTurn, ...], Provenance] | Filtered | Invalid:
    """A log row's messages (up to the last answer) and provenance, after the agent and task filters."""
    if not isinstance(row, dict):
        return Invalid("expected a JSON object with 'messages'")
    msgs, tools, problem = parse_chat(row.get("messages"))
    if problem:
        return Invalid(problem)
    last = len(msgs) - 1
    while last >= 0 and msgs[last][0] != "assistant":
        last -= 1
    if last < 0:
        return Invalid("the conversation has no assistant message")
    agent, task = row.get("agent"), row.get("task", row.get("task_type"))
    if not names_match(agent, src.agent):
        return Filtered("agent")
    if not names_match(task, src.task):
        return Filtered("task")
    ref = row.get("id", row.get("conversation_id"))
    prov = prov.about(ref, agent, task)
    if last == len(msgs) - 1:
        return msgs, tools, prov
    return msgs[:last + 1], tuple(t for t in tools if t.index <= last), prov


class InteractionReader:
    def __init__(self, src: InteractionsSource):
        self.src = src

    def __call__(self, row: object, prov: Provenance) -> ChatExample | Filtered | Invalid:
        found = conversation(row, self.src, prov)
        if isinstance(found, (Filtered, Invalid)):
            return found
        if self.src.min_rating is not None:
            rating = rating_of(row)
            if rating is None or rating < self.src.min_rating:
                return Filtered("min_rating")
        msgs, tools, prov = found
        return ChatExample(msgs, prov, tools)
