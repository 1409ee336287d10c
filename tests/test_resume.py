"""An interrupted training resumes from its newest checkpoint and ends where the uninterrupted
one ends; checkpoints of other settings are never resumed."""

from __future__ import annotations

import json

import pytest
import torch
from transformers import TrainerCallback

from helpers.pipeline.config import FORCE_ENV
from helpers.pipeline.schema import DPOCfg, TrainCfg
from helpers.train import dpo, resume, sft
from helpers.train.trainer import train, work_dir

from .test_launch import demos, dpo_pairs, losses, weight

# Measured here (full fine-tuning of the small model in fp32, six steps, resumed after three):
# the weights and every logged loss came out equal to the uninterrupted run's.
WEIGHT_ATOL = 1e-7


class Interrupted(Exception):
    """Stands for a stopped session: the training process ends mid-run."""


def interrupting(build, after: int):
    """A trainer builder whose training stops as step `after` + 1 begins."""

    class StopAfter(TrainerCallback):
        def on_step_begin(self, args, state, control, **kwargs):
            if state.global_step == after:
                raise Interrupted

    def make(*args):
        trainer = build(*args)
        trainer.add_callback(StopAfter)
        return trainer

    return make


def train_cfg(**extra) -> TrainCfg:
    # checkpoint_minutes this small saves after every step
    common = dict(method="full", max_steps=6, per_device_batch_size=2, learning_rate=1e-3)
    return TrainCfg(**{**common, "warmup_ratio": 0.0, "dtype": "fp32", **extra})


def test_an_interrupted_sft_resumes_and_ends_as_the_whole_run(model_dir, tmp_path, capfd):
    cfg = train_cfg(checkpoint_minutes=1e-6)
    whole = sft.train_sft(sft.SFTSpec(model_dir, demos(12), str(tmp_path / "a"), "Think.", cfg))
    spec = sft.SFTSpec(model_dir, demos(12), str(tmp_path / "b"), "Think.", cfg)
    with pytest.raises(Interrupted):
        train(spec, interrupting(sft.build_trainer, 3), sft.summary, "helpers.train.sft")
    work = work_dir(tmp_path / "b")
    assert [p.name for p in work.glob("checkpoint-*")] == ["checkpoint-3"]  # one kept
    capfd.readouterr()
    resumed = sft.train_sft(spec)
    assert "resuming training from" in capfd.readouterr().err
    assert resumed["resumed_from_step"] == 3 and whole["resumed_from_step"] is None
    assert resumed["steps"] == whole["steps"] == 6
    assert resumed["tokens"] == whole["tokens"]  # the batches before the checkpoint counted
    assert losses(tmp_path / "b") == losses(tmp_path / "a")
    assert torch.allclose(weight(tmp_path / "b"), weight(tmp_path / "a"), atol=WEIGHT_ATOL)
    assert not work.exists()  # the scratch folder goes once the model is saved


def test_an_interrupted_dpo_resumes(model_dir, tmp_path):
    pairs = dpo_pairs(8)
    cfg = DPOCfg(**{**train_cfg(checkpoint_minutes=1e-6).model_dump(), "max_steps": 4})
    whole = dpo.train_dpo(dpo.DPOSpec(model_dir, pairs, str(tmp_path / "a"), "Think.", cfg))
    spec = dpo.DPOSpec(model_dir, pairs, str(tmp_path / "b"), "Think.", cfg)
    with pytest.raises(Interrupted):
        train(spec, interrupting(dpo.build_trainer, 2), dpo.summary, "helpers.train.dpo")
    resumed = dpo.train_dpo(spec)
    assert resumed["resumed_from_step"] == 2 and resumed["steps"] == whole["steps"] == 4
    assert losses(tmp_path / "b") == pytest.approx(losses(tmp_path / "a"), rel=1e-6)
    assert torch.allclose(weight(tmp_path / "b"), weight(tmp_path / "a"), atol=WEIGHT_ATOL)


def test_checkpoints_of_other_settings_or_a_forced_run_start_afresh(
    model_dir, tmp_path, monkeypatch
):
    cfg = train_cfg(checkpoint_minutes=1e-6)
    spec = sft.SFTSpec(model_dir, demos(12), str(tmp_path / "m"), "Think.", cfg)
    with pytest.raises(Interrupted):
        train(spec, interrupting(sft.build_trainer, 2), sft.summary, "helpers.train.sft")
    work = work_dir(tmp_path / "m")
    assert resume.last_checkpoint(work, spec).name == "checkpoint-2"
    other = sft.SFTSpec(model_dir, demos(12), spec.out_dir, "Think.", train_cfg(learning_rate=2e-3))
    assert resume.last_checkpoint(work, other) is None  # another rate: not this training's
    monkeypatch.setenv(FORCE_ENV, "1")
    resume.prepare(spec, work)
    assert not list(work.glob("checkpoint-*"))
    monkeypatch.delenv(FORCE_ENV)
    with pytest.raises(Interrupted):
        train(spec, interrupting(sft.build_trainer, 2), sft.summary, "helpers.train.sft")
    assert sft.train_sft(other)["resumed_from_step"] is None  # its folder was emptied


def test_a_checkpoint_cut_off_mid_write_is_passed_over(model_dir, tmp_path):
    spec = sft.SFTSpec(model_dir, demos(12), str(tmp_path / "m"), "Think.", train_cfg())
    work = work_dir(tmp_path / "m")
    resume.prepare(spec, work)
    for step, state in ((2, {"global_step": 2}), (4, None)):
        (work / f"checkpoint-{step}").mkdir()
        if state is not None:
            (work / f"checkpoint-{step}" / "trainer_state.json").write_text(json.dumps(state))
    assert resume.last_checkpoint(work, spec).name == "checkpoint-2"


def test_other_starting_weights_are_another_training(model_dir, tmp_path):
    import shutil

    start = tmp_path / "start"
    shutil.copytree(model_dir, start)
    spec = sft.SFTSpec(str(start), demos(12), str(tmp_path / "m"), "Think.", train_cfg())
    work = work_dir(tmp_path / "m")
    resume.prepare(spec, work)
    (work / "checkpoint-2").mkdir()
    (work / "checkpoint-2" / "trainer_state.json").write_text("{}")
    assert resume.last_checkpoint(work, spec).name == "checkpoint-2"
    weights = next(start.glob("*.safetensors"))
    weights.write_bytes(weights.read_bytes())  # an upstream stage wrote its model again
    assert resume.last_checkpoint(work, spec) is None
    assert resume.weights_stamp("smollm2-135m-instruct") is None  # an alias: nothing to stamp
