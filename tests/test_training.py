"""SFT data: which tokens the loss sees, for whole responses and for the QwQ completer."""

from __future__ import annotations

import pytest

from helpers.config import load_profile, with_overrides
from helpers.formatting import (
    BEGIN_SOLUTION,
    BEGIN_THOUGHT,
    END_SOLUTION,
    END_THOUGHT,
    format_response,
)
from helpers.training import SFTSpec, add_marker_tokens, build_trainer, spec_key
from helpers.unify import complete_thoughts, completer_demos

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


def two_demo_spec(tmp_path, **settings) -> SFTSpec:
    """A spec that trains the backbone on two demonstrations."""
    return SFTSpec(
        model="smollm2-135m-instruct",
        data=[demo(0), demo(1)],
        out_dir=str(tmp_path / "m"),
        prompt="Think first, then answer.",
        **settings,
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
    c = SFTSpec(model="m", data=[demo(0)], out_dir="x", prompt="p", learning_rate=1.0)
    assert spec_key(a) == spec_key(b) != spec_key(c)


def test_completer_demos_take_every_group_in_turn():
    demos = [demo(i) for i in range(5)] + [demo(9, "hard_math"), demo(8, "other")]
    picked = completer_demos(demos, 4)
    assert {d["group"] for d in picked} == {"normal_math", "hard_math", "other"}
    assert len(picked) == 4


def test_completer_without_r1_demos_says_what_to_do(tmp_path):
    prof = with_overrides(load_profile("params/smoke.yaml"), unify={})
    item = {"id": "x", "thought": THOUGHT, "question": "q", "answer_type": "math"}
    with pytest.raises(ValueError, match="no R1-style response passed the rules"):
        complete_thoughts(prof, [item], [], tmp_path / "c", "p")
    assert complete_thoughts(prof, [], [], tmp_path / "c", "p") == ([], [], {})


@pytest.fixture
def small_model():
    """A randomly initialised two-layer model with the backbone's vocabulary (fast to resize)."""
    import torch
    from transformers import AutoConfig, AutoModelForCausalLM

    from helpers.models import load_tokenizer, resolve_model_path

    cfg = AutoConfig.from_pretrained(resolve_model_path("smollm2-135m-instruct"))
    cfg.num_hidden_layers, cfg.hidden_size, cfg.intermediate_size = 2, 64, 128
    cfg.num_attention_heads, cfg.num_key_value_heads = 4, 2
    cfg.head_dim = 16
    torch.manual_seed(0)
    return AutoModelForCausalLM.from_config(cfg), load_tokenizer("smollm2-135m-instruct")


def test_marker_tokens_are_single_tokens_that_decode_back(small_model):
    model, tok = small_model
    piece = tok(END_THOUGHT, add_special_tokens=False).input_ids
    mean = model.get_input_embeddings().weight[piece].mean(0).detach().clone()
    ids = add_marker_tokens(model, tok)
    assert len(set(ids)) == 4 and len(tok) == model.get_input_embeddings().weight.shape[0]
    text = format_response(THOUGHT, SOLUTION)
    enc = tok(text, add_special_tokens=False).input_ids
    assert [i for i in enc if i in ids] == ids  # each marker once, in order, one token each
    assert tok.decode(enc) == text
    emb = model.get_input_embeddings().weight
    assert (emb[ids[1]] - mean).abs().max() < 1e-6
    assert model.get_output_embeddings().weight.data_ptr() == emb.data_ptr()  # still tied
    assert add_marker_tokens(model, tok) == ids and len(tok) == emb.shape[0]  # idempotent
    assert (model.get_input_embeddings().weight[ids[1]] - mean).abs().max() < 1e-6


def test_marker_tokens_use_spare_embedding_rows(small_model):
    model, tok = small_model  # padded like Qwen's: rows past the vocabulary, never trained
    model.resize_token_embeddings(len(tok) + 64, mean_resizing=False)
    rows = model.get_input_embeddings().weight.shape[0]
    piece = tok(BEGIN_SOLUTION, add_special_tokens=False).input_ids
    assert len(piece) > 1
    ids = add_marker_tokens(model, tok)
    emb = model.get_input_embeddings().weight
    assert emb.shape[0] == rows and max(ids) < rows
    assert (emb[ids[2]] - emb[piece].mean(0)).abs().max() < 1e-6


def test_lora_with_marker_tokens_trains_a_step(small_model, tmp_path):
    model, tok = small_model
    spec = two_demo_spec(
        tmp_path,
        method="lora",
        marker_tokens=True,
        per_device_batch_size=2,
        max_steps=1,
        warmup_ratio=0.0,
        learning_rate=1e-2,
    )
    trainer = build_trainer(spec, model, tok, tmp_path / "work")
    ids = tok.convert_tokens_to_ids([BEGIN_THOUGHT, END_THOUGHT, BEGIN_SOLUTION, END_SOLUTION])
    assert all(i in trainer.train_dataset[0]["input_ids"] for i in ids)
    assert BEGIN_THOUGHT in trained_text(trainer) and END_SOLUTION in trained_text(trainer)
    emb = trainer.model.get_input_embeddings().weight
    before = emb.detach().clone()
    assert trainer.train().training_loss > 0  # TRL's fused loss runs on the resized model
    moved = (emb.detach() - before).abs().amax(dim=1).nonzero().flatten().tolist()
    assert moved == sorted(ids)  # the marker rows learn; no other row of the embedding moves


def test_marker_tokens_with_lora_refuse_weight_decay(small_model, tmp_path):
    model, tok = small_model
    spec = two_demo_spec(tmp_path, method="lora", marker_tokens=True, weight_decay=0.1)
    with pytest.raises(ValueError, match=r"needs sft\.weight_decay 0"):
        build_trainer(spec, model, tok, tmp_path / "work")
