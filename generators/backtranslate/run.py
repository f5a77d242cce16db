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

import asyncio
import hashlib
import itertools
import time
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Iterator

import prompts
from ..backends.base import ChatRequest
from ..corpus import Document, Segment, SegmentFilterConfig, SegmentPipeline, iter_documents
from ..errors import BaleenError, UsageError
from ..adapters import adapter_identity
from ..options import RunOptions, build_engine, check_options, engine_settings, make_backend, run_settings
from ..records import derive_seed, make_record, stable_id
from ..runner import Item, Kept, Rejected, run_items
from ..store import RunStore
from .postfilter import REASONS, InstructionFilter, PostFilterConfig, clean_instruction

# Humpback: "T=0.7, top-p 0.9, one instruction each"; instructions are short.
SAMPLING = {"temperature": 0.7, "top_p": 0.9, "max_tokens": 256}
TEMPLATE = "backward"


@dataclass
class BacktranslateSettings:
    corpus: str
    out: Path
    corpus_dir: str | None = None
    text_field: str | None = None
    shard: tuple[int, int] | None = None
    adapter: str | None = None
    samples: int = 1
    segments: SegmentFilterConfig = field(default_factory=SegmentFilterConfig)
    postfilter: PostFilterConfig = field(default_factory=PostFilterConfig)
    gpu_memory_utilization: float | None = None


def corpus_source(spec: str) -> str:
    """The record's `source`: clueweb, hf, or the kind of local file (warc, jsonl, ...)."""
    head = spec.split(":", 1)[0]
    if head in ("clueweb", "hf"):
        return head
    name = Path(spec).name.lower()
    for suffix, kind in ((".warc", "warc"), (".warc.gz", "warc"), (".jsonl", "jsonl"),
                         (".jsonl.gz", "jsonl"), (".parquet", "parquet")):
        if name.endswith(suffix):
            return kind
    return "web" if Path(spec).is_dir() else "file"


def _digest(text: str) -> bytes:
    return hashlib.blake2b(text.encode("utf-8"), digest_size=12).digest()


class ResumingPipeline(SegmentPipeline):
    """The corpus filters, told which segment texts this run already wrote: each is let through
    once without a check (it is already in the dedup memory, so the check would call it a
    duplicate of itself); a second copy of it is then a duplicate as usual."""

    def __init__(self, config: SegmentFilterConfig, written: set[bytes]) -> None:
        super().__init__(config)
        self.written = written
        self.resumed = 0

    def reason(self, segment: Segment) -> str | None:
        digest = _digest(segment.text)
        if digest in self.written:
            self.written.discard(digest)
            self.resumed += 1
            return None
        return super().reason(segment)


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


def _first_document(documents: Iterator[Document], spec: str) -> Iterator[Document]:
    """Read the first document now, so a bad file fails before any model loads."""
    first = next(documents, None)
    if first is None:
        raise UsageError(f"{spec}: no documents found (empty corpus, or an empty --shard)")
    return itertools.chain([first], documents)


def request_seed(base: int, item_id: str) -> int:
    """A per-request sampling seed: reproducible, and different for every segment and sample."""
    return derive_seed(base, item_id)


async def _run(settings: BacktranslateSettings, opts: RunOptions) -> dict[str, Any]:
    check_options(opts)
    kind = opts.resolved_backend()
    if settings.adapter and kind == "openai":
        raise UsageError("--adapter loads a LoRA adapter locally (--backend hf or vllm); for a server, "
                         "start `vllm serve BASE --enable-lora --lora-modules NAME=DIR` and pass --model NAME")
    adapter = adapter_identity(settings.adapter) if settings.adapter else None
    documents = _first_document(iter_documents(settings.corpus, corpus_dir=settings.corpus_dir,
                                               field=settings.text_field, shard=settings.shard),
                                settings.corpus)
    extra_args = {"gpu_memory_utilization": settings.gpu_memory_utilization} if kind == "vllm" else {}
    backend = make_backend(opts, adapter=settings.adapter, **extra_args)
    engine = build_engine(opts, backend)
    sampling = opts.sampling(**SAMPLING)
    template = prompts.template_id(TEMPLATE)
    generation = {**engine_settings(opts, backend), "adapter": adapter, "template": template,
                  "sampling": sampling.as_dict()}
    store = RunStore(settings.out, stage="backtranslate",
                     settings={**generation, "segments": settings.segments.as_dict(),
                               "postfilter": settings.postfilter.describe()},
                     retry_errors=opts.retry_errors)
    written: set[bytes] = set()
    pipeline = ResumingPipeline(settings.segments, written)
    for text in _written_segments(store):
        if _digest(text) not in written:
            written.add(_digest(text))
            pipeline.remember(text)
    instruction_filter = InstructionFilter(settings.postfilter)
    source = corpus_source(settings.corpus)
    stopped: list[BaleenError] = []
    started = time.monotonic()

    def items() -> Iterator[Item]:
        seen: set[str] = set()
        try:
            for count, segment in enumerate(pipeline.run(documents), start=1):
                for sample in range(settings.samples):
                    item_id = stable_id("backtranslate", segment.text, generation, sample)
                    if item_id in seen:
                        continue
                    seen.add(item_id)
                    yield Item(id=item_id, source=source,
                               input={"doc_id": segment.doc_id, "segment": segment.index, "text": segment.text},
                               extra={"segment": segment, "sample": sample})
                if opts.limit is not None and count >= opts.limit:
                    return
        except BaleenError as exc:  # bad input met mid-stream: finish what is in flight, then stop
            stopped.append(exc)

    async def work(item: Item) -> Kept | Rejected:
        segment: Segment = item.extra["segment"]
        seed = request_seed(opts.seed, item.id)
        request = ChatRequest.of([{"role": "user", "content": prompts.render(TEMPLATE, output=segment.text)}],
                                 replace(sampling, seed=seed))
        result = await engine.complete(request)
        instruction = clean_instruction(result.text)
        meta: dict[str, Any] = {
            "doc_id": segment.doc_id, "url": segment.url, "header": segment.header,
            "segment": segment.index, "sample": item.extra["sample"], "seed": seed,
            "model": engine.model, "adapter": adapter, "template": template,
            "usage": {"prompt_tokens": result.prompt_tokens, "completion_tokens": result.completion_tokens},
            "finish": "length" if result.finish == "length" else "natural"}
        if instruction != result.text.strip():
            meta["raw"] = result.text
        record = make_record(id=item.id, source=source, tag="augmented", meta=meta,
                             messages=[{"role": "user", "content": instruction},
                                       {"role": "assistant", "content": segment.text}])
        reason = instruction_filter.check(instruction, segment_text=segment.text, header=segment.header,
                                          finish=result.finish)
        if reason:
            meta.setdefault("raw", result.text)
            return Rejected(record, reason)
        return Kept([record])

    def extra() -> dict[str, Any]:
        elapsed = time.monotonic() - started
        usage = engine.accounting.summary()
        return {"run": run_settings(opts),
                "corpus": {"spec": settings.corpus, "corpus_dir": settings.corpus_dir,
                           "field": settings.text_field, "shard": settings.shard, "samples": settings.samples},
                "segments": {**pipeline.summary(), "resumed": pipeline.resumed},
                "instructions": {"rejected": {r: store.reasons.get(r, 0) for r in REASONS}},
                "usage": usage, "session_s": round(elapsed, 3),
                "completion_tokens_per_s": round(engine.accounting.completion_tokens / max(elapsed, 1e-9), 2)}

    if store.previous.get("usage"):
        engine.accounting.prior = store.previous["usage"]
    try:
        manifest = await run_items(items(), work, store=store, engine=engine, concurrency=opts.concurrency,
                                   manifest_extra=extra, total=None, progress=not opts.no_progress)
        if stopped:
            store.write_manifest(status="stopped", extra=extra())
            raise stopped[0]
        return manifest
    finally:
        store.close()
        await engine.aclose()


def run_backtranslate(settings: BacktranslateSettings, opts: RunOptions) -> dict[str, Any]:
    """Run the stage to completion (or a clean stop) and return the manifest."""
    return asyncio.run(_run(settings, opts))
