"""What a provider and the HTTP base say to each other: a failed call read as a `CallFailed`,
an answer with its headers, a batch as the lifecycle sees it, and `BatchAPI`, the calls a
provider makes for --batch. No policy here: http.py retries, http_batch.py runs batches."""
from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import IO, Any, Mapping, NamedTuple, Protocol

from generators.backends.base import ChatRequest, ChatResult
from generators.backends.batch_lines import LineFailure

RETRYABLE_STATUS = {408, 409, 425, 429, 500, 502, 503, 504, 529}
BODY_CHARS = 2000  # how much of a bad answer errors.jsonl keeps

RETRY, REJECT, AUTH, DENIED, MISSING = "retry", "reject", "auth", "denied", "missing"


@dataclass
class CallFailed(Exception):
    """A provider's reading of one failed call.

    kind: RETRY (429, 5xx, timeouts, connection errors, an unreadable body), REJECT (the request's
    own fault, not retried), AUTH (401: refused credentials), DENIED (403), MISSING (404: a model,
    a batch or a whole API the server does not have)."""

    kind: str
    reason: str
    status: int | None = None
    headers: Mapping[str, str] = field(default_factory=dict)
    body: str | None = None
    connection: bool = False  # the server was not reached at all
    timeout: bool = False  # no answer in time

    @property
    def cause(self) -> str:
        """Why the try failed, as the usage's `retried` counts it: 429, 5xx, timeout, bad_body
        (200 with a body we cannot read), connection, or other (409, 425)."""
        if self.status == 429:
            return "429"
        if self.status is not None and self.status >= 500:
            return "5xx"
        if self.timeout or self.status == 408:
            return "timeout"
        if self.connection:
            return "connection"
        return "bad_body" if self.status is None else "other"

    def __post_init__(self) -> None:
        super().__init__(self.reason)


class Answer(NamedTuple):
    """What `send` returns: the result and the response headers (rate-limit signals)."""

    result: ChatResult
    headers: Mapping[str, str]


@dataclass
class BatchState:
    """A provider's batch as the lifecycle reads it: `status` is the provider's own word,
    `ended` whether no line will run any more; `files` the result files to download by kind
    ("output", "errors"), each named by whatever the provider downloads it with."""

    id: str
    status: str
    ended: bool = False
    total: int = 0
    completed: int = 0
    failed: int = 0
    files: dict[str, str | None] = field(default_factory=dict)
    reason: str | None = None


@dataclass
class RunBatch:
    """A batch the server lists as this run's (its metadata names the run), with the request
    lines its input holds: what the ledger records for it when it lost or never had the record."""

    id: str
    file: str
    custom_ids: list[str]


class BatchAPI(Protocol):
    """A provider's part of --batch (http.HTTPBackend declares these; a provider fills them in)."""

    name: str
    model: str
    endpoint: str | None
    retries: int
    timeout_s: float
    max_retry_after: float
    succeeded: int

    def batch_line(self, cid: str, request: ChatRequest) -> bytes: ...
    def read_batch_line(self, obj: dict[str, Any], model: str) -> ChatResult | LineFailure: ...
    async def upload_batch(self, data: bytes) -> str: ...
    async def create_batch(self, handle: str, data: bytes, metadata: Mapping[str, str]) -> BatchState: ...
    async def retrieve_batch(self, batch_id: str) -> BatchState: ...
    async def download_batch(self, state: BatchState, kind: str, out: IO[bytes]) -> None: ...
    async def find_batches(self, uploads: Mapping[str, tuple[float, int]]) -> dict[str, str]: ...
    async def run_batches(self, metadata: Mapping[str, str], known: Mapping[str, str]) -> list[RunBatch] | None: ...
    def classify(self, exc: BaseException) -> CallFailed | None: ...
    def scrub(self, text: str | None) -> str | None: ...
    def backoff(self, attempt: int) -> float: ...
    def access_refused(self, exc: CallFailed, what: str) -> Exception: ...
    def too_long(self, seconds: float, source: str) -> Exception: ...
    async def aclose(self) -> None: ...


def status_failure(status: int, message: str, headers: Mapping[str, str], body: str | None) -> CallFailed:
    """The CallFailed of a non-2xx answer, its kind read from the status alone."""
    kind = {401: AUTH, 403: DENIED, 404: MISSING}.get(status)
    if kind is None:
        kind = RETRY if status in RETRYABLE_STATUS or status >= 500 else REJECT
    return CallFailed(kind, f"HTTP {status}: {message[:300]}", status, headers, body)


def sdk_failure(exc: BaseException, sdk: Any) -> CallFailed | None:
    """A CallFailed for an error of an SDK generated the usual way (openai, anthropic: the same
    APIStatusError/APITimeoutError/APIConnectionError family), None for anything else."""
    if isinstance(exc, sdk.APIStatusError):
        return status_failure(exc.status_code, exc.message, exc.response.headers, _body_text(exc))
    if isinstance(exc, sdk.APITimeoutError):
        refused = _refused(exc)  # the aiohttp transport reports a refused connection as a timeout
        if refused:
            return CallFailed(RETRY, f"connection failed: {refused}", connection=True)
        return CallFailed(RETRY, "request timed out", timeout=True)
    if isinstance(exc, sdk.APIConnectionError):
        return CallFailed(RETRY, f"connection failed: {exc.__cause__ or exc.message}", connection=True)
    return None


def _body_text(exc: Any) -> str | None:
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


def json_body(status: int, content: bytes, content_type: str, text: Any, what: str) -> dict[str, Any]:
    """The JSON object of a 200 answer, or a retryable CallFailed keeping the body when it is not
    one (an HTML page from a proxy, cut-off JSON). As the SDKs read it: a body that parses as JSON
    counts whatever its content-type says. `text` gives the body as text for errors.jsonl."""
    try:
        data = json.loads(content)
    except ValueError as exc:  # UnicodeDecodeError included
        if content_type.split(";")[0].endswith("json"):
            raise CallFailed(RETRY, f"unreadable response: HTTP {status} body is not valid JSON "
                                    f"({str(exc)[:200]})", body=text()) from None
        data = None
    if not isinstance(data, dict):
        raise CallFailed(RETRY, f"unreadable response: HTTP {status} with {content_type or 'no content-type'}, "
                                f"not {what}", body=text())
    return data


def raw_text(response: Any) -> str | None:
    """An HTTP response's body as errors.jsonl keeps it (None when it is not text)."""
    try:
        return response.text[:BODY_CHARS]
    except Exception:  # noqa: BLE001 - undecodable bytes: nothing worth keeping
        return None


def body_text(value: Any) -> str | None:
    """A body as errors.jsonl keeps it: text, at most BODY_CHARS."""
    if value is None:
        return None
    text = value if isinstance(value, str) else json.dumps(value, ensure_ascii=False)
    return text[:BODY_CHARS]
