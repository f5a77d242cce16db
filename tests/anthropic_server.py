"""A loopback server that speaks Anthropic's Messages and Message Batches wire format, for the
`anthropic` backend's tests: a real HTTP server on 127.0.0.1 that the real `anthropic` SDK talks to.

Every request (direct, or a batch line) is answered by ChatServer's own logic (rules, reply,
latency, api_key), translated both ways: a Messages body becomes a chat body (the `system`
parameter first), and the answer comes back as a Message, or as an Anthropic error body
``{"type": "error", "error": {"type", "message"}}`` with the rule's status and Retry-After. So a
rule ``{"match": "x", "status": 529, "retry_after": 0.1, "times": 2}`` makes two overloaded
answers. The key is read from ``x-api-key`` or a Bearer ``Authorization`` (SDKs send either).

    with AnthropicServer(cache_read_tokens=7, expire=[{"match": "r3", "times": 1}]) as server:
        ... gen --backend anthropic --base-url server.url ...
        server.uploads     # custom_ids of every batch created, in order
        server.answered    # Counter: custom_id -> times answered in a batch
        server.messages    # the Messages bodies of direct requests

A rule's `reasoning` comes back as a `thinking` content block before the text.

Batches move on only when they are looked at (no clocks): the first retrieve shows
``in_progress``, the next one runs the lines and ends the batch. ``hold = True`` keeps them
in progress (a kill while polling). ``expire`` rules: matching lines are not run and end as
``{"type": "expired"}``.
"""
from __future__ import annotations

import json
from collections import Counter
from datetime import datetime, timedelta, timezone
from typing import Any, Iterable, Mapping

from aiohttp import web

from tests.batch_server import BatchServer
from tests.chat_server import ChatServer, Rule

ERROR_TYPES = {400: "invalid_request_error", 401: "authentication_error", 403: "permission_error",
               404: "not_found_error", 429: "rate_limit_error", 500: "api_error", 529: "overloaded_error"}
STOP = {"stop": "end_turn", "length": "max_tokens"}


class _Inner:
    """What ChatServer._answer reads from a request."""

    def __init__(self, body: dict[str, Any], api_key: str | None) -> None:
        self._body = json.dumps(body).encode("utf-8")
        self.headers = {"Authorization": f"Bearer {api_key}"} if api_key else {}
        self.query_string = ""

    async def read(self) -> bytes:
        return self._body


def api_key_of(request: web.Request) -> str | None:
    bearer = (request.headers.get("Authorization") or "").removeprefix("Bearer ")
    return request.headers.get("x-api-key") or bearer or None


def chat_body(params: dict[str, Any]) -> dict[str, Any]:
    """A Messages body as the chat body ChatServer answers."""
    system = [{"role": "system", "content": params["system"]}] if params.get("system") else []
    return {"model": params.get("model"), "messages": system + list(params.get("messages") or []),
            "max_tokens": params.get("max_tokens")}


def _blocks(message: dict[str, Any]) -> list[dict[str, Any]]:
    """A chat answer as content blocks: its thinking (a rule's `reasoning`) as a `thinking` block
    first, then the text (none when thinking ran out of tokens before any)."""
    thinking = message.get("reasoning_content") or message.get("reasoning")
    blocks = [{"type": "thinking", "thinking": thinking, "signature": "c2lnbmF0dXJl"}] if thinking else []
    if message["content"] or not thinking:
        blocks.append({"type": "text", "text": message["content"]})
    return blocks


def _stamp(when: datetime) -> str:
    return when.isoformat().replace("+00:00", "Z")


class AnthropicServer(ChatServer):
    def __init__(self, *, expire: Iterable[Mapping[str, Any]] | None = None, hold: bool = False,
                 cache_read_tokens: int = 0, cache_write_tokens: int = 0, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.expire_rules = [Rule.coerce(r) for r in (expire or [])]
        self.hold = hold
        self.cache_read_tokens, self.cache_write_tokens = cache_read_tokens, cache_write_tokens

    def reset(self) -> None:
        super().reset()
        self.messages: list[dict[str, Any]] = []
        self.batches: dict[str, dict[str, Any]] = {}
        self.lines: dict[str, list[dict[str, Any]]] = {}
        self.results: dict[str, bytes] = {}
        self.uploads: list[list[str]] = []
        self.answered: Counter[str] = Counter()

    def make_app(self) -> web.Application:
        app = super().make_app()
        batches = "/v1/messages/batches"
        app.add_routes([web.post("/v1/messages", self._message), web.post(batches, self._create),
                        web.get(batches, self._list), web.get(batches + "/{id}", self._retrieve),
                        web.get(batches + "/{id}/results", self._results)])
        return app

    # -- one message ---------------------------------------------------------------------------
    async def _reply(self, params: dict[str, Any], api_key: str | None) -> tuple[int, dict[str, Any], dict]:
        """(status, Message or error body, headers) for one Messages body."""
        if not isinstance(params.get("max_tokens"), int):
            return 400, {"type": "error", "error": {"type": "invalid_request_error",
                                                    "message": "max_tokens: Field required"}}, {}
        answer = await self._answer(_Inner(chat_body(params), api_key))
        if answer is None:
            return 500, {"type": "error", "error": {"type": "api_error", "message": "dropped"}}, {}
        data = json.loads(answer.text or "{}")
        headers = {k: v for k, v in answer.headers.items() if k.lower() in ("retry-after", "x-request-id")}
        if answer.status != 200:
            message = (data.get("error") or {}).get("message") or "error"
            kind = ERROR_TYPES.get(answer.status, "api_error")
            return answer.status, {"type": "error", "error": {"type": kind, "message": message}}, headers
        choice, usage = data["choices"][0], data["usage"]
        return 200, {
            "id": f"msg_{self._ids:08d}", "type": "message", "role": "assistant", "model": data["model"],
            "content": _blocks(choice["message"]),
            "stop_reason": STOP.get(choice["finish_reason"], choice["finish_reason"]), "stop_sequence": None,
            "usage": {"input_tokens": usage["prompt_tokens"], "output_tokens": usage["completion_tokens"],
                      "cache_read_input_tokens": self.cache_read_tokens,
                      "cache_creation_input_tokens": self.cache_write_tokens}}, headers

    async def _message(self, request: web.Request) -> web.Response:
        self.requests_total += 1
        params = await request.json()
        self.messages.append(params)
        status, body, headers = await self._reply(params, api_key_of(request))
        self.by_status[status] = self.by_status.get(status, 0) + 1
        return web.json_response(body, status=status, headers=headers)

    # -- batches -------------------------------------------------------------------------------
    def _refused(self, request: web.Request) -> web.Response | None:
        if self.api_key is not None and api_key_of(request) != self.api_key:
            return web.json_response({"type": "error", "error": {"type": "authentication_error",
                                                                 "message": "invalid x-api-key"}}, status=401)
        return None

    async def _create(self, request: web.Request) -> web.Response:
        refused = self._refused(request)
        if refused is not None:
            return refused
        lines = (await request.json()).get("requests") or []
        ids = [line["custom_id"] for line in lines]
        if len(ids) != len(set(ids)) or not ids:
            return web.json_response({"type": "error", "error": {"type": "invalid_request_error",
                                                                 "message": "custom_id must be unique"}}, status=400)
        self.uploads.append(ids)
        self._ids += 1
        batch_id = f"msgbatch_{self._ids:06d}"
        now = datetime.now(timezone.utc)
        self.lines[batch_id] = lines
        self.batches[batch_id] = {
            "id": batch_id, "type": "message_batch", "processing_status": "in_progress",
            "request_counts": {"processing": len(lines), "succeeded": 0, "errored": 0, "canceled": 0, "expired": 0},
            "created_at": _stamp(now), "expires_at": _stamp(now + timedelta(hours=24)), "ended_at": None,
            "archived_at": None, "cancel_initiated_at": None, "results_url": None, "looked": 0}
        return web.json_response(self._shown(batch_id))

    def _shown(self, batch_id: str) -> dict[str, Any]:
        return {k: v for k, v in self.batches[batch_id].items() if k != "looked"}

    async def _list(self, request: web.Request) -> web.Response:
        refused = self._refused(request)
        if refused is not None:
            return refused
        data = [self._shown(b) for b in reversed(self.batches)]  # newest first
        return web.json_response({"data": data, "has_more": False, "first_id": data[0]["id"] if data else None,
                                  "last_id": data[-1]["id"] if data else None})

    def _named(self, request: web.Request, table: dict[str, Any]) -> tuple[Any, web.Response | None]:
        """(what the path's id names in `table`, None), or (None, the answer: a refused key or 404)."""
        refused, found = self._refused(request), table.get(request.match_info["id"])
        if refused is None and found is None:
            refused = web.json_response({"type": "error", "error": {"type": "not_found_error",
                                                                    "message": "no such batch"}}, status=404)
        return found, refused

    async def _retrieve(self, request: web.Request) -> web.Response:
        batch, error = self._named(request, self.batches)
        if error is not None:
            return error
        batch["looked"] += 1
        if batch["processing_status"] == "in_progress" and batch["looked"] > 1 and not self.hold:
            await self._run(batch, api_key_of(request))
        return web.json_response(self._shown(batch["id"]))

    async def _run(self, batch: dict[str, Any], api_key: str | None) -> None:
        counts = batch["request_counts"]
        out = []
        for line in self.lines[batch["id"]]:
            cid, params = line["custom_id"], line["params"]
            text = "\n".join(str(m.get("content")) for m in chat_body(params)["messages"])
            rule = next((r for r in self.expire_rules if r.matches(text)), None)
            if rule is not None:
                rule.hits += 1
                result: dict[str, Any] = {"type": "expired"}
            else:
                status, body, _ = await self._reply(params, api_key)
                result = {"type": "succeeded", "message": body} if status == 200 else {"type": "errored",
                                                                                      "error": body}
                if status == 200:
                    self.answered[cid] += 1
            counts[result["type"]] += 1
            out.append(json.dumps({"custom_id": cid, "result": result}))
        counts["processing"] = 0
        self.results[batch["id"]] = ("\n".join(out) + "\n").encode("utf-8")
        batch.update(processing_status="ended", ended_at=_stamp(datetime.now(timezone.utc)),
                     results_url=f"{self.url}/v1/messages/batches/{batch['id']}/results")

    async def _results(self, request: web.Request) -> web.Response:
        content, error = self._named(request, self.results)
        return error or web.Response(body=content, content_type="application/binary")

    answered_keys = BatchServer.answered_keys  # answers per request key (custom_id less its attempt)
