"""`gen eval backward | curation | winrate`: measure the backward model, the rater, and one
model against another. Each is a run folder (lock, manifest, resume without repeated requests);
the metrics are in --out/manifest.json and are printed at the end."""
from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import click

from generators.backtranslate.cli import postfilter_config, postfilter_options
from generators.core.embeddings import EmbedSettings
from generators.core.flags import from_options, options
from generators.core.options import RunOptions, model_options
from generators.core.stage import run_stage

from curation.settings import CurateSettings
from curation.eval.candidates import KINDS, parse_kinds
from curation.eval.winrate import WinrateSettings

PAIRS = click.option("--pairs", "pairs", required=True, type=click.Path(path_type=Path), metavar="FILE",
                     help="Held-out pairs: records (.jsonl; first user turn and first assistant turn) or "
                          "{instruction, output} lines.")
BASE = click.option("--base", default=None, metavar="MODEL", help="Base model (same as --model).")
ADAPTER = click.option("--adapter", default=None, metavar="DIR", help="LoRA adapter on --model (hf or vllm).")


@click.group("eval")
def eval_command() -> None:
    """Measure the data makers: the backward model, the rater, one model against another; and the
    data's diversity.

    \b
    gen eval backward --pairs heldout.jsonl --backend hf --base smollm2-135m --adapter runs/myx --out runs/eval/bw
    gen eval curation --pairs heldout.jsonl --backend hf --base smollm2-135m --adapter runs/m0 --score-mode direct \\
        --out runs/eval/cur
    gen eval winrate --instructions alpaca_eval.jsonl --backend hf --base smollm2-135m --adapter runs/m1 \\
        --baseline-adapter runs/m0 --judge-model judge --judge-base-url http://127.0.0.1:8000/v1 --out runs/eval/win
    gen eval diversity runs/rounds --out runs/eval/div
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
@BASE
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
@BASE
@ADAPTER
@options(CurateSettings, start="rate", stop="dedup")
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
    opts = RunOptions.from_kwargs(kwargs)
    rater = from_options(CurateSettings, kwargs, input=pairs, out=out)
    _print(run_stage(CurationEvalStage(opts, out, pairs, rater, kinds)), out)


@eval_command.command("winrate")
@options(WinrateSettings, stop="baseline_adapter")
@BASE
@ADAPTER
@options(WinrateSettings, start="baseline_adapter")
@model_options
def winrate_command(**kwargs: Any) -> None:
    """Both models answer every instruction; the judge compares each pair of answers in both
    orders (ties allowed). Reports the win rate with a 95% interval, lengths, and a
    length-controlled rate."""
    from curation.eval.winrate import WinrateStage

    _model(kwargs)
    opts = RunOptions.from_kwargs(kwargs)
    config = from_options(WinrateSettings, kwargs)
    _print(run_stage(WinrateStage(config, opts)), config.out)


@eval_command.command("diversity")
@click.argument("run", type=click.Path(path_type=Path))
@options(EmbedSettings, stop="semantic_dedup")
@click.option("--seed", type=int, default=0, show_default=True, help="Seed of k-means and of the sample above "
              "5000 records per run.")
@click.option("--out", type=click.Path(path_type=Path), default=Path("runs/eval-diversity"), show_default=True,
              help="Output folder (results.jsonl, diversity.png, manifest.json).")
def diversity_command(run: Path, seed: int, out: Path, **kwargs: Any) -> None:
    """How diverse a run's data is (per round for a rounds folder): distinct-1/2 of instructions
    and answers, mean pairwise cosine, k-means clusters holding 90% of the records, the share
    nearer than --semantic-threshold to another, and a 2-D projection plot (needs baleen[embed])."""
    from curation.eval.diversity import run_diversity

    manifest = run_diversity(run, out, from_options(EmbedSettings, kwargs), seed=seed)
    plot = f", plot {out / manifest['plot']}" if manifest["plot"] else ""
    click.echo(f"eval-diversity: {len(manifest['metrics'])} run(s); results in {out / manifest['results']}{plot}")
    click.echo("metrics: " + json.dumps(manifest["metrics"], ensure_ascii=False))
