"""Per-run accounting: requests, tokens, cost, and the budgets that stop a run cleanly.

Prices are dollars per million tokens (input, output) for a few well-known models; the
table is overridable with --price IN,OUT. Unknown models cost "unknown", never a guess.
"""
from __future__ import annotations

from dataclasses import dataclass, field

from .errors import FatalError

PRICES_PER_MTOK: dict[str, tuple[float, float]] = {
    "gpt-3.5-turbo": (0.50, 1.50),
    "gpt-4o-mini": (0.15, 0.60),
    "gpt-4o": (2.50, 10.00),
    "gpt-4.1-mini": (0.40, 1.60),
    "gpt-4.1-nano": (0.10, 0.40),
    "gpt-4.1": (2.00, 8.00),
}


def price_for(model: str, override: tuple[float, float] | None = None) -> tuple[float, float] | None:
    if override:
        return override
    if model in PRICES_PER_MTOK:
        return PRICES_PER_MTOK[model]
    # dated snapshots ("gpt-4o-mini-2024-07-18") cost what their family costs
    for name in sorted(PRICES_PER_MTOK, key=len, reverse=True):
        if model.startswith(name + "-"):
            return PRICES_PER_MTOK[name]
    return None


class BudgetReached(FatalError):
    """A --max-cost or --max-tokens budget is spent: the run stops cleanly, resumable."""


@dataclass
class Accounting:
    model: str = ""
    price: tuple[float, float] | None = None
    max_cost: float | None = None
    max_tokens: int | None = None
    requests: int = 0
    cached: int = 0
    failed: int = 0
    prompt_tokens: int = 0
    completion_tokens: int = 0
    prior: dict[str, float] = field(default_factory=dict)  # totals of earlier sessions of this run

    @property
    def total_tokens(self) -> int:
        return self.prompt_tokens + self.completion_tokens + int(self.prior.get("total_tokens", 0))

    @property
    def cost(self) -> float | None:
        if self.price is None:
            return None
        now = (self.prompt_tokens * self.price[0] + self.completion_tokens * self.price[1]) / 1e6
        return now + float(self.prior.get("cost_usd") or 0.0)

    def add(self, prompt_tokens: int, completion_tokens: int) -> None:
        self.requests += 1
        self.prompt_tokens += prompt_tokens
        self.completion_tokens += completion_tokens

    def check_budget(self) -> None:
        """Raise BudgetReached once a budget is spent (called before each new request)."""
        if self.max_tokens is not None and self.total_tokens >= self.max_tokens:
            raise BudgetReached(f"token budget reached ({self.total_tokens} >= --max-total-tokens "
                                f"{self.max_tokens}); raise it and rerun the same command to continue")
        cost = self.cost
        if self.max_cost is not None and cost is not None and cost >= self.max_cost:
            raise BudgetReached(f"cost budget reached (${cost:.4f} >= --max-cost {self.max_cost}); "
                                "raise it and rerun the same command to continue")

    def summary(self) -> dict[str, float | int | None]:
        prior = self.prior
        return {
            "requests": self.requests + int(prior.get("requests", 0)),
            "cached": self.cached + int(prior.get("cached", 0)),
            "failed_requests": self.failed + int(prior.get("failed_requests", 0)),
            "prompt_tokens": self.prompt_tokens + int(prior.get("prompt_tokens", 0)),
            "completion_tokens": self.completion_tokens + int(prior.get("completion_tokens", 0)),
            "total_tokens": self.total_tokens,
            "cost_usd": None if self.cost is None else round(self.cost, 6),
        }
