"""The vllm backend: vLLM's offline engine on CPU or GPU, imported only when a profile chooses it.

Every sample is a request of its own with its own seed (`sample_seed`), so a sample's tokens do
not depend on what else shares its batch, and a resumed exploration draws what it would have
drawn. On a CPU the engine runs in this process (a notebook kernel cannot spawn its engine core),
its OpenMP threads bound to every core (vLLM reserves one otherwise), with the kernel library
that matches the instruction set PyTorch is held to (`ATEN_CPU_CAPABILITY=avx2` picks vLLM's
AVX2 build, so runs are comparable across machines).
"""

from __future__ import annotations

import os
from collections import Counter
from collections.abc import Sequence
from typing import Any

from ..grading.problem import stable_hash
from ..pipeline.machine import resolve_dtype
from .interface import Completion, OnResult, Prompt, SamplingCfg, SourceSettings, render
from .nucleus import vllm_top_k_top_p

# Share of the memory free when a CPU engine starts that its KV cache may take by default.
CPU_KV_SHARE = 0.25
# Tokens one engine step may prefill: above any batch of our prompts, so no prefill is split
# over steps (per-request seeds crash vLLM 0.32's CPU runner on a split prefill).
MAX_BATCHED_TOKENS = 65_536


def configure_cpu() -> None:
    """Set vLLM's CPU engine up before it is imported: in process, on every core, and on the
    kernel library of the instruction set PyTorch is held to."""
    import torch

    cores = os.cpu_count() or 1
    os.environ.setdefault("VLLM_ENABLE_V1_MULTIPROCESSING", "0")
    os.environ.setdefault("VLLM_CPU_OMP_THREADS_BIND", f"0-{cores - 1}")
    os.environ.setdefault("VLLM_CPU_NUM_OF_RESERVED_CPU", "0")
    if os.environ.get("ATEN_CPU_CAPABILITY", "").lower() == "avx2":
        # vLLM picks its kernel library by what the CPU has, not what PyTorch is told to use.
        torch.cpu._is_avx512_supported = lambda: False
        torch.cpu._is_avx512_bf16_supported = lambda: False
    # vLLM's CPU sampler sorts the whole vocabulary for top-p at every step (2.5x the cost of
    # a greedy step at batch 256): cut the nucleus from the top tokens instead (its own cut, up to
    # the rounding of its fp32 sum over the whole vocabulary).
    from vllm.v1.sample.ops import topk_topp_sampler as sampler

    if not hasattr(sampler.apply_top_k_top_p, "original"):
        sampler.apply_top_k_top_p = vllm_top_k_top_p(sampler.apply_top_k_top_p)


def model_context(model_path: str) -> int:
    """The longest sequence a model was built for (its max_position_embeddings)."""
    from transformers import AutoConfig

    c = AutoConfig.from_pretrained(model_path)
    return int(getattr(c, "get_text_config", lambda: c)().max_position_embeddings)


def kv_bytes_per_token(model_path: str, dtype: str) -> int:
    """Bytes of KV cache one token takes in a model (keys and values, every layer)."""
    from transformers import AutoConfig

    c = AutoConfig.from_pretrained(model_path)
    c = getattr(c, "get_text_config", lambda: c)()
    head_dim = getattr(c, "head_dim", None) or c.hidden_size // c.num_attention_heads
    kv_heads = getattr(c, "num_key_value_heads", None) or c.num_attention_heads
    width = 4 if dtype in ("float32", "fp32") else 2
    return 2 * c.num_hidden_layers * kv_heads * head_dim * width


def kv_budget(
    model_path: str,
    dtype: str,
    context: int | None,
    batch_size: int,
    gib: float | None = None,
) -> int:
    """The KV cache a CPU engine gets, in bytes: `gib` when the profile sets it, else a quarter
    of the memory free now, at most what `batch_size` requests of `context` tokens need; never
    less than one such request, and an error saying what to change when even that is not free.

    vLLM's own default is a share of the machine's total memory less what this process already
    holds, which after training in the same process (a notebook kernel) can be nothing.
    """
    import psutil

    if context is None:
        context = model_context(model_path)
    per_token = kv_bytes_per_token(model_path, dtype)
    one, free = context * per_token, psutil.virtual_memory().available
    if gib is not None:
        want = int(gib * 2**30)
    else:
        want = max(min(int(CPU_KV_SHARE * free), batch_size * one), one)
    if want > 0.9 * free or want < one:
        raise MemoryError(
            f"vLLM on CPU: one request of {context} tokens needs {one / 2**30:.2f} GiB of KV cache "
            f"and {want / 2**30:.2f} GiB were asked of {free / 2**30:.2f} GiB free: lower "
            "generation.max_model_len (or the token limits that set it), set "
            "generation.kv_cache_gib within what is free, or use generation.backend: hf"
        )
    return want


def sample_seed(seed: int, prompt: int, sample: int) -> int:
    """The seed of one sample: the same whatever batch it runs in."""
    return stable_hash(seed, prompt, sample) % (2**31)


class VLLMBackend:
    """vLLM's offline engine: n samples per prompt, each seeded on its own, tensor parallel on
    GPUs. Counts the tokens it pays for (prefill, of which shared through prefix caching, and
    decode) as the hf backend does."""

    def __init__(
        self,
        model_path: str,
        tensor_parallel_size: int = 1,
        dtype: str = "auto",
        max_model_len: int | None = None,
        seed: int = 0,
        progress: bool = True,
        kv_cache_gib: float | None = None,
        batch_size: int = 256,
    ) -> None:
        import torch

        on_cpu = not torch.cuda.is_available()
        if dtype == "auto":  # what this machine computes natively (pipeline.machine)
            dtype = {"bf16": "bfloat16", "fp32": "float32"}[resolve_dtype("auto", not on_cpu)]
        cpu_args: dict[str, Any] = {}
        if max_model_len is not None:  # a profile's bound, within what the model was built for
            max_model_len = min(max_model_len, model_context(model_path))
        if on_cpu:
            configure_cpu()
            cpu_args["kv_cache_memory_bytes"] = kv_budget(
                model_path, dtype, max_model_len, batch_size, kv_cache_gib
            )
        from vllm import LLM  # imported only when this backend is chosen

        self.llm = LLM(
            model=model_path,
            tensor_parallel_size=tensor_parallel_size,
            dtype=dtype,
            seed=seed,
            max_model_len=max_model_len,
            enable_prefix_caching=True,
            max_num_seqs=batch_size,  # the profile's batch: sequences decoded together
            max_num_batched_tokens=MAX_BATCHED_TOKENS if on_cpu else None,
            # On a CPU, compiling the model costs about a minute per engine, more than it saves
            # on one stage's generation.
            enforce_eager=on_cpu,
            **cpu_args,
        )
        self.tok = self.llm.get_tokenizer()
        self.progress = progress
        self.tokens: Counter = Counter()

    def generate(
        self, prompts: Sequence[Prompt], cfg: SamplingCfg, on_result: OnResult | None = None
    ) -> list[list[Completion]]:
        """Return cfg.n completions for each prompt, in the prompts' order."""
        from vllm import SamplingParams

        texts = [render(self.tok, p) for p in prompts]
        keys = [(i, k) for i in range(len(prompts)) for k in range(cfg.n)]
        params = [
            SamplingParams(
                n=1,
                temperature=cfg.temperature,
                top_p=cfg.top_p,
                max_tokens=cfg.max_new_tokens,
                seed=sample_seed(cfg.seed, i, k) if cfg.temperature > 0 else None,
                stop=list(cfg.stop),
                include_stop_str_in_output=True,
            )
            for i, k in keys
        ]
        outs = self.llm.generate([texts[i] for i, _ in keys], params, use_tqdm=self.progress)
        done: dict[tuple[int, int], Completion] = {}
        for (i, k), out in zip(keys, outs, strict=True):
            done[(i, k)] = self._completion(out, cfg.stop)
            if on_result is not None and k == cfg.n - 1:
                on_result(i, [done[(i, j)] for j in range(cfg.n)])
        return [[done[(i, k)] for k in range(cfg.n)] for i in range(len(prompts))]

    def run_source(self, source: Any, settings: SourceSettings) -> Counter:
        """Decode every request a source hands out to its end or its cancellation, through
        vLLM's engine loop: requests are added as the source releases them, each finished one
        goes back to the source at once, and the requests it cancels are aborted."""
        from vllm import SamplingParams

        from .decoding import Finished

        engine, stats = self.llm.llm_engine, Counter()
        running: dict[str, Any] = {}
        eos = self.tok.eos_token_id

        def admit() -> None:
            for key, ids in source.take(source.waiting()):
                rid = f"{stats['requests']}:{key}"
                stats["requests"] += 1
                params = SamplingParams(
                    n=1,
                    temperature=settings.temperature,
                    top_p=settings.top_p,
                    max_tokens=settings.max_new_tokens,
                    seed=stable_hash(settings.seed, key) % (2**31)
                    if settings.temperature > 0
                    else None,
                    stop=list(settings.stop),
                    include_stop_str_in_output=True,
                    logprobs=0 if settings.logprobs else None,
                )
                engine.add_request(rid, {"prompt_token_ids": list(ids)}, params)
                running[rid] = key

        admit()
        while running:
            for out in engine.step():
                if not out.finished or out.request_id not in running:
                    continue
                key, c = running.pop(out.request_id), out.outputs[0]
                tokens = list(c.token_ids)
                why = "eos" if tokens and tokens[-1] == eos else c.finish_reason
                self._count(out, stats)
                lp = c.cumulative_logprob if settings.logprobs else None
                cancel = set(source.finished(Finished(key, tokens, why, lp)))
                gone = [rid for rid, k in running.items() if k in cancel]
                if gone:
                    engine.abort_request(gone)
                    stats["cancelled"] += len(gone)
                    for rid in gone:
                        running.pop(rid)
            admit()
        stats.pop("requests", None)
        self.tokens.update(stats)
        return stats

    def score(
        self, prompt_ids: Sequence[Sequence[int]], response_ids: Sequence[Sequence[int]]
    ) -> list[Any]:
        """Each response's log-probability given its prompt, from vLLM's prompt_logprobs over
        the same token ids the hf backend scores."""
        from vllm import SamplingParams

        from .scoring import Score

        params = SamplingParams(max_tokens=1, prompt_logprobs=0)
        inputs = [
            {"prompt_token_ids": list(p) + list(r)}
            for p, r in zip(prompt_ids, response_ids, strict=True)
        ]
        outs = self.llm.generate(inputs, params, use_tqdm=self.progress)
        scores = []
        for p, r, out in zip(prompt_ids, response_ids, outs, strict=True):
            ids, lps, start = out.prompt_token_ids, out.prompt_logprobs, len(p)
            total = sum(lps[k][ids[k]].logprob for k in range(start, start + len(r)))
            scores.append(Score(total, len(r)))
        self.tokens["scored"] += sum(
            len(p) + len(r) for p, r in zip(prompt_ids, response_ids, strict=True)
        )
        return scores

    def _count(self, out: Any, stats: Counter) -> None:
        cached = getattr(out, "num_cached_tokens", 0) or 0
        stats["prefill"] += len(out.prompt_token_ids) - cached
        stats["shared_prefill"] += cached
        stats["decode"] += len(out.outputs[0].token_ids)

    def _completion(self, out: Any, stop: Sequence[str]) -> Completion:
        """One request's output as the hf backend reports it (the end-of-turn token uncounted)."""
        c = out.outputs[0]
        ids = list(c.token_ids)
        if ids and ids[-1] == self.tok.eos_token_id:
            ids = ids[:-1]
        self._count(out, self.tokens)
        if c.finish_reason == "length":
            reason = "length"
        elif c.stop_reason in stop:
            reason = "end_marker"
        else:
            reason = "end_of_turn"
        return Completion(c.text, len(ids), reason)

    def close(self) -> None:
        """Free the engine (its memory) before this process trains or loads another model."""
        import gc

        del self.llm
        gc.collect()
