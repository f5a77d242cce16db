"""A leaner aiohttp transport for the `openai` client: the SDK builds every request as always
(URL, auth, headers, query, timeout) and this sends it on the SDK's own aiohttp session, reading
the body in one piece. It skips httpx2's auth, redirect and streaming layers, which cost more CPU
per request than aiohttp itself at high concurrency (docs/throughput.md); anything unusual takes
the SDK's own path."""
from __future__ import annotations

import functools
import time
from datetime import timedelta
from typing import Any

import httpx2
import openai


@functools.lru_cache(maxsize=None)
def lean_aiohttp_client() -> type[httpx2.AsyncClient]:
    """The SDK's aiohttp client with a shorter path (below), or the SDK's own where this SDK
    version lays its aiohttp transport out differently. Built once, on first use."""
    try:
        from aiohttp import ClientSession, ClientTimeout
        from openai._vendor.httpx_aiohttp.transport import AiohttpTransport, map_aiohttp_exceptions
    except ImportError:
        return openai.DefaultAioHttpClient

    class LeanAioHttpClient(openai.DefaultAioHttpClient):  # type: ignore[misc, valid-type]
        """The SDK builds each request as always (URL, auth, headers, query, timeout); this
        sends it on the SDK's own aiohttp session and reads the body in one piece, skipping
        httpx2's auth, redirect and streaming layers, which cost more CPU than aiohttp itself
        (docs/throughput.md). Anything unusual (streaming, a proxy, request-level auth, a query)
        takes the SDK's full path, and so does a redirect (the request is sent again there)."""

        _urls: dict[str, httpx2.URL] = {}  # parsed once: the SDK sends every request to one URL (a few)

        def build_request(self, method: str, url: Any, *, content: Any = None, params: Any = None,
                          headers: Any = None, timeout: Any = httpx2.USE_CLIENT_DEFAULT, extensions: Any = None,
                          **other: Any) -> httpx2.Request:
            """httpx2's merge of the client's URL, headers, cookies and query into the request,
            done for the one case the SDK sends here (an absolute URL, a list of headers, a
            bytes body, no cookies, no query); anything else takes httpx2's own path."""
            target = self._urls.get(url) if isinstance(url, str) else None
            if target is None and isinstance(url, str):
                target = httpx2.URL(url)
                if target.is_absolute_url and len(self._urls) < 64:
                    self._urls[url] = target
            if (target is None or not target.is_absolute_url or params or self.params or self.cookies
                    or extensions or not isinstance(headers, list) or not isinstance(content, (bytes, type(None)))
                    or any(value is not None for value in other.values())):
                return super().build_request(method, url, content=content, params=params, headers=headers,
                                             timeout=timeout, extensions=extensions, **other)
            given = {key.lower() for key, _ in headers}
            merged = [(key, value) for key, value in self._default_headers() if key.lower() not in given]
            merged += headers
            limits = self.timeout if timeout is httpx2.USE_CLIENT_DEFAULT else httpx2.Timeout(timeout)
            return httpx2.Request(method, target, content=content, headers=merged,
                                  extensions={"timeout": limits.as_dict()})

        def _default_headers(self) -> list[tuple[str, str]]:
            """The client's own headers as httpx2 would merge them (names as written)."""
            return [(key.decode("latin-1"), value.decode("latin-1")) for key, value in self.headers.raw]

        async def send(self, request: httpx2.Request, *, stream: bool = False, **kwargs: Any) -> httpx2.Response:
            transport = self._transport_for_url(request.url)
            if (stream or kwargs.get("auth") is not None or transport is not self._transport
                    or type(transport) is not AiohttpTransport or transport.proxy is not None):
                return await super().send(request, stream=stream, **kwargs)
            if not isinstance(transport.client, ClientSession):
                transport.client = transport.get_client()
            timeout = request.extensions.get("timeout") or {}
            started = time.perf_counter()
            with map_aiohttp_exceptions():  # the same httpx2 errors as the SDK's transport raises
                async with transport.client.request(
                        request.method, str(request.url), headers=request.headers, data=request.content or None,
                        allow_redirects=False, auto_decompress=False, compress=False,
                        server_hostname=request.extensions.get("sni_hostname"),
                        timeout=ClientTimeout(sock_connect=timeout.get("connect"), sock_read=timeout.get("read"),
                                              connect=timeout.get("pool"))) as answer:
                    body = await answer.read()
            response = httpx2.Response(answer.status, headers=answer.raw_headers, content=body, request=request,
                                       extensions={"http_version": b"HTTP/1.1",
                                                   "reason_phrase": (answer.reason or "").encode()})
            response.default_encoding = self._default_encoding
            response.elapsed = timedelta(seconds=time.perf_counter() - started)
            if "set-cookie" in response.headers:
                self.cookies.extract_cookies(response)
            follow = kwargs.get("follow_redirects")
            if (follow if isinstance(follow, bool) else self.follow_redirects) and response.has_redirect_location:
                return await super().send(request, stream=stream, **kwargs)
            return response

    return LeanAioHttpClient
