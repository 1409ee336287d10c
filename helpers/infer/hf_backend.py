"""The hf backend: transformers models through the project's continuously refilled decode loop."""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from typing import Any

from .decoding import Finished, decode_continuous
from .interface import (
    Completion,
    OnResult,
    Prompt,
    SamplingCfg,
    SourceSettings,
    render,
    trim_at_stop,
)
from .loops import repeating_tail, stop_check


class HFBackend:
    """Batched transformers generation: left padding, length-sorted batches, stop strings.

    With stop_loops, a row whose tail has become a repeating block stops there (stop reason
    `loop`) instead of decoding to the token limit: greedy decoding of a small model rarely
    leaves such a loop, and on CPU those tokens were a large share of evaluation time.
    """

    def __init__(
        self,
        model: Any,
        tokenizer: Any,
        batch_size: int = 32,
        progress: bool = True,
        stop_loops: bool = False,
    ) -> None:
        self.model, self.tok, self.batch_size, self.progress = (
            model,
            tokenizer,
            batch_size,
            progress,
        )
        self.stop_loops = stop_loops
        self.tok.padding_side = "left"
        # Tokens this backend paid for, over all its calls (see decoding.decode).
        self.tokens: Counter = Counter()

    def generate(
        self, prompts: Sequence[Prompt], cfg: SamplingCfg, on_result: OnResult | None = None
    ) -> list[list[Completion]]:
        """Return cfg.n completions for each prompt, in the prompts' order."""
        from tqdm import tqdm

        encoded = [
            self.tok(render(self.tok, p), add_special_tokens=False).input_ids for p in prompts
        ]
        # Requests are (prompt index, sample index); sorting by length keeps padding low.
        requests = sorted(
            ((i, k) for i in range(len(encoded)) for k in range(cfg.n)),
            key=lambda r: (-len(encoded[r[0]]), r),
        )
        ids = [encoded[i] for i, _ in requests]
        bar = tqdm(total=len(requests), desc="generate", unit="seq", disable=not self.progress)
        results: dict[tuple[int, int], Completion] = {}

        def done(f: Finished) -> None:
            i, k = requests[f.key]
            results[(i, k)] = self._completion(f.tokens, cfg.stop)
            bar.update(1)
            if on_result is not None and all((i, j) in results for j in range(cfg.n)):
                on_result(i, [results[(i, j)] for j in range(cfg.n)])

        decode_continuous(
            self.model,
            ids,
            pad_id=self.tok.pad_token_id if self.tok.pad_token_id is not None else self.eos,
            batch_size=self.batch_size,
            max_new_tokens=cfg.max_new_tokens,
            eos=self.eos,
            stopped=self._stop_check(cfg.stop),
            temperature=cfg.temperature,
            top_p=cfg.top_p,
            seed=cfg.seed,
            on_done=done,
            stats=self.tokens,
        )
        bar.close()
        return [[results[(i, k)] for k in range(cfg.n)] for i in range(len(encoded))]

    def run_source(self, source: Any, settings: SourceSettings) -> Counter:
        """Decode every request a source hands out (exploration's scheduler, say) to its end or
        its cancellation; return the tokens paid for."""
        from .decoding import common_prefix, decode

        stats: Counter = Counter()
        prompts = settings.prompts
        head = common_prefix(prompts) if prompts else 0
        decode(
            self.model,
            source,
            head=prompts[0][:head] if head else [],
            pad_id=self.tok.pad_token_id if self.tok.pad_token_id is not None else self.eos,
            batch_size=settings.batch_size,
            max_new_tokens=settings.max_new_tokens,
            eos=self.eos,
            stopped=stop_check(self.tok, settings.stop, self.stop_loops),
            temperature=settings.temperature,
            top_p=settings.top_p,
            seed=settings.seed,
            logprobs=settings.logprobs,
            stats=stats,
        )
        self.tokens.update(stats)
        return stats

    def score(
        self, prompt_ids: Sequence[Sequence[int]], response_ids: Sequence[Sequence[int]]
    ) -> list[Any]:
        """Each response's log-probability under the model, given its prompt (teacher-forced)."""
        from .scoring import score_hf

        return score_hf(self.model, prompt_ids, response_ids)

    @property
    def eos(self) -> int:
        return self.tok.eos_token_id

    def _completion(self, row: list[int], stop: Sequence[str]) -> Completion:
        """One finished row as a completion: text cut at a stop string, and why it ended."""
        ended = self.eos in row
        if ended:
            row = row[: row.index(self.eos)]
        text = self.tok.decode(row, skip_special_tokens=False)
        text, marker = trim_at_stop(text, stop)
        reason = "end_marker" if marker else "end_of_turn" if ended else "length"
        if reason == "length" and self.stop_loops and repeating_tail(row):
            reason = "loop"
        return Completion(text, len(row), reason)

    def _stop_check(self, stop: Sequence[str]) -> Any:
        return stop_check(self.tok, stop, self.stop_loops)
