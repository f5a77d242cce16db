"""`gen selfchat`: Baize self-chat over a seed set."""
from __future__ import annotations

from typing import Any

import click

from generators.core.embeddings import EmbedSettings
from generators.core.errors import UsageError
from generators.core.flags import from_options, options
from generators.core.options import RunOptions, model_options
from generators.core.report_line import print_summary
from generators.selfchat.feedback import FeedbackSettings
from generators.core.filtering import filter_options, filter_values
from generators.selfchat.filters import DIALOG_FILTERS
from generators.selfchat.stage import SelfChatSettings, run_selfchat


@click.command("selfchat")
@options(SelfChatSettings, stop="out")
@filter_options(DIALOG_FILTERS)
@options(FeedbackSettings)
@options(EmbedSettings)
@options(SelfChatSettings, start="out")
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
    settings = from_options(SelfChatSettings, kwargs, filters=filters, feedback=feedback,
                            embed=from_options(EmbedSettings, kwargs))
    manifest = run_selfchat(settings, opts)
    print_summary(settings.out, manifest)


MAX_FEEDBACK = 16


def feedback_settings(kwargs: dict[str, Any]) -> FeedbackSettings | None:
    """--feedback N and the judge flags (popped), checked together (each mistake one line, exit 2)."""
    given = from_options(FeedbackSettings, kwargs)
    if given.n is None:
        named = [f"--{name.replace('_', '-')}" for name in ("judge_model", "judge_backend", "judge_base_url")
                 if getattr(given, name)]
        if named:
            raise UsageError(f"{named[0]} is for --feedback N (a judge picks the best of N answers); add --feedback, "
                             f"or drop {named[0]}")
        return None
    if not 2 <= given.n <= MAX_FEEDBACK:
        raise UsageError(f"--feedback {given.n}: the judge compares 2 to {MAX_FEEDBACK} answers per turn; "
                         "give a number in that range (Baize v2 used 4)")
    if not given.judge_model:
        raise UsageError("--feedback needs --judge-model NAME, the model that scores the answers "
                         "(it may be the same as --model)")
    return given
