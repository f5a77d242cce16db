"""Stream a Hugging Face data set row by row (never downloading it whole); rows become
documents exactly as local JSONL and Parquet rows do (rows.py)."""
from __future__ import annotations

from typing import Iterator

from generators.core.errors import FatalError, first_line
from generators.core.records import stable_id
from generators.inputs.corpus.document import Pending
from generators.inputs.corpus.rows import row_document


def iter_hf(name: str, config: str | None, split: str, field: str | None) -> Iterator[Pending]:
    """Pending documents of `load_dataset(name, config, split=split, streaming=True)`; opening
    happens at once (errors before any work), rows arrive lazily."""
    label = ":".join(p for p in ("hf", name, config) if p)
    try:
        import datasets
    except ImportError:
        raise FatalError(f"{label}: the 'datasets' package is not installed; pip install datasets, "
                         "or pass local files (.jsonl, .parquet, .warc, .html)") from None
    try:
        stream = iter(datasets.load_dataset(name, config, split=split, streaming=True))
    except Exception as exc:
        raise FatalError(f"{label}: cannot open the data set ({first_line(exc)}); offline, the "
                         "hub is unreachable: fetch it elsewhere and pass local files "
                         "(.jsonl, .parquet, .warc, .html)") from None
    return _rows(stream, label, name, config, split, field)


def _rows(stream: Iterator, label: str, name: str, config: str | None, split: str,
          field: str | None) -> Iterator[Pending]:
    index = 0
    while True:
        try:
            row = next(stream)
        except StopIteration:
            return
        except Exception as exc:
            raise FatalError(f"{label}: streaming stopped at row {index} ({first_line(exc)}); "
                             "check the network, or pass local files") from None
        yield (lambda row=row, index=index: row_document(
            row, field, f"{label} row {index}", stable_id("hf", name, config, split, index),
            {"dataset": name, "config": config, "split": split, "row": index}))
        index += 1

