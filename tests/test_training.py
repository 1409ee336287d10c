"""SFT data: which tokens the loss sees, for whole responses and for the QwQ completer."""

from __future__ import annotations

import json

import pytest

from helpers.grading.formatting import (
    BEGIN_SOLUTION,
    BEGIN_THOUGHT,
    END_SOLUTION,
    END_THOUGHT,
    format_response,
)
from helpers.method.unify import complete_thoughts, completer_demos
from helpers.pipeline.config import load_profile, with_overrides
from helpers.pipeline.schema import TrainCfg
from helpers.train.sft import SFTSpec, build_trainer, spec_key

THOUGHT = "First I add 2 and 3 to get 5. Checking: 5 - 3 = 2, so the sum holds."
SOLUTION = "2 + 3 = 5, so the answer is \\boxed{5}."


def demo(i, group="normal_math"):
    return {
        "id": f"d{i}",
        "question": f"What is 2 + 3? (case {i})",
        "combined_text": format_response(f"{THOUGHT} Case {i}.", SOLUTION),
        "group": group,
    }


def trained_text(trainer, row=0):
    """Decode the tokens of one training example that carry loss."""
    ex = trainer.train_dataset[row]
    if "labels" in ex:  # TRL marks tokens without loss with -100
        ids = [t for t in ex["labels"] if t != -100]
    else:
        ids = [t for t, m in zip(ex["input_ids"], ex["completion_mask"], strict=True) if m]
    return trainer.processing_class.decode(ids)


def two_demo_spec(tmp_path, target="response", **train) -> SFTSpec:
    """A spec that trains the backbone on two demonstrations."""
    return SFTSpec(
        model="smollm2-135m-instruct",
        data=[demo(0), demo(1)],
        out_dir=str(tmp_path / "m"),
        prompt="Think first, then answer.",
        train=TrainCfg(**train),
        target=target,
    )


@pytest.fixture
def make_trainer(backbone, tmp_path):
    model, tok = backbone

    def make(target):
        # Full fine-tuning: a LoRA config would wrap the session's shared model in place.
        spec = two_demo_spec(tmp_path, method="full", target=target)
        return build_trainer(spec, model, tok, tmp_path / "work")

    return make


def test_response_training_keeps_the_thought_and_masks_the_prompt(make_trainer):
    text = trained_text(make_trainer("response"))
    for part in (BEGIN_THOUGHT, THOUGHT, END_THOUGHT, BEGIN_SOLUTION, SOLUTION, END_SOLUTION):
        assert part in text
    assert "What is 2 + 3?" not in text and "Think first" not in text


def test_completer_training_learns_the_solution_only(make_trainer):
    trainer = make_trainer("solution")
    text = trained_text(trainer)
    assert SOLUTION in text and END_SOLUTION in text
    assert THOUGHT not in text and BEGIN_THOUGHT not in text and "What is" not in text
    whole = trainer.processing_class.decode(trainer.train_dataset[0]["input_ids"])
    assert THOUGHT in whole and "What is 2 + 3?" in whole  # both are in its prompt


def test_spec_key_changes_with_settings_not_data():
    a = SFTSpec(model="m", data=[demo(0)], out_dir="x", prompt="p")
    b = SFTSpec(model="m", data=[demo(1), demo(2)], out_dir="y", prompt="p")
    c = SFTSpec(model="m", data=[demo(0)], out_dir="x", prompt="p", train=TrainCfg(learning_rate=1))
    assert spec_key(a) == spec_key(b) != spec_key(c)
    assert SFTSpec.from_json(json.loads(json.dumps(c.to_json()))) == c


def test_completer_demos_take_every_group_in_turn():
    demos = [demo(i) for i in range(5)] + [demo(9, "hard_math"), demo(8, "other")]
    picked = completer_demos(demos, 4)
    assert {d["group"] for d in picked} == {"normal_math", "hard_math", "other"}
    assert len(picked) == 4


def test_completer_without_r1_demos_says_what_to_do(tmp_path):
    prof = with_overrides(load_profile("params/smoke.yaml"), unify={})
    item = {"id": "x", "thought": THOUGHT, "question": "q", "answer_type": "math"}
    with pytest.raises(ValueError, match="no R1-style response passed the rules"):
        complete_thoughts(prof, [item], [], tmp_path / "c", "p", prof.backbone)
    assert complete_thoughts(prof, [], [], tmp_path / "c", "p", prof.backbone) == ([], [], {})


def test_the_runner_sees_training_steps_as_a_text_bar(make_trainer, monkeypatch):
    from transformers.trainer_callback import ProgressCallback
    from transformers.utils.notebook import NotebookProgressCallback

    from helpers.pipeline.config import SECTIONS_ENV
    from helpers.train.trainer import text_progress

    def kinds(trainer):
        return [type(c) for c in trainer.callback_handler.callbacks]

    trainer = make_trainer("response")
    # what a kernel gets by hand: the HTML bar, which never reaches the runner's streams
    trainer.remove_callback(ProgressCallback)
    trainer.add_callback(NotebookProgressCallback)
    monkeypatch.delenv(SECTIONS_ENV, raising=False)
    text_progress(trainer)
    assert NotebookProgressCallback in kinds(trainer) and ProgressCallback not in kinds(trainer)
    monkeypatch.setenv(SECTIONS_ENV, "sft")
    text_progress(trainer)
    text_progress(trainer)
    assert NotebookProgressCallback not in kinds(trainer)
    bars = [k for k in kinds(trainer) if issubclass(k, ProgressCallback)]
    assert len(bars) == 1 and bars[0] is not ProgressCallback  # the labelled bar, once


def test_a_run_no_longer_than_its_warmup_is_refused(backbone, tmp_path):
    from helpers.train.trainer import check_schedule

    model, tok = backbone

    def trainer(**train):
        spec = two_demo_spec(tmp_path, method="full", per_device_batch_size=1, **train)
        return build_trainer(spec, model, tok, tmp_path / "work")

    # one step with warmup: it would run at learning rate 0 and train nothing
    with pytest.raises(ValueError, match=r"1 optimizer step.*1 warmup step.*trains nothing"):
        check_schedule(trainer(max_steps=1, warmup_ratio=0.1, lr_scheduler="cosine"))
    assert check_schedule(trainer(max_steps=1, warmup_ratio=0.0, lr_scheduler="cosine")) == 1
    assert check_schedule(trainer(max_steps=1, warmup_ratio=0.1, lr_scheduler="constant")) == 1
    # two demonstrations, one per step, two epochs: 4 steps, 1 of them warmup
    assert check_schedule(trainer(epochs=2, warmup_ratio=0.1, lr_scheduler="linear")) == 4
