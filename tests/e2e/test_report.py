"""`gen report` on folders the test makes: a run folder and a folder of rounds."""
from __future__ import annotations

import json

from tests.helpers import assert_one_line_error, run_gen

PNG = b"\x89PNG\r\n\x1a\n"


def make_run(folder, stage, kept, rejected=(), errors=0, usage=None):
    """kept / rejected: (id, score or None[, reason]) tuples."""
    folder.mkdir(parents=True)

    def rec(rid, score, words=5):
        r = {"id": rid, "source": "t", "messages": [{"role": "user", "content": " ".join(["ask"] * words)},
                                                     {"role": "assistant", "content": " ".join(["answer"] * 3 * words)}],
             "meta": {}}
        if score is not None:
            r.update(score=score, score_expected=score - 0.25)
        return r

    lines = [rec(rid, score, 3 + i) for i, (rid, score) in enumerate(kept)]
    (folder / "data.jsonl").write_text("".join(json.dumps(r) + "\n" for r in lines))
    rej = [{**rec(rid, score), "reject": reason} for rid, score, reason in rejected]
    (folder / "rejected.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rej) + "{broken\n")
    (folder / "errors.jsonl").write_text("".join(json.dumps({"item": f"e{i}", "error": "x"}) + "\n" for i in range(errors)))
    reasons = {}
    for _, _, reason in rejected:
        reasons[reason] = reasons.get(reason, 0) + 1
    manifest = {"stage": stage, "status": "complete", "duration_s": 12.5,
                "counts": {"kept": len(kept), "rejected": len(rejected), "errors": errors, "rejected_by_reason": reasons},
                "usage": usage or {"requests": 10, "prompt_tokens": 1000, "completion_tokens": 200, "cost_usd": 0.0123}}
    (folder / "manifest.json").write_text(json.dumps(manifest))
    return folder


def test_report_on_a_run_folder(tmp_path):
    run = make_run(tmp_path / "chat", "selfchat", [("a", None), ("b", None)], [("c", None, "refusal")], errors=1,
                   usage={"requests": 3, "prompt_tokens": 30, "completion_tokens": 90, "cost_usd": None})
    proc = run_gen("report", run)
    assert proc.returncode == 0, proc.stderr
    report = (run / "report.md").read_text()
    assert "| chat | selfchat | complete | 2 | 1 | 1 |" in report
    assert "| refusal | 1 |" in report and "unknown" in report
    assert "Unreadable lines skipped: chat 1" in report
    pngs = sorted(p.name for p in (run / "report_files").glob("*.png"))
    # no scores in a self-chat run; diversity with baleen[embed] (installed with the test extra)
    assert pngs == ["diversity.png", "lengths.png", "outcomes.png", "usage.png"]
    for name in pngs:
        assert (run / "report_files" / name).read_bytes().startswith(PNG)
        assert f"(report_files/{name})" in report


def test_report_shows_attempts_retries_and_failures_per_run(tmp_path):
    root = tmp_path / "runs"
    usage = {"requests": 8, "cached": 2, "failed_requests": 1, "attempts": 14, "prompt_tokens": 80,
             "completion_tokens": 40, "cost_usd": None,
             "retried": {"429": 3, "5xx": 1, "timeout": 1, "bad_body": 0, "connection": 0, "other": 0}}
    make_run(root / "new", "selfchat", [("a", None)], usage=usage)
    make_run(root / "old", "selfchat", [("b", None)])  # a manifest from before attempts were counted
    proc = run_gen("report", root)
    assert proc.returncode == 0, proc.stderr
    report = (root / "report.md").read_text()
    assert "## Requests" in report
    assert "| new | 8 | 2 | 14 | 3 | 1 | 1 | 0 | 0 | 0 | 1 |" in report
    assert "| old | 10 | - | - | - | - | - | - | - | - | - |" in report


def test_report_on_rounds_compares_kept_ids_and_scores(tmp_path):
    root = tmp_path / "rounds"
    make_run(root / "round0" / "aug", "backtranslate", [(f"r{i}", None) for i in range(6)])
    make_run(root / "round0" / "cur", "curate", [("r0", 5), ("r1", 5), ("r2", 5)],
             [("r3", 4, "below_threshold"), ("r4", 2, "below_threshold"), ("r5", None, "unparsed_score")])
    make_run(root / "round1", "curate", [("r1", 5), ("r2", 5), ("r3", 5), ("r4", 5)],
             [("r0", 4, "below_threshold"), ("r5", 3, "below_threshold")])
    make_run(root / "round10", "curate", [("r1", 5)], [("r2", 4, "not_top")])
    (root / "notes").mkdir()  # not a run: ignored
    proc = run_gen("report", root)
    assert proc.returncode == 0, proc.stderr
    report = (root / "report.md").read_text()
    assert "3 rounds, 4 runs" in report
    order = [report.index(f"| {name} |") for name in ("round0/aug", "round0/cur", "round1", "round10")]
    assert order == sorted(order)  # natural order: round10 after round1
    # round1 vs round0/cur: kept {r1..r4} vs {r0,r1,r2}: shared 2, union 5, new 2, dropped 1
    assert "| round1 | round1 | 4 | +1 | 4.50 | +0.30 | 2 | 0.40 | 2 | 1 |" in report
    assert "| round0 | round0/cur | 3 | - | 4.20 | - |" in report
    pngs = sorted(p.name for p in (root / "report_files").glob("*.png"))
    assert pngs == ["diversity.png", "lengths.png", "outcomes.png", "rounds.png", "scores.png", "usage.png"]
    assert all((root / "report_files" / p).read_bytes().startswith(PNG) for p in pngs)
    assert "| below_threshold | 0 | 2 | 2 | 0 |" in report


def make_train_run(folder, direction, losses, tags, eval_loss=None, dropped=None):
    """A `gen train` folder: only the manifest matters to the report (keys as training/trainer.py writes)."""
    folder.mkdir(parents=True)
    history = [{"step": i + 1, "loss": loss, "lr": 1e-4} for i, loss in enumerate(losses)]
    manifest = {
        "stage": "train", "status": "complete", "base_model": "tiny", "direction": direction,
        "data": {"train": {tag: {"examples": n, "supervised_tokens": sup, "tokens": 2 * sup}
                           for tag, (n, sup) in tags.items()},
                 "eval": {}, "truncated": 0, "dropped": dropped or {}, "dropped_total": sum((dropped or {}).values())},
        "progress": {"step": len(losses), "total_steps": len(losses), "resumed_from": []},
        "losses": {"history": history, "eval_history": [], "final_train_loss": losses[-1],
                   "eval": {"loss": eval_loss, "per_tag": {"seed": eval_loss}} if eval_loss else {}},
        "throughput": {"tokens": 2000, "padded_tokens": 2400, "supervised_tokens": 1500, "train_seconds": 4.0,
                       "tokens_per_s": 500.0, "supervised_tokens_per_s": 375.0},
        "memory": {"cpu_max_rss_mb": 575.2, "cuda_max_allocated_mb": 2048.4},
        "durations": {"this_session_s": 4.93},
    }
    (folder / "manifest.json").write_text(json.dumps(manifest))
    return folder


def test_report_shows_train_runs_in_a_training_section(tmp_path):
    root = tmp_path / "rounds"
    make_run(root / "round0" / "augment", "backtranslate", [(f"r{i}", None) for i in range(4)])
    make_train_run(root / "round0" / "model", "forward", [2.5, 2.1, 1.9], {"seed": (8, 194)}, eval_loss=2.25)
    make_train_run(root / "round1" / "model", "forward", [2.4, 1.8, 1.6],
                   {"seed": (8, 194), "augmented": (3, 1810)}, dropped={"too_long": 2})
    make_run(root / "round1" / "curate", "curate", [("r0", 5), ("r1", 5)], [("r2", 3, "below_threshold")])
    proc = run_gen("report", root)
    assert proc.returncode == 0, proc.stderr
    report = (root / "report.md").read_text()
    # runs table: no records for a model, so "-" rather than 0; the time from the manifest
    assert "| round0/model | train | complete | - | - | - | - | - | - / - | - | 4.9s |" in report
    assert "| round1/curate | curate | complete | 2 | 1 | 0 |" in report
    training = report[report.index("## Training"):report.index("## Between rounds")]
    assert "seed: examples / supervised tokens | augmented: examples / supervised tokens | dropped" in training
    assert "| round0/model | forward | 8 / 194 | - | 0 | 3 | 1.900 | 2.250 | 500.0 | GPU 2,048 MB, RSS 575 MB |" in training
    assert "| round1/model | forward | 8 / 194 | 3 / 1,810 | 2 (too_long 2) | 3 | 1.600 | - |" in training
    assert "(report_files/training.png)" in training
    assert (root / "report_files" / "training.png").read_bytes().startswith(PNG)
    # models are left out of the record plots and stand for no round
    assert "| below_threshold | 0 | 1 |" in report
    assert "| round0 | round0/augment | 4 |" in report
    # a lone train run folder: the runs table and the training section only
    proc = run_gen("report", root / "round1" / "model")
    assert proc.returncode == 0, proc.stderr
    single = (root / "round1" / "model" / "report.md").read_text()
    assert "## Training" in single and "## Scores" not in single and "## Between rounds" not in single


def test_report_refuses_folders_without_runs(tmp_path):
    assert_one_line_error(run_gen("report", tmp_path / "missing"), 2, "no such folder")
    (tmp_path / "empty").mkdir()
    assert_one_line_error(run_gen("report", tmp_path / "empty"), 2, "manifest.json")


def make_eval_run(folder, stage, metrics):
    """A `gen eval` folder: the report reads only its manifest's metrics."""
    folder.mkdir(parents=True)
    manifest = {"stage": stage, "status": "complete", "duration_s": 3.0, "metrics": metrics,
                "counts": {"kept": 4, "rejected": 0, "errors": 0, "rejected_by_reason": {}},
                "usage": {"requests": 4, "prompt_tokens": 100, "completion_tokens": 20, "cost_usd": None}}
    (folder / "manifest.json").write_text(json.dumps(manifest))
    return folder


def curation_metrics(auc, unparsed):
    return {"auc": auc, "unparsed_share": unparsed,
            "threshold": {"5": {"kept": 2, "precision": 1.0, "recall": 0.5},
                          "4": {"kept": 4, "precision": 0.75, "recall": 0.75}}}


def test_report_shows_quality_by_round_from_eval_runs(tmp_path):
    root = tmp_path / "rounds"
    make_run(root / "round0" / "augment", "backtranslate", [(f"r{i}", None) for i in range(4)])
    make_eval_run(root / "round0" / "eval-backward", "eval-backward",
                  {"rouge_l": 0.2134, "passed_share": 0.75, "exact_match": 0.0})
    make_eval_run(root / "round0" / "eval-curation", "eval-curation", curation_metrics(0.5, 0.25))
    make_run(root / "round1" / "curate", "curate", [("r0", 5), ("r1", 5)], [("r2", 3, "below_threshold")])
    make_eval_run(root / "round1" / "eval-curation", "eval-curation", curation_metrics(0.8125, 0.0))
    make_eval_run(root / "round1" / "eval-winrate", "eval-winrate",
                  {"win_rate": 0.625, "ci95": [0.4, 0.85], "judged": 8, "answer_words": 41.5,
                   "baseline_words": 30.0, "length_controlled": None})
    proc = run_gen("report", root)
    assert proc.returncode == 0, proc.stderr
    report = (root / "report.md").read_text()
    quality = report[report.index("## Quality by round"):report.index("## Between rounds")]
    assert "| round0 | 0.213 | 75% | 0% | 0.500 | 25% | 1.00 / 0.50 | 0.75 / 0.75 | - | - | - |" in quality
    assert "| round1 | - | - | - | 0.812 | 0% | 1.00 / 0.50 | 0.75 / 0.75 | 62% [40%, 85%] of 8 | 41.5 / 30.0 | - |" \
        in quality
    assert "(report_files/quality.png)" in quality
    assert (root / "report_files" / "quality.png").read_bytes().startswith(PNG)
    # eval runs have no records: "-" in the runs table, and they never stand for a round
    assert "| round0/eval-curation | eval-curation | complete | - | - | - | - | - |" in report
    assert "| round0 | round0/augment | 4 |" in report
