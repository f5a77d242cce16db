"""Segmentation (HTML, markdown, plain text) and every segment filter, on hand-written input."""
from __future__ import annotations

import random

import click
import pytest

from generators.inputs.corpus import (SEGMENT_REASONS, Document, Segment, SegmentFilterConfig, SegmentPipeline,
                               prepare_segments, segment_document)
from generators.inputs.corpus.filters import has_repeated_sentences
from generators.inputs.corpus.segment import html_blocks, markdown_blocks, text_chunks
from generators.core.errors import UsageError
from generators.core.flags import options

VOCAB = ("river stone garden lamp winter copper violin harbor meadow pencil orbit velvet canyon "
         "lantern quartz falcon marble thunder cobalt saddle walnut meteor prairie glacier amber "
         "beacon cedar dolphin ember fjord granite hazel iris jasmine kettle lilac maple nectar "
         "oyster pepper quill raven saffron tulip umber valley willow yarrow zephyr anchor basil "
         "cactus dune echo fern grove heron ivory juniper kelp lotus mango nutmeg olive pine").split()


def prose(seed: int, chars: int) -> str:
    """Distinct sentences of random words: no two sentences share much, so no filter fires."""
    rng = random.Random(seed)
    sentences: list[str] = []
    while sum(len(s) + 1 for s in sentences) < chars:
        words = [rng.choice(VOCAB) for _ in range(rng.randint(8, 14))]
        sentences.append(" ".join(words).capitalize() + ".")
    return " ".join(sentences)


def run(documents: list[Document], **config) -> tuple[list[Segment], SegmentPipeline]:
    pipeline = SegmentPipeline(SegmentFilterConfig(**config))
    return list(pipeline.run(documents)), pipeline


NESTED = f"""<!doctype html><html><head><title>Site</title><style>p {{color: red}}</style></head>
<body>
<nav><ul><li>Home</li><li>Forum</li><li>NAVJUNK</li></ul></nav>
<div class="sidebar">SIDEBARJUNK</div>
<p>Welcome text before any header.</p>
<h1>Growing Tomatoes</h1>
<p>{prose(1, 300)}</p>
<h2>Soil</h2>
<p>{prose(2, 400)}</p>
<h3>Soil pH</h3>
<p>{prose(3, 400)}</p><script>var SCRIPTJUNK = 1;</script>
<h3>Compost</h3>
<p>{prose(4, 400)}<!-- a comment --> tail kept.</p>
<h2>Watering</h2>
<ul><li>{prose(5, 350)}</li><li>{prose(6, 350)}</li></ul>
<aside>ASIDEJUNK</aside>
<footer>FOOTERJUNK copyright</footer>
</body></html>"""


def test_html_sections_nest_and_split_only_when_too_long():
    doc = Document("d1", NESTED, "html", "https://example.com/tomatoes")
    big = list(segment_document(doc, max_chars=100_000))
    # everything fits: the intro (no header) and the whole h1 section with its sub-headers inside
    assert [s.header for s in big] == ["", "Growing Tomatoes"]
    whole = big[1].text
    assert whole.startswith("Growing Tomatoes\n")
    for sub in ("\nSoil\n", "\nSoil pH\n", "\nCompost\n", "\nWatering\n", "tail kept."):
        assert sub in whole
    segments = list(segment_document(doc, max_chars=1000))
    headers = [(s.level, s.header) for s in segments]
    # h1 too long -> its lead, then h2 "Soil" too long -> its lead, then each h3; "Watering" fits
    assert headers == [(0, ""), (1, "Growing Tomatoes"), (2, "Soil"), (3, "Soil pH"),
                       (3, "Compost"), (2, "Watering")]
    assert [s.index for s in segments] == list(range(6))
    assert all(s.doc_id == "d1" and s.url == "https://example.com/tomatoes" for s in segments)
    assert segments[3].text.startswith("Soil pH\n") and "Compost" not in segments[3].text
    assert segments[5].text.count("\n- ") == 2  # list items kept as lines
    # no segment overlaps another: every prose paragraph appears exactly once
    joined = "\n".join(s.text for s in segments)
    for seed in range(1, 7):
        assert joined.count(prose(seed, 50)[:40]) == 1


def test_html_boilerplate_elements_are_dropped():
    text = "\n".join(t for _, t in html_blocks(NESTED))
    for junk in ("NAVJUNK", "SIDEBARJUNK", "SCRIPTJUNK", "ASIDEJUNK", "FOOTERJUNK", "color: red",
                 "Site", "a comment"):
        assert junk not in text
    assert "Welcome text before any header." in text


def test_html_roles_hidden_and_pre():
    page = ("<body><div role='navigation'>ROLEJUNK</div><p hidden>HIDDENJUNK</p>"
            "<div style='display: none'>STYLEJUNK</div><h2>Code</h2><pre>line one\nline two</pre>"
            "<table><tr><td>a</td><td>b</td></tr></table></body>")
    blocks = html_blocks(page)
    assert blocks == [(2, "Code"), (0, "line one"), (0, "line two"), (0, "a b")]
    assert html_blocks("") == [] and html_blocks("<?xml version='1.0' encoding='utf-8'?><p>x</p>") == [(0, "x")]


def test_markdown_headers_fences_and_setext():
    md = ("Intro line.\n\n# Title\n\nLead para.\n\n## Part A\n\nText A.\n\n```python\n"
          "# not a header\nx = 1\n```\n\n### Deep\n\nDeep text.\n\nPart B\n------\n\nText B.\n")
    blocks = markdown_blocks(md)
    assert [b for b in blocks if b[0]] == [(1, "Title"), (2, "Part A"), (3, "Deep"), (2, "Part B")]
    assert any("# not a header" in t for level, t in blocks if level == 0)
    doc = Document("m", md, "markdown")
    whole = list(segment_document(doc, max_chars=10_000))
    assert [s.header for s in whole] == ["", "Title"]
    assert "## Part A" in whole[1].text and "### Deep" in whole[1].text
    split = list(segment_document(doc, max_chars=60))
    assert [s.header for s in split] == ["", "Title", "Part A", "Deep", "Part B"]


def test_plain_text_paragraph_chunks_are_balanced_and_bounded():
    paragraphs = [prose(i, 500) for i in range(9)]
    chunks = text_chunks("\n\n   \n".join(paragraphs), 3000)
    assert len(chunks) == 2 and all(len(c) <= 3000 for c in chunks)
    assert abs(len(chunks[0]) - len(chunks[1])) < 600  # balanced, not 3000 + a short tail
    assert "\n".join(chunks).split("\n") == paragraphs
    one_long = prose(42, 7000)  # one paragraph longer than the window: split at sentences
    pieces = text_chunks(one_long, 3000)
    assert len(pieces) == 3 and all(len(p) <= 3000 for p in pieces)
    assert " ".join(pieces) == one_long
    segments = list(segment_document(Document("t", one_long, "text"), max_chars=3000))
    assert all(s.header == "" and s.kind == "text" for s in segments)


def md_doc(doc_id: str, header: str, body: str) -> Document:
    return Document(doc_id, f"# {header}\n\n{body}\n", "markdown")


def test_each_filter_reason_is_counted():
    docs = [
        md_doc("ok", "How compost works", prose(10, 1000)),
        md_doc("short", "Tiny", prose(11, 100)),
        md_doc("long", "Huge", prose(12, 4000)),
        Document("empty", f"<h2> </h2><p>{prose(13, 1000)}</p>", "html"),
        md_doc("caps", "SYMPTOMS AND SIGNS", prose(14, 1000)),
        md_doc("acronym", "HIV", prose(15, 1000)),
        md_doc("nav1", "Related Posts", prose(16, 1000)),
        md_doc("nav2", "Free Newsletter!", prose(17, 1000)),
        md_doc("nav3", "Advertisement", prose(18, 1000)),
        md_doc("nav4", "Categories", prose(19, 1000)),
        md_doc("rep", "Repeats", prose(20, 500) + " The copper lamp glows over the quiet harbor "
               "tonight. " + prose(21, 500) + " The copper lamp glows over the quiet harbor tonight!"),
        md_doc("dup", "How compost works", prose(10, 1000)),
        md_doc("near", "How compost works", prose(10, 1000).replace("river", "brook", 1) + " Extra."),
    ]
    kept, pipeline = run(docs)
    assert [s.doc_id for s in kept] == ["ok", "acronym"]
    expected = {"too_short": 1, "too_long": 1, "empty_header": 1, "caps_header": 1,
                "boilerplate_header": 4, "repeated_sentences": 1, "duplicate": 1,
                "near_duplicate": 1}
    assert dict(pipeline.counts) == expected
    summary = pipeline.summary()
    assert summary["documents"] == len(docs) and summary["segments"] == len(docs)
    assert summary["kept"] == 2 and list(summary["rejected"]) == list(SEGMENT_REASONS)


def test_filters_are_configurable():
    docs = [md_doc("short", "Tiny", prose(11, 100)), md_doc("caps", "SYMPTOMS", prose(14, 1000)),
            md_doc("nav", "Related Posts", prose(16, 1000))]
    kept, pipeline = run(docs, min_chars=50, check_headers=False)
    assert len(kept) == 3 and not pipeline.counts
    kept, _ = run(docs[2:], boilerplate_phrases=(), boilerplate_exact=())
    assert len(kept) == 1
    with pytest.raises(UsageError, match="need 0 <= min <= max"):
        SegmentFilterConfig(min_chars=5000, max_chars=3000)


def test_the_segment_flags_are_the_config_fields():
    @options(SegmentFilterConfig)
    @click.command()
    def probe(**_: object) -> None: ...

    def parsed(*args: str) -> SegmentFilterConfig:
        return SegmentFilterConfig.from_flags(dict(probe.make_context("probe", list(args)).params))

    assert parsed() == SegmentFilterConfig()
    assert parsed("--no-dedup") == SegmentFilterConfig(dedup=False, near_dedup=False)  # both kinds kept
    assert parsed("--no-near-dedup", "--no-header-filters", "--min-chars", "10", "--near-threshold", "0.9") == \
        SegmentFilterConfig(near_dedup=False, check_headers=False, min_chars=10, near_threshold=0.9)


def test_plain_text_skips_header_checks_unless_asked():
    doc = Document("t", prose(30, 1500), "text")
    assert len(run([doc])[0]) == 1
    kept, pipeline = run([doc], text_needs_header=True)
    assert kept == [] and pipeline.counts["empty_header"] == 1


def test_repeated_sentences_detector():
    base = "The quick falcon crossed the granite canyon before the winter storm arrived."
    assert has_repeated_sentences(f"{base} {prose(1, 300)} {base}")
    long = ("The quick falcon crossed the granite canyon before the winter storm arrived and the "
            "shepherds gathered their flocks near the old cedar grove by the river while the "
            "children carried lanterns home.")
    assert has_repeated_sentences(f"{long}\n{long.replace('winter', 'summer')}")  # J ~ 0.82
    assert not has_repeated_sentences(f"{base}\n{base.replace('winter', 'summer')}")  # J = 0.54
    assert not has_repeated_sentences(prose(2, 2500))
    assert not has_repeated_sentences("Click here. Click here. Click here.")  # under min_words
    assert not has_repeated_sentences(f"{base} {base}", threshold=1.01)


def test_near_dedup_keeps_distinct_texts_and_exact_dedup_can_be_off():
    distinct = [md_doc(f"d{i}", f"Topic {i}", prose(100 + i, 1200)) for i in range(40)]
    kept, pipeline = run(distinct)
    assert len(kept) == 40 and not pipeline.counts
    same = [md_doc("a", "Same", prose(5, 1000)), md_doc("b", "Same", prose(5, 1000))]
    kept, pipeline = run(same, dedup=False, near_dedup=False)
    assert len(kept) == 2
    kept, pipeline = run(same, dedup=False)  # the near index alone still catches a copy
    assert len(kept) == 1 and pipeline.counts["near_duplicate"] == 1


def test_remember_primes_dedup_for_a_resumed_run():
    docs = [md_doc(f"d{i}", f"Topic {i}", prose(200 + i, 1200)) for i in range(6)]
    first = SegmentPipeline()
    done = [s.text for s in first.run(docs[:3])]  # the killed run kept these
    resumed = SegmentPipeline()
    for text in done:
        resumed.remember(text)
    kept = [s.doc_id for s in resumed.run(docs)]
    assert kept == ["d3", "d4", "d5"] and resumed.counts["duplicate"] == 3


def test_prepare_segments_iterates_lazily_with_counts():
    def documents():
        yield md_doc("a", "Alpha", prose(300, 1000))
        yield md_doc("b", "Beta", prose(301, 100))
        raise AssertionError("read past what was asked")

    prepared = prepare_segments(documents())
    first = next(prepared)
    assert first.doc_id == "a" and prepared.summary()["documents"] == 1
    with pytest.raises(AssertionError):
        list(prepared)
    assert prepared.counts["too_short"] == 1
