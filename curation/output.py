"""Phase 3 of curate: select A_k from every stored score and rewrite the derived top-level files
(data.jsonl, rejected.jsonl, errors.jsonl) from scoring/ and prefiltered.jsonl. Selection needs
every score, so these files are recomputed whole on each run; no request is made here, which is
why another --threshold/--top reselects for free."""
from __future__ import annotations

import json
from collections import Counter
from typing import Any, Iterator

from generators.core.io import atomic_lines, dumps, read_lines
from generators.core.manifest import counts
from generators.core.store import item_of as stored_item
from curation.prefilter_pass import PREFILTERED
from curation.select import Rated, select
from curation.settings import CurateSettings


def write_selection(settings: CurateSettings, passed: dict[str, int]) -> dict[str, Any]:
    """Derive data.jsonl / rejected.jsonl / errors.jsonl from scoring/ and prefiltered.jsonl."""
    scoring = settings.out / "scoring"
    rated: list[Rated] = []
    position_of: dict[int, int] = {}
    seen: set[str] = set()
    told = 0  # ratings that needed the retry which sent the unreadable answer back
    for offset, obj in read_lines(scoring / "data.jsonl"):
        item = stored_item(obj)
        if item in passed and isinstance(obj.get("score"), int) and item not in seen:
            seen.add(item)
            told += bool(_curation(obj).get("told"))
            position_of[offset] = passed[item]
            rated.append(Rated(key=offset, id=str(obj.get("id")), score=obj["score"],
                               score_expected=obj.get("score_expected")))
    decisions = select(rated, settings.select)
    by_position = sorted(rated, key=lambda r: position_of[r.key])
    reasons: Counter[str] = Counter()
    histogram: Counter[int] = Counter(r.score for r in rated)

    def scored_lines(kept: bool) -> Iterator[str]:
        with (scoring / "data.jsonl").open("rb") as handle:
            for r in by_position:
                reason = decisions[r.key]
                if (reason is None) != kept:
                    continue
                handle.seek(r.key)
                obj = json.loads(handle.readline())
                if reason is not None:
                    obj["reject"] = reason
                    reasons[reason] += 1
                yield dumps(obj)

    def rejected_lines() -> Iterator[str]:
        for _, obj in read_lines(settings.out / PREFILTERED):
            reasons[obj.get("reject", "?")] += 1
            yield dumps(obj)
        unparsed = [(passed[stored_item(o)], o) for _, o in read_lines(scoring / "rejected.jsonl")
                    if stored_item(o) in passed]
        nonlocal told
        for _, obj in sorted(unparsed, key=lambda pair: pair[0]):
            reasons[obj.get("reject", "?")] += 1
            told += bool(_curation(obj).get("told"))
            yield dumps(obj)
        yield from scored_lines(kept=False)

    kept = atomic_lines(settings.out / "data.jsonl", scored_lines(kept=True))
    rejected = atomic_lines(settings.out / "rejected.jsonl", rejected_lines())
    errors = atomic_lines(settings.out / "errors.jsonl",
                          (dumps(o) for _, o in read_lines(scoring / "errors.jsonl") if stored_item(o) in passed))
    scores = [r.score for r in rated]
    expected = [r.score_expected for r in rated if r.score_expected is not None]
    unparsed = reasons.get("unparsed_score", 0)
    answered = len(rated) + unparsed
    return {"counts": counts(kept, rejected, errors, reasons),
            "rating": {"answered": answered, "unparsed": unparsed,
                       "unparsed_share": round(unparsed / answered, 4) if answered else None, "told": told},
            "scores": {"rated": len(rated), "histogram": {str(k): histogram.get(k, 0) for k in range(1, 6)},
                       "mean": round(sum(scores) / len(scores), 4) if scores else None,
                       "mean_expected": round(sum(expected) / len(expected), 4) if expected else None,
                       "with_expected": len(expected)}}


def _curation(obj: dict[str, Any]) -> dict[str, Any]:
    meta = obj.get("meta") if isinstance(obj.get("meta"), dict) else {}
    curation = meta.get("curation")
    return curation if isinstance(curation, dict) else {}
