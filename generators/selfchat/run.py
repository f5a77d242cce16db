"""The self-chat stage: seeds in, dialogs out (kept, rejected with a reason, or errors)."""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable

import prompts
from ..errors import UsageError
from ..options import RunOptions, backend_kind, make_backend
from ..records import make_record, stable_id
from ..runner import Item, Kept, Rejected
from ..seeds import Seed, load_seeds
from ..stage import Stage, run_stage
from ..store import RunStore
from .dialog import Dialog, agents_dialog, transcript_dialog
from .filters import DialogFilter, DialogFilterConfig

# Baize's teacher ran at the API's default sampling; a local model needs its own settings.
API_SAMPLING = {"max_tokens": 1024}
LOCAL_SAMPLING = {"temperature": 0.7, "top_p": 0.9, "max_tokens": 512}
MAX_SEED_CHARS = 20_000


@dataclass
class SelfChatSettings:
    seeds: str
    out: Path
    text_field: str | None = None
    shard: tuple[int, int] | None = None
    mode: str = "transcript"
    max_turns: int = 4
    user_model: str | None = None
    opening: str = "seed"
    assistant_prompt: str = "selfchat_assistant"
    max_seed_chars: int = MAX_SEED_CHARS
    filters: DialogFilterConfig = field(default_factory=DialogFilterConfig)


class SelfChatStage(Stage):
    name = "selfchat"

    def __init__(self, settings: SelfChatSettings, opts: RunOptions) -> None:
        super().__init__(opts, settings.out)
        self.config = settings
        self.seeds: list[Seed] = []
        self.user_engine = None
        self.dialog_filter = DialogFilter(settings.filters)

    # -- checks and inputs -----------------------------------------------------------------
    def check(self) -> None:
        if self.config.assistant_prompt not in prompts.names():
            raise UsageError(f"--assistant-prompt {self.config.assistant_prompt}: no such template in prompts/; "
                             "choose one of: " + ", ".join(n for n in prompts.names()
                                                           if n.startswith("selfchat_assistant")))
        if self.opts.batch and self.config.mode == "agents":
            raise UsageError("--batch sends every request at once, but in --mode agents each turn waits for the "
                             "one before it; use --mode transcript with --batch, or leave out --batch")
        if self.config.user_model and self.config.mode != "agents":
            raise UsageError("--user-model is for --mode agents (in transcript mode one request writes both sides)")
        caps = backend_kind(self.opts).capabilities
        if self.config.user_model and not (caps.per_request_model or caps.multi_instance):
            raise UsageError(f"--user-model with --backend {self.opts.resolved_backend()} would start a second "
                             "engine in this process, which it cannot share; serve both models (vllm serve) "
                             "and use --backend openai, or use --backend hf")

    def load_inputs(self) -> None:
        self.seeds = load_seeds(self.config.seeds, field=self.config.text_field, limit=self.opts.limit,
                                shard=self.config.shard, seed=self.opts.seed)

    def build_engines(self) -> None:
        super().build_engines()
        assert self.engine is not None
        user_model = self.config.user_model if self.config.mode == "agents" else None
        if not user_model or self.capabilities.per_request_model:
            self.user_engine = self.engine  # one server answers for both model names
            return
        self.user_engine = self.add_engine(make_backend(self.opts, model=user_model, run_dir=str(self.out)),
                                           share_with=self.engine)

    # -- settings --------------------------------------------------------------------------
    def template(self) -> str:
        if self.config.mode == "transcript":
            return prompts.template_id("selfchat_transcript")
        return f"{prompts.template_id('selfchat_user')},{prompts.template_id(self.config.assistant_prompt)}"

    def sampling(self) -> Any:
        local = self.capabilities.local
        return self.opts.sampling(**(LOCAL_SAMPLING if local else API_SAMPLING))

    def generation(self) -> dict[str, Any]:
        """What makes the dialogs: part of every item id, so changing it makes new items."""
        generation = {**self.engine_settings(), "mode": self.config.mode, "template": self.template(),
                      "sampling": self.sampling().as_dict()}
        if self.config.mode == "agents":
            generation.update(max_turns=self.config.max_turns, user_model=self.user_model_label(),
                              opening=self.config.opening)
        return generation

    def user_model_label(self) -> str | None:
        if self.config.mode != "agents" or not self.config.user_model:
            return None
        if self.user_engine is not None and self.user_engine is not self.engine:
            return self.user_engine.model
        return self.config.user_model

    def settings(self) -> dict[str, Any]:
        self._generation = self.generation()
        self._sampling = self.sampling()
        self._template = self.template()
        return {**self._generation, "filters": self.config.filters.describe(),
                "max_seed_chars": self.config.max_seed_chars}

    # -- items -----------------------------------------------------------------------------
    def prime(self, store: RunStore) -> None:
        for record in store.iter_lines("kept"):
            self.dialog_filter.remember(record["messages"])
        self._done = store.done
        self._items = [Item(id=stable_id("selfchat", seed.source, seed.text, self._generation), source=seed.source,
                            input=seed.text, extra={"seed": seed}) for seed in self.seeds]

    def items(self) -> Iterable[Item]:
        return self._items

    def total(self) -> int | None:
        return sum(1 for item in self._items if item.id not in self._done)

    async def work(self, item: Item) -> Kept | Rejected:
        seed: Seed = item.extra["seed"]
        if len(seed.text) > self.config.max_seed_chars:
            return Rejected(self.record(seed, item.id, Dialog(messages=[], finish="natural")), "seed_too_long")
        assert self.engine is not None and self.user_engine is not None
        if self.config.mode == "transcript":
            dialog = await transcript_dialog(self.engine, seed.text, self._sampling, item_id=item.id,
                                             base_seed=self.opts.seed)
        else:
            shared = self.user_engine is self.engine
            dialog = await agents_dialog(self.engine, self.user_engine, seed.text, self._sampling,
                                         item_id=item.id, base_seed=self.opts.seed,
                                         max_turns=self.config.max_turns, opening=self.config.opening,
                                         assistant_prompt=self.config.assistant_prompt,
                                         user_model=self.config.user_model if shared else None)
        record = self.record(seed, item.id, dialog)
        reason = dialog.reject or self.dialog_filter.check(dialog.messages)
        if reason:
            if dialog.raw is not None:
                record["meta"]["raw"] = dialog.raw
            return Rejected(record, reason)
        return Kept([record])

    def record(self, seed: Seed, item_id: str, dialog: Dialog) -> dict[str, Any]:
        assert self.engine is not None
        meta: dict[str, Any] = {"seed": seed.text, "model": self.engine.model, "mode": self.config.mode,
                                "template": self._template, "finish": dialog.finish,
                                "turns": len(dialog.messages) // 2}
        if self.config.mode == "agents":
            meta["user_model"] = self.user_model_label() or self.engine.model
        if dialog.models:
            meta["models"] = dialog.models
        if dialog.notes:
            meta["notes"] = dialog.notes
        return make_record(id=item_id, source=seed.source, messages=dialog.messages, meta=meta)

    def manifest_extra(self) -> dict[str, Any]:
        return {"seeds": {"spec": self.config.seeds, "field": self.config.text_field,
                          "shard": self.config.shard, "count": len(self.seeds)}}


def run_selfchat(settings: SelfChatSettings, opts: RunOptions) -> dict[str, Any]:
    """Run the stage to completion (or a clean stop) and return the manifest."""
    return run_stage(SelfChatStage(settings, opts))
