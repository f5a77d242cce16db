"""The price table and what a request costs: cached prompt tokens at the cached rate, cache writes
at the write rate, --batch at batch rates, --price over the table, and no price (never a guess)
for a model the table does not know."""
from __future__ import annotations

import json
import re

import click
import pytest

from generators.core.accounting import Accounting
from generators.core.prices import Price, cost_usd, lookup_price, parse_price, price_table, table_date
from tests.helpers import REPO

TABLE = json.loads((REPO / "generators" / "core" / "prices.json").read_text("utf-8"))


def test_the_table_is_dated_and_every_model_has_its_rates():
    assert re.fullmatch(r"\d{4}-\d{2}-\d{2}", TABLE["date"]) and table_date() == TABLE["date"]
    models = {name: rates for provider in TABLE["providers"].values() for name, rates in provider["models"].items()}
    assert {"gpt-4o", "gpt-4o-mini", "gpt-4.1", "gpt-4.1-mini", "gpt-4.1-nano", "gpt-3.5-turbo"} <= set(models)
    assert any(name.startswith("claude-") for name in models)
    for name, rates in models.items():
        assert rates["input"] > 0 and rates["output"] >= rates["input"], name
        assert rates.get("cached_input", rates["input"]) <= rates["input"], name
    assert set(price_table()) == set(models)


def test_the_table_ships_as_package_data():
    assert '"generators.core" = ["prices.json"]' in (REPO / "pyproject.toml").read_text("utf-8")


def test_dated_snapshots_cost_what_their_family_costs_and_nothing_else_is_guessed():
    mini = lookup_price("gpt-4o-mini")
    assert mini == Price(input=0.15, output=0.60, cached_input=0.075, batch_input=0.075, batch_output=0.30)
    assert lookup_price("gpt-4o-mini-2024-07-18") == mini  # not gpt-4o's, the longer name wins
    assert lookup_price("claude-sonnet-4-5-20250929") == lookup_price("claude-sonnet-4-5")
    assert lookup_price("claude-3-5-haiku-latest") == lookup_price("claude-3-5-haiku")
    assert lookup_price("gpt-4o-2024-05-13").input == 5.00  # a snapshot listed with its own price
    for unknown in ("teacher", "gpt-4o-audio-preview", "o3-pro", "my-gpt-4o", "gpt-4"):
        assert lookup_price(unknown) is None, unknown
    override = Price(1.0, 2.0)
    assert lookup_price("gpt-4o", override) is override and lookup_price("teacher", override) is override


def test_cached_prompt_tokens_cost_the_cached_rate_and_reasoning_is_output():
    price = lookup_price("gpt-4.1")  # 2.00 in, 0.50 cached, 8.00 out
    # 1,000 prompt tokens of which 600 cached; 300 completion tokens (reasoning included)
    assert cost_usd(price, 1000, 300, cached_tokens=600) == pytest.approx((400 * 2 + 600 * 0.5 + 300 * 8) / 1e6)
    assert cost_usd(price, 1000, 300) == pytest.approx((1000 * 2 + 300 * 8) / 1e6)
    no_cache_rate = lookup_price("gpt-3.5-turbo")  # no cached rate: cached tokens are plain input
    assert cost_usd(no_cache_rate, 1000, 0, cached_tokens=600) == pytest.approx(1000 * 0.5 / 1e6)


def test_cache_writes_cost_the_write_rate_and_batch_discounts_every_rate():
    haiku = lookup_price("claude-haiku-4-5")  # 1.00 in, 0.10 read, 1.25 write, 5.00 out
    full = (200 * 1.00 + 500 * 0.10 + 300 * 1.25 + 100 * 5.00) / 1e6
    assert cost_usd(haiku, 1000, 100, cached_tokens=500, cache_write_tokens=300) == pytest.approx(full)
    assert cost_usd(haiku, 1000, 100, cached_tokens=500, batch=True, cache_write_tokens=300) == pytest.approx(full / 2)
    explicit = Price(2.0, 8.0, cached_input=1.0, batch_input=1.5, batch_output=4.0)
    assert cost_usd(explicit, 100, 10, cached_tokens=40, batch=True) == pytest.approx(
        (60 * 1.5 + 40 * 1.0 * 0.75 + 10 * 4.0) / 1e6)
    assert cost_usd(Price(1.0, 2.0), 1000, 1000, batch=True) == pytest.approx(1.5e-3)  # --price: half


def test_accounting_books_each_answer_at_the_cached_rate():
    acc = Accounting(model="gpt-4.1", price=lookup_price("gpt-4.1"))
    acc.add(1000, 300, cache_read_tokens=600)
    acc.add(500, 100)
    assert acc.cost == pytest.approx((400 * 2 + 600 * 0.5 + 300 * 8 + 500 * 2 + 100 * 8) / 1e6)
    batch = Accounting(model="gpt-4.1", price=lookup_price("gpt-4.1"), batch=True)
    batch.add(1000, 300, cache_read_tokens=600)
    assert batch.cost == pytest.approx((400 * 2 + 600 * 0.5 + 300 * 8) / 2e6)
    assert Accounting(model="teacher").cost is None


def test_price_flag_takes_two_or_three_rates():
    assert parse_price("0.15,0.60") == Price(0.15, 0.60)
    assert parse_price(" 3, 12 ,0.3") == Price(3.0, 12.0, cached_input=0.3)
    for bad in ("0.15", "a,b", "1,2,3,4", "-1,2", "1,inf", ""):
        with pytest.raises(click.BadParameter, match=r"IN,OUT\[,CACHED\]"):
            parse_price(bad)


def test_the_docs_show_every_rate_of_the_table():
    docs = (REPO / "docs" / "backends.md").read_text("utf-8")
    assert TABLE["date"] in docs

    def shown(rate: float | None) -> str:
        return "-" if rate is None else f"{rate:g}"
    for name, p in price_table().items():
        row = " | ".join(shown(r) for r in (p.input, p.cached_input, p.cache_write, p.output, p.batch_input,
                                             p.batch_output))
        assert f"| `{name}` | {row} |" in docs, name
