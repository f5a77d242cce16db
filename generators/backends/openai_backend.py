"""Any OpenAI-compatible server (OpenAI, `vllm serve`, llama.cpp, Ollama) through the official
`openai` async client.

Retries are ours, not the client's: exponential backoff with jitter (tenacity's) on 429, 5xx,
timeouts, connection errors and unreadable bodies (a 200 that is not a chat completion, such
as a proxy's HTML page); the server's Retry-After wins over our backoff and pauses every
request, not only the one that was told. A server asking to wait longer than
`max_retry_after` stops the run at once instead. Other 4xx are the request's own fault and
are not retried. Refused credentials stop the whole run at once.

Auth: `user:password@` in the base URL is taken out of the URL the client sees and sent as
HTTP basic auth on every request; it then replaces the API key's `Bearer` header (one
Authorization header only). Query parameters of the base URL (`?api-version=`) are sent with
every request. Messages name the server by its redacted URL (urls.redact_url).

The hot path stays off the SDK's pydantic layer: requests go through the client's own
`post` (its auth, base URL, query, headers, timeouts and typed errors) with a body we build
from plain values, and the answer is read with `json.loads`; the SDK's per-request parameter
transform and its pydantic models cost more CPU than the request itself at high concurrency
(docs/throughput.md).

With `--concurrency auto` (settings.adaptive) a Gate (adaptive.py) bounds the requests in
flight, cut by a quarter on each 429/503 and raised by one after a run of successes.
"""
from __future__ import annotations

import asyncio
import base64
import importlib.util
import json
import math
import os
from datetime import datetime, timedelta, timezone
from typing import Any, Mapping, NamedTuple
from urllib.parse import parse_qsl, quote, urlsplit, urlunsplit

import httpx2
import openai
from tenacity.wait import wait_exponential_jitter

from generators.core.errors import FatalError, UsageError
from generators.backends.adaptive import Aimd, Gate
from generators.backends.openai_transport import lean_aiohttp_client
from generators.backends.base import Backend, BackendSettings, Capabilities, ChatRequest, ChatResult, RequestFailed
from generators.backends.ratelimit import PauseTooLong, RateLimiter, retry_after
from generators.backends.urls import check_base_url, redact_url, split_credentials

DEFAULT_BASE_URL = "https://api.openai.com/v1"
RETRYABLE_STATUS = {408, 409, 425, 429, 500, 502, 503, 504}
CONGESTION_STATUS = {429, 503}  # what cuts the adaptive level: the server says it has too much
BODY_CHARS = 2000  # how much of a bad answer errors.jsonl keeps


class _Attempt(NamedTuple):
    """The one field of tenacity's retry state its wait strategies read."""

    attempt_number: int


class _Retryable(Exception):
    """Internal: a failure worth another try; carries what errors.jsonl should say."""

    def __init__(self, reason: str, status: int | None = None, retry_after: float | None = None,
                 last_response: str | None = None, connection: bool = False) -> None:
        super().__init__(reason)
        self.reason, self.status, self.retry_after = reason, status, retry_after
        self.last_response, self.connection = last_response, connection


class OpenAIBackend(Backend):
    name = "openai"
    capabilities = Capabilities(prefill=False, logprobs=True, adapters=False, per_request_model=True,
                                batching=False, local=False, batch_api=True, adaptive=True)

    @classmethod
    def check(cls, settings: BackendSettings) -> None:
        if not settings.model:
            raise UsageError("--model is required with --backend openai (the model name the server knows)")
        if not settings.base_url and not os.environ.get("OPENAI_API_KEY"):
            raise UsageError("--backend openai needs --base-url or OPENAI_API_KEY; "
                             "for a local run without a server use --backend hf")
        if settings.base_url:
            check_base_url(settings.base_url)

    @classmethod
    def create(cls, settings: BackendSettings) -> "OpenAIBackend":
        return cls(model=settings.model or "", base_url=settings.base_url, concurrency=settings.concurrency,
                   timeout_s=settings.timeout_s, retries=settings.retries,
                   limiter=RateLimiter(rpm=settings.rpm, tpm=settings.tpm),
                   max_retry_after=settings.max_retry_after, adaptive=settings.adaptive)

    def __init__(self, *, model: str, base_url: str | None = None, api_key: str | None = None,
                 concurrency: int = 16, timeout_s: float = 120.0, retries: int = 6,
                 limiter: RateLimiter | None = None, backoff_initial_s: float = 0.5,
                 backoff_max_s: float = 60.0, transport: str = "auto",
                 max_retry_after: float = 300.0, adaptive: bool = False) -> None:
        url = base_url or os.environ.get("OPENAI_BASE_URL") or DEFAULT_BASE_URL
        check_base_url(url)
        self.model = model
        self.endpoint = redact_url(url)
        self.retries = retries
        self.backoff_initial_s = backoff_initial_s
        self.backoff_max_s = backoff_max_s
        self._jittered = wait_exponential_jitter(multiplier=backoff_initial_s, max=backoff_max_s,
                                                jitter=2 * backoff_initial_s)
        self.max_retry_after = max_retry_after
        self.limiter = limiter or RateLimiter()
        self.succeeded = 0
        self.transport = _pick_transport(transport)
        self.client = self._make_client(url, api_key, concurrency, timeout_s)
        # --concurrency auto: `concurrency` is the most in flight, the gate finds the level
        self.gate = Gate(Aimd(maximum=concurrency)) if adaptive else None

    def progress(self) -> dict[str, Any]:
        return {"conc": self.gate.aimd.level} if self.gate else {}

    def report(self) -> dict[str, Any]:
        return {"concurrency": self.gate.aimd.report()} if self.gate else {}

    def _make_client(self, url: str, api_key: str | None, concurrency: int,
                     timeout_s: float) -> openai.AsyncOpenAI:
        """The client for `url`: userinfo as basic auth (replacing the Bearer key), the query as
        default_query, our own retries only."""
        client_url, query, credentials = _client_parts(url)
        self.uses_basic_auth = credentials is not None
        self._secrets = _secrets(credentials, query)
        key = api_key or os.environ.get("OPENAI_API_KEY") or "not-needed"  # local servers ignore it
        limits = httpx2.Limits(max_connections=max(concurrency, 1) + 8,
                               max_keepalive_connections=max(concurrency, 1) + 8)
        http_client_class = (lean_aiohttp_client() if self.transport == "aiohttp"
                             else openai.DefaultAsyncHttpxClient)
        return openai.AsyncOpenAI(
            api_key=key, base_url=client_url, max_retries=0, timeout=timeout_s,
            default_headers={"Authorization": _basic_auth(*credentials)} if credentials else None,
            default_query=query or None,
            http_client=http_client_class(limits=limits, timeout=timeout_s))

    async def complete(self, request: ChatRequest) -> ChatResult:
        """One request with our retries. A plain loop: nearly every request succeeds at once, and
        building tenacity's retry state for each one cost more than the rest of our own work; the
        waits between tries are tenacity's exponential backoff with jitter, unless the server said."""
        attempt = 1
        while True:
            try:
                return await self._attempt(request)
            except _Retryable as exc:
                if self._give_up(exc, attempt):
                    raise self._final_failure(exc) from None
                await asyncio.sleep(self._delay(exc, attempt))
            attempt += 1

    def _final_failure(self, exc: _Retryable) -> Exception:
        """What a request that ran out of retries becomes: FatalError when the server was never
        reached, else RequestFailed for errors.jsonl."""
        reason = self._scrub(exc.reason)
        if exc.connection and self.succeeded == 0:
            return FatalError(f"cannot reach the server at {self.endpoint} ({reason}); "
                              "start it or fix --base-url")
        if exc.status or not exc.connection:
            reason = f"{reason} (after {self.retries + 1} attempts)"
        return RequestFailed(reason, status=exc.status, last_response=self._scrub(exc.last_response))

    def _give_up(self, exc: _Retryable, attempt: int) -> bool:
        if exc.connection and self.succeeded == 0 and attempt >= 3:
            return True  # nothing ever answered: an unreachable server, say so quickly
        return attempt >= self.retries + 1

    def _delay(self, exc: _Retryable, attempt: int) -> float:
        if exc.retry_after is not None:
            return exc.retry_after
        return self._jittered(_Attempt(attempt))

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

    async def _attempt(self, request: ChatRequest) -> ChatResult:
        """One try, through the adaptive gate when there is one: a slot per request on the
        wire (a retry waiting out its backoff holds none), the outcome fed back to the level."""
        if self.gate is None:
            return await self._once(request)
        epoch = await self.gate.acquire()
        try:
            result = await self._once(request)
            self.gate.succeeded()
            return result
        except _Retryable as exc:
            if exc.status in CONGESTION_STATUS:
                self.gate.congested(epoch)
            raise
        finally:
            self.gate.release()

    async def _once(self, request: ChatRequest) -> ChatResult:
        estimate = sum(len(c) for _, c in request.messages) // 4 + (request.sampling.max_tokens or 256)
        try:
            await self.limiter.acquire(estimate, max_pause_s=self.max_retry_after)
        except PauseTooLong as exc:
            raise self._too_long(exc.seconds, exc.reason) from None
        response = await self._send(request)
        self.limiter.observe_headers(response.headers)  # a long pause here stops the next request
        completion = _completion(response)
        usage = completion.get("usage") or {}
        prompt_tokens = _count(usage, "prompt_tokens")
        completion_tokens = _count(usage, "completion_tokens")
        self.limiter.settle(estimate, prompt_tokens + completion_tokens)
        choice = completion["choices"][0]
        self.succeeded += 1
        return ChatResult(
            text=_text(choice["message"].get("content")), finish=choice.get("finish_reason") or "stop",
            prompt_tokens=prompt_tokens, completion_tokens=completion_tokens,
            model=completion.get("model") or request.model or self.model, logprobs=_logprobs(choice))

    async def _send(self, request: ChatRequest) -> httpx2.Response:
        """The HTTP response of one attempt, through the client's `post` (cast to the raw
        response: no pydantic on the way in or out); every failure mapped to ours."""
        try:
            return await self.client.post("/chat/completions", body=self._params(request),
                                          cast_to=httpx2.Response)
        except (openai.AuthenticationError, openai.PermissionDeniedError) as exc:
            raise self._access_refused(exc, "and --model") from None
        except openai.APIStatusError as exc:
            raise self._status_failure(exc) from None
        except openai.APITimeoutError as exc:
            if _refused(exc):  # the aiohttp transport reports a refused connection as a timeout
                raise _Retryable(f"connection failed: {_refused(exc)}", connection=True) from None
            raise _Retryable("request timed out") from None
        except openai.APIConnectionError as exc:
            raise _Retryable(f"connection failed: {exc.__cause__ or exc.message}", connection=True) from None

    def _access_refused(self, exc: openai.APIStatusError, what: str) -> FatalError:
        """401 (the key or the credentials) or 403 (`what` the key may not use) stops the run."""
        if isinstance(exc, openai.AuthenticationError):
            return FatalError(self._refused_message(exc))
        return FatalError(f"the server denied access (403: {self._scrub(exc.message[:200])}); "
                          f"check the key's permissions {what}")

    def _refused_message(self, exc: openai.AuthenticationError) -> str:
        what = ("the user and password in --base-url" if self.uses_basic_auth else "OPENAI_API_KEY")
        subject = "credentials" if self.uses_basic_auth else "API key"
        return f"the server refused the {subject} (401: {self._scrub(exc.message[:200])}); check {what}"

    def _status_failure(self, exc: openai.APIStatusError) -> Exception:
        """A non-2xx answer: _Retryable, RequestFailed, or FatalError when told to wait too long."""
        status, headers = exc.status_code, exc.response.headers
        body = _body_text(exc)
        reset = self.limiter.observe_headers(headers)
        if status not in RETRYABLE_STATUS and status < 500:
            return RequestFailed(f"HTTP {status}: {self._scrub(exc.message[:300])}", status=status,
                                 last_response=self._scrub(body))
        if reset is not None and reset[0] > self.max_retry_after:
            return self._too_long(*reset)
        asked = retry_after(headers)
        if asked is not None and asked[0] > self.max_retry_after:
            return self._too_long(*asked)
        if status == 429 and asked is not None:
            self.limiter.pause(*asked)
        return _Retryable(f"HTTP {status}: {exc.message[:200]}", status,
                          asked[0] if asked else None, body)

    def _too_long(self, seconds: float, source: str) -> FatalError:
        until = datetime.now(timezone.utc) + timedelta(seconds=seconds)
        return FatalError(f"the server asked to wait {math.ceil(seconds)} s ({source or 'rate limit'}), more than "
                          f"--max-retry-after {self.max_retry_after:g} s; rerun the same command after "
                          f"{_utc_minute(until)}, or raise --max-retry-after")

    def _scrub(self, text: str | None) -> str | None:
        """`text` without the base URL's password or query values (a library or a server may
        quote the URL back)."""
        if text is None:
            return None
        for secret in self._secrets:
            text = text.replace(secret, "REDACTED")
        return text

    async def aclose(self) -> None:
        await self.client.close()


def _client_parts(url: str) -> tuple[str, dict[str, str], tuple[str, str] | None]:
    """(the URL the client gets: no userinfo, no query; the query as default_query; the
    (user, password) for basic auth, or None)."""
    bare, credentials = split_credentials(url)
    parts = urlsplit(bare)
    query = dict(parse_qsl(parts.query, keep_blank_values=True))
    return urlunsplit(parts._replace(query="", fragment="")), query, credentials


def _basic_auth(user: str, password: str) -> str:
    return "Basic " + base64.b64encode(f"{user}:{password}".encode("utf-8")).decode("ascii")


def _secrets(credentials: tuple[str, str] | None, query: Mapping[str, str]) -> list[str]:
    """What must never be shown, as written and percent-encoded; values under 4 characters
    (`?x=1`) are no secret, and blanking them would garble every message."""
    found = [credentials[1]] if credentials else []
    found += list(query.values())
    forms = {form for secret in found if len(secret) >= 4 for form in (secret, quote(secret, safe=""))}
    return sorted(forms, key=len, reverse=True)


def _utc_minute(when: datetime) -> str:
    """The next whole minute at or after `when`, in UTC: HH:MM today, else with the date."""
    when = (when + timedelta(seconds=59)).replace(second=0, microsecond=0)
    today = datetime.now(timezone.utc).date()
    return f"{when:%H:%M} UTC" if when.date() == today else f"{when:%Y-%m-%d %H:%M} UTC"


def _raw_text(response: httpx2.Response) -> str | None:
    try:
        return response.text[:BODY_CHARS]
    except Exception:  # noqa: BLE001 - undecodable bytes: nothing worth keeping
        return None


def _completion(response: httpx2.Response) -> dict[str, Any]:
    """The chat completion in a 2xx as plain JSON, or _Retryable with the body when it is not
    one (an HTML page from a proxy, cut-off JSON, JSON without choices). As the SDK reads it:
    a body that parses as JSON counts whatever its content-type says."""
    kind = response.headers.get("content-type") or ""
    try:
        data = json.loads(response.content)
    except ValueError as exc:  # UnicodeDecodeError included
        if kind.split(";")[0].endswith("json"):
            raise _Retryable(f"unreadable response: HTTP {response.status_code} body is not valid JSON "
                             f"({str(exc)[:200]})", last_response=_raw_text(response)) from None
        data = None
    if not isinstance(data, dict):
        raise _Retryable(f"unreadable response: HTTP {response.status_code} with {kind or 'no content-type'}, "
                         "not a chat completion", last_response=_raw_text(response))
    choices = data.get("choices")
    if not choices or not isinstance(choices, list) or not isinstance(choices[0], dict) \
            or not isinstance(choices[0].get("message"), dict):
        raise _Retryable("response has no choices", last_response=_raw_text(response))
    return data


def _count(usage: Any, name: str) -> int:
    value = usage.get(name) if isinstance(usage, dict) else None
    return value if isinstance(value, int) else 0


def _text(content: Any) -> str:
    """The message text: a string, or the text parts of a list of content parts."""
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return "".join(part.get("text") or "" for part in content if isinstance(part, dict))
    return ""


def _body_text(exc: openai.APIError) -> str | None:
    body = getattr(exc, "body", None)
    if body is None:
        response = getattr(exc, "response", None)
        return None if response is None else response.text[:BODY_CHARS]
    return body[:BODY_CHARS] if isinstance(body, str) else json.dumps(body)[:BODY_CHARS]


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


def _logprobs(choice: dict[str, Any]) -> list[dict[str, Any]] | None:
    content = (choice.get("logprobs") or {}).get("content")
    if not content:
        return None
    return [{"token": item.get("token"), "logprob": item.get("logprob"),
             "top": {alt.get("token"): alt.get("logprob") for alt in (item.get("top_logprobs") or [])}}
            for item in content]
