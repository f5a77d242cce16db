"""What tokens cost: one dated price table (prices.json, shipped with the package), looked up by
model name and overridable with --price IN,OUT[,CACHED]; every cost in a run goes through here.

Rates are dollars per million tokens. Prompt tokens read from a provider's prompt cache are
priced at the cached rate, those written into it (Anthropic) at the cache-write rate, the rest of
the prompt at the input rate, and every completion token (reasoning tokens are part of them) at
the output rate. With --batch the batch rates apply: the table's, else half the list price (both
providers with a Batch API bill half). A model the table does not know has no price: its cost is
"unknown", never a guess.
"""
from __future__ import annotations

import json
import math
import re
from dataclasses import dataclass
from functools import lru_cache
from importlib import resources
from typing import Any

import click

TABLE = "prices.json"
BATCH_SHARE = 0.5  # a price without batch rates (--price) is billed half under --batch
# What may follow a listed name in a dated snapshot's name: "-2024-07-18", "-20250514", "-latest".
SNAPSHOT = re.compile(r"\d{4}-\d{2}-\d{2}|\d{8}|latest")
USAGE = "expected IN,OUT[,CACHED] dollars per million input, output [and cached input] tokens, e.g. 0.15,0.60,0.075"


@dataclass(frozen=True)
class Price:
    """Dollars per million tokens. cached_input None: cache reads cost the input rate;
    batch_* None: half of the list rate; cache_write None: cache writes cost the input rate."""

    input: float
    output: float
    cached_input: float | None = None
    batch_input: float | None = None
    batch_output: float | None = None
    cache_write: float | None = None


def lookup_price(model: str, override: Price | None = None) -> Price | None:
    """The price of `model`: the override (--price) when given, else the table's; a dated
    snapshot costs what its family costs; None when the table does not know the model."""
    if override is not None:
        return override
    table = price_table()
    if model in table:
        return table[model]
    for name in sorted(table, key=len, reverse=True):
        if model.startswith(name + "-") and SNAPSHOT.fullmatch(model[len(name) + 1:]):
            return table[name]
    return None


def cost_usd(price: Price, prompt_tokens: int, completion_tokens: int, cached_tokens: int = 0,
             batch: bool = False, cache_write_tokens: int = 0) -> float:
    """Dollars for one request or a sum of them. cached_tokens and cache_write_tokens are part
    of prompt_tokens (as the backends book them)."""
    cached = min(max(cached_tokens, 0), prompt_tokens)
    written = min(max(cache_write_tokens, 0), prompt_tokens - cached)
    rate_in, rate_out = price.input, price.output
    rate_cached = price.input if price.cached_input is None else price.cached_input
    rate_write = price.input if price.cache_write is None else price.cache_write
    if batch:
        rate_in = price.input * BATCH_SHARE if price.batch_input is None else price.batch_input
        rate_out = price.output * BATCH_SHARE if price.batch_output is None else price.batch_output
        share = rate_in / price.input if price.input else BATCH_SHARE  # the cache rates get the same discount
        rate_cached, rate_write = rate_cached * share, rate_write * share
    plain = prompt_tokens - cached - written
    return (plain * rate_in + cached * rate_cached + written * rate_write + completion_tokens * rate_out) / 1e6


def parse_price(text: str) -> Price:
    """--price IN,OUT[,CACHED] as a Price; anything else is a click usage error (one line, exit 2)."""
    parts = [part.strip() for part in str(text).split(",")]
    try:
        rates = [float(part) for part in parts]
    except ValueError:
        raise click.BadParameter(USAGE) from None
    if len(rates) not in (2, 3) or any(not math.isfinite(r) or r < 0 for r in rates):
        raise click.BadParameter(USAGE)
    return Price(input=rates[0], output=rates[1], cached_input=rates[2] if len(rates) == 3 else None)


def table_date() -> str:
    """The date the table's prices were read (the `date` in prices.json)."""
    return str(_raw_table()["date"])


@lru_cache(maxsize=1)
def price_table() -> dict[str, Price]:
    """Every model in prices.json, its batch rates filled in from its provider's discount."""
    table: dict[str, Price] = {}
    for provider in _raw_table()["providers"].values():
        discount = provider.get("batch_discount")
        for name, rates in provider["models"].items():
            table[name] = _price(rates, discount)
    return table


def _price(rates: dict[str, Any], discount: float | None) -> Price:
    batch_input, batch_output = rates.get("batch_input"), rates.get("batch_output")
    if discount is not None:
        batch_input = rates["input"] * discount if batch_input is None else batch_input
        batch_output = rates["output"] * discount if batch_output is None else batch_output
    return Price(input=rates["input"], output=rates["output"], cached_input=rates.get("cached_input"),
                 batch_input=batch_input, batch_output=batch_output, cache_write=rates.get("cache_write"))


@lru_cache(maxsize=1)
def _raw_table() -> dict[str, Any]:
    return json.loads(resources.files("generators.core").joinpath(TABLE).read_text("utf-8"))
