"""The refusal and identity patterns every text filter shares (self-chat dialogs, curated
records), and how a set of them is compiled. A pattern matches one side of a conversation: the
assistant's turns always, the person's turns too when its reason is in BOTH_SIDES (a person may
say "I'm sorry, but I can't", an assistant may not; a teacher's name is kept out of both).

Patterns are case-insensitive Python regexes, run on text made plain by
generators.core.text.normalize_quotes.
"""
from __future__ import annotations

import re

from generators.core.errors import UsageError

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


def compile_block_patterns(block_patterns: dict[str, list[str]],
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
        joined = re.compile("|".join(f"(?:{p})" for p in patterns), re.IGNORECASE)
        blocks.append((reason, joined, reason in both_sides))
    return blocks
