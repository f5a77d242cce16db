"""Diversity, measured (baleen[embed], the packaged all-MiniLM-L6-v2): `gen eval diversity` on a
hand-made run and rounds folder, its figures recomputed from results.jsonl alone and by hand,
the report's section per round, and both without the extra."""
from __future__ import annotations

import json

from generators.core.diversity import figures
from tests.helpers import assert_one_line_error, gen_env, read_jsonl, run_gen, without_embed_extra

TOPICS = ["How do I bake sourdough bread at home?", "What causes kidney failure?", "Why do volcanoes erupt?",
          "How can I learn to play the guitar?", "What is the best way to save for retirement?",
          "How do I reverse a string in Python?", "Why is the sky blue?", "How do vaccines work?"]


def record(i: int, instruction: str, answer: str, **extra) -> dict:
    return {"id": f"r{i}", "source": "test", "messages": [{"role": "user", "content": instruction},
                                                          {"role": "assistant", "content": answer}], **extra}


def make_run(folder, kept: list[str], rejected: list[str]) -> None:
    folder.mkdir(parents=True)
    (folder / "manifest.json").write_text(json.dumps({"stage": "curate", "status": "complete"}), "utf-8")
    (folder / "data.jsonl").write_text("".join(
        json.dumps(record(i, t, f"An answer about {t.lower()} with a few words.")) + "\n"
        for i, t in enumerate(kept)), "utf-8")
    (folder / "rejected.jsonl").write_text("".join(
        json.dumps(record(100 + i, t, "no", reject="below_threshold")) + "\n" for i, t in enumerate(rejected)), "utf-8")


def test_eval_diversity_figures_per_round_recompute_from_results(tmp_path):
    rounds = tmp_path / "rounds"
    # round 0: every instruction on its own topic, one paraphrase pair; round 1: one topic over and over
    make_run(rounds / "round0" / "cur", TOPICS + ["What leads to renal failure?"], ["Tell me a joke"])
    make_run(rounds / "round1" / "cur", [f"How do I bake sourdough bread{s}" for s in
                                         ("?", " at home?", " quickly?", " with rye flour?", " for beginners?")], [])
    out = tmp_path / "div"
    proc = run_gen("eval", "diversity", rounds, "--out", out)
    assert proc.returncode == 0, proc.stderr
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["stage"] == "eval-diversity" and manifest["settings"]["layout"] == "rounds"
    metrics = manifest["metrics"]
    assert list(metrics) == ["round0", "round1"]
    rows = read_jsonl(out / "results.jsonl")
    assert len(rows) == 9 + 1 + 5 and {r["status"] for r in rows} == {"kept", "rejected"}
    assert figures(rows, manifest["settings"]["threshold"]) == metrics  # recomputed from the results alone
    r0, r1 = metrics["round0"], metrics["round1"]
    # by hand: distinct-1 of round 1's instructions
    tokens = [w for r in rows if r["group"] == "round1" for w in
              r["instruction"].lower().replace("?", " ").split()]
    assert r1["distinct_1_instructions"] == round(len(set(tokens)) / len(tokens), 4)
    assert r0["distinct_1_instructions"] > r1["distinct_1_instructions"]
    assert r0["mean_cosine"] < r1["mean_cosine"]           # one topic over and over is less diverse
    assert r0["near_share"] == round(2 / 9, 4)              # the kidney/renal pair, both ways
    assert r1["near_share"] == 1.0
    assert r0["clusters_90"] >= r1["clusters_90"] >= 1
    kept0 = [r for r in rows if r["group"] == "round0" and r["status"] == "kept"]
    n = len(kept0)
    assert abs(sum(r["mean_cosine"] for r in kept0) / n - r0["mean_cosine"]) < 1e-3
    assert (out / "diversity.png").stat().st_size > 0
    assert (rounds / "round0" / "cur" / "embeddings.sqlite").is_file()  # cached in the measured run

    report = run_gen("report", rounds)
    assert report.returncode == 0, report.stderr
    text = (rounds / "report.md").read_text()
    assert "## Diversity" in text and "| round0 |" in text and "| round1 |" in text
    assert "report_files/diversity.png" in text and (rounds / "report_files" / "diversity.png").is_file()


def test_without_the_extra_eval_diversity_is_one_line_and_the_report_says_why(tmp_path):
    run = tmp_path / "run"
    make_run(run, TOPICS, [])
    env = without_embed_extra(tmp_path, gen_env())
    proc = run_gen("eval", "diversity", run, "--out", tmp_path / "div", env=env)
    assert_one_line_error(proc, 2, "pip install 'baleen[embed]'")
    assert not (tmp_path / "div").exists()
    report = run_gen("report", run, env=env)
    assert report.returncode == 0, report.stderr
    text = (run / "report.md").read_text()
    assert "## Diversity" in text and "pip install 'baleen[embed]'" in text
