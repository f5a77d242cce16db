"""One shape for every filter, the chain that runs them, and the one list of the reasons they give.

A filter is one small class: a `name`, the `reasons` it can give with what each means
(`{reason: meaning}`; iterating it gives the names), and `check(subject) -> reason or None`.
The subject is whatever the stage judges: a dialog (self-chat), an instruction candidate
(backtranslation), a record (curate), a web segment (corpus). Dedup and
decontamination are filters too: they remember what they passed (`remembers = True`, and
`remember(subject)` primes them with what an earlier session kept). `FilterChain` runs a list of
them in order (the first reason wins) and counts every verdict.

A filter class declares its own flags (`options`, click decorators) and how it is built from the
parsed values (`from_options`), so a command adds every filter flag of a family with one
`filter_options(FAMILY)` and builds the chain with `build_chain(FAMILY, values)`.

REASONS is the catalogue: every reason a stage writes into `reject` or a manifest, with what it
means. Each filter class enters its own reasons as it is defined (`FilterBase.__init_subclass__`;
one meaning per reason, so a clash fails at import); the few reasons no filter gives, which a
stage decides itself (STAGE_REASONS), and those several families share (SHARED_REASONS) are
written here. The core never imports a stage, so the catalogue holds the families whose modules
are loaded: in a run, the ones it judges with. Manifests take their reason meanings from here,
and docs/filters.md carries the whole table (a test that loads every family compares them).
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
    reasons: Mapping[str, str]  # reason -> what it means; iterating gives the reasons in order

    def check(self, subject: S) -> str | None:
        """None to pass the subject on, else the reason it is dropped."""


class FilterBase:
    """What a filter class may declare beyond the `Filter` shape: its flags, how it is built from
    them, its settings for the manifest, and a dedup memory. Subclasses set `name`, `reasons`
    (`{reason: meaning}`, entered in REASONS as the class is defined) and `check`; the defaults
    here are a filter with no flags and no memory."""

    name: ClassVar[str]
    reasons: ClassVar[Mapping[str, str]]
    options: ClassVar[tuple[Decorator, ...]] = ()   # click.option(...) decorators of its flags
    remembers: ClassVar[bool] = False                # True: its verdict depends on earlier subjects

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        if "reasons" in cls.__dict__:
            declare_reasons(cls.__dict__["reasons"], owner=f"{cls.__module__}.{cls.__qualname__}")

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

    def prepare(self, subject: Any) -> None:
        """Work out, where the subject is, what `check` will need of it (a dedup filter's hash and
        MinHash), so that the process holding the memory only compares; nothing by default."""


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

    def prepare(self, subject: T) -> None:
        """Every filter's `prepare`: run where the subject was read, before it travels to `check`."""
        for flt in self.filters:
            if hasattr(flt, "prepare"):
                flt.prepare(subject)  # type: ignore[attr-defined]

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


# Reasons that filters of more than one family give, each with its one meaning: a class names
# them with `shared_reasons(...)` rather than writing the meaning again.
SHARED_REASONS: dict[str, str] = {
    "duplicate": "the same text as one kept earlier (after normalization)",
    "near_duplicate": "MinHash Jaccard at or above the threshold with one kept earlier",
    "semantic_duplicate": "means the same as one kept earlier: embedding cosine at or above --semantic-threshold "
                          "and the pair test (what differs between the two texts) agrees (--semantic-dedup; "
                          "baleen[embed])",
    "too_short": "segment shorter than --min-chars / instruction shorter than --min-words",
    "too_long": "segment longer than --max-chars / instruction longer than --max-words",
}

# Reasons no filter gives: a stage decides them itself, before or after its filters.
STAGE_REASONS: dict[str, str] = {
    # gen selfchat, before the dialog filters
    "no_markers": "transcript mode: the reply has no speaker markers to split it into turns",
    "truncated": "agents mode: the first answer ran out of --max-tokens",
    "seed_too_long": "the seed is longer than --max-seed-chars; nothing was sent",
    # gen selfchat and gen backtranslate: a reasoning model ran out of tokens while thinking
    "truncated_reasoning": "the model's thinking never closed (`<think>` without `</think>`, or thinking "
                           "with no answer after it at --max-tokens), so there is no answer",
    # gen backtranslate, before a corpus document is parsed
    "doc_too_long": "the corpus document is longer than --max-doc-chars; skipped before it was parsed",
    # gen curate: rating and selection
    "unparsed_score": "no valid 'Score: N' after every retry",
    "below_threshold": "scored below --threshold",
    "not_top": "outside --top / --top-frac",
    # gen eval winrate
    "unparsed_verdict": "gen eval winrate: no valid 'Winner: 1|2|tie' in one of the two orders after a retry",
}

REASONS: dict[str, str] = {**STAGE_REASONS, **SHARED_REASONS}  # and every filter class's, as it is defined


def shared_reasons(*names: str) -> dict[str, str]:
    """{reason: meaning} of reasons several families give (SHARED_REASONS), for a class's `reasons`."""
    return {name: SHARED_REASONS[name] for name in names}


def declare_reasons(reasons: Mapping[str, str], owner: str) -> None:
    """Enter a filter class's reasons in REASONS. A reason has one meaning: one already there with
    another meaning is a mistake in the class (a TypeError at import, not a wrong manifest)."""
    if not isinstance(reasons, Mapping):
        raise TypeError(f"{owner}: reasons must be {{reason: meaning}}, not {type(reasons).__name__}")
    for reason, meaning in reasons.items():
        if not meaning:
            raise TypeError(f"{owner}: reason {reason!r} needs a meaning")
        known = REASONS.setdefault(reason, meaning)
        if known != meaning:
            raise TypeError(f"{owner}: reason {reason!r} already means {known!r}; give it that meaning "
                            "(shared_reasons) or another name")


def meanings(reasons: Iterable[str]) -> dict[str, str]:
    """The meaning of each reason, for manifests and docs."""
    return {reason: REASONS.get(reason, "?") for reason in reasons}


def reasons_table() -> str:
    """REASONS as the Markdown table docs/filters.md carries, by reason name (the order the
    families were loaded in does not show); a unit test that loads every family compares the two."""
    pipe = "\\|"  # a | inside a cell
    rows = [f"| `{reason}` | {REASONS[reason].replace('|', pipe)} |" for reason in sorted(REASONS)]
    return "\n".join(["| reason | meaning |", "|---|---|", *rows])
