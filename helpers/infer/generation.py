"""Generation backends behind one interface: chat prompts in, n completions out.

Backends: `hf` (transformers through the project's decode loop, CPU or GPU; hf_backend), `vllm`
(vLLM's engine, imported only when chosen; vllm_backend) and `openai` (any OpenAI-compatible
endpoint, with retries and a resumable cache file; openai_backend).
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

from ..pipeline.schema import Profile
from .interface import Backend

log = logging.getLogger(__name__)


def make_backend(
    kind: str,
    model: str | None = None,
    *,
    batch_size: int = 32,
    dtype: str = "auto",
    tensor_parallel_size: int = 1,
    base_url: str | None = None,
    api_model: str | None = None,
    api_key: str | None = None,
    cache_path: str | Path | None = None,
    seed: int = 0,
    stop_loops: bool = False,
    max_model_len: int | None = None,
    kv_cache_gib: float | None = None,
) -> Backend:
    """Build a backend by name; local backends load the model (alias, hub id or path)."""
    if stop_loops and kind != "hf":
        raise ValueError(f"generation.stop_loops works with the hf backend only, not '{kind}'")
    if kind == "hf":
        from .models import load_model

        m, tok = load_model(model or "smollm2-135m-instruct", dtype=dtype)
        from .hf_backend import HFBackend

        return HFBackend(m, tok, batch_size=batch_size, stop_loops=stop_loops)
    if kind == "vllm":
        from ..pipeline.machine import resolve_dtype
        from .models import resolve_model_path
        from .vllm_backend import VLLMBackend

        vdtype = {"bf16": "bfloat16", "fp16": "float16", "fp32": "float32"}[resolve_dtype(dtype)]
        return VLLMBackend(
            resolve_model_path(model or ""),
            tensor_parallel_size,
            vdtype,
            max_model_len=max_model_len,
            seed=seed,
            kv_cache_gib=kv_cache_gib,
            batch_size=batch_size,
        )
    if kind == "openai":
        if not base_url or not api_model:
            raise ValueError("the openai backend needs base_url and api_model")
        from .openai_backend import OpenAIBackend

        return OpenAIBackend(base_url, api_model, api_key, cache_path=cache_path)
    raise ValueError(f"unknown generation backend '{kind}': expected hf, vllm or openai")


def backend_from_profile(
    profile: Profile, model: str, *, local: bool = False, **overrides: Any
) -> Backend:
    """The generation backend a profile's `generation` section describes, for one model.

    `local`: the model is a checkpoint of this run (a completer, a trained variant), so an
    `openai` profile still generates it locally (hf). `overrides` replace fields of the
    section (batch_size, stop_loops, ...) for this backend only.
    """
    from ..pipeline.secrets import secret

    gen = profile.generation.model_copy(update=overrides)
    kind = "hf" if local and gen.backend == "openai" else gen.backend
    return make_backend(
        kind,
        model,
        batch_size=gen.batch_size,
        dtype=gen.dtype,
        tensor_parallel_size=gen.tensor_parallel_size,
        base_url=gen.base_url,
        api_model=gen.api_model,
        api_key=secret(gen.api_key_env) if kind == "openai" else None,
        seed=profile.seed,
        stop_loops=gen.stop_loops and kind == "hf",
        max_model_len=gen.max_model_len or context_length(profile),
        kv_cache_gib=gen.kv_cache_gib,
    )


# Room for a prompt (instruction, question, chat template) beside the longest response.
PROMPT_ROOM = 512


def context_length(profile: Profile) -> int:
    """The longest prompt + response the running stage can ask an engine for: the longest
    generation limit of the sections it reads plus PROMPT_ROOM, or their longest training row
    (the completer's question + thought prompts, pairs scored for DPO), whichever is longer.

    Only the sections the stage's record lists are read (all of them outside the runner): what
    it cannot read, it cannot ask for.
    """
    from ..pipeline.schema import readable

    limits = [profile.generation.max_new_tokens]
    if readable(profile, "explore") and profile.explore is not None:
        limits.append(profile.explore.max_new_tokens)
    rows = [
        getattr(profile, s).max_length
        for s in ("sft", "dpo")
        if readable(profile, s) and getattr(profile, s) is not None
    ]
    return max([max(limits) + PROMPT_ROOM, *rows])


def free(backend: Any) -> None:
    """Free what a local backend holds (an engine, a model) before the process needs the memory."""
    import gc

    close = getattr(backend, "close", None)
    if close is not None:
        close()
    for name in ("model", "llm"):
        if hasattr(backend, name):
            delattr(backend, name)
    gc.collect()
