"""The filters of the page as one value, parsed from the URL query, applied to the index as masks.

Every filter the page offers is a URL parameter (/api/records?outcome=rejected&min_score=4...),
the same ones the page keeps in its own address, so a link shows the same rows. A filter value
that matches nothing (an unknown reason, say) gives no rows; a malformed one is a QueryError
(HTTP 400) naming the parameter.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable, Mapping

import numpy as np

from generators.outputs.view.index import CHANGES, OUTCOMES, Index
from generators.outputs.view.runs import Layout
from generators.outputs.view.search import Searcher

MAX_LIMIT = 500
SORTS = ("", "score", "-score")


class QueryError(ValueError):
    """A parameter the API cannot read; its message names it."""


@dataclass(frozen=True)
class Query:
    outcome: str = ""
    reason: str = ""
    tag: str = ""
    round: str = ""
    run: str = ""
    change: str = ""
    min_score: float | None = None
    max_score: float | None = None
    q: str = ""
    sort: str = ""
    offset: int = 0
    limit: int = 50

    @classmethod
    def parse(cls, params: Mapping[str, str]) -> "Query":
        def choice(name: str, allowed: tuple[str, ...]) -> str:
            value = params.get(name, "")
            if value not in allowed:
                raise QueryError(f"{name}: {value!r} is not one of {', '.join(a for a in allowed if a)}")
            return value

        def parsed(name: str, kind: type, what: str) -> Any:
            """The parameter as `kind`, None when empty; a QueryError naming it otherwise."""
            text = params.get(name, "").strip()
            if not text:
                return None
            try:
                value = kind(text)
            except ValueError:
                raise QueryError(f"{name}: {text!r} is not {what}") from None
            if value != value:  # NaN
                raise QueryError(f"{name}: {text!r} is not {what}")
            return value

        def number(name: str) -> float | None:
            return parsed(name, float, "a number")

        def integer(name: str, default: int, low: int, high: int) -> int:
            value = parsed(name, int, "a whole number")
            if value is None:
                return default
            if not low <= value <= high:
                raise QueryError(f"{name}: {value} is outside {low}..{high}")
            return value

        return cls(outcome=choice("outcome", ("", *OUTCOMES)), reason=params.get("reason", ""),
                   tag=params.get("tag", ""), round=params.get("round", ""), run=params.get("run", ""),
                   change=choice("change", CHANGES), min_score=number("min_score"),
                   max_score=number("max_score"), q=params.get("q", "").strip(), sort=choice("sort", SORTS),
                   offset=integer("offset", 0, 0, 1 << 62), limit=integer("limit", 50, 1, MAX_LIMIT))


def _code(find: Callable[[str], int | None], value: str) -> int:
    code = find(value)
    return -2 if code is None else code  # -2 matches no row (-1 is "none")


def select(index: Index, layout: Layout, query: Query, searcher: Searcher) -> np.ndarray:
    """The matching row numbers, in page order (file order, or by score)."""
    mask = np.ones(len(index), dtype=bool)
    if query.outcome:
        mask &= index.outcome == OUTCOMES.index(query.outcome)
    if query.reason:
        mask &= index.reason == _code(index.reasons.find, query.reason)
    if query.tag:
        mask &= index.tag == _code(index.tags.find, query.tag)
    if query.round or query.run:
        wanted = [i for i, run in enumerate(layout.runs)
                  if (not query.round or run.round == query.round) and (not query.run or run.name == query.run)]
        mask &= np.isin(index.run, wanted)
    if query.change:
        mask &= index.change == CHANGES.index(query.change)
    if query.min_score is not None:
        mask &= index.score >= query.min_score   # NaN (no score) compares False: left out
    if query.max_score is not None:
        mask &= index.score <= query.max_score
    rows = np.flatnonzero(mask)
    if query.q:
        rows = searcher.match(query.q, rows)
    if query.sort and len(rows):
        sign = -1.0 if query.sort.startswith("-") else 1.0
        score = np.nan_to_num(index.score[rows] * sign, nan=np.inf)        # no score: last
        expected = np.nan_to_num(index.expected[rows] * sign, nan=np.inf)  # ties: expected score
        rows = rows[np.lexsort((rows, expected, score))]
    return rows
