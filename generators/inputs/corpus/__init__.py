"""The corpus side of Humpback backtranslation: read web documents, cut them into
self-contained segments, and keep the ones worth turning into instruction data.

    documents = iter_documents("clueweb", corpus_dir=..., shard=(0, 4))
    pipeline = SegmentPipeline(SegmentFilterConfig())
    for segment in pipeline.run(documents): ...
    pipeline.summary()   # counts for the manifest
"""
from __future__ import annotations

from generators.inputs.corpus.document import Document
from generators.inputs.corpus.filters import (SEGMENT_FILTERS, SEGMENT_REASONS, SegmentFilterConfig, SegmentPipeline,
                                              prepare_segments)
from generators.inputs.corpus.readers import iter_documents
from generators.inputs.corpus.segment import Segment, segment_document

__all__ = [
    "Document", "SEGMENT_FILTERS", "SEGMENT_REASONS", "Segment", "SegmentFilterConfig", "SegmentPipeline",
    "iter_documents", "prepare_segments", "segment_document",
]
