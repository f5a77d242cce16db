"""Seed samplers: local files, hf: data sets (real, on local fixtures), the named sets read through
the real `datasets` from a mirror folder laid out like each hub repo, and the hub offline."""
from __future__ import annotations

import csv
import json
import os
import random
import subprocess
import sys
from collections import Counter
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

import generators.inputs.seeds.hub as seeds_hub
from generators.core.errors import FatalError, UsageError
from generators.core.records import stable_id
from generators.core.text import normalize_text
from generators.inputs.seeds import Seed, load_seeds
from generators.inputs.seeds.hub import MIRROR_ENV, NAMED
from generators.core.shard import parse_shard

QUESTIONS = [f"Question number {i}?" for i in range(20)]


@pytest.fixture(autouse=True)
def _private_hf_cache(tmp_path, monkeypatch):
    """Keep datasets' arrow cache inside the test folder, and a mirror set outside out of it."""
    import datasets

    monkeypatch.setattr(datasets.config, "HF_DATASETS_CACHE", tmp_path / "hf-cache")
    monkeypatch.delenv(MIRROR_ENV, raising=False)


def write_jsonl(path: Path, rows: list) -> Path:
    path.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    return path


def texts(seeds: list[Seed]) -> list[str]:
    return [s.text for s in seeds]


# ---------------------------------------------------------------- shards

@pytest.mark.parametrize("text, expected", [("0/4", (0, 4)), ("3/4", (3, 4)), (" 1 / 2 ", (1, 2)), ("0/1", (0, 1))])
def test_parse_shard(text, expected):
    assert parse_shard(text) == expected


@pytest.mark.parametrize("text", ["4/4", "1/0", "-1/4", "a/b", "1", "", "1/2/3", "0.5/2"])
def test_parse_shard_rejects_bad_text(text):
    with pytest.raises(UsageError, match="--shard"):
        parse_shard(text)


# ---------------------------------------------------------------- jsonl

def test_jsonl_only_string_column_is_picked(tmp_path):
    path = write_jsonl(tmp_path / "qs.jsonl", [{"q": t, "n": i} for i, t in enumerate(QUESTIONS)])
    seeds = load_seeds(str(path))
    assert sorted(texts(seeds)) == sorted(QUESTIONS)
    assert {s.source for s in seeds} == {"qs"}
    assert all(s.id == stable_id("seed", normalize_text(s.text)) for s in seeds)


def test_jsonl_preferred_column_when_several_strings(tmp_path):
    path = write_jsonl(tmp_path / "qs.jsonl", [{"answer": "a", "question": "Why?", "title": "T"}])
    assert texts(load_seeds(str(path))) == ["Why?"]


def test_jsonl_explicit_field(tmp_path):
    path = write_jsonl(tmp_path / "qs.jsonl", [{"question": "Why?", "title": "A title"}])
    assert texts(load_seeds(str(path), field="title")) == ["A title"]


def test_jsonl_ambiguous_columns_ask_for_field(tmp_path):
    path = write_jsonl(tmp_path / "qs.jsonl", [{"a": "x", "b": "y"}])
    with pytest.raises(UsageError, match=r"columns: a, b.*--field"):
        load_seeds(str(path))


def test_jsonl_unknown_field_names_the_available_ones(tmp_path):
    path = write_jsonl(tmp_path / "qs.jsonl", [{"question": "Why?", "meta": "m"}])
    with pytest.raises(UsageError, match=r"no field 'prompt'; available: question, meta"):
        load_seeds(str(path), field="prompt")


def test_jsonl_non_string_value_names_the_line(tmp_path):
    path = write_jsonl(tmp_path / "qs.jsonl", [{"question": "Why?"}, {"question": "How?"}, {"question": 7}])
    with pytest.raises(UsageError, match=r"qs\.jsonl: line 3: field 'question' holds int"):
        load_seeds(str(path), field="question")


def test_jsonl_null_values_count_as_blank(tmp_path):
    path = write_jsonl(tmp_path / "qs.jsonl", [{"question": None}, {"question": "Why?"}])
    assert texts(load_seeds(str(path))) == ["Why?"]


def test_jsonl_of_plain_strings(tmp_path):
    path = write_jsonl(tmp_path / "qs.jsonl", ["one?", "two?"])
    assert sorted(texts(load_seeds(str(path)))) == ["one?", "two?"]


def test_jsonl_mixed_rows_are_an_error(tmp_path):
    path = write_jsonl(tmp_path / "qs.jsonl", [{"question": "Why?"}, [1, 2]])
    with pytest.raises(UsageError, match=r"line 2: expected an object"):
        load_seeds(str(path))


def test_missing_file(tmp_path):
    with pytest.raises(UsageError, match=r"no such file"):
        load_seeds(str(tmp_path / "nope.jsonl"))


def test_unknown_spec_that_is_no_file():
    with pytest.raises(UsageError, match=r"not a named set and no such file"):
        load_seeds("wikipedia")


def test_folder_is_not_a_file(tmp_path):
    folder = tmp_path / "d.jsonl"
    folder.mkdir()
    with pytest.raises(UsageError, match="is a folder"):
        load_seeds(str(folder))


# ---------------------------------------------------------------- json, csv, tsv, parquet, txt

def test_json_list_of_objects_and_of_strings(tmp_path):
    objects = tmp_path / "o.json"
    objects.write_text(json.dumps([{"prompt": "Write a haiku."}, {"prompt": "Name a bird."}]))
    assert sorted(texts(load_seeds(str(objects)))) == ["Name a bird.", "Write a haiku."]
    strings = tmp_path / "s.json"
    strings.write_text(json.dumps(["alpha?", "beta?"]))
    assert sorted(texts(load_seeds(str(strings)))) == ["alpha?", "beta?"]


@pytest.mark.parametrize("name, content, field, error", [
    ("q.json", b'[\n  "ok",\n  "missing comma"\n  "x"\n]\n', None, r"q\.json:4: bad JSON"),
    ("q.json", b'{"question": "why?"}', None, "expected a JSON list"),
    ("q.json", json.dumps([{"question": "why?"}, {"question": ["a", "b"]}]).encode(), "question",
     r"row 2: field 'question' holds list"),
    ("q.json", b'[\n"ok",\n"\xff\xfe"\n]', None, r"q\.json:3: not valid UTF-8"),
    ("q.csv", b"question\nfine\ncaf\xe9\n", None, r"q\.csv:3: not valid UTF-8"),
    ("q.csv", b"question\n", None, "empty"),
    ("qs.jsonl", b'{"question": "ok"}\n{"question": broken\n', None, r"qs\.jsonl:2: bad JSON"),
    ("qs.jsonl", b'{"question": "ok"}\n{"question": "caf\xe9"}\n', None, r"qs\.jsonl:2: not valid UTF-8"),
    ("qs.jsonl", b"", None, "empty"),
    ("qs.jsonl", b"\n\n  \n", None, "empty"),
    ("qs.xlsx", b"PK\x03\x04", None, r"unsupported file type '\.xlsx'"),
], ids=["json-syntax", "json-object", "json-non-string", "json-non-utf8", "csv-non-utf8", "csv-header-only",
        "jsonl-syntax", "jsonl-non-utf8", "jsonl-empty", "jsonl-blank", "xlsx"])
def test_a_bad_seed_file_is_one_usage_error_naming_where(tmp_path, name, content, field, error):
    path = tmp_path / name
    path.write_bytes(content)
    with pytest.raises(UsageError, match=error):
        load_seeds(str(path), field=field)


def test_csv_with_quotes_commas_and_newlines(tmp_path):
    path = tmp_path / "q.csv"
    with path.open("w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        writer.writerow(["id", "title"])
        writer.writerow(["1", "How do I split a string, by commas?"])
        writer.writerow(["2", 'What does "yield"\ndo?'])
        writer.writerow(["3", ""])
    seeds = load_seeds(str(path))
    assert sorted(texts(seeds)) == sorted(["How do I split a string, by commas?", 'What does "yield"\ndo?'])


def test_csv_with_bom_and_explicit_field(tmp_path):
    path = tmp_path / "q.csv"
    path.write_text("\ufeffa,b\nx?,y?\n", encoding="utf-8")
    assert texts(load_seeds(str(path), field="a")) == ["x?"]


def test_csv_ambiguous_and_unknown_field(tmp_path):
    path = tmp_path / "q.csv"
    path.write_text("a,b\nx,y\n")
    with pytest.raises(UsageError, match=r"columns: a, b"):
        load_seeds(str(path))
    with pytest.raises(UsageError, match=r"no field 'c'; available: a, b"):
        load_seeds(str(path), field="c")


def test_tsv(tmp_path):
    path = tmp_path / "q.tsv"
    path.write_text("question\tanswer\nIs a comma, here ok?\tyes\n")
    assert texts(load_seeds(str(path))) == ["Is a comma, here ok?"]


def test_parquet_picks_the_string_column_and_skips_nulls(tmp_path):
    path = tmp_path / "q.parquet"
    pq.write_table(pa.table({"n": [1, 2, 3], "body": ["one?", None, "three?"]}), path)
    assert sorted(texts(load_seeds(str(path)))) == ["one?", "three?"]


def test_parquet_non_string_field(tmp_path):
    path = tmp_path / "q.parquet"
    pq.write_table(pa.table({"n": [1, 2], "question": ["a?", "b?"]}), path)
    with pytest.raises(UsageError, match=r"row 1: field 'n' holds int"):
        load_seeds(str(path), field="n")


def test_parquet_that_is_not_parquet(tmp_path):
    path = tmp_path / "q.parquet"
    path.write_text("not parquet at all")
    with pytest.raises(UsageError, match="not a readable Parquet file"):
        load_seeds(str(path))


def test_txt_one_seed_per_non_blank_line(tmp_path):
    path = tmp_path / "q.txt"
    path.write_text("first?\n\n   \nsecond?\r\nthird?")
    assert sorted(texts(load_seeds(str(path)))) == ["first?", "second?", "third?"]


def test_txt_non_utf8_and_empty(tmp_path):
    path = tmp_path / "q.txt"
    path.write_bytes(b"ok\nok2\n\x80bad\n")
    with pytest.raises(UsageError, match=r"q\.txt:3: not valid UTF-8"):
        load_seeds(str(path))
    path.write_text("\n \n")
    with pytest.raises(UsageError, match="empty"):
        load_seeds(str(path))


# ---------------------------------------------------------------- cleaning, order, shards, limit

def test_dedup_on_normalized_text_keeps_the_first(tmp_path):
    rows = ["What is Python?", "  what is   python ", '"What is PYTHON?"', "\uff37hat is Python?",
            "What is Rust?", "", "   ", "?!"]
    path = write_jsonl(tmp_path / "q.jsonl", rows)
    seeds = load_seeds(str(path))
    assert sorted(texts(seeds)) == ["What is Python?", "What is Rust?"]


def test_no_seeds_left_after_cleaning(tmp_path):
    path = write_jsonl(tmp_path / "q.jsonl", [{"question": "  "}, {"question": ""}])
    with pytest.raises(UsageError, match="no seeds"):
        load_seeds(str(path))


def test_seeded_shuffle_is_stable_and_seed_dependent(tmp_path):
    path = write_jsonl(tmp_path / "q.jsonl", QUESTIONS)
    first = texts(load_seeds(str(path), seed=1))
    assert first == texts(load_seeds(str(path), seed=1))
    assert first != QUESTIONS and sorted(first) == sorted(QUESTIONS)
    assert first != texts(load_seeds(str(path), seed=2))


def test_shards_are_disjoint_and_cover_everything(tmp_path):
    path = write_jsonl(tmp_path / "q.jsonl", QUESTIONS)
    whole = texts(load_seeds(str(path), seed=7))
    parts = [texts(load_seeds(str(path), seed=7, shard=(i, 3))) for i in range(3)]
    assert sum(len(p) for p in parts) == len(QUESTIONS)
    assert set().union(*map(set, parts)) == set(QUESTIONS)
    assert parts[1] == whole[1::3]


def test_limit_is_applied_after_sharding(tmp_path):
    path = write_jsonl(tmp_path / "q.jsonl", QUESTIONS)
    shard = texts(load_seeds(str(path), seed=3, shard=(1, 2)))
    assert texts(load_seeds(str(path), seed=3, shard=(1, 2), limit=4)) == shard[:4]
    assert len(load_seeds(str(path), limit=100)) == len(QUESTIONS)


@pytest.mark.parametrize("kwargs", [{"limit": 0}, {"shard": (2, 2)}, {"shard": (0, 0)}])
def test_bad_limit_or_shard(tmp_path, kwargs):
    path = write_jsonl(tmp_path / "q.jsonl", QUESTIONS)
    with pytest.raises(UsageError):
        load_seeds(str(path), **kwargs)


def test_normalize_text():
    assert normalize_text('  "Hello,   World!"  ') == "hello, world"
    assert normalize_text("\uff21BC") == "abc"
    assert normalize_text("Straße") == normalize_text("STRASSE")


# ---------------------------------------------------------------- hf: on local data sets (real datasets)

def test_hf_local_folder_with_field(tmp_path):
    folder = tmp_path / "myset"
    folder.mkdir()
    pq.write_table(pa.table({"question": ["a?", "b?", "a?"], "n": [1, 2, 3]}), folder / "train.parquet")
    seeds = load_seeds(f"hf:{folder}:question")
    assert sorted(texts(seeds)) == ["a?", "b?"]
    assert {s.source for s in seeds} == {f"hf:{folder}"}
    assert sorted(texts(load_seeds(f"hf:{folder}"))) == ["a?", "b?"]  # the only string column
    assert sorted(texts(load_seeds(f"hf:{folder}", field="question"))) == ["a?", "b?"]


def test_hf_local_file_and_its_errors(tmp_path):
    path = write_jsonl(tmp_path / "rows.jsonl", [{"instruction": "Do x.", "id": 1}, {"instruction": "Do y.", "id": 2}])
    assert sorted(texts(load_seeds(f"hf:{path}:instruction"))) == ["Do x.", "Do y."]
    with pytest.raises(UsageError, match=r"no field 'prompt'; available: instruction, id"):
        load_seeds(f"hf:{path}:prompt")
    with pytest.raises(UsageError, match=r"row 1: field 'id' holds int"):
        load_seeds(f"hf:{path}:id")
    with pytest.raises(UsageError, match="no such file or folder"):
        load_seeds(f"hf:{tmp_path / 'missing.jsonl'}:q")


def test_hf_local_tsv(tmp_path):
    path = tmp_path / "rows.tsv"
    path.write_text("question\tlabel\nIs it, really?\tx\n")
    assert texts(load_seeds(f"hf:{path}:question")) == ["Is it, really?"]


@pytest.mark.parametrize("spec", ["hf:", "hf:name:", "hf:a:b:c:d", "hf::field"])
def test_hf_bad_spec(spec):
    with pytest.raises(UsageError, match="hf:NAME:FIELD"):
        load_seeds(spec)


def test_hf_field_given_twice_differently(tmp_path):
    with pytest.raises(UsageError, match="give the field once"):
        load_seeds("hf:some/set:question", field="title")


# ---------------------------------------------------------------- the hub, faked or offline

class FakeLoad:
    """Stands in for datasets.load_dataset and records how it was called."""

    def __init__(self, result=None, error: Exception | None = None, on_call=None):
        self.result, self.error, self.on_call, self.calls = result, error, on_call, []

    def __call__(self, *args, **kwargs):
        self.calls.append((args, kwargs))
        if self.on_call:
            self.on_call()
        if self.error:
            raise self.error
        return self.result


@pytest.fixture
def hub(monkeypatch):
    import datasets

    def install(result=None, error=None, reachable=True, on_call=None):
        fake = FakeLoad(result, error, on_call)
        monkeypatch.setattr(datasets, "load_dataset", fake)
        monkeypatch.setattr(seeds_hub, "_hub_reachable", lambda timeout=0: reachable)
        return fake
    return install


@pytest.mark.parametrize("name, repo, config, field", [
    ("quora", "sentence-transformers/quora-duplicates", "pair-class", "sentence1"),
    ("stackoverflow", "pacovaldez/stackoverflow-questions", None, "title"),
    ("medquad", "AnonymousSub/MedQuAD_47441_Question_Answer_Pairs", None, "Questions"),
    ("medqa", "GBaker/MedQA-USMLE-4-options", None, "question"),
    ("MedQA", "GBaker/MedQA-USMLE-4-options", None, "question"),
])
def test_named_sets_ask_the_hub_for_full_ids_and_configs(hub, name, repo, config, field):
    import datasets

    fake = hub(datasets.Dataset.from_dict({field: ["One?", "Two?"], "other": ["x", "y"]}))
    seeds = load_seeds(name)
    assert sorted(texts(seeds)) == ["One?", "Two?"]
    assert fake.calls == [((repo, config), {"split": "train"})]  # no trust_remote_code, no bare id
    assert {s.source for s in seeds} == {name.lower()}


def test_hf_config_is_passed(hub):
    import datasets

    fake = hub(datasets.Dataset.from_dict({"q": ["One?"]}))
    assert texts(load_seeds("hf:org/set:cfg:q")) == ["One?"]
    assert fake.calls[0] == (("org/set", "cfg"), {"split": "train"})


def test_hub_set_missing_is_a_usage_error(hub):
    from datasets.exceptions import DatasetNotFoundError

    hub(error=DatasetNotFoundError("Dataset 'org/nope' doesn't exist on the Hub"))
    with pytest.raises(UsageError, match=r"org/nope was not found on the hub"):
        load_seeds("hf:org/nope:q")


def test_unreachable_hub_is_fatal_and_offline_mode_is_restored(hub):
    from datasets import config as ds_config
    from huggingface_hub import constants as hub_constants

    seen = []
    before = (hub_constants.HF_HUB_OFFLINE, ds_config.HF_HUB_OFFLINE)
    hub(error=ConnectionError("Couldn't reach 'org/set' on the Hub (OfflineModeIsEnabled)"), reachable=False,
        on_call=lambda: seen.append((hub_constants.HF_HUB_OFFLINE, ds_config.HF_HUB_OFFLINE)))
    with pytest.raises(FatalError) as info:
        load_seeds("hf:org/set:q")
    assert seen == [(True, True)]  # loaded in offline mode: a cached copy works, a missing one fails at once
    assert (hub_constants.HF_HUB_OFFLINE, ds_config.HF_HUB_OFFLINE) == before
    message = info.value.message
    assert "hf:org/set" in message and "unreachable" in message and "--seeds questions.jsonl" in message
    assert "\n" not in message


def test_reachable_hub_is_used_online(hub):
    import datasets
    from huggingface_hub import constants as hub_constants

    seen = []
    hub(datasets.Dataset.from_dict({"q": ["One?"]}), reachable=True,
        on_call=lambda: seen.append(hub_constants.HF_HUB_OFFLINE))
    load_seeds("hf:org/set:q")
    assert seen == [hub_constants.HF_HUB_OFFLINE]


def test_connection_error_wrapped_deep_is_recognised(hub):
    try:
        try:
            raise OSError("[Errno -2] Name or service not known")
        except OSError as inner:
            raise TimeoutError("timed out") from inner
    except TimeoutError as exc:
        outer = RuntimeError("download failed")
        outer.__cause__ = exc
    hub(error=outer)
    with pytest.raises(FatalError, match="unreachable"):
        load_seeds("stackoverflow")


def test_other_hub_failure_is_fatal_with_its_reason(hub):
    hub(error=RuntimeError("disk full"))
    with pytest.raises(FatalError, match=r"could not load seed set medqa .*RuntimeError: disk full"):
        load_seeds("medqa")


def test_named_sets_offline_for_real(tmp_path):
    """The real datasets library with HF_HUB_OFFLINE=1 and an empty cache: one line each, exit 1."""
    specs = ["quora", "medqa", "hf:org/set:question"]
    code = (
        "import sys\n"
        "from generators.inputs.seeds import load_seeds\n"
        "from generators.core.errors import BaleenError\n"
        f"for spec in {specs!r}:\n"
        "    try:\n"
        "        load_seeds(spec)\n"
        "    except BaleenError as e:\n"
        "        print(f'{e.exit_code}|{type(e).__name__}|{e.message}')\n"
    )
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "HF_HOME": str(tmp_path / "hf"),
           "HF_DATASETS_CACHE": str(tmp_path / "hf" / "datasets")}
    done = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=120)
    lines = done.stdout.strip().splitlines()
    assert len(lines) == len(specs), done.stderr
    for spec, line in zip(specs, lines):
        code_, kind, message = line.split("|", 2)
        assert (code_, kind) == ("1", "FatalError")
        label = "hf:org/set" if spec.startswith("hf:") else spec
        assert f"seed set {label} " in message
        assert "unreachable" in message and "--seeds questions.jsonl --field question" in message


# ---------------------------------------------------------------- named sets from a mirror laid out like the hub
# Each fixture copies the layout of the real hub repo (file names, folders, README front matter) with
# a few rows, and is read by the real `datasets`; EXPECTED is each set's seeds in the original order.

QUORA_PAIRS = [  # (sentence1, sentence2, label) of config pair-class
    ("How do I learn Go?", "What is the best way to learn Go?", 1),
    ("Is tea healthy?", "Is green tea good for you?", 0),
    ("How do I learn Go?", "Which book teaches Go best?", 0),  # a first question seen again
    ("Why is the sky blue?", "What makes the sky look blue?", 1),
    ("Can dogs eat grapes?", "Are grapes toxic to dogs?", 1),
    ("How far away is the Moon?", "What is the distance to the Moon?", 1),
    ("What is a black hole?", "How do black holes form?", 0),
    ("How do I cook rice?", "What is the rice to water ratio?", 0),
    ("Who wrote Hamlet?", "When was Hamlet written?", 0),
    ("Is Python hard to learn?", "How long does it take to learn Python?", 0),
]
SO_SHARDS = [  # (title, body) of the two train files, in file-name order
    [("How do I reverse a list in Python?", "<p>body 1</p>"),
     ("What does git rebase do?", "<p>body 2</p>"),
     ("Why is my CSS not applied?", "<p>body 3</p>")],
    [("How to parse JSON in Java?", "<p>body 4</p>"),
     ("What is a segmentation fault?", "<p>body 5</p>"),
     ("How do I undo git add?", "<p>body 6</p>")],
]
MEDQUAD_ROWS = [  # (Questions, Answers)
    ("What is (are) Glaucoma ?", "Glaucoma is a group of diseases ..."),
    ("What causes Glaucoma ?", "Nearly 2.7 million people ..."),
    ("What is (are) Glaucoma ?", "A second answer to the same question ..."),
    ("How to prevent High Blood Pressure ?", "Steps you can take ..."),
    ("What are the symptoms of Asthma ?", "Common symptoms ..."),
    ("Who should get a flu shot ?", "Everyone 6 months and older ..."),
]
MEDQA_TRAIN = [
    "A 23-year-old woman presents with fever and dysuria. Which drug is best?",
    "A 3-month-old boy has poor feeding. What is the most likely diagnosis?",
    "A 45-year-old man has chest pain at rest. What is the next step?",
    "A 60-year-old woman has a tremor at rest. Which structure is affected?",
    "A 30-year-old man has a painless ulcer. Which test confirms the cause?",
]
EXPECTED = {
    "quora": ["How do I learn Go?", "Is tea healthy?", "Why is the sky blue?", "Can dogs eat grapes?",
              "How far away is the Moon?", "What is a black hole?", "How do I cook rice?", "Who wrote Hamlet?",
              "Is Python hard to learn?"],
    "stackoverflow": [title for shard in SO_SHARDS for title, _ in shard],
    "medquad": ["What is (are) Glaucoma ?", "What causes Glaucoma ?", "How to prevent High Blood Pressure ?",
                "What are the symptoms of Asthma ?", "Who should get a flu shot ?"],
    "medqa": MEDQA_TRAIN,
}
# Texts the mirror holds outside each set's config/split/field: none of them may become a seed.
DECOYS = {"In pair config?", "In triplet config?", "In validation split?", "In test split?", "In medqa test?"}


def write_card(folder: Path, front: dict, body: str) -> None:
    """A README.md like the hub's: YAML front matter, then prose."""
    import yaml

    (folder / "README.md").write_text(f"---\n{yaml.safe_dump(front, sort_keys=False)}---\n\n{body}\n",
                                      encoding="utf-8")


def string_features(*names: str) -> list[dict]:
    return [{"name": name, "dtype": "string"} for name in names]


def write_quora(repo: Path) -> None:
    """sentence-transformers/quora-duplicates: one folder per config, configs declared in the card."""
    tables = {
        "pair": pa.table({"anchor": ["In pair config?"], "positive": ["x"]}),
        "pair-class": pa.table({"sentence1": [p[0] for p in QUORA_PAIRS], "sentence2": [p[1] for p in QUORA_PAIRS],
                                "label": [p[2] for p in QUORA_PAIRS]}),
        "triplet": pa.table({"anchor": ["In triplet config?"], "positive": ["x"], "negative": ["y"]}),
        "triplet-all": pa.table({"anchor": ["In triplet config?"], "positive": ["x"], "negative": ["y"]}),
    }
    info = []
    for config, table in tables.items():
        (repo / config).mkdir(parents=True)
        pq.write_table(table, repo / config / "train-00000-of-00001.parquet")
        features = [{"name": n, "dtype": "int64" if n == "label" else "string"} for n in table.column_names]
        info.append({"config_name": config, "features": features,
                     "splits": [{"name": "train", "num_bytes": 100, "num_examples": table.num_rows}],
                     "download_size": 100, "dataset_size": 100})
    configs = [{"config_name": c, "data_files": [{"split": "train", "path": f"{c}/train-*"}]} for c in tables]
    write_card(repo, {"language": ["en"], "size_categories": ["100K<n<1M"], "dataset_info": info,
                      "configs": configs, "tags": ["sentence-transformers"]}, "# Quora Duplicate Questions")


def write_stackoverflow(repo: Path) -> None:
    """pacovaldez/stackoverflow-questions: data/post_questions_SPLIT/ folders, splits named by path."""
    shards = {"train": SO_SHARDS, "validation": [[("In validation split?", "b")]], "test": [[("In test split?", "b")]]}
    for split, files in shards.items():
        folder = repo / "data" / f"post_questions_{split}"
        folder.mkdir(parents=True)
        for number, rows in enumerate(files):
            table = pa.table({"title": [r[0] for r in rows], "body": [r[1] for r in rows], "label": [0] * len(rows)})
            pq.write_table(table, folder / f"post_questions_{split}_{number:012d}.parquet")
    write_card(repo, {"license": "apache-2.0", "language": ["en"], "task_categories": ["text-classification"],
                      "tags": ["stackoverflow", "technical questions"]}, "# Stack Overflow questions")


def write_medquad(repo: Path) -> None:
    """AnonymousSub/MedQuAD_47441_Question_Answer_Pairs: one parquet file under data/."""
    (repo / "data").mkdir(parents=True)
    table = pa.table({"Questions": [r[0] for r in MEDQUAD_ROWS], "Answers": [r[1] for r in MEDQUAD_ROWS]})
    pq.write_table(table, repo / "data" / "train-00000-of-00001-4401d00b2bdd1863.parquet")
    write_card(repo, {"dataset_info": {"features": string_features("Questions", "Answers"),
                                       "splits": [{"name": "train", "num_bytes": 100, "num_examples": table.num_rows}],
                                       "download_size": 100, "dataset_size": 100}}, "# MedQuAD")


def write_medqa(repo: Path) -> None:
    """GBaker/MedQA-USMLE-4-options: JSON lines files at the top, split named in the file name."""
    repo.mkdir(parents=True)

    def row(question: str) -> dict:
        return {"question": question, "answer": "Option text", "options": {"A": "a", "B": "b", "C": "c", "D": "d"},
                "meta_info": "step1", "answer_idx": "A", "metamap_phrases": ["phrase"]}
    write_jsonl(repo / "phrases_no_exclude_train.jsonl", [row(q) for q in MEDQA_TRAIN])
    write_jsonl(repo / "phrases_no_exclude_test.jsonl", [row("In medqa test?")])
    write_card(repo, {"license": "cc-by-4.0", "language": ["en"]}, "# MedQA (USMLE, 4 options)")


WRITERS = {"quora": write_quora, "stackoverflow": write_stackoverflow, "medquad": write_medquad, "medqa": write_medqa}


@pytest.fixture
def mirror(tmp_path, monkeypatch) -> Path:
    """A BALEEN_HF_MIRROR folder holding a copy of each named set's hub repo."""
    root = tmp_path / "mirror"
    for name, write in WRITERS.items():
        write(root / NAMED[name].repo)
    monkeypatch.setenv(MIRROR_ENV, str(root))
    return root


def shuffled(items: list[str], seed: int) -> list[str]:
    items = list(items)
    random.Random(seed).shuffle(items)
    return items


@pytest.fixture
def load_calls(monkeypatch):
    """Record each call to the real datasets.load_dataset (which still does the work)."""
    import datasets

    real, calls = datasets.load_dataset, []

    def recording(*args, **kwargs):
        calls.append((args, kwargs))
        return real(*args, **kwargs)
    monkeypatch.setattr(datasets, "load_dataset", recording)
    return calls


@pytest.mark.parametrize("name", sorted(NAMED))
def test_named_set_from_mirror_in_original_order(mirror, load_calls, name):
    seeds = load_seeds(name, seed=11)
    assert sorted(texts(seeds)) == sorted(EXPECTED[name])  # its field only: no other config, split or column
    assert texts(seeds) == shuffled(EXPECTED[name], 11)    # read in the original order, then shuffled
    assert {s.source for s in seeds} == {name}
    named = NAMED[name]
    assert load_calls == [((str(mirror / named.repo), named.config), {"split": "train"})]


def test_named_sets_are_plain_data_repos_with_full_ids(mirror):
    """No loading script anywhere: full OWNER/NAME ids, and the copies hold only data files and a card."""
    assert set(NAMED) == set(WRITERS)
    for named in NAMED.values():
        assert named.repo.count("/") == 1 and all(named.repo.split("/"))
        suffixes = {path.suffix for path in (mirror / named.repo).rglob("*") if path.is_file()}
        assert suffixes <= {".parquet", ".jsonl", ".md"}


def test_quora_takes_the_first_question_of_each_pair(mirror):
    assert NAMED["quora"].config == "pair-class" and NAMED["quora"].field == "sentence1"
    firsts = set(texts(load_seeds("quora")))
    assert firsts == {p[0] for p in QUORA_PAIRS}
    assert not firsts & {p[1] for p in QUORA_PAIRS}
    assert set(texts(load_seeds("quora", field="sentence2"))) == {p[1] for p in QUORA_PAIRS}


def test_named_sets_never_yield_other_configs_or_splits(mirror):
    for name in NAMED:
        assert not set(texts(load_seeds(name))) & DECOYS


def test_mirror_serves_hf_specs_of_the_same_repo(mirror):
    seeds = load_seeds("hf:sentence-transformers/quora-duplicates:pair-class:sentence1", seed=4)
    assert texts(seeds) == shuffled(EXPECTED["quora"], 4)
    assert {s.source for s in seeds} == {"hf:sentence-transformers/quora-duplicates"}
    assert texts(load_seeds("hf:sentence-transformers/quora-duplicates:pair:anchor")) == ["In pair config?"]


def test_mirror_copy_without_the_config(mirror):
    with pytest.raises(UsageError, match=r"could not read the local copy .*quora-duplicates.*nope"):
        load_seeds("hf:sentence-transformers/quora-duplicates:nope:sentence1")
    with pytest.raises(UsageError, match=r"no field 'questions'; available: sentence1, sentence2, label"):
        load_seeds("quora", field="questions")


def test_mirror_copy_that_is_a_loading_script_is_refused(tmp_path, monkeypatch):
    """A repo with a loading script (like the old `quora`) fails with one line; the script never runs."""
    root = tmp_path / "mirror"
    repo = root / "org" / "scripted"
    repo.mkdir(parents=True)
    marker = tmp_path / "script-ran"
    (repo / "scripted.py").write_text(f"open({str(marker)!r}, 'w').write('ran')\n")
    monkeypatch.setenv(MIRROR_ENV, str(root))
    with pytest.raises(UsageError, match=r"seed set hf:org/scripted: org/scripted is a loading script"):
        load_seeds("hf:org/scripted:question")
    assert not marker.exists()


def test_repo_missing_from_the_mirror_comes_from_the_hub(hub, mirror):
    import datasets

    fake = hub(datasets.Dataset.from_dict({"q": ["One?"]}))
    assert texts(load_seeds("hf:org/elsewhere:q")) == ["One?"]
    assert fake.calls == [(("org/elsewhere", None), {"split": "train"})]


def test_mirror_variable_naming_no_folder(tmp_path, monkeypatch):
    monkeypatch.setenv(MIRROR_ENV, str(tmp_path / "absent"))
    with pytest.raises(UsageError, match=rf"{MIRROR_ENV}=.*absent: no such folder"):
        load_seeds("quora")


@pytest.mark.parametrize("spec", ["hf:squad:question", "hf:a/b/c:question", "hf:org/..:question"])
def test_hf_needs_a_full_hub_id(spec):
    with pytest.raises(UsageError, match=r"full hub id OWNER/NAME"):
        load_seeds(spec)


def test_mirror_needs_no_hub_at_all(mirror, tmp_path):
    """Not in offline mode, with the hub endpoint a closed port: the mirror alone serves every named set."""
    code = (
        "from generators.inputs.seeds import load_seeds\n"
        "for name in ['quora', 'stackoverflow', 'medquad', 'medqa']:\n"
        "    print(name, len(load_seeds(name)))\n"
    )
    env = {key: value for key, value in os.environ.items() if key != "HF_HUB_OFFLINE"}
    env.update({MIRROR_ENV: str(mirror), "HF_ENDPOINT": "http://127.0.0.1:9", "HF_HOME": str(tmp_path / "hf"),
                "HF_DATASETS_CACHE": str(tmp_path / "hf" / "datasets")})
    done = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert done.stdout.split() == [word for name in ["quora", "stackoverflow", "medquad", "medqa"]
                                   for word in (name, str(len(EXPECTED[name])))]


def test_mirror_skips_the_hub_probe(mirror, monkeypatch):
    monkeypatch.setattr(seeds_hub, "_hub_reachable", lambda timeout=0: pytest.fail("probed the hub for a local copy"))
    assert texts(load_seeds("medqa", seed=2)) == shuffled(EXPECTED["medqa"], 2)


def test_what_cleaning_drops_is_counted(tmp_path):
    path = tmp_path / "qs.txt"
    path.write_text("Why?\nwhy?\n  WHY? \nHow?\n\n   \nHow?\n", "utf-8")
    dropped: Counter[str] = Counter()
    assert sorted(texts(load_seeds(str(path), dropped=dropped))) == ["How?", "Why?"]
    assert dropped == {"duplicate": 3, "blank": 2}
    jsonl = write_jsonl(tmp_path / "qs.jsonl", [{"question": "A?"}, {"question": " "}, {"question": "a?"}])
    dropped = Counter()
    assert texts(load_seeds(str(jsonl), dropped=dropped, limit=1)) == ["A?"]
    assert dropped == {"duplicate": 1, "blank": 1}  # counted over the whole source, before --limit
