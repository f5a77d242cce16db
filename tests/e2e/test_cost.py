"""The cost of a run, end to end: the real CLI against loopback servers that report cached and
reasoning tokens. The manifest's cost is the hand computation from the price table (cached
prompt tokens at the cached rate, reasoning tokens inside the completion tokens at the output
rate); --price overrides the table; a model the table does not know costs "unknown". The
requests of one dialog share their prefix and carry the dialog's prompt_cache_key (OpenAI) or
cache_control on the system block (Anthropic)."""
from __future__ import annotations

import json

import pytest

from tests.anthropic_server import AnthropicServer
from tests.chat_server import ChatServer
from tests.helpers import REPO, gen_env, read_jsonl, run_gen, write_seeds

SEEDS = ["How do tides work?", "Why do leaves change colour?", "What makes bread rise?"]
TABLE = json.loads((REPO / "generators" / "core" / "prices.json").read_text("utf-8"))


def rates(provider: str, model: str) -> dict[str, float]:
    return TABLE["providers"][provider]["models"][model]


def person_reply(body: dict) -> str:
    """The person asks one follow-up, then ends; the assistant answers with the question."""
    first = body["messages"][0]
    if first["role"] == "system" and "role-playing" in str(first["content"]):
        asked = sum(1 for m in body["messages"] if m["role"] == "assistant")
        return "[END]" if asked >= 2 else f"Follow-up question number {asked}?"
    return "Here is a complete and careful answer about " + str(body["messages"][-1]["content"])


def selfchat(server: ChatServer, tmp_path, model: str, *extra: str, backend: str = "openai", url: str = ""):
    seeds = write_seeds(tmp_path / "seeds.jsonl", SEEDS)
    out = tmp_path / "out"
    proc = run_gen("selfchat", "--seeds", seeds, "--field", "question", "--backend", backend,
                   "--base-url", url or server.base_url, "--model", model, "--out", out,
                   "--cache-dir", tmp_path / "cache", "--no-progress", *extra,
                   env=gen_env(OPENAI_API_KEY="k", ANTHROPIC_API_KEY="fake-anthropic-key"))
    assert proc.returncode == 0, proc.stderr
    return proc, json.loads((out / "manifest.json").read_text()), read_jsonl(out / "data.jsonl")


def hand_cost(usages: list[dict], price: dict[str, float]) -> float:
    """Dollars for the answers the server sent, from its own usage reports and the table's rates."""
    total = 0.0
    for usage in usages:
        cached = (usage.get("prompt_tokens_details") or {}).get("cached_tokens", 0)
        total += ((usage["prompt_tokens"] - cached) * price["input"]
                  + cached * price.get("cached_input", price["input"])
                  + usage["completion_tokens"] * price["output"]) / 1e6
    return total


def test_agents_dialogs_cost_what_the_table_says_with_cached_and_reasoning_tokens(tmp_path):
    with ChatServer(reply=person_reply, cached_tokens="prefix", reasoning_tokens=40) as server:
        proc, manifest, records = selfchat(server, tmp_path, "gpt-4.1-2025-04-14", "--mode", "agents",
                                           "--max-turns", "4", "--user-model", "gpt-4.1-2025-04-14")
        usages, bodies = list(server.usages), [r["body"] for r in server.requests]
        report = run_gen("report", tmp_path / "out", "--out", tmp_path / "report.md")
    usage = manifest["usage"]
    cached = sum(u["prompt_tokens_details"]["cached_tokens"] for u in usages)
    assert len(records) == 3 and usage["requests"] == len(usages) == 3 * 4  # 2 person + 2 assistant turns each
    assert usage["completion_tokens"] == sum(u["completion_tokens"] for u in usages)  # reasoning inside
    assert cached > 0 and usage["cache_read_tokens"] == cached
    assert usage["cache_read_share"] == round(cached / usage["prompt_tokens"], 4)
    expected = hand_cost(usages, rates("openai", "gpt-4.1"))
    assert usage["cost_usd"] == pytest.approx(expected, abs=1e-6)
    assert expected < hand_cost([{**u, "prompt_tokens_details": {}} for u in usages], rates("openai", "gpt-4.1"))
    assert sum(r["meta"]["usage"]["cost_usd"] for r in records) == pytest.approx(expected, abs=1e-6)
    assert f"${expected:.4f}" in proc.stdout

    # every request of a dialog carries its id; each side's requests grow at the end of one prefix
    ids = {r["id"] for r in records}
    assert {b["prompt_cache_key"] for b in bodies} == ids
    for dialog in ids:
        for side in ("person", "assistant"):
            mine = [b["messages"] for b in bodies if b["prompt_cache_key"] == dialog
                    and ("role-playing" in b["messages"][0]["content"]) == (side == "person")]
            assert len(mine) == 2 and mine[0][0]["role"] == "system"
            assert mine[1][:len(mine[0])] == mine[0], (dialog, side)

    assert report.returncode == 0, report.stderr
    row = next(line for line in (tmp_path / "report.md").read_text().splitlines() if line.startswith("| out |")
               and line.count("|") > 12)  # the Requests table's row
    assert row.endswith(f"| {usage['cache_read_share']:.0%} |")


def test_price_flag_overrides_the_table_with_its_own_cached_rate(tmp_path):
    with ChatServer(cached_tokens=10) as server:
        _, manifest, _ = selfchat(server, tmp_path, "gpt-4.1", "--price", "3,12,0.3")
        usages = list(server.usages)
    assert manifest["usage"]["cache_read_tokens"] == 10 * len(SEEDS)
    expected = hand_cost(usages, {"input": 3.0, "cached_input": 0.3, "output": 12.0})
    assert manifest["usage"]["cost_usd"] == pytest.approx(expected, abs=1e-6)


def test_a_model_the_table_does_not_know_costs_unknown(tmp_path):
    with ChatServer(cached_tokens=10) as server:
        proc, manifest, records = selfchat(server, tmp_path, "gpt-4o-audio-preview")
    assert "cost unknown" in proc.stdout and manifest["usage"]["cost_usd"] is None
    assert all(r["meta"]["usage"]["cost_usd"] is None for r in records)
    assert manifest["usage"]["cache_read_share"] > 0  # the cache's share is shown all the same


def test_anthropic_dialogs_mark_the_system_block_and_price_cache_reads_and_writes(tmp_path):
    with AnthropicServer(reply=person_reply, cache_read_tokens=6, cache_write_tokens=2) as server:
        _, manifest, records = selfchat(server, tmp_path, "claude-haiku-4-5", "--mode", "agents", "--max-turns", "4",
                                        backend="anthropic", url=server.url)
        bodies = list(server.messages)
    assert len(records) == 3 and len(bodies) == 12
    assert all(b["system"][-1]["cache_control"] == {"type": "ephemeral"} for b in bodies)
    usage = manifest["usage"]
    price = rates("anthropic", "claude-haiku-4-5")
    reads, writes = usage["cache_read_tokens"], usage["cache_write_tokens"]
    assert (reads, writes) == (6 * 12, 2 * 12)
    expected = ((usage["prompt_tokens"] - reads - writes) * price["input"] + reads * price["cached_input"]
                + writes * price["cache_write"] + usage["completion_tokens"] * price["output"]) / 1e6
    assert usage["cost_usd"] == pytest.approx(expected, abs=1e-6)
