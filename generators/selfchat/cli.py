"""`gen selfchat`: Baize self-chat over a seed set."""
from __future__ import annotations

from pathlib import Path
from typing import Any

import click

from generators.backends.registry import names as backend_names
from generators.core.errors import UsageError
from generators.core.shard import shard_option
from generators.core.options import RunOptions, model_options
from generators.core.report_line import print_summary
from generators.selfchat.feedback import FeedbackSettings
from generators.core.filtering import filter_options, filter_values
from generators.selfchat.filters import DIALOG_FILTERS
from generators.selfchat.stage import MAX_SEED_CHARS, SelfChatSettings, run_selfchat


@click.command("selfchat")
@click.option("--seeds", required=True, metavar="SOURCE",
              help="quora | stackoverflow | medquad | medqa | a file (.jsonl .json .csv .tsv .parquet .txt) | hf:NAME:FIELD")
@click.option("--field", default=None, help="Column of a seed file that holds the question.")
@click.option("--shard", callback=shard_option, default=None, metavar="I/N", help="Take shard I of N (0-based) of the seeds.")
@click.option("--mode", type=click.Choice(["transcript", "agents"]), default="transcript", show_default=True,
              help="transcript: one request writes the dialog (Baize); agents: person and assistant take turns.")
@click.option("--max-turns", type=click.IntRange(1, 50), default=4, show_default=True,
              help="agents mode: most exchanges per dialog.")
@click.option("--user-model", default=None, help="agents mode: the model that plays the person (default: --model).")
@click.option("--opening", type=click.Choice(["seed", "generated"]), default="seed", show_default=True,
              help="agents mode: the seed is the first question, or the person writes one from it.")
@click.option("--assistant-prompt", default="selfchat_assistant", show_default=True, metavar="TEMPLATE",
              help="agents mode: the assistant's system prompt, a template name in prompts/ "
                   "(selfchat_assistant_brief suits small local models).")
@click.option("--max-seed-chars", type=click.IntRange(1), default=MAX_SEED_CHARS, show_default=True,
              help="Reject seeds longer than this (reason seed_too_long) instead of sending them.")
@filter_options(DIALOG_FILTERS)
@click.option("--feedback", type=int, default=None, metavar="N",
              help="agents mode: sample N (2-16) answers per assistant turn, let --judge-model pick the best and "
                   "continue from it (Baize v2); judged turns also go to preferences.jsonl.")
@click.option("--judge-model", default=None, help="With --feedback: the model that scores the candidates.")
@click.option("--judge-backend", type=click.Choice(backend_names()), default=None,
              help="With --feedback: the judge's backend (default: --backend).")
@click.option("--judge-base-url", default=None, help="With --feedback: the judge's server (default: --base-url).")
@click.option("--out", type=click.Path(path_type=Path), default=Path("runs/selfchat"), show_default=True,
              help="Output folder (data.jsonl, rejected.jsonl, errors.jsonl, manifest.json).")
@model_options
def selfchat_command(**kwargs: Any) -> None:
    """Baize self-chat: a teacher model writes multi-turn dialogs about seed questions.

    \b
    gen selfchat --seeds seeds.jsonl --field question --backend openai \\
        --base-url http://127.0.0.1:8000/v1 --model teacher --concurrency 32 --out runs/chat
    """
    opts = RunOptions.from_kwargs(kwargs)
    feedback = feedback_settings(kwargs)
    filters = filter_values(DIALOG_FILTERS, kwargs)
    settings = SelfChatSettings(seeds=kwargs["seeds"], out=kwargs["out"], text_field=kwargs["field"],
                                shard=kwargs["shard"], mode=kwargs["mode"], max_turns=kwargs["max_turns"],
                                user_model=kwargs["user_model"], opening=kwargs["opening"],
                                assistant_prompt=kwargs["assistant_prompt"],
                                max_seed_chars=kwargs["max_seed_chars"], filters=filters, feedback=feedback)
    manifest = run_selfchat(settings, opts)
    print_summary(settings.out, manifest)


MAX_FEEDBACK = 16


def feedback_settings(kwargs: dict[str, Any]) -> FeedbackSettings | None:
    """--feedback N and the judge flags, checked together (each mistake one line, exit 2)."""
    n, judge_model = kwargs["feedback"], kwargs["judge_model"]
    if n is None:
        given = [flag for flag, key in (("--judge-model", "judge_model"), ("--judge-backend", "judge_backend"),
                                        ("--judge-base-url", "judge_base_url")) if kwargs[key]]
        if given:
            raise UsageError(f"{given[0]} is for --feedback N (a judge picks the best of N answers); add --feedback, "
                             f"or drop {given[0]}")
        return None
    if not 2 <= n <= MAX_FEEDBACK:
        raise UsageError(f"--feedback {n}: the judge compares 2 to {MAX_FEEDBACK} answers per turn; "
                         "give a number in that range (Baize v2 used 4)")
    if not judge_model:
        raise UsageError("--feedback needs --judge-model NAME, the model that scores the answers "
                         "(it may be the same as --model)")
    return FeedbackSettings(n=n, judge_model=judge_model, judge_backend=kwargs["judge_backend"],
                            judge_base_url=kwargs["judge_base_url"])
