"""One backward request: the instruction a text answers, asked and judged the one way.

`gen backtranslate` and `gen eval backward` both call `write_instruction`, so the evaluation
measures exactly the prompt, sampling and post-filters that make the data.
"""
from __future__ import annotations

from dataclasses import replace

from typing import Any

import prompts
from generators.backends.base import ChatRequest, ChatResult, Sampling
from generators.core.adapters import adapter_identity
from generators.core.engine import Engine
from generators.core.stage import Generation, Stage
from generators.core.filtering import FilterChain
from generators.backtranslate.postfilter import Candidate, InstructionVerdict, judge_instruction

# Humpback: "T=0.7, top-p 0.9, one instruction each"; instructions are short.
SAMPLING = {"temperature": 0.7, "top_p": 0.9, "max_tokens": 256}
TEMPLATE = "backward"
TRUNCATED_REASONING = "truncated_reasoning"  # decided here, before the post-filters


def backward_generation(stage: Stage) -> Generation:
    """What writes an instruction, for `gen backtranslate` and `gen eval backward` alike: the
    sampling, the template id, and the identity every item id hashes (the engine, the adapter's
    identity, template, sampling)."""
    sampling = stage.opts.sampling(**SAMPLING)
    template = prompts.template_id(TEMPLATE)
    identity: dict[str, Any] = {**stage.engine_settings(),
                                "adapter": adapter_identity(stage.adapter) if stage.adapter else None,
                                "template": template, "sampling": sampling.describe()}
    return Generation(sampling=sampling, template=template, identity=identity)


def backward_request(text: str, *, sampling: Sampling, seed: int) -> ChatRequest:
    """The one request that asks for the instruction `text` answers (also what --dry-run counts)."""
    return ChatRequest.of([{"role": "user", "content": prompts.render(TEMPLATE, output=text)}],
                          replace(sampling, seed=seed), cache_hint=TEMPLATE)


async def write_instruction(engine: Engine, text: str, *, sampling: Sampling, seed: int, header: str = "",
                            filters: FilterChain[Candidate] | None = None) -> tuple[ChatResult, InstructionVerdict]:
    """The backward model's answer for `text` and its verdict (cleaned, salvaged, filtered); a
    reasoning model whose thinking never closed wrote no instruction: `truncated_reasoning`."""
    result = await engine.complete(backward_request(text, sampling=sampling, seed=seed))
    if result.reasoning_truncated:
        return result, InstructionVerdict("", TRUNCATED_REASONING)
    return result, judge_instruction(result.text, text, header, result.finish, filters)
