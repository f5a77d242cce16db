"""What one curate run is told to do; every phase (prefilter, scoring, output) reads it."""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import click

from generators.core.embeddings import EmbedSettings
from generators.core.flags import flag

from curation.rubric import INSTRUCTION_TEMPLATE, RATES, TEMPLATE, default_template
from curation.select import SelectConfig


@dataclass
class CurateSettings:
    """Each field that is a flag declares it (generators/core/flags.py); `gen eval curation` takes
    the rater's flags (--rate .. --top-logprobs) from here too."""

    input: Path = flag("--input", type=click.Path(path_type=Path), metavar="PATH",
                       help="Records to curate (.jsonl), or a run folder (its data.jsonl).")
    select: SelectConfig = field(default_factory=SelectConfig)
    adapter: str | None = flag("--adapter", default=None, metavar="DIR",
                               help="LoRA adapter on --model (hf or vllm): the current model M_k rates its own data.")
    # pair: the rater sees the whole record; instruction: the instruction alone (COIG-Kun)
    rate: str = flag(
        "--rate", type=click.Choice(RATES), default="pair", show_default=True,
        help="pair: rate the record (instruction and answer). instruction: rate the instruction alone "
             "(COIG-Kun; prompts/curate_instruction.j2), for small raters that cannot judge pairs.")
    template: str = flag(  # None on the command line: the rubric of --rate
        "--template", default=None,
        help=f"Rubric template in prompts/ (default: {TEMPLATE}, or {INSTRUCTION_TEMPLATE} with --rate instruction).")
    # reasoned: reasoning then "Score: N"; direct: the score token alone
    score_mode: str = flag(
        "--score-mode", type=click.Choice(["reasoned", "direct"]), default="reasoned", show_default=True,
        help="reasoned: brief reasoning, then 'Score: N' (Humpback). direct: the answer is prefilled "
             "with 'Score:' and the score is the most probable digit (small local raters; hf or vllm).")
    retries_unparsed: int = flag(
        "--retries-unparsed", type=click.IntRange(0, 20), default=2, show_default=True,
        help="Resample a rating without a valid 'Score: N' this many times (new seed each time).")
    top_logprobs: int = flag(
        "--top-logprobs", type=click.IntRange(0, 20), default=10, show_default=True,
        help="Ask for token logprobs with this many alternatives (expected score); 0: do not ask.")
    dedup: bool = flag("--no-dedup", default=True, is_flag=True, flag_value=False,
                       help="Keep near-duplicate instructions.")
    near_dup_threshold: float = flag(
        "--near-dup-threshold", type=click.FloatRange(0, 1, min_open=True), default=0.8, show_default=True,
        help="Jaccard similarity (word 3-grams) above which an instruction is a near duplicate.")
    decontaminate: tuple[Path, ...] = flag(
        "--decontaminate", default=(), multiple=True, type=click.Path(path_type=Path), metavar="FILE",
        help="Evaluation prompts to keep out of training (.jsonl with instruction/question/prompt/text, "
             "or .txt); repeatable.")
    decontaminate_ngram: int = flag("--decontaminate-ngram", type=click.IntRange(1), default=8, show_default=True,
                                    help="Word n-gram size for the overlap rule.")
    decontaminate_overlap: float = flag(
        "--decontaminate-overlap", type=click.FloatRange(0, 1), default=0.5, show_default=True,
        help="Drop a record holding at least this share of an eval prompt's n-grams (0: any one).")
    decontaminate_bleu: float | None = flag(
        "--decontaminate-bleu", type=click.FloatRange(0, 100), default=None,
        help="Also drop a record whose request has sentence BLEU above this against an eval prompt "
             "(Koala used 20).")
    out: Path = flag("--out", type=click.Path(path_type=Path), default=Path("runs/curate"), show_default=True,
                     help="Output folder (data.jsonl, rejected.jsonl, errors.jsonl, manifest.json, scoring/).")
    filters: dict[str, Any] = field(default_factory=dict)  # the record filter flags (curation.filters)
    embed: EmbedSettings = field(default_factory=EmbedSettings)  # --semantic-dedup and its model

    def __post_init__(self) -> None:
        if self.template is None:
            self.template = default_template(self.rate)
        self.decontaminate = tuple(self.decontaminate)
