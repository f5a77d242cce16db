"""Humpback instruction backtranslation: the backward model writes, for each web segment, the
instruction it answers (`gen backtranslate`)."""
from __future__ import annotations

from generators.backtranslate.postfilter import INSTRUCTION_FILTERS, clean_instruction, instruction_chain
from generators.backtranslate.stage import BacktranslateSettings, run_backtranslate

__all__ = ["BacktranslateSettings", "INSTRUCTION_FILTERS", "clean_instruction", "instruction_chain",
           "run_backtranslate"]
