"""Local generation with transformers, for the embedded default model and CPU users.

Callers send one request at a time, like any backend; a worker thread gathers whatever
requests are waiting into one padded batch (requests with the same sampling settings), so
32 concurrent dialogs cost one forward pass per token instead of 32.
"""
from __future__ import annotations

import asyncio
import math
import queue
import threading
from dataclasses import dataclass, replace
from typing import Any

from generators.core.errors import FatalError
from generators.backends.base import BackendSettings, Capabilities, ChatRequest, ChatResult, RequestFailed, Sampling, render_prompt
from generators.backends.local import LocalBackend


@dataclass
class _Job:
    request: ChatRequest
    future: asyncio.Future
    loop: asyncio.AbstractEventLoop


class HFBackend(LocalBackend):
    name = "hf"
    capabilities = Capabilities(prefill=True, logprobs=True, adapters=True, per_request_model=False,
                                batching=True, local=True, multi_instance=True,
                                guides=frozenset({"regex", "choice"}))

    @classmethod
    def build(cls, path: str, settings: BackendSettings) -> "HFBackend":
        return cls(model=path, adapter=settings.adapter, batch_size=settings.concurrency)

    def __init__(self, *, model: str, adapter: str | None = None, batch_size: int = 16,
                 device: str | None = None, default_max_tokens: int = 512) -> None:
        self.model = model if not adapter else f"{model}+{adapter}"
        self.model_path = model
        self.adapter = adapter
        self.batch_size = batch_size
        self.device = device
        self.default_max_tokens = default_max_tokens
        self._jobs: queue.Queue[_Job | None] = queue.Queue()
        self._thread: threading.Thread | None = None
        self._loaded = threading.Event()
        self._load_error: BaseException | None = None

    # -- loading ---------------------------------------------------------------------------
    def _load(self) -> None:
        import torch
        from transformers import AutoModelForCausalLM, AutoTokenizer
        from transformers.utils import logging as hf_logging

        hf_logging.disable_progress_bar()  # our own progress bar is the one that matters
        device = self.device or ("cuda" if torch.cuda.is_available() else "cpu")
        dtype = torch.bfloat16 if device.startswith("cuda") else torch.float32
        tokenizer = AutoTokenizer.from_pretrained(self.model_path)
        tokenizer.padding_side = "left"
        if tokenizer.pad_token is None:
            tokenizer.pad_token = tokenizer.eos_token
        model = AutoModelForCausalLM.from_pretrained(self.model_path, dtype=dtype).to(device)
        if self.adapter:
            from peft import PeftModel

            model = PeftModel.from_pretrained(model, self.adapter)
        model.eval()
        self._torch, self._tok, self._model, self._dev = torch, tokenizer, model, device

    async def start(self) -> None:
        """Load now (in the worker thread) and fail the run in one line if the model cannot load."""
        self._ensure_thread()
        await asyncio.to_thread(self._loaded.wait)
        if self._load_error is not None:
            exc = self._load_error
            first = (str(exc).strip().splitlines() or [type(exc).__name__])[0][:300]
            raise FatalError(f"cannot load model {self.model_path}: {type(exc).__name__}: {first}")

    def _ensure_thread(self) -> None:
        if self._thread is None:
            self._thread = threading.Thread(target=self._work, name="hf-backend", daemon=True)
            self._thread.start()

    # -- serving ---------------------------------------------------------------------------
    async def complete(self, request: ChatRequest) -> ChatResult:
        self._ensure_thread()
        loop = asyncio.get_running_loop()
        future: asyncio.Future = loop.create_future()
        self._jobs.put(_Job(request, future, loop))
        return await future

    def _work(self) -> None:
        try:
            self._load()
        except BaseException as exc:  # noqa: BLE001 - reported to every waiting caller
            self._load_error = exc
        finally:
            self._loaded.set()
        while True:
            job = self._jobs.get()
            if job is None:
                return
            batch = [job]
            while len(batch) < self.batch_size:
                try:
                    nxt = self._jobs.get_nowait()
                except queue.Empty:
                    break
                if nxt is None:
                    self._jobs.put(None)
                    break
                batch.append(nxt)
            # Requests that differ only in their seed share a batch (one generator for the batch,
            # seeded by its first request): per-request seeds would otherwise mean batches of one.
            groups: dict[Sampling, list[_Job]] = {}
            for j in batch:
                groups.setdefault(replace(j.request.sampling, seed=None), []).append(j)
            for key, jobs in groups.items():
                self._run_batch(replace(key, seed=jobs[0].request.sampling.seed), jobs)

    def _run_batch(self, sampling: Sampling, jobs: list[_Job]) -> None:
        try:
            if self._load_error is not None:
                raise self._load_error
            results: list[Any] = self._generate(sampling, [j.request for j in jobs])
        except BaseException as exc:  # noqa: BLE001
            failure = RequestFailed(f"local generation failed: {type(exc).__name__}: {exc}")
            results = [failure] * len(jobs)
        for job, result in zip(jobs, results):
            job.loop.call_soon_threadsafe(_settle, job.future, result)

    def _generate(self, sampling: Sampling, requests: list[ChatRequest]) -> list[ChatResult]:
        torch, tok, model = self._torch, self._tok, self._model
        texts = [render_prompt(tok, r) for r in requests]
        enc = tok(texts, return_tensors="pt", padding=True, add_special_tokens=False).to(self._dev)
        max_new = sampling.max_tokens or self.default_max_tokens
        do_sample = bool(sampling.temperature and sampling.temperature > 0)
        kwargs: dict[str, Any] = {"max_new_tokens": max_new, "do_sample": do_sample,
                                  "pad_token_id": tok.pad_token_id, "return_dict_in_generate": True,
                                  "output_logits": sampling.logprobs is not None}
        if do_sample:
            kwargs["temperature"] = sampling.temperature
            kwargs["top_p"] = sampling.top_p if sampling.top_p is not None else 1.0
        else:
            kwargs.update(temperature=None, top_p=None, top_k=None)
        if sampling.guide is not None:
            kwargs["logits_processor"] = self._guide(sampling.guide, enc["input_ids"].shape[1], model)
        if sampling.seed is not None:
            torch.manual_seed(sampling.seed)
        with torch.inference_mode():
            out = model.generate(**enc, **kwargs)
        prompt_len = enc["input_ids"].shape[1]
        eos_ids = _eos_ids(model, tok)
        results = []
        for row, ids in enumerate(out.sequences[:, prompt_len:].tolist()):
            length = next((i + 1 for i, t in enumerate(ids) if t in eos_ids), None)
            finish = "stop" if length is not None else "length"
            kept = ids[:length] if length else [t for t in ids if t != tok.pad_token_id]
            text = tok.decode([t for t in kept if t not in eos_ids], skip_special_tokens=True)
            if sampling.stop:
                cut = min((text.find(s) for s in sampling.stop if s in text), default=-1)
                if cut >= 0:
                    text, finish = text[:cut], "stop"
            logprobs = None
            if sampling.logprobs is not None:
                logprobs = _collect_logprobs(torch, tok, out.logits, row, kept, sampling.logprobs)
            results.append(ChatResult(
                text=text.strip(), finish=finish, model=self.model,
                prompt_tokens=int(enc["attention_mask"][row].sum()), completion_tokens=len(kept),
                logprobs=logprobs))
        return results

    def _guide(self, guide: tuple[str, str], prompt_len: int, model: Any) -> Any:
        """The logits processor that keeps the answers on `guide` (generators/backends/guided_tokens.py)."""
        from transformers import LogitsProcessorList

        from generators.backends.guided_tokens import RegexLogitsProcessor, by_first_char, guide_pattern, token_texts

        size = model.get_output_embeddings().weight.shape[0]
        if getattr(self, "_texts", None) is None or len(self._texts) != size:
            self._texts = token_texts(self._tok, size)  # once per model
            self._groups = by_first_char(self._texts)
        return LogitsProcessorList([RegexLogitsProcessor(guide_pattern(guide), self._tok, self._texts, prompt_len,
                                                         _eos_ids(model, self._tok), groups=self._groups)])

    async def aclose(self) -> None:
        if self._thread is not None:
            self._jobs.put(None)
            await asyncio.to_thread(self._thread.join, 30)


def _settle(future: asyncio.Future, result: Any) -> None:
    if future.done():
        return
    if isinstance(result, BaseException):
        future.set_exception(result)
    else:
        future.set_result(result)


def _eos_ids(model: Any, tok: Any) -> set[int]:
    ids = model.generation_config.eos_token_id
    ids = set(ids if isinstance(ids, list) else [ids] if ids is not None else [])
    if tok.eos_token_id is not None:
        ids.add(tok.eos_token_id)
    return ids


def _collect_logprobs(torch: Any, tok: Any, logits: Any, row: int, ids: list[int], k: int) -> list[dict]:
    """Log-probabilities of the chosen tokens (and the top k) under the model's own distribution
    (raw logits, before temperature and top-p), as OpenAI-compatible servers report them."""
    entries = []
    for step, token_id in enumerate(ids):
        logp = torch.log_softmax(logits[step][row].float(), dim=-1)
        top = torch.topk(logp, k) if k > 0 else None
        alternatives: dict[str, float] = {}
        if top is not None:
            for value, index in zip(top.values.tolist(), top.indices.tolist()):
                text = tok.decode([int(index)])
                # two token ids can decode to the same text: their probabilities add up
                alternatives[text] = (float(value) if text not in alternatives
                                      else math.log(math.exp(alternatives[text]) + math.exp(value)))
        entries.append({"token": tok.decode([token_id]), "logprob": float(logp[token_id]), "top": alternatives})
    return entries
