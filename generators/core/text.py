"""Every text utility the filters, dedup and metrics share, in one place so that they agree on
what a word is, which words carry no meaning, and when two texts are the same.

  words / content_words / tokens / letter_runs   the three ways of cutting text into words
  FUNCTION_WORDS / STOP_WORDS                    one stop-word list, in two layers
  normalize_quotes                               NFKC and straight quotes before a regex runs
  normalize_text / normalize_words               the dedup keys (seeds and dialogs / segments)
  coverage / dice / similarity                   how much two texts share their content words
  repair_text                                    lone UTF-16 surrogates made U+FFFD, counted

No embedding model is installed offline, so likeness is lexical: words are lower-cased, stop
words dropped, and a light suffix strip makes "symptoms"/"symptom" and "treated"/"treating" one
word. That is enough to see whether a dialog mentions its seed's topic or a turn repeats an
earlier one; it does not see synonyms ("kidney" vs "renal").
"""
from __future__ import annotations

import re
import unicodedata
from collections import Counter
from typing import Any

_WORD = re.compile(r"[^\W_]+(?:['’][^\W_]+)?")
_TOKEN = re.compile(r"\w+")
_LETTERS = re.compile(r"[^\W\d_]+")
_NON_WORD = re.compile(r"[\W_]+")
_SURROGATE = re.compile("[\ud800-\udfff]")
_QUOTES = str.maketrans({"\u2019": "'", "\u2018": "'", "\u02bc": "'", "\u201c": '"', "\u201d": '"'})

# Frequent English function words: prose has 25-50% of them, other Latin-script languages few
# (what curation's language check counts).
FUNCTION_WORDS = frozenset("""
a an the and or but if of to in on at by for with from as is are was were be been being it its
this that these those i you he she we they me him her us them my your his our their what which
who whom how why when where can could would should will shall do does did not no so than then
there here about into over under more most some any all each very just also have has had
""".split())

# Words that say nothing about a text's subject: the function words, their contractions and
# kin, and the filler of requests and chat ("tell me", "thanks", "ok").
STOP_WORDS = FUNCTION_WORDS | frozenset("""
above after again against am aren't because before below between both can't cannot couldn't
didn't doesn't doing don't down during either else ever every few further get gets got hadn't
hasn't haven't having he'd he'll he's here's hers herself himself how's however i'd i'll i'm
i've isn't it's itself let's like much must myself nor now off once one only other
ought ours ourselves out own please rather really same she'd she'll she's shouldn't such
that's theirs themselves there's they'd they'll they're they've though through thus too
until up upon via wasn't we'd we'll we're we've weren't what's when's where's whether while
who's whose why's within without won't wouldn't yes yet you'd you'll you're you've yours
yourself yourselves
tell know explain describe give thing things way ways many lot lots well good great thank thanks
okay ok sure hi hello dear want need able may might kind sort
""".split())


# ---------------------------------------------------------------- words

def words(text: str) -> list[str]:
    """Every word, lower-cased, an apostrophe kept inside a word ("don't", curly ones
    straightened)."""
    return [w.replace("’", "'") for w in _WORD.findall(text.lower())]


def tokens(text: str) -> list[str]:
    """Runs of word characters, lower-cased: the plain tokens of n-grams, ROUGE and headers."""
    return _TOKEN.findall((text or "").lower())


def letter_runs(text: str) -> list[str]:
    """Runs of letters only, lower-cased (no digits, no '_'): what a language check looks at."""
    return _LETTERS.findall(text.lower())


def stem(word: str) -> str:
    """A light suffix strip so inflections meet: plural and verb endings go, then a final "e"
    ("takes", "taking", "take" -> "tak"; "studies", "study" -> "study")."""
    for suffix, keep in (("ies", "y"), ("ing", ""), ("ed", ""), ("s", ""), ("ly", "")):
        if word.endswith(suffix) and len(word) - len(suffix) >= 3 and not word.endswith("ss"):
            word = word[: len(word) - len(suffix)] + keep
            break
    return word[:-1] if word.endswith("e") and len(word) > 3 else word


def content_words(text: str) -> list[str]:
    """Stemmed words that carry meaning: no stop words, no one-letter tokens."""
    return [stem(w) for w in words(text) if w not in STOP_WORDS and len(w) > 1]


# ---------------------------------------------------------------- normalisation and dedup keys

def normalize_quotes(text: str) -> str:
    """NFKC, and curly quotes and apostrophes made straight, so one pattern ("I'm") matches
    every way a model writes it."""
    return unicodedata.normalize("NFKC", text).translate(_QUOTES)


def normalize_text(text: str) -> str:
    """The key two short texts (seeds, dialog turns) share when they say the same thing: NFKC,
    casefold, one space between words, no surrounding punctuation or quotes
    ('What is X?' == 'what is  x')."""
    text = unicodedata.normalize("NFKC", text).casefold()
    text = " ".join(text.split())
    start, end = 0, len(text)
    while start < end and _is_edge(text[start]):
        start += 1
    while end > start and _is_edge(text[end - 1]):
        end -= 1
    return text[start:end]


def _is_edge(char: str) -> bool:
    return char.isspace() or unicodedata.category(char).startswith("P")


def normalize_words(text: str) -> str:
    """The key two copies of a page (or an instruction) share: lower case, punctuation and
    spacing removed, words joined by one space."""
    return _NON_WORD.sub(" ", text.lower()).strip()


# ---------------------------------------------------------------- likeness

def coverage(part: str | list[str], whole: str | set[str]) -> float:
    """Share of `part`'s distinct content words found in `whole` (0 when part has none)."""
    mine = set(content_words(part) if isinstance(part, str) else part)
    theirs = whole if isinstance(whole, set) else set(content_words(whole))
    return len(mine & theirs) / len(mine) if mine else 0.0


def dice(a: Counter[str], b: Counter[str]) -> float:
    """Dice overlap of two bags of words: 1 for the same bag, 0 for nothing shared."""
    total = sum(a.values()) + sum(b.values())
    return 2 * sum((a & b).values()) / total if total else 0.0


def similarity(a: str, b: str) -> float:
    """Overlap of the two texts' content words as multisets (Dice): 1 for the same wording,
    high for a near-repeat that changes a few words."""
    return dice(Counter(content_words(a)), Counter(content_words(b)))


# ---------------------------------------------------------------- text that cannot be encoded

def repair_text(obj: Any) -> tuple[Any, int]:
    """(`obj` with every lone UTF-16 surrogate made U+FFFD, how many were): the escaped half of a
    cut emoji ("\\ud83d") is valid JSON but cannot be written as UTF-8. A split pair is joined
    again. Strings, and the keys and values of lists and dicts, are repaired; an object with
    nothing to repair is returned as it is."""
    if isinstance(obj, str):
        if _SURROGATE.search(obj) is None:
            return obj, 0
        fixed = obj.encode("utf-16-le", "surrogatepass").decode("utf-16-le", "replace")
        return fixed, fixed.count("\ufffd") - obj.count("\ufffd")
    if isinstance(obj, (list, tuple)):
        parts = [repair_text(value) for value in obj]
        changed = any(new is not old for (new, _), old in zip(parts, obj))
        return (type(obj)(value for value, _ in parts) if changed else obj), sum(n for _, n in parts)
    if isinstance(obj, dict):
        pairs = [(repair_text(key), repair_text(value)) for key, value in obj.items()]
        changed = any(k[0] is not key or v[0] is not value for (k, v), (key, value) in zip(pairs, obj.items()))
        return ({k[0]: v[0] for k, v in pairs} if changed else obj), sum(k[1] + v[1] for k, v in pairs)
    return obj, 0
