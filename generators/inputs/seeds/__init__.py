"""Seed questions for `gen selfchat --seeds SOURCE` (Baize's self-chat seeds).

A SOURCE is one of:
  - a named set as Baize used it: quora, stackoverflow, medquad, medqa (the USMLE set, not MedQuAD),
    each a plain data repo on the Hugging Face hub (see `hub.NAMED` and docs/seeds.md);
  - `hf:NAME[:CONFIG]:FIELD` (or `hf:NAME`) for any Hugging Face data set, NAME a full hub id
    OWNER/NAME, or a local folder or data file that `datasets.load_dataset` understands;
  - a local file: .jsonl, .json, .csv, .tsv, .parquet, .txt (one seed per non-blank line).
Hub sets are read from a local copy instead when $BALEEN_HF_MIRROR/OWNER/NAME exists (see `hub`).
Seeds are then cleaned (blank dropped, near-identical text deduplicated keeping the first),
shuffled with a fixed seed, split into disjoint shards, and cut to a limit, so that the same
command always yields the same seeds and machines given shards i/n never overlap.

This module is that pipeline and the public API; the readers live beside it: `hub` (named sets,
hf: specs, the mirror, offline handling) and `files` (local files, field choice).
"""
from __future__ import annotations

import random
from collections import Counter
from dataclasses import dataclass
from typing import Iterator

from generators.core.shard import check_shard
from generators.core.errors import UsageError
from generators.core.records import stable_id
from generators.core.text import normalize_text, repair_text
from generators.inputs.seeds.files import read_file
from generators.inputs.seeds.hub import NAMED, read_hf, read_named

__all__ = ["Seed", "load_seeds"]


@dataclass(frozen=True)
class Seed:
    id: str        # stable_id("seed", normalized text)
    text: str
    source: str    # "quora" | "stackoverflow" | "medquad" | "medqa" | file stem | "hf:NAME"
    repaired_text: int = 0  # lone surrogates made U+FFFD (a cut emoji's escaped half)


# ---------------------------------------------------------------- public API

def load_seeds(spec: str, *, field: str | None = None, limit: int | None = None,
               shard: tuple[int, int] | None = None, seed: int = 0,
               dropped: Counter[str] | None = None) -> list[Seed]:
    """Read, clean, shuffle, shard and limit the seeds named by `spec` (see the module doc).
    `dropped`, when given, counts what cleaning dropped from the whole source ("blank",
    "duplicate"), so the manifest can say why it has fewer seeds than the file has lines."""
    if limit is not None and limit < 1:
        raise UsageError(f"--limit {limit}: must be 1 or more")
    if shard is not None:
        check_shard(shard, f"{shard[0]}/{shard[1]}")
    if not spec or not spec.strip():
        raise UsageError("--seeds is empty; give quora, stackoverflow, medquad, medqa, "
                         "hf:NAME:FIELD or a file (.jsonl .json .csv .tsv .parquet .txt)")
    spec = spec.strip()
    texts, source, where = _read_source(spec, field)
    seeds = _clean(texts, source, Counter() if dropped is None else dropped)
    if not seeds:
        raise UsageError(f"{where}: no seeds after reading (every value blank); "
                         "check the file or pick another --field")
    random.Random(seed).shuffle(seeds)
    if shard is not None:
        index, count = shard
        seeds = [s for position, s in enumerate(seeds) if position % count == index]
    if limit is not None:
        seeds = seeds[:limit]
    return seeds


# ---------------------------------------------------------------- dispatch and cleaning

def _read_source(spec: str, field: str | None) -> tuple[Iterator[str], str, str]:
    """(texts, source name, where-for-messages): a named set, then hf:, else a file path."""
    if spec.lower() in NAMED:
        name = spec.lower()
        return read_named(name, field), name, name
    if spec.startswith("hf:"):
        texts, source = read_hf(spec, field)
        return texts, source, spec
    return read_file(spec, field)


def _clean(texts: Iterator[str], source: str, dropped: Counter[str]) -> list[Seed]:
    seen: set[str] = set()
    seeds: list[Seed] = []
    for text in texts:
        text, repairs = repair_text(text.strip())
        key = normalize_text(text)
        if not key or key in seen:
            dropped["duplicate" if key else "blank"] += 1
            continue
        seen.add(key)
        seeds.append(Seed(id=stable_id("seed", key), text=text, source=source, repaired_text=repairs))
    return seeds


