"""Rate one record: send the rubric, read "Score: N" strictly, resample when unreadable.

The score is read from the visible answer alone: a reasoning rater's thinking (split off by the
engine, generators/core/reasoning.py) is kept in `reasoning`, never parsed, so a "Score: 2 ...
no wait" while thinking cannot count; thinking that never closed leaves no answer, so no score.

A retry changes the sampling seed (so the response cache cannot hand back the same unreadable
answer) and samples at temperature >= RETRY_TEMPERATURE (a greedy rater would otherwise repeat
itself whatever the seed). With --constrained auto the first retry also sends the unreadable
answer back with what was wrong with it (generators.core.guides.retry_messages); the later ones,
if --retries-unparsed allows, resample as before.
"""
from __future__ import annotations

from dataclasses import dataclass, field, replace

from generators.backends.base import ChatRequest, Sampling
from generators.core.engine import Engine
from generators.core.guides import form_of, retry_messages

from curation.expected import digit_mass, expected_score
from curation.score_parse import MAX_SCORE, MIN_SCORE, PROBLEM_TEXT, parse_score, reasoning_of

RETRY_TEMPERATURE = 0.7
REASONED_FORM = (f'a few sentences of reasoning, then the rating alone on the last line as "Score: N", '
                 f"where N is a whole number from {MIN_SCORE} to {MAX_SCORE}")
DIRECT_TOP_LOGPROBS = 50  # local backends give any number; the digits must be among them


@dataclass
class Rating:
    score: int | None
    score_expected: float | None
    reason: str
    raw: str
    attempts: int
    problems: list[str] = field(default_factory=list)
    told: bool = False  # the one retry that sent the unreadable answer back was made
    usage: dict[str, int] = field(default_factory=lambda: {"prompt_tokens": 0, "completion_tokens": 0})
    finish: str = ""
    reasoning: str | None = None  # the rater's thinking on the attempt that decided, if it thought


def attempt_sampling(base: Sampling, attempt: int) -> Sampling:
    """Sampling for attempt 0, 1, ...: the base settings first, then new seeds, warmer."""
    if attempt == 0:
        return base
    temperature = max(base.temperature or 0.0, RETRY_TEMPERATURE)
    return replace(base, seed=(base.seed or 0) + attempt, temperature=temperature)


async def rate(engine: Engine, messages: list[dict[str, str]], sampling: Sampling, *,
               retries_unparsed: int, cache_hint: str | None = None, tell: bool = False) -> Rating:
    """The first readable rating in 1 + retries_unparsed attempts (score None if none was).
    With `tell` (--constrained auto) the first retry answers the unreadable answer with what was
    wrong. A RequestFailed propagates: the item goes to errors.jsonl, not to 'unparsed'.
    `cache_hint` (the rubric's name) tells the provider which requests share the rubric as their
    prefix."""
    rating = Rating(None, None, "", "", 0)
    for attempt in range(retries_unparsed + 1):
        sent = messages
        if attempt == 1 and tell:
            problem = PROBLEM_TEXT.get(rating.problems[-1], "it has no readable score")
            sent = retry_messages(messages, rating.raw, problem, form_of(sampling.guide, REASONED_FORM))
            rating.told = True
        result = await engine.complete(ChatRequest.of(sent, attempt_sampling(sampling, attempt),
                                                      cache_hint=cache_hint))
        rating.attempts = attempt + 1
        rating.raw, rating.finish, rating.reasoning = result.text, result.finish, result.reasoning
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


def direct_request(messages: list[dict[str, str]], sampling: Sampling) -> ChatRequest:
    """--score-mode direct's one request: greedy, one digit's worth of tokens, with logprobs."""
    return ChatRequest.of(messages, replace(sampling, max_tokens=3, temperature=0.0, top_p=None,
                                            logprobs=max(sampling.logprobs or 0, DIRECT_TOP_LOGPROBS)))


def first_request(messages: list[dict[str, str]], sampling: Sampling, *, direct: bool) -> ChatRequest:
    """The first request a rating sends (`rate`'s attempt 0, or `rate_direct`'s one)."""
    return direct_request(messages, sampling) if direct else ChatRequest.of(messages, attempt_sampling(sampling, 0))


async def rate_direct(engine: Engine, messages: list[dict[str, str]], sampling: Sampling) -> Rating:
    """--score-mode direct: the answer is prefilled with "Score:" and one token is generated; the
    score is the most probable of 1..5 at that token and score_expected their mean. For small
    local raters that never finish a reasoned rating; needs logprobs and prefill (hf, vllm)."""
    result = await engine.complete(direct_request(messages, sampling))
    rating = Rating(None, None, "", result.text, 1, finish=result.finish)
    rating.usage.update(prompt_tokens=result.prompt_tokens, completion_tokens=result.completion_tokens)
    # the digit's token: the first one that is not only whitespace (a tokenizer may emit " " first)
    first = next((e for e in result.logprobs or [] if str(e.get("token", "")).strip()), None)
    mass = digit_mass(first, str(first.get("token", ""))) if first else {}
    total = sum(mass.values())
    if total <= 0:
        rating.problems.append("no_digit_in_top_logprobs")
        return rating
    rating.score = max(mass, key=mass.get)
    rating.score_expected = round(sum(k * p for k, p in mass.items()) / total, 4)
    return rating
