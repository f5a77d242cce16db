"""Content words and how much two texts share them: what the instruction and dialog filters use
to tell a text that takes up its subject from one that talks past it.

No embedding model is installed offline, so this is lexical: words are lower-cased, stop words
dropped, and a light suffix strip makes "symptoms"/"symptom" and "treated"/"treating" one word.
That is enough to see whether a dialog mentions its seed's topic or a turn repeats an earlier
one; it does not see synonyms ("kidney" vs "renal").
"""
from __future__ import annotations

import re
from collections import Counter

_WORD = re.compile(r"[^\W_]+(?:['’][^\W_]+)?")

STOP_WORDS = frozenset("""
a about above after again against all also am an and any are aren't as at be because been before
being below between both but by can can't cannot could couldn't did didn't do does doesn't doing
don't down during each either else ever every few for from further get gets got had hadn't has
hasn't have haven't having he he'd he'll he's her here here's hers herself him himself his how
how's however i i'd i'll i'm i've if in into is isn't it it's its itself just let's like me more
most much must my myself no nor not now of off on once one only or other ought our ours ourselves
out over own please rather really same shall she she'd she'll she's should shouldn't so some such
than that that's the their theirs them themselves then there there's these they they'd they'll
they're they've this those though through thus to too under until up upon us very via was wasn't
we we'd we'll we're we've were weren't what what's when when's where where's whether which while
who who's whom whose why why's will with within without won't would wouldn't yes yet you you'd
you'll you're you've your yours yourself yourselves
tell know explain describe give thing things way ways many lot lots well good great thank thanks
okay ok sure yes hi hello dear want need able may might also kind sort
""".split())


def stem(word: str) -> str:
    """A light suffix strip so inflections meet: plural and verb endings go, then a final "e"
    ("takes", "taking", "take" -> "tak"; "studies", "study" -> "study")."""
    for suffix, keep in (("ies", "y"), ("ing", ""), ("ed", ""), ("s", ""), ("ly", "")):
        if word.endswith(suffix) and len(word) - len(suffix) >= 3 and not word.endswith("ss"):
            word = word[: len(word) - len(suffix)] + keep
            break
    return word[:-1] if word.endswith("e") and len(word) > 3 else word


def words(text: str) -> list[str]:
    """Every word, lower-cased (apostrophes kept inside words)."""
    return [w.replace("’", "'") for w in _WORD.findall(text.lower())]


def content_words(text: str) -> list[str]:
    """Stemmed words that carry meaning: no stop words, no one-letter tokens."""
    return [stem(w) for w in words(text) if w not in STOP_WORDS and len(w) > 1]


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
