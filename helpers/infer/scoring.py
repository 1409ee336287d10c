"""Perplexity of trajectories under a model: the mean log-probability of a response's tokens.

The paper selects explored trajectories, and builds DPO pairs, by perplexity under the current
model (correct ones the model finds harder are kept). A trajectory the model itself sampled
already carries its log-probability from generation (helpers.infer.decoding, `logprobs=True`); these
functions score any other trajectory by a teacher-forced forward pass, batched (the vLLM
backend scores through `prompt_logprobs`: VLLMBackend.score).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any


@dataclass
class Score:
    """A response's total log-probability under a model, over its `tokens` tokens."""

    logprob: float
    tokens: int

    @property
    def mean(self) -> float:
        return self.logprob / max(self.tokens, 1)

    @property
    def perplexity(self) -> float:
        return math.exp(-self.mean)


def score_hf(
    model: Any,
    prompt_ids: Sequence[Sequence[int]],
    response_ids: Sequence[Sequence[int]],
    batch_tokens: int = 4096,
) -> list[Score]:
    """Score responses given their prompts with a transformers model, longest first, batched."""
    import torch

    order = sorted(
        range(len(prompt_ids)), key=lambda i: -(len(prompt_ids[i]) + len(response_ids[i]))
    )
    scores: list[Score | None] = [None] * len(order)
    i = 0
    with torch.inference_mode():
        while i < len(order):
            width = len(prompt_ids[order[i]]) + len(response_ids[order[i]])
            n = max(1, batch_tokens // max(width, 1))
            rows = order[i : i + n]
            i += n
            ids = torch.zeros((len(rows), width), dtype=torch.long)
            mask = torch.zeros((len(rows), width), dtype=torch.long)
            for j, r in enumerate(rows):
                seq = list(prompt_ids[r]) + list(response_ids[r])
                ids[j, : len(seq)] = torch.tensor(seq)
                mask[j, : len(seq)] = 1
            logits = model(
                input_ids=ids.to(model.device), attention_mask=mask.to(model.device)
            ).logits.float()
            logp = torch.log_softmax(logits[:, :-1], dim=-1)
            nxt = ids[:, 1:].to(model.device)
            tok_lp = logp.gather(-1, nxt[..., None]).squeeze(-1)
            for j, r in enumerate(rows):
                start, n_resp = len(prompt_ids[r]), len(response_ids[r])
                total = tok_lp[j, start - 1 : start - 1 + n_resp].sum().item()
                scores[r] = Score(total, n_resp)
    return [s for s in scores if s is not None]
