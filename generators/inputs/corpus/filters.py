"""Humpback's segment filters (arXiv 2308.06259): one small class per check, in SEGMENT_FILTERS (the
order they run; the first reason wins), and the pipeline that runs them over documents.

  SegmentLength      too_short / too_long  length outside min_chars..max_chars (600..3,000 by default)
  EmptyHeader        empty_header          no header text (plain-text sources have none and skip
                                           header checks unless text_needs_header)
  CapsHeader         caps_header           header written all in capitals (at least caps_min_letters
                                           letters, so a short acronym such as "HIV" passes)
  BoilerplateHeader  boilerplate_header    a navigation/boilerplate phrase as a whole word in the
                                           header, or a header that is exactly one of the boilerplate words
  RepeatedSentences  repeated_sentences    two sentences of the segment share word n-grams with Jaccard
                                           >= repeat_threshold (menus, templated lists, text pasted twice)
  SegmentDuplicates  duplicate             same normalized text as a segment kept before (whole corpus)
                     near_duplicate        MinHash LSH hit against kept segments (Jaccard ~>= near_threshold)

The dedup filter remembers what it passed, so it comes last: with `--executor ray` the reader tasks
run the others and its `prepare` (the hash and MinHash of a segment they passed), and the driver,
where the one memory lives, only compares (`FilterChain.split`). Every threshold is one
SegmentFilterConfig, whose fields declare the flags of `gen backtranslate`: these filters choose
which segments are asked about, so the config is part of the run's fingerprint.
"""
from __future__ import annotations

import dataclasses
import re
from collections import Counter
from dataclasses import asdict, dataclass
from typing import Any, Iterable, Iterator, Mapping, NamedTuple

import click

from generators.core.errors import UsageError
from generators.core.filtering import FilterBase, FilterChain, build_chain, family_reasons, shared_reasons
from generators.core.flags import flag, from_options
from generators.core.text import tokens
from generators.inputs.corpus.dedup import DedupIndex
from generators.inputs.corpus.document import Document
from generators.inputs.corpus.segment import Segment, segment_document

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

DEFAULT_MAX_DOC_CHARS = 5_000_000
DOC_TOO_LONG = "doc_too_long"  # a stage reason (STAGE_REASONS): the whole document, not a segment

# Sentence breaks: a run of spaces after . ! or ?, or of newlines. The mark goes with the break
# (a lookbehind made the split 40% slower); has_repeated_sentences compares tokens, which it is not.
_SENTENCE_SPLIT = re.compile(r"[.!?]\s+|\n+")


@dataclass
class SegmentFilterConfig:
    """Every threshold of the filters; defaults follow Humpback where the paper gives one. The
    fields made by `flag` are the segment flags of `gen backtranslate` (`from_flags`)."""

    min_chars: int = flag("--min-chars", type=click.IntRange(0), default=600, show_default=True,
                          help="Shortest segment kept.")
    max_chars: int = flag("--max-chars", type=click.IntRange(1), default=3000, show_default=True,
                          help="Longest segment kept.")
    max_doc_chars: int = flag("--max-doc-chars", type=click.IntRange(1), default=DEFAULT_MAX_DOC_CHARS, show_default=True,
                              help="Skip a corpus document longer than this (reason doc_too_long) before it is "
                                   "parsed and segmented.")
    check_headers: bool = flag("--no-header-filters", default=True, is_flag=True, flag_value=False,
                               help="Keep segments with empty, all-caps or navigation headers.")
    text_needs_header: bool = False
    caps_min_letters: int = 4
    boilerplate_phrases: tuple[str, ...] = BOILERPLATE_PHRASES
    boilerplate_exact: tuple[str, ...] = BOILERPLATE_EXACT
    repeat_threshold: float = 0.8      # > 1 turns the check off
    repeat_ngram: int = 3
    repeat_min_words: int = 5
    dedup: bool = flag("--no-dedup", default=True, is_flag=True, flag_value=False,
                       help="Keep exact and near-duplicate segments.")
    near_dedup: bool = flag("--no-near-dedup", default=True, is_flag=True, flag_value=False,
                            help="Keep near-duplicate segments (exact duplicates still go).")
    near_threshold: float = flag("--near-threshold", type=click.FloatRange(0, 1, min_open=True), default=0.8,
                                 show_default=True, help="MinHash Jaccard above which a segment is a near duplicate.")
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

    @classmethod
    def from_flags(cls, kwargs: dict[str, Any]) -> "SegmentFilterConfig":
        """The config from a command's parsed flags (popped from `kwargs`). --no-dedup turns the
        near-duplicate check off too; a config built by hand may keep it alone."""
        config = from_options(cls, kwargs)
        return dataclasses.replace(config, near_dedup=config.near_dedup and config.dedup)

    def describe(self) -> dict[str, Any]:
        """Settings for a manifest (and the fingerprint). max_doc_chars shows only when changed, so
        runs made before the flag existed keep their fingerprint and resume."""
        settings = asdict(self)
        if self.max_doc_chars == DEFAULT_MAX_DOC_CHARS:
            del settings["max_doc_chars"]
        return settings


class Sketch(NamedTuple):
    """What the dedup memory needs of a segment: the hash of its normalized text, and the text
    itself or its MinHash values (computed where the segment was read)."""

    key: int
    normal: str
    values: bytes | None


@dataclass
class SegmentCandidate:
    """The subject of the segment filters: a segment, and its dedup `Sketch` once a reader task
    has prepared it (None: the dedup filter works it out itself)."""

    segment: Segment
    sketch: Sketch | None = None


# -- the filters, in the order they run ---------------------------------------------------------

class SegmentLength(FilterBase):
    name = "length"
    reasons = shared_reasons("too_short", "too_long")

    def __init__(self, min_chars: int = 600, max_chars: int = 3000) -> None:
        self.min_chars, self.max_chars = min_chars, max_chars

    @classmethod
    def from_options(cls, values: Mapping[str, Any]) -> "SegmentLength":
        return cls(values["min_chars"], values["max_chars"])

    def check(self, c: SegmentCandidate) -> str | None:
        size = len(c.segment.text)
        return "too_short" if size < self.min_chars else "too_long" if size > self.max_chars else None


class EmptyHeader(FilterBase):
    name = "empty_header"
    reasons = {"empty_header": "the segment's header is empty"}

    def __init__(self, text_needs_header: bool = False) -> None:
        self.text_needs_header = text_needs_header  # plain text has no headers: judged only when asked

    @classmethod
    def from_options(cls, values: Mapping[str, Any]) -> "EmptyHeader | None":
        return cls(values["text_needs_header"]) if values["check_headers"] else None

    def check(self, c: SegmentCandidate) -> str | None:
        if c.segment.header.strip() or (c.segment.kind == "text" and not self.text_needs_header):
            return None
        return "empty_header"


class CapsHeader(FilterBase):
    name = "caps_header"
    reasons = {"caps_header": "the segment's header is all capitals"}

    def __init__(self, min_letters: int = 4) -> None:
        self.min_letters = min_letters  # fewer capitals are an acronym ("HIV")

    @classmethod
    def from_options(cls, values: Mapping[str, Any]) -> "CapsHeader | None":
        return cls(values["caps_min_letters"]) if values["check_headers"] else None

    def check(self, c: SegmentCandidate) -> str | None:
        header = c.segment.header.strip()
        letters = [ch for ch in header if ch.isalpha()]
        capitals = bool(header) and len(letters) >= self.min_letters and all(ch.isupper() for ch in letters)
        return "caps_header" if capitals else None


class BoilerplateHeader(FilterBase):
    name = "boilerplate_header"
    reasons = {"boilerplate_header": "the header is navigation or boilerplate (advertisement, forum, quick link, ...)"}

    def __init__(self, phrases: Iterable[str] = BOILERPLATE_PHRASES, exact: Iterable[str] = BOILERPLATE_EXACT) -> None:
        words = [re.escape(p.lower()) for p in phrases if p.strip()]
        self._phrase_re = re.compile(r"\b(?:" + "|".join(words) + r")\b") if words else None
        self._exact = frozenset(p.lower() for p in exact)

    @classmethod
    def from_options(cls, values: Mapping[str, Any]) -> "BoilerplateHeader | None":
        return cls(values["boilerplate_phrases"], values["boilerplate_exact"]) if values["check_headers"] else None

    def check(self, c: SegmentCandidate) -> str | None:
        header = c.segment.header.strip()
        if not header:
            return None
        lowered = " ".join(tokens(header))
        if lowered in self._exact or (self._phrase_re is not None and self._phrase_re.search(lowered)):
            return "boilerplate_header"
        return None


class RepeatedSentences(FilterBase):
    name = "repeated_sentences"
    reasons = {"repeated_sentences": "the segment repeats its own sentences"}

    def __init__(self, threshold: float = 0.8, n: int = 3, min_words: int = 5) -> None:
        self.threshold, self.n, self.min_words = threshold, n, min_words

    @classmethod
    def from_options(cls, values: Mapping[str, Any]) -> "RepeatedSentences":
        return cls(values["repeat_threshold"], values["repeat_ngram"], values["repeat_min_words"])

    def check(self, c: SegmentCandidate) -> str | None:
        repeated = has_repeated_sentences(c.segment.text, n=self.n, threshold=self.threshold,
                                          min_words=self.min_words)
        return "repeated_sentences" if repeated else None


class SegmentDuplicates(FilterBase):
    """Exact and near duplicates of the segments passed before (or remembered from an earlier
    session), across the whole corpus."""

    name = "dedup"
    reasons = shared_reasons("duplicate", "near_duplicate")
    remembers = True

    def __init__(self, index: DedupIndex) -> None:
        self.index = index

    @classmethod
    def from_options(cls, values: Mapping[str, Any]) -> "SegmentDuplicates | None":
        if not (values["dedup"] or values["near_dedup"]):
            return None
        return cls(DedupIndex(exact=values["dedup"], near=values["near_dedup"], threshold=values["near_threshold"],
                              num_perm=values["num_perm"], shingle=values["shingle"], verify=values["near_verify"]))

    def prepare(self, c: SegmentCandidate) -> None:
        """The hash and MinHash values, worked out in the reader task so the driver only compares."""
        key, normal = self.index.key(c.segment.text)
        c.sketch = Sketch(key, "", self.index.signature_values(normal) if self.index.near else None)

    def remember(self, c: SegmentCandidate) -> None:
        self.index.add(c.segment.text)

    def check(self, c: SegmentCandidate) -> str | None:
        """A duplicate reason, or None after the segment enters the memory."""
        key, normal, values = c.sketch if c.sketch is not None else (*self.index.key(c.segment.text), None)
        if self.index.is_exact_duplicate(key):
            return "duplicate"
        return self.index.check_near(key, normal, values=values)


SEGMENT_FILTERS: tuple[type[FilterBase], ...] = (
    SegmentLength, EmptyHeader, CapsHeader, BoilerplateHeader, RepeatedSentences, SegmentDuplicates)
SEGMENT_REASONS = family_reasons(SEGMENT_FILTERS)


def segment_chain(config: SegmentFilterConfig | None = None) -> FilterChain[SegmentCandidate]:
    """The segment filters as the config asks for them."""
    return build_chain(SEGMENT_FILTERS, (config or SegmentFilterConfig()).describe())


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


# -- the pipeline --------------------------------------------------------------------------------

class Prechecked(NamedTuple):
    """A segment after the filters that need no memory: their reason, or None (then, from a
    reader task, with its dedup sketch prepared)."""

    candidate: SegmentCandidate
    reason: str | None


class SegmentPipeline:
    """Documents in, kept segments out, with counts for the manifest: the chain of SEGMENT_FILTERS,
    split into the filters that judge a segment alone and the dedup memory.

    With parallel readers, each runs `precheck` and this one runs `run_prechecked` over their
    results in corpus order (`decide`: the memory stays in one place, so the same segments are
    dropped). It stays in the driver (`driver_only`: never shipped to a model replica, its
    index can be large).

    `counts` has one entry per rejection reason; `documents`, `segments` (candidates) and `kept`
    count what went through. Call `remember(text)` with the segments an earlier, killed run
    already kept, before `run`, so a resumed run does not keep their duplicates again."""

    driver_only = True

    def __init__(self, config: SegmentFilterConfig | None = None) -> None:
        self.config = config or SegmentFilterConfig()
        self.alone, self.memory = segment_chain(self.config).split()
        self.counts: Counter[str] = Counter()
        self.documents = 0
        self.segments = 0
        self.kept = 0

    def remember(self, text: str) -> None:
        self.memory.remember(SegmentCandidate(Segment(doc_id="", index=0, header="", text=text)))

    def precheck(self, document: Document, *, portable: bool = True) -> list[Prechecked]:
        """The document's segments judged by the filters that need no memory of other segments;
        with `portable` (a reader task), a passed segment's dedup sketch is worked out here too.
        A document over max_doc_chars is not parsed at all: one entry with reason doc_too_long."""
        if len(document.text) > self.config.max_doc_chars:
            empty = Segment(doc_id=document.id, index=0, header="", text="")
            return [Prechecked(SegmentCandidate(empty), DOC_TOO_LONG)]
        checked = []
        for segment in segment_document(document, max_chars=self.config.max_chars):
            candidate = SegmentCandidate(segment)
            reason = self.alone.check(candidate)
            if reason is None and portable:
                self.memory.prepare(candidate)
            checked.append(Prechecked(candidate, reason))
        return checked

    def decide(self, pre: Prechecked) -> str | None:
        """The verdict on a prechecked segment: its reason, else the dedup memory's (a passed
        segment enters it)."""
        return pre.reason if pre.reason is not None else self.memory.check(pre.candidate)

    def run_prechecked(self, documents: Iterable[list[Prechecked]]) -> Iterator[Segment]:
        """Kept segments of documents whose segments are prechecked, one list per document, in
        the corpus order."""
        for prechecked in documents:
            self.documents += 1
            for pre in prechecked:
                if pre.reason == DOC_TOO_LONG:  # a whole document, counted apart from segments
                    self.counts[DOC_TOO_LONG] += 1
                    continue
                self.segments += 1
                why = self.decide(pre)
                if why:
                    self.counts[why] += 1
                    continue
                self.kept += 1
                yield pre.candidate.segment

    def run(self, documents: Iterable[Document]) -> Iterator[Segment]:
        return self.run_prechecked(self.precheck(document, portable=False) for document in documents)

    def summary(self) -> dict[str, Any]:
        """Counts for manifest.json: every reason listed, zeros included."""
        return {"documents": self.documents, "segments": self.segments, "kept": self.kept,
                "rejected": {reason: self.counts.get(reason, 0) for reason in SEGMENT_REASONS},
                DOC_TOO_LONG: self.counts.get(DOC_TOO_LONG, 0)}


def precheck_part(spec: str, *, corpus_dir: str | None, field: str | None, shard: tuple[int, int] | None,
                  part: tuple[int, int], config: SegmentFilterConfig,
                  batch: int = 64) -> Iterator[list[tuple[int, list[Prechecked]]]]:
    """Read part j/W of the corpus, segment it and precheck every segment: lists of up to
    `batch` (document index, prechecked segments), in index order. What a parallel reader runs."""
    from generators.inputs.corpus.readers import iter_document_part

    pipeline = SegmentPipeline(config)  # used for its checks only: its memory stays empty
    chunk: list[tuple[int, list[Prechecked]]] = []
    for index, document in iter_document_part(spec, corpus_dir=corpus_dir, field=field, shard=shard, part=part):
        chunk.append((index, pipeline.precheck(document)))
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
