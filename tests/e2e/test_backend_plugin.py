"""A backend plugin gets the HTTP base's policy for free: a package from tests/plugins, installed
with pip, declares `--backend echo-api` in the `baleen.backends` entry-point group and maps only
request and answer for a small JSON API. The real `gen` CLI then runs self-chat through it against
a loopback server, with 429s (Retry-After), 503s, `--concurrency auto` and the usage booked."""
from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from aiohttp import web

from tests.anthropic_server import ERROR_TYPES
from tests.chat_server import ChatServer, Rule
from tests.e2e.test_selfchat_cli import QUESTIONS
from tests.helpers import REPO, assert_one_line_error, gen_env, read_jsonl, run_gen, write_seeds

PLUGIN = REPO / "tests" / "plugins" / "baleen_echo_api"


class _Inner:
    """A /generate body as the chat request ChatServer answers."""

    def __init__(self, prompt: str, api_key: str | None) -> None:
        self.body = json.dumps({"messages": [{"role": "user", "content": prompt}]}).encode()
        self.headers = {"Authorization": f"Bearer {api_key}"} if api_key else {}
        self.query_string = ""

    async def read(self) -> bytes:
        return self.body


class EchoServer(ChatServer):
    """The Echo API: POST /generate, answered by ChatServer's rules and reply."""

    def make_app(self) -> web.Application:
        app = super().make_app()
        app.router.add_post("/generate", self._generate)
        return app

    async def _generate(self, request: web.Request) -> web.Response:
        self.requests_total += 1
        body = await request.json()
        api_key = (request.headers.get("Authorization") or "").removeprefix("Bearer ") or None
        answer = await self._answer(_Inner(body["prompt"], api_key))
        self.by_status[answer.status] = self.by_status.get(answer.status, 0) + 1
        data = json.loads(answer.text)
        if answer.status != 200:
            headers = {k: v for k, v in answer.headers.items() if k.lower() == "retry-after"}
            return web.json_response({"error": ERROR_TYPES.get(answer.status, "error")}, status=answer.status,
                                     headers=headers)
        usage = data["usage"]
        return web.json_response({"output": data["choices"][0]["message"]["content"], "stop": "end",
                                  "tokens_in": usage["prompt_tokens"], "tokens_out": usage["completion_tokens"]})


@pytest.fixture(scope="module")
def plugin_path(tmp_path_factory) -> Path:
    """The plugin, pip-installed (no network, no dependencies) into a folder of its own."""
    work = tmp_path_factory.mktemp("plugin")
    source = shutil.copytree(PLUGIN, work / "source")  # the build writes next to its sources
    subprocess.run([sys.executable, "-m", "pip", "install", "--quiet", "--no-deps", "--no-build-isolation",
                    "--no-index", "--target", str(work / "site"), str(source)], check=True, capture_output=True)
    assert list((work / "site").glob("baleen_echo_api-*.dist-info/entry_points.txt"))
    return work / "site"


def test_a_plugin_backend_gets_retries_retry_after_adaptive_concurrency_and_usage(tmp_path, plugin_path):
    seeds = write_seeds(tmp_path / "seeds.jsonl", QUESTIONS[:4])
    env = {**gen_env(ECHO_API_KEY="echo-secret"), "PYTHONPATH": f"{plugin_path}:{REPO}"}
    rules = [{"match": "bicycle", "status": 429, "retry_after": 0.1, "times": 2},
             {"match": "compass", "status": 503, "times": 1}]
    with EchoServer(rules=rules, api_key="echo-secret") as server:
        out = tmp_path / "out"
        proc = run_gen("selfchat", "--seeds", seeds, "--field", "question", "--backend", "echo-api", "--base-url",
                       server.url, "--model", "echo-model", "--concurrency", "auto", "--out", out, "--cache-dir",
                       tmp_path / "cache", "--no-progress", env=env)
        assert proc.returncode == 0, proc.stderr
        assert len(read_jsonl(out / "data.jsonl")) == 4
        assert server.by_status == {429: 2, 503: 1, 200: 4}
        manifest = json.loads((out / "manifest.json").read_text("utf-8"))
        assert manifest["usage"]["requests"] == 4 and manifest["usage"]["prompt_tokens"] > 0
        assert manifest["backend"]["echo-api"]["concurrency"]["cuts"] >= 1  # the 429s cut the adaptive level

        server.add_rule(Rule(status=429, retry_after=7200))
        stopped = run_gen("selfchat", "--seeds", seeds, "--field", "question", "--backend", "echo-api", "--base-url",
                          server.url, "--model", "echo-model", "--out", tmp_path / "later", "--no-cache",
                          "--max-retry-after", "60", "--no-progress", env=env)
        assert_one_line_error(stopped, 1, "asked to wait 7200 s", "--max-retry-after")
