"""Text search over 100k records without holding their text in memory.

Two steps. A case-insensitive byte search (JSON escapes and non-ASCII letters included) runs over
each file, jumping to the next line after a hit, so its cost is bounded by the size of the files
and the number of lines; hits map to rows by their offsets.
Then each candidate line is parsed and only its visible text is checked, so a word that is only a
JSON key ("content", "role", "usage") matches nothing. Results are cached per phrase, since paging
through one search asks the same question again and again.
"""
from __future__ import annotations

import json
import mmap
import re
import threading
from collections import OrderedDict
from typing import Any, BinaryIO

import numpy as np

from generators.outputs.view.index import Index

_TEXT_META = ("header", "url", "doc_id", "seed")


def visible_text(line: dict[str, Any]) -> str:
    """What the page shows of a line, lower-cased: the words a search should find."""
    parts: list[Any] = [line.get(k) for k in ("id", "source", "tag", "reason", "reject", "error",
                                              "last_response")]
    for message in line.get("messages") or []:
        if isinstance(message, dict):
            parts.append(message.get("content"))
    meta = line.get("meta") if isinstance(line.get("meta"), dict) else {}
    parts += [meta.get(k) for k in _TEXT_META]
    value = line.get("input")
    parts.append(value if isinstance(value, str) or value is None else json.dumps(value, ensure_ascii=False))
    return "\n".join(str(p) for p in parts if p is not None).casefold()


def _forms(char: str) -> list[bytes]:
    """The ways one character of a phrase may be stored in a JSON line: UTF-8 or escaped
    (quotes, backslashes, newlines, \\uXXXX), in either case (ASCII case is left to IGNORECASE)."""
    forms: set[bytes] = set()
    for variant in {char, char.lower(), char.upper()}:
        if len(variant) != 1:
            continue
        for escaped in (json.dumps(variant, ensure_ascii=False)[1:-1], json.dumps(variant)[1:-1]):
            forms.add(escaped.encode("utf-8"))
    return sorted(forms, key=len, reverse=True)


def _pattern(phrase: str) -> re.Pattern[bytes]:
    """A byte pattern for the phrase as it may appear in a JSON line, case-insensitive."""
    parts = []
    for char in phrase:
        forms = _forms(char)
        parts.append(re.escape(forms[0]) if len(forms) == 1
                     else b"(?:" + b"|".join(re.escape(f) for f in forms) + b")")
    return re.compile(b"".join(parts), re.IGNORECASE)


CHUNK = 1 << 24  # bytes lower-cased and searched at a time


def _next_line(offsets: np.ndarray, position: int, hits: list[int]) -> int | None:
    """Record the line holding `position`; return where the next line starts (None: at the end)."""
    k = int(np.searchsorted(offsets, position, side="right")) - 1
    if k >= 0:
        hits.append(k)
    return int(offsets[k + 1]) if k + 1 < len(offsets) else None


def _scan_lowered(handle: BinaryIO, needle: bytes, offsets: np.ndarray) -> list[int]:
    """Lines (positions in `offsets`) holding an ASCII needle in any case: chunks of the file
    are lower-cased (bytes.lower leaves UTF-8 alone) and searched with bytes.find, which is
    several times faster than an IGNORECASE pattern. Chunks overlap by len(needle) - 1."""
    hits: list[int] = []
    size = max(CHUNK, 2 * len(needle))
    start = 0
    while True:
        handle.seek(start)
        chunk = handle.read(size).lower()
        if len(chunk) < len(needle):
            return hits
        local = 0
        while True:
            found = chunk.find(needle, local)
            if found < 0:
                break
            following = _next_line(offsets, start + found, hits)
            if following is None:
                return hits
            local = following - start
        if len(chunk) < size:
            return hits
        start = max(start + len(chunk) - len(needle) + 1, start + local)


def _scan_pattern(handle: BinaryIO, pattern: re.Pattern[bytes], offsets: np.ndarray) -> list[int]:
    """Lines holding a match of `pattern` (phrases with non-ASCII letters), over the mmap'd file."""
    hits: list[int] = []
    size = handle.seek(0, 2)
    if size == 0:
        return hits
    with mmap.mmap(handle.fileno(), 0, access=mmap.ACCESS_READ) as data:
        position: int | None = 0
        while position is not None and position < size:
            found = pattern.search(data, position)
            if found is None:
                break
            position = _next_line(offsets, found.start(), hits)
    return hits


class Searcher:
    def __init__(self, index: Index, cache_size: int = 8) -> None:
        self.index = index
        self.cache_size = cache_size
        self._cache: OrderedDict[str, tuple[np.ndarray, dict[int, bool]]] = OrderedDict()
        self._lock = threading.Lock()
        # each file's rows in offset order (rows are appended file by file, in file order)
        self._rows_of = [np.flatnonzero(index.file == f) for f in range(len(index.files))]

    def candidates(self, phrase: str) -> np.ndarray:
        """A boolean mask: rows whose raw line holds the phrase somewhere (keys included)."""
        mask = np.zeros(len(self.index), dtype=bool)
        escaped = json.dumps(phrase)[1:-1].encode("ascii")
        ascii_only = phrase.isascii()
        pattern = None if ascii_only else _pattern(phrase)
        for f, path in enumerate(self.index.files):
            rows = self._rows_of[f]
            if not len(rows):
                continue
            offsets = self.index.offset[rows]
            with path.open("rb") as handle:
                if ascii_only:
                    hits = _scan_lowered(handle, escaped.lower(), offsets)
                else:
                    hits = _scan_pattern(handle, pattern, offsets)
                mask[rows[hits]] = True
        return mask

    def match(self, phrase: str, rows: np.ndarray) -> np.ndarray:
        """The rows among `rows` whose visible text holds the phrase (case-insensitive)."""
        phrase = phrase.strip()
        if not phrase:
            return rows
        with self._lock:
            entry = self._cache.get(phrase)
            if entry is None:
                entry = (self.candidates(phrase), {})
                self._cache[phrase] = entry
                while len(self._cache) > self.cache_size:
                    self._cache.popitem(last=False)
            self._cache.move_to_end(phrase)
            mask, confirmed = entry
            rows = rows[mask[rows]]
            todo = [int(i) for i in rows if int(i) not in confirmed]
            needle = phrase.casefold()
            for i, line in zip(todo, self.index.read(todo)):
                confirmed[i] = needle in visible_text(line)
            return np.asarray([i for i in rows if confirmed[int(i)]], dtype=np.int64)
