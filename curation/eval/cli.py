"""`gen eval backward | curation | winrate`: measure the backward model, the rater, and one
model against another. Each is a run folder (lock, manifest, resume without repeated requests);
the metrics are in --out/manifest.json and are printed at the end."""
from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import click

from generators.backends.registry import names as backend_names
from generators.backtranslate.cli import postfilter_config, postfilter_options
from generators.core.options import RunOptions, model_options
from generators.core.stage import run_stage

from curation.rubric import RATES, TEMPLATE, default_template
from curation.settings import CurateSettings
from curation.eval.candidates import KINDS, parse_kinds

PAIRS = click.option("--pairs", "pairs", required=True, type=click.Path(path_type=Path), metavar="FILE",
                     help="Held-out pairs: records (.jsonl; first user turn and first assistant turn) or "
                          "{instruction, output} lines.")
ADAPTER = click.option("--adapter", default=None, metavar="DIR", help="LoRA adapter on --model (hf or vllm).")


@click.group("eval")
def eval_command() -> None:
    """Measure the data makers: the backward model, the rater, one model against another.

    \b
    gen eval backward --pairs heldout.jsonl --backend hf --base smollm2-135m --adapter runs/myx --out runs/eval/bw
    gen eval curation --pairs heldout.jsonl --backend hf --base smollm2-135m --adapter runs/m0 --score-mode direct \\
        --out runs/eval/cur
    gen eval winrate --instructions alpaca_eval.jsonl --backend hf --base smollm2-135m --adapter runs/m1 \\
        --baseline-adapter runs/m0 --judge-model judge --judge-base-url http://127.0.0.1:8000/v1 --out runs/eval/win
    """


def _model(kwargs: dict[str, Any]) -> None:
    base = kwargs.pop("base")
    if base and kwargs.get("model") and base != kwargs["model"]:
        raise click.UsageError("give the model once: --base or --model")
    kwargs["model"] = kwargs.get("model") or base


def _print(manifest: dict[str, Any], out: Path) -> None:
    counts = manifest.get("counts") or {}
    click.echo(f"{manifest.get('stage')}: {manifest.get('status')}; {counts.get('kept', 0)} evaluated, "
               f"{counts.get('rejected', 0)} unusable, {counts.get('errors', 0)} errors; results in "
               f"{out / manifest.get('results', '')}")
    if manifest.get("metrics") is not None:
        click.echo("metrics: " + json.dumps(manifest["metrics"], ensure_ascii=False))


@eval_command.command("backward")
@PAIRS
@click.option("--base", default=None, metavar="MODEL", help="Base model (same as --model).")
@ADAPTER
@postfilter_options
@click.option("--out", type=click.Path(path_type=Path), default=Path("runs/eval-backward"), show_default=True,
              help="Output folder (predictions.jsonl, manifest.json, items/).")
@model_options
def backward_command(**kwargs: Any) -> None:
    """The backward model writes an instruction for each held-out answer, exactly as
    `gen backtranslate` would; scored against the real instruction (ROUGE-L, exact match, post-filter
    pass rate)."""
    from curation.eval.backward import BackwardEvalStage

    _model(kwargs)
    pairs, out, adapter = kwargs.pop("pairs"), kwargs.pop("out"), kwargs.pop("adapter")
    postfilter = postfilter_config(kwargs)
    opts = RunOptions.from_kwargs(kwargs)
    _print(run_stage(BackwardEvalStage(opts, out, pairs, adapter=adapter, postfilter=postfilter)), out)


@eval_command.command("curation")
@PAIRS
@click.option("--base", default=None, metavar="MODEL", help="Base model (same as --model).")
@ADAPTER
@click.option("--rate", type=click.Choice(RATES), default="pair", show_default=True,
              help="What the rater sees, as in gen curate: the pair, or the instruction alone.")
@click.option("--template", default=None, help=f"Rubric in prompts/ (default: {TEMPLATE}, or by --rate).")
@click.option("--score-mode", type=click.Choice(["reasoned", "direct"]), default="reasoned", show_default=True,
              help="As gen curate: reasoning then 'Score: N', or the score token alone (hf, vllm).")
@click.option("--retries-unparsed", type=click.IntRange(0, 20), default=2, show_default=True,
              help="As gen curate: resample an unreadable rating this many times.")
@click.option("--top-logprobs", type=click.IntRange(0, 20), default=10, show_default=True,
              help="As gen curate: logprob alternatives asked for (expected score); 0: none.")
@click.option("--negatives", default=",".join(KINDS), show_default=True,
              help="Kinds of negatives made from the pairs: mismatched (another pair's answer), truncated "
                   "(answer cut to its first sentence), copied (the answer's first sentence as instruction).")
@click.option("--out", type=click.Path(path_type=Path), default=Path("runs/eval-curation"), show_default=True,
              help="Output folder (scores.jsonl, manifest.json, items/).")
@model_options
def curation_command(**kwargs: Any) -> None:
    """The rater scores true held-out pairs and negatives made from them, by the `gen curate` path;
    reports ROC AUC, precision/recall of score >= t, and the unparsed share."""
    from curation.eval.curation import CurationEvalStage

    _model(kwargs)
    kinds = parse_kinds(kwargs.pop("negatives"))
    pairs, out = kwargs.pop("pairs"), kwargs.pop("out")
    rate = kwargs.pop("rate")
    rater = CurateSettings(input=pairs, out=out, adapter=kwargs.pop("adapter"),
                           template=kwargs.pop("template") or default_template(rate), rate=rate,
                           score_mode=kwargs.pop("score_mode"), retries_unparsed=kwargs.pop("retries_unparsed"),
                           top_logprobs=kwargs.pop("top_logprobs"))
    opts = RunOptions.from_kwargs(kwargs)
    _print(run_stage(CurationEvalStage(opts, out, pairs, rater, kinds)), out)


@eval_command.command("winrate")
@click.option("--instructions", required=True, type=click.Path(path_type=Path), metavar="FILE",
              help="Instructions to answer: {instruction} lines (e.g. AlpacaEval's 805), or records.")
@click.option("--base", default=None, metavar="MODEL", help="Base model (same as --model).")
@ADAPTER
@click.option("--baseline-adapter", default=None, metavar="DIR",
              help="The adapter to compare against (default: the base model without adapter).")
@click.option("--baseline-model", default=None, metavar="NAME",
              help="The baseline's model name when a server answers for both (--backend openai).")
@click.option("--judge-model", required=True, metavar="NAME", help="The judge's model name.")
@click.option("--judge-base-url", default=None, metavar="URL",
              help="The judge's OpenAI-compatible endpoint (default: --base-url); key from OPENAI_API_KEY.")
@click.option("--judge-backend", type=click.Choice(backend_names()), default="openai", show_default=True,
              help="The judge's backend (openai: any OpenAI-compatible server).")
@click.option("--tag", type=click.Choice(["seed", "augmented", "none"]), default="seed", show_default=True,
              help="The tag sentence both models get as the system message (as they were trained).")
@click.option("--out", type=click.Path(path_type=Path), default=Path("runs/eval-winrate"), show_default=True,
              help="Output folder (judgements.jsonl, manifest.json, items/).")
@model_options
def winrate_command(**kwargs: Any) -> None:
    """Both models answer every instruction; the judge compares each pair of answers in both
    orders (ties allowed). Reports the win rate with a 95% interval, lengths, and a
    length-controlled rate."""
    from curation.eval.winrate import WinrateSettings, WinrateStage

    _model(kwargs)
    config = WinrateSettings(instructions=kwargs.pop("instructions"), out=kwargs.pop("out"),
                             adapter=kwargs.pop("adapter"), baseline_adapter=kwargs.pop("baseline_adapter"),
                             baseline_model=kwargs.pop("baseline_model"), judge_model=kwargs.pop("judge_model"),
                             judge_base_url=kwargs.pop("judge_base_url"), judge_backend=kwargs.pop("judge_backend"),
                             tag=kwargs.pop("tag"))
    opts = RunOptions.from_kwargs(kwargs)
    _print(run_stage(WinrateStage(config, opts)), config.out)
