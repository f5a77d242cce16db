"""Which corpus to read: the `--corpus` flags, declared once here and shared by every command
that reads a corpus (`gen segments`, `gen backtranslate`), and the record `source` it names."""
from __future__ import annotations

import itertools
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator

from generators.core.errors import UsageError
from generators.core.flags import flag
from generators.core.shard import shard_option
from generators.inputs.corpus.document import Document
from generators.inputs.corpus.readers import iter_documents


@dataclass
class CorpusSource:
    """The corpus flags; a settings dataclass that reads a corpus inherits them (first fields)."""

    corpus: str | None = flag(
        "--corpus", default=None, metavar="SOURCE",
        help="clueweb[:html|txt[:LANG]] (with --corpus-dir or $CLUEWEB22_ROOT) | hf:NAME[:CONFIG[:SPLIT]] | "
             "a file or folder (.warc[.gz] .html .jsonl[.gz|.zst] .parquet .txt .md).")
    corpus_dir: str | None = flag("--corpus-dir", default=None, metavar="DIR", help="Root of a local ClueWeb22 copy.")
    text_field: str | None = flag("--field", default=None, help="Column holding the page (default: html, else text).")
    shard: tuple[int, int] | None = flag("--shard", callback=shard_option, default=None, metavar="I/N",
                                         help="Take shard I of N (0-based) of the documents.")

    def documents(self) -> Iterator[Document]:
        """The corpus as one lazy stream, its first document read now so a bad file fails (exit 2)
        before any folder is written or model loaded."""
        assert self.corpus is not None
        stream = iter_documents(self.corpus, corpus_dir=self.corpus_dir, field=self.text_field, shard=self.shard)
        first = next(stream, None)
        if first is None:
            raise UsageError(f"{self.corpus}: no documents found (empty corpus, or an empty --shard)")
        return itertools.chain([first], stream)

    def describe(self) -> dict[str, object]:
        return {"spec": self.corpus, "corpus_dir": self.corpus_dir, "field": self.text_field, "shard": self.shard}


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
