"""DPO: pairs from a hand-made pool, and what thought-only alignment really trains on."""

from __future__ import annotations

import pytest

from helpers.grading.formatting import BEGIN_SOLUTION, END_SOLUTION, END_THOUGHT, format_response
from helpers.method.pairs import pair_candidates, pair_rows
from helpers.pipeline.schema import DPOCfg
from helpers.train.dpo import DPOSpec, build_trainer, take_pairs, turn_end


def trained_text(trainer, row=0):
    """Decode what DPO trains on for one pair: (chosen completion, rejected completion)."""
    ex = trainer.train_dataset[row]
    dec = trainer.processing_class.decode
    return dec(ex["chosen_ids"]), dec(ex["rejected_ids"])


def traj(pid, i, correct, well_formed=True):
    resp = format_response(f"thinking {pid} {i}", f"so \\boxed{{{i}}}")
    return {
        "id": f"{pid}:a{i}",
        "problem_id": pid,
        "question": f"problem {pid}?",
        "response": resp if well_formed else resp.replace(END_THOUGHT, ""),
        "correct": correct,
        "well_formed": well_formed,
    }


def test_pairs_follow_the_papers_rule():
    pool = [
        traj("p1", 1, False),
        traj("p1", 2, False),
        traj("p1", 3, True),
        traj("p1", 4, True),
        traj("p2", 1, True),  # no incorrect trajectory: no pair
        traj("p3", 1, False),  # never solved: no pair
        traj("p4", 1, False, well_formed=False),  # only a malformed incorrect one: no pair
        traj("p4", 2, True),
    ]
    ppl = {r["id"]: p for r, p in zip(pool, [3.0, 1.5, 2.0, 4.0, 1.0, 2.0, 1.0, 2.0], strict=True)}
    rows = {r["problem_id"]: r for r in pair_rows(pool, ppl)}
    p1 = rows["p1"]
    # chosen: the correct one with the HIGHER perplexity; rejected: the incorrect with the LOWER
    assert p1["chosen_id"] == "p1:a4" and p1["rejected_id"] == "p1:a2"
    assert (p1["chosen_perplexity"], p1["rejected_perplexity"]) == (4.0, 1.5)
    assert "highest-perplexity correct of 2 against lowest-perplexity incorrect of 2" in p1["why"]
    assert rows["p2"]["why"] == "no well-formed incorrect one" and "chosen_id" not in rows["p2"]
    assert rows["p3"]["why"] == "no well-formed correct one"
    assert rows["p4"]["why"] == "no well-formed incorrect one"
    assert len(take_pairs(list(rows.values()), None, 0)) == 1
    assert take_pairs(list(rows.values()), 0, 0) == []


def test_only_pair_candidates_are_scored():
    pool = [
        traj("p1", 1, False),
        traj("p1", 2, True),
        traj("p1", 3, False, well_formed=False),
        traj("p2", 1, True),  # solved at the first try
        traj("p3", 1, False),  # never solved
        traj("p3", 2, False),
        traj("p4", 1, False, well_formed=False),
        traj("p4", 2, True),
    ]
    assert pair_candidates(pool) == {"p1:a1", "p1:a2"}
    # the candidates' scores are all a pair needs; the other rows still say why they have none
    rows = {r["problem_id"]: r for r in pair_rows(pool, {"p1:a1": 1.0, "p1:a2": 2.0})}
    assert (rows["p1"]["chosen_id"], rows["p1"]["rejected_id"]) == ("p1:a2", "p1:a1")
    assert rows["p2"]["why"] == "no well-formed incorrect one"
    assert rows["p3"]["why"] == "no well-formed correct one"
    assert rows["p4"]["why"] == "no well-formed incorrect one"
    with pytest.raises(KeyError, match="p1 were not scored"):
        pair_rows(pool, {"p1:a2": 2.0})


def test_ties_are_broken_by_id_and_said():
    pool = [traj("p", 1, True), traj("p", 2, True), traj("p", 3, False)]
    (row,) = pair_rows(pool, {"p:a1": 2.0, "p:a2": 2.0, "p:a3": 1.0})
    assert row["chosen_id"] == "p:a2" and "a tie" in row["why"]


def spec(tmp_path, align, sft_loss=False):
    pairs = [
        {
            "problem_id": "p",
            "question": "What is 2 + 3?",
            "chosen": format_response("2 + 3 = 5, checked.", "\\boxed{5}"),
            "rejected": format_response("2 + 3 = 6.", "\\boxed{6}"),
        }
    ]
    train = DPOCfg(method="lora", per_device_batch_size=1, max_steps=1, warmup_ratio=0.0)
    return DPOSpec("m", pairs, str(tmp_path / "out"), "Think first.", train, align, sft_loss)


def test_thought_only_trains_on_no_solution_token(small_model, tmp_path):
    model, tok = small_model
    trainer = build_trainer(spec(tmp_path, "thought"), model, tok, tmp_path / "w", False, False)
    chosen, rejected = trained_text(trainer)
    assert chosen.endswith(END_THOUGHT) and rejected.endswith(END_THOUGHT)
    assert "2 + 3 = 5, checked." in chosen and "2 + 3 = 6." in rejected
    for text in (chosen, rejected):
        assert BEGIN_SOLUTION not in text and "boxed" not in text
        assert tok.eos_token not in text and "<|im_end|>" not in text
    # and in the batch TRL's collator builds, the loss-bearing tokens end at the thought
    batch = trainer.data_collator([trainer.train_dataset[0]])
    ids, mask = batch["input_ids"], batch["completion_mask"]
    for row in range(ids.shape[0]):
        trained = tok.decode(ids[row][mask[row].bool()])
        assert trained.endswith(END_THOUGHT) and BEGIN_SOLUTION not in trained
    assert "What is 2 + 3?" in tok.decode(ids[0]) and "What is 2 + 3?" not in chosen


def test_whole_response_ends_with_the_turn_end(small_model, tmp_path):
    model, tok = small_model
    trainer = build_trainer(
        spec(tmp_path, "thought_solution"), model, tok, tmp_path / "w", False, False
    )
    chosen, _ = trained_text(trainer)
    assert chosen.endswith(END_SOLUTION + turn_end(tok)) and BEGIN_SOLUTION in chosen
    assert turn_end(tok) == "<|im_end|>\n"


def test_a_dpo_step_with_the_sft_term_runs_and_logs_a_margin(small_model, tmp_path):
    model, tok = small_model
    s = spec(tmp_path, "thought", sft_loss=True)
    trainer = build_trainer(s, model, tok, tmp_path / "w", False, False)
    assert trainer.loss_types == ["sigmoid", "sft"] and trainer.loss_weights == [1.0, 1.0]
    assert "ref_chosen_logps" in trainer.train_dataset.column_names  # computed once, up front
    result = trainer.train()
    assert result.training_loss > 0
    assert any("rewards/margins" in h for h in trainer.state.log_history)
    assert trainer.token_counts["train"] > 0
