"""How one seed becomes one dialog, in either mode.

transcript (Baize): one request asks the teacher to write the whole conversation, which the
  parser splits into turns.
agents (beyond Baize): a simulated person (`user_model`) and the assistant (`model`) take
  turns as separate requests, so each side only ever writes its own lines; the person ends
  the talk with the end marker or the dialog stops at max_turns. With a Judge (--feedback N),
  each assistant turn is sampled N times and the judge's pick is the one the talk continues
  from (feedback.py); every turn's verdict is kept in `Dialog.feedback`.
Both return a Dialog; the caller filters it and writes the record. Every request of a dialog
carries its item id as the cache hint, and each side's requests start the same way (its system
text, then the talk so far, growing at the end), so a provider's prompt cache serves the prefix.

A reasoning model's thinking (split off by the engine, or by the parser inside a transcript's
turns) rides beside the messages, never in them: `Dialog.reasoning` holds one entry per
assistant turn, and the person only ever sees the assistant's visible answers. An assistant turn
whose thinking never closed ends the dialog like a cut answer; with nothing before it the dialog
is rejected as `truncated_reasoning`.
"""
from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Any

import prompts
from generators.backends.base import ChatRequest, ChatResult, Sampling
from generators.core.engine import Engine
from generators.core.reasoning import cut
from generators.core.records import derive_seed
from generators.selfchat.feedback import Judge
from generators.selfchat.parser import parse_transcript

END_MARKER = "[END]"


@dataclass
class Dialog:
    messages: list[dict[str, str]]
    finish: str  # natural | max_turns | length
    reject: str | None = None
    notes: list[str] = field(default_factory=list)
    raw: str | None = None
    models: list[str] = field(default_factory=list)  # every model that answered (usage is booked by the engine)
    feedback: list[dict[str, Any]] = field(default_factory=list)  # one verdict per assistant turn (--feedback)
    reasoning: list[str | None] = field(default_factory=list)  # one per assistant turn: its thinking, if any
    transcript_reasoning: str | None = None  # transcript mode: the thinking before the whole transcript

    def count(self, result: ChatResult) -> None:
        if result.model and result.model not in self.models:
            self.models.append(result.model)


def transcript_request(seed_text: str, sampling: Sampling, *, item_id: str, base_seed: int,
                       model: str | None = None) -> ChatRequest:
    """The one request of a transcript dialog (also what --dry-run counts)."""
    prompt = prompts.render("selfchat_transcript", seed=seed_text)
    return ChatRequest.of([{"role": "user", "content": prompt}],
                          replace(sampling, seed=derive_seed(base_seed, item_id, "transcript")), model,
                          cache_hint=item_id)


async def transcript_dialog(engine: Engine, seed_text: str, sampling: Sampling, *, item_id: str,
                            base_seed: int, model: str | None = None) -> Dialog:
    request = transcript_request(seed_text, sampling, item_id=item_id, base_seed=base_seed, model=model)
    result = await engine.complete(request)
    truncated = result.finish == "length"
    parsed = parse_transcript(result.text, truncated=truncated)
    dialog = Dialog(messages=parsed.messages, finish="length" if truncated else "natural",
                    reject=parsed.reject, notes=list(parsed.notes), raw=result.text, reasoning=parsed.reasoning,
                    transcript_reasoning=result.reasoning)
    if result.reasoning_truncated:  # the thinking never closed: no transcript was written
        dialog.reject = "truncated_reasoning"
    dialog.count(result)
    return dialog


def _flip(messages: list[dict[str, str]]) -> list[dict[str, str]]:
    """The dialog as the simulated person sees it: its own lines are 'assistant' turns."""
    swap = {"user": "assistant", "assistant": "user"}
    return [{"role": swap[m["role"]], "content": m["content"]} for m in messages]


def _is_end(text: str) -> bool:
    cleaned = text.strip().strip(".").strip()
    return not cleaned or END_MARKER.lower() in cleaned.lower()[: len(END_MARKER) + 8]


class AgentsPrompts:
    """The requests of an agents dialog about one seed, rendered once per dialog: the person's
    (its system text and opening, then the dialog seen from its side) and the assistant's (its
    system text, then the dialog). --dry-run counts the first of them with these same builders."""

    def __init__(self, seed_text: str, assistant_prompt: str | None) -> None:
        self.person = [{"role": "system", "content": prompts.render("selfchat_user", seed=seed_text,
                                                                    end_marker=END_MARKER)},
                       {"role": "user", "content": prompts.render("selfchat_user_opening", seed=seed_text)}]
        self.assistant = ([{"role": "system", "content": prompts.render(assistant_prompt)}]
                          if assistant_prompt else [])

    def person_request(self, messages: list[dict[str, str]], sampling: Sampling, *, item_id: str, base_seed: int,
                       turn: int, model: str | None = None) -> ChatRequest:
        return ChatRequest.of(self.person + _flip(messages),
                              replace(sampling, seed=derive_seed(base_seed, item_id, "user", turn)), model,
                              cache_hint=item_id)

    def assistant_request(self, messages: list[dict[str, str]], sampling: Sampling, *, item_id: str,
                          base_seed: int, turn: int, k: int = 0, model: str | None = None) -> ChatRequest:
        parts = ("assistant", turn) if k == 0 else ("assistant", turn, k)  # a distinct seed per candidate
        return ChatRequest.of(self.assistant + messages,
                              replace(sampling, seed=derive_seed(base_seed, item_id, *parts)), model,
                              cache_hint=item_id)


async def agents_dialog(engine: Engine, user_engine: Engine, seed_text: str, sampling: Sampling, *,
                        item_id: str, base_seed: int, max_turns: int, opening: str = "seed",
                        model: str | None = None, user_model: str | None = None,
                        assistant_prompt: str | None = "selfchat_assistant", judge: Judge | None = None) -> Dialog:
    """Alternate person and assistant requests until the person says END or max_turns; with a
    judge, each assistant turn is the best of judge.n answers."""
    dialog = Dialog(messages=[], finish="max_turns")
    talk = AgentsPrompts(seed_text, assistant_prompt)

    async def person_says(turn: int) -> str | None:
        request = talk.person_request(dialog.messages, sampling, item_id=item_id, base_seed=base_seed,
                                      turn=turn, model=user_model)
        result = await user_engine.complete(request)
        dialog.count(result)
        return None if _is_end(result.text) or cut(result) else result.text.strip()

    def assistant_request(turn: int, k: int = 0) -> ChatRequest:
        return talk.assistant_request(dialog.messages, sampling, item_id=item_id, base_seed=base_seed,
                                      turn=turn, k=k, model=model)

    async def assistant_says(turn: int) -> ChatResult:
        answer = await engine.complete(assistant_request(turn))
        dialog.count(answer)
        return answer

    async def best_of(turn: int, judge: Judge) -> ChatResult:
        """judge.n candidates, the judge's pick returned (or a cut one when all were cut)."""
        candidates = await judge.sample(lambda k: engine.complete(assistant_request(turn, k)))
        for candidate in candidates:
            dialog.count(candidate)
        verdict = await judge.pick(list(dialog.messages), candidates, turn=turn, base_seed=base_seed,
                                   item_id=item_id, count=dialog.count)
        dialog.feedback.append(verdict.to_json())
        return candidates[0] if verdict.chosen is None else candidates[verdict.chosen]

    question: str | None = seed_text if opening == "seed" else await person_says(0)
    for turn in range(max_turns):
        if question is None:
            dialog.finish = "natural"
            break
        dialog.messages.append({"role": "user", "content": question})
        answer = await (assistant_says(turn) if judge is None else best_of(turn, judge))
        if cut(answer):  # a cut answer (or thinking that never closed) is not an answer: drop this exchange
            dialog.messages.pop()
            dialog.finish = "length"
            dialog.notes.append("dropped_truncated_reasoning" if answer.reasoning_truncated
                                else "dropped_truncated_turn")
            break
        dialog.messages.append({"role": "assistant", "content": answer.text.strip()})
        dialog.reasoning.append(answer.reasoning)
        if turn + 1 < max_turns:
            question = await person_says(turn + 1)
    if not dialog.messages:  # the first answer was cut off, or nothing was said at all
        dialog.reject = "truncated" if dialog.finish == "length" else "one_sided"
        if "dropped_truncated_reasoning" in dialog.notes:
            dialog.reject = "truncated_reasoning"
    return dialog
