"""`gen export` as a real subprocess: the summary line, the one-line error contract, and
--push-to-hub against a loopback server standing in for the Hugging Face hub (HF_ENDPOINT), so
the real huggingface_hub client makes its real requests: create the data set repo, validate the
card's YAML, ask how to upload each file, commit. The stand-in answers "regular" upload mode for
every file, so files travel inline in the commit; the LFS/Xet path a large parquet file takes on
the real hub is not exercised here."""
from __future__ import annotations

import base64
import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

from tests.helpers import assert_one_line_error, gen_env, run_gen
from tests.unit.test_export import make_rounds, make_run

TOKEN = "hf_loopback_token"


class FakeHub:
    """The four hub endpoints a dataset commit uses, on 127.0.0.1; remembers what it was sent."""

    def __init__(self, fail_create: int | None = None) -> None:
        self.requests: list[tuple[str, str, str | None]] = []  # (method, path, authorization)
        self.created: list[dict[str, Any]] = []
        self.files: dict[str, bytes] = {}
        self.fail_create = fail_create
        hub = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: Any) -> None:
                pass

            def _reply(self, status: int, body: dict[str, Any]) -> None:
                data = json.dumps(body).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def do_GET(self) -> None:
                hub.requests.append(("GET", self.path, self.headers.get("Authorization")))
                self._reply(404, {"error": "not here"})

            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                path = self.path.split("?")[0]
                hub.requests.append(("POST", path, self.headers.get("Authorization")))
                if path == "/api/repos/create":
                    if hub.fail_create:
                        return self._reply(hub.fail_create, {"error": "Invalid credentials in Authorization header"})
                    payload = json.loads(body)
                    hub.created.append(payload)
                    return self._reply(200, {"url": f"{hub.url}/datasets/{payload['organization']}/{payload['name']}"})
                if path == "/api/validate-yaml":
                    return self._reply(200, {"errors": [], "warnings": []})
                if path.startswith("/api/datasets/") and "/preupload/" in path:
                    files = json.loads(body)["files"]
                    return self._reply(200, {"files": [{"path": f["path"], "uploadMode": "regular",
                                                        "shouldIgnore": False} for f in files]})
                if path.startswith("/api/datasets/") and "/commit/" in path:
                    for line in body.decode().splitlines():
                        op = json.loads(line)
                        if op["key"] == "file":
                            hub.files[op["value"]["path"]] = base64.b64decode(op["value"]["content"])
                    repo = path.split("/api/datasets/")[1].split("/commit/")[0]
                    return self._reply(200, {"commitUrl": f"{hub.url}/datasets/{repo}/commit/{'a' * 40}",
                                             "commitOid": "a" * 40})
                self._reply(404, {"error": f"no route {path}"})

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def __enter__(self) -> FakeHub:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def rounds(tmp_path: Path) -> Path:
    return make_rounds(tmp_path / "rounds")


def hub_env(tmp_path: Path, hub: FakeHub | None, token: str | None) -> dict[str, str]:
    env = gen_env(HF_HOME=str(tmp_path / "hf-home"))
    env["HF_HUB_OFFLINE"] = "0"  # the push needs the (loopback) hub
    env.pop("HF_TOKEN", None)
    if hub is not None:
        env["HF_ENDPOINT"] = hub.url
    if token:
        env["HF_TOKEN"] = token
    return env


def test_hf_export_of_rounds_pushed_to_a_loopback_hub(tmp_path, rounds):
    out = tmp_path / "export"
    with FakeHub() as hub:
        proc = run_gen("export", "--input", rounds, "--format", "hf", "--split", "train=0.5,test=0.5",
                       "--out", out, "--push-to-hub", "me/whales", "--private", env=hub_env(tmp_path, hub, TOKEN))
    assert proc.returncode == 0, proc.stderr
    line = proc.stdout.strip()
    assert line.startswith("export: ") and f"(hf) in {out}" in line
    assert line.endswith(f"pushed to {hub.url}/datasets/me/whales"), line
    assert hub.created == [{"name": "whales", "organization": "me", "type": "dataset", "visibility": "private"}]
    posts = [(m, p) for m, p, _ in hub.requests if m == "POST"]
    assert posts[0] == ("POST", "/api/repos/create") and posts[-1] == ("POST", "/api/datasets/me/whales/commit/main")
    assert all(auth == f"Bearer {TOKEN}" for method, _, auth in hub.requests if method == "POST")
    local = {p.relative_to(out).as_posix(): p.read_bytes() for p in out.rglob("*") if p.is_file()}
    assert hub.files == local  # every file, byte for byte
    assert "README.md" in local and any(name.startswith("data/train-") for name in local)
    card = local["README.md"].decode()
    assert "load_dataset('me/whales')" in card and "license_name: fill-me-in" in card

    import datasets  # what the hub holds loads as a data set

    copy = tmp_path / "pulled"
    for name, data in hub.files.items():
        (copy / name).parent.mkdir(parents=True, exist_ok=True)
        (copy / name).write_bytes(data)
    ds = datasets.load_dataset(str(copy), cache_dir=str(tmp_path / "cache"))
    assert sorted(r["id"] for name in ds for r in ds[name]) == ["c1", "c2", "c4"]


def test_push_is_refused_up_front_without_a_token(tmp_path, rounds):
    out = tmp_path / "export"
    with FakeHub() as hub:
        proc = run_gen("export", "--input", rounds, "--format", "hf", "--out", out, "--push-to-hub", "me/whales",
                       env=hub_env(tmp_path, hub, None))
    assert_one_line_error(proc, 2, "needs a Hugging Face token", "HF_TOKEN")
    assert not out.exists() and hub.requests == []


def test_a_failed_upload_is_one_line_and_keeps_the_export(tmp_path, rounds):
    out = tmp_path / "export"
    with FakeHub(fail_create=401) as hub:
        proc = run_gen("export", "--input", rounds, "--format", "sharegpt", "--out", out, "--push-to-hub", "me/whales",
                       env=hub_env(tmp_path, hub, TOKEN))
    assert_one_line_error(proc, 1, "--push-to-hub me/whales: upload failed", "hf upload me/whales")
    assert (out / "train.jsonl").is_file() and hub.files == {}


@pytest.mark.parametrize("args, needle", [
    (["--input", "{tmp}/nope", "--format", "hf"], "no such file or folder"),
    (["--input", "{run}", "--format", "hf", "--min-score", "9"], "nothing to export"),
    (["--input", "{run}", "--format", "csv"], "--format 'csv': unknown"),
    (["--input", "{run}", "--format", "hf", "--split", "train=0.9,test=0.2"], "add up to 1.1"),
    (["--input", "{run}", "--format", "dpo"], "needs preference data"),
    (["--input", "{run}", "--format", "hf", "--out", "{run}/.."], "is, or holds, the input"),
    (["--input", "{run}", "--format", "hf", "--out", "{full}"], "exists and is not empty"),
    # a run's own files are never replaced by an export folder, --force or not
    (["--input", "{run}", "--format", "hf", "--out", "{run}/data.jsonl", "--force"], "--out is a folder"),
    (["--input", "{run}", "--format", "hf", "--out", "{run}/manifest.json", "--force"], "--out is a folder"),
    (["--input", "{run}", "--format", "openai", "--out", "{tmp}/train.jsonl"], "--out is a folder"),
    (["--input", "{run}", "--format", "hf", "--out", "{run}/.lock", "--force"], "is part of the run folder"),
    (["--input", "{run}", "--format", "hf", "--out", "{run}/scoring", "--force"], "is part of the run folder"),
])
def test_errors_are_one_line_exit_2(tmp_path, args, needle):
    run = make_run(tmp_path / "runs")
    full = tmp_path / "full"
    full.mkdir()
    (full / "x").write_text("x")
    argv = [a.format(tmp=tmp_path, run=run, full=full) for a in args]
    if "--out" not in argv:
        argv += ["--out", str(tmp_path / "dest")]
    before = {p.name: p.read_bytes() for p in run.iterdir() if p.is_file()}
    proc = run_gen("export", *argv)
    assert_one_line_error(proc, 2, needle)
    assert not (tmp_path / "dest").exists() and (full / "x").read_text() == "x"
    assert {p.name: p.read_bytes() for p in run.iterdir() if p.is_file()} == before  # the run is untouched
    assert not (tmp_path / "train.jsonl").exists()


def test_summary_line_names_every_split(tmp_path):
    run = make_run(tmp_path / "runs")
    proc = run_gen("export", "--input", run, "--format", "openai", "--split", "train=0.6,test=0.4",
                   "--out", tmp_path / "o")
    assert proc.returncode == 0, proc.stderr
    counts = {name: len((tmp_path / "o" / f"{name}.jsonl").read_text().splitlines())
              for name in ("train", "test") if (tmp_path / "o" / f"{name}.jsonl").exists()}
    expected = ", ".join(f"{counts.get(n, 0)} {n}" for n in ("train", "test"))
    assert proc.stdout.strip() == f"export: {expected} records (openai) in {tmp_path / 'o'}"
