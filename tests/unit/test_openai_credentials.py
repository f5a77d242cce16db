"""Credentials and query parameters in --base-url: checked, sent, and never shown.

Through the real openai client (both transports) against the loopback server."""
from __future__ import annotations

import asyncio
import base64
import socket

import pytest

from generators.backends.base import BackendSettings, ChatRequest, RequestFailed
from generators.backends.openai_backend import OpenAIBackend
from generators.backends.urls import check_base_url, redact_url, split_credentials
from generators.core.errors import FatalError, UsageError
from tests.chat_server import ChatServer

TRANSPORTS = ["aiohttp", "httpx"]
PASSWORD = "p@ss:w0rd/secret"  # '@', ':' and '/' all need care
QUERY_SECRET = "sk-query-secret-123"


def with_credentials(url: str, user: str = "alice", password: str = PASSWORD, query: str = "") -> str:
    encoded = password.replace("%", "%25").replace("/", "%2F").replace(":", "%3A")  # '@' stays raw
    return url.replace("http://", f"http://{user}:{encoded}@") + query


def ask(backend: OpenAIBackend, text: str = "hello") -> object:
    async def go():
        try:
            return await backend.complete(ChatRequest.of([{"role": "user", "content": text}]))
        finally:
            await backend.aclose()
    return asyncio.run(go())


def backend(url: str, **kw) -> OpenAIBackend:
    return OpenAIBackend(model="teacher", base_url=url, api_key="sk-test", retries=1, timeout_s=5.0,
                         backoff_initial_s=0.01, backoff_max_s=0.02, **kw)


def basic(user: str, password: str) -> str:
    return "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()


# -- urls.py ----------------------------------------------------------------------------------


def test_redact_url_drops_userinfo_and_every_query_value():
    assert redact_url("http://u:p@h:8000/v1?api-key=secret&x=1") == "http://h:8000/v1?api-key=REDACTED&x=REDACTED"
    assert redact_url("https://user:p@ss@w@rd@example.com/v1") == "https://example.com/v1"
    assert redact_url("https://api.openai.com/v1") == "https://api.openai.com/v1"
    assert redact_url("http://h/v1?token") == "http://h/v1?REDACTED"
    assert redact_url("user:pw@host:8000/v1") == "host:8000/v1"  # no scheme: still no password
    assert redact_url(None) is None


def test_split_credentials_decodes_and_keeps_the_query():
    url = "http://us%40er:p@ss%3Aw%2Frd@127.0.0.1:8000/v1?api-version=2024-06-01"
    assert split_credentials(url) == ("http://127.0.0.1:8000/v1?api-version=2024-06-01", ("us@er", "p@ss:w/rd"))
    assert split_credentials("http://u@h/v1") == ("http://h/v1", ("u", ""))
    assert split_credentials("http://h/v1") == ("http://h/v1", None)


@pytest.mark.parametrize("url", ["alice:hunter2@localhost:8000/v1", "ftp://alice:hunter2@h/v1", "http:///v1",
                                 "http://alice:hunter2@h:port/v1", "http://[::1/v1"])
def test_check_base_url_refuses_in_one_line_without_the_password(url):
    with pytest.raises(UsageError) as info:
        check_base_url(url)
    assert "hunter2" not in info.value.message and "\n" not in info.value.message
    assert info.value.exit_code == 2
    with pytest.raises(UsageError):
        OpenAIBackend(model="m", base_url=url)


def test_check_base_url_accepts_http_and_https():
    for url in ("http://127.0.0.1:8000/v1", "https://u:p@example.com/v1?api-version=1", "HTTPS://example.com"):
        check_base_url(url)


# -- the backend -----------------------------------------------------------------------------


@pytest.mark.parametrize("transport", TRANSPORTS)
def test_userinfo_is_sent_as_basic_auth_on_every_request(transport):
    with ChatServer(rules=[{"status": 503, "times": 1}]) as server:
        b = backend(with_credentials(server.base_url), transport=transport)
        assert ask(b).text and server.by_status == {503: 1, 200: 1}
        assert server.authorizations == [basic("alice", PASSWORD)] * 2  # the retry too; no Bearer
        assert b.endpoint == server.base_url


@pytest.mark.parametrize("transport", TRANSPORTS)
def test_base_url_query_reaches_the_server(transport):
    with ChatServer() as server:
        url = with_credentials(server.base_url, query=f"?api-version=2024-06-01&api-key={QUERY_SECRET}")
        b = backend(url, transport=transport)
        assert ask(b).text
        assert server.queries == [f"api-version=2024-06-01&api-key={QUERY_SECRET}"]
        assert server.authorizations == [basic("alice", PASSWORD)]
        assert b.endpoint == server.base_url + "?api-version=REDACTED&api-key=REDACTED"


def test_without_userinfo_the_api_key_is_the_bearer():
    with ChatServer() as server:
        b = backend(server.base_url + "?api-version=1")
        assert ask(b).text and server.authorizations == ["Bearer sk-test"] and server.queries == ["api-version=1"]


def test_endpoint_defaults_to_openai(monkeypatch):
    monkeypatch.delenv("OPENAI_BASE_URL", raising=False)
    assert OpenAIBackend(model="m", api_key="k").endpoint == "https://api.openai.com/v1"
    monkeypatch.setenv("OPENAI_BASE_URL", "http://bob:hunter2@127.0.0.1:9/v1")
    assert OpenAIBackend(model="m", api_key="k").endpoint == "http://127.0.0.1:9/v1"


def _secret_free(message: str | None) -> None:
    for secret in (PASSWORD, "p@ss", "w0rd", QUERY_SECRET):
        assert secret not in (message or "")


@pytest.mark.parametrize("transport", TRANSPORTS)
def test_unreachable_server_message_names_the_redacted_url(transport):
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    url = with_credentials(f"http://127.0.0.1:{port}/v1", query=f"?api-key={QUERY_SECRET}")
    with pytest.raises(FatalError, match="cannot reach the server") as info:
        ask(backend(url, transport=transport))
    assert f"http://127.0.0.1:{port}/v1?api-key=REDACTED" in info.value.message
    _secret_free(info.value.message)


@pytest.mark.parametrize("transport", TRANSPORTS)
def test_no_secret_in_failures_even_when_the_server_quotes_them(transport):
    echo = {"message": f"no route for /v1/chat/completions?api-key={QUERY_SECRET} (user alice:{PASSWORD})"}
    with ChatServer(rules=[{"status": 404, "error": echo}]) as server:
        url = with_credentials(server.base_url, query=f"?api-key={QUERY_SECRET}")
        with pytest.raises(RequestFailed) as info:
            ask(backend(url, transport=transport))
    assert info.value.status == 404 and "REDACTED" in info.value.reason
    for text in (str(info.value), info.value.reason, info.value.last_response):
        _secret_free(text)


def test_refused_credentials_stop_the_run_without_showing_them():
    with ChatServer(api_key="sk-right") as server:  # any non-Bearer header gets 401
        with pytest.raises(FatalError, match="refused the credentials") as info:
            ask(backend(with_credentials(server.base_url, query=f"?api-key={QUERY_SECRET}")))
    assert "check the user and password in --base-url" in info.value.message
    _secret_free(info.value.message)


def test_check_and_create_from_settings(monkeypatch):
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    with pytest.raises(UsageError, match="--model is required"):
        OpenAIBackend.check(BackendSettings(base_url="http://127.0.0.1:9/v1"))
    with pytest.raises(UsageError, match="needs --base-url or OPENAI_API_KEY"):
        OpenAIBackend.check(BackendSettings(model="m"))
    with pytest.raises(UsageError) as info:
        OpenAIBackend.check(BackendSettings(model="m", base_url="ftp://alice:hunter2@h/v1"))
    assert "hunter2" not in info.value.message
    made = OpenAIBackend.create(BackendSettings(model="m", base_url="http://a:b@127.0.0.1:9/v1",
                                                max_retry_after=5.0, retries=2))
    assert (made.max_retry_after, made.retries, made.endpoint) == (5.0, 2, "http://127.0.0.1:9/v1")
