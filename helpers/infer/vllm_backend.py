"""The vllm backend: vLLM's offline engine, imported only when a profile chooses it."""

from __future__ import annotations

from collections.abc import Sequence

from .generation import Completion, OnResult, Prompt, SamplingCfg, render


class VLLMBackend:
    """vLLM's offline engine (GPU boxes): n samples per prompt, tensor parallel, seeded."""

    def __init__(
        self,
        model_path: str,
        tensor_parallel_size: int = 1,
        dtype: str = "bfloat16",
        max_model_len: int | None = None,
        seed: int = 0,
    ) -> None:
        from vllm import LLM  # imported only when this backend is chosen

        self.llm = LLM(
            model=model_path,
            tensor_parallel_size=tensor_parallel_size,
            dtype=dtype,
            seed=seed,
            max_model_len=max_model_len,
        )
        self.tok = self.llm.get_tokenizer()

    def generate(
        self, prompts: Sequence[Prompt], cfg: SamplingCfg, on_result: OnResult | None = None
    ) -> list[list[Completion]]:
        """Return cfg.n completions for each prompt, in the prompts' order."""
        from vllm import SamplingParams

        sp = SamplingParams(
            n=cfg.n,
            temperature=cfg.temperature,
            top_p=cfg.top_p,
            max_tokens=cfg.max_new_tokens,
            seed=cfg.seed,
            stop=list(cfg.stop),
            include_stop_str_in_output=True,
        )
        outs = self.llm.generate([render(self.tok, p) for p in prompts], sp)
        results = []
        for o in outs:
            comps = []
            for c in o.outputs:
                reason = (
                    "length"
                    if c.finish_reason == "length"
                    else "end_marker"
                    if c.stop_reason in cfg.stop
                    else "end_of_turn"
                )
                comps.append(Completion(c.text, len(c.token_ids), reason))
            results.append(comps)
            if on_result is not None:
                on_result(len(results) - 1, comps)
        return results
