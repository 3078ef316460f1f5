"""Constitutional-AI data, per prompt (Bai et al., 2022):

- supervised: sample a response, then ``rounds`` times critique it against a principle chosen
  for that prompt and round and revise it; the final revision is the SFT answer;
- preference: sample two responses and ask the labeler which better follows a principle
  (the order shown is randomized per prompt, so position bias does not pick the winner);
  the chosen/rejected pair is a DPO example.

Every example keeps its provenance (prompt, principles, critiques, revisions, label). A prompt
whose calls fail or whose label is malformed yields a failure record instead of an example.
"""

from __future__ import annotations

from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor, as_completed
from dataclasses import dataclass, field
from typing import Literal

from levcustom.cai import prompts
from levcustom.cai.client import Completer
from levcustom.cai.constitution import Constitution
from levcustom.datasets.jsonl import ChatExample, Example, Messages, PreferenceExample, Provenance, row_key


@dataclass(frozen=True)
class Prompt:
    messages: Messages  # ends with the user's turn
    source: str
    line: int


@dataclass(frozen=True)
class Outcome:
    prompt: Prompt
    example: Example | None
    provenance: dict = field(default_factory=dict)
    error: str | None = None


class _Failed(Exception):
    pass


@dataclass(frozen=True)
class Generator:
    client: Completer
    constitution: Constitution
    mode: Literal["sft", "dpo"]
    rounds: int
    seed: int

    def _call(self, model: str, system: str | None, user: str, sample: int = 0) -> str:
        reply = self.client.complete(model, system, user, sample)
        if reply.text is None:
            raise _Failed(reply.error)
        return reply.text

    def _sample(self, p: Prompt, sample: int) -> str:
        s = self.client.settings
        # The responder answers the conversation itself: as the assistant being trained would.
        return self._call(s.responder, None, prompts.transcript(p.messages) if len(p.messages) > 1
                          else p.messages[0][1], sample)

    def one(self, p: Prompt) -> Outcome:
        try:
            return self._supervised(p) if self.mode == "sft" else self._preference(p)
        except _Failed as exc:
            return Outcome(p, None, error=str(exc))

    def _principle(self, p: Prompt, step: str):
        principles = self.constitution.principles
        return principles[prompts.choose(self.seed, row_key(p.messages), step, len(principles))]

    def _supervised(self, p: Prompt) -> Outcome:
        s = self.client.settings
        system = prompts.system_prompt(self.constitution)
        response = self._sample(p, 0)
        history = [{"response": response}]
        for r in range(1, self.rounds + 1):
            principle = self._principle(p, f"round{r}")
            conversation = p.messages + (("assistant", response),)
            critique = self._call(s.model, system, prompts.critique_request(conversation, principle))
            response = self._call(s.model, system, prompts.revision_request(conversation, principle, critique))
            history.append({"principle": principle.name, "critique": critique, "revision": response})
        example = ChatExample(p.messages + (("assistant", response),), Provenance("cai", p.source, p.line))
        return Outcome(p, example, {"phase": "supervised", "rounds": history})

    def _preference(self, p: Prompt) -> Outcome:
        s = self.client.settings
        a, b = self._sample(p, 1), self._sample(p, 2)
        if " ".join(a.split()) == " ".join(b.split()):
            raise _Failed("the two sampled responses are identical: nothing to prefer")
        principle = self._principle(p, "preference")
        swapped = prompts.choose(self.seed, row_key(p.messages), "order", 2) == 1
        first, second = (b, a) if swapped else (a, b)
        reply = self._call(s.model, prompts.system_prompt(self.constitution),
                           prompts.label_request(p.messages, first, second, principle))
        label = prompts.parse_label(reply)
        if label.choice is None:
            raise _Failed(label.error)
        chosen_first = label.choice == "A"
        chosen, rejected = (first, second) if chosen_first else (second, first)
        example = PreferenceExample(p.messages, (("assistant", chosen),), (("assistant", rejected),),
                                    Provenance("cai", p.source, p.line))
        return Outcome(p, example, {"phase": "preference", "principle": principle.name,
                                    "shown_first": "b" if swapped else "a", "label": label.choice,
                                    "reason": label.reason})


def generate_all(generator: Generator, items: list[Prompt], concurrency: int,
                 progress: Callable[[int, int], None] | None = None) -> list[Outcome]:
    """Every prompt's outcome, in input order; prompts run concurrently (each prompt's calls in order)."""
    outcomes: list[Outcome | None] = [None] * len(items)
    with ThreadPoolExecutor(max_workers=concurrency, thread_name_prefix="cai") as pool:
        futures = {pool.submit(generator.one, p): i for i, p in enumerate(items)}
        for done, future in enumerate(as_completed(futures), start=1):
            outcomes[futures[future]] = future.result()
            if progress:
                progress(done, len(items))
    return [o for o in outcomes if o is not None]
