"""The loopback ChatServer plus the OpenAI Files and Batches endpoints, for --batch tests.

Every batch line is answered by ChatServer's own chat-completion logic (rules, reply, latency,
logprobs, api_key), so a rule such as ``{"match": "x", "status": 500, "times": 2}`` fails batch
lines exactly as it fails direct requests. Batches move on only when they are looked at (no
clocks): created ``validating``, the first retrieve shows ``in_progress``, the next one runs the
lines and shows the end status. ``hold = True`` keeps them ``in_progress`` (a kill while polling).

    with BatchServer(expire=[{"match": "r3", "times": 1}]) as server:
        ... gen --batch --base-url server.base_url ...
        server.uploads        # custom_ids of every uploaded batch file, in order
        server.answered       # Counter: custom_id -> times answered with 200
        server.batches        # id -> the batch object as the API shows it

Server-wide: ``expire`` (rules ``{"match", "times"}``: matching lines are not run and end in the
error file as ``batch_expired``, the batch ends ``expired``), ``fail_batches`` (the first N
batches end ``failed`` with ``token_limit_exceeded``, no line run), ``hold``, ``api_failures``
(rules ``{"method", "path", "status", "times"}``: the first ``times`` Files/Batches calls whose
path starts with ``path`` are answered ``status``, e.g. a 503 on an upload or a retrieve).
"""
from __future__ import annotations

import json
import time
from collections import Counter
from typing import Any, Iterable, Mapping

from aiohttp import web

from tests.chat_server import ChatServer, Rule, messages_text


class _LineRequest:
    """What ChatServer._answer reads from a request, for one batch line."""

    def __init__(self, body: bytes, authorization: str | None, query: str | None) -> None:
        self._body = body
        self.headers = {"Authorization": authorization} if authorization else {}
        self.query_string = query or ""

    async def read(self) -> bytes:
        return self._body


class BatchServer(ChatServer):
    def __init__(self, *, expire: Iterable[Mapping[str, Any]] | None = None, fail_batches: int = 0,
                 hold: bool = False, api_failures: Iterable[Mapping[str, Any]] | None = None,
                 **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.expire_rules = [Rule.coerce(r) for r in (expire or [])]
        self.fail_batches = fail_batches
        self.hold = hold
        self.api_failures = [dict(r) for r in (api_failures or [])]

    def reset(self) -> None:
        super().reset()
        self.files: dict[str, dict[str, Any]] = {}
        self.contents: dict[str, bytes] = {}
        self.batches: dict[str, dict[str, Any]] = {}
        self.uploads: list[list[str]] = []
        self.answered: Counter[str] = Counter()
        self.lines_run: Counter[str] = Counter()
        self.api_calls: list[dict[str, Any]] = []  # {"method", "path", "authorization", "query"}
        self.retrieves = 0
        self.cancelled = 0

    def make_app(self) -> web.Application:
        app = super().make_app()
        app.router.add_post("/v1/files", self._upload)
        app.router.add_get("/v1/files/{id}", self._file)
        app.router.add_get("/v1/files/{id}/content", self._content)
        app.router.add_post("/v1/batches", self._create)
        app.router.add_get("/v1/batches", self._list)
        app.router.add_get("/v1/batches/{id}", self._retrieve)
        app.router.add_post("/v1/batches/{id}/cancel", self._cancel)
        return app

    # -- helpers ------------------------------------------------------------------------------
    def _refused(self, request: web.Request) -> web.Response | None:
        auth = request.headers.get("Authorization")
        self.api_calls.append({"method": request.method, "path": request.path, "authorization": auth,
                               "query": request.query_string or None})
        if self.api_key is not None and auth != f"Bearer {self.api_key}":
            return self._error(401)
        for rule in self.api_failures:
            if rule.get("times", 1) > 0 and request.path.startswith(rule["path"]) \
                    and rule.get("method", request.method) == request.method:
                rule["times"] = rule.get("times", 1) - 1
                return self._error(int(rule.get("status", 503)))
        return None

    def _new_id(self, prefix: str) -> str:
        self._ids += 1
        return f"{prefix}-{self._ids:06d}"

    def _store(self, content: bytes, purpose: str, filename: str) -> dict[str, Any]:
        file_id = self._new_id("file")
        obj = {"id": file_id, "object": "file", "bytes": len(content), "created_at": int(time.time()),
               "filename": filename, "purpose": purpose, "status": "processed"}
        self.files[file_id], self.contents[file_id] = obj, content
        return obj

    # -- files --------------------------------------------------------------------------------
    async def _upload(self, request: web.Request) -> web.Response:
        refused = self._refused(request)
        if refused is not None:
            return refused
        form = await request.post()
        upload, purpose = form.get("file"), form.get("purpose")
        if upload is None or not hasattr(upload, "file") or purpose != "batch":
            return self._error(400, message="expected a file and purpose=batch")
        content = upload.file.read()
        try:
            ids = [json.loads(line)["custom_id"] for line in content.decode("utf-8").splitlines() if line.strip()]
        except (ValueError, KeyError):
            return self._error(400, message="not a batch input file (JSONL with custom_id)")
        if len(ids) != len(set(ids)):
            return self._error(400, message="duplicate custom_id in the file")
        self.uploads.append(ids)
        return web.json_response(self._store(content, "batch", upload.filename or "input.jsonl"))

    async def _file(self, request: web.Request) -> web.Response:
        refused = self._refused(request)
        if refused is not None:
            return refused
        obj = self.files.get(request.match_info["id"])
        return web.json_response(obj) if obj else self._error(404, message="No such file.")

    async def _content(self, request: web.Request) -> web.Response:
        refused = self._refused(request)
        if refused is not None:
            return refused
        content = self.contents.get(request.match_info["id"])
        if content is None:
            return self._error(404, message="No such file.")
        return web.Response(body=content, content_type="application/octet-stream")

    # -- batches ------------------------------------------------------------------------------
    async def _create(self, request: web.Request) -> web.Response:
        refused = self._refused(request)
        if refused is not None:
            return refused
        body = await request.json()
        if body.get("input_file_id") not in self.files:
            return self._error(400, message="input_file_id: no such file")
        if body.get("endpoint") != "/v1/chat/completions" or body.get("completion_window") != "24h":
            return self._error(400, message="unsupported endpoint or completion_window")
        batch_id = self._new_id("batch")
        self.batches[batch_id] = {
            "id": batch_id, "object": "batch", "endpoint": body["endpoint"], "errors": None,
            "input_file_id": body["input_file_id"], "completion_window": "24h", "status": "validating",
            "output_file_id": None, "error_file_id": None, "created_at": int(time.time()),
            "request_counts": {"total": 0, "completed": 0, "failed": 0}, "metadata": body.get("metadata"),
        }
        return web.json_response(self.batches[batch_id])

    async def _list(self, request: web.Request) -> web.Response:
        refused = self._refused(request)
        if refused is not None:
            return refused
        data = list(reversed(self.batches.values()))  # newest first, as the API lists them
        return web.json_response({"object": "list", "data": data, "has_more": False,
                                  "first_id": data[0]["id"] if data else None,
                                  "last_id": data[-1]["id"] if data else None})

    def _batch(self, request: web.Request) -> tuple[dict[str, Any] | None, web.Response | None]:
        """(the batch the path names, None) or (None, the error answer: refused key or 404)."""
        refused = self._refused(request)
        if refused is not None:
            return None, refused
        batch = self.batches.get(request.match_info["id"])
        if batch is None:
            return None, self._error(404, message="No such batch.")
        return batch, None

    async def _retrieve(self, request: web.Request) -> web.Response:
        batch, error = self._batch(request)
        if batch is None:
            return error
        self.retrieves += 1
        if batch["status"] == "validating":
            batch["status"] = "in_progress"
            batch["request_counts"]["total"] = len(self._lines(batch))
        elif batch["status"] == "in_progress" and not self.hold:
            await self._run(batch, request)
        return web.json_response(batch)

    async def _cancel(self, request: web.Request) -> web.Response:
        batch, error = self._batch(request)
        if batch is None:
            return error
        self.cancelled += 1
        batch["status"] = "cancelled"
        return web.json_response(batch)

    def _lines(self, batch: dict[str, Any]) -> list[dict[str, Any]]:
        content = self.contents[batch["input_file_id"]].decode("utf-8")
        return [json.loads(line) for line in content.splitlines() if line.strip()]

    async def _run(self, batch: dict[str, Any], request: web.Request) -> None:
        """Run every line through the chat logic; write the output and error files."""
        lines = self._lines(batch)
        counts = batch["request_counts"]
        counts["total"] = len(lines)
        if self.fail_batches > 0:
            self.fail_batches -= 1
            batch["status"] = "failed"
            batch["errors"] = {"object": "list", "data": [
                {"code": "token_limit_exceeded", "message": "Enqueued token limit reached.", "param": None,
                 "line": None}]}
            return
        output: list[str] = []
        errors: list[str] = []
        expired = False
        auth, query = request.headers.get("Authorization"), request.query_string or None
        for line in lines:
            cid, body = line["custom_id"], line.get("body") or {}
            text = messages_text(body)
            rule = next((r for r in self.expire_rules if r.matches(text)), None)
            if rule is not None:
                rule.hits += 1
                expired = True
                errors.append(json.dumps({"id": self._new_id("batch_req"), "custom_id": cid, "response": None,
                                          "error": {"code": "batch_expired", "message": "This request could not "
                                                    "be executed before the completion window expired."}}))
                counts["failed"] += 1
                continue
            self.lines_run[cid] += 1
            self.requests_total += 1
            resp = await self._answer(_LineRequest(json.dumps(body).encode("utf-8"), auth, query))
            status = 500 if resp is None else resp.status
            self.by_status[status] = self.by_status.get(status, 0) + 1
            text_body = "" if resp is None else resp.text or ""
            try:
                parsed: Any = json.loads(text_body)
            except ValueError:
                parsed = text_body
            out = {"id": self._new_id("batch_req"), "custom_id": cid,
                   "response": {"status_code": status, "request_id": f"req_{self._ids:06d}", "body": parsed},
                   "error": None}
            if status == 200:
                self.answered[cid] += 1
                output.append(json.dumps(out))
                counts["completed"] += 1
            else:
                errors.append(json.dumps(out))
                counts["failed"] += 1
        if output:
            batch["output_file_id"] = self._store(("\n".join(output) + "\n").encode(), "batch_output",
                                                  "output.jsonl")["id"]
        if errors:
            batch["error_file_id"] = self._store(("\n".join(errors) + "\n").encode(), "batch_output",
                                                 "errors.jsonl")["id"]
        batch["status"] = "expired" if expired else "completed"

    # -- what tests ask ----------------------------------------------------------------------
    def answered_keys(self) -> Counter[str]:
        """Answers per request key (the custom_id without its attempt)."""
        keys: Counter[str] = Counter()
        for cid, n in self.answered.items():
            keys[cid.rpartition("-")[0]] += n
        return keys
