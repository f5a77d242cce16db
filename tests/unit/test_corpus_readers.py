"""Corpus readers on small files the tests write: JSONL, Parquet, text, markdown, HTML, WARC,
a fake ClueWeb22 copy in its distributed layout, Hugging Face streaming from a local folder;
bad input; truncated and corrupt compressed files; shards and limits; the reader modules'
one-way imports."""
from __future__ import annotations

import ast
import gzip
import io
import json
import random
import re
import string
import subprocess
import sys
import zlib
from pathlib import Path

import pytest

import generators.inputs.corpus
from generators.inputs.corpus import Document, iter_documents
from generators.core.errors import FatalError, UsageError
from generators.core.shard import parse_shard

CORPUS_DIR = Path(generators.inputs.corpus.__file__).parent
PAGE = "<html><body><h2>Title {n}</h2><p>Body of page {n}.</p></body></html>"


def write_jsonl(path: Path, rows: list[dict]) -> Path:
    path.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    return path


def one_line_usage_error(match: str):
    return pytest.raises(UsageError, match=match)


def test_jsonl_html_field_with_own_ids(tmp_path):
    path = write_jsonl(tmp_path / "pages.jsonl", [
        {"id": "p1", "url": "https://a.example/1", "html": PAGE.format(n=1)},
        {"id": 2, "html": PAGE.format(n=2)},
        {"id": "p3", "html": "   "},  # empty: skipped
    ])
    docs = list(iter_documents(str(path)))
    assert [(d.id, d.kind, d.url) for d in docs] == [("p1", "html", "https://a.example/1"),
                                                     ("2", "html", None)]
    assert docs[0].meta == {"path": "pages.jsonl", "line": 1}


def test_jsonl_text_field_ids_are_stable_and_kind_guessed(tmp_path):
    path = write_jsonl(tmp_path / "t.jsonl", [{"text": "plain words here"},
                                              {"text": "# Header\n\nmarkdown body"},
                                              {"text": "<div><h1>x</h1></div>"}])
    first = list(iter_documents(str(path)))
    again = list(iter_documents(str(path)))
    assert [d.id for d in first] == [d.id for d in again] and len({d.id for d in first}) == 3
    assert [d.kind for d in first] == ["text", "markdown", "html"]


def test_explicit_field_and_unknown_field(tmp_path):
    path = write_jsonl(tmp_path / "b.jsonl", [{"body": "some text", "title": "t"}])
    assert [d.text for d in iter_documents(str(path), field="body")] == ["some text"]
    with one_line_usage_error(r"b\.jsonl:1: no field 'content'; available: body, title; pass --field"):
        list(iter_documents(str(path), field="content"))
    with one_line_usage_error(r"no 'html' or 'text' field .*pass --field"):
        list(iter_documents(str(path)))


def test_parquet_text_field(tmp_path):
    import pyarrow as pa
    import pyarrow.parquet as pq
    table = pa.table({"text": [f"row {i} text" for i in range(600)] + [None],
                      "url": [f"https://e.example/{i}" for i in range(601)]})
    path = tmp_path / "c.parquet"
    pq.write_table(table, path, row_group_size=100)
    docs = list(iter_documents(str(path)))
    assert len(docs) == 600 and docs[599].text == "row 599 text"
    assert docs[3].url == "https://e.example/3" and docs[3].meta["row"] == 4
    assert len({d.id for d in docs}) == 600
    with one_line_usage_error(r"no field 'html'; available: text, url"):
        list(iter_documents(str(path), field="html"))
    bad = tmp_path / "bad.parquet"
    bad.write_bytes(b"not parquet at all")
    with one_line_usage_error("not a readable Parquet file"):
        list(iter_documents(str(bad)))


def test_folder_of_txt_md_html_walked_in_order(tmp_path):
    root = tmp_path / "corpus"
    (root / "sub").mkdir(parents=True)
    (root / "b.txt").write_text("plain text file", encoding="utf-8")
    (root / "a.md").write_text("# Head\n\nbody", encoding="utf-8")
    (root / "sub" / "c.html").write_text(PAGE.format(n=3), encoding="utf-8")
    (root / "sub" / "latin.htm").write_bytes(
        b"<html><head><meta charset='iso-8859-1'></head><body><p>caf\xe9</p></body></html>")
    (root / "notes.csv").write_text("ignored", encoding="utf-8")
    (root / ".hidden.txt").write_text("ignored", encoding="utf-8")
    docs = list(iter_documents(str(root)))
    assert [(d.meta["path"], d.kind) for d in docs] == [
        ("corpus/a.md", "markdown"), ("corpus/b.txt", "text"),
        ("corpus/sub/c.html", "html"), ("corpus/sub/latin.htm", "html")]
    assert "café" in docs[3].text
    assert [d.id for d in iter_documents(str(root))] == [d.id for d in docs]


def make_warc(path: Path) -> None:
    from warcio.statusandheaders import StatusAndHeaders
    from warcio.warcwriter import WARCWriter
    with path.open("wb") as handle:
        writer = WARCWriter(handle, gzip=True)
        for n, ctype in ((1, "text/html; charset=utf-8"), (2, "image/png"), (3, "text/html")):
            body = PAGE.format(n=n).encode() if "html" in ctype else b"\x89PNG..."
            http = StatusAndHeaders("200 OK", [("Content-Type", ctype)], protocol="HTTP/1.1")
            writer.write_record(writer.create_warc_record(
                f"https://w.example/{n}", "response", payload=io.BytesIO(body), http_headers=http))
            writer.write_record(writer.create_warc_record(
                f"https://w.example/{n}", "request", payload=io.BytesIO(b"GET / HTTP/1.1\r\n\r\n"),
                http_headers=StatusAndHeaders("GET / HTTP/1.1", [], is_http_request=True)))


def test_warc_response_records(tmp_path):
    path = tmp_path / "crawl.warc.gz"
    make_warc(path)
    docs = list(iter_documents(str(path)))
    assert [d.url for d in docs] == ["https://w.example/1", "https://w.example/3"]
    assert all(d.kind == "html" and d.id.startswith("urn:uuid:") for d in docs)
    assert "<h2>Title 3</h2>" in docs[1].text and "HTTP/1.1" not in docs[1].text
    bad = tmp_path / "broken.warc"
    bad.write_bytes(b"this is not a warc file\r\n\r\n")
    with one_line_usage_error("not a readable WARC file"):
        list(iter_documents(str(bad)))


def clueweb_warc_record(cw_id: str, url: str, html: str) -> bytes:
    """One ClueWeb22 html record: a gzip member holding a WARC response with no HTTP head."""
    body = html.encode("utf-8")
    head = (f"WARC/1.0\r\nWARC-Type: response\r\nWARC-Target-URI: {url}\r\n"
            f"WARC-Date: 2022-02-20T00:00:00Z\r\nWARC-Record-ID: <urn:uuid:{cw_id[-5:]}>\r\n"
            f"ClueWeb22-ID: {cw_id}\r\nContent-Type: text/html\r\n"
            f"Content-Length: {len(body)}\r\n\r\n").encode()
    return gzip.compress(head + body + b"\r\n\r\n")


def make_clueweb(root: Path) -> None:
    """ROOT/{html,txt}/en/en00/en0000/en0000-0N.{warc.gz,json.gz} with offset files."""
    for part in range(2):
        stem = f"en0000-0{part}"
        html_dir = root / "html" / "en" / "en00" / "en0000"
        txt_dir = root / "txt" / "en" / "en00" / "en0000"
        html_dir.mkdir(parents=True, exist_ok=True)
        txt_dir.mkdir(parents=True, exist_ok=True)
        warc, txt, offsets = b"", b"", [0]
        for doc in range(3):
            cw_id = f"clueweb22-{stem}-{doc:05d}"
            url = f"https://cw.example/{part}/{doc}"
            warc += clueweb_warc_record(cw_id, url, PAGE.format(n=f"{part}.{doc}"))
            offsets.append(len(warc))
            line = json.dumps({"URL": url + "\n", "URL-hash": "ABC", "Language": "en",
                               "ClueWeb22-ID": cw_id,
                               "Clean-Text": f"Clean text {part}.{doc}\nSecond paragraph."}) + "\n"
            txt += gzip.compress(line.encode())
        (html_dir / f"{stem}.warc.gz").write_bytes(warc)
        (html_dir / f"{stem}.warc.offset").write_text("".join(f"{o:010d}\n" for o in offsets))
        (txt_dir / f"{stem}.json.gz").write_bytes(txt)
        (txt_dir / f"{stem}.offset").write_text("0000000000\n")


def test_clueweb_html_and_txt_forms(tmp_path, monkeypatch):
    root = tmp_path / "ClueWeb22_B"
    make_clueweb(root)
    html = list(iter_documents("clueweb", corpus_dir=str(root)))
    assert [d.id for d in html] == [f"clueweb22-en0000-0{p}-0000{d}" for p in (0, 1) for d in range(3)]
    assert html[4].url == "https://cw.example/1/1" and html[4].kind == "html"
    assert html[4].text.startswith("<html><body><h2>Title 1.1</h2>")
    txt = list(iter_documents("clueweb:txt", corpus_dir=str(root)))
    assert [d.id for d in txt] == [d.id for d in html]
    assert txt[0].kind == "text" and txt[0].url == "https://cw.example/0/0"
    assert txt[0].text == "Clean text 0.0\nSecond paragraph."
    monkeypatch.setenv("CLUEWEB22_ROOT", str(root))
    assert len(list(iter_documents("clueweb:html:en", limit=2))) == 2
    with one_line_usage_error(r"missing \(languages here: en\)"):
        list(iter_documents("clueweb:txt:de"))


def test_clueweb_without_root_says_what_to_do(monkeypatch, tmp_path):
    monkeypatch.delenv("CLUEWEB22_ROOT", raising=False)
    with one_line_usage_error("pass --corpus-dir DIR or set CLUEWEB22_ROOT"):
        iter_documents("clueweb")  # fails at the call, before anything is iterated
    with one_line_usage_error("no such folder"):
        list(iter_documents("clueweb", corpus_dir=str(tmp_path / "nope")))


def test_bad_inputs_are_one_line_usage_errors(tmp_path):
    cases = []
    cases.append((str(tmp_path / "missing.jsonl"), "no such file or folder"))
    bad_json = tmp_path / "bad.jsonl"
    bad_json.write_text('{"text": "fine"}\n{"text": broken\n', encoding="utf-8")
    cases.append((str(bad_json), r"bad\.jsonl:2: bad JSON"))
    latin_txt = tmp_path / "latin.txt"
    latin_txt.write_bytes(b"caf\xe9 au lait")
    cases.append((str(latin_txt), "not valid UTF-8 .*re-encode"))
    latin_jsonl = tmp_path / "latin.jsonl"
    latin_jsonl.write_bytes(b'{"text": "caf\xe9"}\n')
    cases.append((str(latin_jsonl), r"latin\.jsonl:1: not valid UTF-8"))
    not_object = tmp_path / "list.jsonl"
    not_object.write_text("[1, 2]\n", encoding="utf-8")
    cases.append((str(not_object), "expected a JSON object"))
    unknown = tmp_path / "data.csv"
    unknown.write_text("a,b\n", encoding="utf-8")
    cases.append((str(unknown), "unknown file type"))
    empty_dir = tmp_path / "empty"
    empty_dir.mkdir()
    cases.append((str(empty_dir), "no readable files inside"))
    for spec, match in cases:
        with pytest.raises(UsageError, match=match) as info:
            list(iter_documents(spec))
        assert "\n" not in info.value.message and "Traceback" not in info.value.message
    with one_line_usage_error("0 <= I < N"):
        parse_shard("3/3")
    assert parse_shard("1/4") == (1, 4)


def test_reading_is_lazy_and_limit_stops_early(tmp_path):
    path = tmp_path / "big.jsonl"
    path.write_text('{"text": "a"}\n{"text": "b"}\n{"text": broken\n', encoding="utf-8")
    assert [d.text for d in iter_documents(str(path), limit=2)] == ["a", "b"]
    assert list(iter_documents(str(path), limit=0)) == []


def test_shards_are_disjoint_and_cover_everything(tmp_path):
    path = write_jsonl(tmp_path / "s.jsonl", [{"text": f"doc {i}"} for i in range(23)])
    everything = [d.id for d in iter_documents(str(path))]
    shards = [[d.id for d in iter_documents(str(path), shard=(i, 4))] for i in range(4)]
    assert sorted(sum(shards, [])) == sorted(everything) and len(set(everything)) == 23
    assert all(set(a).isdisjoint(b) for i, a in enumerate(shards) for b in shards[i + 1:])
    assert shards[1] == everything[1::4]
    assert [d.id for d in iter_documents(str(path), shard=(1, 4), limit=2)] == everything[1:9:4]
    with one_line_usage_error("shard 4/4"):
        list(iter_documents(str(path), shard=(4, 4)))


def test_hf_streaming_from_a_local_folder(tmp_path):
    folder = tmp_path / "hfdata"
    folder.mkdir()
    write_jsonl(folder / "train.jsonl", [{"text": "first row"}, {"text": "second row", "id": "x2"}])
    docs = list(iter_documents(f"hf:{folder}"))
    assert [d.text for d in docs] == ["first row", "second row"]
    assert docs[1].id == "x2" and docs[0].meta["row"] == 0


def test_hf_offline_failure_is_one_fatal_line(monkeypatch):
    import datasets

    def offline(*args, **kwargs):
        raise ConnectionError("Couldn't reach 'quora' on the Hub (OfflineModeIsEnabled)\nmore")

    monkeypatch.setattr(datasets, "load_dataset", offline)
    with pytest.raises(FatalError, match="hf:quora:default: cannot open .*pass local files") as info:
        list(iter_documents("hf:quora:default"))
    assert "\n" not in info.value.message


def test_document_is_a_plain_dataclass():
    doc = Document("i", "t", "text")
    assert doc.url is None and doc.meta == {}


# ---------------------------------------------------------------- damaged compressed files

# ~500 KB of text: several of the blocks a decompressor works in (64 KiB buffers, 128 KiB
# zstd blocks), so that whole blocks precede the damage.
ROWS = 1000


def prose_rows(count: int = ROWS, seed: int = 7) -> list[dict]:
    """Rows of varied, poorly compressible text, so that a cut at 60% of the bytes lands far
    past the first documents, inside one of them."""
    rng = random.Random(seed)
    words = ["".join(rng.choice(string.ascii_lowercase) for _ in range(rng.randint(2, 9)))
             for _ in range(400)]
    return [{"id": f"d{n}", "url": f"https://z.example/{n}",
             "text": " ".join(rng.choice(words) for _ in range(rng.randint(40, 120)))}
            for n in range(count)]


def jsonl_bytes(rows: list[dict]) -> bytes:
    return "".join(json.dumps(r) + "\n" for r in rows).encode()


def zstd_compress(data: bytes) -> bytes:
    import zstandard
    return zstandard.ZstdCompressor().compress(data)


def warc_members(rows: list[dict]) -> list[bytes]:
    """One gzip member per response record, as WARCWriter (and ClueWeb22) write them."""
    from warcio.statusandheaders import StatusAndHeaders
    from warcio.warcwriter import WARCWriter
    members = []
    for row in rows:
        buffer = io.BytesIO()
        writer = WARCWriter(buffer, gzip=True)
        body = f"<html><body><h2>{row['id']}</h2><p>{row['text']}</p></body></html>".encode()
        http = StatusAndHeaders("200 OK", [("Content-Type", "text/html")], protocol="HTTP/1.1")
        writer.write_record(writer.create_warc_record(row["url"], "response",
                                                      payload=io.BytesIO(body), http_headers=http))
        members.append(buffer.getvalue())
    return members


def compressed_source(kind: str, root: Path) -> tuple[str, dict, Path, bytes, list[int]]:
    """(spec, iter_documents kwargs, the compressed file, its bytes, where its gzip members
    end); the file is not written yet."""
    rows = prose_rows()
    if kind.startswith("jsonl."):
        path = root / f"pages.{kind}"
        text = jsonl_bytes(rows)
        data = gzip.compress(text) if kind == "jsonl.gz" else zstd_compress(text)
        return str(path), {}, path, data, [len(data)]
    if kind == "warc.gz":
        members = warc_members(rows)
        path, spec, kwargs = root / "crawl.warc.gz", str(root / "crawl.warc.gz"), {}
    elif kind == "clueweb:txt":
        members = [gzip.compress(json.dumps({"URL": r["url"], "ClueWeb22-ID": r["id"],
                                             "Clean-Text": r["text"]}).encode() + b"\n")
                   for r in rows]
        path = root / "cw" / "txt" / "en" / "en00" / "en0000" / "en0000-00.json.gz"
        spec, kwargs = "clueweb:txt", {"corpus_dir": str(root / "cw")}
    else:  # clueweb:html
        members = [clueweb_warc_record(r["id"], r["url"], f"<p>{r['text']}</p>") for r in rows]
        path = root / "cw" / "html" / "en" / "en00" / "en0000" / "en0000-00.warc.gz"
        spec, kwargs = "clueweb:html", {"corpus_dir": str(root / "cw")}
    ends = [sum(len(m) for m in members[:i + 1]) for i in range(len(members))]
    return spec, kwargs, path, b"".join(members), ends


def cut_point(data: bytes, ends: list[int]) -> int:
    """The middle of the gzip member that holds the byte at ~60%: never on a boundary (a cut there
    leaves a valid, shorter file) nor in a member's trailer (a WARC record's date and id make the
    member sizes differ from run to run, so a fixed offset could land anywhere)."""
    at = int(len(data) * 0.6)
    end = next(e for e in ends if e > at)
    start = max([e for e in ends if e < end], default=0)
    return (start + end) // 2


def damage(data: bytes, how: str, ends: list[int]) -> bytes:
    """Cut at ~60%, or overwrite everything from there with garbage, or the whole file."""
    rng = random.Random(11)
    cut = cut_point(data, ends)
    if how == "cut":
        return data[:cut]
    if how == "garbage tail":
        return data[:cut] + rng.randbytes(len(data) - cut)
    return rng.randbytes(len(data))


def read_until_error(spec: str, **kwargs) -> tuple[list[Document], BaseException | None]:
    docs: list[Document] = []
    try:
        for doc in iter_documents(spec, **kwargs):
            docs.append(doc)
    except BaseException as exc:  # noqa: BLE001 - the test looks at whatever escapes
        return docs, exc
    return docs, None


def write(path: Path, data: bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)


COMPRESSED_KINDS = ["jsonl.gz", "jsonl.zst", "warc.gz", "clueweb:txt", "clueweb:html"]
URLS = [f"https://z.example/{n}" for n in range(ROWS)]


@pytest.mark.parametrize("kind", COMPRESSED_KINDS + ["jsonl.zstd"])
def test_compressed_kinds_are_read_whole(kind, tmp_path):
    spec, kwargs, path, data, _ = compressed_source(kind, tmp_path)
    write(path, data)
    assert [d.url for d in iter_documents(spec, **kwargs)] == URLS


@pytest.mark.parametrize("kind,how", [
    pytest.param(kind, how)
    for kind in COMPRESSED_KINDS for how in ("cut", "garbage tail", "garbage")])
def test_damaged_compressed_file_is_one_usage_error_after_the_good_documents(kind, how, tmp_path):
    spec, kwargs, path, data, ends = compressed_source(kind, tmp_path)
    write(path, damage(data, how, ends))
    docs, exc = read_until_error(spec, **kwargs)
    assert isinstance(exc, UsageError), f"{type(exc).__name__}: {exc}"
    assert str(path) in exc.message and "\n" not in exc.message
    expected = r"truncated or corrupt compressed file|not a readable WARC file|cut short"
    if how == "garbage tail" and kind.startswith("jsonl."):
        # deflate and zstd may decode garbage into bytes before their checksum fails: the
        # first such line is then the error, with its file:line
        expected += r"|:\d+: (bad JSON|not valid UTF-8|expected a JSON object|no 'html' or 'text')"
    assert re.search(expected, exc.message), exc.message
    assert [d.url for d in docs] == URLS[:len(docs)]
    if how == "garbage":
        assert docs == []
    else:
        assert len(docs) >= 20, "the documents before the damage come first"


def decodable_documents(kind: str, data: bytes, ends: list[int], cut: int) -> int:
    """How many documents lie wholly in the part of a cut file that still decompresses."""
    if kind == "jsonl.gz":
        return zlib.decompressobj(wbits=31).decompress(data[:cut]).count(b"\n")
    if kind == "jsonl.zst":
        import zstandard
        return zstandard.ZstdDecompressor().decompressobj().decompress(data[:cut]).count(b"\n")
    return sum(1 for end in ends if end <= cut)


# Every document decodable before the damage is yielded: open_binary returns what is decoded so
# far (read1), so the block that meets the damage does not take good documents down with it.
@pytest.mark.parametrize("kind", COMPRESSED_KINDS)
def test_every_document_before_a_cut_is_yielded(kind, tmp_path):
    spec, kwargs, path, data, ends = compressed_source(kind, tmp_path)
    cut = cut_point(data, ends)
    write(path, data[:cut])
    docs, exc = read_until_error(spec, **kwargs)
    assert isinstance(exc, UsageError) and str(path) in exc.message
    assert "truncated or corrupt compressed file" in exc.message
    assert [d.url for d in docs] == URLS[:decodable_documents(kind, data, ends, cut)]


def test_damaged_file_in_a_folder_comes_after_the_earlier_files(tmp_path):
    root = tmp_path / "corpus"
    root.mkdir()
    write_jsonl(root / "a.jsonl", [{"text": "first file"}])
    (root / "b.jsonl.gz").write_bytes(gzip.compress(jsonl_bytes(prose_rows(40)))[:3000])
    write_jsonl(root / "c.jsonl", [{"text": "never reached"}])
    docs, exc = read_until_error(str(root))
    assert docs and docs[0].text == "first file" and "never reached" not in [d.text for d in docs]
    assert isinstance(exc, UsageError) and str(root / "b.jsonl.gz") in exc.message


def test_truncated_plain_warc_record_is_a_usage_error(tmp_path):
    path = tmp_path / "cut.warc"
    data = b"".join(gzip.decompress(m) for m in warc_members(prose_rows(10)))
    path.write_bytes(data[:int(len(data) * 0.6)])
    docs, exc = read_until_error(str(path))
    assert 3 <= len(docs) < 10 and [d.url for d in docs] == URLS[:len(docs)]
    assert isinstance(exc, UsageError) and str(path) in exc.message and "cut short" in exc.message


# ---------------------------------------------------------------- module layering

# Each corpus reader module with the modules it must never import (those above it):
# document, charset <- rows, files <- warc, hf <- clueweb, local <- readers.
ABOVE = {
    "document": ["rows", "files", "charset", "warc", "hf", "clueweb", "local", "readers"],
    "rows": ["files", "warc", "hf", "clueweb", "local", "readers"],
    "files": ["rows", "warc", "hf", "clueweb", "local", "readers"],
    "warc": ["rows", "hf", "clueweb", "local", "readers"],
    "hf": ["files", "warc", "clueweb", "local", "readers"],
    "clueweb": ["hf", "local", "readers"],
    "local": ["hf", "clueweb", "readers"],
}


def corpus_imports(name: str) -> set[str]:
    """Every generators.inputs.corpus module that `name` imports, at module level or in a function."""
    source = (CORPUS_DIR / f"{name}.py").read_text("utf-8")
    found = set()
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.ImportFrom) and node.level == 1:
            found.add((node.module or "").split(".")[0])
        elif isinstance(node, ast.ImportFrom) and (node.module or "").startswith("generators.inputs.corpus."):
            found.add(node.module.split(".")[2])
    return found


@pytest.mark.parametrize("name", sorted(ABOVE))
def test_corpus_modules_import_one_way(name):
    assert not corpus_imports(name) & set(ABOVE[name])


def test_warc_module_loads_without_the_readers():
    """In a fresh interpreter, with the package's __init__ (which imports everything) kept
    out of the way, importing warc, hf, clueweb or local never pulls in readers."""
    script = (
        "import sys, types, generators\n"
        "pkg = types.ModuleType('generators.inputs.corpus')\n"
        "pkg.__path__ = [generators.__path__[0] + '/inputs/corpus']\n"
        "sys.modules['generators.inputs.corpus'] = pkg\n"
        "import importlib\n"
        "for name in ('warc', 'hf', 'clueweb', 'local'):\n"
        "    importlib.import_module('generators.inputs.corpus.' + name)\n"
        "    assert 'generators.inputs.corpus.readers' not in sys.modules, name\n"
        "print('ok')\n")
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                          check=False, cwd=Path(__file__).resolve().parents[2], timeout=120)
    assert done.returncode == 0 and done.stdout.strip() == "ok", done.stderr
