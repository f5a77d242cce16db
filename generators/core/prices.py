"""Prices per model: list, cached-input and batch rates, in dollars per million tokens.

A minimal stand-in with the interface the price table will have: `Price`, `lookup_price` and
`cost_usd`. It reads today's table (generators/core/accounting.py, `price_for`); batch rates
default to half the list rates. A model without a price gives None: "cost unknown", never a guess.
"""
from __future__ import annotations

from dataclasses import dataclass

from generators.core.accounting import price_for


@dataclass(frozen=True)
class Price:
    """Dollars per million tokens; None for a rate the provider does not list."""

    input: float
    output: float
    cached_input: float | None = None
    batch_input: float | None = None
    batch_output: float | None = None


def lookup_price(model: str, override: Price | None = None) -> Price | None:
    """The price of `model` (the override when given), or None when the table has none."""
    if override is not None:
        return override
    found = price_for(model)
    return Price(*found) if found is not None else None


def cost_usd(price: Price, prompt_tokens: int, completion_tokens: int, cached_tokens: int = 0,
             batch: bool = False) -> float:
    """Dollars for these tokens; `cached_tokens` (of prompt_tokens) at the cached-input rate
    where one is listed; `batch` at the batch rates (half the list rates where none is listed)."""
    rate_in, rate_out = price.input, price.output
    if batch:
        rate_in = price.batch_input if price.batch_input is not None else price.input / 2
        rate_out = price.batch_output if price.batch_output is not None else price.output / 2
    cached_rate = price.cached_input if price.cached_input is not None and not batch else rate_in
    plain = prompt_tokens - cached_tokens
    return (plain * rate_in + cached_tokens * cached_rate + completion_tokens * rate_out) / 1e6
