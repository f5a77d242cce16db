"""The engine every stage talks to: cache first, then budget, then the backend, then accounting.

Answers are repaired here, before the cache and the stage see them: a lone UTF-16 surrogate
(the escaped half of a cut emoji, valid JSON but not encodable) becomes U+FFFD and is counted.
A reasoning model's inline thinking is moved apart from the answer here too (core/reasoning.py),
so every stage reads `text` as the visible answer alone.

It also notices a run where every request fails (a dead server, a wrong model name) and
stops it with the last error instead of writing thousands of identical error lines.
"""
from __future__ import annotations

import dataclasses

from generators.core.accounting import Accounting
from generators.backends.base import Backend, ChatRequest, ChatResult, RequestFailed
from generators.backends.cache import ResponseCache, cache_key
from generators.core.errors import FatalError
from generators.core.reasoning import separate
from generators.core.text import repair_text


class Engine:
    def __init__(self, backend: Backend, *, cache: ResponseCache | None = None,
                 accounting: Accounting | None = None, max_consecutive_failures: int = 25) -> None:
        self.backend = backend
        self.cache = cache
        self.accounting = accounting or Accounting(model=backend.model)
        self.max_consecutive_failures = max_consecutive_failures
        self._consecutive_failures = 0

    @property
    def model(self) -> str:
        return self.backend.model

    async def start(self) -> None:
        """Load the model or check the server now, so a bad one fails before any item."""
        await self.backend.start()

    async def complete(self, request: ChatRequest) -> ChatResult:
        key = (cache_key(self.backend.name, self.backend.model, request, endpoint=self.backend.endpoint)
               if self.cache else None)
        if key is not None:
            hit = self.cache.get(key)
            if hit is not None:
                self.accounting.add_cached()
                self.accounting.add_repaired(hit.repaired_text)
                return separate(hit)  # an answer cached before thinking was recognised
        self.accounting.check_budget()
        try:
            result = await self.backend.complete(request)
        except RequestFailed as exc:
            self.accounting.add_failed()
            self._consecutive_failures += 1
            if self._consecutive_failures >= self.max_consecutive_failures:
                raise FatalError(f"the last {self._consecutive_failures} requests all failed; last error: "
                                 f"{exc.reason}; check the server and --model, then rerun") from None
            raise
        self._consecutive_failures = 0
        result = separate(repaired(result))
        self.accounting.add_repaired(result.repaired_text)
        self.accounting.add(result.prompt_tokens, result.completion_tokens, result.cache_read_tokens,
                            result.cache_write_tokens, reasoning_tokens=result.reasoning_tokens)
        if key is not None:
            self.cache.put(key, result)
        return result

    async def aclose(self) -> None:
        if self.cache is not None:
            self.cache.close()
        await self.backend.aclose()


def repaired(result: ChatResult) -> ChatResult:
    """`result` with lone surrogates in its text and logprob tokens made U+FFFD; those in the
    text are counted in repaired_text."""
    text, count = repair_text(result.text)
    logprobs, _ = repair_text(result.logprobs)
    if text is result.text and logprobs is result.logprobs:
        return result
    return dataclasses.replace(result, text=text, logprobs=logprobs,
                               repaired_text=result.repaired_text + count)
