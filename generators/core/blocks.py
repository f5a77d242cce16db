"""The refusal and identity patterns every text filter shares (self-chat dialogs, curated
records), and how a set of them is compiled. A pattern matches one side of a conversation: the
assistant's turns always, the person's turns too when its reason is in BOTH_SIDES (a person may
say "I'm sorry, but I can't", an assistant may not; a teacher's name is kept out of both).

Patterns are case-insensitive Python regexes, run on text made plain by
generators.core.text.normalize_quotes.
"""
from __future__ import annotations

import re
from typing import Any, Mapping, Sequence

import click

from generators.core.errors import UsageError
from generators.core.filtering import FilterBase
from generators.core.text import normalize_quotes

_CANT = r"I(?: cannot| can't| can not| won't| will not|'m unable| am unable|'m not able| am not able)\b"

DEFAULT_BLOCK_PATTERNS: dict[str, list[str]] = {
    "refusal": [
        r"\bas an? (?:ai|artificial intelligence)(?: language)? (?:model|assistant)\b",
        r"\bas a (?:large )?language model\b",
        rf"\b(?:I(?: am|'m) )?(?:very |so |truly )?sorry,? but (?:as an ai,? )?{_CANT}",
        r"\bI(?: am|'m) (?:unable|not able) to (?:provide|help|assist|answer|fulfill|comply|generate)\b",
        r"\bI (?:cannot|can't|can not) (?:provide|fulfill|comply with|assist with|help with) "
        r"(?:that|this|your|such)\b",
    ],
    "identity": [
        r"\bopen ?ai\b",
        r"\bchat ?gpt\b",
        r"\bgpt-?(?:3(?:\.5)?|4)\w*",
        r"\blanguage model (?:developed|trained|created|built|made) by\b",
        r"\bI(?: am|'m) an ai(?: language)? (?:assistant|model) (?:created|developed|trained|made|built)\b",
    ],
}
EXTRA_REASON = "blocked"
BOTH_SIDES = frozenset({"identity", EXTRA_REASON})
SEP = "\n\x00\n"  # joins turns: matches no pattern and no marker, so a match never spans two turns


def joined_sides(turns: Sequence[dict[str, str]]) -> dict[str, str]:
    """The assistant's turns and everyone else's, each made plain and joined (one search per side)."""
    return {"user": SEP.join(normalize_quotes(m["content"]) for m in turns if m["role"] != "assistant"),
            "assistant": SEP.join(normalize_quotes(m["content"]) for m in turns if m["role"] == "assistant")}


def _alternation(patterns: list[str]) -> re.Pattern[str] | None:
    return re.compile("|".join(f"(?:{p})" for p in patterns), re.IGNORECASE) if patterns else None


def compile_block_patterns(block_patterns: Mapping[str, Sequence[str]],
                           both_sides: frozenset[str] | set[str]) -> list[tuple[str, re.Pattern[str], bool]]:
    """(reason, one compiled alternation of its patterns, applies to user turns too) per reason;
    a pattern that is no regex is a one-line UsageError naming it."""
    blocks = []
    for reason, patterns in block_patterns.items():
        if not patterns:
            continue
        for pattern in patterns:
            try:
                re.compile(pattern)
            except re.error as exc:
                raise UsageError(f"block pattern {pattern!r} is not a valid regex ({exc}); fix --block") from None
        blocks.append((reason, _alternation(list(patterns)), reason in both_sides))
    return blocks  # type: ignore[return-value]


class BlockPatterns(FilterBase):
    """refusal / identity / blocked: pattern lists, each reason on the assistant side or both."""

    name = "block_patterns"
    reasons = {"refusal": "an assistant turn refuses or hedges as a model (\"As an AI language model\")",
               "identity": "a teacher's identity (OpenAI, ChatGPT, GPT-4, ...) on either side",
               EXTRA_REASON: "a --block pattern matched"}  # the keys of DEFAULT_BLOCK_PATTERNS, then EXTRA_REASON
    options = (
        click.option("--block", "block", multiple=True, metavar="REGEX",
                     help="Extra pattern that rejects a dialog (reason 'blocked'); repeatable."),
        click.option("--no-default-filters", is_flag=True, help="Drop the built-in refusal/identity patterns."),
    )

    def __init__(self, patterns: Mapping[str, Sequence[str]] | None = None,
                 both_sides: frozenset[str] = BOTH_SIDES) -> None:
        self.patterns = {k: list(v) for k, v in (DEFAULT_BLOCK_PATTERNS if patterns is None else patterns).items()}
        self.both_sides = both_sides
        self._blocks = compile_block_patterns(self.patterns, both_sides)
        # Fast path: one search per side finds out whether ANY pattern matches; only then are the
        # reasons checked one by one (in order) to name the right one.
        every = [p for ps in self.patterns.values() for p in ps]
        both = [p for reason, ps in self.patterns.items() if reason in both_sides for p in ps]
        self._any_assistant = _alternation(every)
        self._any_user = _alternation(both)

    @classmethod
    def from_options(cls, values: Mapping[str, Any]) -> "BlockPatterns":
        patterns = {} if values["no_default_filters"] else {k: list(v) for k, v in DEFAULT_BLOCK_PATTERNS.items()}
        if values["block"]:
            patterns[EXTRA_REASON] = [*patterns.get(EXTRA_REASON, []), *values["block"]]
        return cls(patterns)

    def settings(self) -> dict[str, Any]:
        return {"patterns": self.patterns, "both_sides": sorted(self.both_sides)}

    def sides(self, subject: Any) -> dict[str, str]:
        """The subject's user and assistant text, prepared and joined per side."""
        return subject.sides

    def check(self, subject: Any) -> str | None:
        sides = self.sides(subject)
        if not ((self._any_assistant and self._any_assistant.search(sides["assistant"]))
                or (self._any_user and self._any_user.search(sides["user"]))):
            return None
        for reason, regex, both in self._blocks:
            if regex.search(sides["assistant"]) or (both and regex.search(sides["user"])):
                return reason
        return None
