"""Any OpenAI-compatible server (OpenAI, `vllm serve`, llama.cpp, Ollama) through the official
`openai` async client.

Retries are ours (tenacity), not the client's: exponential backoff with jitter on 429, 5xx,
timeouts, connection errors and unreadable bodies; the server's Retry-After wins over our
backoff and pauses every request, not only the one that was told. Other 4xx are the
request's own fault and are not retried. A refused key stops the whole run at once.
"""
from __future__ import annotations

import importlib.util
import json
import os
from typing import Any

import httpx2
import openai
from tenacity import AsyncRetrying, RetryCallState, retry_if_exception
from tenacity.wait import wait_exponential_jitter

from ..errors import FatalError
from .base import Backend, ChatRequest, ChatResult, RequestFailed
from .ratelimit import RateLimiter, parse_duration

RETRYABLE_STATUS = {408, 409, 425, 429, 500, 502, 503, 504}


class _Retryable(Exception):
    """Internal: a failure worth another try; carries what errors.jsonl should say."""

    def __init__(self, reason: str, status: int | None = None, retry_after: float | None = None,
                 last_response: str | None = None, connection: bool = False) -> None:
        super().__init__(reason)
        self.reason, self.status, self.retry_after = reason, status, retry_after
        self.last_response, self.connection = last_response, connection


def _body_text(exc: openai.APIError) -> str | None:
    body = getattr(exc, "body", None)
    if body is None:
        response = getattr(exc, "response", None)
        return None if response is None else response.text[:2000]
    return body if isinstance(body, str) else json.dumps(body)[:2000]


class OpenAIBackend(Backend):
    name = "openai"

    def __init__(self, *, model: str, base_url: str | None = None, api_key: str | None = None,
                 concurrency: int = 16, timeout_s: float = 120.0, retries: int = 6,
                 limiter: RateLimiter | None = None, backoff_initial_s: float = 0.5,
                 backoff_max_s: float = 60.0, transport: str = "auto") -> None:
        self.model = model
        self.base_url = base_url
        self.retries = retries
        self.backoff_initial_s = backoff_initial_s
        self.backoff_max_s = backoff_max_s
        self.limiter = limiter or RateLimiter()
        self.succeeded = 0
        key = api_key or os.environ.get("OPENAI_API_KEY") or "not-needed"  # local servers ignore it
        limits = httpx2.Limits(max_connections=max(concurrency, 1) + 8,
                               max_keepalive_connections=max(concurrency, 1) + 8)
        self.transport = _pick_transport(transport)
        http_client_class = (openai.DefaultAioHttpClient if self.transport == "aiohttp"
                             else openai.DefaultAsyncHttpxClient)
        self.client = openai.AsyncOpenAI(
            api_key=key, base_url=base_url, max_retries=0, timeout=timeout_s,
            http_client=http_client_class(limits=limits, timeout=timeout_s))

    async def complete(self, request: ChatRequest) -> ChatResult:
        retrying = AsyncRetrying(
            retry=retry_if_exception(lambda e: isinstance(e, _Retryable)),
            stop=self._stop,
            wait=self._wait, reraise=True)
        try:
            async for attempt in retrying:
                with attempt:
                    return await self._once(request)
        except _Retryable as exc:
            if exc.connection and self.succeeded == 0:
                raise FatalError(f"cannot reach the server at {self.base_url or 'api.openai.com'} "
                                 f"({exc.reason}); start it or fix --base-url") from None
            raise RequestFailed(f"{exc.reason} (after {self.retries + 1} attempts)" if exc.status or not exc.connection
                                else exc.reason, status=exc.status,
                                last_response=exc.last_response) from None
        raise AssertionError("unreachable")

    def _stop(self, state: RetryCallState) -> bool:
        exc = state.outcome.exception() if state.outcome else None
        if isinstance(exc, _Retryable) and exc.connection and self.succeeded == 0 and state.attempt_number >= 3:
            return True  # nothing ever answered: an unreachable server, say so quickly
        return state.attempt_number >= self.retries + 1

    def _wait(self, state: RetryCallState) -> float:
        exc = state.outcome.exception() if state.outcome else None
        if isinstance(exc, _Retryable) and exc.retry_after is not None:
            return exc.retry_after
        return wait_exponential_jitter(multiplier=self.backoff_initial_s, max=self.backoff_max_s,
                                       jitter=2 * self.backoff_initial_s)(state)

    def _params(self, request: ChatRequest) -> dict[str, Any]:
        s = request.sampling
        params: dict[str, Any] = {"model": request.model or self.model, "messages": request.message_dicts()}
        if s.temperature is not None:
            params["temperature"] = s.temperature
        if s.top_p is not None:
            params["top_p"] = s.top_p
        if s.max_tokens is not None:
            params["max_tokens"] = s.max_tokens
        if s.seed is not None:
            params["seed"] = s.seed
        if s.stop:
            params["stop"] = list(s.stop)
        if s.logprobs is not None:
            params["logprobs"] = True
            if s.logprobs > 0:
                params["top_logprobs"] = s.logprobs
        return params

    async def _once(self, request: ChatRequest) -> ChatResult:
        estimate = sum(len(c) for _, c in request.messages) // 4 + (request.sampling.max_tokens or 256)
        await self.limiter.acquire(estimate)
        try:
            raw = await self.client.chat.completions.with_raw_response.create(**self._params(request))
            self.limiter.observe_headers(raw.headers)
            completion = raw.parse()
        except openai.AuthenticationError as exc:
            raise FatalError(f"the server refused the API key (401: {exc.message[:200]}); "
                             "check OPENAI_API_KEY") from None
        except openai.PermissionDeniedError as exc:
            raise FatalError(f"the server denied access (403: {exc.message[:200]}); "
                             "check the key's permissions and --model") from None
        except openai.APIStatusError as exc:
            status = exc.status_code
            self.limiter.observe_headers(exc.response.headers)
            retry_after = parse_duration(exc.response.headers.get("retry-after"))
            if status == 429 and retry_after is not None:
                self.limiter.pause(retry_after)
            if status in RETRYABLE_STATUS or status >= 500:
                raise _Retryable(f"HTTP {status}: {exc.message[:200]}", status, retry_after,
                                 _body_text(exc)) from None
            raise RequestFailed(f"HTTP {status}: {exc.message[:300]}", status=status,
                                last_response=_body_text(exc)) from None
        except openai.APITimeoutError as exc:
            if _refused(exc):  # the aiohttp transport reports a refused connection as a timeout
                raise _Retryable(f"connection failed: {_refused(exc)}", connection=True) from None
            raise _Retryable("request timed out") from None
        except openai.APIConnectionError as exc:
            raise _Retryable(f"connection failed: {exc.__cause__ or exc.message}", connection=True) from None
        except (openai.APIResponseValidationError, json.JSONDecodeError, ValueError) as exc:
            raise _Retryable(f"unreadable response: {str(exc)[:200]}",
                             last_response=getattr(getattr(exc, "response", None), "text", None)) from None
        usage = completion.usage
        prompt_tokens = usage.prompt_tokens if usage else 0
        completion_tokens = usage.completion_tokens if usage else 0
        self.limiter.settle(estimate, prompt_tokens + completion_tokens)
        if not completion.choices:
            raise _Retryable("response has no choices", last_response=raw.http_response.text[:2000])
        choice = completion.choices[0]
        self.succeeded += 1
        return ChatResult(
            text=choice.message.content or "", finish=choice.finish_reason or "stop",
            prompt_tokens=prompt_tokens, completion_tokens=completion_tokens,
            model=completion.model or params_model(request, self.model), logprobs=_logprobs(choice))

    async def aclose(self) -> None:
        await self.client.close()


def _refused(exc: BaseException) -> str | None:
    """The OS-level connection error behind a client error, if there is one."""
    seen = 0
    cause: BaseException | None = exc
    while cause is not None and seen < 8:
        if isinstance(cause, ConnectionError):
            return str(cause)
        cause, seen = cause.__cause__ or cause.__context__, seen + 1
    return None


def _pick_transport(wanted: str) -> str:
    """aiohttp when installed (the SDK's own optional transport): measured here it costs less CPU per
    request than httpx, whose connection pool scans every connection for every request."""
    if wanted != "auto":
        return wanted
    return "aiohttp" if importlib.util.find_spec("aiohttp") else "httpx"


def params_model(request: ChatRequest, default: str) -> str:
    return request.model or default


def _logprobs(choice: Any) -> list[dict[str, Any]] | None:
    content = getattr(getattr(choice, "logprobs", None), "content", None)
    if not content:
        return None
    return [{"token": item.token, "logprob": item.logprob,
             "top": {alt.token: alt.logprob for alt in (item.top_logprobs or [])}} for item in content]
