"""What the speed-ups may not change: `auto` picks bf16 only where it is native, the nucleus is
the full sort's, packed SFT rows train exactly as one row per step, and a vLLM engine is sized
from the profile."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest
import torch

from helpers.infer.nucleus import _sorted_nucleus, nucleus_probs
from helpers.pipeline import machine
from helpers.pipeline.config import load_profile
from helpers.pipeline.schema import DPOCfg


def resolve_in_subprocess(env: dict[str, str]) -> str:
    code = "from helpers.pipeline.machine import resolve_dtype; print(resolve_dtype('auto'))"
    clean = {k: v for k, v in os.environ.items() if k not in machine.HOLD_VARIABLES}
    out = subprocess.run(
        [sys.executable, "-c", code], env={**clean, **env}, capture_output=True, text=True
    )
    return out.stdout.strip()


def test_auto_is_fp32_when_the_kernels_are_held_to_avx2():
    assert resolve_in_subprocess({"ATEN_CPU_CAPABILITY": "avx2"}) == "fp32"


@pytest.mark.parametrize(
    ("flags", "isa", "held", "want"),
    [
        ({"avx2", "amx_bf16"}, "AVX512", {}, "bf16"),
        ({"avx2", "avx512_bf16"}, "AVX512", {}, "bf16"),
        ({"avx2", "avx512f"}, "AVX512", {}, "fp32"),  # no native bf16: emulated
        ({"avx2", "amx_bf16"}, "AVX2", {}, "fp32"),  # ATen held to AVX2
        ({"avx2", "amx_bf16"}, "AVX512", {"ONEDNN_MAX_CPU_ISA": "AVX2"}, "fp32"),
        ({"avx2", "amx_bf16"}, "AVX512", {"MKL_ENABLE_INSTRUCTIONS": "AVX2"}, "fp32"),
        ({"avx2", "amx_bf16"}, "AVX512", {"ONEDNN_MAX_CPU_ISA": "AVX512_CORE_AMX"}, "bf16"),
    ],
)
def test_auto_takes_bf16_only_where_it_is_native(monkeypatch, flags, isa, held, want):
    monkeypatch.setattr(machine, "cpu_flags", lambda: frozenset(flags))
    monkeypatch.setattr(machine, "kernel_isa", lambda: isa)
    monkeypatch.setattr(machine, "holds", lambda: held)
    assert machine.resolve_dtype("auto", cuda=False) == want
    assert machine.resolve_dtype("fp32", cuda=False) == "fp32"
    assert machine.resolve_dtype("auto", cuda=True) == "bf16"
    native, reason = machine.bf16_native()
    assert native == (want == "bf16") and reason


def test_the_machine_record_resolves_every_dtype_of_a_profile():
    record = machine.describe(load_profile("params/tiny.yaml"))
    assert set(record["dtypes"]) == {"generation", "warmup", "sft", "dpo"}
    assert record["kernels"] and "bf16_reason" in record
    assert machine.summary_line(record).startswith("compute: ")


def peaked(rows: int, vocab: int, seed: int) -> torch.Tensor:
    """Probabilities shaped like a trained model's: a few likely tokens, a long thin tail."""
    g = torch.Generator().manual_seed(seed)
    logits = torch.randn(rows, vocab, generator=g)
    logits[:, :5] += torch.linspace(9, 4, 5)  # a nucleus of a handful of tokens
    return torch.softmax(logits / 0.8, dim=-1)


@pytest.mark.parametrize("top_p", [0.5, 0.9, 0.95])
def test_the_nucleus_is_the_full_sorts(top_p):
    probs = peaked(32, 5000, 1)
    assert torch.equal(nucleus_probs(probs, top_p), _sorted_nucleus(probs, top_p))


def test_a_nucleus_wider_than_the_top_tokens_falls_back_to_the_sort():
    flat = torch.softmax(torch.randn(4, 3000, generator=torch.Generator().manual_seed(2)), -1)
    probs = torch.cat([flat, peaked(4, 3000, 3)])
    got = nucleus_probs(probs, 0.95, top=16)
    assert torch.equal(got, _sorted_nucleus(probs, 0.95))
    assert (got[:4] > 0).sum(-1).min() > 16  # those rows kept more than 16 tokens


def test_samples_from_the_nucleus_are_the_sorts_samples():
    from helpers.infer.decoding import pick

    logits = torch.log(peaked(16, 4000, 4))
    gens = lambda: [torch.Generator().manual_seed(i) for i in range(16)]  # noqa: E731
    got = pick(logits, 0.8, 0.95, gens())
    probs = _sorted_nucleus(torch.softmax(logits / 0.8, -1), 0.95)
    want = torch.cat(
        [torch.multinomial(probs[j : j + 1], 1, generator=g).view(1) for j, g in enumerate(gens())]
    )
    assert torch.equal(got, want)


def test_vllms_top_p_keeps_the_tokens_vllms_own_function_keeps():
    def sort_based(logits, k, p):  # vLLM's own cut: ascending sort, mass above 1 - p kept
        s, idx = logits.sort(dim=-1)
        drop = s.softmax(-1).cumsum(-1) <= 1 - p.unsqueeze(1)
        drop[:, -1] = False
        return logits.scatter(-1, idx, s.masked_fill(drop, -float("inf")))

    from helpers.infer.nucleus import vllm_top_k_top_p

    logits = torch.log(peaked(8, 3000, 5))
    p = torch.tensor([0.9] * 6 + [1.0, 0.5])
    got = vllm_top_k_top_p(sort_based)(logits.clone(), None, p)
    assert torch.equal(torch.isfinite(got), torch.isfinite(sort_based(logits.clone(), None, p)))
    assert torch.isfinite(got[6]).all()  # p = 1 keeps everything


def test_dpo_refuses_packed_rows():
    with pytest.raises(ValueError, match="padding_free"):
        DPOCfg(padding_free=True)


def test_packed_rows_train_as_one_row_per_step(small_model, tmp_path):
    """Eight rows packed into one step: the loss and the update of eight one-row steps
    accumulated (same examples, same order)."""
    import copy

    from helpers.pipeline.schema import TrainCfg
    from helpers.train.sft import SFTSpec, build_trainer

    model, tok = small_model
    data = [
        {"id": f"d{i}", "question": f"What is {i} + {i + 1}?", "combined_text": "x " * (3 + i)}
        for i in range(8)
    ]
    results = {}
    for name, layout in {
        "rows": dict(per_device_batch_size=1, gradient_accumulation=8),
        "packed": dict(per_device_batch_size=8, gradient_accumulation=1, padding_free=True),
    }.items():
        m = copy.deepcopy(model)
        train = TrainCfg(
            method="full", max_steps=1, warmup_ratio=0.0, dtype="fp32", learning_rate=1e-3, **layout
        )
        spec = SFTSpec("smollm2-135m-instruct", data, str(tmp_path / name), "Think.", train)
        trainer = build_trainer(spec, m, tok, tmp_path / f"w-{name}")
        loss = trainer.train().training_loss
        results[name] = (loss, m.model.layers[0].mlp.down_proj.weight.detach(), trainer)
    (l1, w1, t1), (l2, w2, t2) = results["rows"], results["packed"]
    assert l1 == pytest.approx(l2, rel=1e-5)
    assert torch.allclose(w1, w2, atol=1e-6)
    assert t2.token_counts["train_padding"] == 0
    assert t1.token_counts["loss"] == t2.token_counts["loss"] > 0


def test_packed_rows_are_cut_to_max_length(small_model, tmp_path):
    from helpers.pipeline.schema import TrainCfg
    from helpers.train.sft import SFTSpec, build_trainer

    model, tok = small_model
    data = [{"id": "long", "question": "Count.", "combined_text": "one two " * 200}]
    train = TrainCfg(method="full", max_length=64, padding_free=True, per_device_batch_size=2)
    spec = SFTSpec("smollm2-135m-instruct", data, str(tmp_path / "m"), "", train)
    trainer = build_trainer(spec, model, tok, tmp_path / "w")
    assert len(trainer.train_dataset[0]["input_ids"]) == 64


def test_the_engines_context_comes_from_the_profile():
    from helpers.infer.generation import PROMPT_ROOM, context_length

    tiny = load_profile("params/tiny.yaml")
    want = max(
        max(tiny.generation.max_new_tokens, tiny.explore.max_new_tokens) + PROMPT_ROOM,
        tiny.sft.max_length,
        tiny.dpo.max_length,
    )
    assert context_length(tiny) == want < 8192  # not the model's 8192


def test_a_kv_cache_that_cannot_fit_says_what_to_change(monkeypatch):
    import psutil

    from helpers.infer.models import resolve_model_path
    from helpers.infer.vllm_backend import kv_budget, kv_bytes_per_token

    path = resolve_model_path("smollm2-135m-instruct")
    per_token = kv_bytes_per_token(path, "float32")
    assert per_token == 2 * 30 * 3 * 64 * 4  # SmolLM2-135M: 30 layers, 3 KV heads of 64

    class Tight:
        available = 100 * per_token  # room for 100 tokens

    monkeypatch.setattr(psutil, "virtual_memory", lambda: Tight)
    with pytest.raises(MemoryError, match=r"generation\.max_model_len"):
        kv_budget(path, "float32", 832, 256)
    Tight.available = 10_000 * per_token
    got = kv_budget(path, "float32", 832, 256)
    assert got == 2500 * per_token  # a quarter of what is free, above one request
    assert kv_budget(path, "float32", 832, 2) == 2 * 832 * per_token  # no more than needed


def test_a_stage_sizes_its_engine_from_the_sections_it_reads():
    from helpers.infer.generation import PROMPT_ROOM, context_length
    from helpers.pipeline.schema import guard_sections

    prof = load_profile("params/tiny.yaml")
    guard_sections(prof, ("generation",))  # evaluation reads no training section
    assert context_length(prof) == prof.generation.max_new_tokens + PROMPT_ROOM
    guard_sections(prof, ("generation", "sft", "unify"))  # unify's completer: thought prompts
    assert context_length(prof) == max(
        prof.sft.max_length, prof.generation.max_new_tokens + PROMPT_ROOM
    )
