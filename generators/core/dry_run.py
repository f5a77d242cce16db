"""--dry-run: what a run would send and what it would cost, before anything is sent.

The skeleton (generators/core/stage.py) calls `print_estimate` after the same checks and input
reading as a real run, so bad input still exits 2. The stage builds its engines (no model is
loaded, no cache opened) and lists the first request of every item through its real prompt
builders (`Stage.dry_run`). Prompt tokens are counted with the model's tokenizer where the
model is local (hf, vllm, the embedded model: only the tokenizer loads, never the weights),
else approximated as characters / 4 and said so. Prices come from generators/core/prices.py;
a model without a price gives "cost unknown", never a guess. Nothing is sent and nothing is
written: no run folder, no lock, no manifest, no cache entry.
"""
from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass, field
from typing import Any, Callable, Iterable, Protocol

import click

from generators.backends.base import Backend, ChatRequest, render_prompt
from generators.core.engine import Engine
from generators.core.errors import first_line
from generators.core.prices import cost_usd, lookup_price

CHARS_PER_TOKEN = 4  # the approximation for a model whose tokenizer is not at hand
CHUNK = 512  # requests tokenized at once (a corpus may stream far more than fit in memory)


@dataclass(frozen=True)
class Planned:
    """One first request a run would send: the item it belongs to, the engine it goes to."""

    item: str
    engine: Engine
    request: ChatRequest


@dataclass
class DryRun:
    """What a stage tells the estimate: the first request of every item it would send (items it
    would not send, such as an over-long seed, are left out), and how many requests one item
    may send in all, with how that is counted (the later turns of a dialog, retries)."""

    requests: Iterable[Planned]
    unit: str = "item"
    most_per_item: int = 1
    how: str = ""
    notes: list[str] = field(default_factory=list)


Count = Callable[[list[ChatRequest]], list[int]]


class Estimated(Protocol):
    """What the estimate needs of a stage (generators.core.stage.Stage, which imports this)."""

    name: str
    opts: Any
    engines: list[Engine]

    def build_engines(self) -> None: ...

    def dry_run(self) -> DryRun: ...


def approximate(requests: list[ChatRequest]) -> list[int]:
    """Characters of every message's content / 4, rounded up per request."""
    return [math.ceil(sum(len(content) for _, content in r.messages) / CHARS_PER_TOKEN) for r in requests]


def load_tokenizer(path: str) -> Any:
    """The model's tokenizer alone, never its weights: its tokenizer.json and chat template
    (PreTrainedTokenizerFast imports no torch, seconds faster), else whatever AutoTokenizer finds."""
    from transformers import PreTrainedTokenizerFast

    try:
        return PreTrainedTokenizerFast.from_pretrained(path)
    except Exception:  # noqa: BLE001 - no tokenizer.json: the model's own tokenizer class
        from transformers import AutoTokenizer

        return AutoTokenizer.from_pretrained(path)


def token_counter(backend: Backend) -> tuple[Count, str]:
    """How the prompt tokens of `backend`'s requests are counted, and the words that say how:
    a local model's own tokenizer over the prompt it would feed the model (its chat template),
    else the characters / 4 approximation."""
    path = getattr(backend, "model_path", None) if backend.capabilities.local else None
    if not path:
        return approximate, f"≈ chars/4, no tokenizer for {backend.model}"
    try:
        tokenizer = load_tokenizer(path)
    except Exception as exc:  # noqa: BLE001 - an estimate still helps; it says why it is rougher
        return approximate, f"≈ chars/4, the tokenizer of {backend.model} did not load: {first_line(exc, 120)}"

    def count(requests: list[ChatRequest]) -> list[int]:
        texts = [render_prompt(tokenizer, r) for r in requests]
        return [len(ids) for ids in tokenizer(texts, add_special_tokens=False)["input_ids"]]

    return count, f"the tokenizer of {backend.model}"


@dataclass
class Tally:
    """The first requests to one engine: how many, their prompt tokens, their --max-tokens."""

    engine: Engine
    count: Count
    how: str
    requests: int = 0
    input_tokens: int = 0
    max_output: int | None = 0  # None: a request without a token limit
    limits: set[int | None] = field(default_factory=set)  # the --max-tokens of the requests
    pending: list[ChatRequest] = field(default_factory=list)

    def add(self, request: ChatRequest) -> None:
        self.pending.append(request)
        if len(self.pending) >= CHUNK:
            self.flush()

    def flush(self) -> None:
        if not self.pending:
            return
        self.input_tokens += sum(self.count(self.pending))
        self.requests += len(self.pending)
        for request in self.pending:
            limit = request.sampling.max_tokens or getattr(self.engine.backend, "default_max_tokens", None)
            self.limits.add(limit)
            self.max_output = None if limit is None or self.max_output is None else self.max_output + limit
        self.pending.clear()


def tally(plan: DryRun) -> tuple[list[Tally], int]:
    """Every first request counted, per engine; and the number of items."""
    tallies: dict[int, Tally] = {}
    items: set[str] = set()
    for planned in plan.requests:
        items.add(planned.item)
        found = tallies.get(id(planned.engine))
        if found is None:
            count, how = token_counter(planned.engine.backend)
            found = tallies[id(planned.engine)] = Tally(planned.engine, count, how)
        found.add(planned.request)
    for found in tallies.values():
        found.flush()
    return list(tallies.values()), len(items)


def _plural(n: int, word: str) -> str:
    return f"{n} {word}{'' if n == 1 else 's'}"


def estimate_lines(stage: Estimated, plan: DryRun) -> list[str]:
    """The estimate, as the lines printed. Each first request stands for `at_most / first`
    requests in all (its item's later turns and retries), bounded by its own --max-tokens."""
    tallies, items = tally(plan)
    first = sum(t.requests for t in tallies)
    at_most = items * plan.most_per_item
    lines = [f"dry run of gen {stage.name}: nothing was sent and no folder was written",
             f"requests: {first} first ({_plural(items, plan.unit)}), at most {at_most} in all"
             + (f" ({plan.how})" if plan.how else "")]
    later = at_most / first if first else 0.0
    override = stage.opts.price  # --price, parsed into a Price by its flag
    cost = {"list": [0.0, 0.0], "batch": [0.0, 0.0]}
    unknown: list[str] = []
    for t in tallies:
        model = t.engine.model
        lines.append(f"input tokens: {t.input_tokens} in the first requests to {model} ({t.how})")
        output = None if t.max_output is None else math.ceil(t.max_output * later)
        limits = sorted(limit for limit in t.limits if limit is not None)
        per = (f"--max-tokens {limits[0]}" if len(limits) == 1 else "its own --max-tokens") + " per request"
        lines.append(f"output tokens: 0 .. {output} to {model} ({per})" if output is not None else
                     f"output tokens: 0 .. no bound to {model} (no --max-tokens)")
        price = lookup_price(model, override)
        if price is None or output is None:
            unknown.append(f"no price for {model}" if price is None else f"no output bound for {model}")
            continue
        for kind, batch in (("list", False), ("batch", True)):
            cost[kind][0] += cost_usd(price, t.input_tokens, 0, batch=batch)
            cost[kind][1] += cost_usd(price, t.input_tokens, output, batch=batch)
    if unknown:
        hints = [hint for hint, needed in (("--price IN,OUT in dollars per million tokens", "no price"),
                                           ("--max-tokens", "no output bound"))
                 if any(reason.startswith(needed) for reason in unknown)]
        lines.append(f"cost unknown: {', '.join(unknown)} (give {' and '.join(hints)})")
    else:
        lines.append("cost: " + ", ".join(f"${low:.4f} .. ${high:.4f} at {kind} price"
                                          for kind, (low, high) in cost.items())
                     + " (the first requests' input alone .. every request writing all its --max-tokens)")
    if plan.most_per_item > 1:
        lines.append("the later requests' input is not in these figures: their prompts hold answers not yet "
                     "written")
    lines.extend(plan.notes)
    return lines


async def print_estimate(stage: Estimated) -> None:
    """Build the stage's engines (no model loads, no response cache opens), print the estimate,
    close them, and end the command with exit 0."""
    stage.opts = dataclasses.replace(stage.opts, no_cache=True, executor="local")
    try:
        stage.build_engines()
        for line in estimate_lines(stage, stage.dry_run()):
            click.echo(line)
    finally:
        for engine in stage.engines:
            await engine.aclose()
    raise click.exceptions.Exit(0)
