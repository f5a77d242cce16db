"""`--backend anthropic`: the Messages API through the official `anthropic` SDK
(`pip install baleen[anthropic]`), as a mapping onto the HTTP base: http.py owns the retries,
Retry-After (429 rate limited, 529 overloaded), `--concurrency auto` and rate limits, and
http_batch.py runs `--batch` through Message Batches at half price.

What is Anthropic's here: the key (ANTHROPIC_API_KEY, sent by the SDK) and the server
(--base-url, else ANTHROPIC_BASE_URL, else the public API; without the /v1, which the SDK adds);
system messages go to the `system` parameter (one block marked `cache_control` when the request
has a cache hint: the stable prefix of a dialog); `max_tokens` is required, so a request without one
asks for DEFAULT_MAX_TOKENS; `stop` becomes `stop_sequences` (the API has no seed: it is not sent);
usage counts the prompt as input + cache-read + cache-write tokens, with the last two booked apart.
Extended thinking: --reasoning-effort turns it on with a budget of THINKING_BUDGET tokens, added
to max_tokens (which counts the thinking too) so the answer keeps its room; the API takes no
temperature or top_p then, so neither is sent. `thinking` blocks come back as the reasoning.
A batch's lines go inline in one create call (no file upload), and its results come as one JSONL
stream, kept in the run folder as the batch's output file.
"""
from __future__ import annotations

import json
import uuid
from typing import IO, Any, Mapping

import anthropic
import httpx2

from generators.backends.base import Capabilities, ChatRequest, ChatResult
from generators.backends.batch_lines import LineFailure
from generators.backends.calls import RETRY, Answer, BatchState, CallFailed, body_text, json_body, raw_text, sdk_failure
from generators.backends.http import HTTPBackend

DEFAULT_MAX_TOKENS = 4096  # the API requires max_tokens; a stage that sets none gets this much room
# --reasoning-effort as a thinking budget (tokens; the API takes 1024 at least)
THINKING_BUDGET = {"low": 1024, "medium": 4096, "high": 16384}
FINISH = {"end_turn": "stop", "stop_sequence": "stop", "max_tokens": "length"}
RETRYABLE_ERRORS = {"api_error", "overloaded_error", "rate_limit_error", "timeout_error"}
LISTED_AT_MOST = 1000  # batches scanned for a batch an earlier session created but did not record
CREATED_WITHIN_S = 600.0  # a batch created this close to a lost upload record is that upload's


class AnthropicBackend(HTTPBackend):
    name = "anthropic"
    capabilities = Capabilities(per_request_model=True, batch_api=True, adaptive=True, reasoning_effort=True)
    api_key_env = "ANTHROPIC_API_KEY"
    base_url_env = "ANTHROPIC_BASE_URL"
    default_base_url = "https://api.anthropic.com"

    def make_client(self, url: str, api_key: str | None, *, headers: dict[str, str], query: dict[str, str],
                    connections: int, timeout_s: float) -> anthropic.AsyncAnthropic:
        limits = httpx2.Limits(max_connections=connections + 8, max_keepalive_connections=connections + 8)
        return anthropic.AsyncAnthropic(
            api_key=api_key or "not-needed", base_url=url, max_retries=0, timeout=timeout_s,
            default_headers=headers or None, default_query=query or None,
            http_client=anthropic.DefaultAsyncHttpxClient(limits=limits, timeout=timeout_s))

    def classify(self, exc: BaseException) -> CallFailed | None:
        return sdk_failure(exc, anthropic)

    async def send(self, request: ChatRequest) -> Answer:
        """Through the client's `post` (its auth, headers, timeouts and typed errors), the body
        as the API documents it, the answer read as plain JSON."""
        response = await self.client.post("/v1/messages", body=self.params(request), cast_to=httpx2.Response)
        message = json_body(response.status_code, response.content, response.headers.get("content-type") or "",
                            lambda: raw_text(response), "a message")
        if message.get("type") != "message" or not isinstance(message.get("content"), list):
            raise CallFailed(RETRY, "unreadable response: not a message", body=raw_text(response))
        return Answer(message_result(message, request.model or self.model), response.headers)

    def params(self, request: ChatRequest) -> dict[str, Any]:
        """The Messages API body of one request."""
        s = request.sampling
        system = "\n\n".join(content for role, content in request.messages if role == "system")
        body: dict[str, Any] = {
            "model": request.model or self.model, "max_tokens": s.max_tokens or DEFAULT_MAX_TOKENS,
            "messages": [{"role": role, "content": content} for role, content in request.messages
                         if role != "system"]}
        if system:
            body["system"] = system_blocks(system) if request.cache_hint else system
        optional = {"temperature": s.temperature, "top_p": s.top_p, "stop_sequences": list(s.stop or ()) or None}
        if s.reasoning_effort is not None:
            budget = THINKING_BUDGET[s.reasoning_effort]
            body["thinking"] = {"type": "enabled", "budget_tokens": budget}
            body["max_tokens"] += budget
            optional.update(temperature=None, top_p=None)  # refused with thinking on
        body.update({key: value for key, value in optional.items() if value is not None})
        return body

    # -- Message Batches -------------------------------------------------------------------------
    def batch_line(self, cid: str, request: ChatRequest) -> bytes:
        line = {"custom_id": cid, "params": self.params(request)}
        return (json.dumps(line, ensure_ascii=False, separators=(",", ":")) + "\n").encode("utf-8")

    def read_batch_line(self, obj: dict[str, Any], model: str) -> ChatResult | LineFailure:
        result = obj.get("result") if isinstance(obj.get("result"), dict) else {}
        kind = result.get("type")
        if kind == "succeeded" and isinstance(result.get("message"), dict):
            return message_result(result["message"], model)
        if kind == "errored":
            error = (result.get("error") or {}).get("error") or {}
            return LineFailure(f"failed in the batch: {error.get('type')}: {str(error.get('message'))[:300]}",
                               body=body_text(result), retryable=error.get("type") in RETRYABLE_ERRORS)
        if kind in ("expired", "canceled"):
            return LineFailure(f"{kind}: the batch ended before this line ran", body=body_text(result))
        return LineFailure("unreadable line: neither a message nor an error", body=body_text(obj))

    async def upload_batch(self, data: bytes) -> str:
        """Message Batches take their lines inline: nothing to upload, a local id to record."""
        return f"inline-{uuid.uuid4().hex}"

    async def create_batch(self, handle: str, data: bytes, metadata: Mapping[str, str]) -> BatchState:
        """Message Batches keep no metadata: `metadata` is not sent (see run_batches)."""
        requests = [json.loads(line) for line in data.splitlines() if line.strip()]
        return _state(await self.client.messages.batches.create(requests=requests))

    async def retrieve_batch(self, batch_id: str) -> BatchState:
        return _state(await self.client.messages.batches.retrieve(batch_id))

    async def download_batch(self, state: BatchState, kind: str, out: IO[bytes]) -> None:
        async with self.client.messages.batches.with_streaming_response.results(state.id) as response:
            async for chunk in response.iter_bytes():
                out.write(chunk)

    async def find_batches(self, uploads: Mapping[str, tuple[float, int]]) -> dict[str, str]:
        """A batch has no input file to match, so: a batch of the same number of lines created
        within CREATED_WITHIN_S of the upload's record, the closest first."""
        candidates: list[tuple[str, float, int]] = []
        async for batch in self.client.messages.batches.list(limit=100):
            counts = batch.request_counts
            total = counts.processing + counts.succeeded + counts.errored + counts.canceled + counts.expired
            candidates.append((batch.id, batch.created_at.timestamp(), total))
            if len(candidates) >= LISTED_AT_MOST:
                break
        found: dict[str, str] = {}
        for handle, (at, lines) in sorted(uploads.items(), key=lambda item: item[1][0]):
            near = [(abs(created - at), batch_id) for batch_id, created, total in candidates
                    if total == lines and abs(created - at) <= CREATED_WITHIN_S and batch_id not in found.values()]
            if near:
                found[handle] = min(near)[1]
        return found


def system_blocks(system: str) -> list[dict[str, Any]]:
    """The system text as one block marked as the end of a cached prefix (the request's stable
    part): later requests that start the same read it from the cache. Anthropic caches only
    prefixes above a minimum length (1,024 tokens, 2,048 on Haiku); a shorter one is sent as
    it is and costs nothing more."""
    return [{"type": "text", "text": system, "cache_control": {"type": "ephemeral"}}]


def message_result(message: dict[str, Any], model: str) -> ChatResult:
    """The ChatResult of a Messages API answer (a dict, as the API sends it)."""
    usage = message.get("usage") if isinstance(message.get("usage"), dict) else {}
    read, write = _count(usage, "cache_read_input_tokens"), _count(usage, "cache_creation_input_tokens")
    blocks = [block for block in message.get("content") or [] if isinstance(block, dict)]
    text = "".join(block.get("text") or "" for block in blocks if block.get("type") == "text")
    thinking = "\n\n".join(block.get("thinking") or "" for block in blocks if block.get("type") == "thinking").strip()
    stop = message.get("stop_reason") or "end_turn"
    return ChatResult(text=text, finish=FINISH.get(stop, stop),
                      prompt_tokens=_count(usage, "input_tokens") + read + write,
                      completion_tokens=_count(usage, "output_tokens"), model=message.get("model") or model,
                      cache_read_tokens=read, cache_write_tokens=write, reasoning=thinking or None)


def _count(usage: dict[str, Any], name: str) -> int:
    value = usage.get(name)
    return value if isinstance(value, int) else 0


def _state(batch: Any) -> BatchState:
    counts = batch.request_counts
    ended = batch.processing_status == "ended"
    done = counts.succeeded + counts.errored + counts.canceled + counts.expired
    status = "expired" if ended and counts.expired else batch.processing_status
    return BatchState(batch.id, status, ended=ended, total=done + counts.processing, completed=counts.succeeded,
                      failed=done - counts.succeeded, files={"output": batch.results_url if ended else None})
