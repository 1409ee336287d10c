"""The hf backend's decode loop: one continuously refilled batch, for evaluation and exploration.

transformers' generate() keeps finished rows in every forward pass until the longest row of its
batch ends. On a CPU a decode step costs nearly as much at batch 8 as at batch 64 (weight reads
dominate), so here rows leave the moment they finish and waiting requests take their slots.
Requests come from a source: a fixed list of prompts (evaluation), or exploration's scheduler,
which hands out the next attempts of unsolved problems and cancels a problem's other attempts
once one of them is correct.

Three savings keep the output token for token the same: the head every prompt shares (chat
template and instruction) is computed once; requests for the same prompt taken together
(several samples of one problem) prefill it once; and the key/value cache appends into spare
room (helpers/infer/kvcache.py).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

from .nucleus import nucleus_probs


@dataclass
class Finished:
    """One request's generated tokens, why it ended, and (optionally) their log-probability."""

    key: Any
    tokens: list[int]
    reason: str  # eos | length | stopped
    logprob: float | None = None  # sum of the model's own log-probs (temperature 1, full vocab)


class Source(Protocol):
    """Where the loop's requests come from, and where finished ones go."""

    def take(self, n: int) -> list[tuple[Any, Sequence[int]]]:
        """Up to n (key, prompt token ids) to start now."""
        ...

    def waiting(self) -> int:
        """How many requests could start now."""
        ...

    def finished(self, done: Finished) -> Iterable[Any]:
        """A request ended; return the keys of running requests to cancel."""
        ...


class ListSource:
    """A fixed list of prompts, in order; their outputs are kept by index."""

    def __init__(self, prompts: Sequence[Sequence[int]]) -> None:
        self.prompts = prompts
        self.queue = list(range(len(prompts)))
        self.out: dict[int, Finished] = {}

    def take(self, n: int) -> list[tuple[Any, Sequence[int]]]:
        """The next n prompts."""
        rows, self.queue = self.queue[:n], self.queue[n:]
        return [(r, self.prompts[r]) for r in rows]

    def waiting(self) -> int:
        """Prompts not started yet."""
        return len(self.queue)

    def finished(self, done: Finished) -> Iterable[Any]:
        """Keep the output; never cancel anything."""
        self.out[done.key] = done
        return ()


def common_prefix(prompts: Sequence[Sequence[int]]) -> int:
    """Length of the head all prompts share, leaving every prompt at least one token of its own."""
    if not prompts:
        return 0
    first, n = prompts[0], min(len(p) for p in prompts) - 1
    for p in prompts[1:]:
        n = next((i for i in range(n) if p[i] != first[i]), n)
    return max(n, 0)


def _merge_left_padded(cache: Any, mask: Any, new_cache: Any, new_mask: Any) -> Any:
    """Append new_cache's rows to cache in place, left-padding both to one length; return the mask."""
    import torch
    import torch.nn.functional as F

    width = max(mask.shape[1], new_mask.shape[1])

    def lpad(x: Any) -> Any:
        return F.pad(x, (0, 0, width - x.shape[-2], 0))

    for old, new in zip(cache.layers, new_cache.layers, strict=True):
        old.keys = torch.cat([lpad(old.keys), lpad(new.keys)])
        old.values = torch.cat([lpad(old.values), lpad(new.values)])
    return torch.cat(
        [F.pad(mask, (width - mask.shape[1], 0)), F.pad(new_mask, (width - new_mask.shape[1], 0))]
    )


def pick(logits: Any, temperature: float, top_p: float, generators: Sequence[Any] | None) -> Any:
    """Greedy when temperature is 0, else nucleus sampling, each row from its own generator."""
    import torch

    if temperature <= 0:
        return logits.argmax(-1)
    probs = torch.softmax(logits / temperature, dim=-1)
    if top_p < 1.0:
        probs = nucleus_probs(probs, top_p)
    if generators is None:
        return torch.multinomial(probs, 1).squeeze(-1)
    # One generator per row: a rollout's tokens depend on its own seed, not on which other
    # rollouts happen to share its batch (so a resumed exploration draws what it would have).
    return torch.cat(
        [
            torch.multinomial(probs[j : j + 1], 1, generator=g).view(1)
            for j, g in enumerate(generators)
        ]
    )


@dataclass
class Sampling:
    """How the loop picks tokens and what it records: greedy when temperature is 0."""

    temperature: float = 0.0
    top_p: float = 1.0
    seed: int | None = None
    logprobs: bool = False


class Batch:
    """The running rows of the decode loop: admitted (prefilled), stepped, evicted.

    The rows share one key/value cache in cache order; `head` (the tokens every prompt starts
    with) is computed once and copied into each admitted row's cache.
    """

    def __init__(
        self, model: Any, head: Sequence[int], pad_id: int, sampling: Sampling, stats: Counter
    ) -> None:
        import torch

        self.model, self.pad_id, self.sampling, self.stats = model, pad_id, sampling, stats
        self.device = model.device
        self.layers = model.config.get_text_config(decoder=True).num_hidden_layers
        self.h = len(head)
        self.keys: list[Any] = []  # of the alive rows, in cache order
        self.toks: list[list[int]] = []
        self.lps: list[float] = []
        self.gens: list[Any] = []
        self.cache: Any = None
        self.mask = self.pos = self.nxt = None
        self.head_cache: Any = None
        if self.h:
            self.head_cache = model(
                input_ids=torch.tensor([list(head)], device=self.device), use_cache=True
            ).past_key_values
            stats["prefill"] += self.h

    def __len__(self) -> int:
        return len(self.keys)

    def _generator(self, key: Any) -> Any:
        import torch

        from ..grading.problem import stable_hash

        if self.sampling.temperature <= 0:
            return None
        g = torch.Generator(device=self.device)
        g.manual_seed(stable_hash(self.sampling.seed, key))
        return g

    def _pick(self, logits: Any, gens: list[Any]) -> tuple[Any, list[float]]:
        """The next token of each row, and its log-probability when they are recorded."""
        import torch

        s = self.sampling
        chosen = pick(logits, s.temperature, s.top_p, gens if s.temperature > 0 else None)
        if not s.logprobs:
            return chosen, [0.0] * len(chosen)
        lp = torch.log_softmax(logits, dim=-1).gather(-1, chosen[:, None]).squeeze(-1)
        return chosen, lp.tolist()

    def _prefill(self, new: list[tuple[Any, Sequence[int]]]) -> tuple[Any, Any, Any, Any]:
        """One forward pass over the new prompts' tails (identical tails computed once):
        their caches, attention masks, positions and last logits, in the order of `new`."""
        import torch

        from .kvcache import growing_cache, repeat_rows

        h = self.h
        unique: dict[tuple[int, ...], int] = {}
        for _, p in new:
            unique.setdefault(tuple(p[h:]), len(unique))
        tails = list(unique)
        width = max(len(t) for t in tails)
        ids = torch.full((len(tails), width), self.pad_id, dtype=torch.long)
        u_mask = torch.zeros((len(tails), h + width), dtype=torch.long)
        u_mask[:, :h] = 1
        for j, tail in enumerate(tails):
            ids[j, width - len(tail) :] = torch.tensor(tail)
            u_mask[j, h + width - len(tail) :] = 1
        real = sum(len(t) for t in tails)
        self.stats["prefill"] += real
        self.stats["prefill_padding"] += len(tails) * width - real
        self.stats["shared_prefill"] += sum(len(p) - h for _, p in new) - real
        ids, u_mask = ids.to(self.device), u_mask.to(self.device)
        u_pos = (u_mask.cumsum(-1) - 1).clamp(min=0)[:, h:]
        res = self.model(
            input_ids=ids,
            attention_mask=u_mask,
            position_ids=u_pos,
            past_key_values=(
                repeat_rows(self.head_cache, len(tails)) if h else growing_cache(self.layers)
            ),
            use_cache=True,
            logits_to_keep=1,
        )
        order = torch.tensor(
            [unique[tuple(p[h:])] for _, p in new], dtype=torch.long, device=self.device
        )
        new_cache = res.past_key_values
        if len(tails) < len(new):
            new_cache.batch_select_indices(order)
        return new_cache, u_mask[order], u_pos[order], res.logits[:, -1, :].float()[order]

    def admit(self, new: list[tuple[Any, Sequence[int]]]) -> None:
        """Prefill new requests and merge them into the running rows."""
        import torch

        new_cache, new_mask, new_pos, logits = self._prefill(new)
        new_gens = [self._generator(k) for k, _ in new]
        first, first_lp = self._pick(logits, new_gens)
        if self.cache is None:
            self.cache, self.mask, self.pos, self.nxt = new_cache, new_mask, new_pos[:, -1:], first
        else:
            self.mask = _merge_left_padded(self.cache, self.mask, new_cache, new_mask)
            self.pos = torch.cat([self.pos, new_pos[:, -1:]])
            self.nxt = torch.cat([self.nxt, first])
        for (k, _), t, lp, g in zip(new, first.tolist(), first_lp, new_gens, strict=True):
            self.keys.append(k)
            self.toks.append([t])
            self.lps.append(lp)
            self.gens.append(g)

    def step(self) -> None:
        """One decode step for every running row."""
        import torch

        self.mask = torch.cat([self.mask, self.mask.new_ones(len(self.keys), 1)], dim=1)
        self.pos = self.pos + 1
        res = self.model(
            input_ids=self.nxt[:, None],
            attention_mask=self.mask,
            position_ids=self.pos,
            past_key_values=self.cache,
            use_cache=True,
        )
        self.cache = res.past_key_values
        self.nxt, lps = self._pick(res.logits[:, -1, :].float(), self.gens)
        for j, (t, lp) in enumerate(zip(self.nxt.tolist(), lps, strict=True)):
            self.toks[j].append(t)
            self.lps[j] += lp
        self.stats["decode"] += len(self.keys)
        self.stats["steps"] += 1

    def evict(self, gone: set[int]) -> None:
        """Drop rows from the batch (and columns that are padding in every row left)."""
        import torch

        keep = [j for j in range(len(self.keys)) if j not in gone]
        self.keys, self.toks = [self.keys[j] for j in keep], [self.toks[j] for j in keep]
        self.lps, self.gens = [self.lps[j] for j in keep], [self.gens[j] for j in keep]
        if not self.keys:
            self.cache = None
            return
        idx = torch.tensor(keep, dtype=torch.long, device=self.device)
        self.cache.batch_select_indices(idx)
        self.mask, self.pos, self.nxt = self.mask[idx], self.pos[idx], self.nxt[idx]
        lead = int(self.mask.any(0).long().argmax())
        if lead > 0:
            self.mask = self.mask[:, lead:]
            for layer in self.cache.layers:
                layer.keys = layer.keys[..., lead:, :]
                layer.values = layer.values[..., lead:, :]


def decode(
    model: Any,
    source: Source,
    *,
    head: Sequence[int],
    pad_id: int,
    batch_size: int,
    max_new_tokens: int,
    eos: int | None,
    stopped: Callable[[list[int]], bool] | None = None,
    temperature: float = 0.0,
    top_p: float = 1.0,
    seed: int | None = None,
    logprobs: bool = False,
    stats: Counter | None = None,
    prefill_chunk: int = 16,
) -> None:
    """Run every request of a source to its end (or cancellation) in one refilled batch.

    Every prompt must start with `head`, which is computed once. With temperature > 0 each
    request samples from a generator seeded by (seed, its key). `stats` counts the tokens the
    loop paid for: prefill (computed prompt tokens), prefill_padding, shared_prefill (prompt
    rows copied from an identical one), decode (generated tokens) and steps.
    """
    import torch

    stats = stats if stats is not None else Counter()
    refill_at = max(1, batch_size // 4)

    def ended(t: list[int]) -> str | None:
        if eos is not None and t[-1] == eos:
            return "eos"
        if len(t) >= max_new_tokens:
            return "length"
        return "stopped" if stopped is not None and stopped(t) else None

    with torch.inference_mode():
        batch = Batch(model, head, pad_id, Sampling(temperature, top_p, seed, logprobs), stats)
        while True:
            free = batch_size - len(batch)
            waiting = source.waiting() if free else 0
            # Refill once enough slots are free, or when everything waiting fits (so the last
            # few prompts do not wait for a quarter of the batch to finish).
            new = (
                source.take(min(free, prefill_chunk))
                if waiting and (free >= min(refill_at, waiting) or not len(batch))
                else []
            )
            if new:
                batch.admit(new)
            elif len(batch):
                batch.step()
            else:
                break
            # Rows that ended leave; so do rows their source cancels.
            gone: set[int] = set()
            cancel: set[Any] = set()
            for j, t in enumerate(batch.toks):
                why = ended(t)
                if why:
                    gone.add(j)
                    lp = batch.lps[j] if logprobs else None
                    cancel.update(source.finished(Finished(batch.keys[j], t, why, lp)))
            cancelled = {j for j, k in enumerate(batch.keys) if k in cancel} - gone
            stats["cancelled"] += len(cancelled)
            if gone or cancelled:
                batch.evict(gone | cancelled)


def decode_continuous(
    model: Any,
    prompts: Sequence[Sequence[int]],
    *,
    on_done: Callable[[Finished], None] | None = None,
    share_prefix: bool = True,
    **settings: Any,
) -> list[list[int]]:
    """Decode a list of token-id prompts; return the new tokens of each, in order.

    `settings` are decode's (pad_id, batch_size, max_new_tokens, eos, ...); `on_done` sees each
    request as it finishes (its key is the prompt's index).
    """

    class Reporting(ListSource):
        def finished(self, done: Finished) -> Iterable[Any]:
            if on_done is not None:
                on_done(done)
            return super().finished(done)

    src = Reporting(prompts)
    head = common_prefix(prompts) if share_prefix else 0
    decode(model, src, head=list(prompts[0][:head]) if head else [], **settings)
    return [src.out[i].tokens for i in range(len(prompts))]
