"""`gen export`, in process: every format loaded back the way its consumers load it (datasets,
a real tokenizer's chat template), filters, the stable split, rounds, provenance and the card,
DEST written whole or not at all. Input records and run folders are built here by hand."""
from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest

from generators.core.errors import UsageError
from generators.outputs.export import hub, split, write
from generators.outputs.export.cli import export_command
from tests import tiny_model

TAG_SEED = "Answer in the style of an AI Assistant."
TAG_AUG = "Answer with knowledge from web search."
BT_META = {"model": "bt-model", "adapter": "runs/myx@1234abcd", "template": "backward@0a1b2c3d"}


# ---------------------------------------------------------------- building input by hand

def record(rid: str, *, tag: str | None = "augmented", source: str = "web", score: int | None = None,
           turns: list[tuple[str, str]] | None = None, rater: str = "judge-model", **extra: Any) -> dict:
    messages = [{"role": r, "content": c} for r, c in (turns or [("user", f"Question {rid}?"),
                                                                  ("assistant", f"Answer {rid}.")])]
    out = {"id": rid, "source": source, "messages": messages, "tag": tag,
           "meta": {**BT_META, "curation": {"rater": rater, "template": "curate_rubric@9f8e7d6c",
                                            "adapter": extra.pop("rater_adapter", None)}}}
    if tag is None:
        del out["tag"]
    if score is not None:
        out.update(score=score, score_expected=score - 0.25, reason="clear and correct")
    out.update(extra)
    return out


def write_jsonl(path: Path, rows: list[dict]) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows), "utf-8")
    return path


def write_manifest(folder: Path, manifest: dict) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "manifest.json").write_text(json.dumps(manifest), "utf-8")


def backtranslate_manifest(kept: int, adapter: str = "runs/myx@1234abcd") -> dict:
    return {"stage": "backtranslate", "status": "complete",
            "settings": {"backend": "hf", "model": "bt-model", "seed": 0, "adapter": adapter,
                         "template": "backward@0a1b2c3d", "sampling": {"temperature": 0.7},
                         "segments": {"min_chars": 600, "max_chars": 3000},
                         "postfilter": {"max_copied_words": 12}},
            "corpus": {"spec": "pages/", "field": None},
            "counts": {"kept": kept, "rejected": 3, "errors": 0, "rejected_by_reason": {"not_a_request": 3}},
            "usage": {"requests": kept + 3, "cached": 0, "prompt_tokens": 5000, "completion_tokens": 700,
                      "total_tokens": 5700, "cost_usd": None},
            "versions": {"python": "3.12", "baleen": "0.1.0"}}


def curate_manifest(input_path: Path, kept: int, rejected: dict[str, int], rater: str, adapter: str | None,
                    threshold: int = 4) -> dict:
    return {"stage": "curate", "status": "complete",
            "settings": {"rater": {"backend": "openai", "model": rater, "seed": 0, "adapter": adapter,
                                   "template": "curate_rubric@9f8e7d6c", "score_mode": "reasoned"},
                         "select": {"threshold": threshold, "top": None, "top_frac": None},
                         "filters": {"min_words": 3, "lang": "en"}, "decontaminate": None,
                         "dedup": {"threshold": 0.9}},
            "input": {"path": str(input_path), "records": kept + sum(rejected.values())},
            "counts": {"kept": kept, "rejected": sum(rejected.values()), "errors": 0,
                       "rejected_by_reason": rejected},
            "reasons": {"below_threshold": "scored below --threshold"},
            "scores": {"rated": 9, "histogram": {"1": 1, "2": 1, "3": 1, "4": 2, "5": 4}, "mean": 3.89,
                       "mean_expected": 3.7},
            "usage": {"requests": 9, "cached": 2, "prompt_tokens": 1800, "completion_tokens": 240,
                      "total_tokens": 2040, "cost_usd": 0.0123},
            "versions": {"python": "3.12", "baleen": "0.1.0"}}


def train_manifest(direction: str) -> dict:
    return {"stage": "train", "status": "complete", "base_model": "smollm2-135m", "direction": direction,
            "settings": {"base": "smollm2-135m", "data": [], "seed_data": "oasst1", "seed_limit": 3200},
            "templates": {"tag_seed": "tag_seed@11111111", "tag_augmented": "tag_augmented@22222222",
                          "backward": "backward@0a1b2c3d"},
            "weights": {"seed": 1.0, "augmented": 1.0},
            "data": {"train": {"seed": {"examples": 30, "supervised_tokens": 900, "tokens": 2000}}}}


CUR_RECORDS = [
    record("r0", tag="seed", source="oasst", score=5),
    record("r1", score=4, turns=[("user", "What is a baleen whale?"), ("assistant", "A whale that filters food."),
                                 ("user", "Name one."), ("assistant", "The humpback.")]),
    record("r2", score=2, turns=[("system", "Be brief."), ("user", "Café or tea ☕?"), ("assistant", "Tea.")]),
    record("r3", tag="seed", source="oasst", score=5,
           turns=[("user", "Hi?"), ("assistant", "Hello."), ("user", "unanswered last question")]),
    record("r4", score=3),
]


def make_run(root: Path) -> Path:
    """runs/aug (backtranslate) → runs/cur (curate), as `gen curate --input runs/aug/data.jsonl` leaves them."""
    aug = root / "aug"
    write_jsonl(aug / "data.jsonl", [record(f"a{i}") for i in range(8)])
    write_manifest(aug, backtranslate_manifest(8))
    cur = root / "cur"
    write_jsonl(cur / "data.jsonl", CUR_RECORDS)
    write_jsonl(cur / "rejected.jsonl", [
        {**record("x0", score=1), "reject": "below_threshold"},
        {"id": "x1", "source": "web", "messages": [], "meta": {}, "reject": "seed_too_long"}])
    write_manifest(cur, curate_manifest(aug / "data.jsonl", 5, {"below_threshold": 1, "seed_too_long": 1},
                                        "judge-model", None))
    return cur


def make_rounds(root: Path) -> Path:
    """round0/{backward,model,augment}, round1/{curate,model}, round2/{curate,model}, as rounds.sh writes them."""
    r0 = root / "round0"
    write_manifest(r0 / "backward", train_manifest("backward"))
    write_manifest(r0 / "model", train_manifest("forward"))
    candidates = [record(f"c{i}", score=None) for i in range(6)]
    write_jsonl(r0 / "augment" / "data.jsonl", candidates)
    write_manifest(r0 / "augment", backtranslate_manifest(6, adapter=f"{r0}/backward@aaaa1111"))
    for k, kept_ids in ((1, [0, 1, 2, 3]), (2, [1, 2, 4])):
        rk = root / f"round{k}"
        adapter = f"{root}/round{k - 1}/model"
        kept = [record(f"c{i}", score=5, rater="smollm2-135m", rater_adapter=adapter) for i in kept_ids]
        write_jsonl(rk / "curate" / "data.jsonl", kept)
        write_jsonl(rk / "curate" / "rejected.jsonl",
                    [{**record(f"c{i}", score=3), "reject": "below_threshold"} for i in range(6) if i not in kept_ids])
        write_manifest(rk / "curate", curate_manifest(r0 / "augment" / "data.jsonl", len(kept),
                                                      {"below_threshold": 6 - len(kept)}, "smollm2-135m", adapter,
                                                      threshold=5))
        write_manifest(rk / "model", train_manifest("forward"))
        (rk / "lineage.json").write_text(json.dumps({
            "round": f"round{k}", "rater": adapter, "base": "smollm2-135m",
            "outputs": {"curated": str(rk / "curate" / "data.jsonl"), "adapter": str(rk / "model")},
            "counts": {"curate": {"kept": len(kept), "rejected": 6 - len(kept)}}}))
    return root


@pytest.fixture(scope="module")
def inputs(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("inputs")
    return {"cur": make_run(root / "runs"), "rounds": make_rounds(root / "rounds")}


@pytest.fixture(scope="module")
def tokenizer():
    return tiny_model.build_tokenizer()


def gen_export(capsys: pytest.CaptureFixture, *args: object) -> str:
    """Run the click command in this process; its summary line."""
    export_command.main([str(a) for a in args], prog_name="gen export", standalone_mode=False)
    return capsys.readouterr().out.strip()


def load(folder: Path, tmp_path: Path):
    import datasets

    return datasets.load_dataset(str(folder), cache_dir=str(tmp_path / "hf-cache"))


def read_jsonl(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text("utf-8").splitlines() if line.strip()]


def chat(tokenizer, messages: list[dict]) -> str:
    return tokenizer.apply_chat_template(messages, tokenize=False)


def expected_messages(rec: dict, *, tags: bool) -> list[dict]:
    """What gen train would see for this record: answered turns, the tag sentence as system text."""
    messages = [dict(m) for m in rec["messages"]]
    while messages[-1]["role"] != "assistant":
        messages.pop()
    if tags and rec.get("tag"):
        sentence = TAG_SEED if rec["tag"] == "seed" else TAG_AUG
        if messages[0]["role"] == "system":
            messages[0] = {"role": "system", "content": messages[0]["content"] + "\n\n" + sentence}
        else:
            messages.insert(0, {"role": "system", "content": sentence})
    return messages


# ---------------------------------------------------------------- formats, loaded back as consumers do

def test_sharegpt_loads_with_datasets_and_renders_through_a_chat_template(inputs, tmp_path, capsys, tokenizer):
    out = tmp_path / "sharegpt"
    line = gen_export(capsys, "--input", inputs["cur"], "--format", "sharegpt", "--with-tags", "--out", out)
    assert line == f"export: 5 train records (sharegpt) in {out}"
    ds = load(out, tmp_path)["train"]  # as LLaMA-Factory and Axolotl read it
    assert ds.column_names == ["conversations"] and len(ds) == 5
    role_of = {"system": "system", "human": "user", "gpt": "assistant"}
    for row, rec in zip(ds, CUR_RECORDS):
        messages = [{"role": role_of[t["from"]], "content": t["value"]} for t in row["conversations"]]
        assert chat(tokenizer, messages) == chat(tokenizer, expected_messages(rec, tags=True))
    assert [t["from"] for t in ds[1]["conversations"]] == ["system", "human", "gpt", "human", "gpt"]
    assert ds[2]["conversations"][0]["value"] == f"Be brief.\n\n{TAG_AUG}"  # tag joins the record's own system turn
    assert ds[3]["conversations"][-1]["from"] == "gpt"  # the unanswered last question is left out
    prov = read_jsonl(out / "provenance.jsonl")
    assert [p["id"] for p in prov] == ["r0", "r1", "r2", "r3", "r4"]
    assert prov[0]["model"] == "bt-model" and prov[0]["rater"] == "judge-model" and prov[0]["split"] == "train"
    assert prov[0]["template"] == "backward@0a1b2c3d" and prov[0]["rater_template"] == "curate_rubric@9f8e7d6c"


def test_openai_lines_hold_messages_only_and_end_on_an_answer(inputs, tmp_path, capsys, tokenizer):
    out = tmp_path / "openai"
    gen_export(capsys, "--input", inputs["cur"], "--format", "openai", "--with-tags", "--include", "rejected",
               "--out", out)
    lines = read_jsonl(out / "train.jsonl")
    assert len(lines) == 6  # 5 kept + x0 (x1 has no dialog)
    for line in lines:  # OpenAI's fine-tuning format: nothing but messages, roles it knows, an answer last
        assert set(line) == {"messages"}
        assert all(set(m) == {"role", "content"} and m["role"] in ("system", "user", "assistant")
                   for m in line["messages"])
        assert line["messages"][-1]["role"] == "assistant"
        assert line["messages"][0]["role"] == "system"
    assert lines[0]["messages"][0]["content"] == TAG_SEED and lines[1]["messages"][0]["content"] == TAG_AUG
    for line, rec in zip(lines, CUR_RECORDS):
        assert chat(tokenizer, line["messages"]) == chat(tokenizer, expected_messages(rec, tags=True))
    prov = read_jsonl(out / "provenance.jsonl")  # the reject reason lives beside the lines
    assert [p.get("reject") for p in prov] == [None] * 5 + ["below_threshold"]


def test_openai_without_tags_has_no_system_sentence(inputs, tmp_path, capsys):
    out = tmp_path / "plain"
    gen_export(capsys, "--input", inputs["cur"], "--format", "openai", "--out", out)
    first = read_jsonl(out / "train.jsonl")[0]["messages"]
    assert first == CUR_RECORDS[0]["messages"]


def test_alpaca_takes_the_first_exchange(inputs, tmp_path, capsys):
    out = tmp_path / "alpaca"
    gen_export(capsys, "--input", inputs["cur"], "--format", "alpaca", "--tag-text", "seed=Be a helpful assistant.",
               "--out", out)
    ds = load(out, tmp_path)["train"]
    assert set(ds.column_names) == {"instruction", "input", "output", "system"}
    rows = list(ds)
    assert rows[1]["instruction"] == "What is a baleen whale?" and rows[1]["output"] == "A whale that filters food."
    assert rows[0]["system"] == "Be a helpful assistant." and rows[1]["system"] == TAG_AUG  # --tag-text overrides seed only
    assert rows[2]["system"] == f"Be brief.\n\n{TAG_AUG}" and rows[2]["input"] == ""
    prompt = "### Instruction:\n{instruction}\n\n### Response:\n{output}".format(**rows[2])  # the Alpaca template
    assert prompt == "### Instruction:\nCafé or tea ☕?\n\n### Response:\nTea."


def llama_factory_entries() -> dict:
    """The dataset_info.json example docs/export.md gives for LLaMA-Factory."""
    text = (Path(__file__).resolve().parents[2] / "docs" / "export.md").read_text("utf-8")
    blocks = [json.loads(b) for b in re.findall(r"^```json\n(.*?)^```", text, re.M | re.S) if '"file_name"' in b]
    assert len(blocks) == 1, "docs/export.md gives one dataset_info.json example"
    return blocks[0]


def test_the_llama_factory_example_reads_the_split_file_with_our_columns(inputs, tmp_path, capsys):
    """What LLaMA-Factory's converters look up, per entry of the docs' example: the file (a data
    file, never provenance.jsonl), the columns, and for sharegpt the role tags of every turn."""
    entries = llama_factory_entries()
    assert set(entries) == {"baleen_sharegpt", "baleen_alpaca"}
    for name, entry in entries.items():
        fmt = entry["formatting"]
        assert name == f"baleen_{fmt}" and entry["file_name"] == f"exports/{fmt}/train.jsonl"
        gen_export(capsys, "--input", inputs["cur"], "--format", fmt, "--with-tags", "--out",
                   tmp_path / entry["file_name"].rpartition("/")[0])
        rows = read_jsonl(tmp_path / entry["file_name"])
        assert len(rows) == 5
        for row in rows:  # every column the entry names is a field of every row
            assert set(entry["columns"].values()) <= set(row), (name, row)
        if fmt == "sharegpt":
            tags = entry["tags"]
            column = entry["columns"]["messages"]
            roles = {tags["user_tag"], tags["assistant_tag"], tags["system_tag"]}
            for row in rows:
                turns = row[column]
                assert all(set(t) == {tags["role_tag"], tags["content_tag"]} and t[tags["role_tag"]] in roles
                           for t in turns)
                body = turns[1:] if turns[0][tags["role_tag"]] == tags["system_tag"] else turns
                assert [t[tags["role_tag"]] for t in body] == [tags["user_tag"], tags["assistant_tag"]] * (len(body) // 2)


def test_messages_are_the_records_without_meta(inputs, tmp_path, capsys, tokenizer):
    out = tmp_path / "messages"
    gen_export(capsys, "--input", inputs["cur"], "--format", "messages", "--out", out)
    lines = read_jsonl(out / "train.jsonl")
    assert lines == [{k: v for k, v in rec.items() if k != "meta"} for rec in CUR_RECORDS]
    ds = load(out, tmp_path)["train"]  # TRL's SFTTrainer reads a `messages` column
    assert chat(tokenizer, ds[1]["messages"]) == chat(tokenizer, CUR_RECORDS[1]["messages"])


def test_hf_folder_loads_with_load_dataset_and_carries_provenance(inputs, tmp_path, capsys, tokenizer):
    import yaml

    out = tmp_path / "hf"
    line = gen_export(capsys, "--input", inputs["cur"], "--format", "hf", "--include", "rejected",
                      "--split", "train=0.5,test=0.5", "--seed", "3", "--out", out)
    ds = load(out, tmp_path)
    sizes = {name: len(ds[name]) for name in ds}
    assert sum(sizes.values()) == 6 and line.startswith(f"export: {sizes['train']} train, {sizes['test']} test")
    assert sorted(p.name for p in (out / "data").iterdir()) == [f"{s}-00000-of-00001.parquet" for s in sorted(ds)]
    rows = {r["id"]: r for name in ds for r in ds[name]}
    assert rows["x0"]["reject"] == "below_threshold" and rows["r0"]["reject"] is None
    assert rows["r1"]["score"] == 4 and rows["r1"]["score_expected"] == 3.75 and rows["r1"]["tag"] == "augmented"
    assert rows["r1"]["model"] == "bt-model" and rows["r1"]["adapter"] == "runs/myx@1234abcd"
    assert rows["r1"]["rater"] == "judge-model" and rows["r1"]["stage"] == "curate" and rows["r1"]["round"] is None
    assert ds[next(iter(ds))].features["score"].dtype == "int64"
    assert chat(tokenizer, rows["r3"]["messages"]) == chat(tokenizer, expected_messages(CUR_RECORDS[3], tags=False))
    for name in ds:  # each split holds exactly the records the hash puts there
        assert all(split.assign(r["id"], (("train", 0.5), ("test", 0.5)), 3) == name for r in ds[name])

    card = (out / "README.md").read_text("utf-8")
    header = yaml.safe_load(card.split("---")[1])
    assert header["license"] == "other" and header["license_name"] == "fill-me-in"
    assert {f["split"]: f["path"] for f in header["configs"][0]["data_files"]} == {
        name: f"data/{name}-*" for name in ("train", "test") if sizes.get(name)}
    assert "Fill this in before you share the data" in card
    for fact in ("`bt-model`", "`backward@0a1b2c3d`", "`curate_rubric@9f8e7d6c`", "rater `judge-model` (openai)",
                 '"threshold": 4', '"max_copied_words": 12', "| below_threshold | 1 | scored below --threshold |",
                 "| seed_too_long | 1 |", "| records | 1 | 1 | 1 | 2 | 4 | 3.89 | 3.7 |",
                 "2,040 tokens (1,800 prompt + 240 completion); cost $0.0123", "cost unknown",
                 "| aug | backtranslate |", "| cur | curate |", "hash of its id and the seed"):
        assert fact in card, fact
    assert card.index("| aug | backtranslate |") < card.index("| cur | curate |")  # oldest run first
    doc = json.loads((out / "provenance.json").read_text("utf-8"))
    assert [r["label"] for r in doc["runs"]] == ["aug", "cur"]
    assert doc["totals"]["total_tokens"] == 5700 + 2040 and doc["totals"]["cost_usd"] is None  # aug had no price
    assert doc["counts"]["skipped_no_answer"] == 1 and doc["export"]["seed"] == 3


def test_dpo_reads_preferences_and_refuses_without_them(tmp_path, capsys, tokenizer):
    run = tmp_path / "pref-run"
    write_manifest(run, {"stage": "curate", "status": "complete"})
    write_jsonl(run / "data.jsonl", CUR_RECORDS)
    with pytest.raises(UsageError, match="--format dpo needs preference data"):
        gen_export(capsys, "--input", run, "--format", "dpo", "--out", tmp_path / "none")
    with pytest.raises(UsageError, match="--format dpo needs preference data"):  # records are no preferences
        gen_export(capsys, "--input", run / "data.jsonl", "--format", "dpo", "--out", tmp_path / "none")
    assert not (tmp_path / "none").exists()
    write_jsonl(run / "preferences.jsonl", [
        {"prompt": "2+2?", "chosen": "4", "rejected": "5", "tag": "seed", "score": 5},
        {"prompt": "Name a whale.", "chosen": "The humpback.", "rejected": "The shark.", "score": 4},
        {"prompt": "Skip me", "chosen": "a", "rejected": "b", "tag": "seed", "score": 1}])
    out = tmp_path / "dpo"
    line = gen_export(capsys, "--input", run, "--format", "dpo", "--min-score", "4", "--out", out)
    assert line == f"export: 2 train records (dpo) in {out}; dropped 1 by --min-score"
    ds = load(out, tmp_path)["train"]  # TRL's DPOTrainer takes exactly these columns
    assert ds.column_names == ["prompt", "chosen", "rejected"]
    assert list(ds) == [{"prompt": "2+2?", "chosen": "4", "rejected": "5"},
                        {"prompt": "Name a whale.", "chosen": "The humpback.", "rejected": "The shark."}]

    conversational = write_jsonl(tmp_path / "conv.jsonl", [
        {"prompt": [{"role": "user", "content": "Name a whale."}],
         "chosen": [{"role": "assistant", "content": "The humpback."}],
         "rejected": [{"role": "assistant", "content": "The shark."}]}])
    out = tmp_path / "dpo-conv"
    gen_export(capsys, "--input", conversational, "--format", "dpo", "--out", out)
    row = load(out, tmp_path)["train"][0]
    # TRL's conversational form: the prompt, then each answer, through the chat template
    prompt = tokenizer.apply_chat_template(row["prompt"], tokenize=False, add_generation_prompt=True)
    assert chat(tokenizer, row["prompt"] + row["chosen"]) == prompt + "The humpback.<|im_end|>\n"
    assert chat(tokenizer, row["prompt"] + row["rejected"]) == prompt + "The shark.<|im_end|>\n"


# ---------------------------------------------------------------- selection and split

def test_filters_by_tag_source_and_score(inputs, tmp_path, capsys):
    out = tmp_path / "f"
    line = gen_export(capsys, "--input", inputs["cur"], "--format", "messages", "--tag", "augmented",
                      "--source", "web", "--min-score", "3", "--out", out)
    assert [r["id"] for r in read_jsonl(out / "train.jsonl")] == ["r1", "r4"]
    assert line == f"export: 2 train records (messages) in {out}; dropped 2 by --tag, 1 by --min-score"
    with pytest.raises(UsageError, match="nothing to export .* 5 read, dropped 5 by --min-score"):
        gen_export(capsys, "--input", inputs["cur"], "--format", "messages", "--min-score", "6",
                   "--out", tmp_path / "empty")
    assert not (tmp_path / "empty").exists()


def test_split_is_seeded_stable_and_near_its_fractions():
    splits = split.parse("train=0.9,test=0.1")
    ids = [f"id-{i}" for i in range(4000)]
    first = {i: split.assign(i, splits, 7) for i in ids}
    assert {i: split.assign(i, splits, 7) for i in reversed(ids[:100])} == {i: first[i] for i in ids[:100]}
    assert abs(sum(v == "test" for v in first.values()) / len(ids) - 0.1) < 0.02
    other_seed = {i: split.assign(i, splits, 8) for i in ids}
    assert other_seed != first


def test_a_record_keeps_its_split_when_the_data_grows(tmp_path, capsys):
    small = write_jsonl(tmp_path / "small.jsonl", [record(f"s{i}", score=5) for i in range(40)])
    big = write_jsonl(tmp_path / "big.jsonl", [record(f"s{i}", score=5) for i in range(99, -1, -1)])
    where: list[dict[str, str]] = []
    for source in (small, big):
        out = tmp_path / f"out-{source.stem}"
        gen_export(capsys, "--input", source, "--format", "messages", "--split", "train=0.7,test=0.3", "--out", out)
        where.append({r["id"]: name for name in ("train", "test") for r in read_jsonl(out / f"{name}.jsonl")})
    assert all(where[1][rid] == name for rid, name in where[0].items())
    assert set(where[1].values()) == {"train", "test"}
    out = tmp_path / "out-big"
    files = {name: read_jsonl(out / f"{name}.jsonl") for name in ("train", "test")}
    for p in read_jsonl(out / "provenance.jsonl"):  # each provenance line points at its record
        assert files[p["split"]][p["line"] - 1]["id"] == p["id"]


def test_parquet_is_written_in_row_groups_and_keeps_order(tmp_path, capsys, monkeypatch):
    monkeypatch.setattr(write.ParquetFile, "BATCH", 2)
    source = write_jsonl(tmp_path / "five.jsonl", [record(f"p{i}", score=i % 5 + 1) for i in range(5)])
    out = tmp_path / "hf"
    gen_export(capsys, "--input", source, "--format", "hf", "--out", out)
    import pyarrow.parquet as pq

    parquet = pq.ParquetFile(out / "data" / "train-00000-of-00001.parquet")
    assert parquet.metadata.num_row_groups == 3
    assert parquet.read().column("id").to_pylist() == [f"p{i}" for i in range(5)]


@pytest.mark.parametrize("spec, needle", [
    ("train=0.9,test=0.2", "add up to 1.1"), ("train=0.5,train=0.5", "named twice"), ("train", "NAME=FRACTION"),
    ("train=x,test=0.5", "not a number"), ("train=1.5", "at most 1"), ("tr ain=1", "NAME=FRACTION")])
def test_bad_split_is_refused(spec, needle):
    with pytest.raises(UsageError, match=needle):
        split.parse(spec)


# ---------------------------------------------------------------- rounds and provenance

def test_rounds_folder_exports_the_latest_round_with_provenance_over_the_rounds(inputs, tmp_path, capsys):
    out = tmp_path / "rounds-hf"
    line = gen_export(capsys, "--input", inputs["rounds"], "--format", "hf", "--out", out)
    assert line == f"export: 3 train records (hf) in {out}"
    ds = load(out, tmp_path)["train"]
    assert [r["id"] for r in ds] == ["c1", "c2", "c4"] and set(ds["round"]) == {"round2"}
    assert set(ds["rater_adapter"]) == {f"{inputs['rounds']}/round1/model"}
    doc = json.loads((out / "provenance.json").read_text("utf-8"))
    # rounds in order, the runs of a round in natural order of their names (as gen report lists them)
    assert [r["label"] for r in doc["runs"]] == ["round0/augment", "round0/backward", "round0/model",
                                                  "round1/curate", "round1/model", "round2/curate"]
    assert [r["round"] for r in doc["rounds"]] == ["round1", "round2"]
    card = (out / "README.md").read_text("utf-8")
    assert "round `round2` of the rounds folder" in card
    assert "| round1 |" in card and "| round2 |" in card and "base (backward) `smollm2-135m`" in card
    assert f"rater `smollm2-135m` (openai, adapter `{inputs['rounds']}/round1/model`)" in card

    out1 = tmp_path / "round1"
    gen_export(capsys, "--input", inputs["rounds"], "--round", "1", "--format", "messages", "--out", out1)
    assert [r["id"] for r in read_jsonl(out1 / "train.jsonl")] == ["c0", "c1", "c2", "c3"]
    assert {p["round"] for p in read_jsonl(out1 / "provenance.jsonl")} == {"round1"}
    labels = [r["label"] for r in json.loads((out1 / "provenance.json").read_text())["runs"]]
    assert labels[-1] == "round1/curate" and "round1/model" not in labels and "round2/curate" not in labels
    with pytest.raises(UsageError, match=r"--round 0: no curate run .* rounds with curated data: 1, 2"):
        gen_export(capsys, "--input", inputs["rounds"], "--round", "0", "--format", "hf", "--out", tmp_path / "x")
    with pytest.raises(UsageError, match="--round 7: no such round"):
        gen_export(capsys, "--input", inputs["rounds"], "--round", "7", "--format", "hf", "--out", tmp_path / "x")


def test_a_bare_file_without_a_manifest_still_exports(tmp_path, capsys):
    source = write_jsonl(tmp_path / "mine.jsonl", [{"messages": [{"role": "user", "content": "Hi"},
                                                                 {"role": "assistant", "content": "Hello"}]}])
    out = tmp_path / "out"
    gen_export(capsys, "--input", source, "--format", "hf", "--out", out)
    card = (out / "README.md").read_text("utf-8")
    assert "No manifest.json was found beside the records" in card


# ---------------------------------------------------------------- DEST and errors

def test_dest_is_refused_when_not_empty_replaced_with_force_and_never_half_written(inputs, tmp_path, capsys,
                                                                                      monkeypatch):
    out = tmp_path / "dest"
    out.mkdir()
    (out / "keep.txt").write_text("mine")
    args = ("--input", inputs["cur"], "--format", "openai", "--out", out)
    with pytest.raises(UsageError, match="exists and is not empty; .* --force"):
        gen_export(capsys, *args)
    with pytest.raises(UsageError, match="no earlier export .* --force only replaces an export"):
        gen_export(capsys, *args, "--force")
    assert [p.name for p in out.iterdir()] == ["keep.txt"]

    out = tmp_path / "export"
    args = ("--input", inputs["cur"], "--format", "openai", "--out", out)
    gen_export(capsys, *args, "--tag", "seed")
    before = {p.name: p.read_bytes() for p in out.iterdir()}

    def broken(path: Path, content: str) -> None:
        raise OSError(28, "No space left on device", str(path))

    monkeypatch.setattr(write, "text", broken)
    with pytest.raises(OSError, match="No space left"):
        gen_export(capsys, *args, "--force")
    assert {p.name: p.read_bytes() for p in out.iterdir()} == before  # the old export is untouched
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".")] == []  # no temp folder left
    monkeypatch.undo()
    gen_export(capsys, *args, "--force")
    assert sorted(p.name for p in out.iterdir()) == ["README.md", "provenance.json", "provenance.jsonl", "train.jsonl"]
    assert len(read_jsonl(out / "train.jsonl")) == 5  # the new export replaced the old one (2 seed records)
    (tmp_path / "empty").mkdir()
    gen_export(capsys, "--input", inputs["cur"], "--format", "openai", "--out", tmp_path / "empty")  # empty: fine
    with pytest.raises(UsageError, match="is, or holds, the input"):
        gen_export(capsys, "--input", inputs["cur"], "--format", "openai", "--out", inputs["cur"].parent, "--force")
    monkeypatch.chdir(tmp_path / "empty")
    with pytest.raises(UsageError, match="is, or holds, the current folder"):
        gen_export(capsys, "--input", inputs["cur"], "--format", "openai", "--out", ".", "--force")


@pytest.mark.parametrize("args, needle", [
    (("--format", "csv"), "--format 'csv': unknown; choose one of sharegpt, alpaca, openai, messages, dpo, hf"),
    (("--format", "hf", "--include", "errors"), "the only choice is 'rejected'"),
    (("--format", "hf", "--tag", "web"), "unknown tag"),
    (("--format", "hf", "--min-score", "high"), "--min-score 'high': expected a number"),
    (("--format", "dpo", "--with-tags"), "no system turn"),
    (("--format", "hf", "--tag-text", "seed"), "TAG=TEXT"),
    (("--format", "hf", "--round", "1"), "not a rounds folder"),
    (("--format", "hf", "--private"), "only means something with --push-to-hub"),
])
def test_bad_flags_are_one_usage_error(inputs, tmp_path, capsys, args, needle):
    with pytest.raises(UsageError) as caught:
        gen_export(capsys, "--input", inputs["cur"], *args, "--out", tmp_path / "x")
    assert needle in caught.value.message and "\n" not in caught.value.message
    assert not (tmp_path / "x").exists()


def test_missing_input_and_missing_flags(tmp_path, capsys):
    with pytest.raises(UsageError, match="no such file or folder"):
        gen_export(capsys, "--input", tmp_path / "nope", "--format", "hf", "--out", tmp_path / "x")
    with pytest.raises(UsageError, match="--format is required"):
        gen_export(capsys, "--input", tmp_path, "--out", tmp_path / "x")
    (tmp_path / "plain").mkdir()
    with pytest.raises(UsageError, match="not a run folder .* nor a rounds folder"):
        gen_export(capsys, "--input", tmp_path / "plain", "--format", "hf", "--out", tmp_path / "x")


def test_push_to_hub_is_refused_up_front_without_a_token_or_offline(monkeypatch):
    monkeypatch.delenv("HF_TOKEN", raising=False)
    import huggingface_hub

    monkeypatch.setattr(huggingface_hub, "get_token", lambda: None)
    monkeypatch.setattr(huggingface_hub.constants, "is_offline_mode", lambda: False)
    with pytest.raises(UsageError, match="needs a Hugging Face token .* HF_TOKEN"):
        hub.check("me/data")
    monkeypatch.setenv("HF_TOKEN", "hf_x")
    assert hub.check("me/data") == "hf_x"
    with pytest.raises(UsageError, match="NAMESPACE/NAME"):
        hub.check("no-namespace")
    monkeypatch.setattr(huggingface_hub.constants, "is_offline_mode", lambda: True)
    with pytest.raises(UsageError, match="HF_HUB_OFFLINE"):
        hub.check("me/data")


@pytest.mark.parametrize("fmt", ["sharegpt", "alpaca", "openai", "messages"])
def test_line_and_paragraph_separators_are_escaped_so_every_reader_sees_one_record_per_line(tmp_path, capsys, fmt):
    """U+2028/U+2029 are legal raw in JSON, but str.splitlines() splits there: written escaped,
    a line is still one record, and the text reads back the same."""
    text = "First line\u2028second line\u2029new paragraph."
    run = tmp_path / "run"
    write_jsonl(run / "data.jsonl", [record("s0", turns=[("user", "Why?"), ("assistant", text)]),
                                     record("s1")])
    gen_export(capsys, "--input", run / "data.jsonl", "--format", fmt, "--out", tmp_path / "out")
    raw = (tmp_path / "out" / "train.jsonl").read_text("utf-8")
    assert "\u2028" not in raw and "\u2029" not in raw
    rows = [json.loads(line) for line in raw.splitlines()]
    assert len(rows) == 2 and text in json.dumps(rows[0], ensure_ascii=False)


@pytest.mark.parametrize("fmt", ["hf", "openai"])
def test_a_folder_never_loads_another_exports_cached_rows(tmp_path, capsys, fmt):
    """`datasets` caches a local folder by its name and its card's header: the header carries
    the split sizes and the files' checksums, so two exports in folders of the same name, and a
    --force re-export, each load their own rows from one shared cache."""
    import datasets

    cache = str(tmp_path / "shared-hf-cache")
    firsts = {}
    for name, n in (("a", 3), ("b", 5)):
        run = tmp_path / name / "run"
        write_jsonl(run / "data.jsonl", [record(f"{name}{i}") for i in range(n)])
        out = tmp_path / name / "exports" / "hf"
        gen_export(capsys, "--input", run / "data.jsonl", "--format", fmt, "--out", out)
        firsts[name] = (run, out)
    for name, n in (("a", 3), ("b", 5)):
        rows = datasets.load_dataset(str(firsts[name][1]), cache_dir=cache)["train"]
        assert len(rows) == n and f"Question {name}0?" in str(rows[0])

    run, out = firsts["a"]
    write_jsonl(run / "data.jsonl", [record(f"c{i}") for i in range(4)])
    gen_export(capsys, "--input", run / "data.jsonl", "--format", fmt, "--out", out, "--force")
    rows = datasets.load_dataset(str(out), cache_dir=cache)["train"]
    assert len(rows) == 4 and "Question c0?" in str(rows[0])
