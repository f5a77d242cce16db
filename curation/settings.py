"""What one curate run is told to do; every phase (prefilter, scoring, output) reads it."""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from curation.rubric import TEMPLATE
from curation.select import SelectConfig


@dataclass
class CurateSettings:
    input: Path
    out: Path
    select: SelectConfig = field(default_factory=SelectConfig)
    filters: dict[str, Any] = field(default_factory=dict)  # the record filter flags (curation.filters)
    adapter: str | None = None
    template: str = TEMPLATE
    retries_unparsed: int = 2
    rate: str = "pair"  # pair: the rater sees the whole record; instruction: the instruction alone (COIG-Kun)
    score_mode: str = "reasoned"  # reasoned: reasoning then "Score: N"; direct: the score token alone
    top_logprobs: int = 10
    dedup: bool = True
    near_dup_threshold: float = 0.8
    decontaminate: tuple[Path, ...] = ()
    decontaminate_ngram: int = 8
    decontaminate_overlap: float = 0.5
    decontaminate_bleu: float | None = None
