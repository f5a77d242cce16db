"""Which local files are corpus input and how a folder of them is walked.

The lowest layer of the corpus readers (beside document.py and rows.py; reading bytes and lines
is generators/inputs/reader.py): the WARC, ClueWeb22 and local-file readers share it, so every
folder is walked in the same order (stable shards).
"""
from __future__ import annotations

import os
from pathlib import Path
from typing import Iterator

from generators.core.errors import UsageError

HTML_SUFFIXES = (".html", ".htm", ".xhtml")
WARC_SUFFIXES = (".warc", ".warc.gz")
JSONL_SUFFIXES = (".jsonl", ".jsonl.gz", ".jsonl.zst", ".jsonl.zstd", ".ndjson")
PARQUET_SUFFIXES = (".parquet",)
TEXT_SUFFIXES = (".txt", ".text")
MARKDOWN_SUFFIXES = (".md", ".markdown")
ALL_SUFFIXES = (HTML_SUFFIXES + WARC_SUFFIXES + JSONL_SUFFIXES + PARQUET_SUFFIXES
                + TEXT_SUFFIXES + MARKDOWN_SUFFIXES)


def walk_files(root: Path, suffixes: tuple[str, ...]) -> Iterator[Path]:
    """Files under root whose name ends with a suffix, in sorted order, lazily (hidden skipped)."""
    try:
        entries = sorted(os.scandir(root), key=lambda e: e.name)
    except OSError as exc:
        raise UsageError(f"{root}: cannot list folder ({exc.strerror}); check permissions") from None
    for entry in entries:
        if entry.name.startswith("."):
            continue
        if entry.is_dir():
            yield from walk_files(Path(entry.path), suffixes)
        elif entry.name.lower().endswith(suffixes):
            yield Path(entry.path)

