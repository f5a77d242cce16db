"""Drop dialogs not worth training on, with a reason code for each (Baize filtered nothing).

Reasons, in the order they are checked:
  empty        no messages
  one_sided    no user turn or no assistant turn
  role_leak    a turn holds a speaker marker ([Human], [|AI|], a line starting "User:", ...): the
               model wrote the other side's lines, or the parser was fooled
  refusal      an assistant turn refuses or hedges as a model ("As an AI language model", "I'm sorry,
               but I cannot", "I am unable to provide"); checked on assistant turns only, since a
               person may well say "I'm sorry, but I can't make it"
  identity     the teacher's identity leaks (OpenAI, ChatGPT, GPT-3/3.5/4, "a language model trained
               by", "I am an AI assistant created by"); checked on BOTH sides, as Koala did, because a
               question about ChatGPT invites an answer about the teacher, which we must not train
               a different model to repeat. The cost: seeds about these products yield nothing.
  blocked      a pattern the user added (--block); checked on both sides
  short_answer an assistant turn shorter than min_answer_chars (after stripping)
  repetitive   a turn that repeats an earlier turn of the same side (word-trigram Jaccard >=
               repeat_threshold): the person asks the same question again or the assistant says
               the same thing twice, which small teachers do a lot
  duplicate    the same dialog (normalized text of every turn) as one kept earlier, in this run or a
               resumed one (see DialogFilter.remember)
Patterns are case-insensitive Python regexes, matched after NFKC and with curly quotes made plain.
"""
from __future__ import annotations

import hashlib
import re
import unicodedata
from dataclasses import dataclass, field, replace
from typing import Any, Sequence

from ..errors import UsageError
from ..seeds import normalize_text
from .parser import MARKER_RE

_APOSTROPHES = str.maketrans({"\u2019": "'", "\u2018": "'", "\u02bc": "'", "\u201c": '"', "\u201d": '"'})
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


@dataclass
class DialogFilterConfig:
    min_answer_chars: int = 20          # any assistant turn shorter -> "short_answer"
    block_patterns: dict[str, list[str]] = field(
        default_factory=lambda: {k: list(v) for k, v in DEFAULT_BLOCK_PATTERNS.items()})
    role_leak: bool = True              # a turn holding a speaker marker -> "role_leak"
    repeat_threshold: float = 0.8       # a turn this similar to an earlier same-side turn -> "repetitive"
    dedup: bool = True                  # a dialog repeating an earlier one -> "duplicate"
    both_sides: frozenset[str] = BOTH_SIDES  # reasons whose patterns also apply to user turns

    @classmethod
    def with_overrides(cls, *, min_answer_chars: int | None = None, extra_block: Sequence[str] = (),
                       drop_defaults: bool = False, no_dedup: bool = False) -> "DialogFilterConfig":
        """Defaults changed by CLI flags: --min-answer-chars, --block REGEX (reason "blocked"),
        --no-default-blocks, --no-dedup."""
        config = cls()
        if min_answer_chars is not None:
            config = replace(config, min_answer_chars=min_answer_chars)
        patterns = {} if drop_defaults else config.block_patterns
        if extra_block:
            patterns = {**patterns, EXTRA_REASON: [*patterns.get(EXTRA_REASON, []), *extra_block]}
        return replace(config, block_patterns=patterns, dedup=not no_dedup)

    def describe(self) -> dict[str, Any]:
        """Plain JSON-able settings, for the manifest and the run fingerprint."""
        return {"min_answer_chars": self.min_answer_chars,
                "block_patterns": {k: list(v) for k, v in self.block_patterns.items()},
                "role_leak": self.role_leak, "dedup": self.dedup, "repeat_threshold": self.repeat_threshold,
                "both_sides": sorted(self.both_sides)}


_SEP = "\n\x00\n"


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


def _prepare(text: str) -> str:
    return unicodedata.normalize("NFKC", text).translate(_APOSTROPHES)


class DialogFilter:
    """Checks dialogs (their messages) one by one; remembers the kept ones so repeats are caught."""

    name = "dialog"
    reasons = ("empty", "one_sided", "role_leak", *DEFAULT_BLOCK_PATTERNS, EXTRA_REASON, "short_answer",
               "repetitive", "duplicate")

    def __init__(self, config: DialogFilterConfig) -> None:
        if config.min_answer_chars < 0:
            raise UsageError(f"--min-answer-chars {config.min_answer_chars}: must be 0 or more")
        self.config = config
        self._blocks = compile_block_patterns(config.block_patterns, config.both_sides)
        # Fast path: one search per side finds out whether ANY pattern matches; only then are the
        # reasons checked one by one (in order) to name the right one.
        every = [p for patterns in config.block_patterns.values() for p in patterns]
        both = [p for reason, patterns in config.block_patterns.items() if reason in config.both_sides
                for p in patterns]
        self._any_assistant = re.compile("|".join(f"(?:{p})" for p in every), re.IGNORECASE) if every else None
        self._any_user = re.compile("|".join(f"(?:{p})" for p in both), re.IGNORECASE) if both else None
        self._seen: set[str] = set()

    def check(self, messages: list[dict[str, str]]) -> str | None:
        """None to keep the dialog (and remember it), else the reason to drop it."""
        turns = [m for m in messages if m.get("role") in ("user", "assistant")]
        if not turns:
            return "empty"
        roles = {m["role"] for m in turns}
        if roles != {"user", "assistant"}:
            return "one_sided"
        # Turns are searched joined (one search, not one per turn); the separator line can match no
        # pattern and no marker, so a match never spans two turns.
        if self.config.role_leak and MARKER_RE.search(_SEP.join(m["content"] for m in turns)):
            return "role_leak"
        sides = {role: _SEP.join(_prepare(m["content"]) for m in turns if m["role"] == role)
                 for role in ("user", "assistant")}
        if ((self._any_assistant and self._any_assistant.search(sides["assistant"]))
                or (self._any_user and self._any_user.search(sides["user"]))):
            for reason, regex, both in self._blocks:
                if regex.search(sides["assistant"]) or (both and regex.search(sides["user"])):
                    return reason
        if any(m["role"] == "assistant" and len(m["content"].strip()) < self.config.min_answer_chars
               for m in turns):
            return "short_answer"
        normalized = [(m["role"], normalize_text(m["content"])) for m in turns]
        if self.config.repeat_threshold < 1 and _repeats_itself(normalized, self.config.repeat_threshold):
            return "repetitive"
        if self.config.dedup:
            key = _dialog_key(normalized)
            if key in self._seen:
                return "duplicate"
            self._seen.add(key)
        return None

    def remember(self, messages: list[dict[str, str]]) -> None:
        """Prime dedup with a dialog kept by an earlier run that this one resumes."""
        if self.config.dedup:
            self._seen.add(_dialog_key([(m["role"], normalize_text(m["content"])) for m in messages
                                        if m.get("role") in ("user", "assistant")]))


def _dialog_key(turns: list[tuple[str, str]]) -> str:
    """Hash of (role, normalized text) of every turn."""
    blob = "\x1e".join(f"{role}\x1f{text}" for role, text in turns)
    return hashlib.sha256(blob.encode("utf-8")).hexdigest()


def _trigrams(normalized: str) -> set[tuple[str, ...]]:
    words = normalized.split()
    return {tuple(words[i:i + 3]) for i in range(max(1, len(words) - 2))}


def _repeats_itself(turns: list[tuple[str, str]], threshold: float) -> bool:
    """True when some (role, normalized text) turn is a near-copy of an earlier one by the same speaker."""
    earlier: dict[str, list[set[tuple[str, ...]]]] = {"user": [], "assistant": []}
    for role, text in turns:
        grams = _trigrams(text)
        for other in earlier[role]:
            union = len(grams | other)
            if union and len(grams & other) / union >= threshold:
                return True
        earlier[role].append(grams)
    return False
