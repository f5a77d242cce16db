"""Per-run accounting: requests, tokens, cost, and the budgets that stop a run cleanly.

Usage is booked twice: in the run's totals, and in the usage of the item being worked on (a
context variable the runner sets per item), which the runner writes onto that item's line. The
lines are the ledger: a rerun sums them to know what earlier sessions spent, so budgets hold
across kills and the manifest never undercounts.

Costs come from generators/core/prices.py (the dated price table, or --price): cache reads at
the cached rate, cache writes at the write rate, --batch at batch rates. Unknown models cost
"unknown", never a guess.
"""
from __future__ import annotations

from contextvars import ContextVar
from dataclasses import dataclass, field
from typing import Any, Iterable

from generators.core.errors import FatalError
from generators.core.prices import Price, cost_usd


USAGE_KEYS = ("requests", "cached", "failed_requests", "attempts", "prompt_tokens", "completion_tokens")
# Why a try was sent again (`retried`): each is one more attempt on the wire, never billed.
RETRY_CAUSES = ("429", "5xx", "timeout", "bad_body", "connection", "other")
# Of prompt_tokens, those read from or written into a provider's prompt cache: booked only when a
# provider reports them, so the usage of every other run keeps its shape.
CACHE_KEYS = ("cache_read_tokens", "cache_write_tokens")
# Of completion_tokens, those a reasoning model spent thinking (core/reasoning.py): priced as the
# output tokens they are, booked only when an answer had some.
REASONING_KEY = "reasoning_tokens"
# Lone surrogates made U+FFFD in the item's seed, segment or answers (generators.core.text.repair_text):
# booked only when there were some.
REPAIR_KEY = "repaired_text"


def empty_usage() -> dict[str, Any]:
    return {key: 0 for key in USAGE_KEYS} | {"retried": empty_retried(), "cost_usd": 0.0}


def empty_retried() -> dict[str, int]:
    return {cause: 0 for cause in RETRY_CAUSES}


def add_usage(total: dict[str, Any], part: dict[str, Any] | None) -> dict[str, Any]:
    """Add one line's usage into `total` (in place); a None cost makes the total cost unknown
    only when nothing else priced it. Keys an older line lacks (`attempts`, `retried`) read as 0."""
    if not part:
        return total
    for key in USAGE_KEYS:
        total[key] = int(total.get(key) or 0) + int(part.get(key) or 0)
    into = total.setdefault("retried", empty_retried())
    for cause, count in (part.get("retried") or {}).items():
        into[cause] = int(into.get(cause) or 0) + int(count or 0)
    for key in (*CACHE_KEYS, REPAIR_KEY, REASONING_KEY):
        if part.get(key):
            total[key] = int(total.get(key) or 0) + int(part[key])
    if part.get("cost_usd") is not None:
        total["cost_usd"] = float(total.get("cost_usd") or 0.0) + float(part["cost_usd"])
    return total


def cache_read_share(usage: dict[str, Any]) -> float | None:
    """The share of prompt tokens served from the provider's prompt cache, or None when the
    usage books no cache reads (the provider reported none, or does not report them)."""
    read, prompt = int(usage.get("cache_read_tokens") or 0), int(usage.get("prompt_tokens") or 0)
    return round(read / prompt, 4) if read and prompt else None


def sum_usage(parts: Iterable[dict[str, Any] | None]) -> dict[str, Any]:
    total = empty_usage()
    for part in parts:
        add_usage(total, part)
    return total


# The usage of the item the current task works on; None outside the runner.
ITEM_USAGE: ContextVar[dict[str, Any] | None] = ContextVar("baleen_item_usage", default=None)


def book_retry(cause: str) -> None:
    """A try that failed and is sent again (called by the backend's retry loop): one more
    attempt, counted by its cause (one of RETRY_CAUSES) on the current item's usage. No tokens:
    only answers are billed."""
    item = ITEM_USAGE.get()
    if item is not None:
        add_usage(item, {"attempts": 1, "retried": {cause: 1}})


class BudgetReached(FatalError):
    """A --max-cost or --max-tokens budget is spent: the run stops cleanly, resumable."""


@dataclass
class Accounting:
    model: str = ""
    price: Price | None = None
    batch: bool = False  # --batch: billed at the price's batch rates
    max_cost: float | None = None
    max_tokens: int | None = None
    requests: int = 0
    cached: int = 0
    failed: int = 0
    attempts: int = 0  # tries sent: one per answered or failed request, plus every retried try
    prompt_tokens: int = 0
    completion_tokens: int = 0
    cache_read_tokens: int = 0
    cache_write_tokens: int = 0
    reasoning_tokens: int = 0
    prior: dict[str, Any] = field(default_factory=dict)  # what earlier sessions' lines record

    @property
    def total_tokens(self) -> int:
        prior = int(self.prior.get("prompt_tokens") or 0) + int(self.prior.get("completion_tokens") or 0)
        return self.prompt_tokens + self.completion_tokens + prior

    @property
    def cost(self) -> float | None:
        now = self.cost_of(self.prompt_tokens, self.completion_tokens, self.cache_read_tokens,
                           self.cache_write_tokens)
        return None if now is None else now + float(self.prior.get("cost_usd") or 0.0)

    def cost_of(self, prompt_tokens: int, completion_tokens: int, cache_read_tokens: int = 0,
                cache_write_tokens: int = 0) -> float | None:
        if self.price is None:
            return None
        return cost_usd(self.price, prompt_tokens, completion_tokens, cache_read_tokens, self.batch,
                        cache_write_tokens=cache_write_tokens)

    def add(self, prompt_tokens: int, completion_tokens: int, cache_read_tokens: int = 0,
            cache_write_tokens: int = 0, *, reasoning_tokens: int = 0) -> None:
        """One answered request. Cache reads and writes are part of prompt_tokens, priced at the
        price's cached and cache-write rates; they are booked apart so the manifest shows how much
        of the prompt the provider's cache served. Reasoning tokens are part of completion_tokens,
        priced with them, and booked apart the same way."""
        self.requests += 1
        self.attempts += 1
        self.prompt_tokens += prompt_tokens
        self.completion_tokens += completion_tokens
        self.cache_read_tokens += cache_read_tokens
        self.cache_write_tokens += cache_write_tokens
        self.reasoning_tokens += reasoning_tokens
        cache = {key: n for key, n in zip(CACHE_KEYS, (cache_read_tokens, cache_write_tokens)) if n}
        if reasoning_tokens:
            cache[REASONING_KEY] = reasoning_tokens
        self._book(requests=1, attempts=1, prompt_tokens=prompt_tokens, completion_tokens=completion_tokens,
                   cost_usd=self.cost_of(prompt_tokens, completion_tokens, cache_read_tokens, cache_write_tokens),
                   **cache)

    def add_cached(self) -> None:
        self.cached += 1
        self._book(cached=1)

    def add_failed(self) -> None:
        """A request that ended without an answer: its last try is an attempt too."""
        self.failed += 1
        self.attempts += 1
        self._book(failed_requests=1, attempts=1)

    def add_repaired(self, count: int) -> None:
        """`count` lone surrogates repaired in the current item's input or answers."""
        if count:
            self._book(**{REPAIR_KEY: count})

    @staticmethod
    def _book(**part: Any) -> None:
        item = ITEM_USAGE.get()
        if item is not None:
            add_usage(item, part)

    def check_budget(self) -> None:
        """Raise BudgetReached once a budget is spent (called before each new request)."""
        if self.max_tokens is not None and self.total_tokens >= self.max_tokens:
            raise BudgetReached(f"token budget reached ({self.total_tokens} >= --max-total-tokens "
                                f"{self.max_tokens}); raise it and rerun the same command to continue")
        cost = self.cost
        if self.max_cost is not None and cost is not None and cost >= self.max_cost:
            raise BudgetReached(f"cost budget reached (${cost:.4f} >= --max-cost {self.max_cost}); "
                                "raise it and rerun the same command to continue")
