"""Constrained decoding for the transformers backend: a logits processor that lets through only
the tokens that keep the answer a possible match of a regex (Sampling.guide "regex", or a
"choice" as its alternation), and the end of the answer only once the whole regex matches.

The check is the `regex` package's partial matching (a dependency of transformers): the answer
so far plus a token's text must still be the start of a match. Checking the whole vocabulary at
every step would cost tens of thousands of matches, so the most likely tokens (TOP_K) are checked
first, and the rest only when none of those fits (a forced position such as "Score: "), and then
only the tokens whose first character fits (one check per distinct first character). Whatever
is generated therefore matches: an answer can only end where the regex is matched in full. The
guides we send bound their free text in characters, so a match always fits in max_tokens.
"""
from __future__ import annotations

from typing import Any

import regex

TOP_K = 64


def guide_pattern(guide: tuple[str, str]) -> str:
    """The regex of a regex or choice guide (ValueError for a kind this processor cannot honour)."""
    kind, value = guide
    if kind == "regex":
        return value
    if kind == "choice":  # "a|b|c": each choice literally
        return "|".join(regex.escape(choice) for choice in value.split("|"))
    raise ValueError(f"the transformers backend cannot honour a {kind!r} guide")


def token_texts(tok: Any, size: int) -> list[str]:
    """What each token id adds to a text when it follows another token (a SentencePiece token's
    leading space included): decoded after an anchor token, less the anchor's own text. Ids the
    tokenizer does not know (padded embedding rows) and special tokens add nothing."""
    anchor = tok("a", add_special_tokens=False)["input_ids"][-1]
    base = tok.decode([anchor])
    known = min(size, len(tok))
    texts = tok.batch_decode([[anchor, i] for i in range(known)], skip_special_tokens=True)
    special = set(tok.all_special_ids)
    out = [t[len(base):] if t.startswith(base) else t for t in texts]
    return [("" if i in special else text) for i, text in enumerate(out)] + [""] * (size - known)


def by_first_char(texts: list[str]) -> dict[str, list[int]]:
    """Token ids grouped by the first character of their text (empty texts left out)."""
    groups: dict[str, list[int]] = {}
    for token, text in enumerate(texts):
        if text:
            groups.setdefault(text[0], []).append(token)
    return groups


class RegexLogitsProcessor:
    """transformers LogitsProcessor: rows of a batch generated after `prompt_len` prompt tokens
    (left-padded, so all rows start together) are kept on matches of `pattern`."""

    def __init__(self, pattern: str, tok: Any, texts: list[str], prompt_len: int, eos_ids: set[int],
                 top_k: int = TOP_K, groups: dict[str, list[int]] | None = None) -> None:
        self.pattern = regex.compile(pattern)
        self.tok, self.texts, self.prompt_len = tok, texts, prompt_len
        self.eos_ids, self.top_k = sorted(eos_ids), top_k
        self.groups = groups if groups is not None else by_first_char(texts)

    def rest(self, text: str) -> list[int]:
        """The tokens whose first character keeps `text` the start of a match."""
        return [token for char, tokens in self.groups.items()
                if self.pattern.fullmatch(text + char, partial=True) for token in tokens]

    def allowed(self, text: str, order: list[int]) -> list[int]:
        """Token ids (in `order`) after which `text` is still the start of a match; the end tokens
        when it is a whole match."""
        found = list(self.eos_ids) if self.pattern.fullmatch(text) else []
        for token in order:
            piece = self.texts[token] if token < len(self.texts) else ""
            if piece and self.pattern.fullmatch(text + piece, partial=True):
                found.append(token)
        return found

    def __call__(self, input_ids: Any, scores: Any) -> Any:
        import torch

        masked = torch.full_like(scores, float("-inf"))
        for row in range(scores.shape[0]):
            generated = input_ids[row, self.prompt_len:].tolist()
            if any(t in self.eos_ids for t in generated):  # finished: generate pads it, leave it be
                masked[row] = scores[row]
                continue
            text = self.tok.decode(generated, skip_special_tokens=True)
            ranked = torch.argsort(scores[row], descending=True).tolist()
            allowed = self.allowed(text, ranked[:self.top_k])
            if all(t in self.eos_ids for t in allowed):  # a forced position: look further down
                allowed = self.allowed(text, self.rest(text))
            if not allowed:  # cannot happen while a match is possible; never leave a row without a token
                allowed = list(self.eos_ids)
            index = torch.tensor(allowed, device=scores.device)
            masked[row, index] = scores[row, index]
        return masked
