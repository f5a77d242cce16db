"""Humpback instruction backtranslation: the backward model writes, for each web segment, the
instruction it answers (`gen backtranslate`)."""
from __future__ import annotations

from generators.backtranslate.postfilter import InstructionFilter, PostFilterConfig, clean_instruction
from generators.backtranslate.stage import BacktranslateSettings, run_backtranslate

__all__ = ["BacktranslateSettings", "InstructionFilter", "PostFilterConfig", "clean_instruction",
           "run_backtranslate"]
