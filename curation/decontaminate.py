"""Drop training records whose requests overlap evaluation prompts (Koala removed test queries
with BLEU > 20 against training data; we remove the training side).

Two rules, checked on every user turn of a record:
  contaminated_ngram  the turn contains at least `overlap` of an eval prompt's word n-grams
                      (n = `ngram`, default 8; overlap 0 means any shared n-gram, the GPT-3
                      13-gram rule with --decontaminate-ngram 13 --decontaminate-overlap 0).
                      An eval prompt shorter than n words (but at least MIN_SHORT_WORDS) counts
                      when the turn contains it whole.
  contaminated_bleu   sentence BLEU(turn -> eval prompt) > `bleu` (when set).
Both use inverted indexes over the eval prompts, so a record is compared only with the prompts
it shares a word n-gram (rule 1) or a content bigram (rule 2, a bigram with a non-stopword)
with: 20k records against 805 prompts take seconds, not hours (bench/curate_throughput.py
measures it against all-pairs BLEU and reports whether both find the same records).
"""
from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterable

from generators.core.errors import UsageError
from generators.core.filtering import FilterBase
from generators.core.io import iter_jsonl
from generators.core.records import Record, user_turns
from generators.core.text import FUNCTION_WORDS, tokens

from curation.bleu import ngram_counts, sentence_bleu, tokenize

TEXT_FIELDS = ("instruction", "question", "prompt", "text")
MIN_SHORT_WORDS = 4


def load_eval_prompts(path: str | Path) -> list[str]:
    """Prompts from a .jsonl (first of instruction/question/prompt/text, or a record's first user
    turn) or a .txt (one per non-blank line)."""
    path = Path(path)
    if not path.is_file():
        raise UsageError(f"--decontaminate {path}: no such file")
    if path.suffix.lower() != ".jsonl":
        try:
            text = path.read_text("utf-8")
        except UnicodeDecodeError:
            raise UsageError(f"--decontaminate {path}: not valid UTF-8; re-encode the file as UTF-8") from None
        return [line.strip() for line in text.splitlines() if line.strip()]
    prompts: list[str] = []
    for number, obj in iter_jsonl(path):
        prompt = _prompt_of(obj)
        if prompt is None:
            raise UsageError(f"--decontaminate {path}:{number}: no {'/'.join(TEXT_FIELDS)} field "
                             "and no messages; give one of them")
        prompts.append(prompt)
    if not prompts:
        raise UsageError(f"--decontaminate {path}: file is empty")
    return prompts


def _prompt_of(obj: Any) -> str | None:
    if not isinstance(obj, dict):
        return None
    for name in TEXT_FIELDS:
        if isinstance(obj.get(name), str) and obj[name].strip():
            return obj[name]
    users = [m.get("content") for m in obj.get("messages") or [] if isinstance(m, dict) and m.get("role") == "user"]
    return users[0] if users and isinstance(users[0], str) else None


def _grams(tokens: list[str], n: int) -> set[tuple[str, ...]]:
    return {tuple(tokens[i:i + n]) for i in range(len(tokens) - n + 1)}


def _content(gram: tuple[str, str]) -> bool:
    return any(t not in FUNCTION_WORDS and any(c.isalnum() for c in t) for t in gram)


@dataclass
class Match:
    reason: str
    eval_index: int
    value: float  # overlap ratio or BLEU


class Decontaminator(FilterBase):
    """A filter of records whose user turns hold an evaluation prompt; `last` is the match behind
    the latest verdict (which prompt, how close), for the rejected line."""

    name = "decontaminate"
    reasons = {"contaminated_ngram": "shares at least --decontaminate-overlap of an evaluation prompt's n-grams",
               "contaminated_bleu": "sentence BLEU above --decontaminate-bleu against an evaluation prompt"}
    last: "Match | None" = None

    def __init__(self, prompts: Iterable[str], *, ngram: int = 8, overlap: float = 0.5,
                 bleu: float | None = None) -> None:
        if ngram < 1 or not 0 <= overlap <= 1 or (bleu is not None and not 0 <= bleu <= 100):
            raise UsageError("decontamination: need --decontaminate-ngram >= 1, 0 <= --decontaminate-overlap "
                             "<= 1 and 0 <= --decontaminate-bleu <= 100")
        self.prompts = list(prompts)
        self.ngram, self.overlap, self.bleu = ngram, overlap, bleu
        # rule 1: n-gram -> eval prompts holding it; short prompts indexed by their whole sequence
        self._gram_sets: list[set[tuple[str, ...]]] = []
        self._index: dict[tuple[str, ...], list[int]] = defaultdict(list)
        self._short_lengths: set[int] = set()
        for i, prompt in enumerate(self.prompts):
            toks = tokens(prompt)
            if len(toks) >= ngram:
                grams = _grams(toks, ngram)
            elif len(toks) >= MIN_SHORT_WORDS:
                grams = {tuple(toks)}
                self._short_lengths.add(len(toks))
            else:
                grams = set()
            self._gram_sets.append(grams)
            for gram in grams:
                self._index[gram].append(i)
        # rule 2: content bigram -> eval prompts, and each prompt's n-gram counts for BLEU
        self._bleu_refs: list[tuple[list, int]] = []
        self._bigrams: dict[tuple[str, ...], list[int]] = defaultdict(list)
        if bleu is not None:
            for i, prompt in enumerate(self.prompts):
                toks = tokenize(prompt)
                self._bleu_refs.append((ngram_counts(toks), len(toks)))
                for gram in {g for g in _grams(toks, 2) if _content(g)}:
                    self._bigrams[gram].append(i)

    def settings(self) -> dict[str, Any]:
        return {"prompts": len(self.prompts), "ngram": self.ngram, "overlap": self.overlap, "bleu": self.bleu}

    def check(self, record: Record) -> str | None:
        """The reason of the first rule a user turn of the record breaks, or None."""
        self.last = self.match(record)
        return self.last.reason if self.last else None

    def match(self, record: Record) -> Match | None:
        """The first rule a user turn of the record breaks, or None."""
        for turn in user_turns(record):
            match = self.check_text(turn)
            if match is not None:
                return match
        return None

    def check_text(self, text: str) -> Match | None:
        toks = tokens(text)
        shared: dict[int, int] = defaultdict(int)
        for n in (self.ngram, *self._short_lengths):
            for gram in _grams(toks, n):
                for i in self._index.get(gram, ()):
                    shared[i] += 1
        for i, count in shared.items():
            ratio = count / len(self._gram_sets[i])
            if ratio >= self.overlap:
                return Match("contaminated_ngram", i, round(ratio, 4))
        if self.bleu is not None:
            return self._check_bleu(text)
        return None

    def _check_bleu(self, text: str) -> Match | None:
        toks = tokenize(text)
        candidates = {i for gram in _grams(toks, 2) if gram in self._bigrams for i in self._bigrams[gram]}
        if not candidates:
            return None
        counts = ngram_counts(toks)
        for i in sorted(candidates):
            ref, ref_len = self._bleu_refs[i]
            score = sentence_bleu(counts, len(toks), ref, ref_len)
            if score > self.bleu:
                return Match("contaminated_bleu", i, round(score, 2))
        return None

    def bleu_all_pairs(self, text: str) -> Match | None:
        """The naive baseline: BLEU against every eval prompt (for the benchmark and tests)."""
        toks = tokenize(text)
        counts = ngram_counts(toks)
        for i, (ref, ref_len) in enumerate(self._bleu_refs):
            score = sentence_bleu(counts, len(toks), ref, ref_len)
            if score > self.bleu:
                return Match("contaminated_bleu", i, round(score, 2))
        return None
