"""`--dry-run` end to end: the real CLI in a subprocess against the loopback server. It reads
the inputs as a run would, counts the very requests a real run then sends, sends nothing and
writes no folder."""
from __future__ import annotations

import json
import math
import re

import pytest

import prompts
from tests.backtranslate_fixtures import backward_reply, plain_pages, write_corpus
from tests.chat_server import ChatServer, default_reply
from tests.helpers import assert_one_line_error, gen_env, run_gen, write_seeds

QUESTIONS = [f"How does a {thing} work?" for thing in ("bicycle", "compass", "vaccine", "mortgage", "piano")]
GPT_4O_MINI = (0.15, 0.60)  # dollars per million input, output tokens: the table's gpt-4o-mini


def approx_tokens(body: dict) -> int:
    """The approximation by hand: characters of the messages' contents / 4, rounded up."""
    return math.ceil(sum(len(m["content"]) for m in body["messages"]) / 4)


def figure(stdout: str, pattern: str) -> list[int]:
    found = re.search(pattern, stdout)
    assert found, (pattern, stdout)
    return [int(x) for x in found.groups()]


def costs(input_tokens: int, output_max: int, price=GPT_4O_MINI) -> str:
    """The cost line's figures, computed by hand: input alone .. input and every --max-tokens,
    at list price and at half of it (the batch rate)."""
    low = input_tokens * price[0] / 1e6
    high = low + output_max * price[1] / 1e6
    return f"${low:.4f} .. ${high:.4f} at list price, ${low / 2:.4f} .. ${high / 2:.4f} at batch price"


def gen(command: list[str], server: ChatServer, out, cache, *extra: str, model: str = "gpt-4o-mini"):
    return run_gen(*command, "--backend", "openai", "--base-url", server.base_url, "--model", model,
                   "--out", out, "--cache-dir", cache, "--no-progress", *extra, env=gen_env(OPENAI_API_KEY="k"))


def assert_nothing_sent_or_written(proc, server, *paths) -> None:
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.startswith("dry run of gen ") and "nothing was sent" in proc.stdout
    assert server.requests_total == 0 and server.by_status == {}
    for path in paths:
        assert not path.exists(), path


def test_selfchat_counts_the_requests_a_real_run_sends_and_sends_none(tmp_path):
    seeds = write_seeds(tmp_path / "seeds.jsonl", QUESTIONS)
    out, cache = tmp_path / "out", tmp_path / "cache"
    command = ["selfchat", "--seeds", seeds, "--field", "question"]
    with ChatServer() as server:
        dry = gen(command, server, out, cache, "--dry-run")
        assert_nothing_sent_or_written(dry, server, out, cache)
        assert "requests: 5 first (5 seeds), at most 5 in all" in dry.stdout
        (tokens,) = figure(dry.stdout, r"input tokens: (\d+) in the first requests to gpt-4o-mini "
                                       r"\(≈ chars/4, no tokenizer for gpt-4o-mini\)")
        assert "output tokens: 0 .. 5120 to gpt-4o-mini (--max-tokens 1024 per request)" in dry.stdout
        assert costs(tokens, 5120) in dry.stdout

        real = gen(command, server, out, cache)  # the same command without --dry-run
        assert real.returncode == 0, real.stderr
        assert server.requests_total == 5
        assert tokens == sum(approx_tokens(body) for body in server.bodies)


def test_selfchat_agents_mode_counts_the_first_answer_and_the_turns_in_all(tmp_path):
    seeds = write_seeds(tmp_path / "seeds.jsonl", QUESTIONS[:3] + ["x" * 50])
    out, cache = tmp_path / "out", tmp_path / "cache"
    with ChatServer() as server:
        dry = gen(["selfchat", "--seeds", seeds, "--field", "question", "--mode", "agents", "--max-turns", "3",
                   "--max-seed-chars", "40", "--max-tokens", "100"], server, out, cache, "--dry-run",
                  model="teacher")
        assert_nothing_sent_or_written(dry, server, out, cache)
        # per dialog: 3 answers and 2 person turns; the 50-character seed sends nothing
        assert "requests: 3 first (3 seeds), at most 15 in all" in dry.stdout
        system = prompts.render("selfchat_assistant")
        by_hand = sum(math.ceil((len(system) + len(q)) / 4) for q in QUESTIONS[:3])
        assert f"input tokens: {by_hand} in the first requests to teacher" in dry.stdout
        assert "output tokens: 0 .. 1500 to teacher (--max-tokens 100 per request)" in dry.stdout
        assert "1 seeds over --max-seed-chars are rejected without a request" in dry.stdout
        assert "cost unknown: no price for teacher" in dry.stdout


def test_backtranslate_counts_every_segment_request_and_sends_none(tmp_path):
    corpus = write_corpus(tmp_path / "corpus.jsonl", plain_pages(3, sections=2))
    out, cache = tmp_path / "out", tmp_path / "cache"
    command = ["backtranslate", "--corpus", corpus]
    with ChatServer(reply=backward_reply) as server:
        dry = gen(command, server, out, cache, "--dry-run")
        assert_nothing_sent_or_written(dry, server, out, cache)
        (first, items) = figure(dry.stdout, r"requests: (\d+) first \((\d+) segments\)")
        (tokens,) = figure(dry.stdout, r"input tokens: (\d+) in the first requests to gpt-4o-mini")
        assert f"output tokens: 0 .. {first * 256} to gpt-4o-mini (--max-tokens 256 per request)" in dry.stdout
        assert costs(tokens, first * 256) in dry.stdout

        real = gen(command, server, out, cache)
        assert real.returncode == 0, real.stderr
        assert first == items == server.requests_total == 6
        assert tokens == sum(approx_tokens(body) for body in server.bodies)


def curate_input(path, count: int):
    rows = [{"id": f"r{i}", "source": "clueweb", "tag": "augmented",
             "messages": [{"role": "user", "content": f"Explain how machine number {i} turns heat into motion"},
                          {"role": "assistant", "content": f"Machine {i} burns fuel; the gas pushes a piston."}]}
            for i in range(count)]
    rows.append(dict(rows[0]))  # the same id again: the prefilter drops it before any request
    path.write_text("".join(json.dumps(r) + "\n" for r in rows), "utf-8")
    return path


def test_curate_counts_the_ratings_the_prefilter_lets_through_and_sends_none(tmp_path):
    inp = curate_input(tmp_path / "aug.jsonl", 4)
    out, cache = tmp_path / "out", tmp_path / "cache"
    with ChatServer(reply=lambda body: "Clear and correct.\nScore: 4") as server:
        dry = gen(["curate", "--input", inp], server, out, cache, "--dry-run")
        assert_nothing_sent_or_written(dry, server, out, cache)  # no prefiltered.jsonl, no prefilter.json
        assert "requests: 4 first (4 records), at most 12 in all" in dry.stdout  # --retries-unparsed 2
        assert "the prefilter drops, before any request: duplicate_id 1" in dry.stdout
        (tokens,) = figure(dry.stdout, r"input tokens: (\d+) in the first requests to gpt-4o-mini")
        assert costs(tokens, 12 * 512) in dry.stdout

        unknown = gen(["curate", "--input", inp], server, out, cache, "--dry-run", model="judge")
        assert_nothing_sent_or_written(unknown, server, out, cache)
        assert "cost unknown: no price for judge" in unknown.stdout and "$" not in unknown.stdout

        real = gen(["curate", "--input", inp], server, out, cache)
        assert real.returncode == 0, real.stderr
        assert server.requests_total == 4
        assert tokens == sum(approx_tokens(body) for body in server.bodies)


def test_eval_backward_counts_one_request_per_pair(tmp_path):
    pairs = tmp_path / "pairs.jsonl"
    pairs.write_text("".join(json.dumps({"instruction": f"Question {i}?", "output": f"Answer number {i}."}) + "\n"
                             for i in range(3)), "utf-8")
    out, cache = tmp_path / "out", tmp_path / "cache"
    with ChatServer() as server:
        dry = gen(["eval", "backward", "--pairs", pairs], server, out, cache, "--dry-run")
        assert_nothing_sent_or_written(dry, server, out, cache)
        assert "requests: 3 first (3 pairs), at most 3 in all" in dry.stdout
        by_hand = sum(math.ceil(len(prompts.render("backward", output=f"Answer number {i}.")) / 4) for i in range(3))
        assert f"input tokens: {by_hand} in the first requests to gpt-4o-mini" in dry.stdout


def test_eval_winrate_counts_both_answers_and_curation_every_candidate(tmp_path):
    instructions = tmp_path / "instructions.jsonl"
    instructions.write_text("".join(json.dumps({"instruction": f"Name a colour number {i}."}) + "\n"
                                    for i in range(2)), "utf-8")
    out, cache = tmp_path / "out", tmp_path / "cache"
    with ChatServer() as server:
        dry = gen(["eval", "winrate", "--instructions", instructions, "--baseline-model", "old", "--judge-model",
                   "judge"], server, out, cache, "--dry-run", model="new")
        assert_nothing_sent_or_written(dry, server, out, cache)
        # per instruction: both answers first, then up to 4 judge requests (both orders, one retry each)
        assert "requests: 4 first (2 instructions), at most 12 in all" in dry.stdout
        system = prompts.render("tag_seed")
        by_hand = sum(math.ceil((len(system) + len(f"Name a colour number {i}.")) / 4) for i in range(2))
        for model in ("new", "old"):
            assert f"input tokens: {by_hand} in the first requests to {model}" in dry.stdout
        assert "cost unknown: no price for new, no price for old" in dry.stdout

        pairs = tmp_path / "pairs.jsonl"
        pairs.write_text("".join(json.dumps({"instruction": f"Question {i}?", "output": f"Answer {i}. More."}) + "\n"
                                 for i in range(3)), "utf-8")
        dry = gen(["eval", "curation", "--pairs", pairs], server, out, cache, "--dry-run")
        assert_nothing_sent_or_written(dry, server, out, cache)
        assert "requests: 12 first (12 candidates), at most 36 in all" in dry.stdout  # 3 true + 3 x 3 negatives


def test_a_thousand_seeds(tmp_path):
    seeds = write_seeds(tmp_path / "seeds.jsonl", [f"How does machine number {i} work?" for i in range(1000)])
    out, cache = tmp_path / "out", tmp_path / "cache"
    with ChatServer() as server:
        dry = gen(["selfchat", "--seeds", seeds, "--field", "question"], server, out, cache, "--dry-run")
        assert_nothing_sent_or_written(dry, server, out, cache)
        assert "requests: 1000 first (1000 seeds), at most 1000 in all" in dry.stdout
        assert "output tokens: 0 .. 1024000 to gpt-4o-mini" in dry.stdout


@pytest.mark.parametrize("extra, needle", [
    (["--seeds", "MISSING"], "MISSING"),
    (["--seeds", "BAD"], "BAD"),
])
def test_bad_input_still_exits_2_and_leaves_no_folder(tmp_path, extra, needle):
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"question": "fine"}\n{not json\n', "utf-8")
    args = [a.replace("MISSING", str(tmp_path / "missing.jsonl")).replace("BAD", str(bad)) for a in extra]
    out = tmp_path / "out"
    with ChatServer() as server:
        proc = gen(["selfchat", *args, "--field", "question"], server, out, tmp_path / "cache", "--dry-run")
        assert_one_line_error(proc, 2)
        assert server.requests_total == 0 and not out.exists()


@pytest.mark.slow
def test_a_local_model_is_counted_with_its_own_tokenizer(tmp_path, tiny_model_dir):
    from transformers import AutoTokenizer

    seeds = write_seeds(tmp_path / "seeds.jsonl", QUESTIONS)
    out, cache = tmp_path / "out", tmp_path / "cache"
    proc = run_gen("selfchat", "--seeds", seeds, "--field", "question", "--backend", "hf", "--model", tiny_model_dir,
                   "--out", out, "--cache-dir", cache, "--dry-run", "--price", "1,2")
    assert proc.returncode == 0, proc.stderr
    assert not out.exists() and not cache.exists()
    tokenizer = AutoTokenizer.from_pretrained(tiny_model_dir)  # the chat template's prompt, as hf feeds it
    by_hand = 0
    for question in QUESTIONS:
        messages = [{"role": "user", "content": prompts.render("selfchat_transcript", seed=question)}]
        text = tokenizer.apply_chat_template(messages, add_generation_prompt=True, tokenize=False)
        by_hand += len(tokenizer(text, add_special_tokens=False)["input_ids"])
    assert f"input tokens: {by_hand} in the first requests to {tiny_model_dir} (the tokenizer of " in proc.stdout
    assert "output tokens: 0 .. 2560" in proc.stdout  # the local default: 512 per request
    assert costs(by_hand, 2560, price=(1.0, 2.0)) in proc.stdout
