"""The self-chat stage: seeds in, dialogs out (kept, rejected with a reason, or errors)."""
from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field, replace
from functools import cached_property
from pathlib import Path
from typing import Any

import click

import prompts
from generators.backends.urls import redact_url
from generators.core.dry_run import DryRun, Planned
from generators.core.embeddings import EmbedSettings, Embeddings, SemanticDedup
from generators.core.errors import UsageError
from generators.core.flags import flag
from generators.core.options import RunOptions, backend_kind, check_options, make_backend
from generators.core.records import Record, make_record, stable_id
from generators.core.rejudge import Rejudge, Verdict
from generators.core.runner import Item, Kept, Rejected
from generators.core.shard import shard_option
from generators.inputs.seeds import Seed, load_seeds
from generators.core.stage import Generation, Stage, run_stage
from generators.core.store import RunStore
from generators.selfchat.dialog import AgentsPrompts, Dialog, agents_dialog, transcript_dialog, transcript_request
from generators.selfchat.feedback import (JUDGE_SAMPLING, TEMPLATE as JUDGE_TEMPLATE, FeedbackSettings, FeedbackTally, Judge,
                       write_preferences)
from generators.selfchat.filters import DIALOG_REASONS, Chat, dialog_chain

# Baize's teacher ran at the API's default sampling; a local model needs its own settings.
API_SAMPLING = {"max_tokens": 1024}
LOCAL_SAMPLING = {"temperature": 0.7, "top_p": 0.9, "max_tokens": 512}
MAX_SEED_CHARS = 20_000


@dataclass
class SelfChatSettings:
    """What one self-chat run is told; each field that is a flag declares it (generators/core/flags.py)."""

    seeds: str = flag(
        "--seeds", metavar="SOURCE",
        help="quora | stackoverflow | medquad | medqa | a file (.jsonl .json .csv .tsv .parquet .txt) | hf:NAME:FIELD")
    text_field: str | None = flag("--field", default=None, help="Column of a seed file that holds the question.")
    shard: tuple[int, int] | None = flag("--shard", callback=shard_option, default=None, metavar="I/N",
                                         help="Take shard I of N (0-based) of the seeds.")
    mode: str = flag(
        "--mode", type=click.Choice(["transcript", "agents"]), default="transcript", show_default=True,
        help="transcript: one request writes the dialog (Baize); agents: person and assistant take turns.")
    max_turns: int = flag("--max-turns", type=click.IntRange(1, 50), default=4, show_default=True,
                          help="agents mode: most exchanges per dialog.")
    user_model: str | None = flag("--user-model", default=None,
                                  help="agents mode: the model that plays the person (default: --model).")
    opening: str = flag("--opening", type=click.Choice(["seed", "generated"]), default="seed", show_default=True,
                        help="agents mode: the seed is the first question, or the person writes one from it.")
    assistant_prompt: str = flag(
        "--assistant-prompt", default="selfchat_assistant", show_default=True, metavar="TEMPLATE",
        help="agents mode: the assistant's system prompt, a template name in prompts/ "
             "(selfchat_assistant_brief suits small local models).")
    max_seed_chars: int = flag(
        "--max-seed-chars", type=click.IntRange(1), default=MAX_SEED_CHARS, show_default=True,
        help="Reject seeds longer than this (reason seed_too_long) instead of sending them.")
    out: Path = flag("--out", type=click.Path(path_type=Path), default=Path("runs/selfchat"), show_default=True,
                     help="Output folder (data.jsonl, rejected.jsonl, errors.jsonl, manifest.json).")
    filters: dict[str, Any] = field(default_factory=dict)  # the dialog filter flags (defaults where absent)
    feedback: FeedbackSettings | None = None  # --feedback N with its judge (agents mode)
    embed: EmbedSettings = field(default_factory=EmbedSettings)  # --semantic-dedup and its model


SEED_EXCERPT_BYTES = 4096  # an oversize seed's rejected line keeps this much of it


def seed_excerpt(text: str) -> dict[str, Any]:
    """The meta of a seed_too_long line: its first SEED_EXCERPT_BYTES bytes (whole characters) and
    its length, so rejected.jsonl never copies a 50 MB seed."""
    head = text.encode("utf-8", "surrogatepass")[:SEED_EXCERPT_BYTES].decode("utf-8", "ignore")
    return {"seed": head, "seed_chars": len(text), "seed_truncated": True}


class SelfChatStage(Stage):
    name = "selfchat"

    def __init__(self, settings: SelfChatSettings, opts: RunOptions) -> None:
        super().__init__(opts, settings.out)
        self.config = settings
        self.seeds: list[Seed] = []
        self.dropped_seeds: Counter[str] = Counter()  # what seed cleaning dropped: "duplicate", "blank"
        self.user_engine = None
        self.judge: Judge | None = None
        self.tally = FeedbackTally()
        # the checks of meaning share one model and the run's embedding cache (--out/embeddings.sqlite)
        self.embeddings = Embeddings(settings.embed, settings.out)
        self.config.filters = {**settings.filters, "embeddings": self.embeddings}
        self.filters = dialog_chain(self.config.filters)
        # with --executor ray the checks of one dialog run in the replicas, dedup where lines are written
        self.content_filters, self.dedup_filters = self.filters.split()

    # -- checks and inputs -----------------------------------------------------------------
    def check(self) -> None:
        if self.config.assistant_prompt not in prompts.names():
            raise UsageError(f"--assistant-prompt {self.config.assistant_prompt}: no such template in prompts/; "
                             "choose one of: " + ", ".join(n for n in prompts.names()
                                                           if n.startswith("selfchat_assistant")))
        if self.opts.batch and self.config.mode == "agents":
            raise UsageError("--batch sends every request at once, but in --mode agents each turn waits for the "
                             "one before it; use --mode transcript with --batch, or leave out --batch")
        if self.config.feedback:
            self.check_feedback(self.config.feedback)
        if self.config.embed.dedup:
            self.embeddings.check_installed("--semantic-dedup")
        if self.config.user_model and self.config.mode != "agents":
            raise UsageError("--user-model is for --mode agents (in transcript mode one request writes both sides)")
        caps = backend_kind(self.opts).capabilities
        if self.config.user_model and not (caps.per_request_model or caps.multi_instance):
            raise UsageError(f"--user-model with --backend {self.opts.resolved_backend()} would start a second "
                             "engine in this process, which it cannot share; serve both models (vllm serve) "
                             "and use --backend openai, or use --backend hf")

    def check_feedback(self, feedback: FeedbackSettings) -> None:
        if self.config.mode != "agents":
            raise UsageError("--feedback samples each assistant turn several times, which needs --mode agents "
                             "(in transcript mode one request writes the whole dialog); add --mode agents")
        try:
            check_options(self.judge_options(), model=feedback.judge_model)
        except UsageError as exc:  # the backend names its own flags; say they are the judge's
            raise UsageError(f"the judge (--judge-model, --judge-backend, --judge-base-url): {exc.message}") from None
        if not self.judge_on_own_engine():
            return
        judge_kind = backend_kind(self.judge_options())
        if judge_kind is backend_kind(self.opts) and not judge_kind.capabilities.multi_instance:
            raise UsageError(f"--judge-model {feedback.judge_model} with --backend {judge_kind.name} would start a "
                             "second engine in this process, which it cannot share; serve the judge (vllm serve) "
                             "and give --judge-backend openai --judge-base-url URL, or judge with --model itself")

    def judge_options(self) -> RunOptions:
        """The run's options with the judge's backend and server, where given."""
        feedback = self.config.feedback
        assert feedback is not None
        backend = feedback.judge_backend or self.opts.resolved_backend()
        same_backend = backend == self.opts.resolved_backend()
        return replace(self.opts, backend=backend, model=feedback.judge_model,
                       base_url=feedback.judge_base_url or (self.opts.base_url if same_backend else None))

    def judge_on_own_engine(self) -> bool:
        """False when the assistant's engine can answer as the judge: the same server answering
        for several names, or the very model the assistant runs on."""
        feedback = self.config.feedback
        assert feedback is not None
        judge = self.judge_options()
        if judge.resolved_backend() != self.opts.resolved_backend() or judge.base_url != self.opts.base_url:
            return True
        if backend_kind(self.opts).capabilities.per_request_model:
            return False
        own_model = self.engine.model if self.engine is not None else self.opts.model  # the default resolved
        return feedback.judge_model not in (self.opts.model, own_model)

    def load_inputs(self) -> None:
        self.dropped_seeds = Counter()
        # with --semantic-dedup the limit is applied after it (prime), so --limit N still sends N seeds
        limit = None if self.config.embed.dedup else self.opts.limit
        self.seeds = load_seeds(self.config.seeds, field=self.config.text_field, limit=limit,
                                shard=self.config.shard, seed=self.opts.seed, dropped=self.dropped_seeds)

    def distinct_seeds(self) -> None:
        """--semantic-dedup: drop seeds that mean the same as an earlier one, in the order they
        would be sent (the shuffled, sharded order), until --limit are kept; before any request.
        The vectors are cached in the run folder, so a resumed run decides the same way."""
        dedup = SemanticDedup(self.embeddings, self.config.embed.threshold)
        kept: list[Seed] = []
        limit = self.opts.limit or len(self.seeds)
        chunk = max(256, 2 * limit if self.opts.limit else 1024)
        for start in range(0, len(self.seeds), chunk):
            if len(kept) >= limit:
                break
            part = self.seeds[start:start + chunk]
            dedup.warm(seed.text for seed in part)
            for seed in part:
                if len(kept) >= limit:
                    break
                if dedup.is_duplicate(seed.text):
                    self.dropped_seeds["semantic_duplicate"] += 1
                else:
                    kept.append(seed)
        self.seeds = kept

    def build_engines(self) -> None:
        super().build_engines()
        assert self.engine is not None
        user_model = self.config.user_model if self.config.mode == "agents" else None
        if not user_model or self.capabilities.per_request_model:
            self.user_engine = self.engine  # one server answers for both model names
        else:
            self.user_engine = self.add_engine(make_backend(self.opts, model=user_model, run_dir=str(self.out)),
                                               share_with=self.engine)
        feedback = self.config.feedback
        if feedback is None:
            return
        if not self.judge_on_own_engine():
            same_model = not self.capabilities.per_request_model
            self.judge = Judge(self.engine, feedback.n, model=None if same_model else feedback.judge_model,
                               constrained=self.opts.constrained)
            return
        judge_engine = self.add_engine(make_backend(self.judge_options(), model=feedback.judge_model,
                                                    run_dir=str(self.out)), share_with=self.engine)
        self.judge = Judge(judge_engine, feedback.n, constrained=self.opts.constrained)

    # -- settings and what they derive -----------------------------------------------------
    @cached_property
    def generation(self) -> Generation:
        """What makes the dialogs, derived once from the flags and the engines: the sampling, the
        template id, and the identity every item id hashes (changing it makes new items)."""
        if self.config.mode == "transcript":
            template = prompts.template_id("selfchat_transcript")
        else:
            template = f"{prompts.template_id('selfchat_user')},{prompts.template_id(self.config.assistant_prompt)}"
        sampling = self.opts.sampling(**(LOCAL_SAMPLING if self.capabilities.local else API_SAMPLING))
        identity = {**self.engine_settings(), "mode": self.config.mode, "template": template,
                    "sampling": sampling.describe()}
        if self.config.mode == "agents":
            identity.update(max_turns=self.config.max_turns, user_model=self.user_model_label(),
                            opening=self.config.opening)
        if self.judge is not None:
            assert self.config.feedback is not None
            identity["feedback"] = {"n": self.config.feedback.n, "judge_model": self.judge_label(),
                                    "judge_backend": self.judge_options().resolved_backend(),
                                    "template": prompts.template_id(JUDGE_TEMPLATE),
                                    "sampling": JUDGE_SAMPLING.describe()}
            if self.opts.constrained != "off":  # only when on, so runs made before it still resume with off
                identity["feedback"]["constrained"] = self.opts.constrained
        return Generation(sampling=sampling, template=template, identity=identity)

    def judge_label(self) -> str | None:
        """The judge's model name as the records and the fingerprint carry it."""
        if self.judge is None or self.config.feedback is None:
            return None
        return self.judge.model or self.judge.engine.model

    def user_model_label(self) -> str | None:
        if self.config.mode != "agents" or not self.config.user_model:
            return None
        if self.user_engine is not None and self.user_engine is not self.engine:
            return self.user_engine.model
        return self.config.user_model

    def settings(self) -> dict[str, Any]:
        """The identity, and what else changes the records: --keep-reasoning is here only when set
        (folders made before it existed resume), and not in the identity, so the requests, their
        seeds and the cached answers are the same either way."""
        keep = {"keep_reasoning": True} if self.opts.keep_reasoning else {}
        return {**self.generation.identity, "max_seed_chars": self.config.max_seed_chars, **keep}

    def rejudge(self) -> Rejudge:
        """Other filter flags on a folder: the stored dialogs are judged again, in seed order."""
        position = {self.item_id(seed): i for i, seed in enumerate(self.seeds)}

        def judge() -> Verdict:
            chain = dialog_chain(self.config.filters)

            def verdict(record: Record) -> tuple[Record, str | None]:
                chat = Chat(record.get("messages") or [], seed=(record.get("meta") or {}).get("seed"))
                old = record.get("reject")
                if old is not None and (old not in DIALOG_REASONS or not chat.turns):
                    return record, old  # decided before the filters (parse, seed length): nothing to judge
                return record, chain.check(chat)
            return verdict

        return Rejudge(filters=self.filters.settings(), judge=judge,
                       order=lambda record: position.get((record.get("meta") or {}).get("item"), len(position)))

    def item_id(self, seed: Seed) -> str:
        return stable_id("selfchat", seed.source, seed.text, self.generation.identity)

    # -- items -----------------------------------------------------------------------------
    def prime(self, store: RunStore) -> None:
        """Seeds deduplicated by meaning (--semantic-dedup); the dedup memory and the feedback
        tally learn the lines earlier sessions wrote."""
        if self.config.embed.dedup:
            self.distinct_seeds()
        for record in store.iter_lines("kept"):
            self.filters.remember(Chat(record["messages"]))
            self.tally.add(record, kept=True)
        if self.judge is not None:
            for record in store.iter_lines("rejected"):
                self.tally.add(record, kept=False)

    def items(self) -> list[Item]:
        return [Item(id=self.item_id(seed), source=seed.source,
                     input=seed.text, extra={"seed": seed}, repaired_text=seed.repaired_text)
                for seed in self.seeds]

    def dry_run(self) -> DryRun:
        """The first request of every dialog (a seed over --max-seed-chars sends none): the transcript
        request, or in agents mode the assistant's first answer (the person's opening with
        --opening generated); and the most requests one dialog may send."""
        assert self.engine is not None and self.user_engine is not None
        config, sampling, base_seed = self.config, self.generation.sampling, self.opts.seed
        shared = self.user_engine is self.engine
        user_model = config.user_model if shared else None

        def first(item: Item) -> Planned:
            seed: Seed = item.extra["seed"]
            if config.mode == "transcript":
                return Planned(item.id, self.engine, transcript_request(seed.text, sampling, item_id=item.id,
                                                                        base_seed=base_seed))
            talk = AgentsPrompts(seed.text, config.assistant_prompt)
            if config.opening == "generated":
                return Planned(item.id, self.user_engine, talk.person_request(
                    [], sampling, item_id=item.id, base_seed=base_seed, turn=0, model=user_model))
            return Planned(item.id, self.engine, talk.assistant_request(
                [{"role": "user", "content": seed.text}], sampling, item_id=item.id, base_seed=base_seed, turn=0))

        requests = (first(item) for item in self.items() if len(item.extra["seed"].text) <= config.max_seed_chars)
        too_long = sum(1 for seed in self.seeds if len(seed.text) > config.max_seed_chars)
        notes = [f"{too_long} seeds over --max-seed-chars are rejected without a request"] if too_long else []
        if config.mode == "transcript":
            return DryRun(requests, unit="seed", how="one transcript request per seed", notes=notes)
        n = config.feedback.n if config.feedback else 1
        answers = f"{config.max_turns} x {n} answers + {config.max_turns} judge" if config.feedback else \
            f"{config.max_turns} answers"
        person = config.max_turns - 1 + (config.opening == "generated")
        most = config.max_turns * (n + (1 if config.feedback else 0)) + person
        return DryRun(requests, unit="seed", most_per_item=most, notes=notes,
                      how=f"per dialog at most {answers} and {person} person turns, from --max-turns "
                          f"{config.max_turns}; a person who ends early sends fewer")

    async def work(self, item: Item) -> Kept | Rejected:
        seed: Seed = item.extra["seed"]
        if len(seed.text) > self.config.max_seed_chars:
            record = self.record(seed, item.id, Dialog(messages=[], finish="natural"))
            record["meta"].update(seed_excerpt(seed.text))
            return Rejected(record, "seed_too_long")
        assert self.engine is not None and self.user_engine is not None
        if self.config.mode == "transcript":
            dialog = await transcript_dialog(self.engine, seed.text, self.generation.sampling, item_id=item.id,
                                             base_seed=self.opts.seed)
        else:
            shared = self.user_engine is self.engine
            dialog = await agents_dialog(self.engine, self.user_engine, seed.text, self.generation.sampling,
                                         item_id=item.id, base_seed=self.opts.seed,
                                         max_turns=self.config.max_turns, opening=self.config.opening,
                                         assistant_prompt=self.config.assistant_prompt,
                                         user_model=self.config.user_model if shared else None,
                                         judge=self.judge)
        record = self.record(seed, item.id, dialog)
        reason = dialog.reject or self.content_filters.check(Chat(dialog.messages, seed=seed.text))
        if reason:
            if dialog.raw is not None:
                record["meta"]["raw"] = dialog.raw
            return Rejected(record, reason)
        return Kept([record])

    def review(self, item: Item, outcome: Kept | Rejected) -> Kept | Rejected:
        """Catch repeated dialogs and count the verdicts in the process that writes the line (with
        --executor ray, `work` runs in replicas that each see only their own dialogs)."""
        if isinstance(outcome, Kept):
            reason = self.dedup_filters.check(Chat(outcome.records[0]["messages"]))
            if reason is not None:
                outcome = Rejected(outcome.records[0], reason)
        if self.judge is not None:
            if isinstance(outcome, Kept):
                for record in outcome.records:
                    self.tally.add(record, kept=True)
            else:
                self.tally.add(outcome.record, kept=False)
        return super().review(item, outcome)

    def record(self, seed: Seed, item_id: str, dialog: Dialog) -> dict[str, Any]:
        assert self.engine is not None
        meta: dict[str, Any] = {"seed": seed.text, "model": self.engine.model, "mode": self.config.mode,
                                "template": self.generation.template, "finish": dialog.finish,
                                "turns": len(dialog.messages) // 2}
        if self.config.mode == "agents":
            meta["user_model"] = self.user_model_label() or self.engine.model
        if dialog.models:
            meta["models"] = dialog.models
        if dialog.notes:
            meta["notes"] = dialog.notes
        if self.judge is not None:
            meta["judge_model"] = self.judge_label()
            meta["feedback"] = dialog.feedback
        return make_record(id=item_id, source=seed.source, messages=self.with_reasoning(dialog, meta), meta=meta)

    def with_reasoning(self, dialog: Dialog, meta: dict[str, Any]) -> list[dict[str, str]]:
        """The dialog's messages, its thinking noted in meta (meta.reasoning: one entry per assistant
        turn; meta.transcript_reasoning: the thinking before a whole transcript); with
        --keep-reasoning, each assistant turn's thinking also goes into its message as
        reasoning_content, as training data."""
        if dialog.transcript_reasoning:
            meta["transcript_reasoning"] = dialog.transcript_reasoning
        if not any(dialog.reasoning):
            return dialog.messages
        meta["reasoning"] = dialog.reasoning
        if not self.opts.keep_reasoning:
            return dialog.messages
        thinking = iter(dialog.reasoning)
        return [{**m, "reasoning_content": r} if m["role"] == "assistant" and (r := next(thinking, None)) else m
                for m in dialog.messages]

    def manifest_extra(self) -> dict[str, Any]:
        extra: dict[str, Any] = {"filters": self.filters.settings(), "seeds": {"spec": self.config.seeds, "field": self.config.text_field,
                                           "shard": self.config.shard, "count": len(self.seeds),
                                           "duplicates": self.dropped_seeds["duplicate"],
                                           "blank": self.dropped_seeds["blank"],
                                           **({"semantic_duplicates": self.dropped_seeds["semantic_duplicate"]}
                                              if self.config.embed.dedup else {})}}
        if self.judge is not None and self.config.feedback is not None:
            extra["feedback"] = {**self.tally.describe(self.config.feedback), "judge_model": self.judge_label(),
                                 "judge_base_url": redact_url(self.judge_options().base_url)}
        return extra

    def derive(self, status: str) -> dict[str, Any]:
        """preferences.jsonl is derived from data.jsonl at every end: never appended to, so a
        kill between a record and its pairs cannot lose or repeat a pair."""
        if self.judge is not None:
            write_preferences(self.out)
        return {}


def run_selfchat(settings: SelfChatSettings, opts: RunOptions) -> dict[str, Any]:
    """Run the stage to completion (or a clean stop) and return the manifest."""
    return run_stage(SelfChatStage(settings, opts))
