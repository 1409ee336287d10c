"""Answer extraction and grading, including the pitfalls users of such graders reported."""

from __future__ import annotations

import re

import pytest
from hypothesis import given
from hypothesis import strategies as st

from helpers.grading.answers import extract_answer, last_boxed, read_choice
from helpers.grading.formatting import format_response
from helpers.grading.grade import grade, math_equal, restates_expression
from helpers.grading.problem import gym_entry
from helpers.grading.verifiers import check_expression


def math_ex(answer):
    return {"answer": answer, "answer_type": "math"}


def mc_ex(letter):
    return {"answer": letter, "answer_type": "choice"}


def test_last_boxed_nested_braces():
    assert last_boxed(r"so \boxed{\frac{1}{2}} and") == r"\frac{1}{2}"
    assert last_boxed(r"\boxed{1} then \boxed{2}") == "2"
    assert last_boxed(r"\boxed{unclosed") is None


@given(st.integers(-(10**6), 10**6))
def test_boxed_integer_round_trip(n):
    resp = format_response("thinking", f"The result is \\boxed{{{n}}}.")
    assert grade(resp, math_ex(str(n))).correct


def test_several_boxed_answers_take_the_last():
    resp = format_response("t", r"First \boxed{3}, corrected: \boxed{5}")
    assert extract_answer(resp) == ("5", "solution")
    assert grade(resp, math_ex("5")).correct and not grade(resp, math_ex("35")).correct


def test_bold_answer():
    resp = format_response("t", "The answer is **73**.")
    assert extract_answer(resp)[0] == "73"
    assert grade(resp, math_ex("73")).correct


def test_fraction_vs_decimal_and_latex_variants():
    assert math_equal("1/2", "0.5")
    assert math_equal(r"\frac{1}{2}", "1/2")
    assert math_equal(r"\dfrac{3}{4}", r"\frac{3}{4}")
    assert not math_equal("1/2", "0.6")


def test_solution_preferred_over_thought():
    resp = format_response(r"maybe \boxed{4}", r"\boxed{5}")
    assert extract_answer(resp) == ("5", "solution")


def test_thought_used_only_without_solution_and_recorded():
    resp = "<|begin_of_thought|>\n\nso \\boxed{7}\n\n<|end_of_thought|>"
    assert extract_answer(resp) == ("7", "thought")


def test_no_answer_at_all():
    assert extract_answer("I am not sure.") == (None, "none")
    assert not grade("I am not sure.", math_ex("1")).correct


@pytest.mark.parametrize("reason", ["length", "loop"])
def test_truncated_counts_wrong_and_is_flagged(reason):
    g = grade(format_response("t", r"\boxed{9}"), math_ex("9"), stop_reason=reason)
    assert not g.correct and g.truncated
    assert not grade(format_response("t", r"\boxed{9}"), math_ex("9"), "end_marker").truncated


@pytest.mark.parametrize(
    "resp,letter",
    [
        (format_response("t", r"\boxed{C}"), "C"),
        (format_response("t", r"\boxed{(b)}"), "B"),
        (format_response("t", r"\boxed{\text{D}}"), "D"),
        ("The answer is (C).", "C"),
        ("Answer: d", "D"),
        ("Let me see.\n\nB", "B"),
    ],
)
def test_choice_explicit_letters(resp, letter):
    assert read_choice(resp).answer == letter


@pytest.mark.parametrize(
    "resp",
    [
        "Alright, let me think about Alice and Bob.",
        "A knight always tells the truth. I think so.",
        "Both options A and B look plausible but I cannot decide.",
    ],
)
def test_choice_never_a_stray_capital(resp):
    assert read_choice(resp).answer is None
    assert not grade(resp, mc_ex("A")).correct


def test_gym_verifier_accepts_any_valid_countdown_expression():
    from helpers.pipeline.schema import BenchmarkCfg
    from helpers.world.tasks import build_benchmark

    ex = next(
        r
        for r in build_benchmark("h", BenchmarkCfg(kind="hard", size=3))
        if r["family"] == "countdown"
    )
    assert grade(format_response("t", f"\\boxed{{{ex['answer']}}}"), ex).correct
    assert not grade(format_response("t", r"\boxed{1+1}"), ex).correct


def test_expression_tasks_reject_the_bare_target_number():
    # The gold is an expression that evaluates to the target; math equivalence would accept
    # the target itself, which is no solution at all.
    from helpers.pipeline.schema import BenchmarkCfg
    from helpers.world.tasks import build_benchmark

    exs = build_benchmark("h", BenchmarkCfg(kind="hard", size=9))
    for ex in [r for r in exs if r["family"] == "countdown"][:3]:
        meta = gym_entry(ex)["metadata"]
        target = str(check_expression(ex["answer"], meta["numbers"], 24).value)  # gold's value
        assert grade(format_response("t", f"\\boxed{{{ex['answer']}}}"), ex).correct
        assert not grade(format_response("t", f"\\boxed{{{target}}}"), ex).correct
    chain = next(r for r in exs if r["family"] == "long_chain")
    # numeric gym tasks still accept an equivalent form of the number
    assert grade(format_response("t", f"\\boxed{{{chain['answer']}.0}}"), chain).correct


def test_restating_the_question_is_not_an_answer():
    # math-verify would evaluate "26 + 19 - 57" and call it equal to the gold -12; the model
    # computed nothing. Seen in a tiny run: an SFT model boxed the question's own chain.
    from helpers.pipeline.schema import BenchmarkCfg
    from helpers.world.tasks import build_benchmark

    exs = build_benchmark("h", BenchmarkCfg(kind="hard", size=9))
    chain = next(r for r in exs if r["family"] == "long_chain")
    expr = re.search(r"(-?\d[\d\s+\-*/().]*\d)", chain["question"]).group(1).strip()
    assert sum(int(t) for t in re.findall(r"[-+]?\s*\d+", expr.replace(" ", ""))) == int(
        chain["answer"]
    )  # it is the question's sum
    assert not grade(format_response("t", f"\\boxed{{{expr}}}"), chain).correct
    assert grade(format_response("t", f"\\boxed{{{chain['answer']}}}"), chain).correct
    assert restates_expression("-12", "26 + 19 - 57") and not restates_expression("1/2", "1/2")
    assert not restates_expression("0.5", "1/2") and restates_expression("12", "3 \\times 4")


def test_regrade_rewrites_verdicts_from_stored_responses(tmp_path):
    import json

    from helpers.method.evaluation import regrade, summarize

    ex = {"id": "q1", "question": "What is 2 + 3?", "answer": "5", "answer_type": "math"}
    rec = {
        "id": "q1",
        "response": format_response("t", "\\boxed{2 + 3}"),
        "stop_reason": "end_marker",
        "tokens": 9,
        "correct": True,  # as a grader that evaluated the expression would have said
        "truncated": False,
        "well_formed": True,
    }
    (tmp_path / "b.jsonl").write_text(json.dumps(rec) + "\n")
    (tmp_path / "summary.json").write_text(json.dumps({"benchmarks": {"b": summarize([rec])}}))
    out = regrade(tmp_path, {"b": [ex]})
    assert out["regraded"]["changed_verdicts"] == {"b": 1}
    assert out["benchmarks"]["b"]["accuracy"] == 0.0
    stored = json.loads((tmp_path / "b.jsonl").read_text())
    assert stored["correct"] is False and stored["reason"] == "uncomputed expression"
    rec.update(response=format_response("t", "\\boxed{5}"), correct=False)
    (tmp_path / "b.jsonl").write_text(json.dumps(rec) + "\n")
    out = regrade(tmp_path, {"b": [ex]})
    assert out["regraded"]["changed_verdicts"] == {"b": 1}
    assert out["benchmarks"]["b"]["accuracy"] == 100.0
