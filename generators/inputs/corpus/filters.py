"""Humpback's segment filters (arXiv 2308.06259) and the one-call pipeline around them.

Each candidate is checked in this order and counted under the first reason that rejects it:
  too_short / too_long     length outside min_chars..max_chars (600..3,000 by default)
  empty_header             no header text (plain-text sources have none and skip header checks
                           unless text_needs_header)
  caps_header              header written all in capitals (at least caps_min_letters letters,
                           so a short acronym such as "HIV" passes)
  boilerplate_header       a navigation/boilerplate phrase as a whole word in the header, or a
                           header that is exactly one of the boilerplate words
  duplicate                same normalized text as a segment kept before (whole corpus; checked
                           before the sentence check because a hash is cheaper)
  repeated_sentences       two sentences of the segment share word n-grams with Jaccard >=
                           repeat_threshold (catches menus, templated lists, pasted twice text)
  near_duplicate           MinHash LSH hit against kept segments (Jaccard ~>= near_threshold)
"""
from __future__ import annotations

import re
from collections import Counter
from dataclasses import asdict, dataclass
from typing import Any, Iterable, Iterator

from generators.core.errors import UsageError
from generators.core.text import tokens
from generators.inputs.corpus.dedup import DedupIndex
from generators.inputs.corpus.document import Document
from generators.inputs.corpus.segment import Segment, segment_document

REASONS = ("too_short", "too_long", "empty_header", "caps_header", "boilerplate_header",
           "duplicate", "repeated_sentences", "near_duplicate")

BOILERPLATE_PHRASES = (
    "advertisement", "advertisements", "sponsored", "forum", "forums", "quick link",
    "quick links", "newsletter", "free newsletter", "related posts", "related articles",
    "related stories", "comments", "comment", "leave a reply", "leave a comment", "share this",
    "share on", "menu", "navigation", "cookie", "cookies", "sign up", "signup", "subscribe",
    "follow us", "contact us", "privacy policy", "terms of use", "terms of service",
    "log in", "login", "sign in", "skip to", "you may also like", "recommended for you",
    "popular posts", "recent posts", "latest posts", "trending", "about the author",
    "table of contents", "breadcrumb", "sidebar", "footer",
)
BOILERPLATE_EXACT = ("search", "categories", "category", "tags", "archives", "archive",
                     "links", "popular", "recent", "more", "home", "main", "about", "share",
                     "related", "resources", "sitemap", "site map", "top", "untitled")

_SENTENCE_SPLIT = re.compile(r"(?<=[.!?])\s+|\n+")


@dataclass
class SegmentFilterConfig:
    """Every threshold of the filters; defaults follow Humpback where the paper gives one."""

    min_chars: int = 600
    max_chars: int = 3000
    check_headers: bool = True
    text_needs_header: bool = False
    caps_min_letters: int = 4
    boilerplate_phrases: tuple[str, ...] = BOILERPLATE_PHRASES
    boilerplate_exact: tuple[str, ...] = BOILERPLATE_EXACT
    repeat_threshold: float = 0.8      # > 1 turns the check off
    repeat_ngram: int = 3
    repeat_min_words: int = 5
    dedup: bool = True
    near_dedup: bool = True
    near_threshold: float = 0.8
    near_verify: bool = True           # check LSH candidates' estimated Jaccard (4*num_perm B each)
    num_perm: int = 128
    shingle: int = 5

    def __post_init__(self) -> None:
        if self.min_chars < 0 or self.max_chars < 1 or self.min_chars > self.max_chars:
            raise UsageError(f"segment length {self.min_chars}..{self.max_chars}: need "
                             "0 <= min <= max and max >= 1")
        if not 0.0 < self.near_threshold <= 1.0:
            raise UsageError(f"near-duplicate threshold {self.near_threshold}: must be in (0, 1]")
        if self.num_perm < 2 or self.shingle < 1 or self.repeat_ngram < 1:
            raise UsageError("num_perm must be >= 2, shingle and repeat_ngram >= 1")
        words = [re.escape(p.lower()) for p in self.boilerplate_phrases if p.strip()]
        self._phrase_re = re.compile(r"\b(?:" + "|".join(words) + r")\b") if words else None
        self._exact = frozenset(p.lower() for p in self.boilerplate_exact)

    def describe(self) -> dict[str, Any]:
        """Settings for a manifest."""
        return {k: v for k, v in asdict(self).items() if not k.startswith("_")}


def header_reason(segment: Segment, config: SegmentFilterConfig) -> str | None:
    """empty_header / caps_header / boilerplate_header, or None."""
    header = segment.header.strip()
    if not header:
        if segment.kind == "text" and not config.text_needs_header:
            return None
        return "empty_header"
    letters = [c for c in header if c.isalpha()]
    if len(letters) >= config.caps_min_letters and all(c.isupper() for c in letters):
        return "caps_header"
    lowered = " ".join(tokens(header))
    if lowered in config._exact:  # type: ignore[attr-defined]
        return "boilerplate_header"
    phrase_re = config._phrase_re  # type: ignore[attr-defined]
    if phrase_re is not None and phrase_re.search(lowered):
        return "boilerplate_header"
    return None


def has_repeated_sentences(text: str, *, n: int = 3, threshold: float = 0.8,
                           min_words: int = 5) -> bool:
    """Whether two sentences overlap in word n-grams with Jaccard >= threshold. A sentence that
    shares no n-gram with any earlier one (the usual case) costs one C-level set intersection;
    only overlapping ones are compared pairwise."""
    if threshold > 1.0:
        return False
    earlier: list[frozenset] = []
    seen: set = set()
    for sentence in _SENTENCE_SPLIT.split(text):
        words = tokens(sentence)
        if len(words) < min_words:
            continue
        grams = frozenset(zip(*(words[i:] for i in range(n)))) if len(words) >= n \
            else frozenset([tuple(words)])
        if not seen.isdisjoint(grams):
            size = len(grams)
            for other in earlier:
                small, large = (size, len(other)) if size <= len(other) else (len(other), size)
                if small < threshold * large:
                    continue  # Jaccard <= small/large: cannot reach the threshold
                shared = len(grams & other)
                if shared and shared / (size + len(other) - shared) >= threshold:
                    return True
        earlier.append(grams)
        seen |= grams
    return False


class SegmentPipeline:
    """Documents in, kept segments out, with counts for the manifest.

    With parallel readers, each runs `precheck` (everything but the dedup memory) and this one
    runs `run_prechecked` over their results in corpus order (`decide`: dedup stays global, so
    the same segments are dropped). It stays in the driver (`driver_only`: never shipped to a
    model replica, its index can be large).

    `counts` has one entry per rejection reason; `documents`, `segments` (candidates) and `kept`
    count what went through. Call `remember(text)` with the segments an earlier, killed run
    already kept, before `run`, so a resumed run does not keep their duplicates again. It is the
    filter of segments (name, reasons, check) the other stages' filters share the shape of."""

    name = "segment"
    reasons = REASONS
    driver_only = True

    def __init__(self, config: SegmentFilterConfig | None = None) -> None:
        self.config = config or SegmentFilterConfig()
        self.counts: Counter[str] = Counter()
        self.documents = 0
        self.segments = 0
        self.kept = 0
        c = self.config
        self.index = DedupIndex(exact=c.dedup, near=c.near_dedup, threshold=c.near_threshold,
                                num_perm=c.num_perm, shingle=c.shingle, verify=c.near_verify)

    def remember(self, text: str) -> None:
        self.index.add(text)

    def check(self, segment: Segment) -> str | None:
        """Why the segment is rejected, or None; a kept segment enters the dedup index."""
        return self.decide(self.precheck(segment, portable=False))

    # -- the checks in two parts, so documents may be read by other processes ----------------------
    def precheck(self, segment: Segment, *, portable: bool = True) -> "Prechecked":
        """Every check that needs no memory of other segments (length, header, repeated
        sentences, the dedup key; with `portable`, the MinHash values too, so that a parallel
        reader computes them): safe to run in parallel readers."""
        c = self.config
        size = len(segment.text)
        reason = "too_short" if size < c.min_chars else "too_long" if size > c.max_chars else None
        if reason is None and c.check_headers:
            reason = header_reason(segment, c)
        if reason is not None:
            return Prechecked(segment, reason)
        repeated = has_repeated_sentences(segment.text, n=c.repeat_ngram, threshold=c.repeat_threshold,
                                          min_words=c.repeat_min_words)
        if not (c.dedup or c.near_dedup):
            return Prechecked(segment, None, repeated=repeated)
        key, normal = self.index.key(segment.text)
        if not portable:
            return Prechecked(segment, None, repeated=repeated, key=key, normal=normal)
        values = self.index.signature_values(normal) if c.near_dedup and not repeated else None
        return Prechecked(segment, None, repeated=repeated, key=key, values=values)

    def decide(self, pre: "Prechecked") -> str | None:
        """The verdict on a prechecked segment, in the one order of the checks: its own reason
        (length, header), an exact duplicate (a hash is cheaper than the rest), repeated
        sentences, then a near duplicate (a kept segment enters the dedup index)."""
        if pre.reason is not None:
            return pre.reason
        if pre.key is not None and self.index.is_exact_duplicate(pre.key):
            return "duplicate"
        if pre.repeated:
            return "repeated_sentences"
        if pre.key is None:
            return None
        return self.index.check_near(pre.key, pre.normal, values=pre.values)

    def run_prechecked(self, documents: Iterable[list["Prechecked"]]) -> Iterator[Segment]:
        """`run` for documents whose segments parallel readers already prechecked, one list per
        document, in the corpus order."""
        for prechecked in documents:
            self.documents += 1
            for pre in prechecked:
                self.segments += 1
                why = self.decide(pre)
                if why:
                    self.counts[why] += 1
                    continue
                self.kept += 1
                yield pre.segment

    def run(self, documents: Iterable[Document]) -> Iterator[Segment]:
        for document in documents:
            self.documents += 1
            for segment in segment_document(document, max_chars=self.config.max_chars):
                self.segments += 1
                why = self.check(segment)
                if why:
                    self.counts[why] += 1
                    continue
                self.kept += 1
                yield segment

    def summary(self) -> dict[str, Any]:
        """Counts for manifest.json: every reason listed, zeros included."""
        return {"documents": self.documents, "segments": self.segments, "kept": self.kept,
                "rejected": {reason: self.counts.get(reason, 0) for reason in REASONS}}


@dataclass
class Prechecked:
    """A candidate segment after `SegmentPipeline.precheck`: a reason, or what dedup needs."""

    segment: Segment
    reason: str | None
    repeated: bool = False
    key: int | None = None
    values: bytes | None = None
    normal: str = ""  # the normalized text, when the MinHash is computed where the index lives


def precheck_part(spec: str, *, corpus_dir: str | None, field: str | None, shard: tuple[int, int] | None,
                  part: tuple[int, int], config: SegmentFilterConfig,
                  batch: int = 64) -> Iterator[list[tuple[int, list[Prechecked]]]]:
    """Read part j/W of the corpus, segment it and precheck every segment: lists of up to
    `batch` (document index, prechecked segments), in index order. What a parallel reader runs."""
    from generators.inputs.corpus.readers import iter_document_part

    pipeline = SegmentPipeline(config)  # used for its checks only: its memory stays empty
    chunk: list[tuple[int, list[Prechecked]]] = []
    for index, document in iter_document_part(spec, corpus_dir=corpus_dir, field=field, shard=shard, part=part):
        chunk.append((index, [pipeline.precheck(s) for s in segment_document(document, max_chars=config.max_chars)]))
        if len(chunk) >= batch:
            yield chunk
            chunk = []
    if chunk:
        yield chunk


class PreparedSegments:
    """An iterator of kept segments that also exposes the pipeline's counts."""

    def __init__(self, pipeline: SegmentPipeline, documents: Iterable[Document]) -> None:
        self.pipeline = pipeline
        self._iterator = pipeline.run(documents)

    def __iter__(self) -> "PreparedSegments":
        return self

    def __next__(self) -> Segment:
        return next(self._iterator)

    @property
    def counts(self) -> Counter[str]:
        return self.pipeline.counts

    def summary(self) -> dict[str, Any]:
        return self.pipeline.summary()


def prepare_segments(documents: Iterable[Document],
                     config: SegmentFilterConfig | None = None) -> PreparedSegments:
    """One call: segment, filter and deduplicate; iterate it, then read `.counts`."""
    return PreparedSegments(SegmentPipeline(config), documents)
