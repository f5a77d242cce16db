"""Self-distillation with feedback (Baize v2): N answers per assistant turn, a judge picks one.

For every assistant turn of an agents-mode dialog the assistant is asked N times, each with its
own seed so the answers differ; one judge request sees the distinct complete answers side by
side and scores each 1-10; the dialog continues from the best. Why one listwise request per turn:
it costs one request (N + 1 per turn in all), against N for a score per answer or N - 1 and more
for pairwise matches, and the judge scores answers against each other rather than on an absolute
scale it tends to fill with the same number. The answers are shown in a seeded random order, so
no candidate always sits first (judges favour what they read first).

Each turn's verdict rides on the dialog's record (`meta.feedback`: the candidates, their scores,
the pick, the judge's text); `preferences.jsonl` is derived from the kept records, atomically,
whenever the stage ends, so a killed run never leaves it with a duplicate or a missing pair.
"""
from __future__ import annotations

import asyncio
import random
import re
from collections import Counter
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Callable, Iterator

import click

import prompts
from generators.backends.base import ChatRequest, ChatResult, Sampling
from generators.backends.registry import names as backend_names
from generators.core.engine import Engine
from generators.core.flags import flag
from generators.core.guides import form_of, json_object, pick, reasoned_regex, retry_messages, with_guide
from generators.core.io import atomic_lines, dumps, read_lines
from generators.core.reasoning import cut
from generators.core.records import Record, derive_seed, stable_id

PREFERENCES = "preferences.jsonl"
TEMPLATE = "selfchat_judge"
SCORES = range(1, 11)
# A judge should be steady: greedy, with room to compare briefly before the score lines.
JUDGE_SAMPLING = Sampling(temperature=0.0, max_tokens=512)
# "Answer 2: 7", optionally in bold; the value is checked apart, so "7/10" or "7.5" is unparsed.
_SCORE_LINE = re.compile(r"^[ \t>#*]*answer[ \t]+(\d+)[ \t*]*:[ \t*]*(\S+?)[ \t*.]*$", re.IGNORECASE | re.MULTILINE)


@dataclass(frozen=True)
class FeedbackSettings:
    """--feedback N and the judge: a model name, and optionally its own backend and server. The
    flags may be left out (no feedback); once built, `n` and `judge_model` are set."""

    n: int = flag("--feedback", type=int, default=None, metavar="N",
                  help="agents mode: sample N (2-16) answers per assistant turn, let --judge-model pick the best "
                       "and continue from it (Baize v2); judged turns also go to preferences.jsonl.")
    judge_model: str = flag("--judge-model", default=None, help="With --feedback: the model that scores the candidates.")
    judge_backend: str | None = flag("--judge-backend", type=click.Choice(backend_names()), default=None,
                                     help="With --feedback: the judge's backend (default: --backend).")
    judge_base_url: str | None = flag("--judge-base-url", default=None,
                                      help="With --feedback: the judge's server (default: --base-url).")


def scores_schema(count: int) -> dict[str, Any]:
    """What a JSON-guided judge answers: {"reason": text, "answer_1": 1..10, ..., "answer_K": 1..10}."""
    keys = [f"answer_{k}" for k in range(1, count + 1)]
    score = {"type": "integer", "minimum": SCORES.start, "maximum": SCORES.stop - 1}
    return {"title": "scores", "type": "object", "additionalProperties": False, "required": ["reason", *keys],
            "properties": {"reason": {"type": "string"}, **{key: score for key in keys}}}


def scores_regex(count: int) -> str:
    """The last lines a regex-guided judge ends with: "Answer K: S" for K = 1..count."""
    return "\\n".join(f"Answer {k}: (?:[1-9]|10)" for k in range(1, count + 1))


def scores_form(count: int) -> str:
    return (f"a few sentences comparing the replies, then {count} lines \"Answer K: S\", one per reply "
            f"(K from 1 to {count}), where S is a whole number from 1 to 10")


def parse_scores(text: str, count: int) -> list[int] | None:
    """The judge's scores for answers 1..count, or None unless every one of them has a whole
    number from 1 to 10 on its last "Answer K: S" line and no other answer number appears (or,
    from a JSON-guided judge, an integer 1..10 under each "answer_K")."""
    answer = json_object(text)
    if answer is not None:
        values = [answer.get(f"answer_{k}") for k in range(1, count + 1)]
        if all(isinstance(v, int) and not isinstance(v, bool) and v in SCORES for v in values):
            return values
        return None
    last: dict[int, str] = {}
    for match in _SCORE_LINE.finditer(text or ""):
        last[int(match.group(1))] = match.group(2)
    if set(last) != set(range(1, count + 1)):
        return None
    scores = []
    for number in range(1, count + 1):
        value = last[number]
        if not value.isdigit() or int(value) not in SCORES:
            return None
        scores.append(int(value))
    return scores


@dataclass
class Verdict:
    """One assistant turn under feedback, as stored in the record's meta.feedback."""

    turn: int
    candidates: list[str]
    finish: list[str]
    scores: list[int | None]
    chosen: int | None
    judgement: str  # judged | unparsed | single | identical | all_cut
    shown: list[int] = field(default_factory=list)  # candidate indices in the order the judge saw
    judge_text: str | None = None
    retried: bool = False  # the judge's answer was sent back once (--constrained auto)

    def to_json(self) -> dict[str, Any]:
        out = dict(self.__dict__)
        if self.judge_text is None:
            out.pop("judge_text")
        if not self.retried:
            out.pop("retried")  # turns judged at once keep the shape they always had
        return out


@dataclass
class Judge:
    """The judge of one run: its engine and the model name to ask for on a shared server."""

    engine: Engine
    n: int
    model: str | None = None  # None: the engine's own model
    constrained: str = "off"  # --constrained: a guide where the judge's backend honours one, and one retry

    async def sample(self, complete: Callable[[int], Any]) -> list[ChatResult]:
        """The N candidates, concurrently; every request settles before a failure is raised,
        so no request of this item runs on after its line is written."""
        results = await asyncio.gather(*(complete(k) for k in range(self.n)), return_exceptions=True)
        for result in results:
            if isinstance(result, BaseException):
                raise result
        return list(results)

    async def pick(self, history: list[dict[str, str]], results: list[ChatResult], *, turn: int,
                   base_seed: int, item_id: str, count: Callable[[ChatResult], None]) -> Verdict:
        """Judge the complete candidates; the verdict names the one the dialog continues from
        (None when every candidate ran out of tokens)."""
        texts = [r.text.strip() for r in results]
        complete = [k for k, r in enumerate(results) if not cut(r)]
        verdict = Verdict(turn=turn, candidates=texts, finish=[r.finish for r in results],
                          scores=[None] * len(results), chosen=complete[0] if complete else None,
                          judgement="all_cut" if not complete else "single")
        distinct: dict[str, list[int]] = {}
        for k in complete:
            distinct.setdefault(texts[k], []).append(k)
        if len(distinct) < 2:
            if len(complete) > 1:
                verdict.judgement = "identical"
            return verdict
        shown = list(distinct)
        random.Random(derive_seed(base_seed, item_id, "judge_order", turn)).shuffle(shown)
        verdict.shown = [distinct[text][0] for text in shown]
        prompt = prompts.render(TEMPLATE, turns=history, answers=shown)
        guide = pick(self.engine.backend.capabilities, self.constrained,
                     regex=reasoned_regex(JUDGE_SAMPLING.max_tokens, scores_regex(len(shown))),
                     json_schema=scores_schema(len(shown)))
        sampling = with_guide(replace(JUDGE_SAMPLING, seed=derive_seed(base_seed, item_id, "judge", turn)), guide)
        messages = [{"role": "user", "content": prompt}]
        result = await self.engine.complete(ChatRequest.of(messages, sampling, self.model, cache_hint=item_id))
        count(result)
        scores = parse_scores(result.text, len(shown))
        if scores is None and self.constrained == "auto":  # one retry that says what was wrong
            retry = retry_messages(messages, result.text, f"it does not give every one of the {len(shown)} "
                                   "replies a whole number from 1 to 10", form_of(guide, scores_form(len(shown))))
            result = await self.engine.complete(ChatRequest.of(retry, sampling, self.model, cache_hint=item_id))
            count(result)
            verdict.retried = True
            scores = parse_scores(result.text, len(shown))
        verdict.judge_text = result.text
        if scores is None:  # deterministic fallback: the first complete candidate
            verdict.judgement = "unparsed"
            return verdict
        for text, score in zip(shown, scores):
            for k in distinct[text]:
                verdict.scores[k] = score
        best = max(scores)
        verdict.chosen = min(k for k in complete if verdict.scores[k] == best)
        verdict.judgement = "judged"
        return verdict


def preference_lines(record: Record) -> Iterator[dict[str, Any]]:
    """The (prompt, chosen, rejected) lines of one dialog: for each judged turn, one line per
    distinct candidate the judge scored strictly below the one the dialog continued from.
    prompt is the conversation up to that turn's question; chosen and rejected are one
    assistant message each (TRL's conversational preference format)."""
    messages = record.get("messages") or []
    meta = record.get("meta") or {}
    for entry in meta.get("feedback") or []:
        if entry.get("judgement") != "judged":
            continue
        turn, chosen, texts, scores = entry["turn"], entry["chosen"], entry["candidates"], entry["scores"]
        answer_at = 2 * turn + 1
        if answer_at >= len(messages) or messages[answer_at]["content"] != texts[chosen]:
            continue  # not the turn the record holds (never written so; kept as a guard)
        seen = {texts[chosen]}
        for k, (text, score) in enumerate(zip(texts, scores)):
            if score is None or score >= scores[chosen] or text in seen:
                continue
            seen.add(text)
            yield {"id": stable_id("preference", record.get("id"), turn, k), "source": record.get("source"),
                   "prompt": messages[:answer_at],
                   "chosen": [{"role": "assistant", "content": texts[chosen]}],
                   "rejected": [{"role": "assistant", "content": text}],
                   "meta": {"item": meta.get("item", record.get("id")), "turn": turn,
                            "score_chosen": scores[chosen], "score_rejected": score,
                            "margin": scores[chosen] - score, "candidates": len(texts),
                            "model": meta.get("model"), "judge_model": meta.get("judge_model")}}


def write_preferences(folder: Path) -> int:
    """(Re)write folder/preferences.jsonl from the kept dialogs in data.jsonl, atomically."""
    def lines() -> Iterator[str]:
        for _, record in read_lines(folder / "data.jsonl"):
            for line in preference_lines(record):
                yield dumps(line)
    return atomic_lines(folder / PREFERENCES, lines())


@dataclass
class FeedbackTally:
    """The manifest's `feedback` counters, from the lines written (earlier sessions included)."""

    counts: Counter = field(default_factory=Counter)

    def add(self, record: Record, kept: bool) -> None:
        for entry in (record.get("meta") or {}).get("feedback") or []:
            self.counts["turns"] += 1
            self.counts[entry.get("judgement", "?")] += 1
            self.counts["retried"] += bool(entry.get("retried"))
            self.counts["cut_candidates"] += sum(1 for f in entry.get("finish") or [] if f == "length")
        pairs = sum(1 for _ in preference_lines(record))
        self.counts["pairs" if kept else "pairs_in_rejected"] += pairs

    def describe(self, settings: FeedbackSettings) -> dict[str, Any]:
        keys = ("turns", "judged", "unparsed", "retried", "single", "identical", "all_cut", "cut_candidates",
                "pairs", "pairs_in_rejected")
        judged = self.counts["judged"] + self.counts["unparsed"]
        return {"n": settings.n, "judge_model": settings.judge_model,
                "judge_requests": judged + self.counts["retried"],
                "unparsed_share": round(self.counts["unparsed"] / judged, 4) if judged else None,
                **{key: self.counts[key] for key in keys}}
