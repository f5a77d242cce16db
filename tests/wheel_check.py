"""Checks the built wheel the way a user meets it: installed (not editable) in a fresh environment,
run from a folder outside the repository.

    python -m tests.wheel_check [--venv .venv-wheel]

1. `pip wheel` builds baleen's wheel from a copy of this tree's files (no build isolation: the project
   environment's setuptools, offline), and every prompts/*.j2 and view static file of the tree must be in it.
2. The wheel goes, without its dependencies, into a fresh venv (no system site-packages) that sees
   the project environment's packages through one .pth line after its own site-packages: the
   dependencies are the same files, installed once, and no path leads to the source tree.
3. From an empty folder outside the repository: `gen --help`; `gen selfchat` for 2 seeds against the
   loopback chat server (tests/chat_server.py), which renders the prompts; `gen view` on that run,
   whose page and static files must come back as they are in the tree.
Exit 0 when all of it holds; otherwise one line per failure and exit 1.
"""
from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import sysconfig
import tempfile
import threading
import urllib.request
import venv
import zipfile
from pathlib import Path

from tests.chat_server import start_subprocess_server

REPO = Path(__file__).resolve().parents[1]
STATIC = REPO / "generators" / "outputs" / "view" / "static"


def packaged_files() -> list[str]:
    """The data files the wheel must carry, as paths inside it."""
    prompts = sorted(f"prompts/{p.name}" for p in (REPO / "prompts").glob("*.j2"))
    static = sorted(f"generators/outputs/view/static/{p.name}" for p in STATIC.iterdir() if p.is_file())
    return prompts + static


def build_wheel(work: Path) -> Path:
    """Built from a copy of the files git would take (tracked, or new and not ignored): no egg-info
    or build/ left by an earlier build can put files into the wheel that its settings leave out."""
    listed = subprocess.run(["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"], cwd=REPO,
                            check=True, capture_output=True).stdout.decode().split("\0")
    source = work / "source"
    for name in filter(None, listed):
        if (REPO / name).is_file():
            (source / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(REPO / name, source / name)
    subprocess.run([sys.executable, "-m", "pip", "wheel", "--quiet", "--no-deps", "--no-build-isolation",
                    "--wheel-dir", str(work / "dist"), str(source)], check=True)
    [wheel] = (work / "dist").glob("baleen-*.whl")
    return wheel


def fresh_venv(path: Path, wheel: Path) -> Path:
    """A new venv each time (a second or two: no pip in it) with the wheel installed, which then
    sees the project environment's site-packages after its own (only then: pip would take the
    editable baleen there for an installed one)."""
    venv.EnvBuilder(with_pip=False, system_site_packages=False, clear=True).create(path)
    python = path / "bin" / "python"
    subprocess.run([sys.executable, "-m", "pip", "--python", str(python), "install", "--quiet", "--no-deps",
                    str(wheel)], check=True, env=clean_env(path))  # PYTHONPATH could show a checkout's egg-info
    site = subprocess.run([str(python), "-c", "import sysconfig; print(sysconfig.get_path('purelib'))"],
                          check=True, capture_output=True, text=True).stdout.strip()
    (Path(site) / "baleen-dependencies.pth").write_text(sysconfig.get_path("purelib") + "\n", encoding="utf-8")
    return python


def clean_env(home: Path) -> dict[str, str]:
    """The user's environment, less anything that would lead back into the repository."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PYTHON", "OPENAI_", "BALEEN_", "VIRTUAL_ENV"))}
    env.update(HF_HUB_OFFLINE="1", OPENAI_API_KEY="k", HOME=str(home))
    return env


def check(failures: list[str], ok: bool, what: str) -> None:
    if not ok:
        failures.append(what)


def run(cmd: list[str], cwd: Path, env: dict[str, str]) -> subprocess.CompletedProcess:
    return subprocess.run(cmd, cwd=cwd, env=env, capture_output=True, text=True, timeout=300)


def view_page(gen: Path, run_dir: Path, cwd: Path, env: dict[str, str]) -> dict[str, bytes]:
    """Start `gen view` on the run, fetch the page and its static files, stop it."""
    proc = subprocess.Popen([str(gen), "view", str(run_dir), "--port", "0", "--no-browser"], cwd=cwd, env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    watchdog = threading.Timer(120, proc.kill)  # a view that never prints its URL must not hang CI
    watchdog.start()
    try:
        url = ""
        for line in proc.stdout:  # type: ignore[union-attr]
            if line.startswith("view: http"):
                url = line.split()[1]
                break
        if not url:
            return {}
        return {name: urllib.request.urlopen(url.rstrip("/") + path, timeout=30).read()
                for name, path in (("index.html", "/"), ("app.js", "/static/app.js"),
                                   ("style.css", "/static/style.css"))}
    finally:
        watchdog.cancel()
        proc.terminate()
        proc.wait(timeout=30)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--venv", type=Path, default=REPO / ".venv-wheel")
    args = parser.parse_args(argv)
    failures: list[str] = []
    with tempfile.TemporaryDirectory(prefix="baleen-wheel-") as tmp:
        work = Path(tmp)
        wheel = build_wheel(work)
        names = set(zipfile.ZipFile(wheel).namelist())
        for name in packaged_files():
            check(failures, name in names, f"{name} is not in {wheel.name}")
        python = fresh_venv(args.venv.resolve(), wheel)
        gen = python.parent / "gen"
        outside = work / "user"
        outside.mkdir()
        env = clean_env(work)

        where = run([str(python), "-c", "import generators, prompts; print(generators.__file__, prompts.__file__)"],
                    outside, env)
        check(failures, where.returncode == 0 and str(REPO / "generators") not in where.stdout
              and str(args.venv.resolve()) in where.stdout, f"baleen is not imported from the wheel: {where.stdout or where.stderr}")
        helped = run([str(gen), "--help"], outside, env)
        check(failures, helped.returncode == 0 and "selfchat" in helped.stdout, f"gen --help failed: {helped.stderr}")

        (outside / "seeds.jsonl").write_text("".join(json.dumps({"question": q}) + "\n" for q in
                                                     ("How does a compass work?", "Why is the sky blue?")))
        server, base_url = start_subprocess_server()
        try:
            made = run([str(gen), "selfchat", "--seeds", "seeds.jsonl", "--field", "question", "--backend", "openai",
                        "--base-url", base_url, "--model", "teacher", "--max-turns", "1", "--out", "run",
                        "--cache-dir", "cache", "--no-progress"], outside, env)
        finally:
            server.terminate()
            server.wait()
        data = outside / "run" / "data.jsonl"
        kept = data.read_text(encoding="utf-8").splitlines() if data.exists() else []
        check(failures, made.returncode == 0 and len(kept) == 2,
              f"gen selfchat from the wheel: exit {made.returncode}, {len(kept)} kept of 2: {made.stderr[-400:]}")

        if data.exists():
            served = view_page(gen, outside / "run", outside, env)
            for name in ("index.html", "app.js", "style.css"):
                check(failures, served.get(name) == (STATIC / name).read_bytes(),
                      f"gen view from the wheel does not serve static/{name} as it is in the tree")
        if not failures:
            print(f"wheel_check: ok: {wheel.name}, {len(packaged_files())} data files, gen --help, selfchat (2 seeds), view")
    for line in failures:
        print(f"wheel_check: {line}", file=sys.stderr)
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
