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
        sorted_p, order = probs.sort(dim=-1, descending=True)
        # Keep the smallest prefix whose mass reaches top_p (always at least the top token).
        drop = sorted_p.cumsum(-1) - sorted_p >= top_p
        sorted_p = sorted_p.masked_fill(drop, 0.0)
        probs = torch.zeros_like(probs).scatter(-1, order, sorted_p)
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

    from ..grading.problem import stable_hash
    from .kvcache import growing_cache, repeat_rows

    stats = stats if stats is not None else Counter()
    device = model.device
    layers = model.config.get_text_config(decoder=True).num_hidden_layers
    refill_at = max(1, batch_size // 4)
    keys: list[Any] = []  # of the alive rows, in cache order
    toks: list[list[int]] = []
    lps: list[float] = []
    gens: list[Any] = []
    cache: Any = None
    mask = pos = nxt = None

    def generator(key: Any) -> Any:
        if temperature <= 0:
            return None
        g = torch.Generator(device=device)
        g.manual_seed(stable_hash(seed, key))
        return g

    def step_logprobs(logits: Any, chosen: Any) -> list[float]:
        if not logprobs:
            return [0.0] * len(chosen)
        lp = torch.log_softmax(logits, dim=-1).gather(-1, chosen[:, None]).squeeze(-1)
        return lp.tolist()

    def ended(j: int) -> str | None:
        t = toks[j]
        if eos is not None and t[-1] == eos:
            return "eos"
        if len(t) >= max_new_tokens:
            return "length"
        if stopped is not None and stopped(t):
            return "stopped"
        return None

    h = len(head)
    head_cache: Any = None
    with torch.inference_mode():
        if h:
            head_cache = model(
                input_ids=torch.tensor([list(head)], device=device), use_cache=True
            ).past_key_values
            stats["prefill"] += h
        while True:
            free = batch_size - len(keys)
            waiting = source.waiting() if free else 0
            # Refill once enough slots are free, or when everything waiting fits (so the last
            # few prompts do not wait for a quarter of the batch to finish).
            new = (
                source.take(min(free, prefill_chunk))
                if waiting and (free >= min(refill_at, waiting) or not keys)
                else []
            )
            if new:
                # Identical prompts taken together (samples of one problem) prefill once.
                unique: dict[tuple[int, ...], int] = {}
                for _, p in new:
                    unique.setdefault(tuple(p[h:]), len(unique))
                tails = list(unique)
                width = max(len(t) for t in tails)
                ids = torch.full((len(tails), width), pad_id, dtype=torch.long)
                u_mask = torch.zeros((len(tails), h + width), dtype=torch.long)
                u_mask[:, :h] = 1
                for j, tail in enumerate(tails):
                    ids[j, width - len(tail) :] = torch.tensor(tail)
                    u_mask[j, h + width - len(tail) :] = 1
                stats["prefill"] += sum(len(t) for t in tails)
                stats["prefill_padding"] += len(tails) * width - sum(len(t) for t in tails)
                stats["shared_prefill"] += sum(len(p) - h for _, p in new) - sum(
                    len(t) for t in tails
                )
                ids, u_mask = ids.to(device), u_mask.to(device)
                u_pos = (u_mask.cumsum(-1) - 1).clamp(min=0)[:, h:]
                res = model(
                    input_ids=ids,
                    attention_mask=u_mask,
                    position_ids=u_pos,
                    past_key_values=(
                        repeat_rows(head_cache, len(tails)) if h else growing_cache(layers)
                    ),
                    use_cache=True,
                    logits_to_keep=1,
                )
                order = torch.tensor(
                    [unique[tuple(p[h:])] for _, p in new], dtype=torch.long, device=device
                )
                new_cache = res.past_key_values
                if len(tails) < len(new):
                    new_cache.batch_select_indices(order)
                logits = res.logits[:, -1, :].float()[order]
                new_gens = [generator(k) for k, _ in new]
                first = pick(logits, temperature, top_p, new_gens if temperature > 0 else None)
                first_lp = step_logprobs(logits, first)
                new_mask, new_pos = u_mask[order], u_pos[order]
                if cache is None:
                    cache, mask, pos, nxt = new_cache, new_mask, new_pos[:, -1:], first
                else:
                    mask = _merge_left_padded(cache, mask, new_cache, new_mask)
                    pos = torch.cat([pos, new_pos[:, -1:]])
                    nxt = torch.cat([nxt, first])
                for (k, _), t, lp, g in zip(new, first.tolist(), first_lp, new_gens, strict=True):
                    keys.append(k)
                    toks.append([t])
                    lps.append(lp)
                    gens.append(g)
            elif keys:
                mask = torch.cat([mask, mask.new_ones(len(keys), 1)], dim=1)
                pos = pos + 1
                res = model(
                    input_ids=nxt[:, None],
                    attention_mask=mask,
                    position_ids=pos,
                    past_key_values=cache,
                    use_cache=True,
                )
                cache = res.past_key_values
                logits = res.logits[:, -1, :].float()
                nxt = pick(logits, temperature, top_p, gens if temperature > 0 else None)
                for j, (t, lp) in enumerate(
                    zip(nxt.tolist(), step_logprobs(logits, nxt), strict=True)
                ):
                    toks[j].append(t)
                    lps[j] += lp
                stats["decode"] += len(keys)
                stats["steps"] += 1
            else:
                break
            # Rows that ended leave; so do rows their source cancels.
            gone: set[int] = set()
            cancel: set[Any] = set()
            for j in range(len(keys)):
                why = ended(j)
                if why:
                    gone.add(j)
                    lp = lps[j] if logprobs else None
                    cancel.update(source.finished(Finished(keys[j], toks[j], why, lp)))
            gone |= {j for j, k in enumerate(keys) if k in cancel}
            if gone:
                stats["cancelled"] += sum(1 for j in gone if keys[j] in cancel and not ended(j))
                keep = [j for j in range(len(keys)) if j not in gone]
                keys, toks = [keys[j] for j in keep], [toks[j] for j in keep]
                lps, gens = [lps[j] for j in keep], [gens[j] for j in keep]
                if not keys:
                    cache = None
                    continue
                idx = torch.tensor(keep, dtype=torch.long, device=device)
                cache.batch_select_indices(idx)
                mask, pos, nxt = mask[idx], pos[idx], nxt[idx]
                # Columns that are padding in every remaining row cost attention and memory.
                lead = int(mask.any(0).long().argmax())
                if lead > 0:
                    mask = mask[:, lead:]
                    for layer in cache.layers:
                        layer.keys = layer.keys[..., lead:, :]
                        layer.values = layer.values[..., lead:, :]


def decode_continuous(
    model: Any,
    prompts: Sequence[Sequence[int]],
    *,
    pad_id: int,
    batch_size: int,
    max_new_tokens: int,
    eos: int | None,
    stopped: Callable[[list[int]], bool] | None = None,
    temperature: float = 0.0,
    top_p: float = 1.0,
    seed: int | None = None,
    on_done: Callable[[Finished], None] | None = None,
    prefill_chunk: int = 16,
    share_prefix: bool = True,
    stats: Counter | None = None,
) -> list[list[int]]:
    """Decode a list of token-id prompts; return the new tokens of each, in order.

    `on_done` sees each request as it finishes (its key is the prompt's index).
    """

    class Reporting(ListSource):
        def finished(self, done: Finished) -> Iterable[Any]:
            if on_done is not None:
                on_done(done)
            return super().finished(done)

    src = Reporting(prompts)
    head = common_prefix(prompts) if share_prefix else 0
    decode(
        model,
        src,
        head=list(prompts[0][:head]) if head else [],
        pad_id=pad_id,
        batch_size=batch_size,
        max_new_tokens=max_new_tokens,
        eos=eos,
        stopped=stopped,
        temperature=temperature,
        top_p=top_p,
        seed=seed,
        stats=stats,
        prefill_chunk=prefill_chunk,
    )
    return [src.out[i].tokens for i in range(len(prompts))]
