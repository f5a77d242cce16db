"""The base model and its LoRA adapter: loading (bf16 / QLoRA), vLLM servability, merging.

vLLM serves an adapter only if its rank is at most `max_lora_rank` (16 by default), it is plain
LoRA (no DoRA), it saves no extra modules and trains no bias. We refuse those up front, before
any compute is spent, rather than produce an adapter nobody can serve.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any

import torch

from generators.core.errors import FatalError, UsageError

from training.config import TrainConfig


def lora_config(cfg: TrainConfig) -> Any:
    from peft import LoraConfig

    return LoraConfig(r=cfg.lora_r, lora_alpha=cfg.lora_alpha, lora_dropout=cfg.lora_dropout,
                      target_modules=cfg.target_modules, use_dora=cfg.use_dora, bias=cfg.lora_bias,
                      modules_to_save=cfg.modules_to_save, task_type="CAUSAL_LM")


def check_servable(cfg: Any, max_lora_rank: int = 16) -> None:
    """Raise UsageError for any adapter setting vLLM refuses to load (cfg: a peft LoraConfig)."""
    if cfg.r > max_lora_rank:
        raise UsageError(f"--lora-r {cfg.r} is above --max-lora-rank {max_lora_rank}; vLLM would "
                         "refuse the adapter: lower --lora-r or raise --max-lora-rank (and serve "
                         "with the same --max-lora-rank)")
    if cfg.r < 1:
        raise UsageError(f"--lora-r {cfg.r}: the rank must be at least 1")
    if getattr(cfg, "use_dora", False):
        raise UsageError("--dora: vLLM cannot serve DoRA adapters; drop --dora")
    if getattr(cfg, "modules_to_save", None):
        raise UsageError(f"--modules-to-save {','.join(cfg.modules_to_save)}: vLLM cannot serve "
                         "adapters that save whole modules; drop it")
    if getattr(cfg, "bias", "none") != "none":
        raise UsageError(f"--lora-bias {cfg.bias}: vLLM serves only adapters without bias; "
                         "use --lora-bias none")


def load_base(cfg: TrainConfig, base_path: str, device: torch.device, place: bool = True) -> Any:
    """The base model, in bf16 on a capable GPU (fp32 otherwise), or 4-bit nf4 for QLoRA.

    place=False leaves it in CPU memory (in the dtype for `device`): FSDP then moves it to the
    device one decoder layer at a time, keeping only this process's shard of each."""
    from transformers import AutoModelForCausalLM

    use_bf16 = device.type == "cuda" and torch.cuda.is_bf16_supported()
    kwargs: dict[str, Any] = {"dtype": torch.bfloat16 if use_bf16 else torch.float32}
    if cfg.attn_implementation:
        kwargs["attn_implementation"] = cfg.attn_implementation
    if cfg.load_4bit:
        if device.type != "cuda":
            raise UsageError("--4bit needs a CUDA GPU; drop --4bit to train in full precision")
        try:
            import bitsandbytes  # noqa: F401
        except ImportError:
            raise UsageError("--4bit needs bitsandbytes; `pip install bitsandbytes` or drop --4bit") from None
        from transformers import BitsAndBytesConfig

        kwargs["quantization_config"] = BitsAndBytesConfig(
            load_in_4bit=True, bnb_4bit_quant_type="nf4", bnb_4bit_use_double_quant=True,
            bnb_4bit_compute_dtype=torch.bfloat16)
        kwargs["device_map"] = {"": device.index or 0}
    try:
        model = AutoModelForCausalLM.from_pretrained(base_path, **kwargs)
    except (ImportError, ValueError) as exc:  # e.g. flash-attn asked for but not installed
        raise UsageError(f"--base {base_path}: cannot load the model as asked "
                         f"({str(exc).splitlines()[0][:200]})") from None
    except OSError as exc:
        raise UsageError(f"--base {base_path}: cannot load the model ({str(exc).splitlines()[0][:160]}); "
                         "pass a local model folder, or smollm2-135m for the embedded model") from None
    if place and not cfg.load_4bit:
        model.to(device)
    model.config.use_cache = False
    return model


def attach_lora(model: Any, cfg: TrainConfig) -> Any:
    """Wrap the base in a peft LoRA model, with gradient checkpointing when asked."""
    from peft import get_peft_model, prepare_model_for_kbit_training

    if cfg.load_4bit:
        model = prepare_model_for_kbit_training(model, use_gradient_checkpointing=cfg.grad_checkpointing,
                                                gradient_checkpointing_kwargs={"use_reentrant": False})
    elif cfg.grad_checkpointing:
        if hasattr(model, "activation_checkpointing_enable"):  # transformers >= 5.x name
            model.activation_checkpointing_enable(activation_checkpointing_kwargs={"use_reentrant": False})
        else:
            model.gradient_checkpointing_enable(gradient_checkpointing_kwargs={"use_reentrant": False})
    peft_model = get_peft_model(model, lora_config(cfg))
    return peft_model


def has_varlen_attention(model: Any) -> bool:
    """True for attention with variable-length kernels (flash attention 2/3, or hub kernels)."""
    impl = str(getattr(model.config, "_attn_implementation", "") or "")
    return "flash" in impl


@torch.no_grad()
def packing_works(model: Any, device: torch.device) -> bool:
    """Does this model keep attention inside each example when given restarting position ids?

    Checked, not assumed: two short random sequences, alone and packed, must give the same
    logits for the second one. Costs two forward passes over 24 tokens."""
    vocab = model.config.vocab_size
    g = torch.Generator().manual_seed(0)
    a = torch.randint(0, vocab, (1, 8), generator=g)
    b = torch.randint(0, vocab, (1, 16), generator=g)
    was_training = model.training
    model.eval()
    try:
        alone = model(input_ids=b.to(device), use_cache=False).logits.float()
        packed_ids = torch.cat([a, b], dim=1).to(device)
        pos = torch.cat([torch.arange(8), torch.arange(16)]).unsqueeze(0).to(device)
        packed = model(input_ids=packed_ids, position_ids=pos, use_cache=False).logits.float()[:, 8:]
        tol = 1e-3 if alone.dtype == torch.float32 and next(model.parameters()).dtype == torch.float32 else 5e-2
        return bool(torch.allclose(alone, packed, atol=tol, rtol=tol))
    except Exception:
        return False
    finally:
        model.train(was_training)


def merge_adapter(base_path: str, adapter_dir: Path, target: Path) -> None:
    """Write base + adapter as one plain model (and the tokenizer) for servers without LoRA."""
    from peft import PeftModel
    from transformers import AutoModelForCausalLM, AutoTokenizer

    try:
        base = AutoModelForCausalLM.from_pretrained(base_path, dtype="auto")
        merged = PeftModel.from_pretrained(base, str(adapter_dir)).merge_and_unload()
        merged.save_pretrained(target, safe_serialization=True)
        AutoTokenizer.from_pretrained(base_path).save_pretrained(target)
    except OSError as exc:
        raise FatalError(f"--merge: could not write the merged model to {target} ({exc}); "
                         "the adapter itself is saved") from None
