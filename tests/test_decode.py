"""The continuously refilled decode loop against transformers' own generate, on a tiny random model."""

from __future__ import annotations

from collections import Counter

import pytest
import torch

from helpers.infer.decoding import ListSource, decode, decode_continuous
from tests.conftest import sample

transformers = pytest.importorskip("transformers")


PROMPTS = [[5, 6, 7], [8, 9, 10, 11, 12, 13, 14], [15], [16, 17, 18, 19], [20, 21], [22] * 9]


def _reference(model, prompt, n, eos=None):
    ids = torch.tensor([prompt])
    out = model.generate(
        ids,
        attention_mask=torch.ones_like(ids),
        max_new_tokens=n,
        do_sample=False,
        pad_token_id=0,
        eos_token_id=eos,
    )
    return out[0, len(prompt) :].tolist()


@pytest.mark.parametrize(("batch_size", "chunk"), [(1, 16), (2, 16), (4, 16), (16, 16), (16, 2)])
def test_greedy_matches_generate_one_by_one(tiny_lm, batch_size, chunk):
    # A small batch forces rows to leave and queued prompts to be merged into a running cache.
    done = []
    got = decode_continuous(
        tiny_lm,
        PROMPTS,
        pad_id=0,
        batch_size=batch_size,
        max_new_tokens=10,
        eos=None,
        on_done=lambda f: done.append(f.key),
        prefill_chunk=chunk,
    )
    assert got == [_reference(tiny_lm, p, 10) for p in PROMPTS]
    assert sorted(done) == list(range(len(PROMPTS)))


def test_rows_end_at_eos_and_stop_test_at_different_steps(tiny_lm):
    free = decode_continuous(tiny_lm, PROMPTS, pad_id=0, batch_size=3, max_new_tokens=12, eos=None)
    # End each row at a token it really produces, so rows leave the batch at different steps.
    eos = free[1][4]
    got = decode_continuous(tiny_lm, PROMPTS, pad_id=0, batch_size=3, max_new_tokens=12, eos=eos)
    for row, full in zip(got, free, strict=True):
        cut = full.index(eos) + 1 if eos in full else len(full)
        assert row == full[:cut]
    assert len(got[1]) <= 5 and len({len(r) for r in got}) > 1
    stop_at = free[0][2]
    stopped = decode_continuous(
        tiny_lm,
        PROMPTS,
        pad_id=0,
        batch_size=2,
        max_new_tokens=12,
        eos=None,
        stopped=lambda toks: toks[-1] == stop_at,
    )
    assert stopped[0] == free[0][: free[0].index(stop_at) + 1]


def test_sampling_is_seeded_per_request(tiny_lm):
    def draw(seed, prompts=PROMPTS, batch_size=4):
        return decode_continuous(
            tiny_lm,
            prompts,
            pad_id=0,
            batch_size=batch_size,
            max_new_tokens=8,
            eos=None,
            temperature=1.0,
            top_p=0.9,
            seed=seed,
        )

    assert draw(1) == draw(1)
    assert draw(1) != draw(2)
    # A request's draws depend on its own seed, not on the batch it happens to share.
    assert draw(1, PROMPTS, batch_size=1) == draw(1)


def test_samples_of_one_prompt_share_its_prefill(tiny_lm):
    stats = Counter()
    prompts = [PROMPTS[1]] * 4 + [PROMPTS[3]]
    got = decode_continuous(
        tiny_lm,
        prompts,
        pad_id=0,
        batch_size=8,
        max_new_tokens=6,
        eos=None,
        stats=stats,
        share_prefix=False,
    )
    assert got == [_reference(tiny_lm, p, 6) for p in prompts]
    assert stats["prefill"] == len(PROMPTS[1]) + len(PROMPTS[3])
    assert stats["shared_prefill"] == 3 * len(PROMPTS[1])
    assert stats["decode"] == 5 * 5 and stats["steps"] == 5  # the first token comes from prefill


class FirstWins(ListSource):
    """Cancel every other request of a group once one of its requests ends."""

    def __init__(self, prompts, group):
        super().__init__(prompts)
        self.group = group

    def finished(self, done):
        super().finished(done)
        return [k for k in range(len(self.prompts)) if self.group[k] == self.group[done.key]]


def test_a_source_can_cancel_running_requests(tiny_lm):
    prompts = [PROMPTS[0], PROMPTS[1], PROMPTS[1], PROMPTS[2]]
    free = decode_continuous(tiny_lm, prompts, pad_id=0, batch_size=4, max_new_tokens=9, eos=None)
    eos = free[1][2]  # request 1 ends at its third token; request 2 (same prompt) would too
    src = FirstWins(prompts, group=[0, 1, 1, 2])
    stats = Counter()
    decode(tiny_lm, src, head=[], pad_id=0, batch_size=4, max_new_tokens=9, eos=eos, stats=stats)
    assert src.out[1].tokens == free[1][:3] and src.out[1].reason == "eos"
    assert 2 not in src.out or src.out[2].tokens == free[2][:3]  # ended with it, or cancelled
    assert src.out[0].tokens[: len(free[0])] == free[0][: len(src.out[0].tokens)]


def test_logprobs_are_the_models_own(tiny_lm):
    stats = Counter()
    src = ListSource(PROMPTS[:3])
    sample(tiny_lm, src, batch_size=2, max_new_tokens=5, seed=3, stats=stats)
    for i, prompt in enumerate(PROMPTS[:3]):
        out = src.out[i]
        ids = torch.tensor([prompt + out.tokens])
        with torch.no_grad():
            lp = torch.log_softmax(tiny_lm(ids).logits[0, :-1].float(), -1)
        direct = lp[len(prompt) - 1 :].gather(-1, torch.tensor(out.tokens)[:, None]).sum()
        assert abs(out.logprob - direct.item()) < 1e-4


@pytest.mark.parametrize("batch_size", [1, 2, 16])
def test_shared_head_is_computed_once_and_changes_nothing(tiny_lm, batch_size):
    # Every prompt starts with the same four tokens, as chat template plus instruction do; one is
    # nothing but that head and one more token.
    prompts = [[1, 2, 3, 4, *p] for p in PROMPTS]
    calls = []
    hook = tiny_lm.model.embed_tokens.register_forward_hook(
        lambda _m, args, _o: calls.append(tuple(args[0].shape))
    )
    try:
        got = decode_continuous(
            tiny_lm, prompts, pad_id=0, batch_size=batch_size, max_new_tokens=10, eos=None
        )
    finally:
        hook.remove()
    assert got == [_reference(tiny_lm, p, 10) for p in prompts]
    # The head goes through the model once, alone; no later call is as wide as a whole prompt
    # with its head.
    assert calls[0] == (1, 4)
    assert all(shape[1] <= max(map(len, PROMPTS)) for shape in calls[1:])


def test_growing_cache_layer_matches_concatenation():
    from helpers.infer.kvcache import HEADROOM, GrowingLayer

    torch.manual_seed(0)
    layer, ref = GrowingLayer(), []
    for width in (3, 1, 1, HEADROOM, 1):  # the fourth update overflows the spare room
        k, v = torch.randn(4, 2, width, 8), torch.randn(4, 2, width, 8)
        ref.append((k, v))
        keys, values = layer.update(k, v)
    assert torch.equal(keys, torch.cat([k for k, _ in ref], dim=-2))
    assert torch.equal(values, torch.cat([v for _, v in ref], dim=-2))
    rows = torch.tensor([0, 2])
    layer.batch_select_indices(rows)
    k, v = torch.randn(2, 2, 1, 8), torch.randn(2, 2, 1, 8)
    keys, values = layer.update(k, v)
    assert torch.equal(keys, torch.cat([*(k_[rows] for k_, _ in ref), k], dim=-2))
    assert torch.equal(values, torch.cat([*(v_[rows] for _, v_ in ref), v], dim=-2))
    # Replacing the views from outside (as trimming does) is picked up by the next update.
    layer.keys, layer.values = layer.keys[..., 2:, :], layer.values[..., 2:, :]
    keys, _ = layer.update(k, v)
    assert keys.shape[-2] == sum(w for w in (3, 1, 1, HEADROOM, 1)) + 1 - 2 + 1
    assert torch.equal(keys[..., -1:, :], k)
