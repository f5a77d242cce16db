"""The HTTP base's contract with providers: what a status means, what check() asks of a provider
from its declared variables, and a backend whose package is missing."""
from __future__ import annotations

import sys

import pytest

from generators.backends import registry
from generators.backends.base import BackendSettings
from generators.backends.calls import AUTH, DENIED, MISSING, REJECT, RETRY, status_failure
from generators.backends.http import HTTPBackend
from generators.core.errors import UsageError


@pytest.mark.parametrize("status, kind", [(401, AUTH), (403, DENIED), (404, MISSING), (400, REJECT), (422, REJECT),
                                          (408, RETRY), (429, RETRY), (500, RETRY), (529, RETRY), (599, RETRY)])
def test_a_status_alone_says_what_a_failure_means(status, kind):
    failure = status_failure(status, "message " * 100, {"retry-after": "2"}, "body")
    assert failure.kind == kind and failure.status == status and failure.headers["retry-after"] == "2"
    assert failure.reason.startswith(f"HTTP {status}: message") and len(failure.reason) < 320


class _Keyed(HTTPBackend):
    """check() reads only the class's declarations; nothing is built."""

    name = "keyed"
    api_key_env = "BALEEN_TEST_KEY"
    base_url_env = "BALEEN_TEST_URL"
    default_base_url = "https://api.example.invalid/v1"


def test_check_asks_for_the_variables_the_provider_declares(monkeypatch):
    for name in ("BALEEN_TEST_KEY", "BALEEN_TEST_URL"):
        monkeypatch.delenv(name, raising=False)
    with pytest.raises(UsageError, match="needs --base-url or BALEEN_TEST_KEY"):
        _Keyed.check(BackendSettings(model="m"))
    _Keyed.check(BackendSettings(model="m", base_url="http://127.0.0.1:9/v1"))  # a server of one's own
    monkeypatch.setenv("BALEEN_TEST_URL", "ftp://127.0.0.1/v1")
    with pytest.raises(UsageError, match="http:// or https://"):
        _Keyed.check(BackendSettings(model="m"))
    with pytest.raises(UsageError, match="--model is required with --backend keyed"):
        _Keyed.check(BackendSettings(base_url="http://127.0.0.1:9/v1"))


def test_a_backend_whose_package_is_missing_is_one_usage_error(tmp_path, monkeypatch):
    (tmp_path / "baleen_test_needs_missing.py").write_text("import baleen_no_such_package\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.setitem(registry._REGISTRY, "needs-missing", "baleen_test_needs_missing:Backend")
    with pytest.raises(UsageError, match="needs the Python package baleen_no_such_package"):
        registry.backend_class("needs-missing")
    sys.modules.pop("baleen_test_needs_missing", None)
