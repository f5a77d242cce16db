"""What every model backend speaks: a chat request in, a chat result (or a RequestFailed) out.

Backends are async and per-request (`complete`); a backend that is faster in batches (the
local transformers one) gathers concurrent calls into batches itself. Everything above this
layer (cache, accounting, runner) works the same whatever the backend.
"""
from __future__ import annotations

import abc
from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True)
class Sampling:
    """Sampling settings; part of the cache key, so the same settings give the same answer."""

    temperature: float | None = None
    top_p: float | None = None
    max_tokens: int | None = None
    seed: int | None = None
    stop: tuple[str, ...] | None = None
    logprobs: int | None = None  # None: no logprobs; k >= 0: logprobs with k alternatives each
    reasoning_effort: str | None = None  # low | medium | high: how hard a reasoning model thinks
    # constrained decoding: ("regex", pattern), ("choice", "a|b|..."), ("json", canonical JSON schema);
    # a backend honours the kinds in its Capabilities.guides (generators/core/guides.py picks one)
    guide: tuple[str, str] | None = None

    def describe(self) -> dict[str, Any]:
        return {k: v for k, v in self.__dict__.items() if v is not None}


@dataclass(frozen=True)
class ChatRequest:
    messages: tuple[tuple[str, str], ...]  # ((role, content), ...): hashable and immutable
    sampling: Sampling = field(default_factory=Sampling)
    model: str | None = None  # None: the backend's default model
    # Which requests share a prompt prefix (a dialog's id, a template's name): a provider routes
    # them to the same prompt cache (OpenAI's prompt_cache_key, Anthropic's cache_control). Not
    # part of the answer: the response cache's key leaves it out, and so does equality.
    cache_hint: str | None = field(default=None, compare=False)

    @classmethod
    def of(cls, messages: list[dict[str, str]], sampling: Sampling | None = None,
           model: str | None = None, *, cache_hint: str | None = None) -> "ChatRequest":
        return cls(tuple((m["role"], m["content"]) for m in messages), sampling or Sampling(), model,
                   cache_hint=cache_hint)

    def message_dicts(self) -> list[dict[str, str]]:
        return [{"role": role, "content": content} for role, content in self.messages]

    @property
    def prefilled(self) -> bool:
        """A last assistant message is the start of the answer, to be continued (local backends)."""
        return bool(self.messages) and self.messages[-1][0] == "assistant"


def render_prompt(tokenizer: Any, request: ChatRequest) -> str:
    """The prompt text local backends feed the model: the model's chat template with the
    generation prompt, or continuing a prefilled last assistant message."""
    if request.prefilled:
        return tokenizer.apply_chat_template(request.message_dicts(), continue_final_message=True,
                                             tokenize=False)
    return tokenizer.apply_chat_template(request.message_dicts(), add_generation_prompt=True, tokenize=False)


@dataclass(frozen=True)
class Capabilities:
    """What a backend can do; stages ask these, never the backend's name.

    prefill: continues a prefilled last assistant message (ChatRequest.prefilled).
    logprobs: returns token logprobs with top alternatives.
    adapters: loads a LoRA adapter folder itself (--adapter).
    per_request_model: one backend answers for several model names (ChatRequest.model), as an
      API server does; without it another model means another backend instance.
    batching: gathers concurrent requests into batches itself (concurrency = batch size).
    local: runs in this process (a model path, not a server).
    multi_instance: a second instance may run beside the first in one process (a second local
      model for the simulated person); vLLM's engine owns the device and may not.
    batch_api: can send requests through a provider's Batch API at half price (--batch).
    adaptive: can adapt its requests in flight to the server's rate limits (--concurrency auto).
    model_parallel: splits one model over several devices itself (--tensor-parallel-size,
      --data-parallel-size).
    reasoning_effort: tells a reasoning model how hard to think (--reasoning-effort).
    guides: the kinds of Sampling.guide it honours ("regex", "choice", "json"): constrained
      decoding, so an answer has the asked form by construction (--constrained auto).
    """

    prefill: bool = False
    logprobs: bool = False
    adapters: bool = False
    per_request_model: bool = False
    batching: bool = False
    local: bool = False
    multi_instance: bool = True
    batch_api: bool = False
    adaptive: bool = False
    model_parallel: bool = False
    reasoning_effort: bool = False
    guides: frozenset[str] = frozenset()


@dataclass(frozen=True)
class BackendSettings:
    """What a stage asks of any backend; each backend takes what applies to it.

    The run flags that feed the backend fill the fields of their name (--timeout: `timeout_s`):
    options.backend_settings builds this from them, and tests/unit/test_flags.py checks that the
    two line up, defaults included. `adapter`, `run_dir` and `cache_root` come from the stage."""

    model: str | None = None
    adapter: str | None = None
    base_url: str | None = None
    concurrency: int = 16
    adaptive: bool = False  # --concurrency auto: `concurrency` is then the most in flight
    timeout_s: float = 120.0
    retries: int = 6
    rpm: float | None = None
    tpm: float | None = None
    max_retry_after: float = 300.0
    batch: bool = False
    batch_max_lines: int = 50_000
    batch_poll_interval: float = 60.0
    run_dir: str | None = None  # the run folder (the Batch API keeps its batch ids there)
    cache_root: str | None = None
    extra: tuple[tuple[str, Any], ...] = ()  # backend-specific knobs, e.g. gpu_memory_utilization

    def option(self, name: str, default: Any = None) -> Any:
        return dict(self.extra).get(name, default)


@dataclass
class ChatResult:
    text: str
    finish: str  # "stop" | "length" | other server values
    prompt_tokens: int = 0
    completion_tokens: int = 0
    model: str = ""
    logprobs: list[dict[str, Any]] | None = None  # [{token, logprob, top: {token: logprob}}]
    cached: bool = False
    cache_read_tokens: int = 0  # of prompt_tokens: read from the provider's prompt cache
    cache_write_tokens: int = 0  # of prompt_tokens: written into it
    repaired_text: int = 0  # lone surrogates in `text` made U+FFFD (Engine, before the cache)
    reasoning: str | None = None  # the model's thinking, apart from `text` (the visible answer)
    reasoning_tokens: int = 0  # of completion_tokens: spent thinking (counted by the server, or estimated)
    reasoning_truncated: bool = False  # the thinking never closed: there is no answer (core/reasoning.py)

    def to_json(self) -> dict[str, Any]:
        data = dict(self.__dict__)
        data.pop("cached")
        for name in ("cache_read_tokens", "cache_write_tokens", "repaired_text", "reasoning", "reasoning_tokens",
                     "reasoning_truncated"):
            if not data[name]:
                del data[name]  # answers without them keep the shape they always had
        return data

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> "ChatResult":
        return cls(**data, cached=True)


class RequestFailed(Exception):
    """A request that still failed after retries: becomes a line in errors.jsonl."""

    def __init__(self, reason: str, *, status: int | None = None, last_response: str | None = None):
        super().__init__(reason)
        self.reason = reason
        self.status = status
        self.last_response = last_response


class Backend(abc.ABC):
    """One model server or library. `name` and `model` identify answers in the cache."""

    name: str = "backend"
    model: str = ""
    capabilities: Capabilities = Capabilities()
    endpoint: str | None = None  # where answers come from (a redacted URL); part of the cache key
    settings: BackendSettings | None = None  # what it was built from (set by options.make_backend)

    @classmethod
    def check(cls, settings: BackendSettings) -> None:
        """Refuse, with a UsageError, settings this backend cannot work with: called before any
        file is written or model loaded."""

    @classmethod
    def create(cls, settings: BackendSettings) -> "Backend":
        """Build the backend (cheaply: loading waits for `start`)."""
        raise NotImplementedError(f"{cls.__name__} does not say how to build itself from settings")

    def progress(self) -> dict[str, Any]:
        """A few live figures for the progress bar (e.g. the concurrency level, batch statuses)."""
        return {}

    def report(self) -> dict[str, Any]:
        """What the manifest should keep about this backend's run (e.g. concurrency history,
        batch ids and statuses)."""
        return {}

    async def start(self) -> None:
        """Load the model (local backends) so a bad path or a broken model fails before any
        item; a server backend has nothing to do here."""

    @abc.abstractmethod
    async def complete(self, request: ChatRequest) -> ChatResult:
        """Answer one request, or raise RequestFailed (per item) / FatalError (whole run)."""

    async def aclose(self) -> None:
        """Release connections, threads or models."""
