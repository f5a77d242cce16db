"""A tiny chat model built in the test: a BPE tokenizer trained here with a ChatML template,
and a random Llama (hidden 128, 2 heads of 64, 2 layers). Saves to a folder in about a second,
so training tests run the real code paths without any download."""
from __future__ import annotations

from pathlib import Path

CHATML = (
    "{% for message in messages %}"
    "{{ '<|im_start|>' + message['role'] + '\n' + message['content'] + '<|im_end|>' + '\n' }}"
    "{% endfor %}"
    "{% if add_generation_prompt %}{{ '<|im_start|>assistant\n' }}{% endif %}"
)
SPECIALS = ["<|endoftext|>", "<|im_start|>", "<|im_end|>"]

CORPUS = [
    "Answer in the style of an AI Assistant.", "Answer with knowledge from web search.",
    "What is the capital of France? The capital of France is Paris.",
    "How do I boil an egg? Put the egg in boiling water for nine minutes.",
    "Tell me a joke about whales. Why did the whale cross the ocean? To get to the other tide.",
    "Here is a text that could be an answer someone received from an assistant:",
    "Write the single question or instruction a user most likely sent, for which this text "
    "would be an excellent answer. Reply with that request only.",
    "system user assistant hello thanks sure the a an of to in is it you me what how why",
    "0 1 2 3 4 5 6 7 8 9 . , ? ! : ; ' \" ( ) - \n",
]


def build_tokenizer(vocab_size: int = 400):
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(vocab_size=vocab_size, special_tokens=SPECIALS,
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet())
    tok.train_from_iterator(CORPUS * 20, trainer=trainer)
    fast = PreTrainedTokenizerFast(tokenizer_object=tok, bos_token="<|im_start|>", eos_token="<|im_end|>",
                                   pad_token="<|endoftext|>", unk_token="<|endoftext|>")
    fast.chat_template = CHATML
    return fast


def build(folder: str | Path, seed: int = 0) -> Path:
    """Write the tokenizer and a random tiny Llama into `folder`; return it."""
    import torch
    from transformers import LlamaConfig, LlamaForCausalLM

    folder = Path(folder)
    if (folder / "config.json").exists():
        return folder
    tok = build_tokenizer()
    torch.manual_seed(seed)
    config = LlamaConfig(vocab_size=len(tok), hidden_size=128, intermediate_size=256,
                         num_hidden_layers=2, num_attention_heads=2, num_key_value_heads=2,
                         head_dim=64, max_position_embeddings=2048,
                         bos_token_id=tok.bos_token_id, eos_token_id=tok.eos_token_id,
                         pad_token_id=tok.pad_token_id, tie_word_embeddings=False)
    model = LlamaForCausalLM(config)
    model.save_pretrained(folder)
    tok.save_pretrained(folder)
    return folder


def records(n: int = 12, tag_cycle: tuple = ("seed", "augmented")) -> list[dict]:
    """Small single- and multi-turn records with tags, ready to write as JSONL."""
    qa = [("What is the capital of France?", "The capital of France is Paris."),
          ("How do I boil an egg?", "Put the egg in boiling water for nine minutes."),
          ("Tell me a joke about whales.", "Why did the whale cross the ocean? To get to the other tide.")]
    out = []
    for i in range(n):
        q, a = qa[i % 3]
        msgs = [{"role": "user", "content": q}, {"role": "assistant", "content": a}]
        if i % 4 == 3:  # a multi-turn dialog
            q2, a2 = qa[(i + 1) % 3]
            msgs += [{"role": "user", "content": q2}, {"role": "assistant", "content": a2}]
        out.append({"id": f"r{i}", "source": "test", "messages": msgs, "tag": tag_cycle[i % len(tag_cycle)]})
    return out
