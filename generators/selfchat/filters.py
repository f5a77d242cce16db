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
  template_echo a turn gives back the prompt's own example lines or its rules, or is a bare greeting
               ("Hi there!" / "Hello! What would you like to talk about?", the format example
               of Baize-style prompts): the teacher copied the example instead of talking about
               the seed (checked right after role_leak)
  meta_turn    a person turn talks about the exchange instead of asking ("You've already answered
               the first question. The next question is: ...", "Let's continue the conversation")
  repetitive   a turn that nearly repeats an earlier turn of the same side, or a person turn that
               nearly repeats the answer before it (Dice overlap of their content words >=
               repeat_threshold, so a few changed words still count): the person asks the same
               question again, parrots the answer, or the assistant says the same thing twice,
               which small teachers do a lot
  off_topic    the dialog does not take up its seed (only when the seed is known): its turns,
               leaving out a turn that only restates the seed, hold less than topic_share of the
               seed's distinct content words. Lexical, with a light stem: no embedding model is
               installed offline
  duplicate    the same dialog (normalized text of every turn) as one kept earlier, in this run or a
               resumed one (see DialogFilter.remember)
Patterns are case-insensitive Python regexes, matched after NFKC and with curly quotes made plain.
"""
from __future__ import annotations

import hashlib
import re
from collections import Counter
from dataclasses import dataclass, field, replace
from functools import lru_cache
from typing import Any, Sequence

import prompts
from generators.core.blocks import BOTH_SIDES, DEFAULT_BLOCK_PATTERNS, EXTRA_REASON, compile_block_patterns
from generators.core.errors import UsageError
from generators.core.text import (content_words, coverage, dice, normalize_quotes, normalize_text, similarity,
                                  words)
from generators.selfchat.parser import MARKER_RE

REPEAT_MIN_WORDS = 4  # shorter turns repeat only when their normalized text is the same


@dataclass
class DialogFilterConfig:
    min_answer_chars: int = 20          # any assistant turn shorter -> "short_answer"
    block_patterns: dict[str, list[str]] = field(
        default_factory=lambda: {k: list(v) for k, v in DEFAULT_BLOCK_PATTERNS.items()})
    role_leak: bool = True              # a turn holding a speaker marker -> "role_leak"
    repeat_threshold: float = 0.8       # a turn this similar to an earlier same-side turn -> "repetitive"
    topic_share: float = 0.5            # share of the seed's content words a dialog must take up
    template_echo: bool = True          # a turn echoing the prompt's example lines -> "template_echo"
    meta_turns: bool = True             # a person turn about the conversation -> "meta_turn"
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
                "topic_share": self.topic_share, "template_echo": self.template_echo,
                "meta_turns": self.meta_turns, "both_sides": sorted(self.both_sides)}


_SEP = "\n\x00\n"


class DialogFilter:
    """Checks dialogs (their messages) one by one; remembers the kept ones so repeats are caught."""

    name = "dialog"
    reasons = ("empty", "one_sided", "role_leak", "template_echo", *DEFAULT_BLOCK_PATTERNS, EXTRA_REASON,
               "short_answer", "meta_turn", "repetitive", "off_topic", "duplicate")

    def __init__(self, config: DialogFilterConfig) -> None:
        if config.min_answer_chars < 0:
            raise UsageError(f"--min-answer-chars {config.min_answer_chars}: must be 0 or more")
        if not 0.0 <= config.topic_share <= 1.0:
            raise UsageError(f"topic share {config.topic_share}: must be in [0, 1]")
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

    def check(self, messages: list[dict[str, str]], seed: str | None = None) -> str | None:
        """None to keep the dialog (and remember it), else the reason to drop it. Without the
        seed, off_topic is not checked."""
        reason = self.check_content(messages, seed)
        if reason is None and self.is_duplicate(messages):
            return "duplicate"
        return reason

    def check_content(self, messages: list[dict[str, str]], seed: str | None = None) -> str | None:
        """Every check that looks at this dialog alone (not `duplicate`, which needs every dialog
        seen so far: with --executor ray it runs where the lines are written)."""
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
        if self.config.template_echo and any(echoes_template(m["content"]) for m in turns):
            return "template_echo"
        sides = {role: _SEP.join(normalize_quotes(m["content"]) for m in turns if m["role"] == role)
                 for role in ("user", "assistant")}
        if ((self._any_assistant and self._any_assistant.search(sides["assistant"]))
                or (self._any_user and self._any_user.search(sides["user"]))):
            for reason, regex, both in self._blocks:
                if regex.search(sides["assistant"]) or (both and regex.search(sides["user"])):
                    return reason
        if any(m["role"] == "assistant" and len(m["content"].strip()) < self.config.min_answer_chars
               for m in turns):
            return "short_answer"
        if self.config.meta_turns and any(m["role"] == "user" and is_meta_turn(m["content"]) for m in turns):
            return "meta_turn"
        if self.config.repeat_threshold < 1 and _repeats_itself(turns, self.config.repeat_threshold):
            return "repetitive"
        if seed is not None and off_topic(seed, turns, self.config.topic_share):
            return "off_topic"
        return None

    def is_duplicate(self, messages: list[dict[str, str]]) -> bool:
        """True when the same dialog was kept before; else remember this one."""
        if not self.config.dedup:
            return False
        key = _dialog_key([(m["role"], normalize_text(m["content"])) for m in messages
                           if m.get("role") in ("user", "assistant")])
        if key in self._seen:
            return True
        self._seen.add(key)
        return False

    def remember(self, messages: list[dict[str, str]]) -> None:
        """Prime dedup with a dialog kept by an earlier run that this one resumes."""
        if self.config.dedup:
            self._seen.add(_dialog_key([(m["role"], normalize_text(m["content"])) for m in messages
                                        if m.get("role") in ("user", "assistant")]))


def _dialog_key(turns: list[tuple[str, str]]) -> str:
    """Hash of (role, normalized text) of every turn."""
    blob = "\x1e".join(f"{role}\x1f{text}" for role, text in turns)
    return hashlib.sha256(blob.encode("utf-8")).hexdigest()


def _repeats_itself(turns: list[dict[str, str]], threshold: float) -> bool:
    """True when some turn nearly repeats an earlier one by the same speaker, or a person turn
    nearly repeats the answer just before it (a small "person" model often parrots it): the
    same words, or (for turns of at least REPEAT_MIN_WORDS content words, so "And in children?"
    may follow "What about children?") the same content words with a few changed (Dice >=
    threshold)."""
    earlier: dict[str, list[tuple[str, Counter[str]]]] = {"user": [], "assistant": []}

    def near(a: tuple[str, Counter[str]], b: tuple[str, Counter[str]]) -> bool:
        return a[0] == b[0] or (min(sum(a[1].values()), sum(b[1].values())) >= REPEAT_MIN_WORDS
                                and dice(a[1], b[1]) >= threshold)

    last_answer: tuple[str, Counter[str]] | None = None
    for turn in turns:
        this = (normalize_text(turn["content"]), Counter(content_words(turn["content"])))
        if any(near(this, other) for other in earlier[turn["role"]]):
            return True
        if turn["role"] == "user" and last_answer is not None and near(this, last_answer):
            return True
        earlier[turn["role"]].append(this)
        if turn["role"] == "assistant":
            last_answer = this
    return False


# -- off_topic -----------------------------------------------------------------------------

def off_topic(seed: str, turns: list[dict[str, str]], share: float) -> bool:
    """The dialog takes up less than `share` of the seed's distinct content words. A turn that
    only restates the seed (agents mode opens with it) does not count: the rest of the dialog
    must take the topic up. A seed with no content word ("Hi!") cannot be off."""
    wanted = list(set(content_words(seed)))
    if not wanted or share <= 0:
        return False
    key = normalize_text(seed)
    rest = " ".join(m["content"] for m in turns if normalize_text(m["content"]) != key)
    return coverage(wanted, rest) < share


# -- template_echo -------------------------------------------------------------------------

_TEMPLATE_GLOB = "selfchat_*.j2"


@lru_cache(maxsize=1)
def _template_lines() -> tuple[frozenset[str], tuple[str, ...]]:
    """(example lines, rule sentences) of the self-chat prompts, rendered with empty variables:
    the lines a model echoes when it copies the prompt instead of writing a dialog."""
    examples: set[str] = set()
    rules: list[str] = []
    for path in sorted(prompts.PROMPTS_DIR.glob(_TEMPLATE_GLOB)):
        name = path.stem
        try:
            text = prompts.render(name, **{v: "" for v in prompts.variables(name)})
        except Exception:  # noqa: BLE001 - a template that needs structured variables has no example lines to echo
            continue
        for line in text.splitlines():
            marker = MARKER_RE.match(line.strip())
            if marker:
                examples.add(normalize_text(line.strip()[marker.end():]))
            else:
                rules.extend(s for s in re.split(r"(?<=[.!?])\s+", line.strip("- ").strip())
                             if len(content_words(s)) >= 4)
    return frozenset(e for e in examples if e), tuple(rules)


_GREETING_OPENERS = frozenset({"hi", "hello", "hey", "greetings"})
_GREETING_WORDS = frozenset(content_words("there talk chat help today discuss assist welcome nice meet "
                                          "anything something topic day"))


def is_bare_greeting(text: str) -> bool:
    """A greeting with nothing else in it ("Hi there!", "Hello! What would you like to talk
    about?"): the format example of Baize-style prompts, this project's earlier one included."""
    opening = words(text)[:1]
    return bool(opening) and opening[0] in _GREETING_OPENERS and not set(content_words(text)) - _GREETING_WORDS


def echoes_template(text: str) -> bool:
    """The turn is a prompt example line (after normalization) or a bare greeting, or nearly one
    of the prompt's rules."""
    examples, rules = _template_lines()
    if normalize_text(text) in examples or is_bare_greeting(text):
        return True
    return len(content_words(text)) >= 4 and any(similarity(text, rule) >= 0.8 for rule in rules)


# -- meta_turn -----------------------------------------------------------------------------

_META_TURN = re.compile("|".join(f"(?:{p})" for p in (
    r"\b(?:the|your|my|our)\s+(?:first|next|previous|last|second|third|following|original|other)\s+"
    r"questions?\s+(?:is|was|would be|has been|will be)\b",
    r"\byou(?:'ve| have)\s+(?:already\s+)?(?:answered|addressed|covered|responded to)\s+"
    r"(?:the|my|this|that|all)\b",
    r"\b(?:this|our|the)\s+(?:conversation|dialog(?:ue)?|chat|exchange|transcript)\s+"
    r"(?:is|was|has|will|should|continues|ends)\b",
    r"\b(?:let's|let us)\s+(?:continue|move on|go on|keep going|end|start)\b.*\b(?:conversation|"
    r"question|dialog(?:ue)?|chat|topic)\b",
    r"\bas\s+(?:the|a)\s+(?:person|human|user)\b",
    r"^\s*(?:next|follow-up|another)\s+question\s*:",
    r"\b(?:a|the)\s+continuation\s+of\s+(?:your|the|my|this|our)\s+(?:question|conversation|answer|chat)\b",
    r"\b(?:ask|asking)\s+(?:you\s+)?(?:a|the|my)\s+(?:next|new|follow-up|another)\s+question\s*:",
)), re.IGNORECASE)


def is_meta_turn(text: str) -> bool:
    """A person turn about the conversation itself rather than a question or a remark."""
    return bool(_META_TURN.search(normalize_quotes(text)))
