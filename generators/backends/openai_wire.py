"""The OpenAI wire format, as pure translation (no I/O, tested on its own): a `ChatRequest` as the
body of POST /chat/completions, a chat completion back as a `ChatResult`, and the lines of a
Batch API input, output and error file."""
from __future__ import annotations

import json
from typing import Any

from generators.backends.base import ChatRequest, ChatResult
from generators.backends.batch_lines import LineFailure
from generators.backends.calls import RETRYABLE_STATUS, body_text

ENDPOINT = "/v1/chat/completions"


def params(request: ChatRequest, model: str, *, cache_key: bool = True) -> dict[str, Any]:
    """The body of one chat-completion request (`cache_key=False`: for a server that refused
    `prompt_cache_key`)."""
    s = request.sampling
    body: dict[str, Any] = {"model": request.model or model, "messages": request.message_dicts()}
    if s.temperature is not None:
        body["temperature"] = s.temperature
    if s.top_p is not None:
        body["top_p"] = s.top_p
    if s.max_tokens is not None:
        body["max_tokens"] = s.max_tokens
    if s.seed is not None:
        body["seed"] = s.seed
    if s.stop:
        body["stop"] = list(s.stop)
    if s.logprobs is not None:
        body["logprobs"] = True
        if s.logprobs > 0:
            body["top_logprobs"] = s.logprobs
    if s.reasoning_effort is not None:
        body["reasoning_effort"] = s.reasoning_effort
    if request.cache_hint and cache_key:  # requests that share a prefix go to the same prompt cache
        body["prompt_cache_key"] = request.cache_hint
    if s.guide is not None and s.guide[0] == "json":
        body["response_format"] = response_format(s.guide[1])
    return body


def response_format(schema_json: str) -> dict[str, Any]:
    """A JSON-schema guide (Sampling.guide) as OpenAI's structured-output `response_format`."""
    schema = json.loads(schema_json)
    return {"type": "json_schema",
            "json_schema": {"name": str(schema.get("title") or "answer"), "schema": schema, "strict": True}}


def is_completion(data: Any) -> bool:
    """A chat completion has a first choice with a message."""
    choices = data.get("choices") if isinstance(data, dict) else None
    return bool(choices) and isinstance(choices, list) and isinstance(choices[0], dict) \
        and isinstance(choices[0].get("message"), dict)


def chat_result(data: dict[str, Any], model: str) -> ChatResult:
    """The ChatResult of a chat completion (is_completion holds); cached prompt tokens are in
    prompt_tokens as OpenAI counts them, and also in cache_read_tokens. A reasoning model's
    thinking (`reasoning_content`, or `reasoning` as some servers name it) goes to `reasoning`,
    its tokens (completion_tokens_details.reasoning_tokens) to reasoning_tokens."""
    choice = data["choices"][0]
    usage = data.get("usage") if isinstance(data.get("usage"), dict) else {}
    details = usage.get("prompt_tokens_details") if isinstance(usage.get("prompt_tokens_details"), dict) else {}
    output = usage.get("completion_tokens_details") if isinstance(usage.get("completion_tokens_details"), dict) else {}
    return ChatResult(text=_content(choice["message"].get("content")), finish=choice.get("finish_reason") or "stop",
                      prompt_tokens=_count(usage, "prompt_tokens"),
                      completion_tokens=_count(usage, "completion_tokens"),
                      cache_read_tokens=_count(details, "cached_tokens"),
                      model=data.get("model") or model, logprobs=_logprobs(choice.get("logprobs")),
                      reasoning=_reasoning(choice["message"]), reasoning_tokens=_count(output, "reasoning_tokens"))


def request_line(cid: str, body: dict[str, Any]) -> bytes:
    """One input-file line: the chat-completion parameters the per-request backend would send."""
    line = {"custom_id": cid, "method": "POST", "url": ENDPOINT, "body": body}
    return (json.dumps(line, ensure_ascii=False, separators=(",", ":")) + "\n").encode("utf-8")


def read_line(obj: dict[str, Any], model: str = "") -> ChatResult | LineFailure:
    """The answer in one output/error-file line, or why there is none."""
    response = obj.get("response") if isinstance(obj.get("response"), dict) else None
    error = obj.get("error") if isinstance(obj.get("error"), dict) else None
    if response is not None:
        status = response.get("status_code")
        status = status if isinstance(status, int) else None
        body = response.get("body")
        if status == 200:
            if isinstance(body, str):
                try:
                    body = json.loads(body)
                except ValueError:
                    pass
            if is_completion(body):
                return chat_result(body, model)
            return LineFailure("unreadable response: the line's body is not a chat completion", 200, body_text(body))
        message = _message(body) or (error or {}).get("message") or "no message"
        retryable = status is None or status in RETRYABLE_STATUS or status >= 500
        return LineFailure(f"HTTP {status}: {str(message)[:300]}", status, body_text(body), retryable)
    if error is not None:
        code, message = error.get("code"), str(error.get("message") or "")[:300]
        if code == "batch_expired":
            return LineFailure(f"expired: the batch's window ended before this line ran ({message})",
                               body=body_text(error))
        return LineFailure(f"failed in the batch: {code or 'error'}: {message}", body=body_text(error))
    return LineFailure("unreadable line: neither a response nor an error", body=body_text(obj))


def _count(usage: dict[str, Any], name: str) -> int:
    value = usage.get(name)
    return value if isinstance(value, int) else 0


def _content(content: Any) -> str:
    """The message text: a string, or the text parts of a list of content parts."""
    if isinstance(content, list):
        return "".join(str(part.get("text") or "") for part in content if isinstance(part, dict))
    return content if isinstance(content, str) else ""


def _reasoning(message: dict[str, Any]) -> str | None:
    """The thinking beside the content, under either name servers give it; None without any."""
    for name in ("reasoning_content", "reasoning"):
        value = message.get(name)
        if isinstance(value, str) and value.strip():
            return value.strip()
    return None


def _logprobs(data: Any) -> list[dict[str, Any]] | None:
    """[{token, logprob, top: {token: logprob}}], or None without logprobs."""
    content = data.get("content") if isinstance(data, dict) else None
    if not content:
        return None
    return [{"token": item.get("token"), "logprob": item.get("logprob"),
             "top": {alt.get("token"): alt.get("logprob") for alt in (item.get("top_logprobs") or [])}}
            for item in content if isinstance(item, dict)]


def _message(body: Any) -> str | None:
    if isinstance(body, dict) and isinstance(body.get("error"), dict):
        return body["error"].get("message")
    return None
