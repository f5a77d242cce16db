"""Cut a document into Humpback's candidate segments (arXiv 2308.06259: "self-contained
segments that follow an HTML header, with their sub-headers").

Choice made here, since the paper does not say how nested sections are counted: a header's
section runs to the next header of the same or a higher level, sub-sections included. A section
that fits within `max_chars` is one segment, its sub-headers kept as lines inside it; a section
too long is not emitted whole but split: its header with its lead text (before the first
sub-header) becomes one candidate and each sub-section is considered in turn, the same way. So
segments never overlap (no web text is used twice) and each is the largest self-contained
section that fits the window. Text before the first header gets header "" (Humpback keeps only
segments that follow a header, so the empty-header filter drops it). Plain text has no headers:
its paragraphs are grouped into balanced chunks up to `max_chars`, with header "".

HTML is parsed with lxml; script, style, nav, footer, aside, forms and elements marked as
navigation (role, or a class/id token such as "sidebar" or "breadcrumb") are dropped.
Markdown splits at ATX (`## x`) and setext headers, never inside code fences.
"""
from __future__ import annotations

import math
import re
from dataclasses import dataclass, field
from typing import Iterator

from generators.inputs.corpus.document import Document

Block = tuple[int, str]  # (header level 1-6, or 0 for a paragraph; text)

DROP_TAGS = ("script", "style", "noscript", "nav", "footer", "aside", "form", "iframe",
             "template", "svg", "button", "select", "textarea", "head", "object", "embed",
             "canvas", "menu", "dialog")
DROP_ROLES = frozenset({"navigation", "banner", "contentinfo", "complementary", "search",
                        "menu", "menubar", "dialog", "alert"})
DROP_CLASS_TOKENS = frozenset({
    "nav", "navbar", "navigation", "menu", "footer", "sidebar", "breadcrumb", "breadcrumbs",
    "cookie-banner", "cookie-notice", "cookie-consent", "advertisement", "ad", "ads", "advert",
    "share", "sharing", "social-share", "social-links", "related-posts", "skip-link",
})
KEEP_ALWAYS = frozenset({"html", "body", "main", "article"})
BLOCK_TAGS = frozenset({
    "p", "div", "li", "ul", "ol", "br", "tr", "table", "section", "article", "blockquote",
    "pre", "dd", "dt", "dl", "header", "main", "figure", "figcaption", "hr", "address",
    "details", "summary", "caption", "tbody", "thead", "center", "body", "html",
})
CELL_TAGS = frozenset({"td", "th"})
HEADER_TAGS = {f"h{i}": i for i in range(1, 7)}

_XML_DECL = re.compile(r"^\s*<\?xml[^>]*\?>", re.I)
_ATX = re.compile(r"^ {0,3}(#{1,6})(?:[ \t]+(.*?))?(?:[ \t]+#+)?[ \t]*$")
_SETEXT = re.compile(r"^ {0,3}(=+|-+)[ \t]*$")
_FENCE = re.compile(r"^ {0,3}(```|~~~)")
_BLANK_SPLIT = re.compile(r"\n[ \t\r\f\v]*\n")
_SENTENCE_END = re.compile(r"(?<=[.!?])\s+(?=\S)")


@dataclass
class Segment:
    """A candidate output for backtranslation: `text` starts with its header line."""

    doc_id: str
    index: int
    header: str
    text: str
    url: str | None = None
    kind: str = "html"
    level: int = 0
    repaired_text: int = 0  # of the document's repaired surrogates, the U+FFFD this segment holds


@dataclass
class _Section:
    level: int
    header: str
    lead: list[str] = field(default_factory=list)
    children: list["_Section"] = field(default_factory=list)


def segment_document(document: Document, *, max_chars: int = 3000) -> Iterator[Segment]:
    """Candidate segments of one document, in reading order, indexed from 0."""
    if document.kind == "text":
        pieces = ((0, "", chunk) for chunk in text_chunks(document.text, max_chars))
    else:
        if document.kind == "html":
            blocks, joiner = html_blocks(document.text), "\n"
        else:
            blocks, joiner = markdown_blocks(document.text), "\n\n"
        pieces = _sections(blocks, max_chars, joiner, markdown=document.kind == "markdown")
    for index, (level, header, text) in enumerate(pieces):
        repairs = min(text.count("\ufffd"), document.repaired_text) if document.repaired_text else 0
        yield Segment(document.id, index, header, text, document.url, document.kind, level, repairs)


# ---------------------------------------------------------------- sections (html, markdown)

def _build_tree(blocks: list[Block]) -> _Section:
    root = _Section(0, "")
    stack = [root]
    for level, text in blocks:
        if level == 0:  # the newest open header never has children yet: text is its lead
            stack[-1].lead.append(text)
            continue
        while stack[-1].level >= level:
            stack.pop()
        section = _Section(level, text)
        stack[-1].children.append(section)
        stack.append(section)
    return root


def _render(section: _Section, joiner: str, markdown: bool) -> str:
    parts: list[str] = []
    if section.level:
        parts.append(("#" * section.level + " " + section.header) if markdown else section.header)
    parts.extend(section.lead)
    parts.extend(_render(child, joiner, markdown) for child in section.children)
    return joiner.join(p for p in parts if p)


def _sections(blocks: list[Block], max_chars: int, joiner: str,
              markdown: bool) -> Iterator[tuple[int, str, str]]:
    root = _build_tree(blocks)
    if root.lead:
        yield 0, "", joiner.join(root.lead)
    stack = list(reversed(root.children))
    while stack:  # depth-first, reading order, no recursion limit on deep pages
        section = stack.pop()
        text = _render(section, joiner, markdown)
        if len(text) <= max_chars or not section.children:
            yield section.level, section.header, text
            continue
        lead = _Section(section.level, section.header, section.lead)
        yield section.level, section.header, _render(lead, joiner, markdown)
        stack.extend(reversed(section.children))


def _clean_header(text: str) -> str:
    return " ".join(text.split()).strip(" \u00b6#\u00a7|:-\u2013\u2014")


def html_blocks(page: str) -> list[Block]:
    """Header and paragraph blocks of a page, boilerplate elements dropped, reading order."""
    from lxml import etree, html

    page = _XML_DECL.sub("", page, count=1)
    if not page.strip():
        return []
    try:
        root = html.document_fromstring(page)
    except (etree.ParserError, ValueError):
        return []
    etree.strip_elements(root, etree.Comment, etree.ProcessingInstruction, *DROP_TAGS,
                         with_tail=False)
    blocks: list[Block] = []
    buffer: list[str] = []
    pre_depth = 0

    def flush() -> None:
        if not buffer:
            return
        joined = "".join(buffer)
        buffer.clear()
        lines = joined.splitlines() if pre_depth else [joined]
        for line in lines:
            line = " ".join(line.split())
            if line:
                blocks.append((0, line))

    walker = etree.iterwalk(root, events=("start", "end"))
    for event, element in walker:
        tag = element.tag if isinstance(element.tag, str) else ""
        if event == "start":
            if _is_boilerplate(element, tag):
                walker.skip_subtree()
                continue
            level = HEADER_TAGS.get(tag)
            if level:
                flush()
                blocks.append((level, _clean_header(element.text_content())))
                walker.skip_subtree()
                continue
            if tag in BLOCK_TAGS:
                flush()
                if tag == "pre":
                    pre_depth += 1
                elif tag == "li":
                    buffer.append("- ")
            elif tag in CELL_TAGS:
                buffer.append(" ")
            if element.text:
                buffer.append(element.text)
        else:
            if tag in BLOCK_TAGS or tag in HEADER_TAGS:
                flush()
                if tag == "pre":
                    pre_depth = max(0, pre_depth - 1)
            elif tag in CELL_TAGS:
                buffer.append(" ")
            if element.tail:
                buffer.append(element.tail)
    flush()
    return blocks


def _is_boilerplate(element, tag: str) -> bool:
    if tag in KEEP_ALWAYS or not element.attrib:
        return False
    get = element.get
    if (get("role") or "").strip().lower() in DROP_ROLES:
        return True
    if (get("aria-hidden") or "").lower() == "true" or get("hidden") is not None:
        return True
    if "display:none" in (get("style") or "").replace(" ", "").lower():
        return True
    tokens = f"{get('class') or ''} {get('id') or ''}".lower().split()
    return any(token in DROP_CLASS_TOKENS for token in tokens)


def markdown_blocks(text: str) -> list[Block]:
    """Header and paragraph blocks of markdown; fenced code is never read as a header."""
    blocks: list[Block] = []
    paragraph: list[str] = []
    fence: str | None = None

    def flush() -> None:
        if paragraph:
            joined = "\n".join(paragraph).strip("\n")
            paragraph.clear()
            if joined.strip():
                blocks.append((0, joined))

    for line in text.splitlines():
        line = line.rstrip()
        fence_match = _FENCE.match(line)
        if fence is not None:
            paragraph.append(line)
            if fence_match and fence_match[1] == fence:
                fence = None
            continue
        if fence_match:
            fence = fence_match[1]
            paragraph.append(line)
            continue
        atx = _ATX.match(line)
        if atx:
            flush()
            blocks.append((len(atx[1]), _clean_header(atx[2] or "")))
            continue
        setext = _SETEXT.match(line)
        if setext and paragraph and "\n" not in "\n".join(paragraph).strip("\n") \
                and (setext[1][0] == "=" or len(setext[1]) >= 2):
            header = _clean_header(paragraph.pop())
            flush()
            blocks.append((1 if setext[1][0] == "=" else 2, header))
            continue
        if not line.strip():
            flush()
            continue
        paragraph.append(line)
    flush()
    return blocks


# ---------------------------------------------------------------- plain text

def text_chunks(text: str, max_chars: int) -> list[str]:
    """Paragraphs (blank-line separated; lines kept, spaces collapsed) grouped into chunks of
    about equal size, none over max_chars unless one sentence is."""
    units: list[str] = []
    for block in _BLANK_SPLIT.split(text.replace("\r\n", "\n")):
        lines = [" ".join(line.split()) for line in block.split("\n")]
        paragraph = "\n".join(line for line in lines if line)
        if not paragraph:
            continue
        if len(paragraph) <= max_chars:
            units.append(paragraph)
            continue
        for line in paragraph.split("\n"):
            if len(line) <= max_chars:
                units.append(line)
            else:
                units.extend(_sentence_pieces(line, max_chars))
    if not units:
        return []
    total = sum(len(u) for u in units) + len(units) - 1
    target = total / math.ceil(total / max_chars)
    chunks: list[str] = []
    current: list[str] = []
    size = 0
    for unit in units:
        if current and size + 1 + len(unit) > max_chars:
            chunks.append("\n".join(current))
            current, size = [], 0
        size += len(unit) + (1 if current else 0)
        current.append(unit)
        if size >= target:
            chunks.append("\n".join(current))
            current, size = [], 0
    if current:
        chunks.append("\n".join(current))
    return chunks


def _sentence_pieces(line: str, max_chars: int) -> list[str]:
    pieces: list[str] = []
    current = ""
    for sentence in _SENTENCE_END.split(line):
        if current and len(current) + 1 + len(sentence) > max_chars:
            pieces.append(current)
            current = sentence
        else:
            current = f"{current} {sentence}" if current else sentence
    if current:
        pieces.append(current)
    return pieces
