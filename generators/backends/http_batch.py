"""--batch for any HTTP backend: the same requests, sent through the provider's Batch API at half
price. The lifecycle is here; the provider (http.HTTPBackend) writes its line format and its
batch calls (upload, create, retrieve, download, find), nothing else.

`complete(request)` registers the request and waits for its answer. A submitter gathers the
waiting requests into a batch file once --batch-max-lines are waiting or none has arrived for a
quiet spell (every lane waits, or the items ran out), uploads it, creates the batch, and records
both in the run folder (batch_ledger) before anything is polled. A poller checks each live
batch every --batch-poll-interval seconds; a finished batch's output and error files are
downloaded once, kept in the run folder, and every waiting request gets its line: an answer (the
usage of that line's own body, so the engine books it to the item), or a failure. Failed and
expired lines, and only those, go into a new batch as attempt + 1, up to --retries times; then
the request fails with the line's status and body and its item lands in errors.jsonl.

A line's custom_id is the request's response-cache key (cut to 48 hex digits) plus the attempt, so a rerun (after
Ctrl-C, a kill, a crash) finds its requests in the batches already recorded and waits for those
instead of uploading them again. `aclose` never cancels a batch: they go on running on the server.
Client, credentials, query parameters, redaction and the cache identity (`name`, `endpoint`) are
the provider's own. A provider without file uploads (Anthropic's Message Batches take the lines
inline) records a local upload id, so a kill between "uploaded" and "submitted" is recovered the
same way: the provider's `find_batches` looks for the batch on the server.

The server is the ledger's backup: each batch carries the run's fingerprint as metadata
(RUN_KEY), and before a session's first upload the batches the server lists under it that the
ledger lacks (a garbled line, a deleted batches.jsonl) are recorded again and waited for. A
server that cannot be listed stops the run before anything is uploaded. A provider that keeps no
metadata (Anthropic) answers None and has only `find_batches`.
"""
from __future__ import annotations

import asyncio
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Awaitable, Callable, TypeVar

from generators.backends.base import Backend, BackendSettings, ChatRequest, ChatResult, RequestFailed
from generators.backends.batch_ledger import KINDS, BatchLedger
from generators.backends.batch_lines import MAX_FILE_BYTES, LineFailure, custom_id, line_key, missing, pack
from generators.backends.cache import cache_key
from generators.backends.calls import AUTH, DENIED, MISSING, RETRY, BatchAPI, BatchState, CallFailed
from generators.backends.ratelimit import retry_after
from generators.core.errors import BaleenError, FatalError, UsageError
from generators.core.manifest import read_manifest
from generators.core.records import stable_id

T = TypeVar("T")

QUIET_S = 0.5  # no new request for this long: every lane is waiting, submit what there is
MAX_GATHER_S = 60.0  # a slow trickle of requests is submitted at least this often
RUN_KEY = "baleen_run"  # batch metadata: the run's fingerprint, so a rerun finds the run's batches
BATCH_KEY = "baleen_batch"  # batch metadata: a hash of the batch's custom_ids, its own key


class _GaveUp(FatalError):
    """An API call that kept failing for a transient reason (5xx, 429, timeouts, connection)."""


@dataclass(eq=False)
class _Waiter:
    """One request key and everyone awaiting its answer (the same request twice is one line)."""

    key: str
    request: ChatRequest
    futures: list[asyncio.Future] = field(default_factory=list)
    attempt: int = 0
    failures: int = 0  # lines of this request that failed in this session
    batch: str | None = None

    def live(self) -> bool:
        return any(not f.done() for f in self.futures)


@dataclass(eq=False)
class _Live:
    """A batch this session polls."""

    id: str
    status: str = "validating"
    total: int = 0
    completed: int = 0
    failed: int = 0
    waiting: set[str] = field(default_factory=set)
    next_poll: float = 0.0
    poll_failures: int = 0


class HTTPBatchBackend(Backend):
    """A provider's requests through its Batch API; the provider is `api` (an http.HTTPBackend
    built for_batch)."""

    @classmethod
    def from_settings(cls, provider: Callable[..., BatchAPI], settings: BackendSettings) -> "HTTPBatchBackend":
        if not settings.run_dir:
            raise UsageError("--batch keeps its batch ids in the run folder, and this command has none; "
                             "leave out --batch")
        api = provider(model=settings.model or "", base_url=settings.base_url, timeout_s=settings.timeout_s,
                       retries=settings.retries, max_retry_after=settings.max_retry_after, for_batch=True)
        return cls(api, run_dir=settings.run_dir, max_lines=settings.batch_max_lines,
                   poll_interval_s=settings.batch_poll_interval)

    def __init__(self, api: BatchAPI, *, run_dir: str | Path, max_lines: int = 50_000,
                 poll_interval_s: float = 60.0, quiet_s: float = QUIET_S, max_gather_s: float = MAX_GATHER_S,
                 max_file_bytes: int = MAX_FILE_BYTES) -> None:
        self.api = api
        self.name, self.model, self.endpoint = api.name, api.model, api.endpoint
        self.capabilities = api.capabilities
        self.retries = api.retries
        self.timeout_s = api.timeout_s
        self.max_lines = max(1, max_lines)
        self.poll_interval_s = poll_interval_s
        self.quiet_s = quiet_s
        self.max_gather_s = max_gather_s
        self.max_file_bytes = max_file_bytes
        self.ledger = BatchLedger(run_dir)
        self.resubmitted = 0  # lines sent again in this session (failed or expired)
        self.failed_lines = 0  # requests that ended failed in this session
        self.adopted = 0  # batches the server listed as this run's that the ledger did not hold
        self._tag: str | None = None
        self._adopted = False  # this session has looked for the run's batches on the server
        self._waiters: dict[str, _Waiter] = {}
        self._queue: list[_Waiter] = []
        self._first_arrival = self._last_arrival = 0.0
        self._arrived = asyncio.Event()
        self._poke = asyncio.Event()
        self._live: dict[str, _Live] = {}
        self._seen: dict[str, _Live] = {}  # every batch this session submitted or polled
        self._indexes: dict[str, dict[str, tuple[Path, int]]] = {}
        self._tasks: list[asyncio.Task] = []
        self._submitting: asyncio.Task | None = None
        self._creating = False
        self._fatal: BaleenError | None = None
        self._started = False
        self._start_lock = asyncio.Lock()

    # -- the Backend interface ---------------------------------------------------------------
    async def start(self) -> None:
        """Read the ledger, find the batch of an upload an earlier session did not record, start
        the submitter and the poller."""
        if self._started:
            return
        async with self._start_lock:  # no request is routed before the ledger is whole
            if self._started:
                return
            self.ledger.load()
            await self._recover_orphans()
            loop = asyncio.get_running_loop()
            self._tasks = [loop.create_task(self._guard(self._submit_loop(), "submitter")),
                           loop.create_task(self._guard(self._poll_loop(), "poller"))]
            self._started = True

    async def complete(self, request: ChatRequest) -> ChatResult:
        await self.start()
        if self._fatal is not None:
            raise self._fatal
        key = line_key(cache_key(self.name, self.model, request, endpoint=self.endpoint))
        future: asyncio.Future = asyncio.get_running_loop().create_future()
        waiter = self._waiters.get(key)
        if waiter is None:
            waiter = self._waiters[key] = _Waiter(key, request, [future])
            self._route(waiter)
        else:
            waiter.futures.append(future)
        return await future

    def progress(self) -> dict[str, Any]:
        """e.g. {"batches": "2 in_progress, 1 completed", "lines": "120/300"}."""
        if not self._seen:
            return {}
        statuses = Counter(b.status for b in self._seen.values())
        shown: dict[str, Any] = {"batches": ", ".join(f"{n} {s}" for s, n in statuses.most_common())}
        if self._live:
            done = sum(b.completed + b.failed for b in self._live.values())
            shown["lines"] = f"{done}/{sum(b.total for b in self._live.values())}"
        return shown

    def report(self) -> dict[str, Any]:
        """Every batch this run folder submitted, with its status and line counts (for the manifest)."""
        batches = []
        for record in self.ledger.batches.values():
            live = self._seen.get(record.id)
            entry: dict[str, Any] = {"id": record.id, "status": record.status, "lines": record.lines}
            if live is not None and not record.ended:
                entry["status"] = live.status
                entry["counts"] = {"completed": live.completed, "failed": live.failed, "total": live.total}
            elif record.counts:
                entry["counts"] = record.counts
            batches.append(entry)
        if not batches:
            return {}
        return {"batches": batches, "resubmitted_lines": self.resubmitted, "failed_lines": self.failed_lines,
                "ledger": self.ledger.path.name, **({"adopted_batches": self.adopted} if self.adopted else {})}

    async def aclose(self) -> None:
        """Stop polling and submitting, never the batches: a rerun picks them up. A batch being
        created is waited for, so that it is recorded."""
        for task in self._tasks:
            task.cancel()
        if self._tasks:
            await asyncio.gather(*self._tasks, return_exceptions=True)
        submitting = self._submitting
        if submitting is not None and not submitting.done():
            if not self._creating:
                submitting.cancel()  # only an upload so far: nothing runs on the server
            try:
                await asyncio.wait_for(asyncio.shield(submitting), self.timeout_s)
            except (Exception, asyncio.CancelledError):  # noqa: BLE001 - closing: nothing left to tell
                pass
        self.ledger.close()
        await self.api.aclose()

    # -- routing one request -----------------------------------------------------------------
    def _route(self, waiter: _Waiter) -> None:
        """A request already in a recorded batch waits for that batch; any other is queued."""
        seen = self.ledger.latest(waiter.key)
        if seen is None:
            self._enqueue(waiter)
            return
        waiter.attempt, batch_id = seen
        record = self.ledger.batches[batch_id]
        if record.ended and self._have_files(batch_id):
            self._settle(waiter, self._outcome(batch_id, waiter))
        else:
            self._watch(batch_id, waiter, total=record.lines)

    def _enqueue(self, waiter: _Waiter) -> None:
        waiter.attempt = self.ledger.next_attempt(waiter.key)
        waiter.batch = None
        now = time.monotonic()
        if not self._queue:
            self._first_arrival = now
        self._last_arrival = now
        self._queue.append(waiter)
        self._arrived.set()

    def _watch(self, batch_id: str, waiter: _Waiter, *, total: int) -> None:
        waiter.batch = batch_id
        live = self._live.get(batch_id)
        if live is None:
            live = self._live[batch_id] = self._seen.setdefault(batch_id, _Live(batch_id, status="submitted"))
            live.total = live.total or total
            live.next_poll = 0.0  # an earlier session's batch: look at once
            self._poke.set()
        live.waiting.add(waiter.key)

    def _settle(self, waiter: _Waiter, outcome: ChatResult | LineFailure) -> None:
        """Answer the request, send it again, or fail it for errors.jsonl."""
        if isinstance(outcome, ChatResult):
            for future in waiter.futures:
                if not future.done():
                    future.set_result(outcome)
            self._forget(waiter)
            return
        waiter.failures += 1
        if outcome.retryable and waiter.failures <= self.retries and waiter.live():
            self.resubmitted += 1
            self._enqueue(waiter)
            return
        self.failed_lines += 1
        tries = f" (after {waiter.failures} batch lines)" if waiter.failures > 1 else ""
        error = RequestFailed(f"{self.api.scrub(outcome.reason)}{tries}", status=outcome.status,
                              last_response=self.api.scrub(outcome.body))
        for future in waiter.futures:
            if not future.done():
                future.set_exception(error)
        self._forget(waiter)

    def _forget(self, waiter: _Waiter) -> None:
        if self._waiters.get(waiter.key) is waiter:
            del self._waiters[waiter.key]

    # -- submitting ----------------------------------------------------------------------------
    async def _submit_loop(self) -> None:
        while True:
            await self._arrived.wait()
            self._arrived.clear()
            while self._queue and len(self._queue) < self.max_lines:
                now = time.monotonic()
                wait = min(self._last_arrival + self.quiet_s, self._first_arrival + self.max_gather_s) - now
                if wait <= 0:
                    break
                await asyncio.sleep(wait)
            taken, self._queue = self._queue[:self.max_lines], self._queue[self.max_lines:]
            if self._queue:
                self._first_arrival = time.monotonic()
                self._arrived.set()
            for waiter in taken:
                if not waiter.live():
                    self._forget(waiter)
            taken = [w for w in taken if w.live()]
            if taken and not self._adopted:
                await self._adopt()
                self._adopted = True
                for waiter in [w for w in taken if self.ledger.latest(w.key) is not None]:
                    taken.remove(waiter)
                    self._route(waiter)  # it was in a batch the ledger had lost: wait for that one
            if taken:
                self._submitting = asyncio.get_running_loop().create_task(self._submit(taken))
                await asyncio.shield(self._submitting)

    async def _submit(self, waiters: list[_Waiter]) -> None:
        """Upload the lines (split by lines and bytes), create one batch per file, record both."""
        lines = [self.api.batch_line(custom_id(w.key, w.attempt), w.request) for w in waiters]
        files, oversize = pack([len(line) for line in lines], self.max_lines, self.max_file_bytes)
        for index in oversize:
            self._settle(waiters[index], LineFailure(
                f"the request is {len(lines[index])} bytes, more than a batch file may hold "
                f"({self.max_file_bytes}); shorten it or leave out --batch", retryable=False))
        for chunk in files:
            data = b"".join(lines[i] for i in chunk)
            ids = [custom_id(waiters[i].key, waiters[i].attempt) for i in chunk]
            handle = await self._api("upload a batch file", lambda data=data: self.api.upload_batch(data))
            self.ledger.uploaded(handle, ids)
            self._creating = True
            try:
                tag = {**self._run_tag(), BATCH_KEY: stable_id(ids)}
                batch = await self._api("create a batch",
                                        lambda handle=handle, data=data, tag=tag: self.api.create_batch(handle, data, tag))
                self.ledger.submitted(batch.id, handle)
            finally:
                self._creating = False
            live = _Live(batch.id, status=batch.status, total=len(chunk))
            self._live[batch.id] = self._seen[batch.id] = live
            live.next_poll = time.monotonic() + self.poll_interval_s
            for i in chunk:
                waiters[i].batch = batch.id
                live.waiting.add(waiters[i].key)
            self._poke.set()

    def _run_tag(self) -> dict[str, str]:
        """The metadata that names this run on the server: the run's fingerprint (from its
        manifest, written before the backend starts), else the run folder's path."""
        if self._tag is None:
            try:
                fingerprint = read_manifest(self.ledger.path.parent).get("fingerprint")
            except BaleenError:
                fingerprint = None
            self._tag = str(fingerprint or stable_id(str(self.ledger.path.parent.resolve())))
        return {RUN_KEY: self._tag}

    async def _adopt(self) -> None:
        """Before the session's first upload (a rerun that uploads nothing asks nothing): every
        batch the server lists as this run's that the ledger lacks (a garbled or lost line, a
        deleted batches.jsonl) is recorded again, so its lines are waited for, not paid twice.
        A server that cannot be listed stops the run."""
        known = {record.file: record.id for record in self.ledger.batches.values()}
        try:
            listed = await self._api("list this run's batches",
                                     lambda: self.api.run_batches(self._run_tag(), known))
        except Exception as exc:  # noqa: BLE001 - an unreadable listing or input file stops the same way
            reason = str(exc) if isinstance(exc, BaleenError) else \
                f"cannot list this run's batches: {type(exc).__name__}: {self.api.scrub(str(exc))}"
            raise FatalError(f"{reason}; nothing was uploaded, so that no request is paid twice") from None
        for found in reversed(listed or []):  # listed newest first; the ledger keeps submission order
            if found.id in self.ledger.batches:
                continue
            if found.file not in self.ledger.files:
                self.ledger.uploaded(found.file, found.custom_ids)
            self.ledger.submitted(found.id, found.file)
            self.adopted += 1

    async def _recover_orphans(self) -> None:
        """An upload recorded without its batch: find the batch on the server (a kill while it
        was being created) so its lines are not paid again; else forget the upload."""
        orphans = set(self.ledger.orphans())
        if not orphans:
            return

        uploads = {f: (self.ledger.uploaded_at.get(f, 0.0), len(self.ledger.files[f])) for f in orphans}
        found = await self._api("list batches", lambda: self.api.find_batches(uploads), missing_ok=True) or {}
        found = {f: b for f, b in found.items() if b not in self.ledger.batches}
        for file_id in sorted(orphans):
            if file_id in found:
                self.ledger.submitted(found[file_id], file_id)
            else:
                self.ledger.abandoned(file_id)

    # -- polling -------------------------------------------------------------------------------
    async def _poll_loop(self) -> None:
        while True:
            now = time.monotonic()
            for live in [b for b in self._live.values() if b.next_poll <= now]:
                await self._check(live)
            self._poke.clear()
            upcoming = [b.next_poll for b in self._live.values()]
            timeout = max(0.0, min(upcoming) - time.monotonic()) if upcoming else None
            try:
                await asyncio.wait_for(self._poke.wait(), timeout)
            except asyncio.TimeoutError:
                pass

    async def _check(self, live: _Live) -> None:
        """One look at a batch; a finished one has its files downloaded and its lines settled."""
        record = self.ledger.batches[live.id]
        try:
            if not record.ended:
                batch = await self._api("check a batch", lambda: self.api.retrieve_batch(live.id),
                                        missing_ok=True, attempts=1)
                if batch is None:
                    batch = BatchState(live.id, "not_found", ended=True, reason="the server does not know it")
                else:
                    live.status = batch.status
                    live.total = batch.total or live.total
                    live.completed, live.failed = batch.completed, batch.failed
                    if not batch.ended:
                        live.poll_failures = 0
                        live.next_poll = time.monotonic() + self.poll_interval_s
                        return
                await self._download(batch)
                self.ledger.ended(live.id, status=batch.status, output_file=batch.files.get("output"),
                                  error_file=batch.files.get("errors"), reason=self.api.scrub(batch.reason),
                                  counts={"completed": live.completed, "failed": live.failed, "total": live.total})
            else:
                await self._download(BatchState(live.id, record.status, ended=True, files={
                    "output": record.output_file, "errors": record.error_file}))
        except _GaveUp:
            live.poll_failures += 1
            if live.poll_failures > self.retries:
                raise
            live.next_poll = time.monotonic() + self.poll_interval_s
            return
        live.status = record.status
        del self._live[live.id]
        waiting, live.waiting = live.waiting, set()
        for key in waiting:
            waiter = self._waiters.get(key)
            if waiter is not None and waiter.batch == live.id:
                self._settle(waiter, self._outcome(live.id, waiter))
        self._indexes.pop(live.id, None)  # a later request for it (rare) reads the files again

    async def _download(self, batch: BatchState) -> None:
        """Fetch the batch's files not yet on disk (a file the server lost leaves its lines unanswered)."""
        for kind in KINDS:
            if not batch.files.get(kind) or self.ledger.local(batch.id, kind).exists():
                continue

            async def fetch(kind: str = kind) -> bool:
                with self.ledger.download(batch.id, kind) as handle:
                    await self.api.download_batch(batch, kind, handle)
                return True

            await self._api(f"download a batch's {kind} file", fetch, missing_ok=True, attempts=1)
        self._indexes.pop(batch.id, None)

    def _have_files(self, batch_id: str) -> bool:
        record = self.ledger.batches[batch_id]
        return all(self.ledger.local(batch_id, kind).exists()
                   for kind, file_id in zip(KINDS, (record.output_file, record.error_file)) if file_id)

    def _outcome(self, batch_id: str, waiter: _Waiter) -> ChatResult | LineFailure:
        """The line of this request in a finished batch's downloaded files."""
        index = self._indexes.get(batch_id)
        if index is None:
            index = self._indexes[batch_id] = self.ledger.index(batch_id)
        place = index.get(custom_id(waiter.key, waiter.attempt))
        if place is None:
            record = self.ledger.batches[batch_id]
            return missing(record.status, record.reason)
        return self.api.read_batch_line(self.ledger.read_at(*place), waiter.request.model or self.model)

    # -- calls to the Files and Batches API ------------------------------------------------------
    async def _api(self, what: str, call: Callable[[], Awaitable[T]], *, missing_ok: bool = False,
                   attempts: int | None = None) -> T | None:
        """One Files/Batches call with our retries: a refused key or a 4xx stops the run (a
        server without the Batch API answers 404); 429, 5xx, timeouts and connection errors are
        tried again (`attempts` times, default --retries + 1), then _GaveUp."""
        tries = attempts or self.retries + 1
        last = ""
        for attempt in range(tries):
            wait = self.api.backoff(attempt + 1)
            try:
                result = await call()
                self.api.succeeded += 1
                return result
            except Exception as exc:
                failure = exc if isinstance(exc, CallFailed) else self.api.classify(exc)
                if failure is None:
                    raise
            if failure.kind in (AUTH, DENIED):
                raise self.api.access_refused(failure, "for the Batch API") from None
            if failure.kind == MISSING:
                if missing_ok:
                    return None
                raise FatalError(f"cannot {what}: {self.endpoint} answered 404 ({self.api.scrub(failure.reason)}); "
                                 "the server may not offer a Batch API: leave out --batch") from None
            if failure.kind != RETRY:
                raise FatalError(f"cannot {what}: {self.api.scrub(failure.reason)} from {self.endpoint}") from None
            asked = retry_after(failure.headers) if failure.headers else None
            if asked is not None and asked[0] > self.api.max_retry_after:
                raise self.api.too_long(*asked) from None
            wait = asked[0] if asked is not None else wait
            last = failure.reason
            if attempt + 1 < tries:
                await asyncio.sleep(wait)
        reach = ("cannot reach the server" if self.api.succeeded == 0 and last.startswith("connection")
                 else f"cannot {what}")
        raise _GaveUp(f"{reach} at {self.endpoint} ({self.api.scrub(last)}); rerun the same command: "
                      "it picks up the batches already submitted")

    async def _guard(self, loop: Awaitable[None], what: str) -> None:
        """A background loop's failure stops the run: every waiting request gets the error."""
        try:
            await loop
        except asyncio.CancelledError:
            raise
        except BaleenError as exc:
            self._fail_all(exc)
        except Exception as exc:  # noqa: BLE001 - a bug here must stop the run, not hang it
            self._fail_all(FatalError(f"the batch {what} stopped ({type(exc).__name__}: {exc}); "
                                      "rerun the same command: it picks up the batches already submitted"))

    def _fail_all(self, exc: BaleenError) -> None:
        self._fatal = exc
        for waiter in list(self._waiters.values()):
            for future in waiter.futures:
                if not future.done():
                    future.set_exception(exc)
        self._waiters.clear()
        self._queue.clear()
