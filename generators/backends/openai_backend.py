"""`--backend openai`: any OpenAI-compatible server (OpenAI, `vllm serve`, llama.cpp, Ollama)
through the official `openai` async client, as a mapping onto the HTTP base (http.py owns the
retries, Retry-After, `--concurrency auto`, rate limits and, with --batch, the Batch API lifecycle).

Auth: OPENAI_API_KEY as a Bearer key; `user:password@` in the base URL replaces it as HTTP basic
auth (one Authorization header only). Query parameters of the base URL (`?api-version=`) are sent
with every request.

The hot path stays off the SDK's pydantic layer: requests go through the client's own
`post` (its auth, base URL, query, headers, timeouts and typed errors) with a body we build
from plain values (openai_wire.py), and the answer is read with `json.loads`; the SDK's
per-request parameter transform and its pydantic models cost more CPU than the request itself at
high concurrency (docs/throughput.md).
"""
from __future__ import annotations

import importlib.util
import json
from typing import IO, Any, Mapping

import httpx2
import openai

from generators.backends import openai_wire
from generators.backends.base import Capabilities, ChatRequest, ChatResult
from generators.backends.batch_lines import LineFailure
from generators.backends.calls import REJECT, RETRY, Answer, BatchState, CallFailed, RunBatch, json_body, raw_text, sdk_failure
from generators.backends.http import HTTPBackend
from generators.backends.openai_transport import lean_aiohttp_client

TRANSFER_TIMEOUT_S = 900.0  # uploading or downloading up to 200 MB takes longer than one answer
TERMINAL = frozenset({"completed", "expired", "failed", "cancelled"})
LISTED_AT_MOST = 1000  # batches scanned for an upload whose batch was never recorded


class OpenAIBackend(HTTPBackend):
    name = "openai"
    capabilities = Capabilities(prefill=False, logprobs=True, adapters=False, per_request_model=True,
                                batching=False, local=False, batch_api=True, adaptive=True,
                                reasoning_effort=True, guides=frozenset({"json"}))
    api_key_env = "OPENAI_API_KEY"
    base_url_env = "OPENAI_BASE_URL"
    default_base_url = "https://api.openai.com/v1"

    def __init__(self, *, transport: str = "auto", **kwargs: Any) -> None:
        # --batch: the SDK's own path (multipart uploads, streamed downloads)
        self.transport = _pick_transport("httpx" if kwargs.get("for_batch") else transport)
        super().__init__(**kwargs)

    def make_client(self, url: str, api_key: str | None, *, headers: dict[str, str], query: dict[str, str],
                    connections: int, timeout_s: float) -> openai.AsyncOpenAI:
        limits = httpx2.Limits(max_connections=connections + 8, max_keepalive_connections=connections + 8)
        http_client_class = (lean_aiohttp_client() if self.transport == "aiohttp"
                             else openai.DefaultAsyncHttpxClient)
        return openai.AsyncOpenAI(
            api_key=api_key or "not-needed", base_url=url, max_retries=0, timeout=timeout_s,  # local servers ignore it
            default_headers=headers or None, default_query=query or None,
            http_client=http_client_class(limits=limits, timeout=timeout_s))

    def classify(self, exc: BaseException) -> CallFailed | None:
        return sdk_failure(exc, openai)

    cache_key_refused = False  # the server answered 400 to `prompt_cache_key`: never sent again

    async def send(self, request: ChatRequest) -> Answer:
        """Through the client's `post`, cast to the raw response: no pydantic on the way in or out.
        A strict OpenAI-compatible server may refuse the `prompt_cache_key` field that OpenAI's own
        API takes; the request is then sent again without it, and so is every later one."""
        body = openai_wire.params(request, self.model, cache_key=not self.cache_key_refused)
        try:
            response = await self.client.post("/chat/completions", body=body, cast_to=httpx2.Response)
        except openai.BadRequestError as exc:
            if "prompt_cache_key" not in body or "prompt_cache_key" not in str(exc):
                raise
            self.cache_key_refused = True
            body.pop("prompt_cache_key")
            response = await self.client.post("/chat/completions", body=body, cast_to=httpx2.Response)
        result = openai_wire.chat_result(_completion(response), request.model or self.model)
        return Answer(result, response.headers)

    # -- the Batch API ---------------------------------------------------------------------------
    def batch_line(self, cid: str, request: ChatRequest) -> bytes:
        return openai_wire.request_line(cid, openai_wire.params(request, self.model))

    def read_batch_line(self, obj: dict[str, Any], model: str) -> ChatResult | LineFailure:
        return openai_wire.read_line(obj, model)

    async def upload_batch(self, data: bytes) -> str:
        uploaded = await self.client.files.create(file=("baleen-batch.jsonl", data, "application/jsonl"),
                                                  purpose="batch", timeout=max(self.timeout_s, TRANSFER_TIMEOUT_S))
        return uploaded.id

    async def create_batch(self, handle: str, data: bytes, metadata: Mapping[str, str]) -> BatchState:
        return _state(await self.client.batches.create(input_file_id=handle, endpoint=openai_wire.ENDPOINT,
                                                       completion_window="24h", metadata=dict(metadata)))

    async def retrieve_batch(self, batch_id: str) -> BatchState:
        return _state(await self.client.batches.retrieve(batch_id))

    async def download_batch(self, state: BatchState, kind: str, out: IO[bytes]) -> None:
        async with self.client.files.with_streaming_response.content(
                state.files[kind], timeout=max(self.timeout_s, TRANSFER_TIMEOUT_S)) as response:
            async for chunk in response.iter_bytes():
                out.write(chunk)

    async def find_batches(self, uploads: Mapping[str, tuple[float, int]]) -> dict[str, str]:
        """The batches that run the given input files (their input_file_id), newest first."""
        found: dict[str, str] = {}
        seen = 0
        async for batch in self.client.batches.list(limit=100):
            seen += 1
            if batch.input_file_id in uploads:
                found[batch.input_file_id] = batch.id
            if len(found) == len(uploads) or seen >= LISTED_AT_MOST:
                break
        return found

    async def run_batches(self, metadata: Mapping[str, str], known: Mapping[str, str]) -> list[RunBatch]:
        """The batches whose metadata holds `metadata`, newest first; the custom_ids of an input
        file not in `known` (input file -> batch already recorded) are read from the file itself."""
        found: list[RunBatch] = []
        seen = 0
        async for batch in self.client.batches.list(limit=100):
            seen += 1
            tags = batch.metadata or {}
            if all(tags.get(k) == v for k, v in metadata.items()) and known.get(batch.input_file_id) != batch.id:
                found.append(RunBatch(batch.id, batch.input_file_id, await self._custom_ids(batch)))
            if seen >= LISTED_AT_MOST:
                break
        return found

    async def _custom_ids(self, batch: Any) -> list[str]:
        """The custom_ids of a batch's input file (a file the server lost: the run cannot go on safely)."""
        try:
            response = await self.client.files.content(batch.input_file_id,
                                                       timeout=max(self.timeout_s, TRANSFER_TIMEOUT_S))
        except openai.NotFoundError:
            raise CallFailed(REJECT, f"the input file {batch.input_file_id} of batch {batch.id} is gone") from None
        return [json.loads(line)["custom_id"] for line in response.content.splitlines() if line.strip()]


def _state(batch: Any) -> BatchState:
    counts = batch.request_counts
    reason = ("; ".join(f"{e.code}: {e.message}" for e in batch.errors.data)
              if batch.errors and batch.errors.data else None)
    return BatchState(batch.id, batch.status or "validating", ended=batch.status in TERMINAL,
                      total=counts.total if counts else 0, completed=counts.completed if counts else 0,
                      failed=counts.failed if counts else 0,
                      files={"output": batch.output_file_id, "errors": batch.error_file_id}, reason=reason)


def _completion(response: httpx2.Response) -> dict[str, Any]:
    """The chat completion in a 200 response, or a retryable failure with the body when it is not one."""
    data = json_body(response.status_code, response.content, response.headers.get("content-type") or "",
                     lambda: raw_text(response), "a chat completion")
    if not openai_wire.is_completion(data):
        raise CallFailed(RETRY, "response has no choices", body=raw_text(response))
    return data


def _pick_transport(wanted: str) -> str:
    """aiohttp when installed (the SDK's own optional transport): measured here it costs less CPU per
    request than httpx, whose connection pool scans every connection for every request."""
    if wanted != "auto":
        return wanted
    return "aiohttp" if importlib.util.find_spec("aiohttp") else "httpx"
