"""Read documents from any supported source as one lazy stream (Humpback's corpus side).

Sources, chosen by the `spec` string:
  clueweb[:html|txt[:LANG]]   a local ClueWeb22 copy (corpus_dir or $CLUEWEB22_ROOT)
  hf:NAME[:CONFIG[:SPLIT]]    a Hugging Face data set, streamed
  PATH                        a file or a folder (walked recursively, sorted) of .warc/.warc.gz,
                              .html/.htm, .jsonl/.jsonl.gz/.jsonl.zst, .parquet, .txt, .md

Every source is a generator of *pending* documents (a closure that builds the Document), so
that `shard` can skip other shards' documents before decoding or parsing them, and memory stays
bounded by one document whatever the corpus size. Document indexes are positions in the source,
so shard i/n of a source is the same set of documents on every machine.

This is the top of the corpus readers: it imports local, clueweb and hf, none of which
imports it.
"""
from __future__ import annotations

import os
from pathlib import Path
from typing import Iterator

from generators.core.errors import UsageError
from generators.inputs.corpus.clueweb import iter_clueweb
from generators.inputs.corpus.document import Document, Pending, repaired
from generators.inputs.corpus.hf import iter_hf
from generators.inputs.corpus.local import iter_path


def iter_documents(
    spec: str,
    *,
    corpus_dir: str | None = None,
    field: str | None = None,
    limit: int | None = None,
    shard: tuple[int, int] | None = None,
) -> Iterator[Document]:
    """Yield the documents of `spec`, lazily; `shard=(i, n)` keeps document index % n == i,
    `limit` stops after that many documents of this shard. Empty documents are skipped but
    still take their index, so shards never depend on content."""
    if shard is not None:
        i, n = shard
        if n < 1 or not 0 <= i < n:
            raise UsageError(f"shard {i}/{n}: expected 0 <= I < N")
    if limit is not None and limit < 0:
        raise UsageError(f"--limit {limit}: must be 0 or more")
    pending = _open(spec, corpus_dir=corpus_dir, field=field)
    return _select(pending, limit=limit, shard=shard)


def _select(pending: Iterator[Pending], *, limit: int | None,
            shard: tuple[int, int] | None) -> Iterator[Document]:
    if limit == 0:
        return
    count = 0
    for _, document in _indexed(pending, shard=shard, part=None):
        yield document
        count += 1
        if limit is not None and count >= limit:
            return


def _indexed(pending: Iterator[Pending], *, shard: tuple[int, int] | None,
             part: tuple[int, int] | None) -> Iterator[tuple[int, Document]]:
    """(source index, document) of the documents of `shard`, and of `part` j/W of that shard (the
    shard's k-th document by index goes to part k % W): parts of a shard are disjoint, cover it,
    and never depend on content."""
    i, n = shard if shard is not None else (0, 1)
    for index, build in enumerate(pending):
        if index % n != i or (part is not None and (index // n) % part[1] != part[0]):
            continue
        document = build()
        if document is not None:
            yield index, repaired(document)


def iter_document_part(spec: str, *, corpus_dir: str | None = None, field: str | None = None,
                       shard: tuple[int, int] | None = None,
                       part: tuple[int, int] = (0, 1)) -> Iterator[tuple[int, Document]]:
    """Part j of W of `iter_documents`'s stream, each document with its index in the source, so
    that W readers working in parallel can be merged back into the one order."""
    if not 0 <= part[0] < part[1]:
        raise UsageError(f"part {part[0]}/{part[1]}: expected 0 <= J < W")
    return _indexed(_open(spec, corpus_dir=corpus_dir, field=field), shard=shard, part=part)


def _open(spec: str, *, corpus_dir: str | None, field: str | None) -> Iterator[Pending]:
    if not spec or not spec.strip():
        raise UsageError("no corpus given; pass a path, 'clueweb' or 'hf:NAME:CONFIG'")
    head = spec.split(":", 1)[0]
    if head == "clueweb":
        parts = spec.split(":")
        if len(parts) > 3:
            raise UsageError(f"{spec}: expected clueweb[:html|txt[:LANG]]")
        form = parts[1] if len(parts) > 1 and parts[1] else None
        lang = parts[2] if len(parts) > 2 and parts[2] else "en"
        return iter_clueweb(corpus_dir or os.environ.get("CLUEWEB22_ROOT"), form=form, lang=lang)
    if head == "hf":
        parts = spec.split(":")
        if len(parts) < 2 or not parts[1] or len(parts) > 4:
            raise UsageError(f"{spec}: expected hf:NAME[:CONFIG[:SPLIT]], e.g. hf:wikitext:wikitext-2-raw-v1")
        config = parts[2] if len(parts) > 2 and parts[2] else None
        split = parts[3] if len(parts) > 3 and parts[3] else "train"
        return iter_hf(parts[1], config, split, field)
    path = Path(spec)
    if not path.exists():
        raise UsageError(f"{spec}: no such file or folder; give a path, 'clueweb' "
                         "(with --corpus-dir) or 'hf:NAME:CONFIG'")
    return iter_path(path, field=field)
