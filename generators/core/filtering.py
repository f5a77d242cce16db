"""One shape for every filter, the chain that runs them, and the one list of the reasons they give.

A filter is one small class: a `name`, the `reasons` it can give, and `check(subject) -> reason
or None`. The subject is whatever the stage judges: a dialog (self-chat), an instruction
candidate (backtranslation), a record (curate), a web segment (corpus). Dedup and
decontamination are filters too: they remember what they passed (`remembers = True`, and
`remember(subject)` primes them with what an earlier session kept). `FilterChain` runs a list of
them in order (the first reason wins) and counts every verdict.

A filter class declares its own flags (`options`, click decorators) and how it is built from the
parsed values (`from_options`), so a command adds every filter flag of a family with one
`filter_options(FAMILY)` and builds the chain with `build_chain(FAMILY, values)`.

REASONS is the catalogue: every reason a stage writes into `reject` or a manifest, with what it
means. Manifests take their reason meanings from here, docs/filters.md carries the same table
(a test compares them), and a test checks that no filter gives a reason missing from it.
"""
from __future__ import annotations

import dataclasses
from collections import Counter
from typing import Any, Callable, ClassVar, Generic, Iterable, Mapping, Protocol, Sequence, TypeVar, runtime_checkable

S = TypeVar("S", contravariant=True)
T = TypeVar("T")
Decorator = Callable[[Callable[..., Any]], Callable[..., Any]]


@runtime_checkable
class Filter(Protocol[S]):
    name: str
    reasons: tuple[str, ...]

    def check(self, subject: S) -> str | None:
        """None to pass the subject on, else the reason it is dropped."""


class FilterBase:
    """What a filter class may declare beyond the `Filter` shape: its flags, how it is built from
    them, its settings for the manifest, and a dedup memory. Subclasses set `name`, `reasons`
    and `check`; the defaults here are a filter with no flags and no memory."""

    name: ClassVar[str]
    reasons: ClassVar[tuple[str, ...]]
    options: ClassVar[tuple[Decorator, ...]] = ()   # click.option(...) decorators of its flags
    remembers: ClassVar[bool] = False                # True: its verdict depends on earlier subjects

    @classmethod
    def from_options(cls, values: Mapping[str, Any]) -> "FilterBase | None":
        """The filter as the parsed flags ask for it; None when they turn it off."""
        return cls()

    def settings(self) -> dict[str, Any]:
        """Plain JSON-able settings, for the manifest (not the fingerprint: filters decide what is
        kept, not what is asked): a dataclass filter's fields, else none."""
        return dataclasses.asdict(self) if dataclasses.is_dataclass(self) else {}

    def remember(self, subject: Any) -> None:
        """Prime the memory with a subject an earlier session kept (dedup filters)."""


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

    def remember(self, subject: T) -> None:
        for flt in self.filters:
            if getattr(flt, "remembers", False):
                flt.remember(subject)  # type: ignore[attr-defined]

    def settings(self) -> dict[str, Any]:
        """{filter name: its settings} for the manifest: what the last judgement used."""
        return {f.name: (f.settings() if hasattr(f, "settings") else {}) for f in self.filters}  # type: ignore[attr-defined]

    def split(self) -> tuple["FilterChain[T]", "FilterChain[T]"]:
        """(the filters that judge a subject alone, the ones that remember earlier subjects): the
        first part may run anywhere (model replicas), the second where every verdict is seen."""
        alone = [f for f in self.filters if not getattr(f, "remembers", False)]
        memory = [f for f in self.filters if getattr(f, "remembers", False)]
        if self.filters != alone + memory:
            raise ValueError("filters that remember must come last in a chain that is split")
        return FilterChain(alone), FilterChain(memory)


def option_names(family: Iterable[type]) -> list[str]:
    """The keyword names of every flag the family's classes declare."""
    def probe() -> None: ...
    for cls in family:
        for option in getattr(cls, "options", ()):
            option(probe)
    return [param.name for param in getattr(probe, "__click_params__", [])]


def filter_options(family: Iterable[type]) -> Decorator:
    """Every flag of a family of filter classes, as one click decorator (in the family's order)."""
    decorators = [option for cls in family for option in getattr(cls, "options", ())]

    def apply(func: Callable[..., Any]) -> Callable[..., Any]:
        for option in reversed(decorators):
            func = option(func)
        return func
    return apply


def filter_values(family: Iterable[type], kwargs: dict[str, Any]) -> dict[str, Any]:
    """The family's flag values, popped from a command's keyword arguments."""
    return {name: kwargs.pop(name) for name in option_names(family) if name in kwargs}


def build_chain(family: Iterable[type], values: Mapping[str, Any] | None = None) -> FilterChain[Any]:
    """The chain of a family as the parsed flag values ask for it (defaults where none given)."""
    defaults = _defaults(family)
    given = {**defaults, **(values or {})}
    built = [cls.from_options(given) for cls in family]  # type: ignore[attr-defined]
    return FilterChain([f for f in built if f is not None])


def _defaults(family: Iterable[type]) -> dict[str, Any]:
    import click

    @filter_options(family)
    @click.command()
    def probe(**_: Any) -> None: ...
    return dict(probe.make_context("probe", []).params)  # what the flags give when none is passed


def family_reasons(family: Iterable[type]) -> tuple[str, ...]:
    """Every reason some class of the family can give, in order."""
    return tuple(dict.fromkeys(r for cls in family for r in cls.reasons))  # type: ignore[attr-defined]


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


def reasons_table() -> str:
    """REASONS as the Markdown table docs/filters.md carries (a unit test compares the two)."""
    pipe = "\\|"  # a | inside a cell
    rows = [f"| `{reason}` | {meaning.replace('|', pipe)} |" for reason, meaning in REASONS.items()]
    return "\n".join(["| reason | meaning |", "|---|---|", *rows])
