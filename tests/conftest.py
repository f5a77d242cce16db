"""The shared fakes every test folder may ask for.

  api_server      a factory: api_server(**ChatServer kwargs) starts a real OpenAI-compatible
                  server on 127.0.0.1 (tests/chat_server.py) and stops it after the test
  api_env         the environment for `gen` in a subprocess, with a (fake) API key
  tiny_model_dir  a random tiny Llama with a trained BPE tokenizer and a chat template, built once
                  per session (tests/tiny_model.py); read it, never write into it

Layout: tests/unit checks one module at a time; tests/e2e runs `gen` (or a whole stage) for real.
Markers: `slow` runs a real model (tiny or SmolLM2); `vllm` needs vLLM and runs in .venv-vllm.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any, Callable, Iterator

import pytest

from tests import tiny_model
from tests.chat_server import ChatServer
from tests.helpers import gen_env


@pytest.fixture
def api_server() -> Iterator[Callable[..., ChatServer]]:
    started: list[ChatServer] = []

    def start(**kwargs: Any) -> ChatServer:
        server = ChatServer(**kwargs).start()
        started.append(server)
        return server

    yield start
    for server in started:
        server.stop()


@pytest.fixture
def api_env() -> dict[str, str]:
    return gen_env(OPENAI_API_KEY="k")


@pytest.fixture(scope="session")
def tiny_model_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tiny_model.build(tmp_path_factory.mktemp("tiny"))
