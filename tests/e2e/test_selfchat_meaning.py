"""Self-chat's checks of meaning end to end (baleen[embed], the packaged all-MiniLM-L6-v2):
seeds that mean the same are dropped before any request and counted in the manifest, dialogs
whose opening questions mean the same are rejected as semantic_duplicate, off_topic by meaning
keeps a dialog in other words than its seed's, a rerun decides the same way without embedding
again, and without the extra each check of meaning is refused with one line."""
from __future__ import annotations

import json
import re
import sqlite3

from generators.core.embeddings import SEMANTIC_THRESHOLD
from generators.core.same_meaning import RULE
from tests.chat_server import ChatServer, last_user_text
from tests.helpers import assert_one_line_error, gen_env, read_jsonl, run_gen, without_embed_extra, write_seeds

SECRET = "test-key-not-real"
SEEDS = [
    "What causes kidney failure?",
    "How do I train my puppy to stop biting?",
    "What leads to renal failure?",                    # means the first
    "Why do volcanoes erupt?",
    "How can I train my puppy to stop biting?",         # means the second
    "What is the best way to save for retirement?",
    "How should I save money for my retirement?",       # means the sixth
]
DISTINCT = 4
# each dialog's opening question; two distinct seeds open with the same question in other words
OPENINGS = {
    "doctors": "Why do kidneys stop functioning properly?",  # a later seed opening like the first
    "kidney": "Why do kidneys stop working?",
    "renal": "Why do kidneys stop working?",
    "puppy": "How do I stop my puppy from biting?",
    "volcanoes": "What makes a volcano erupt?",
    "retirement": "How do I save for retirement?",
}
REPLIES = {
    "kidney": "Kidneys fail when diabetes or high blood pressure damage their filters over years.",
    "renal": "Kidneys fail when diabetes or high blood pressure damage their filters over years.",
    "puppy": "Redirect the biting to a chew toy and stop play for a moment each time it bites.",
    "volcanoes": "Pressure from gas-rich magma builds under the crust until it breaks through the surface.",
    "retirement": "Put a fixed share of each pay cheque into a pension fund and raise it over time.",
    "doctors": "Damage to the small filters by diabetes or blood pressure slowly stops the kidneys.",
}


def transcript(body: dict) -> str:
    seed = re.search(r"The conversation is about: '([^']+)'", last_user_text(body)).group(1).lower()
    word = next(w for w in OPENINGS if w in seed)
    return (f"[Human] {OPENINGS[word]}\n[AI] {REPLIES[word]} So, on '{seed}': a doctor or expert can say "
            "more about your case.\n"
            "[Human] Thanks, that helps a lot.\n[AI] You are welcome; ask again any time you need to.")


def selfchat(server: ChatServer, seeds, out, *extra: str, env=None):
    return run_gen("selfchat", "--seeds", seeds, "--field", "question", "--backend", "openai",
                   "--base-url", server.base_url, "--model", "teacher", "--out", out,
                   "--cache-dir", out.parent / "cache", "--no-progress", *extra,
                   env=env or gen_env(OPENAI_API_KEY=SECRET))


def rows(path) -> int:
    with sqlite3.connect(path) as db:
        return db.execute("SELECT COUNT(*) FROM vectors").fetchone()[0]


def test_seeds_and_openings_that_mean_the_same_are_dropped_and_a_rerun_decides_the_same(tmp_path):
    seeds = write_seeds(tmp_path / "seeds.jsonl", SEEDS + ["How do doctors treat kidney disease?"])
    out = tmp_path / "chat"
    with ChatServer(api_key=SECRET, reply=transcript) as server:
        proc = selfchat(server, seeds, out, "--semantic-dedup")
        assert proc.returncode == 0, proc.stderr
        manifest = json.loads((out / "manifest.json").read_text())
        assert manifest["seeds"]["semantic_duplicates"] == len(SEEDS) - DISTINCT
        assert manifest["seeds"]["count"] == DISTINCT + 1
        assert server.requests_total == DISTINCT + 1  # the dropped seeds were never sent
        rejected = read_jsonl(out / "rejected.jsonl")
        # the last seed is another question, but its dialog opened with the first one's in other words:
        # of the two, the one sent later (seed order is shuffled) is the duplicate
        assert [r["reject"] for r in rejected] == ["semantic_duplicate"]
        assert rejected[0]["messages"][0]["content"].startswith("Why do kidneys stop")
        assert manifest["counts"]["kept"] == DISTINCT
        assert manifest["filters"]["semantic_duplicate"] == {"model": "minilm", "threshold": SEMANTIC_THRESHOLD,
                                                             "pair_test": RULE}
        stored = rows(out / "embeddings.sqlite")
        kept = sorted(r["id"] for r in read_jsonl(out / "data.jsonl"))

        again = selfchat(server, seeds, out, "--semantic-dedup")
        assert again.returncode == 0, again.stderr
        assert server.requests_total == DISTINCT + 1  # nothing sent again
        assert json.loads((out / "manifest.json").read_text())["seeds"] == manifest["seeds"]
        assert sorted(r["id"] for r in read_jsonl(out / "data.jsonl")) == kept
        assert rows(out / "embeddings.sqlite") == stored  # nothing embedded twice

        limited = selfchat(server, seeds, tmp_path / "limited", "--semantic-dedup", "--limit", "3")
        assert limited.returncode == 0, limited.stderr
        assert json.loads((tmp_path / "limited" / "manifest.json").read_text())["seeds"]["count"] == 3


def test_off_topic_by_meaning_keeps_other_words_for_the_seed_and_drops_another_topic(tmp_path):
    seeds = write_seeds(tmp_path / "seeds.jsonl", ["What causes renal failure?", "Why do volcanoes erupt?"])

    def reply(body: dict) -> str:
        if "renal" in last_user_text(body):  # on topic, in other words than the seed's
            return ("[Human] Why do kidneys stop working?\n[AI] " + REPLIES["kidney"] +
                    "\n[Human] Can it be treated?\n[AI] Dialysis or a transplant can replace what the kidneys did.")
        return ("[Human] What is a good recipe for bread?\n[AI] Mix flour, water, yeast and salt, knead well, "
                "let it rise and bake it hot.\n[Human] How long should it rise?\n[AI] About an hour, until "
                "it has doubled in size.")

    with ChatServer(api_key=SECRET, reply=reply) as server:
        words = selfchat(server, seeds, tmp_path / "words")
        assert words.returncode == 0, words.stderr
        assert sorted(r["reject"] for r in read_jsonl(tmp_path / "words" / "rejected.jsonl")) == [
            "off_topic", "off_topic"]  # the content-word check misses "kidneys" for "renal"
        meaning = selfchat(server, seeds, tmp_path / "words", "--topic-by-meaning")  # judged again, no request
        assert meaning.returncode == 0, meaning.stderr
        assert server.requests_total == 2
        kept = read_jsonl(tmp_path / "words" / "data.jsonl")
        assert [r["meta"]["seed"] for r in kept] == ["What causes renal failure?"]
        assert [r["reject"] for r in read_jsonl(tmp_path / "words" / "rejected.jsonl")] == ["off_topic"]
        manifest = json.loads((tmp_path / "words" / "manifest.json").read_text())
        assert manifest["filters"]["off_topic"]["by"] == "meaning"


def test_without_the_extra_each_check_of_meaning_is_one_line_and_the_lexical_checks_stay(tmp_path):
    env = without_embed_extra(tmp_path, gen_env(OPENAI_API_KEY=SECRET))
    seeds = write_seeds(tmp_path / "seeds.jsonl", SEEDS[:2])
    with ChatServer(api_key=SECRET, reply=transcript) as server:
        for flag in ("--semantic-dedup", "--topic-by-meaning"):
            proc = selfchat(server, seeds, tmp_path / flag.strip("-"), flag, env=env)
            assert_one_line_error(proc, 2, "pip install 'baleen[embed]'")
            assert not (tmp_path / flag.strip("-")).exists()
        assert server.requests_total == 0
        plain = selfchat(server, seeds, tmp_path / "plain", env=env)
        assert plain.returncode == 0, plain.stderr
        assert json.loads((tmp_path / "plain" / "manifest.json").read_text())["filters"]["off_topic"] == {"share": 0.5}
