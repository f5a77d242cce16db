"""`gen curate`: Humpback self-curation (or an external judge), with filters, dedup and
decontamination before any request is sent."""
from __future__ import annotations

from pathlib import Path
from typing import Any

import click

from generators.core.filtering import filter_options, filter_values
from generators.core.options import RunOptions, model_options
from generators.core.report_line import print_summary

from curation.filters import RECORD_FILTERS
from curation.rubric import INSTRUCTION_TEMPLATE, RATES, TEMPLATE, default_template
from curation.stage import CurateSettings, run_curate
from curation.select import SelectConfig


@click.command("curate")
@click.option("--input", "input_path", required=True, type=click.Path(path_type=Path), metavar="PATH",
              help="Records to curate (.jsonl), or a run folder (its data.jsonl).")
@click.option("--threshold", type=click.IntRange(1, 5), default=5, show_default=True,
              help="Keep records scored at least this (Humpback's A_k).")
@click.option("--top", type=click.IntRange(0), default=None,
              help="Also keep at most the N best rated records (by expected score, then score).")
@click.option("--top-frac", type=click.FloatRange(0, 1, min_open=True), default=None,
              help="Also keep at most this fraction of the rated records (by expected score, then score).")
@click.option("--adapter", default=None, metavar="DIR",
              help="LoRA adapter on --model (hf or vllm): the current model M_k rates its own data.")
@click.option("--rate", type=click.Choice(RATES), default="pair", show_default=True,
              help="pair: rate the record (instruction and answer). instruction: rate the instruction alone "
                   "(COIG-Kun; prompts/curate_instruction.j2), for small raters that cannot judge pairs.")
@click.option("--template", default=None,
              help=f"Rubric template in prompts/ (default: {TEMPLATE}, or {INSTRUCTION_TEMPLATE} with --rate instruction).")
@click.option("--score-mode", type=click.Choice(["reasoned", "direct"]), default="reasoned", show_default=True,
              help="reasoned: brief reasoning, then 'Score: N' (Humpback). direct: the answer is prefilled "
                   "with 'Score:' and the score is the most probable digit (small local raters; hf or vllm).")
@click.option("--retries-unparsed", type=click.IntRange(0, 20), default=2, show_default=True,
              help="Resample a rating without a valid 'Score: N' this many times (new seed each time).")
@click.option("--top-logprobs", type=click.IntRange(0, 20), default=10, show_default=True,
              help="Ask for token logprobs with this many alternatives (expected score); 0: do not ask.")
@filter_options(RECORD_FILTERS)
@click.option("--no-dedup", is_flag=True, help="Keep near-duplicate instructions.")
@click.option("--near-dup-threshold", type=click.FloatRange(0, 1, min_open=True), default=0.8, show_default=True,
              help="Jaccard similarity (word 3-grams) above which an instruction is a near duplicate.")
@click.option("--decontaminate", multiple=True, type=click.Path(path_type=Path), metavar="FILE",
              help="Evaluation prompts to keep out of training (.jsonl with instruction/question/prompt/text, "
                   "or .txt); repeatable.")
@click.option("--decontaminate-ngram", type=click.IntRange(1), default=8, show_default=True,
              help="Word n-gram size for the overlap rule.")
@click.option("--decontaminate-overlap", type=click.FloatRange(0, 1), default=0.5, show_default=True,
              help="Drop a record holding at least this share of an eval prompt's n-grams (0: any one).")
@click.option("--decontaminate-bleu", type=click.FloatRange(0, 100), default=None,
              help="Also drop a record whose request has sentence BLEU above this against an eval prompt "
                   "(Koala used 20).")
@click.option("--out", type=click.Path(path_type=Path), default=Path("runs/curate"), show_default=True,
              help="Output folder (data.jsonl, rejected.jsonl, errors.jsonl, manifest.json, scoring/).")
@model_options
def curate_command(**kwargs: Any) -> None:
    """Rate records 1-5 with a model (Humpback self-curation) and keep the best.

    \b
    gen curate --input runs/aug/data.jsonl --backend openai --base-url http://127.0.0.1:8000/v1 \\
        --model judge --threshold 5 --concurrency 16 --out runs/cur
    gen curate --input runs/aug --backend hf --model BASE --adapter runs/m0 --threshold 4 --out runs/cur0
    """
    opts = RunOptions.from_kwargs(kwargs)
    filters = filter_values(RECORD_FILTERS, kwargs)
    settings = CurateSettings(
        input=kwargs["input_path"], out=kwargs["out"],
        select=SelectConfig(threshold=kwargs["threshold"], top=kwargs["top"], top_frac=kwargs["top_frac"]),
        filters=filters, adapter=kwargs["adapter"], template=kwargs["template"] or default_template(kwargs["rate"]),
        rate=kwargs["rate"],
        retries_unparsed=kwargs["retries_unparsed"], top_logprobs=kwargs["top_logprobs"],
        score_mode=kwargs["score_mode"],
        dedup=not kwargs["no_dedup"], near_dup_threshold=kwargs["near_dup_threshold"],
        decontaminate=tuple(kwargs["decontaminate"]), decontaminate_ngram=kwargs["decontaminate_ngram"],
        decontaminate_overlap=kwargs["decontaminate_overlap"], decontaminate_bleu=kwargs["decontaminate_bleu"])
    manifest = run_curate(settings, opts)
    print_summary(settings.out, manifest)
    scores = manifest.get("scores") or {}
    if scores.get("rated"):
        hist = " ".join(f"{k}:{v}" for k, v in scores["histogram"].items())
        click.echo(f"scores {hist} (mean {scores['mean']}" +
                   (f", expected {scores['mean_expected']}" if scores.get("mean_expected") is not None else "") + ")")
