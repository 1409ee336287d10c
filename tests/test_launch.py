"""Past one process: SFT and DPO launched through `accelerate launch` on two CPU processes
(gloo) train as one process does on the same global batch, and save a model the next stage
loads."""

from __future__ import annotations

import json

import pytest
import torch

from helpers.pipeline.schema import DPOCfg, TrainCfg
from helpers.train import dpo, sft
from helpers.train.trainer import launch_command

# Measured here (two gloo processes against one, same global batch of four, two steps): the
# logged losses were equal to the last digit and the weights within 9e-8; gloo's all-reduce adds
# in another order than one process's accumulation, so equality is not asked for.
LOSS_RTOL = 1e-5
WEIGHT_ATOL = 1e-6


def demos(n: int) -> list[dict]:
    from helpers.grading.formatting import format_response

    return [
        {
            "id": f"d{i}",
            "question": f"What is {i} + {i + 2}?",
            "combined_text": format_response(f"{i} + {i + 2} = {2 * i + 2}." * (1 + i % 3), "ok"),
        }
        for i in range(n)
    ]


def dpo_pairs(n: int) -> list[dict]:
    """n pairs of a right and a wrong one-step sum."""
    return [
        {
            "problem_id": f"p{i}",
            "question": f"What is {i} + 1?",
            "chosen": f"{i} + 1 = {i + 1}. The answer is {i + 1}.",
            "rejected": f"{i} + 1 = {i + 2}. The answer is {i + 2}.",
        }
        for i in range(n)
    ]


def losses(out) -> list[float]:
    return [json.loads(x)["loss"] for x in (out / "train_log.jsonl").read_text().splitlines()]


def weight(out):
    from transformers import AutoModelForCausalLM

    return AutoModelForCausalLM.from_pretrained(out).model.layers[1].mlp.down_proj.weight


def test_the_launcher_is_ddp_or_deepspeed_by_the_profile(tmp_path):
    ddp = launch_command("helpers.train.sft", tmp_path / "s.json", TrainCfg(processes=2))
    assert ddp[1:3] == ["-m", "accelerate.commands.launch"] and "--multi_gpu" in ddp
    assert ddp[ddp.index("--num_processes") + 1] == "2"
    assert ddp[-3:] == ["-m", "helpers.train.sft", str(tmp_path / "s.json")]
    ds = launch_command(
        "helpers.train.dpo",
        tmp_path / "s.json",
        TrainCfg(processes=8, deepspeed_config="params/deepspeed_zero3.json"),
    )
    assert "--use_deepspeed" in ds and "--multi_gpu" not in ds
    assert ds[ds.index("--deepspeed_config_file") + 1].endswith("params/deepspeed_zero3.json")


def test_sft_on_two_processes_is_sft_on_one(model_dir, tmp_path):
    common = dict(method="full", max_steps=2, warmup_ratio=0.0, dtype="fp32", learning_rate=1e-3)
    one = TrainCfg(per_device_batch_size=2, gradient_accumulation=2, **common)
    # a checkpoint after every step: both ranks must agree to save, or the launch hangs
    two = TrainCfg(per_device_batch_size=2, processes=2, checkpoint_minutes=1e-6, **common)
    runs = {}
    for name, train in (("one", one), ("two", two)):
        out = tmp_path / name
        summary = sft.train_sft(SFTSpecFor(model_dir, demos(8), out, train))
        assert summary["steps"] == 2
        runs[name] = out
    assert losses(runs["one"]) == pytest.approx(losses(runs["two"]), rel=LOSS_RTOL)
    assert torch.allclose(weight(runs["one"]), weight(runs["two"]), atol=WEIGHT_ATOL)
    assert not torch.allclose(weight(runs["two"]), weight(model_dir))  # it trained
    from helpers.infer.models import load_model

    load_model(str(runs["two"]), dtype="fp32")  # the next stage loads it


def SFTSpecFor(model_dir, data, out, train):
    return sft.SFTSpec(model_dir, data, str(out), "Think.", train)


def test_dpo_on_two_processes_is_dpo_on_one(model_dir, tmp_path):
    pairs = dpo_pairs(8)
    common = dict(method="full", max_steps=2, warmup_ratio=0.0, dtype="fp32", learning_rate=1e-4)
    runs = {}
    for name, extra in (
        ("one", dict(per_device_batch_size=2, gradient_accumulation=2)),
        ("two", dict(per_device_batch_size=2, gradient_accumulation=1, processes=2)),
    ):
        spec = dpo.DPOSpec(
            model_dir, pairs, str(tmp_path / name), "Think.", DPOCfg(**common, **extra)
        )
        assert dpo.train_dpo(spec)["steps"] == 2
        runs[name] = tmp_path / name
    assert losses(runs["one"]) == pytest.approx(losses(runs["two"]), rel=LOSS_RTOL)
    assert torch.allclose(weight(runs["one"]), weight(runs["two"]), atol=WEIGHT_ATOL)
