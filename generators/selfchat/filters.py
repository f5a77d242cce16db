"""The dialog filters: which self-chat dialogs are worth training on (Baize filtered nothing).

Each check is one small class of the `generators.core.filtering` shape; DIALOG_FILTERS lists
them in the order they run, and the first reason wins:

  Empty           empty         no messages
  OneSided        one_sided     no user turn or no assistant turn
  RoleLeak        role_leak     a turn holds a speaker marker ([Human], [|AI|], a line starting
                                "User:", ...): the model wrote the other side's lines
  TemplateEcho    template_echo a turn gives back the prompt's own example lines or its rules, or is
                                a bare greeting ("Hi there!"): the teacher copied the example
  BlockPatterns   refusal       an assistant turn refuses or hedges as a model ("As an AI language
                                model", "I'm sorry, but I cannot"); assistant turns only, since a
                                person may well say "I'm sorry, but I can't make it"
                  identity      the teacher's identity (OpenAI, ChatGPT, GPT-3/3.5/4, ...), on BOTH
                                sides as Koala did: a question about ChatGPT invites an answer about
                                the teacher, which a different model must not learn to repeat
                  blocked       a --block pattern, on both sides (--no-default-filters drops the
                                refusal and identity patterns)
  ShortAnswer     short_answer  an assistant turn shorter than --min-answer-chars
  MetaTurn        meta_turn     a person turn about the exchange instead of asking ("The next
                                question is: ...", "Let's continue the conversation")
  Repetitive      repetitive    a turn nearly repeating an earlier turn of the same side, or a person
                                turn parroting the answer before it (Dice overlap of content words)
  OffTopic        off_topic     the dialog does not take up its seed: lexical (content words, with a
                                light stem), or with --topic-by-meaning the cosine of the dialog's
                                embedding and the seed's (baleen[embed]); only when the seed is known
  DuplicateDialogs duplicate    the same dialog (normalized turns) as one kept earlier, in this run
                                or an earlier session (--keep-duplicates turns it off)
  SemanticOpenings semantic_duplicate  with --semantic-dedup: the opening question means the same
                                as one kept earlier (embedding cosine >= --semantic-threshold, then
                                the margin and the pair test of generators/core/same_meaning.py)

Patterns are case-insensitive Python regexes, matched after NFKC and with curly quotes made plain.
A new check is one class here and one entry in DIALOG_FILTERS (its flags are declared on it).
"""
from __future__ import annotations

import hashlib
import re
from collections import Counter
from dataclasses import dataclass
from functools import cached_property, lru_cache
from typing import Any, Mapping, Sequence

import click

import prompts
from generators.core.embeddings import TOPIC_THRESHOLD, EmbedSettings, Embeddings, SemanticDedup
from generators.core.errors import UsageError
from generators.core.blocks import SEP, BlockPatterns, joined_sides
from generators.core.filtering import FilterBase, FilterChain, build_chain, family_reasons, shared_reasons
from generators.core.text import content_words, coverage, dice, normalize_quotes, normalize_text, similarity, words
from generators.selfchat.parser import MARKER_RE

REPEAT_MIN_WORDS = 4  # shorter turns repeat only when their normalized text is the same


@dataclass
class Chat:
    """The subject of the dialog filters: a dialog's messages and, when known, its seed."""

    messages: Sequence[dict[str, str]]
    seed: str | None = None

    @cached_property
    def turns(self) -> list[dict[str, str]]:
        return [m for m in self.messages if m.get("role") in ("user", "assistant")]

    @cached_property
    def sides(self) -> dict[str, str]:
        """Each side's turns, prepared and joined (one search per side, not one per turn)."""
        return joined_sides(self.turns)


# -- the filters, in the order they run ---------------------------------------------------------

class Empty(FilterBase):
    name = "empty"
    reasons = {"empty": "no messages at all"}

    def check(self, chat: Chat) -> str | None:
        return None if chat.turns else "empty"


class OneSided(FilterBase):
    name = "one_sided"
    reasons = {"one_sided": "no complete exchange (no user turn or no assistant turn)"}

    def check(self, chat: Chat) -> str | None:
        return None if {m["role"] for m in chat.turns} == {"user", "assistant"} else "one_sided"


class RoleLeak(FilterBase):
    name = "role_leak"
    reasons = {"role_leak": "a turn holds the other speaker's marker ([Human], User:, ...)"}

    def check(self, chat: Chat) -> str | None:
        return "role_leak" if MARKER_RE.search(SEP.join(m["content"] for m in chat.turns)) else None


class TemplateEcho(FilterBase):
    name = "template_echo"
    reasons = {"template_echo": "a turn gives back the prompt's own example lines or rules instead of talking about "
                                "the seed"}

    def check(self, chat: Chat) -> str | None:
        return "template_echo" if any(echoes_template(m["content"]) for m in chat.turns) else None


class ShortAnswer(FilterBase):
    name = "short_answer"
    reasons = {"short_answer": "an assistant turn shorter than --min-answer-chars"}
    options = (click.option("--min-answer-chars", type=click.IntRange(0), default=20, show_default=True,
                            help="Reject dialogs with an assistant turn shorter than this."),)

    def __init__(self, min_chars: int = 20) -> None:
        if min_chars < 0:
            raise UsageError(f"--min-answer-chars {min_chars}: must be 0 or more")
        self.min_chars = min_chars

    @classmethod
    def from_options(cls, values: Mapping[str, Any]) -> "ShortAnswer":
        return cls(values["min_answer_chars"])

    def settings(self) -> dict[str, Any]:
        return {"min_chars": self.min_chars}

    def check(self, chat: Chat) -> str | None:
        short = any(m["role"] == "assistant" and len(m["content"].strip()) < self.min_chars for m in chat.turns)
        return "short_answer" if short else None


class MetaTurn(FilterBase):
    name = "meta_turn"
    reasons = {"meta_turn": "a person turn talks about the conversation (\"the next question is\") instead of asking"}

    def check(self, chat: Chat) -> str | None:
        return "meta_turn" if any(m["role"] == "user" and is_meta_turn(m["content"]) for m in chat.turns) else None


class Repetitive(FilterBase):
    name = "repetitive"
    reasons = {"repetitive": "a turn repeats or nearly repeats (a few words changed) an earlier turn of the same "
                             "side"}

    def __init__(self, threshold: float = 0.8) -> None:
        self.threshold = threshold  # Dice overlap of content words that counts as a repeat; 1 turns it off

    def settings(self) -> dict[str, Any]:
        return {"threshold": self.threshold}

    def check(self, chat: Chat) -> str | None:
        return "repetitive" if self.threshold < 1 and _repeats_itself(chat.turns, self.threshold) else None


class OffTopic(FilterBase):
    name = "off_topic"
    reasons = {"off_topic": "the dialog does not take up its seed: too few of the seed's content words (or, with "
                            "--topic-by-meaning, embedding cosine with the seed below --topic-threshold)"}
    options = (
        click.option("--topic-by-meaning", is_flag=True,
                     help="off_topic by meaning: the dialog's embedding against the seed's (needs baleen[embed]; "
                          "without it the content-word check stays the default)."),
        click.option("--topic-threshold", type=click.FloatRange(-1, 1), default=TOPIC_THRESHOLD, show_default=True,
                     help="With --topic-by-meaning: cosine below which a dialog is off its seed (calibrated; "
                          "docs/embeddings.md)."),
    )

    def __init__(self, share: float = 0.5, *, embeddings: Embeddings | None = None,
                 threshold: float = TOPIC_THRESHOLD) -> None:
        if not 0.0 <= share <= 1.0:
            raise UsageError(f"topic share {share}: must be in [0, 1]")
        self.share = share  # of the seed's content words a dialog must take up
        self.embeddings = embeddings  # by meaning when set
        self.threshold = threshold

    @classmethod
    def from_options(cls, values: Mapping[str, Any]) -> "OffTopic":
        if not values.get("topic_by_meaning"):
            return cls()
        embeddings = values.get("embeddings") or Embeddings(EmbedSettings(), None)
        embeddings.check_installed("--topic-by-meaning")
        return cls(embeddings=embeddings, threshold=values["topic_threshold"])

    def settings(self) -> dict[str, Any]:
        if self.embeddings is not None:
            return {"by": "meaning", "model": self.embeddings.model, "threshold": self.threshold}
        return {"share": self.share}

    def check(self, chat: Chat) -> str | None:
        if chat.seed is None:
            return None
        if self.embeddings is not None:
            return "off_topic" if topic_cosine(self.embeddings, chat.seed, chat.turns) < self.threshold else None
        return "off_topic" if off_topic(chat.seed, chat.turns, self.share) else None


class DuplicateDialogs(FilterBase):
    """The same dialog as one passed before (or remembered from an earlier session)."""

    name = "duplicate"
    reasons = shared_reasons("duplicate")
    remembers = True
    options = (click.option("--keep-duplicates", is_flag=True,
                            help="Do not reject dialogs that repeat an earlier one."),)

    def __init__(self) -> None:
        self._seen: set[str] = set()

    @classmethod
    def from_options(cls, values: Mapping[str, Any]) -> "DuplicateDialogs | None":
        return None if values["keep_duplicates"] else cls()

    def remember(self, chat: Chat) -> None:
        self._seen.add(_dialog_key(chat))

    def check(self, chat: Chat) -> str | None:
        key = _dialog_key(chat)
        if key in self._seen:
            return "duplicate"
        self._seen.add(key)
        return None


class SemanticOpenings(FilterBase):
    """The opening question means the same as that of a dialog kept before (--semantic-dedup;
    without it the filter passes every dialog and embeds nothing)."""

    name = "semantic_duplicate"
    reasons = shared_reasons("semantic_duplicate")
    remembers = True

    def __init__(self, embeddings: Embeddings | None = None) -> None:
        on = embeddings is not None and embeddings.settings.dedup
        self.dedup = SemanticDedup(embeddings, embeddings.settings.threshold) if on else None

    @classmethod
    def from_options(cls, values: Mapping[str, Any]) -> "SemanticOpenings":
        return cls(values.get("embeddings"))

    def settings(self) -> dict[str, Any]:
        return self.dedup.settings() if self.dedup is not None else {}

    def remember(self, chat: Chat) -> None:
        opening = _opening(chat)
        if opening and self.dedup is not None:
            self.dedup.remember(opening)

    def check(self, chat: Chat) -> str | None:
        opening = _opening(chat)
        return "semantic_duplicate" if opening and self.dedup is not None and self.dedup.is_duplicate(opening) else None


def _opening(chat: Chat) -> str | None:
    return next((m["content"] for m in chat.turns if m["role"] == "user"), None)


DIALOG_FILTERS: tuple[type[FilterBase], ...] = (
    Empty, OneSided, RoleLeak, TemplateEcho, BlockPatterns, ShortAnswer, MetaTurn, Repetitive, OffTopic,
    DuplicateDialogs, SemanticOpenings)
DIALOG_REASONS = family_reasons(DIALOG_FILTERS)


def dialog_chain(values: Mapping[str, Any] | None = None) -> FilterChain[Chat]:
    """The dialog filters as the flag values ask for them (defaults where none given)."""
    return build_chain(DIALOG_FILTERS, values)


def _dialog_key(chat: Chat) -> str:
    """Hash of (role, normalized text) of every turn."""
    blob = "\x1e".join(f"{m['role']}\x1f{normalize_text(m['content'])}" for m in chat.turns)
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


def topic_cosine(embeddings: Embeddings, seed: str, turns: list[dict[str, str]]) -> float:
    """Cosine of the seed's embedding and the dialog's: the mean of its turns' (normalised again).
    As in the lexical check, a turn that only restates the seed does not count; a dialog with no
    other turn is on topic (1.0)."""
    key = normalize_text(seed)
    rest = [m["content"] for m in turns if normalize_text(m["content"]) != key and m["content"].strip()]
    if not rest:
        return 1.0
    vectors = embeddings.encode([seed, *rest])
    dialog = vectors[1:].mean(axis=0)
    norm = float((dialog ** 2).sum()) ** 0.5
    return float(vectors[0] @ dialog / norm) if norm else 0.0


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
