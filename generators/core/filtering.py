"""One shape for every filter, and the one list of the reasons they give.

A filter has a `name`, the `reasons` it can give, and `check(subject) -> reason or None`. The
subject is whatever the stage has at that point: a dialog's messages (self-chat), a record
(curate), a web segment (corpus), an instruction candidate (backtranslation). Dedup and
decontamination are filters too: they remember what they passed. `FilterChain` runs filters in
order (the first reason wins) and counts every verdict for the manifest.

REASONS is the catalogue: every reason a stage writes into `reject` or a manifest, with what it
means. Manifests take their reason meanings from here, and a test checks that no filter gives a
reason missing from it.
"""
from __future__ import annotations

from collections import Counter
from typing import Generic, Iterable, Protocol, Sequence, TypeVar, runtime_checkable

S = TypeVar("S", contravariant=True)
T = TypeVar("T")


@runtime_checkable
class Filter(Protocol[S]):
    name: str
    reasons: tuple[str, ...]

    def check(self, subject: S) -> str | None:
        """None to pass the subject on, else the reason it is dropped."""


class FilterChain(Generic[T]):
    """Filters in order; the first reason wins; `counts` has one entry per verdict ("passed")."""

    def __init__(self, filters: Sequence[Filter[T]]) -> None:
        self.filters = list(filters)
        self.counts: Counter[str] = Counter()

    @property
    def reasons(self) -> tuple[str, ...]:
        return tuple(dict.fromkeys(r for f in self.filters for r in f.reasons))

    def check(self, subject: T) -> str | None:
        for flt in self.filters:
            reason = flt.check(subject)
            if reason is not None:
                self.counts[reason] += 1
                return reason
        self.counts["passed"] += 1
        return None

    def summary(self) -> dict[str, int]:
        """Counts of every reason the chain can give (zeros included), for manifests."""
        return {reason: self.counts.get(reason, 0) for reason in self.reasons}


REASONS: dict[str, str] = {
    # self-chat: the dialog
    "no_markers": "transcript mode: the reply has no speaker markers to split it into turns",
    "one_sided": "no complete exchange (no user turn or no assistant turn)",
    "truncated": "agents mode: the first answer ran out of --max-tokens",
    "empty": "no messages at all",
    "role_leak": "a turn holds the other speaker's marker ([Human], User:, ...)",
    "refusal": "an assistant turn refuses or hedges as a model (\"As an AI language model\")",
    "identity": "a teacher's identity (OpenAI, ChatGPT, GPT-4, ...) on either side",
    "blocked": "a --block pattern matched",
    "short_answer": "an assistant turn shorter than --min-answer-chars",
    "repetitive": "a turn repeats or nearly repeats (a few words changed) an earlier turn of the same side",
    "template_echo": "a turn gives back the prompt's own example lines or rules instead of talking about the seed",
    "meta_turn": "a person turn talks about the conversation (\"the next question is\") instead of asking",
    "off_topic": "the dialog does not take up its seed: too few of the seed's content words",
    "duplicate": "the same text as one kept earlier (after normalization)",
    "seed_too_long": "the seed is longer than --max-seed-chars; nothing was sent",
    # corpus: web segments
    "too_short": "segment shorter than --min-chars / instruction shorter than --min-words",
    "too_long": "segment longer than --max-chars / instruction longer than --max-words",
    "empty_header": "the segment's header is empty",
    "caps_header": "the segment's header is all capitals",
    "boilerplate_header": "the header is navigation or boilerplate (advertisement, forum, quick link, ...)",
    "repeated_sentences": "the segment repeats its own sentences",
    "near_duplicate": "MinHash Jaccard at or above the threshold with one kept earlier",
    # backtranslation: the generated instruction
    "empty_instruction": "nothing left of the instruction after cleaning",
    "instruction_truncated": "the instruction ran out of --max-tokens",
    "instruction_too_long": "the instruction is longer than --max-instruction-chars",
    "copies_segment": "the instruction copies a long run of the segment's words",
    "meta_instruction": "the instruction talks about the text, answer or user (\"This text is ...\") and quotes no question",
    "restates_answer": "the instruction asks nothing and takes most of its content words from the segment",
    "not_a_request": "the instruction is a finished statement that asks nothing (\"I like eggs.\")",
    # curate: before rating
    "duplicate_id": "a record id seen earlier in the input",
    "no_instruction": "no user turn with text",
    "no_output": "no assistant turn with text",
    "not_english": "--lang en and the text does not look English",
    "contaminated_ngram": "shares at least --decontaminate-overlap of an evaluation prompt's n-grams",
    "contaminated_bleu": "sentence BLEU above --decontaminate-bleu against an evaluation prompt",
    # curate: rating and selection
    "unparsed_score": "no valid 'Score: N' after every retry",
    "below_threshold": "scored below --threshold",
    "not_top": "outside --top / --top-frac",
    # eval winrate
    "unparsed_verdict": "gen eval winrate: no valid 'Winner: 1|2|tie' in one of the two orders after a retry",
}


def meanings(reasons: Iterable[str]) -> dict[str, str]:
    """The meaning of each reason, for manifests and docs."""
    return {reason: REASONS.get(reason, "?") for reason in reasons}

