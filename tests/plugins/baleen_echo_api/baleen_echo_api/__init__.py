"""`--backend echo-api`: a provider as one mapping module, the way docs/backends.md shows it.

The "Echo API" is a small JSON API (POST /generate {"model", "prompt", "max_words"} ->
{"output", "stop", "tokens_in", "tokens_out"}, errors as {"error": "..."} with the HTTP status).
This module only maps a ChatRequest to that body and the answer back to a ChatResult, and says
what a failed call means; retries, Retry-After, --concurrency auto, rate limits, usage booking
and the cache key come from baleen's HTTPBackend.
"""
from __future__ import annotations

from typing import Any

import httpx2

from generators.backends.base import Capabilities, ChatRequest, ChatResult
from generators.backends.calls import RETRY, Answer, CallFailed, status_failure
from generators.backends.http import HTTPBackend


class EchoAPIBackend(HTTPBackend):
    name = "echo-api"
    capabilities = Capabilities(per_request_model=True, adaptive=True)
    api_key_env = "ECHO_API_KEY"
    base_url_env = "ECHO_API_URL"

    def make_client(self, url: str, api_key: str | None, *, headers: dict[str, str], query: dict[str, str],
                    connections: int, timeout_s: float) -> httpx2.AsyncClient:
        auth = {"Authorization": f"Bearer {api_key}"} if api_key else {}
        return httpx2.AsyncClient(base_url=url, headers={**auth, **headers}, params=query, timeout=timeout_s,
                                  limits=httpx2.Limits(max_connections=connections))

    async def close_client(self) -> None:
        await self.client.aclose()

    async def send(self, request: ChatRequest) -> Answer:
        prompt = "\n".join(f"{role}: {content}" for role, content in request.messages)
        body: dict[str, Any] = {"model": request.model or self.model, "prompt": prompt}
        if request.sampling.max_tokens:
            body["max_words"] = request.sampling.max_tokens
        response = await self.client.post("/generate", json=body)
        response.raise_for_status()
        data = response.json()
        result = ChatResult(text=data["output"], finish="length" if data.get("stop") == "limit" else "stop",
                            prompt_tokens=data.get("tokens_in", 0), completion_tokens=data.get("tokens_out", 0),
                            model=body["model"])
        return Answer(result, response.headers)

    def classify(self, exc: BaseException) -> CallFailed | None:
        if isinstance(exc, httpx2.HTTPStatusError):
            answer = exc.response
            return status_failure(answer.status_code, answer.text, answer.headers, answer.text)
        if isinstance(exc, httpx2.TimeoutException):
            return CallFailed(RETRY, "request timed out")
        if isinstance(exc, httpx2.TransportError):
            return CallFailed(RETRY, f"connection failed: {exc}", connection=True)
        if isinstance(exc, (ValueError, KeyError)):
            return CallFailed(RETRY, f"unreadable response: {exc}")
        return None
