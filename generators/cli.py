"""The `gen` command: one group, each stage a subcommand loaded only when it is called.

Loading lazily keeps `gen --help` and bad-flag answers instant (no torch import), and lets
`training` and `curation` register commands without `generators` importing them up front.
Every BaleenError becomes one line on stderr and its exit code (2 usage, 1 cannot go on).
"""
from __future__ import annotations

import importlib
import importlib.util
import os
import sys

import click

from generators.core.errors import BaleenError
from generators.core.io import describe_os_error

# command name -> "module:attribute" of a click.Command
COMMANDS: dict[str, str] = {
    "selfchat": "generators.selfchat.cli:selfchat_command",
    "segments": "generators.segments.cli:segments_command",
    "backtranslate": "generators.backtranslate.cli:backtranslate_command",
    "curate": "curation.cli:curate_command",
    "train": "training.cli:train_command",
    "report": "generators.outputs.report.cli:report_command",
    "export": "generators.outputs.export.cli:export_command",
    "view": "generators.outputs.view.cli:view_command",
    "eval": "curation.eval.cli:eval_command",
}
HELP = {
    "selfchat": "Baize self-chat: a teacher model writes dialogs about seed questions.",
    "segments": "Prepare a corpus once: segment, filter, deduplicate, write Parquet for gen backtranslate.",
    "backtranslate": "Humpback: a backward model writes the instruction each web segment answers.",
    "curate": "Rate records 1-5 with a model, filter, dedup, decontaminate, keep the best.",
    "train": "Train a LoRA adapter (forward or backward) on records, with source tags.",
    "report": "A Markdown report with plots for a run folder or a rounds folder.",
    "export": "Write records in the formats trainers read (sharegpt, alpaca, openai, dpo, hf), with provenance.",
    "view": "Look at a run or rounds folder in the browser: records, reasons, scores, rounds.",
    "eval": "Measure the backward model (backward), the rater (curation) and one model against another (winrate).",
}


class LazyGroup(click.Group):
    def list_commands(self, ctx: click.Context) -> list[str]:
        return [name for name in COMMANDS if _available(name)]

    def get_command(self, ctx: click.Context, name: str) -> click.Command | None:
        if name not in COMMANDS or not _available(name):
            return None
        module, attr = COMMANDS[name].split(":")
        return getattr(importlib.import_module(module), attr)

    def format_commands(self, ctx: click.Context, formatter: click.HelpFormatter) -> None:
        rows = [(name, HELP.get(name, "")) for name in self.list_commands(ctx)]
        if rows:
            with formatter.section("Commands"):
                formatter.write_dl(rows)


def _available(name: str) -> bool:
    module = COMMANDS[name].split(":")[0]
    try:
        return importlib.util.find_spec(module) is not None
    except ModuleNotFoundError:
        return False


@click.group(cls=LazyGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="baleen", message="baleen %(version)s")
def gen() -> None:
    """baleen: make instruction-tuning data with language models, keep the best, retrain."""


def main(argv: list[str] | None = None) -> None:
    """Console entry point: run `gen`, turning known errors into one line and an exit code."""
    try:
        gen.main(args=argv, prog_name="gen", standalone_mode=False)
    except click.exceptions.Abort:
        click.echo("gen: interrupted", err=True)
        sys.exit(130)
    except click.UsageError as exc:  # a wrong flag or value: one line, and where the flags are listed
        where = exc.ctx.command_path if exc.ctx is not None else "gen"
        click.echo(f"gen: error: {exc.format_message().rstrip('.')}; see '{where} --help'", err=True)
        sys.exit(exc.exit_code)
    except click.ClickException as exc:
        click.echo(f"gen: error: {exc.format_message()}", err=True)
        sys.exit(exc.exit_code)
    except BaleenError as exc:
        click.echo(f"gen: error: {exc.message}", err=True)
        sys.exit(exc.exit_code)
    except KeyboardInterrupt:
        click.echo("gen: interrupted; rerun the same command to continue where it stopped", err=True)
        sys.exit(130)
    except OSError as exc:  # a write the system refused outside a stage's own checks
        click.echo(f"gen: error: {describe_os_error(exc)}", err=True)
        sys.exit(1)
    except Exception as exc:  # a bug: still one line, with a way to see more
        if os.environ.get("BALEEN_DEBUG"):
            raise
        click.echo(f"gen: internal error: {type(exc).__name__}: {exc} "
                   "(set BALEEN_DEBUG=1 to see the traceback)", err=True)
        sys.exit(1)
    sys.exit(0)


if __name__ == "__main__":
    main()
