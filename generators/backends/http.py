"""The base of every backend that talks to a model server over HTTP: the policy lives here, the
wire format in the provider's mapping module.

A provider (openai_backend.py, anthropic_backend.py, a plugin) says how to build its client,
how one `ChatRequest` goes on the wire and its answer comes back as a `ChatResult` (`send`), and
what a failed call means (`classify`, into a `CallFailed`). Everything else is here, the same for
every provider:

- retries: exponential backoff with jitter (tenacity's) on 429, 5xx (529 included), timeouts,
  connection errors and unreadable bodies; the server's Retry-After wins over our backoff, and a
  429 or 529 pauses every request, not only the one that was told;
- the Retry-After cap: a server asking to wait longer than `max_retry_after` stops the run at
  once, saying when to rerun;
- `--concurrency auto`: a Gate (adaptive.py) bounds the requests in flight, cut on each
  429/503/529 and raised after a run of successes;
- `--rpm`/`--tpm` (ratelimit.py), with the x-ratelimit-* headers followed;
- refused credentials stop the whole run at once; other 4xx fail only the request;
- a server that stops answering mid-run (its connections refused: `UNREACHABLE_TRIES`
  tries in a row with no answer between, or the last try of a request) stops the run at once,
  said on stderr when connections first fail: the items it did not answer get no error line
  and stay pending for a rerun once it is back;
- the base URL's `user:password@` and query values never reach a message (`scrub`);
- the response-cache identity (`name`, `endpoint`) and, with `--batch`, the Batch API lifecycle
  (http_batch.py).

A provider declares `api_key_env` and `base_url_env`, the environment variables its key and its
server come from; options.py and the docs read them from the class, so nothing here is one
provider's.
"""
from __future__ import annotations

import abc
import asyncio
import base64
import math
import os
import sys
from datetime import datetime, timedelta, timezone
from typing import IO, Any, ClassVar, Mapping, NamedTuple
from urllib.parse import parse_qsl, quote, urlsplit, urlunsplit

from tenacity.wait import wait_exponential_jitter

from generators.backends.adaptive import Aimd, Gate
from generators.backends.base import Backend, BackendSettings, Capabilities, ChatRequest, ChatResult, RequestFailed
from generators.backends.batch_lines import LineFailure
from generators.backends.calls import AUTH, DENIED, RETRY, Answer, BatchState, CallFailed, RunBatch
from generators.backends.http_batch import HTTPBatchBackend
from generators.backends.ratelimit import PauseTooLong, RateLimiter, retry_after
from generators.backends.urls import check_base_url, redact_url, split_credentials
from generators.core.accounting import book_retry
from generators.core.errors import FatalError, UsageError

CONGESTION_STATUS = {429, 503, 529}  # what cuts the adaptive level: the server says it has too much
PAUSE_STATUS = {429, 529}  # told to wait: everyone waits (rate limited, overloaded)
BATCH_CONNECTIONS = 4  # --batch: a handful of file and batch calls, never one per request
UNREACHABLE_TRIES = 5  # tries in a row that could not connect, no answer between: the server is gone

class _Attempt(NamedTuple):
    """The one field of tenacity's retry state its wait strategies read."""

    attempt_number: int


class HTTPBackend(Backend):
    """A model server over HTTP; a provider subclass fills in the abstract methods."""

    capabilities = Capabilities(per_request_model=True, adaptive=True)
    api_key_env: ClassVar[str | None] = None  # where the key comes from (never a flag, never written)
    base_url_env: ClassVar[str | None] = None  # the server when --base-url is not given
    default_base_url: ClassVar[str | None] = None  # the server when neither is
    key_required: ClassVar[bool] = True  # the provider's own server wants the key (another may not)

    # -- what a provider writes ----------------------------------------------------------------
    @abc.abstractmethod
    def make_client(self, url: str, api_key: str | None, *, headers: dict[str, str], query: dict[str, str],
                    connections: int, timeout_s: float) -> Any:
        """The provider's client for `url` (no userinfo, no query: those come as `headers`
        (basic auth) and `query`), with retries off: the retries are ours."""

    @abc.abstractmethod
    async def send(self, request: ChatRequest) -> Answer:
        """One try of one request: its answer, or an exception that `classify` reads."""

    @abc.abstractmethod
    def classify(self, exc: BaseException) -> CallFailed | None:
        """What a failed call means (None: not a call failure; it propagates as it is)."""

    async def close_client(self) -> None:
        await self.client.close()

    # Batch API (with Capabilities.batch_api): the line format and the calls; see http_batch.py.
    def batch_line(self, cid: str, request: ChatRequest) -> bytes:
        raise NotImplementedError

    def read_batch_line(self, obj: dict[str, Any], model: str) -> ChatResult | LineFailure:
        raise NotImplementedError

    async def upload_batch(self, data: bytes) -> str:
        """Upload a batch file; its id. A provider that sends lines inline returns a local one."""
        raise NotImplementedError

    async def create_batch(self, handle: str, data: bytes, metadata: Mapping[str, str]) -> BatchState:
        """Create the batch, with `metadata` (the run's tag) where the provider keeps it."""
        raise NotImplementedError

    async def retrieve_batch(self, batch_id: str) -> BatchState:
        raise NotImplementedError

    async def download_batch(self, state: BatchState, kind: str, out: IO[bytes]) -> None:
        raise NotImplementedError

    async def find_batches(self, uploads: Mapping[str, tuple[float, int]]) -> dict[str, str]:
        """Batches an earlier session created but did not record: upload id -> batch id, for
        uploads given as id -> (when uploaded, lines)."""
        return {}

    async def run_batches(self, metadata: Mapping[str, str], known: Mapping[str, str]) -> list[RunBatch] | None:
        """The batches whose metadata holds `metadata` (the run's tag), with their lines (`known`:
        input file -> its custom_ids already recorded, not fetched again); None where the provider
        keeps no metadata."""
        return None

    # -- settings ------------------------------------------------------------------------------
    @classmethod
    def check(cls, settings: BackendSettings) -> None:
        name = cls.name
        if not settings.model:
            raise UsageError(f"--model is required with --backend {name} (the model name the server knows)")
        url = cls.resolve_url(settings.base_url)
        public = url is None or url == cls.default_base_url
        if cls.key_required and cls.api_key_env and not cls.api_key() and public:
            raise UsageError(f"--backend {name} needs --base-url or {cls.api_key_env}; "
                             "for a local run without a server use --backend hf")
        if url is None:
            raise UsageError(f"--backend {name} needs --base-url"
                             + (f" or {cls.base_url_env}" if cls.base_url_env else ""))
        check_base_url(url)

    @classmethod
    def api_key(cls) -> str | None:
        return os.environ.get(cls.api_key_env) if cls.api_key_env else None

    @classmethod
    def resolve_url(cls, base_url: str | None) -> str | None:
        """--base-url, else the provider's environment variable, else its public server."""
        from_env = os.environ.get(cls.base_url_env) if cls.base_url_env else None
        return base_url or from_env or cls.default_base_url

    @classmethod
    def create(cls, settings: BackendSettings) -> Backend:
        """The per-request backend, or with --batch the same requests through the Batch API."""
        if settings.batch:
            return HTTPBatchBackend.from_settings(cls, settings)
        return cls(model=settings.model or "", base_url=settings.base_url, concurrency=settings.concurrency,
                   timeout_s=settings.timeout_s, retries=settings.retries,
                   limiter=RateLimiter(rpm=settings.rpm, tpm=settings.tpm),
                   max_retry_after=settings.max_retry_after, adaptive=settings.adaptive)

    def __init__(self, *, model: str, base_url: str | None = None, api_key: str | None = None,
                 concurrency: int = 16, timeout_s: float = 120.0, retries: int = 6,
                 limiter: RateLimiter | None = None, backoff_initial_s: float = 0.5,
                 backoff_max_s: float = 60.0, max_retry_after: float = 300.0, adaptive: bool = False,
                 for_batch: bool = False) -> None:
        url = self.resolve_url(base_url)
        if url is None:
            raise UsageError(f"--backend {self.name} needs --base-url")
        check_base_url(url)
        self.model = model
        self.endpoint = redact_url(url)
        self.retries = retries
        self.timeout_s = timeout_s
        self.backoff_initial_s = backoff_initial_s
        self.backoff_max_s = backoff_max_s
        self._jittered = wait_exponential_jitter(multiplier=backoff_initial_s, max=backoff_max_s,
                                                jitter=2 * backoff_initial_s)
        self.max_retry_after = max_retry_after
        self.limiter = limiter or RateLimiter()
        self.succeeded = 0
        self.unreached = 0  # tries in a row that could not connect (any answer from the server resets it)
        self.gone = False  # the server went away mid-run: every request stops at its next failure
        self.for_batch = for_batch
        client_url, query, credentials = _client_parts(url)
        self.uses_basic_auth = credentials is not None
        self._secrets = _secrets(credentials, query)
        connections = BATCH_CONNECTIONS if for_batch else max(concurrency, 1)
        self.client = self.make_client(
            client_url, api_key or self.api_key(), query=query, connections=connections, timeout_s=timeout_s,
            headers={"Authorization": _basic_auth(*credentials)} if credentials else {})
        # --concurrency auto: `concurrency` is the most in flight, the gate finds the level
        self.gate = Gate(Aimd(maximum=concurrency)) if adaptive else None

    def progress(self) -> dict[str, Any]:
        return {"conc": self.gate.aimd.level} if self.gate else {}

    def report(self) -> dict[str, Any]:
        return {"concurrency": self.gate.aimd.report()} if self.gate else {}

    # -- one request ---------------------------------------------------------------------------
    async def complete(self, request: ChatRequest) -> ChatResult:
        """One request with our retries. A plain loop: nearly every request succeeds at once, and
        building tenacity's retry state for each one cost more than the rest of our own work; the
        waits between tries are tenacity's exponential backoff with jitter, unless the server said."""
        attempt = 1
        while True:
            try:
                return await self._attempt(request)
            except CallFailed as exc:
                gone = self._server_gone(exc, attempt)
                if gone is not None:
                    raise gone from None
                if self._give_up(exc, attempt):
                    raise self._final_failure(exc) from None
                book_retry(exc.cause)  # the last try is booked by the engine, answered or failed
                await asyncio.sleep(self._delay(exc, attempt))
            attempt += 1

    def _server_gone(self, exc: CallFailed, attempt: int) -> FatalError | None:
        """FatalError when connection failures show that a server which answered before is gone:
        the request then stops without an error line, so a plain rerun asks it again once the
        server is back. Said on stderr when connections first fail, as it happens."""
        if not exc.connection:
            if exc.status is not None:
                self.unreached = 0  # the server answered, if only with an error
            return None
        self.unreached += 1
        if self.succeeded == 0:
            return None  # never reached: _give_up says "cannot reach" after a few quick tries
        reason = self.scrub(exc.reason)
        if self.unreached == 1:
            print(f"gen: warning: cannot connect to the server at {self.endpoint} ({reason}); retrying, "
                  "and stopping the run if it stays unreachable", file=sys.stderr, flush=True)
        if not (self.gone or attempt >= self.retries + 1 or (attempt >= 2 and self.unreached >= UNREACHABLE_TRIES)):
            return None
        self.gone = True
        return FatalError(f"the server at {self.endpoint} is unreachable ({reason}); the items it did not "
                          "answer are still pending: rerun the same command once the server is back")

    def _final_failure(self, exc: CallFailed) -> Exception:
        """What a request that ran out of retries becomes: FatalError when the server was never
        reached, else RequestFailed for errors.jsonl."""
        reason = self.scrub(exc.reason)
        if exc.connection and self.succeeded == 0:
            return FatalError(f"cannot reach the server at {self.endpoint} ({reason}); "
                              "start it or fix --base-url")
        if exc.status or not exc.connection:
            reason = f"{reason} (after {self.retries + 1} attempts)"
        return RequestFailed(reason, status=exc.status, last_response=self.scrub(exc.body))

    def _give_up(self, exc: CallFailed, attempt: int) -> bool:
        if exc.connection and self.succeeded == 0 and attempt >= 3:
            return True  # nothing ever answered: an unreachable server, say so quickly
        return attempt >= self.retries + 1

    def _delay(self, exc: CallFailed, attempt: int) -> float:
        asked = retry_after(exc.headers) if exc.headers else None
        return asked[0] if asked is not None else self.backoff(attempt)

    def backoff(self, attempt: int) -> float:
        """Seconds before try `attempt + 1`: exponential with jitter."""
        return self._jittered(_Attempt(attempt))

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
        except CallFailed as exc:
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
            raise self.too_long(exc.seconds, exc.reason) from None
        try:
            answer = await self.send(request)
        except CallFailed as exc:
            raise self._on_failure(exc, "and --model") from None
        except Exception as exc:
            failure = self.classify(exc)
            if failure is None:
                raise
            raise self._on_failure(failure, "and --model") from None
        self.limiter.observe_headers(answer.headers)  # a long pause here stops the next request
        result = answer.result
        self.limiter.settle(estimate, result.prompt_tokens + result.completion_tokens)
        self.succeeded += 1
        self.unreached = 0
        return result

    def _on_failure(self, exc: CallFailed, what: str) -> Exception:
        """A failed try: CallFailed to retry, RequestFailed, or FatalError (refused, or told to
        wait too long)."""
        if exc.kind in (AUTH, DENIED):
            return self.access_refused(exc, what)
        reset = self.limiter.observe_headers(exc.headers) if exc.headers else None
        if exc.kind != RETRY:
            return RequestFailed(self.scrub(exc.reason), status=exc.status, last_response=self.scrub(exc.body))
        if reset is not None and reset[0] > self.max_retry_after:
            return self.too_long(*reset)
        asked = retry_after(exc.headers) if exc.headers else None
        if asked is not None and asked[0] > self.max_retry_after:
            return self.too_long(*asked)
        if exc.status in PAUSE_STATUS and asked is not None:
            self.limiter.pause(*asked)
        return exc

    # -- messages ------------------------------------------------------------------------------
    def access_refused(self, exc: CallFailed, what: str) -> FatalError:
        """401 (the key or the credentials) or 403 (`what` the key may not use) stops the run."""
        message = self.scrub(exc.reason.partition(": ")[2][:200])
        if exc.kind == DENIED:
            return FatalError(f"the server denied access (403: {message}); check the key's permissions {what}")
        where = "the user and password in --base-url" if self.uses_basic_auth else self.api_key_env or "the key"
        subject = "credentials" if self.uses_basic_auth else "API key"
        return FatalError(f"the server refused the {subject} (401: {message}); check {where}")

    def too_long(self, seconds: float, source: str) -> FatalError:
        until = datetime.now(timezone.utc) + timedelta(seconds=seconds)
        return FatalError(f"the server asked to wait {math.ceil(seconds)} s ({source or 'rate limit'}), more than "
                          f"--max-retry-after {self.max_retry_after:g} s; rerun the same command after "
                          f"{_utc_minute(until)}, or raise --max-retry-after")

    def scrub(self, text: str | None) -> str | None:
        """`text` without the base URL's password or query values (a library or a server may
        quote the URL back)."""
        if text is None:
            return None
        for secret in self._secrets:
            text = text.replace(secret, "REDACTED")
        return text

    async def aclose(self) -> None:
        await self.close_client()


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
