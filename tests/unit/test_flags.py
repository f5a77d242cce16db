"""Each flag is declared once: the click options, RunOptions, BackendSettings, the manifest's run
settings and the fingerprint all come from the one field that declares it."""
from __future__ import annotations

import dataclasses

import click
from click.testing import CliRunner
import pytest

from generators.backends.base import BackendSettings
from generators.cli import COMMANDS, LazyGroup
from generators.core.flags import BACKEND, FINGERPRINT, MANIFEST, flag, flag_fields, from_options, options
from generators.core.options import RunOptions, backend_settings, engine_settings, model_options, run_settings

# BackendSettings fields no run flag fills: the stage gives them.
FROM_THE_STAGE = {"adapter", "run_dir", "cache_root", "extra"}


def run_flags() -> dict[str, dataclasses.Field]:
    return {f.name: f for f, meta in flag_fields(RunOptions) if meta.decls}


def options_of(command: click.Command) -> dict[str, click.Option]:
    return {p.name: p for p in command.params if isinstance(p, click.Option)}


def all_commands() -> list[click.Command]:
    group = LazyGroup()
    ctx = click.Context(group)
    found = []
    for name in COMMANDS:
        command = group.get_command(ctx, name)
        if isinstance(command, click.Group):
            found.extend(command.commands.values())
        elif command is not None:
            found.append(command)
    return found


def test_the_run_flags_are_the_click_options_of_their_fields():
    @click.command()
    @model_options
    def command(**kwargs):
        pass

    made = options_of(command)
    assert list(made) == list(run_flags())
    for name, f in run_flags().items():
        assert made[name].default == f.default, name
        assert made[name].help, name


def test_every_command_with_run_flags_takes_them_all_from_the_one_declaration():
    flags = run_flags()
    with_run_flags = 0
    for command in all_commands():
        params = [p.name for p in command.params]
        assert len(params) == len(set(params)), command.name  # no option declared twice in one command
        made = options_of(command)
        if "max_retry_after" not in made:
            continue
        with_run_flags += 1
        for name, f in flags.items():
            option = made[name]
            declared = f.metadata["flag"]
            assert option.opts == list(declared.decls) and option.help == declared.click["help"], (command.name, name)
            assert option.default == f.default, (command.name, name)
    assert with_run_flags == 6  # selfchat, backtranslate, curate, eval backward | curation | winrate


def command_named(path: str) -> click.Command:
    group, *sub = path.split()
    command = LazyGroup().get_command(click.Context(LazyGroup()), group)
    return command.commands[sub[0]] if sub else command


def settings_classes():
    from curation.select import SelectConfig
    from curation.settings import CurateSettings
    from curation.eval.winrate import WinrateSettings
    from generators.backtranslate.stage import BacktranslateSettings
    from generators.selfchat.feedback import FeedbackSettings
    from generators.segments.stage import SegmentsSettings
    from generators.selfchat.stage import SelfChatSettings
    from training.config import TrainConfig

    return [("selfchat", SelfChatSettings, ()), ("selfchat", FeedbackSettings, ()),
            ("segments", SegmentsSettings, ()), ("backtranslate", BacktranslateSettings, ()), ("curate", CurateSettings, ()), ("curate", SelectConfig, ()),
            ("eval curation", CurateSettings, ("input", "adapter", "out", "dedup", "near_dup_threshold",
                                               "decontaminate", "decontaminate_ngram", "decontaminate_overlap",
                                               "decontaminate_bleu")),
            ("eval winrate", WinrateSettings, ()), ("train", TrainConfig, ())]


def test_each_stage_command_takes_its_settings_flags_from_the_settings_fields():
    for path, cls, own in settings_classes():
        made = options_of(command_named(path))
        for f, meta in flag_fields(cls):
            if f.name in own:  # the command declares its own (another default or help), or has none
                continue
            option = made[f.name]
            assert option.opts + option.secondary_opts == [o for d in meta.decls for o in d.split("/")], (path, f.name)
            if f.default is not dataclasses.MISSING:
                assert option.default == f.default, (path, f.name)
            else:
                assert option.required, (path, f.name)


def test_backend_flags_fill_the_backend_settings_fields_of_their_name_with_the_same_defaults():
    fields = {f.name: f for f in dataclasses.fields(BackendSettings)}
    filled = set()
    for f, meta in flag_fields(RunOptions, BACKEND):
        target = meta.backend or f.name
        if target in fields:
            filled.add(target)
            assert fields[target].default == f.default, target
    assert set(fields) == filled | FROM_THE_STAGE
    settings = backend_settings(RunOptions(), run_dir="runs/x")
    assert dataclasses.replace(settings, cache_root=None, run_dir=None) == BackendSettings()


def test_a_backend_flag_without_a_settings_field_is_a_knob_only_when_set():
    assert backend_settings(RunOptions()).extra == ()
    assert backend_settings(RunOptions(tensor_parallel_size=2), gpu_memory_utilization=None).extra == (
        ("tensor_parallel_size", 2),)
    settings = backend_settings(RunOptions(timeout=5.0, max_retry_after=9.0, retries=1), model="m")
    assert (settings.timeout_s, settings.max_retry_after, settings.retries, settings.model) == (5.0, 9.0, 1, "m")


def test_the_manifest_and_the_fingerprint_take_their_flags():
    manifest = {f.name for f, _ in flag_fields(RunOptions, MANIFEST)}
    assert set(run_settings(RunOptions())) == (manifest - {"no_cache", "workers", "gpus_per_worker", "cpus_per_worker",
                                                          "tensor_parallel_size", "data_parallel_size",
                                                          "keep_reasoning"}) | {"cache"}
    assert run_settings(RunOptions(keep_reasoning=True))["keep_reasoning"] is True
    assert run_settings(RunOptions(base_url="http://u:secret@127.0.0.1:9/v1"))["base_url"] == "http://127.0.0.1:9/v1"
    ray = run_settings(RunOptions(executor="ray", workers=3, data_parallel_size=2))
    assert (ray["workers"], ray["cpus_per_worker"], ray["data_parallel_size"]) == (3, 1.0, 2)
    adaptive = RunOptions.from_kwargs({"concurrency": "auto", "max_concurrency": 64})
    assert (run_settings(adaptive)["concurrency"], run_settings(adaptive)["max_concurrency"]) == ("auto", 64)

    class Backend:
        model = "resolved"

    fingerprint = {f.name for f, _ in flag_fields(RunOptions, FINGERPRINT)}
    assert engine_settings(RunOptions(backend="hf", seed=7), Backend) == {"backend": "hf", "model": "resolved", "seed": 7}
    assert fingerprint == {"backend", "model", "seed"}


@dataclasses.dataclass
class Example:
    source: str = flag("--source", help="Where from.")
    level: int = flag("--level", type=click.IntRange(1, 9), default=3, show_default=True, help="How much.")
    text_field: str | None = flag("--field", default=None, help="Which column.")
    built: tuple[str, ...] = ()


def test_a_settings_dataclass_is_built_from_its_options_and_leaves_the_rest():
    @click.command()
    @options(Example)
    @click.option("--other", default="x")
    def command(**kwargs):
        seen.append(from_options(Example, kwargs, built=("b",)))
        seen.append(kwargs)

    seen: list = []
    result = CliRunner().invoke(command, ["--source", "s", "--field", "q"])
    assert result.exit_code == 0, result.output
    assert seen == [Example(source="s", level=3, text_field="q", built=("b",)), {"other": "x"}]
    missing = CliRunner().invoke(command, [])
    assert missing.exit_code == 2 and "--source" in missing.output
    with pytest.raises(ValueError):
        options(Example, start="nothing")


def test_a_slice_of_the_options_keeps_field_order():
    @click.command()
    @options(Example, stop="text_field")
    @click.option("--between")
    @options(Example, start="text_field")
    def command(**kwargs):
        pass

    assert [p.name for p in command.params] == ["source", "level", "between", "text_field"]


def test_a_flag_another_settings_class_shares_keeps_its_one_declaration_and_words_its_own_help():
    """gen segments takes --executor, --workers and --ray-address from RunOptions' fields: the
    same option names, choices, range, default and environment variable; only its help differs."""
    from generators.segments.stage import SegmentsSettings

    segments, generation = options_of(command_named("segments")), options_of(command_named("backtranslate"))
    for name in ("executor", "workers", "ray_address"):
        mine, theirs = segments[name], generation[name]
        assert mine.opts == theirs.opts and mine.default == theirs.default and mine.envvar == theirs.envvar, name
        assert repr(mine.type) == repr(theirs.type), name
    assert segments["executor"].help != generation["executor"].help
    assert "Ray tasks" in segments["workers"].help and "replicas" in generation["workers"].help
    shared = {f.name: f for f in dataclasses.fields(SegmentsSettings)}
    assert shared["workers"].metadata["flag"].feeds == run_flags()["workers"].metadata["flag"].feeds
