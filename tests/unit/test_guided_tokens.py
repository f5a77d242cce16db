"""Constrained decoding on the transformers backend: a random tiny model (which would write
anything) answers only what the guide allows, greedy and sampled, batched, and with a prefilled
"Score:"; the processor's token choices checked on their own."""
from __future__ import annotations

import asyncio
import re

import pytest

from generators.backends.base import ChatRequest, Sampling
from generators.backends.guided_tokens import RegexLogitsProcessor, guide_pattern, token_texts
from generators.backends.hf_backend import HFBackend
from generators.core.guides import reasoned_regex
from curation.score_parse import parse_score

pytestmark = pytest.mark.slow  # runs a real (tiny) model


def answers(model_dir, requests):
    backend = HFBackend(model=str(model_dir), batch_size=8)

    async def go():
        try:
            return await asyncio.gather(*(backend.complete(r) for r in requests))
        finally:
            await backend.aclose()
    return asyncio.run(go())


def ask(text: str, sampling: Sampling) -> ChatRequest:
    return ChatRequest.of([{"role": "user", "content": text}], sampling)


def test_a_random_model_rates_in_the_score_form_when_guided(tiny_model_dir):
    pattern = reasoned_regex(40)
    guided = Sampling(temperature=0.0, max_tokens=40, guide=("regex", pattern))
    sampled = Sampling(temperature=1.0, max_tokens=40, seed=3, guide=("regex", pattern))
    free = Sampling(temperature=0.0, max_tokens=40)
    prompts_ = ["What is the capital of France?", "How do I boil an egg?", "Tell me a joke about whales."]
    results = answers(tiny_model_dir, [ask(p, s) for p in prompts_ for s in (guided, sampled, free)])
    for i, result in enumerate(results):
        if i % 3 == 2:  # unguided, the random model writes no score line
            assert not re.search(r"Score: [1-5]$", result.text)
            continue
        assert re.search(r"(?:^|\n)Score: [1-5]$", result.text), result.text  # the text is stripped
        assert parse_score(result.text).ok
        assert result.finish == "stop" and result.completion_tokens <= 40


def test_a_choice_and_a_prefilled_digit(tiny_model_dir):
    choice = Sampling(temperature=1.0, seed=1, max_tokens=10, guide=("choice", "Winner: 1|Winner: 2|Winner: tie"))
    digit = Sampling(temperature=0.0, max_tokens=3, logprobs=20, guide=("regex", " ?[1-5]"))
    prefilled = ChatRequest.of([{"role": "user", "content": "Rate it."}, {"role": "assistant", "content": "Score:"}],
                               digit)
    results = answers(tiny_model_dir, [ask("Which is better?", choice), prefilled])
    assert results[0].text in ("Winner: 1", "Winner: 2", "Winner: tie")
    assert results[1].text in "12345" and len(results[1].text) == 1
    assert results[1].logprobs  # the model's own distribution is still reported


def test_the_processor_lets_through_only_tokens_that_keep_a_match(tiny_model_dir):
    from transformers import AutoTokenizer

    tok = AutoTokenizer.from_pretrained(str(tiny_model_dir))
    texts = token_texts(tok, len(tok) + 3)
    assert len(texts) == len(tok) + 3 and texts[-1] == "" and texts[tok.eos_token_id] == ""
    processor = RegexLogitsProcessor(guide_pattern(("regex", "Score: [1-5]")), tok, texts, 0, {tok.eos_token_id})
    everything = list(range(len(texts)))
    after = processor.allowed("Score: ", everything)
    assert after and {texts[t] for t in after} <= set("12345")
    assert processor.allowed("Score: 4", everything) == [tok.eos_token_id]  # whole: only the end
    assert processor.allowed("Scores", everything) == []
    # past the most likely tokens only those whose first character fits are checked, and none is lost
    for text in ("Score: ", "Sc", "Score: 4", ""):
        assert sorted(processor.allowed(text, processor.rest(text))) == sorted(processor.allowed(text, everything))
    with pytest.raises(ValueError):
        guide_pattern(("json", "{}"))
