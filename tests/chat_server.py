"""A scriptable OpenAI-compatible chat-completions server on 127.0.0.1, for tests and benchmarks.

It is a real HTTP server (aiohttp.web) that the real ``openai`` client talks to.

In the test process (a background thread with its own event loop)::

    with ChatServer(rules=[{"match": "hello", "status": 429, "retry_after": 1, "times": 1}]) as server:
        client = openai.OpenAI(base_url=server.base_url, api_key="k", max_retries=0)
        ...
        server.requests_total, server.by_status, server.requests, server.max_in_flight

As a separate process (benchmarks: client and server do not share a GIL)::

    python -m tests.chat_server --port 0 --latency-ms 200 --fail-429-frac 0.1
    # prints one line "READY http://127.0.0.1:PORT/v1", then serves until killed

or from Python: ``proc, base_url = start_subprocess_server(latency_s=0.2, fail_429_frac=0.1)``.
Out of process, ``GET /_stats`` returns the stats as JSON (``?bodies=0`` leaves the request
bodies out) and ``POST /_reset`` clears them.

Rules are checked in order for each chat request; the first one that matches (and still has
``times`` left) applies. Rule keys (a dict or a :class:`Rule`):

- ``match``: substring searched in the concatenated message contents; None matches any request.
- ``times``: apply to the first N matching requests only; None = always.
- ``delay_s``: sleep this long before answering (slow answers, client timeouts).
- ``drop``: close the connection without answering.
- ``status``: answer with this HTTP status and an OpenAI-style error body
  ``{"error": {"message", "type", "param", "code"}}``; ``error`` (a dict) overrides its fields.
- ``retry_after``: seconds, sets the ``Retry-After`` header.
- ``headers``: extra response headers (e.g. ``x-ratelimit-remaining-requests``).
- ``malformed``: answer 200, content-type application/json, with a body that is not JSON.
- ``html``: answer 200, content-type text/html, with an HTML page (a proxy's login page).
- ``truncate``: cut the reply to its first N words, finish_reason "length".
- ``reply``: a fixed reply text.
- ``reasoning``: thinking sent beside the reply, in the message field ``reasoning_field``
  (``reasoning_content``, the default, or ``reasoning``), its words counted in the usage's
  ``completion_tokens_details.reasoning_tokens`` (and in completion_tokens) as a reasoning model's
  server does. Inline thinking needs no key: put ``<think>...</think>`` in the reply itself.
- ``schema``: True matches only requests that carry a ``response_format`` (structured output),
  False only requests without one; None (default) either.

Server-wide: ``latency_s`` (applied to every chat request), ``fail_429_frac`` (a seeded random
fraction of the requests no rule took is answered 429 with ``Retry-After: 0``), ``api_key``
(when set, any other bearer token gets 401 ``invalid_api_key``), ``reply`` (a callable
``reply(request_json) -> str``, may be async; or returning a dict ``{"content", "reasoning",
"reasoning_field"}`` to think beside the answer, as a rule's keys do), ``honor_max_tokens`` (cut replies longer than
``max_tokens``/``max_completion_tokens`` words, finish_reason "length"), ``capacity`` (a hidden
concurrency limit K: a chat request arriving while K others are in flight is answered 429 at
once, with ``Retry-After: capacity_retry_after`` (default 0), before any rule or latency; a rate
limit that a client has to discover).

Usage details, as OpenAI reports them: ``cached_tokens`` (an int: that many prompt tokens, at
most the whole prompt, in ``prompt_tokens_details.cached_tokens``; ``"prefix"``: a simulated
prompt cache, the words the prompt shares from its start with an earlier prompt that carried the
same ``prompt_cache_key``, none without a key) and ``reasoning_tokens`` (that many more completion
tokens, reported in ``completion_tokens_details.reasoning_tokens``). ``usages`` keeps the usage of
every answer, and ``cache_keys`` the ``prompt_cache_key`` of every request (None without one).
``refuse_fields``: request fields this server does not know (a strict OpenAI-compatible server):
a request carrying one is answered 400 "Unrecognized request argument supplied: NAME".

Stats: ``requests_total``, ``by_status``, ``requests``, ``in_flight``, ``max_in_flight`` (refused
requests included), ``first_at``/``last_at`` (wall-clock ``time.time()`` of the first chat
request's arrival and of the last chat answer, so a benchmark can time the busy phase alone).

Token counts are whitespace-split words. aiohttp sets TCP_NODELAY on every accepted socket
(aiohttp.base_protocol.connection_made); the listen backlog is 4096 and there is no access log.
"""

from __future__ import annotations

import argparse
import asyncio
import inspect
import json
import os
import random
import re
import signal
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field, fields
from typing import Any, Awaitable, Callable, Iterable, Mapping, Union

from aiohttp import web

DEFAULT_MODEL = "baleen-test-model"
HTML_PAGE = ("<!DOCTYPE html>\n<html><head><title>Sign in</title></head>\n"
             "<body><h1>Sign in to continue</h1><form method=\"post\"></form></body></html>\n")

ReplyFn = Callable[[dict], Union[str, dict, Awaitable[Union[str, dict]]]]

_ERROR_KINDS: dict[int, tuple[str, str | None, str]] = {
    400: ("invalid_request_error", None, "Bad request."),
    401: ("invalid_request_error", "invalid_api_key", "Incorrect API key provided."),
    403: ("invalid_request_error", "unsupported_country_region_territory", "Permission denied."),
    404: ("invalid_request_error", "model_not_found", "The model does not exist."),
    408: ("server_error", "timeout", "Request timed out."),
    409: ("server_error", None, "Conflict."),
    422: ("invalid_request_error", None, "Unprocessable entity."),
    429: ("requests", "rate_limit_exceeded", "Rate limit reached for requests. Please try again later."),
    500: ("server_error", None, "The server had an error while processing your request."),
    502: ("server_error", None, "Bad gateway."),
    503: ("server_error", "service_unavailable", "The engine is currently overloaded, please try again later."),
}


@dataclass
class Rule:
    match: str | None = None
    times: int | None = None
    status: int | None = None
    retry_after: float | None = None
    headers: dict[str, str] | None = None
    delay_s: float = 0.0
    malformed: bool = False
    html: bool = False
    truncate: int | None = None
    reply: str | None = None
    drop: bool = False
    error: dict[str, Any] | None = None
    reasoning: str | None = None
    reasoning_field: str = "reasoning_content"
    schema: bool | None = None
    hits: int = field(default=0, compare=False)

    @classmethod
    def coerce(cls, value: "Rule | Mapping[str, Any]") -> "Rule":
        if isinstance(value, Rule):
            return value
        known = {f.name for f in fields(cls)}
        unknown = set(value) - known
        if unknown:
            raise ValueError(f"unknown rule keys: {sorted(unknown)} (known: {sorted(known)})")
        return cls(**dict(value))

    def matches(self, text: str, schema: bool = False) -> bool:
        if self.times is not None and self.hits >= self.times:
            return False
        if self.schema is not None and self.schema != schema:
            return False
        return self.match is None or self.match in text


# ----------------------------------------------------------------------------------------------
# Message text and the default reply


def _content_text(content: Any) -> str:
    if content is None:
        return ""
    if isinstance(content, str):
        return content
    if isinstance(content, list):  # content parts
        return "\n".join(str(p.get("text", "")) for p in content if isinstance(p, dict))
    return str(content)


def messages_text(request_json: dict) -> str:
    """All message contents of a chat request, joined with newlines."""
    msgs = request_json.get("messages") or []
    return "\n".join(_content_text(m.get("content")) for m in msgs if isinstance(m, dict))


def last_user_text(request_json: dict) -> str:
    for m in reversed(request_json.get("messages") or []):
        if isinstance(m, dict) and m.get("role") == "user":
            return _content_text(m.get("content"))
    return ""


_FORBIDDEN = re.compile(r"as an ai|openai", re.IGNORECASE)


def _topic(last_user: str) -> str:
    m = re.search(r"'([^']+)'", last_user)
    topic = m.group(1) if m else last_user[:60]
    topic = _FORBIDDEN.sub("", " ".join(topic.split())).strip()
    return topic or "this subject"


def default_reply(request_json: dict) -> str:
    """Deterministic reply: a 3-exchange [Human]/[AI] transcript when the prompt asks for one
    (contains "[Human]"), else a plain ~20-word answer quoting the user's first words."""
    last = last_user_text(request_json)
    if "[Human]" in messages_text(request_json):
        t = _topic(last)
        return "\n".join(
            [
                f"[Human] Can you tell me about {t}?",
                f"[AI] Sure. The best way to learn about {t} is step by step: start with the basic "
                "ideas, then look at a few simple examples to see how they work in practice.",
                "[Human] What should I read or try first?",
                "[AI] A short introduction works well at first; after that, practical exercises "
                f"on {t} help you check what you have really understood so far.",
                "[Human] Thanks. Any last advice?",
                "[AI] Practice a little every day, write down questions as they come up, and come "
                f"back to the hard parts of {t} after a short break.",
            ]
        )
    head = " ".join(last.split()[:6]) or "your question"
    return (
        f"Here is a short answer about {head}: start with the main idea, check each step "
        "carefully, and ask again if anything remains unclear."
    )


def _cut_words(text: str, n: int) -> str:
    """The first n whitespace-separated words of text, keeping the original whitespace."""
    if n <= 0:
        return ""
    ends = [m.end() for m in re.finditer(r"\S+", text)]
    return text if len(ends) <= n else text[: ends[n - 1]]


def _utf8(token: str) -> list[int]:
    """A token's bytes, as a server sends them even for half a character (a lone surrogate)."""
    return list(token.encode("utf-8", "surrogatepass"))


def make_logprobs(reply: str, top_k: int) -> dict:
    """A deterministic ``logprobs`` object: one entry per whitespace token of the reply."""
    content = []
    for i, word in enumerate(reply.split()):
        token = word if i == 0 else " " + word
        lp = -round(0.05 + 0.1 * (len(word) % 7), 4)
        tops = [{"token": token, "logprob": lp, "bytes": _utf8(token)}]
        for j in range(1, top_k):
            alt = f"{token}~{j}"
            tops.append({"token": alt, "logprob": round(lp - 1.5 * j, 4), "bytes": _utf8(alt)})
        content.append(
            {"token": token, "logprob": lp, "bytes": _utf8(token), "top_logprobs": tops[:top_k]}
        )
    return {"content": content, "refusal": None}


# ----------------------------------------------------------------------------------------------
# The server


class ChatServer:
    """OpenAI-compatible chat-completions server; see the module docstring."""

    def __init__(
        self,
        rules: Iterable[Rule | Mapping[str, Any]] | None = None,
        latency_s: float = 0.0,
        reply: ReplyFn | None = None,
        api_key: str | None = None,
        fail_429_frac: float = 0.0,
        seed: int = 0,
        host: str = "127.0.0.1",
        port: int = 0,
        model: str = DEFAULT_MODEL,
        honor_max_tokens: bool = False,
        record_bodies: bool = True,
        capacity: int | None = None,
        capacity_retry_after: float = 0.0,
        cached_tokens: int | str | None = None,
        reasoning_tokens: int = 0,
        refuse_fields: Iterable[str] = (),
    ) -> None:
        self.refuse_fields = tuple(refuse_fields)
        self.cached_tokens = cached_tokens
        self.reasoning_tokens = int(reasoning_tokens)
        self.rules: list[Rule] = [Rule.coerce(r) for r in (rules or [])]
        self.latency_s = float(latency_s)
        self.reply_fn: ReplyFn = reply or default_reply
        self.api_key = api_key
        self.fail_429_frac = float(fail_429_frac)
        self.rng = random.Random(seed)
        self.host = host
        self.port = port
        self.model = model
        self.honor_max_tokens = honor_max_tokens
        self.record_bodies = record_bodies
        self.capacity = capacity
        self.capacity_retry_after = float(capacity_retry_after)

        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._runner: web.AppRunner | None = None
        self._ids = 0
        self.reset()

    # -- stats ------------------------------------------------------------------------------

    def reset(self) -> None:
        """Clear the stats (not the rules or their hit counts)."""
        self.requests_total = 0
        self.by_status: dict[int, int] = {}  # a dropped connection counts as status 0
        # {"body": dict|None, "authorization", "query": str|None, "headers": [(name, value)]|None}
        self.requests: list[dict[str, Any]] = []
        self.in_flight = 0
        self.max_in_flight = 0
        self.first_at: float | None = None
        self.last_at: float | None = None
        self.usages: list[dict[str, Any]] = []  # the usage of every answer, as sent
        self._prompts: dict[str, list[list[str]]] = {}  # prompt_cache_key -> the prompts seen ("prefix")

    @property
    def bodies(self) -> list[Any]:
        return [r["body"] for r in self.requests]

    @property
    def cache_keys(self) -> list[str | None]:
        """The prompt_cache_key of each chat request (None without one)."""
        return [(r["body"] or {}).get("prompt_cache_key") for r in self.requests]

    def _cached(self, body: dict, words: list[str]) -> int | None:
        """prompt_tokens_details.cached_tokens for a prompt of these words (None: not reported)."""
        if self.cached_tokens is None:
            return None
        if self.cached_tokens != "prefix":
            return min(int(self.cached_tokens), len(words))
        key = body.get("prompt_cache_key")
        if not isinstance(key, str):
            return 0
        seen = self._prompts.setdefault(key, [])
        best = max((_shared(words, earlier) for earlier in seen), default=0)
        seen.append(words)
        return best

    @property
    def authorizations(self) -> list[str | None]:
        return [r["authorization"] for r in self.requests]

    @property
    def queries(self) -> list[str | None]:
        """The raw query string of each chat request (None without one)."""
        return [r["query"] for r in self.requests]

    def stats(self, bodies: bool = True) -> dict[str, Any]:
        out: dict[str, Any] = {
            "requests_total": self.requests_total,
            "by_status": {str(k): v for k, v in sorted(self.by_status.items())},
            "in_flight": self.in_flight,
            "max_in_flight": self.max_in_flight,
            "first_at": self.first_at,
            "last_at": self.last_at,
            "rule_hits": [r.hits for r in self.rules],
        }
        if bodies:
            out["requests"] = list(self.requests)
        return out

    def add_rule(self, rule: Rule | Mapping[str, Any]) -> Rule:
        r = Rule.coerce(rule)
        self.rules.append(r)
        return r

    # -- app --------------------------------------------------------------------------------

    def make_app(self) -> web.Application:
        app = web.Application(client_max_size=64 * 1024 * 1024)
        app.router.add_post("/v1/chat/completions", self._chat)
        app.router.add_get("/v1/models", self._models)
        app.router.add_get("/_stats", self._stats)
        app.router.add_post("/_reset", self._reset)
        return app

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    @property
    def base_url(self) -> str:
        return f"{self.url}/v1"

    async def start_async(self) -> None:
        """Start serving on the running loop (sets self.port when it was 0)."""
        self._runner = web.AppRunner(
            self.make_app(), access_log=None, handle_signals=False, shutdown_timeout=0.5
        )
        await self._runner.setup()
        site = web.TCPSite(self._runner, self.host, self.port, backlog=4096)
        await site.start()
        self.port = int(self._runner.addresses[0][1])

    async def stop_async(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    def start(self) -> "ChatServer":
        """Start in a background thread; returns once the server accepts connections."""
        if self._thread is not None:
            return self
        ready = threading.Event()
        error: list[BaseException] = []

        def run() -> None:
            loop = asyncio.new_event_loop()
            self._loop = loop
            asyncio.set_event_loop(loop)
            try:
                loop.run_until_complete(self.start_async())
            except BaseException as e:  # noqa: BLE001 - reported to the starting thread
                error.append(e)
                ready.set()
                loop.close()
                return
            ready.set()
            try:
                loop.run_forever()
            finally:
                loop.run_until_complete(self.stop_async())
                _cancel_pending(loop)
                loop.close()

        self._thread = threading.Thread(target=run, name="ChatServer", daemon=True)
        self._thread.start()
        ready.wait(30)
        if error:
            self._thread = None
            raise error[0]
        if not ready.is_set():
            raise RuntimeError("ChatServer did not start within 30 s")
        return self

    def stop(self) -> None:
        if self._thread is None or self._loop is None:
            return
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(10)
        self._thread = None
        self._loop = None

    def __enter__(self) -> "ChatServer":
        return self.start()

    def __exit__(self, *exc: Any) -> None:
        self.stop()

    # -- handlers ---------------------------------------------------------------------------

    async def _models(self, request: web.Request) -> web.Response:
        return web.json_response(
            {"object": "list", "data": [{"id": self.model, "object": "model", "created": 0, "owned_by": "baleen"}]}
        )

    async def _stats(self, request: web.Request) -> web.Response:
        return web.json_response(self.stats(bodies=request.query.get("bodies", "1") not in ("0", "false")))

    async def _reset(self, request: web.Request) -> web.Response:
        self.reset()
        return web.json_response({"ok": True})

    def _error(self, status: int, rule: Rule | None = None, headers: dict[str, str] | None = None,
               message: str | None = None) -> web.Response:
        etype, code, msg = _ERROR_KINDS.get(status, ("server_error" if status >= 500 else "invalid_request_error",
                                                     None, f"Error {status}."))
        err: dict[str, Any] = {"message": message or msg, "type": etype, "param": None, "code": code}
        if rule is not None and rule.error:
            err.update(rule.error)
        return web.json_response({"error": err}, status=status, headers=headers)

    async def _chat(self, request: web.Request) -> web.StreamResponse:
        if self.first_at is None:
            self.first_at = time.time()
        self.requests_total += 1
        self.in_flight += 1
        if self.in_flight > self.max_in_flight:
            self.max_in_flight = self.in_flight
        status: int | None = None
        try:
            if self.capacity is not None and self.in_flight > self.capacity:
                resp = self._error(429, headers={"Retry-After": _num(self.capacity_retry_after)},
                                   message="Too many requests in flight; retry after the time in Retry-After.")
            else:
                resp = await self._answer(request)
            if resp is None:  # drop: close the connection without answering
                status = 0
                if request.transport is not None:
                    request.transport.abort()
                raise asyncio.CancelledError
            status = resp.status
            return resp
        finally:
            self.in_flight -= 1
            self.last_at = time.time()
            if status is not None:
                self.by_status[status] = self.by_status.get(status, 0) + 1

    async def _answer(self, request: web.Request) -> web.Response | None:
        auth = request.headers.get("Authorization")
        raw = await request.read()
        try:
            body = json.loads(raw)
            if not isinstance(body, dict):
                raise ValueError("not an object")
        except ValueError:
            body = None
        self.requests.append({"body": body if self.record_bodies else None, "authorization": auth,
                              "query": request.query_string or None,
                              "headers": list(request.headers.items()) if self.record_bodies else None})

        if self.latency_s > 0:
            await asyncio.sleep(self.latency_s)

        if self.api_key is not None and auth != f"Bearer {self.api_key}":
            shown = (auth or "").removeprefix("Bearer ")
            shown = (shown[:3] + "*" * 4 + shown[-4:]) if len(shown) > 8 else "****"
            return self._error(401, message=f"Incorrect API key provided: {shown}. You can find your API key "
                                            "at https://platform.openai.com/account/api-keys.")
        if body is None:
            return self._error(400, message="We could not parse the JSON body of your request.")
        if body.get("stream"):
            return self._error(400, message="stream=true is not supported by the test server.")
        refused = [name for name in self.refuse_fields if name in body]
        if refused:  # a strict server that knows fewer request fields than OpenAI's
            return self._error(400, message=f"Unrecognized request argument supplied: {refused[0]}")

        text = messages_text(body)
        schema = isinstance(body.get("response_format"), dict)
        rule = next((r for r in self.rules if r.matches(text, schema)), None)
        headers: dict[str, str] = {}
        if rule is not None:
            rule.hits += 1
            if rule.headers:
                headers.update({str(k): str(v) for k, v in rule.headers.items()})
            if rule.retry_after is not None:
                headers["Retry-After"] = _num(rule.retry_after)
            if rule.delay_s > 0:
                await asyncio.sleep(rule.delay_s)
            if rule.drop:
                return None
            if rule.status is not None and rule.status != 200:
                return self._error(rule.status, rule, headers)
            if rule.malformed:
                return web.Response(status=200, body=b'{"id": "chatcmpl-broken", "choices": [{"mess',
                                    content_type="application/json", headers=headers)
            if rule.html:
                return web.Response(status=200, text=HTML_PAGE, content_type="text/html", headers=headers)
        elif self.fail_429_frac > 0 and self.rng.random() < self.fail_429_frac:
            return self._error(429, headers={"Retry-After": "0"})

        thinking: dict[str, Any] = {}
        if rule is not None and rule.reasoning is not None:
            thinking = {"reasoning": rule.reasoning, "reasoning_field": rule.reasoning_field}
        if rule is not None and rule.reply is not None:
            reply = rule.reply
        else:
            reply = self.reply_fn(body)
            if inspect.isawaitable(reply):
                reply = await reply
            if isinstance(reply, dict):
                thinking = {"reasoning": reply.get("reasoning"),
                            "reasoning_field": reply.get("reasoning_field") or "reasoning_content"}
                reply = reply.get("content") or ""
            reply = str(reply)
        finish = "stop"
        limit = rule.truncate if rule is not None else None
        if self.honor_max_tokens:
            mt = body.get("max_completion_tokens") or body.get("max_tokens")
            if isinstance(mt, int) and (limit is None or mt < limit):
                limit = mt
        if limit is not None and len(reply.split()) > limit:
            reply = _cut_words(reply, limit)
            finish = "length"
        elif rule is not None and rule.truncate is not None:
            finish = "length"

        self._ids += 1
        n = int(body.get("n") or 1)
        logprobs = None
        if body.get("logprobs"):
            logprobs = make_logprobs(reply, int(body.get("top_logprobs") or 0))
        reasoning_tokens = len(str(thinking.get("reasoning") or "").split())
        completion_tokens = len(reply.split()) + reasoning_tokens
        prompt_tokens = len(text.split())
        message: dict[str, Any] = {"role": "assistant", "content": reply, "refusal": None}
        if thinking.get("reasoning") is not None:
            message[thinking["reasoning_field"]] = thinking["reasoning"]
        all_reasoning = reasoning_tokens * n + self.reasoning_tokens
        usage: dict[str, Any] = {
            "prompt_tokens": prompt_tokens,
            "completion_tokens": completion_tokens * n + self.reasoning_tokens,
            "total_tokens": prompt_tokens + completion_tokens * n + self.reasoning_tokens,
        }
        cached = self._cached(body, text.split())
        if cached is not None:
            usage["prompt_tokens_details"] = {"cached_tokens": cached}
        if all_reasoning:
            usage["completion_tokens_details"] = {"reasoning_tokens": all_reasoning}
        self.usages.append(usage)
        out = {
            "id": f"chatcmpl-{self._ids:08d}",
            "object": "chat.completion",
            "created": int(time.time()),
            "model": body.get("model") or self.model,
            "choices": [
                {
                    "index": i,
                    "message": message,
                    "finish_reason": finish,
                    "logprobs": logprobs,
                }
                for i in range(n)
            ],
            "usage": usage,
            "system_fingerprint": "fp_baleen_test",
        }
        headers.setdefault("x-request-id", f"req_{self._ids:08d}")
        return web.json_response(out, headers=headers)


def _cancel_pending(loop: asyncio.AbstractEventLoop) -> None:
    """End the handlers still running at stop (a slow `delay_s` answer), so that closing the
    loop leaves no pending task behind to be reported when it is garbage-collected."""
    tasks = asyncio.all_tasks(loop)
    for task in tasks:
        task.cancel()
    if tasks:
        loop.run_until_complete(asyncio.gather(*tasks, return_exceptions=True))


def _shared(a: list[str], b: list[str]) -> int:
    """How many words two prompts share from their start."""
    count = 0
    for x, y in zip(a, b):
        if x != y:
            break
        count += 1
    return count


def _num(x: float) -> str:
    return str(int(x)) if float(x).is_integer() else str(x)


# ----------------------------------------------------------------------------------------------
# Subprocess mode


def _repo_root() -> str:
    return os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def start_subprocess_server(
    *,
    port: int = 0,
    latency_s: float | None = None,
    latency_ms: float | None = None,
    fail_429_frac: float = 0.0,
    api_key: str | None = None,
    rules: list[Mapping[str, Any]] | None = None,
    seed: int = 0,
    record_bodies: bool = True,
    capacity: int | None = None,
    capacity_retry_after: float = 0.0,
    timeout_s: float = 30.0,
) -> tuple[subprocess.Popen, str]:
    """Run ``python -m tests.chat_server`` in its own process; returns (proc, base_url).
    The caller ends it with ``proc.terminate(); proc.wait()``."""
    if latency_ms is None:
        latency_ms = (latency_s or 0.0) * 1000.0
    cmd = [sys.executable, "-m", "tests.chat_server", "--port", str(port), "--latency-ms", str(latency_ms),
           "--fail-429-frac", str(fail_429_frac), "--seed", str(seed)]
    if api_key is not None:
        cmd += ["--api-key", api_key]
    if rules:
        cmd += ["--rules-json", json.dumps(list(rules))]
    if not record_bodies:
        cmd += ["--no-record-bodies"]
    if capacity is not None:
        cmd += ["--capacity", str(capacity), "--capacity-retry-after", str(capacity_retry_after)]
    proc = subprocess.Popen(cmd, cwd=_repo_root(), stdout=subprocess.PIPE, text=True)
    assert proc.stdout is not None
    result: list[str] = []
    reader = threading.Thread(target=lambda: result.append(proc.stdout.readline()), daemon=True)
    reader.start()
    reader.join(timeout_s)
    line = result[0].strip() if result else ""
    if not line.startswith("READY "):
        proc.kill()
        proc.wait()
        raise RuntimeError(f"chat server subprocess did not start (got {line!r})")
    return proc, line.split(" ", 1)[1]


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(prog="python -m tests.chat_server", description=__doc__.split("\n")[0])
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, default=0)
    p.add_argument("--latency-ms", type=float, default=0.0)
    p.add_argument("--fail-429-frac", type=float, default=0.0)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--api-key", default=None)
    p.add_argument("--rules-json", default=None, help="a JSON list of rule objects")
    p.add_argument("--no-record-bodies", action="store_true")
    p.add_argument("--capacity", type=int, default=None, help="answer 429 above this many requests in flight")
    p.add_argument("--capacity-retry-after", type=float, default=0.0, help="the Retry-After of those 429s")
    a = p.parse_args(argv)

    try:  # only if already installed; not a dependency
        import uvloop  # type: ignore

        uvloop.install()
    except ImportError:
        pass

    server = ChatServer(
        rules=json.loads(a.rules_json) if a.rules_json else None,
        latency_s=a.latency_ms / 1000.0,
        fail_429_frac=a.fail_429_frac,
        seed=a.seed,
        api_key=a.api_key,
        host=a.host,
        port=a.port,
        record_bodies=not a.no_record_bodies,
        capacity=a.capacity,
        capacity_retry_after=a.capacity_retry_after,
    )

    async def serve() -> None:
        await server.start_async()
        print(f"READY {server.base_url}", flush=True)
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            try:
                loop.add_signal_handler(sig, stop.set)
            except (NotImplementedError, RuntimeError):
                pass
        await stop.wait()
        await server.stop_async()

    asyncio.run(serve())


if __name__ == "__main__":
    main()
