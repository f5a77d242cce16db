"""The lean aiohttp client leans on a private module of the `openai` SDK
(`openai._vendor.httpx_aiohttp.transport`). An SDK release that moves it must leave `gen` working
on the SDK's own aiohttp client: this makes that import fail for real, in a fresh interpreter, and
sends a real request to the loopback server through what is left."""
from __future__ import annotations

import json
import subprocess
import sys

from tests.chat_server import ChatServer
from tests.helpers import REPO, gen_env

PRIVATE = "openai._vendor.httpx_aiohttp.transport"

# Runs in a fresh interpreter. The SDK loads as usual; then the module is forgotten and a meta-path
# finder refuses it to our transport module, as an SDK release that lays it out differently would
# (the SDK itself still imports it: its own aiohttp client needs it).
SCRIPT = """
import asyncio, importlib.abc, json, sys

import openai

class Moved(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path=None, target=None):
        frame = sys._getframe(1)
        while name == PRIVATE and frame is not None:
            if frame.f_globals.get("__name__") == "generators.backends.openai_transport":
                raise ModuleNotFoundError(f"No module named {name!r}", name=name)
            frame = frame.f_back
        return None

sys.modules.pop(PRIVATE, None)
sys.meta_path.insert(0, Moved())

from generators.backends.base import ChatRequest
from generators.backends.openai_backend import OpenAIBackend
from generators.backends.openai_transport import lean_aiohttp_client

backend = OpenAIBackend(model="teacher", base_url=sys.argv[1], api_key="sk-test", transport="aiohttp",
                        retries=0, timeout_s=10.0)

async def ask():
    try:
        return await backend.complete(ChatRequest.of([{"role": "user", "content": "hello there"}]))
    finally:
        await backend.aclose()

result = asyncio.run(ask())
print(json.dumps({"fallback": lean_aiohttp_client() is openai.DefaultAioHttpClient,
                  "client": type(backend.client._client).__name__, "text": result.text}))
""".replace("PRIVATE", repr(PRIVATE))


def run_without_private_module(base_url: str) -> dict:
    proc = subprocess.run([sys.executable, "-c", SCRIPT, base_url], env=gen_env(), cwd=REPO,
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    return json.loads(proc.stdout.strip().splitlines()[-1])


def test_without_the_private_module_the_sdk_aiohttp_client_answers():
    with ChatServer() as server:
        seen = run_without_private_module(server.base_url)
        assert seen["fallback"] is True
        assert seen["client"] != "LeanAioHttpClient"
        assert seen["text"]
        [request] = server.requests
        assert request["body"]["messages"] == [{"role": "user", "content": "hello there"}]
        assert server.by_status == {200: 1}


def test_the_private_module_is_what_the_lean_client_imports():
    """The hook above blocks the module the lean client really needs: with it in place the lean
    client is built; so the fallback test is not passing by accident."""
    import openai
    from generators.backends.openai_transport import lean_aiohttp_client

    assert lean_aiohttp_client() is not openai.DefaultAioHttpClient
    assert PRIVATE in sys.modules
