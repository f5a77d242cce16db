"""`gen segments`: prepare a corpus once (read, segment, filter, deduplicate) into a folder of
Parquet files that `gen backtranslate --segments` reads."""
from generators.segments.stage import SegmentsSettings, run_segments

__all__ = ["SegmentsSettings", "run_segments"]
