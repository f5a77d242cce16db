"""Web pages for backtranslation tests: sections with distinct random prose (so the dedup and
repeated-sentence filters let them through), plus sections each corpus filter must reject, and
a reply function that plays the backward model, misbehaving on request by header keyword."""
from __future__ import annotations

import json
import random
import re
from pathlib import Path

WORDS = ("river mountain engine garden kettle lantern harbor violin compass orchard quarry "
         "meadow canyon glacier falcon beetle copper marble velvet saffron cedar walnut pepper "
         "thunder meteor comet nebula planet signal vessel bridge tunnel canal tower castle "
         "market bakery school doctor farmer sailor painter poet judge pilot miner weaver "
         "builds carries measures follows gathers repairs studies paints grows finds keeps "
         "bright quiet ancient narrow gentle heavy hollow rapid steady golden silver crimson "
         "slowly often rarely carefully early later north south under across beyond within").split()


def prose(rng: random.Random, chars: int) -> str:
    """Sentences of random words, about `chars` long, no two alike."""
    sentences = []
    while sum(len(s) + 1 for s in sentences) < chars:
        words = [rng.choice(WORDS) for _ in range(rng.randint(9, 15))]
        sentences.append(" ".join(words).capitalize() + ".")
    return " ".join(sentences)


def page(n: int, headers: list[str], seed: int = 0) -> str:
    """An HTML page whose h2 sections carry the given headers and ~800 characters each."""
    rng = random.Random(f"{seed}-{n}")
    body = "".join(f"<h2>{h}</h2><p>{prose(rng, 800)}</p>" for h in headers)
    return f"<html><body><nav>Home | About</nav>{body}<footer>(c)</footer></body></html>"


def write_corpus(path: Path, pages: list[str], url: bool = True) -> Path:
    rows = [{"id": f"doc-{i}", **({"url": f"https://example.org/{i}"} if url else {}), "html": html}
            for i, html in enumerate(pages)]
    path.write_text("".join(json.dumps(r) + "\n" for r in rows), "utf-8")
    return path


def plain_pages(count: int, sections: int = 2, seed: int = 0) -> list[str]:
    return [page(i, [f"Topic {i}.{j} of the garden" for j in range(sections)], seed) for i in range(count)]


def segment_of(prompt: str) -> str:
    """The segment text inside a rendered backward prompt (between the fixed lines)."""
    lines = prompt.split("\n\n")
    return "\n\n".join(lines[1:-1])


def header_of(prompt: str) -> str:
    return segment_of(prompt).split("\n", 1)[0]


def backward_reply(body: dict) -> str:
    """Plays the backward model: a question about the segment's header, or a misbehaviour when
    the header asks for one (Copy, Empty, Statement, Long, Label)."""
    prompt = body["messages"][-1]["content"]
    header = header_of(prompt)
    text = segment_of(prompt)
    if "Copy" in header:
        return " ".join(text.split("\n", 1)[1].split()[:20])
    if "Empty" in header:
        return "  "
    if "Statement" in header:
        return "This text talks about gardens and rivers."
    if "Long" in header:
        return "Could you explain " + "and more " * 200 + "?"
    if "Label" in header:
        return f'Instruction: "Explain {header.lower()}."'
    return f"What should I know about {header.lower()}?"


def request_log(server) -> list[str]:
    """The user prompts the server received, in order."""
    return [b["messages"][-1]["content"] for b in server.bodies]


def strip_seed(text: str) -> str:
    return re.sub(r"\s+", " ", text).strip()


def build_adapter(model_dir: Path, folder: Path, rank: int = 8, seed: int = 1) -> Path:
    """A LoRA adapter on the tiny model with random, non-zero lora_B (peft starts B at zero,
    which would leave outputs unchanged), scaled up so it visibly changes generations."""
    import torch
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM

    if (folder / "adapter_config.json").exists():
        return folder
    torch.manual_seed(seed)
    model = AutoModelForCausalLM.from_pretrained(model_dir)
    config = LoraConfig(r=rank, lora_alpha=2 * rank, lora_dropout=0.0, bias="none",
                        target_modules=["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"],
                        init_lora_weights=False, task_type="CAUSAL_LM")
    peft_model = get_peft_model(model, config)
    with torch.no_grad():
        for name, param in peft_model.named_parameters():
            if "lora_B" in name:
                param.normal_(0.0, 0.5)
    peft_model.save_pretrained(folder)
    return folder
