"""`gen eval winrate`: is the new model better than the old one? Both answer the same
instructions (greedy, the same tag as a system sentence); a judge compares the two answers twice,
once in each order, so a judge that favours a position scores a tie; ties are allowed. Reported:
the win rate with a normal 95% interval over instructions, wins/ties/losses, the mean answer
lengths, how often the two orders agreed, and a length-controlled rate (AlpacaEval 2's idea,
fitted on this run alone; only from 20 instructions on)."""
from __future__ import annotations

from dataclasses import dataclass, replace
from functools import cached_property
from pathlib import Path
from typing import Any, Iterator

import click

import prompts
from generators.core.adapters import adapter_identity
from generators.backends.base import ChatRequest, Sampling
from generators.backends.registry import names as backend_names
from generators.core.dry_run import DryRun, Planned
from generators.core.engine import Engine
from generators.core.errors import UsageError
from generators.core.flags import flag
from generators.core.guides import pick, reasoned_regex, retry_messages, form_of, with_guide
from generators.core.options import RunOptions, backend_kind, engine_settings, make_backend
from generators.core.records import derive_seed, stable_id
from generators.core.runner import Item, Kept, Rejected
from generators.core.stage import Generation

from curation.rate import attempt_sampling
from curation.eval.base import EvalStage
from curation.eval.instructions import load_instructions
from curation.eval.metrics import length_controlled, mean_interval
from curation.eval.verdict import VERDICT_FORM, VERDICT_LINE, VERDICT_SCHEMA, outcome, parse_verdict

JUDGE_TEMPLATE = "winrate_judge"
TAGS = ("seed", "augmented", "none")
ANSWER_SAMPLING = {"temperature": 0.0, "max_tokens": 512}
JUDGE_SAMPLING = Sampling(temperature=0.0, max_tokens=512)
JUDGE_RETRIES = 1
MIN_LC_ITEMS = 20


@dataclass(kw_only=True)
class WinrateSettings:
    """Each field that is a flag declares it (generators/core/flags.py); --adapter is the eval commands' own."""

    instructions: Path = flag(
        "--instructions", type=click.Path(path_type=Path), metavar="FILE",
        help="Instructions to answer: {instruction} lines (e.g. AlpacaEval's 805), or records.")
    adapter: str | None = None
    baseline_adapter: str | None = flag(
        "--baseline-adapter", default=None, metavar="DIR",
        help="The adapter to compare against (default: the base model without adapter).")
    baseline_model: str | None = flag(
        "--baseline-model", default=None, metavar="NAME",
        help="The baseline's model name when a server answers for both (--backend openai).")
    judge_model: str = flag("--judge-model", metavar="NAME", help="The judge's model name.")
    judge_base_url: str | None = flag(
        "--judge-base-url", default=None, metavar="URL",
        help="The judge's OpenAI-compatible endpoint (default: --base-url); key from OPENAI_API_KEY.")
    judge_backend: str = flag("--judge-backend", type=click.Choice(backend_names()), default="openai",
                              show_default=True, help="The judge's backend (openai: any OpenAI-compatible server).")
    tag: str = flag("--tag", type=click.Choice(["seed", "augmented", "none"]), default="seed", show_default=True,
                    help="The tag sentence both models get as the system message (as they were trained).")
    out: Path = flag("--out", type=click.Path(path_type=Path), default=Path("runs/eval-winrate"), show_default=True,
                     help="Output folder (judgements.jsonl, manifest.json, items/).")


class WinrateStage(EvalStage):
    name = "eval-winrate"
    results_name = "judgements.jsonl"

    def __init__(self, config: WinrateSettings, opts: RunOptions) -> None:
        super().__init__(opts, config.out, adapter=config.adapter)
        self.config = config
        self.judge_opts = replace(opts, backend=config.judge_backend, base_url=config.judge_base_url or opts.base_url,
                                  model=config.judge_model, batch=False)

    def check(self) -> None:
        c = self.config
        if c.baseline_model is None and c.baseline_adapter == c.adapter:
            raise UsageError("the model and the baseline are the same; give --baseline-adapter (or "
                             "--baseline-model) for the model to compare against")
        if c.baseline_adapter and not backend_kind(self.opts).capabilities.multi_instance:
            raise UsageError(f"--backend {self.opts.resolved_backend()} cannot hold two models in one process; "
                             "serve both adapters (vllm serve BASE --enable-lora --lora-modules new=A old=B) and use "
                             "--backend openai --model new --baseline-model old")

    def load_inputs(self) -> None:
        self.instructions = load_instructions(self.config.instructions, self.opts.limit)

    def build_engines(self) -> None:
        super().build_engines()
        c = self.config
        self.baseline = self.add_engine(make_backend(self.opts, model=c.baseline_model, adapter=c.baseline_adapter,
                                                     run_dir=str(self.out)), share_with=self.engine)
        self.judge = self.add_engine(make_backend(self.judge_opts, model=c.judge_model, run_dir=str(self.out)),
                                     share_with=self.engine)

    @cached_property
    def answers(self) -> Generation:
        """How both models answer, derived once: sampling, the tag's system sentence (its template
        id), and the identity of every model involved, which each item id hashes."""
        assert self.engine is not None
        c = self.config
        sampling = self.opts.sampling(**ANSWER_SAMPLING)
        tag = prompts.template_id(f"tag_{c.tag}") if c.tag != "none" else None
        identity = {
            "model": {**self.engine_settings(), "adapter": adapter_identity(c.adapter) if c.adapter else None},
            "baseline": {**engine_settings(self.opts, self.baseline.backend),
                         "adapter": adapter_identity(c.baseline_adapter) if c.baseline_adapter else None},
            "judge": {**engine_settings(self.judge_opts, self.judge.backend),
                      "template": prompts.template_id(JUDGE_TEMPLATE),
                      "sampling": self.judge_sampling.describe(), "retries": JUDGE_RETRIES,
                      # only when on, so folders judged before --constrained still resume with off
                      **({"constrained": self.opts.constrained} if self.opts.constrained != "off" else {})},
            "answers": {"sampling": sampling.describe(), "tag": tag}}
        return Generation(sampling=sampling, template=tag or "", identity=identity)

    @cached_property
    def judge_sampling(self) -> Sampling:
        """The judge's sampling, with the guide its backend honours under --constrained auto."""
        guide = pick(self.judge.backend.capabilities, self.opts.constrained,
                     regex=reasoned_regex(JUDGE_SAMPLING.max_tokens, VERDICT_LINE), json_schema=VERDICT_SCHEMA)
        return with_guide(JUDGE_SAMPLING, guide)

    @cached_property
    def system(self) -> str | None:
        """The system sentence of --tag, or None for --tag none."""
        return prompts.render(f"tag_{self.config.tag}") if self.config.tag != "none" else None

    def settings(self) -> dict[str, Any]:
        return self.answers.identity

    def input_summary(self) -> dict[str, Any]:
        return {"instructions": str(self.config.instructions), "count": len(self.instructions), "limit": self.opts.limit}

    def eval_items(self) -> list[Item]:
        return [Item(id=stable_id("eval-winrate", text, self.answers.identity), source="eval",
                     input={"instruction": text[:500]}, extra={"instruction": text}) for text in self.instructions]

    def answer_request(self, instruction: str, seed: int) -> ChatRequest:
        """What both models are asked: the tag's system sentence and the instruction."""
        messages = ([{"role": "system", "content": self.system}] if self.system else []) + \
                   [{"role": "user", "content": instruction}]
        return ChatRequest.of(messages, replace(self.answers.sampling, seed=seed))

    async def _answer(self, engine: Engine, instruction: str, seed: int) -> str:
        result = await engine.complete(self.answer_request(instruction, seed))
        return result.text.strip()

    def dry_run(self) -> DryRun:
        """Both models' answers to every instruction; the judge's requests hold those answers, so
        they are counted at their output bound only."""
        assert self.engine is not None

        def requests() -> Iterator[Planned]:
            for item in self.work_items:
                request = self.answer_request(item.extra["instruction"], derive_seed(self.opts.seed, item.id))
                yield Planned(item.id, self.engine, request)
                yield Planned(item.id, self.baseline, request)

        judged = 2 * (1 + JUDGE_RETRIES)
        return DryRun(requests(), unit="instruction", most_per_item=2 + judged,
                      how=f"per instruction 2 answers and at most {judged} judge requests: both orders, "
                          f"{JUDGE_RETRIES} retry each")

    async def _judge(self, instruction: str, first: str, second: str, seed: int) -> tuple[str | None, str]:
        messages = [{"role": "user", "content": prompts.render(JUDGE_TEMPLATE, instruction=instruction,
                                                               first=first, second=second)}]
        raw = ""
        for attempt in range(JUDGE_RETRIES + 1):
            sampling = attempt_sampling(replace(self.judge_sampling, seed=seed), attempt)
            sent = messages
            if attempt == 1 and self.opts.constrained == "auto":  # the one retry tells the judge what was wrong
                sent = retry_messages(messages, raw, "it has no verdict line with 1, 2 or tie",
                                      form_of(sampling.guide, VERDICT_FORM))
            result = await self.judge.complete(ChatRequest.of(sent, sampling))
            raw = result.text
            verdict = parse_verdict(raw)
            if verdict is not None:
                return verdict, raw
        return None, raw

    async def work(self, item: Item) -> Kept | Rejected:
        assert self.engine is not None
        text = item.extra["instruction"]
        seed = derive_seed(self.opts.seed, item.id)
        answer = await self._answer(self.engine, text, seed)
        baseline = await self._answer(self.baseline, text, seed)
        first, first_raw = await self._judge(text, answer, baseline, seed)
        swapped, swapped_raw = await self._judge(text, baseline, answer, seed + 1)
        line: dict[str, Any] = {
            "id": item.id, "instruction": text, "answer": answer, "baseline": baseline,
            "verdict_answer_first": first, "verdict_baseline_first": swapped,
            "outcome": outcome(first, swapped) if first and swapped else None,
            "answer_words": len(answer.split()), "baseline_words": len(baseline.split()),
            "meta": {"judge_raw": [first_raw, swapped_raw]}}
        if line["outcome"] is None:
            return Rejected(line, "unparsed_verdict")
        return Kept([line])

    def result_row(self, line: dict[str, Any], rejected: str | None) -> dict[str, Any]:
        row = {k: line.get(k) for k in ("id", "instruction", "answer", "baseline", "verdict_answer_first",
                                         "verdict_baseline_first", "outcome", "answer_words", "baseline_words")}
        row["judge_raw"] = (line.get("meta") or {}).get("judge_raw")
        return row

    def metrics(self, rows: list[dict[str, Any]]) -> dict[str, Any]:
        return winrate_metrics(rows)


def winrate_metrics(rows: list[dict[str, Any]]) -> dict[str, Any]:
    """The metrics of judgements.jsonl rows (outcome, verdicts, answer_words, baseline_words)."""
    judged = [r for r in rows if r["outcome"] is not None]
    outcomes = [r["outcome"] for r in judged]
    rate, low, high = mean_interval(outcomes)
    diffs = [r["answer_words"] - r["baseline_words"] for r in judged]
    lc = length_controlled(outcomes, diffs, min_items=MIN_LC_ITEMS)
    agree = sum(1 for r in judged if {r["verdict_answer_first"], r["verdict_baseline_first"]} in ({"1", "2"}, {"tie"}))
    first_wins = sum((r["verdict_answer_first"] == "1") + (r["verdict_baseline_first"] == "1") for r in judged)

    def mean(values: list[int]) -> float | None:
        return round(sum(values) / len(values), 2) if values else None

    return {
        "n": len(rows), "judged": len(judged), "unparsed": len(rows) - len(judged),
        "win_rate": round(rate, 4) if rate is not None else None,
        "ci95": [round(low, 4), round(high, 4)] if low is not None and high is not None else None,
        "wins": sum(1 for o in outcomes if o > 0.5), "ties": sum(1 for o in outcomes if o == 0.5),
        "losses": sum(1 for o in outcomes if o < 0.5),
        "orders_agree": round(agree / len(judged), 4) if judged else None,
        "first_position_share": round(first_wins / (2 * len(judged)), 4) if judged else None,
        "answer_words": mean([r["answer_words"] for r in judged]),
        "baseline_words": mean([r["baseline_words"] for r in judged]),
        "length_controlled": round(lc, 4) if lc is not None else None,
        "length_controlled_note": None if lc is not None else
        f"not computed: needs at least {MIN_LC_ITEMS} judged instructions whose answer lengths differ"}
