"""Batch lines, whatever the provider: how a request's line is named, how lines are packed into
files, and what a line that brought no answer says.

A line's custom_id is the request's response-cache key (its first 48 hex digits: some batch
services cap ids at 64 characters, Anthropic's allow only letters, digits, `-` and `_`) plus the
attempt number. The key is the same on every rerun for the same request, so a rerun finds its
requests in the batches an earlier session submitted; the attempt keeps a resubmitted line's id
unique. The line formats themselves are the providers' (openai_backend.py, anthropic_backend.py).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

MAX_FILE_BYTES = 200_000_000  # the Batch API takes input files up to 200 MB
KEY_CHARS = 48  # of the cache key's 64 hex digits: 192 bits, ids of at most 64 characters


def line_key(cache_key: str) -> str:
    """The part of a request's cache key its batch lines are named by."""
    return cache_key[:KEY_CHARS]


def custom_id(key: str, attempt: int) -> str:
    return f"{key}-{attempt}"


def split_custom_id(value: str) -> tuple[str, int] | None:
    """(key, attempt) of one of our custom_ids; None for anything else."""
    key, sep, attempt = value.rpartition("-")
    if not sep or not key or not attempt.isdigit():
        return None
    return key, int(attempt)


def pack(sizes: Sequence[int], max_lines: int, max_bytes: int = MAX_FILE_BYTES) -> tuple[list[list[int]], list[int]]:
    """Split lines (by index, in order) into files of at most `max_lines` lines and `max_bytes`
    bytes; returns (the files, the lines too big for any file)."""
    files: list[list[int]] = []
    oversize: list[int] = []
    current: list[int] = []
    used = 0
    for index, size in enumerate(sizes):
        if size > max_bytes:
            oversize.append(index)
            continue
        if current and (len(current) >= max_lines or used + size > max_bytes):
            files.append(current)
            current, used = [], 0
        current.append(index)
        used += size
    if current:
        files.append(current)
    return files, oversize


@dataclass(frozen=True)
class LineFailure:
    """A line that brought no answer; `retryable` lines go into a new batch (failed, expired)."""

    reason: str
    status: int | None = None
    body: str | None = None
    retryable: bool = True


def missing(status: str, reason: str | None = None) -> LineFailure:
    """A line in neither the output nor the error file of a batch that ended `status`."""
    why = f" ({reason})" if reason else ""
    return LineFailure(f"no answer: the batch ended {status}{why}")


