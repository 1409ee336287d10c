"""The warm-up's data (helpers.world.warmup_data) and its stage helpers (helpers.method.warmup):
the kinds in the profile's shares, arithmetic that is right, the instruction only where
evaluation asks with it, no benchmark problem, and the same rows for the same seed."""

from __future__ import annotations

import re
from collections import Counter

import pytest

from helpers.grading.verifiers import expression_value
from helpers.method.warmup import example_kinds
from helpers.pipeline.schema import WarmupCfg
from helpers.world.warmup_data import step_facts, warmup_rows

CFG = WarmupCfg(examples=200, steps_share=0.5, facts_share=0.1)


def kind(row):
    return row["id"].split("-")[1] if row["id"].startswith("warmup-") else "answer"


def test_rows_come_in_the_profiles_shares():
    rows = warmup_rows(CFG, 0, [])
    counts = Counter(kind(r) for r in rows)
    assert counts["step"] == 100 and counts["legs"] == 20
    assert counts["answer"] == 80  # the rest: normal problems (none overlaps an empty reference)
    assert len({r["id"] for r in rows}) == len(rows)


def test_every_atomic_step_is_right():
    for r in warmup_rows(CFG, 0, []):
        if kind(r) != "step":
            continue
        a, op, b = re.fullmatch(r"What is (-?\d+) ([-+*]) \(?(-?\d+)\)?\?", r["question"]).groups()
        x, y = int(a), int(b)
        want = x + y if op == "+" else x - y if op == "-" else x * y
        assert r["combined_text"].endswith(f"= {want}.")


def test_step_facts_leave_out_slips_and_checks():
    thought = "7 + 4 = 11, leaving 11 and 2.\n\nCheck: 11 + 2 = 14.\n\n11 + 2 = 13."
    assert step_facts(thought) == [(7, "+", 4, 11), (11, "+", 2, 13)]
    assert step_facts("3 * 4 = 13.") == []  # wrong arithmetic is no fact


def test_answers_carry_the_instruction_only_when_asked():
    plain = warmup_rows(CFG, 0, [])
    asked = warmup_rows(CFG.model_copy(update={"instruction": True}), 0, [], "Think first.")
    assert not any("prompt" in r for r in plain)
    assert {kind(r) for r in asked if r.get("prompt") == "Think first."} == {"answer"}
    assert all(r["combined_text"].startswith("\\boxed{") for r in asked if kind(r) == "answer")


def test_no_benchmark_problem_is_a_warmup_problem():
    rows = warmup_rows(CFG, 0, [])
    answers = [r for r in rows if kind(r) == "answer"]
    refs = [{"id": "bench-0", "question": answers[0]["question"]}]
    again = warmup_rows(CFG, 0, refs)
    assert answers[0]["question"] not in {r["question"] for r in again}


@pytest.mark.parametrize("seed", [0, 1])
def test_the_same_seed_gives_the_same_rows(seed):
    assert warmup_rows(CFG, seed, []) == warmup_rows(CFG, seed, [])


def test_another_seed_gives_other_problems():
    q0 = {r["question"] for r in warmup_rows(CFG, 0, []) if kind(r) == "answer"}
    q1 = {r["question"] for r in warmup_rows(CFG, 1, []) if kind(r) == "answer"}
    assert len(q0 & q1) < len(q0) // 2


def test_the_notebooks_table_has_one_row_per_kind():
    table = example_kinds(warmup_rows(CFG, 0, []))
    assert sorted(table["kind"]) == ["animal fact", "atomic step", "normal answer"]
    assert table["examples"].sum() == 200


def test_line_answers_compute_in_one_line_and_box_the_gold():
    rows = warmup_rows(CFG.model_copy(update={"answers": "line"}), 0, [])
    answers = [r["combined_text"] for r in rows if kind(r) == "answer"]
    legs = 0
    for text in answers:
        # "[x = ]<expression> = <value>. \boxed{<value>}": one calculation, its value boxed
        m = re.fullmatch(r"(?:[a-z] = )?([-+*() \d]+) = (-?\d+)\. \\boxed\{(-?\d+)\}", text)
        assert m and m.group(2) == m.group(3), text
        assert expression_value(m.group(1)) == int(m.group(2)), text
        legs += bool(re.fullmatch(r"\d \* \d+ \+ \d \* \d+", m.group(1)))
    assert len(answers) > 20 and legs > 5
    # the other rows are the same as with boxed answers
    boxed = warmup_rows(CFG, 0, [])
    assert [r["id"] for r in rows] == [r["id"] for r in boxed]
    assert [r for r in rows if kind(r) != "answer"] == [r for r in boxed if kind(r) != "answer"]
