"""Which local files are corpus input, how a folder of them is walked, how they are read.

The lowest layer of the readers (beside document.py and rows.py): the WARC, ClueWeb22 and
local-file readers share it, so every folder is walked in the same order (stable shards) and
every compressed file fails the same way.
"""
from __future__ import annotations

import os
from pathlib import Path
from typing import Iterator

from generators.core.errors import UsageError
from generators.core.io import open_binary

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


def read_bytes(path: Path) -> bytes:
    """A whole small file (one page), a read failure as a UsageError naming it."""
    try:
        return path.read_bytes()
    except OSError as exc:
        raise UsageError(f"{path}: cannot read ({exc.strerror}); check the path") from None


def iter_lines(path: Path) -> Iterator[tuple[int, bytes]]:
    """(line number, raw line) for each non-blank line of a plain, .gz or .zst file, lazily.
    A truncated or corrupt archive is a UsageError naming the file (generators.core.io.open_binary),
    raised where the damage is met, after the lines before it."""
    with open_binary(path) as handle:
        try:
            for number, raw in enumerate(handle, start=1):
                if raw.strip():
                    yield number, raw
        except OSError as exc:
            raise UsageError(f"{path}: cannot read ({exc.strerror or exc}); check the file") from None
