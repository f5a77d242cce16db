"""Corpus readers on small files the tests write: JSONL, Parquet, text, markdown, HTML, WARC,
a fake ClueWeb22 copy in its distributed layout, Hugging Face streaming from a local folder;
bad input; shards and limits."""
from __future__ import annotations

import gzip
import io
import json
from pathlib import Path

import pytest

from generators.corpus import Document, iter_documents, parse_shard
from generators.errors import FatalError, UsageError

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
    with one_line_usage_error(r"b\.jsonl:1: no field 'content' \(fields: body, title\)"):
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
    with one_line_usage_error(r"no field 'html' \(columns: text, url\)"):
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
