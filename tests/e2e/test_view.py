"""`gen view` for real: the command in a subprocess, its JSON API, and the page in headless Chromium.

The browser is driven over the Chrome DevTools protocol (aiohttp's websocket client, no extra
package): it loads the page, clicks an outcome button and a row, types into the search box, and
reads the rows the page shows. Chromium comes from Debian's packages; the `chromium` fixture
installs it when it is missing and fails with the installer's last lines when it cannot.
docs/view.png is the page of make_rounds' folder (docs/view.md says how it was taken).
"""
from __future__ import annotations

import asyncio
import base64
import json
import os
import re
import shutil
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any, Iterator

import pytest

from tests.helpers import assert_one_line_error, gen_cmd, gen_env, run_gen, wait_for

# ---------------------------------------------------------------- fixtures: folders made by hand

CANDIDATES = [  # (header, instruction, segment)
    ("Brewing pour-over coffee", "How do I brew a good cup of pour-over coffee at home?",
     "Use about 15 grams of medium-fine coffee for 250 ml of water just off the boil. Rinse the paper filter, "
     "bloom the grounds with a splash of water for 30 seconds, then pour slowly in circles. The whole brew "
     "should take three to four minutes; if it runs faster, grind finer."),
    ("How lighthouses got their lights", "Explain how lighthouse lamps changed over the centuries.",
     "Early lighthouses burned wood or coal in open fires. Oil lamps with reflectors followed, and in 1822 "
     "Augustin Fresnel's stepped lens let a small flame be seen for twenty miles. Electric lamps arrived at "
     "the end of the nineteenth century, and most lights today are automated LEDs."),
    ("Repotting a root-bound plant", "What are the steps to repot a plant whose roots fill its pot?",
     "Water the plant the day before. Tip it out, tease the circling roots loose and trim any that are dead. "
     "Choose a pot one size larger with a drainage hole, add fresh mix, set the plant at the same depth and "
     "water it in. Keep it out of strong sun for a week."),
    ("Python list comprehensions", "Show me how list comprehensions work in Python, with an example.",
     "A list comprehension builds a list from an iterable in one expression: squares = [n * n for n in "
     "range(10) if n % 2 == 0]. It reads left to right like a loop with an optional condition, and is "
     "usually faster and clearer than appending in a for loop."),
    ("Why the sky is blue", "Why is the sky blue during the day but red at sunset?",
     "Air molecules scatter short wavelengths far more than long ones (Rayleigh scattering), so blue light "
     "reaches us from every direction. At sunset the light crosses much more air, the blue is scattered "
     "away before it arrives, and the reds and oranges remain."),
    ("Training for a first 10k", "Give me a six-week plan to run my first 10k race.",
     "Run three times a week. Keep two runs easy and conversational, and make the third a little longer "
     "each week, from 5 km up to 9 km. Add four short strides after one easy run. In the last week cut the "
     "distance in half so you start the race rested."),
    ("Sourdough starter basics", "How do I keep a sourdough starter alive?",
     "Feed the starter equal weights of flour and water once a day at room temperature, or once a week "
     "from the fridge. Discard all but a spoonful before each feeding. A healthy starter doubles within "
     "six hours and smells pleasantly sour."),
    ("Compound interest", "What is compound interest?",
     "Interest is compound when it is added to the balance and itself earns interest."),
    ("Reading a nutrition label", "How should I read the nutrition label on packaged food?",
     "Start with the serving size, since every number below refers to it. Compare the percent daily "
     "values: 5% or less is low, 20% or more is high. Look for fibre and protein, and watch added sugars "
     "and sodium, which add up quickly across a day."),
    ("The water cycle", "Describe the water cycle for a ten-year-old.",
     "The sun warms water in seas and lakes until it rises as vapour. High up it cools into tiny drops "
     "that make clouds. When the drops get heavy they fall as rain or snow, run into rivers, and flow "
     "back to the sea to start again."),
]

REASONING = {
    5: "The answer is complete, accurate and written as an assistant would write it, with no web-page "
       "clutter.\nScore: 5",
    4: "Helpful and correct, but it reads a little like a web page rather than a direct answer.\nScore: 4",
    3: "Relevant, but it leaves out parts of what was asked.\nScore: 3",
    2: "Only loosely answers the question.\nScore: 2",
}


def write_run(folder: Path, stage: str, kept: list[dict], rejected: list[dict] = (), errors: list[dict] = (),
              extra: str = "") -> Path:
    folder.mkdir(parents=True)
    for name, lines in (("data.jsonl", kept), ("rejected.jsonl", rejected), ("errors.jsonl", errors)):
        (folder / name).write_text("".join(json.dumps(line) + "\n" for line in lines) + extra * (name == "rejected.jsonl"),
                                   "utf-8")
    reasons: dict[str, int] = {}
    for line in rejected:
        reasons[line["reject"]] = reasons.get(line["reject"], 0) + 1
    usage = {"requests": len(kept) + len(rejected), "prompt_tokens": 310 * (len(kept) + len(rejected)),
             "completion_tokens": 95 * (len(kept) + len(rejected)), "cost_usd": None}
    manifest = {"stage": stage, "status": "complete", "usage": usage,
                "counts": {"kept": len(kept), "rejected": len(rejected), "errors": len(errors),
                           "rejected_by_reason": reasons}}
    (folder / "manifest.json").write_text(json.dumps(manifest), "utf-8")
    return folder


def candidate(i: int) -> dict:
    header, instruction, segment = CANDIDATES[i]
    return {"id": f"c{i}", "source": "jsonl", "tag": "augmented",
            "messages": [{"role": "user", "content": instruction}, {"role": "assistant", "content": segment}],
            "meta": {"doc_id": f"doc-{i // 2}", "url": f"https://example.org/{i // 2}", "header": header,
                     "segment": i % 2, "sample": 0, "item": f"item-c{i}"}}


def rated(i: int, score: int | None, reject: str | None = None, rater: str = "round0/model") -> dict:
    record = candidate(i)
    record["meta"]["curation"] = {"rater": rater, "backend": "hf", "attempts": 1, "problems": []}
    if score is not None or reject == "unparsed_score":
        record.update(score=score, score_expected=None if score is None else score - 0.2,
                      reason=REASONING.get(score, "I cannot tell."))
    if reject:
        record["reject"] = reject
    return record


def make_rounds(root: Path) -> Path:
    """round0/augment (10 candidates), round1/curate, round2/curate, models, lineage."""
    write_run(root / "round0" / "augment", "backtranslate", [candidate(i) for i in range(10)],
              [{**candidate(0), "id": "x1", "reject": "not_a_request",
                "messages": [{"role": "user", "content": "Lighthouse keeper"}, candidate(1)["messages"][1]]},
               {**candidate(2), "id": "x2", "reject": "copies_segment"}],
              [{"item": "item-x3", "source": "jsonl", "input": {"doc_id": "doc-9", "segment": 0, "text": "Tides ..."},
                "error": "HTTP 500: upstream timed out", "status": 500, "last_response": "upstream timed out"}])
    (root / "round0" / "model").mkdir(parents=True)
    (root / "round0" / "model" / "manifest.json").write_text(json.dumps({"stage": "train", "status": "complete"}))
    write_run(root / "round1" / "curate", "curate", [rated(i, 5) for i in (0, 1, 2, 3)],
              [rated(4, 4, "below_threshold"), rated(5, 3, "below_threshold"), rated(8, 3, "below_threshold"),
               rated(9, 2, "below_threshold"), rated(6, None, "unparsed_score"), {**candidate(7), "reject": "too_short"}],
              [{"item": "item-r1", "source": "jsonl", "input": CANDIDATES[6][1], "error": "HTTP 503: overloaded",
                "status": 503, "last_response": "overloaded"}])
    m1 = "round1/model"
    write_run(root / "round2" / "curate", "curate", [rated(i, 5, rater=m1) for i in (1, 2, 4, 5, 8)],
              [rated(0, 4, "below_threshold", m1), rated(3, 5, "not_top", m1), rated(6, 3, "below_threshold", m1),
               rated(9, 2, "below_threshold", m1), {**candidate(7), "reject": "too_short"}])
    for k in (1, 2):
        (root / f"round{k}" / "model").mkdir()
        (root / f"round{k}" / "model" / "manifest.json").write_text(json.dumps({"stage": "train", "status": "complete"}))
        (root / f"round{k}" / "lineage.json").write_text(json.dumps({"round": f"round{k}",
                                                                      "rater": str(root / f"round{k - 1}" / "model")}))
    return root


def make_chat_run(folder: Path) -> Path:
    """A self-chat run folder: kept dialogs, rejected ones, an error, and a line a kill cut short."""
    def dialog(i: int, question: str, answer: str) -> dict:
        return {"id": f"d{i}", "source": "quora", "messages": [{"role": "user", "content": question},
                                                                {"role": "assistant", "content": answer}],
                "meta": {"seed": question, "model": "teacher", "template": "selfchat_transcript@ab12",
                         "finish": "natural", "item": f"i{i}"}}
    kept = [dialog(0, "How do vaccines train the immune system?", "They show it a harmless piece of a germ ..."),
            dialog(1, "What makes a good password?", "Length matters most: four random words ..."),
            dialog(2, "How do tides work?", "The moon's gravity pulls the oceans into two bulges ...")]
    rejected = [{**dialog(3, "Who are you?", "As an AI language model, I cannot ..."), "reject": "refusal"},
                {**dialog(4, "Is it going to rain?", "Maybe."), "reject": "short_answer"}]
    errors = [{"item": "i5", "source": "quora", "input": "What is a black hole?", "error": "HTTP 429: rate limited",
               "status": 429, "last_response": "slow down"}]
    return write_run(folder, "selfchat", kept, rejected, errors, extra='{"id": "cut')


# ---------------------------------------------------------------- the command

class View:
    """`gen view FOLDER ARGS` (default --no-browser) in a subprocess; stop() ends it."""

    def __init__(self, folder: Path, *args: str, env: dict[str, str] | None = None) -> None:
        args = args or ("--no-browser",)
        self.proc = subprocess.Popen(gen_cmd("view", folder, *args), env=env or gen_env(),
                                     stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        self.lines: list[str] = []
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            line = self.proc.stdout.readline()
            if not line:
                raise AssertionError(f"gen view ended: {self.proc.wait()} {self.proc.stderr.read()}")
            self.lines.append(line)
            found = re.search(r"(http://127\.0\.0\.1:\d+/)", line)
            if found:
                self.url = found.group(1)
                return
        raise AssertionError("gen view printed no URL within 60 s")

    def get(self, path: str) -> Any:
        with urllib.request.urlopen(self.url + path.lstrip("/"), timeout=30) as response:
            return json.loads(response.read())

    def stop(self) -> None:
        self.proc.terminate()
        self.proc.wait(timeout=30)


@pytest.fixture
def rounds_view(tmp_path: Path) -> Iterator[View]:
    view = View(make_rounds(tmp_path / "rounds"))
    yield view
    view.stop()


def test_api_on_a_rounds_folder(rounds_view: View):
    assert "records in 6 runs" in rounds_view.lines[0]
    summary = rounds_view.get("/api/runs")
    assert summary["kind"] == "rounds" and [r["label"] for r in summary["rounds"]] == ["round0", "round1", "round2"]
    runs = {r["name"]: r for r in summary["runs"]}
    assert (runs["round1/curate"]["kept"], runs["round1/curate"]["rejected"], runs["round1/curate"]["errors"]) == (4, 6, 1)
    assert not runs["round0/model"]["has_records"]
    diffs = [(d["round"], d["previous_run"], d["new"], d["dropped"], d["kept_again"]) for d in summary["diffs"]]
    assert diffs == [("round1", "round0/augment", 0, 6, 4), ("round2", "round1/curate", 3, 2, 2)]
    assert summary["rounds"][1]["lineage"]["rater"].endswith("round0/model")

    page = rounds_view.get("/api/records?round=round2&change=new")
    assert sorted(r["id"] for r in page["rows"]) == ["c4", "c5", "c8"]
    page = rounds_view.get("/api/records?outcome=rejected&reason=below_threshold&min_score=3&sort=-score")
    assert [r["score"] for r in page["rows"]] == [4, 4, 3, 3, 3]
    page = rounds_view.get("/api/records?q=fresnel&limit=2")
    assert page["total"] == 4 and len(page["rows"]) == 2  # c1 in each round, and x1 (c1's segment)
    detail = rounds_view.get(f"/api/record?row={page['rows'][0]['row']}")
    assert "Fresnel" in detail["record"]["messages"][1]["content"]
    with pytest.raises(urllib.error.HTTPError) as bad:
        rounds_view.get("/api/records?min_score=high")
    assert bad.value.code == 400 and "min_score" in json.loads(bad.value.read())["error"]
    with pytest.raises(urllib.error.HTTPError) as bad:
        rounds_view.get("/api/record?row=999")
    assert bad.value.code == 404
    # another site's page (DNS rebinding) names another host: refused
    request = urllib.request.Request(rounds_view.url + "api/runs", headers={"Host": "attacker.example"})
    with pytest.raises(urllib.error.HTTPError) as bad:
        urllib.request.urlopen(request, timeout=30)
    assert bad.value.code == 403
    with urllib.request.urlopen(rounds_view.url, timeout=30) as response:  # the page and its files
        assert b'src="/static/app.js"' in response.read()


def test_opens_the_browser_unless_told_not_to(tmp_path: Path):
    opened = tmp_path / "opened.txt"
    opener = f"{sys.executable} -c \"import sys; open({str(opened)!r}, 'w').write(sys.argv[1])\" %s"
    view = View(make_chat_run(tmp_path / "chat"), "--port", "0", env=gen_env(BROWSER=opener))
    try:
        wait_for(lambda: opened.exists() and opened.read_text() == view.url, timeout=60)
    finally:
        view.stop()


def test_errors_are_one_line(tmp_path: Path):
    (tmp_path / "empty" / "sub").mkdir(parents=True)
    assert_one_line_error(run_gen("view", tmp_path / "empty", "--no-browser"), 2, "no manifest.json")
    assert_one_line_error(run_gen("view", tmp_path / "missing", "--no-browser"), 2, "no such folder")
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        proc = run_gen("view", make_chat_run(tmp_path / "chat"), "--no-browser", "--port", str(port))
    assert_one_line_error(proc, 2, f"--port {port}", "in use")


# ---------------------------------------------------------------- the browser

def _find_chromium() -> str | None:
    for name in ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable"):
        path = shutil.which(name)
        if path:
            return path
    return None


@pytest.fixture(scope="session")
def chromium() -> str:
    """Headless Chromium from Debian's packages, installed once when missing (needs root and the
    package mirror; the lock timeout waits for another apt run)."""
    path = _find_chromium()
    if path:
        return path
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    prefix = [] if os.geteuid() == 0 else ["sudo", "-n"]
    log = []
    for command in (["apt-get", "-o", "DPkg::Lock::Timeout=600", "update"],
                    ["apt-get", "-o", "DPkg::Lock::Timeout=600", "install", "-y", "--no-install-recommends", "chromium"]):
        try:
            proc = subprocess.run(prefix + command, env=env, capture_output=True, text=True, timeout=1500)
        except (OSError, subprocess.TimeoutExpired) as exc:
            pytest.fail(f"cannot install Chromium for the browser test ({' '.join(command)}: {exc}); "
                        "install it with: apt-get update && apt-get install -y chromium")
        log.append(proc.stdout[-1500:] + proc.stderr[-1500:])
        if proc.returncode != 0:
            pytest.fail(f"cannot install Chromium for the browser test: `{' '.join(command)}` exited "
                        f"{proc.returncode}:\n{log[-1]}\nInstall it with: apt-get update && apt-get install -y chromium")
    path = _find_chromium()
    if not path:
        pytest.fail("apt-get installed chromium but no chromium executable is on PATH:\n" + "\n".join(log))
    return path


class Browser:
    """One headless Chromium page driven over the DevTools protocol."""

    def __init__(self, executable: str, profile: Path) -> None:
        self.proc = subprocess.Popen(
            [executable, "--headless", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
             "--no-first-run", "--no-default-browser-check", "--hide-scrollbars", "--remote-debugging-port=0",
             f"--user-data-dir={profile}", "--window-size=1400,900", "about:blank"],
            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
        port_file = profile / "DevToolsActivePort"
        deadline = time.monotonic() + 90
        while not port_file.exists() or len(port_file.read_text().split()) < 2:
            if self.proc.poll() is not None or time.monotonic() > deadline:
                self.proc.kill()
                raise AssertionError(f"Chromium did not start: {self.proc.stderr.read()[-2000:]}")
            time.sleep(0.1)
        port = port_file.read_text().split()[0]
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/json/list", timeout=30) as response:
            pages = [t for t in json.loads(response.read()) if t["type"] == "page"]
        self.ws_url = pages[0]["webSocketDebuggerUrl"]
        self.loop = asyncio.new_event_loop()
        self.session = self.ws = None
        self.next_id = 0
        self.loop.run_until_complete(self._connect())
        self.send("Emulation.setDeviceMetricsOverride", width=1400, height=900, deviceScaleFactor=1, mobile=False)

    async def _connect(self) -> None:
        import aiohttp
        self.session = aiohttp.ClientSession()
        self.ws = await self.session.ws_connect(self.ws_url, max_msg_size=0)

    async def _send(self, method: str, params: dict) -> dict:
        self.next_id += 1
        await self.ws.send_json({"id": self.next_id, "method": method, "params": params})
        while True:
            message = json.loads((await self.ws.receive(timeout=60)).data)
            if message.get("id") == self.next_id:
                if "error" in message:
                    raise AssertionError(f"{method}: {message['error']}")
                return message.get("result", {})

    def send(self, method: str, **params: Any) -> dict:
        return self.loop.run_until_complete(self._send(method, params))

    def js(self, expression: str) -> Any:
        result = self.send("Runtime.evaluate", expression=expression, returnByValue=True, awaitPromise=True)
        if "exceptionDetails" in result:
            raise AssertionError(f"{expression}: {result['exceptionDetails']}")
        return result["result"].get("value")

    def wait(self, expression: str, timeout: float = 60) -> Any:
        deadline = time.monotonic() + timeout
        while True:
            value = self.js(expression)
            if value:
                return value
            assert time.monotonic() < deadline, f"timed out waiting for {expression}"
            time.sleep(0.1)

    def open(self, url: str) -> None:
        self.send("Page.navigate", url=url)
        self.wait("document.readyState === 'complete' && document.body.dataset.state === 'ready'")

    def click(self, selector: str) -> None:
        """A real mouse click in the middle of the element."""
        box = self.wait(f"(() => {{ const e = document.querySelector({json.dumps(selector)}); if (!e) return null;"
                        f" e.scrollIntoView({{block: 'center'}}); const r = e.getBoundingClientRect();"
                        f" return {{x: r.x + r.width / 2, y: r.y + r.height / 2}}; }})()")
        for kind in ("mousePressed", "mouseReleased"):
            self.send("Input.dispatchMouseEvent", type=kind, x=box["x"], y=box["y"], button="left", clickCount=1)

    def type(self, text: str) -> None:
        self.send("Input.insertText", text=text)

    def press_enter(self) -> None:
        for kind in ("keyDown", "keyUp"):
            self.send("Input.dispatchKeyEvent", type=kind, key="Enter", code="Enter", windowsVirtualKeyCode=13,
                      **({"text": "\r"} if kind == "keyDown" else {}))

    def rows(self, query: str) -> list[dict]:
        """The rows shown once the page has rendered the answer for `query` (its URL filters)."""
        try:
            self.wait(f"document.querySelector('#records').dataset.query === {json.dumps(query)}"
                      " && document.body.dataset.state === 'ready'", timeout=30)
        except AssertionError:
            shown = self.js("[document.querySelector('#records').dataset.query, document.body.dataset.state]")
            raise AssertionError(f"the page shows {shown}, not the rows for {query!r}") from None
        return self.js("[...document.querySelectorAll('#records tbody tr')].map(tr => ({row: +tr.dataset.row,"
                       " outcome: tr.dataset.outcome, cells: [...tr.cells].map(td => td.innerText.trim())}))")

    def screenshot(self, path: Path) -> None:
        path.write_bytes(base64.b64decode(self.send("Page.captureScreenshot", format="png")["data"]))

    def close(self) -> None:
        try:
            if self.ws is not None:
                self.loop.run_until_complete(self.ws.close())
            if self.session is not None:
                self.loop.run_until_complete(self.session.close())
        finally:
            self.loop.close()
            self.proc.terminate()
            try:
                self.proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.proc.kill()


@pytest.fixture
def browser(chromium: str, tmp_path: Path) -> Iterator[Browser]:
    page = Browser(chromium, tmp_path / "profile")
    yield page
    page.close()


def test_page_filters_rounds_in_a_real_browser(rounds_view: View, browser: Browser, tmp_path: Path):
    # a link with filters in it shows them applied
    browser.open(rounds_view.url + "?outcome=rejected&round=round1")
    rows = browser.rows("outcome=rejected&round=round1")
    assert len(rows) == 6 and {r["outcome"] for r in rows} == {"rejected"}
    assert browser.js("document.querySelector('#round').value") == "round1"
    assert "1–6 of 6 records" in browser.js("document.querySelector('#count').innerText")

    # a real click on the Errors button: the rows change, and so does the address
    browser.click('#outcome button[data-value="error"]')
    rows = browser.rows("outcome=error&round=round1")
    assert [r["outcome"] for r in rows] == ["error"] and "HTTP 503" in rows[0]["cells"][2]
    assert "outcome=error" in browser.js("location.search")

    # clear, then type a search and press Enter
    browser.click("#clear")
    assert len(browser.rows("")) == 34  # every line of every run
    browser.click("#q")
    browser.type("lighthouse")
    browser.press_enter()
    rows = browser.rows("q=lighthouse")
    assert len(rows) == 4 and all("lighthouse" in r["cells"][6].lower() for r in rows)

    # what changed in round 2: the "new" link of the rounds table, then one record read in full
    browser.click("#clear")
    browser.rows("")
    browser.click('#diffs tbody tr:nth-child(2) a.new')
    rows = browser.rows("round=round2&run=round2%2Fcurate&change=new")
    assert len(rows) == 3 and {r["cells"][5] for r in rows} == {"new"}
    for i in (4, 5, 8):  # c4, c5, c8: kept in round 2, not in round 1
        assert sum(CANDIDATES[i][1] in r["cells"][6] for r in rows) == 1
    browser.click(f'#records tbody tr[data-row="{rows[0]["row"]}"]')
    browser.wait(f"document.querySelector('#detail').dataset.row === '{rows[0]['row']}'")
    detail = browser.js("document.querySelector('#detail').textContent")
    assert "Rubric reasoning" in detail and "Score: 5" in detail and "Conversation" in detail
    assert any(CANDIDATES[i][0] in detail and CANDIDATES[i][2] in detail for i in (4, 5, 8))
    assert "Header" in detail and "https://example.org/" in detail and "new" in detail
    assert f"rec={rows[0]['row']}" in browser.js("location.search")

    # a link to one round with a record open shows both
    chosen = rows[0]["row"]
    browser.open(rounds_view.url + f"?round=round2&rec={chosen}")
    assert len(browser.rows("round=round2")) == 10
    browser.wait(f"document.querySelector('#detail').dataset.row === '{chosen}'")
    shot = tmp_path / "view.png"
    browser.screenshot(shot)
    assert shot.read_bytes().startswith(b"\x89PNG") and shot.stat().st_size > 20_000  # drawn, not blank


def test_page_on_a_run_folder_in_a_real_browser(tmp_path: Path, browser: Browser):
    view = View(make_chat_run(tmp_path / "chat"))
    try:
        browser.open(view.url + "?outcome=rejected")
        rows = browser.rows("outcome=rejected")
        assert sorted(r["cells"][2] for r in rows) == ["refusal", "short_answer"]
        assert browser.js("document.querySelector('[data-for=\"round\"]').hidden")  # no rounds here
        assert "1 unreadable" in browser.js("document.querySelector('#runs').innerText")
        browser.click('#outcome button[data-value="kept"]')
        assert len(browser.rows("outcome=kept")) == 3
    finally:
        view.stop()
