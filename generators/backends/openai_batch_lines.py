"""Batch file lines: what one request becomes in a Batch API input file, and what one line of an
output or error file means for the request that sent it.

Pure translation, no I/O, so the format is tested on its own (openai_batch.py sends and reads).
A line's custom_id is the request's response-cache key (its first 48 hex digits: some
OpenAI-compatible batch services cap ids at 64 characters) plus the attempt number. The key is the
same on every rerun for the same request, so a rerun finds its requests in the batches an earlier
session submitted; the attempt keeps a resubmitted line's id unique.
"""
from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any, Sequence

from generators.backends.base import ChatResult
from generators.backends.openai_backend import BODY_CHARS, RETRYABLE_STATUS

ENDPOINT = "/v1/chat/completions"
MAX_FILE_BYTES = 200_000_000  # the Batch API takes input files up to 200 MB
KEY_CHARS = 48  # of the cache key's 64 hex digits: 192 bits, ids of at most 64 characters


def line_key(cache_key: str) -> str:
    """The part of a request's cache key its batch lines are named by."""
    return cache_key[:KEY_CHARS]


def custom_id(key: str, attempt: int) -> str:
    return f"{key}-{attempt}"


def split_custom_id(value: str) -> tuple[str, int] | None:
    """(key, attempt) of one of our custom_ids; None for anything else."""
    key, sep, attempt = value.rpartition("-")
    if not sep or not key or not attempt.isdigit():
        return None
    return key, int(attempt)


def request_line(cid: str, params: dict[str, Any]) -> bytes:
    """One input-file line: the chat-completion parameters the per-request backend would send."""
    line = {"custom_id": cid, "method": "POST", "url": ENDPOINT, "body": params}
    return (json.dumps(line, ensure_ascii=False, separators=(",", ":")) + "\n").encode("utf-8")


def pack(sizes: Sequence[int], max_lines: int, max_bytes: int = MAX_FILE_BYTES) -> tuple[list[list[int]], list[int]]:
    """Split lines (by index, in order) into files of at most `max_lines` lines and `max_bytes`
    bytes; returns (the files, the lines too big for any file)."""
    files: list[list[int]] = []
    oversize: list[int] = []
    current: list[int] = []
    used = 0
    for index, size in enumerate(sizes):
        if size > max_bytes:
            oversize.append(index)
            continue
        if current and (len(current) >= max_lines or used + size > max_bytes):
            files.append(current)
            current, used = [], 0
        current.append(index)
        used += size
    if current:
        files.append(current)
    return files, oversize


@dataclass(frozen=True)
class LineFailure:
    """A line that brought no answer; `retryable` lines go into a new batch (failed, expired)."""

    reason: str
    status: int | None = None
    body: str | None = None
    retryable: bool = True


def missing(status: str, reason: str | None = None) -> LineFailure:
    """A line in neither the output nor the error file of a batch that ended `status`."""
    why = f" ({reason})" if reason else ""
    return LineFailure(f"no answer: the batch ended {status}{why}")


def read_line(obj: dict[str, Any], model: str = "") -> ChatResult | LineFailure:
    """The answer in one output/error-file line, or why there is none."""
    response = obj.get("response") if isinstance(obj.get("response"), dict) else None
    error = obj.get("error") if isinstance(obj.get("error"), dict) else None
    if response is not None:
        status = response.get("status_code")
        status = status if isinstance(status, int) else None
        body = response.get("body")
        if status == 200:
            result = _result(body, model)
            if result is not None:
                return result
            return LineFailure("unreadable response: the line's body is not a chat completion", 200, _text(body))
        message = _message(body) or (error or {}).get("message") or "no message"
        retryable = status is None or status in RETRYABLE_STATUS or status >= 500
        return LineFailure(f"HTTP {status}: {str(message)[:300]}", status, _text(body), retryable)
    if error is not None:
        code, message = error.get("code"), str(error.get("message") or "")[:300]
        if code == "batch_expired":
            return LineFailure(f"expired: the batch's window ended before this line ran ({message})",
                               body=_text(error))
        return LineFailure(f"failed in the batch: {code or 'error'}: {message}", body=_text(error))
    return LineFailure("unreadable line: neither a response nor an error", body=_text(obj))


def _result(body: Any, model: str) -> ChatResult | None:
    if isinstance(body, str):
        try:
            body = json.loads(body)
        except ValueError:
            return None
    if not isinstance(body, dict):
        return None
    choices = body.get("choices")
    if not isinstance(choices, list) or not choices or not isinstance(choices[0], dict):
        return None
    choice = choices[0]
    message = choice.get("message")
    if not isinstance(message, dict):
        return None
    usage = body.get("usage") if isinstance(body.get("usage"), dict) else {}
    return ChatResult(text=_content(message.get("content")), finish=choice.get("finish_reason") or "stop",
                      prompt_tokens=int(usage.get("prompt_tokens") or 0),
                      completion_tokens=int(usage.get("completion_tokens") or 0),
                      model=body.get("model") or model, logprobs=_logprobs(choice.get("logprobs")))


def _content(content: Any) -> str:
    """The message text: a string, or the text parts of a list of content parts."""
    if isinstance(content, list):
        return "".join(str(part.get("text") or "") for part in content if isinstance(part, dict))
    return content if isinstance(content, str) else ""


def _logprobs(data: Any) -> list[dict[str, Any]] | None:
    """The same shape the per-request backend returns: [{token, logprob, top: {token: logprob}}]."""
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


def _text(value: Any) -> str | None:
    if value is None:
        return None
    text = value if isinstance(value, str) else json.dumps(value, ensure_ascii=False)
    return text[:BODY_CHARS]
