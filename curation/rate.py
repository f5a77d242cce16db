"""Rate one record: send the rubric, read "Score: N" strictly, resample when unreadable.

A retry changes the sampling seed (so the response cache cannot hand back the same unreadable
answer) and samples at temperature >= RETRY_TEMPERATURE (a greedy rater would otherwise repeat
itself whatever the seed).
"""
from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Any

from generators.backends.base import ChatRequest, Sampling
from generators.engine import Engine

from .expected import expected_score
from .score_parse import parse_score, reasoning_of

RETRY_TEMPERATURE = 0.7


@dataclass
class Rating:
    score: int | None
    score_expected: float | None
    reason: str
    raw: str
    attempts: int
    problems: list[str] = field(default_factory=list)
    usage: dict[str, int] = field(default_factory=lambda: {"prompt_tokens": 0, "completion_tokens": 0})
    finish: str = ""


def attempt_sampling(base: Sampling, attempt: int) -> Sampling:
    """Sampling for attempt 0, 1, ...: the base settings first, then new seeds, warmer."""
    if attempt == 0:
        return base
    temperature = max(base.temperature or 0.0, RETRY_TEMPERATURE)
    return replace(base, seed=(base.seed or 0) + attempt, temperature=temperature)


async def rate(engine: Engine, messages: list[dict[str, str]], sampling: Sampling, *,
               retries_unparsed: int) -> Rating:
    """The first readable rating in 1 + retries_unparsed attempts (score None if none was).
    A RequestFailed propagates: the item goes to errors.jsonl, not to 'unparsed'."""
    rating = Rating(None, None, "", "", 0)
    for attempt in range(retries_unparsed + 1):
        result = await engine.complete(ChatRequest.of(messages, attempt_sampling(sampling, attempt)))
        rating.attempts = attempt + 1
        rating.raw, rating.finish = result.text, result.finish
        rating.usage["prompt_tokens"] += result.prompt_tokens
        rating.usage["completion_tokens"] += result.completion_tokens
        parsed = parse_score(result.text)
        if parsed.ok:
            rating.score = parsed.score
            rating.score_expected = expected_score(result.logprobs, parsed.score)
            rating.reason = reasoning_of(result.text, parsed)
            return rating
        rating.problems.append(parsed.problem or "unparsed")
    rating.reason = rating.raw.strip()
    return rating


def describe_rating(rating: Rating) -> dict[str, Any]:
    return {"raw": rating.raw, "attempts": rating.attempts, "problems": rating.problems,
            "usage": rating.usage, "finish": rating.finish}
