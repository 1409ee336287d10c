"""Each cleaning rule with a positive and a negative case; unification and the release importer."""

from __future__ import annotations

import pytest

from helpers.grading import filters
from helpers.method.release import import_release
from helpers.method.unify import answers_agree, clean, filter_report
from helpers.pipeline.schema import UnifyCfg

from .conftest import FIXTURES

GOOD = (
    "First I add 12 and 30, which gives 42.\n\nThen I check it by subtracting: 42 - 30 = 12, "
    "so the sum is right.\n\nThe answer is 42."
)


def test_repetition():
    loop = "\n\n".join(["I will add the numbers again to be sure."] * 5)
    assert filters.has_repetition(loop)
    assert not filters.has_repetition(GOOD)


def test_language_mixing():
    assert filters.has_language_mixing(GOOD + " 让我们再检查一下。")
    assert not filters.has_language_mixing(GOOD)


def test_gibberish():
    assert filters.is_gibberish("@@## $$%% ^^&& **(( ))__ ++== " * 5)
    assert filters.is_gibberish("a" * 50 + " " + "b" * 60 + " " + "c" * 45)
    assert not filters.is_gibberish(GOOD)


def test_too_short():
    assert filters.too_short("The answer is 4.", 10)
    assert not filters.too_short(GOOD, 10)


def test_near_duplicates():
    recs = [
        {"problem_id": "p", "t": GOOD},
        {"problem_id": "p", "t": GOOD.upper()},
        {"problem_id": "p", "t": GOOD.replace("right", "correct")},
        {"problem_id": "q", "t": GOOD.replace("right", "correct")},
        {"problem_id": "p", "t": "A completely different way: 30 + 12 makes 42 at once."},
    ]
    exact, near = filters.near_duplicates(recs, "t", 0.8)
    assert exact == {1} and near == {2}


def record(i, response, label="correct", style="r1", question=None):
    return {
        "id": f"r{i}",
        "problem_id": f"p{i}",
        "question": question or f"What is {i} + 1?",
        "response": response,
        "label": label,
        "style": style,
        "teacher": f"t_{style}",
        "domain": "math",
        "group": "normal_math",
        "difficulty": "normal",
        "family": "x",
        "answer_type": "gym",
        "extracted_answer": "42",
    }


def test_clean_applies_each_rule_and_reports_it():
    r1 = f"<think>\n{GOOD}\n</think>\n\nSo \\boxed{{42}}."
    recs = [
        record(0, r1),
        record(1, r1, label="incorrect"),
        record(2, r1.replace("42.", "42. 这一步很重要。")),
        record(3, "<think>\n" + "\n\n".join(["Again the same step."] * 5) + "\n</think>\n\nx"),
        record(4, "<think>\nshort\n</think>\n\n\\boxed{1}"),
        record(5, r1, question="Calculate 68 + 15 + 99 today please now."),
        record(6, GOOD + "\n\nSo the final answer is \\boxed{42}.", style="qwq"),
    ]
    bench = {"b": [{"id": "b0", "question": "Calculate 68 + 15 + 99 today please now."}]}
    kept, rejected = clean(recs, bench, UnifyCfg(min_thought_words=10))
    rules = {r["id"]: r["rule"] for r in rejected}
    assert rules == {
        "r1": "incorrect",
        "r2": "language_mixing",
        "r3": "repetition",
        "r4": "short_thought",
        "r5": "contaminated",
    }
    assert [k["id"] for k in kept] == ["r0", "r6"]
    assert kept[0]["solution"] == "So \\boxed{42}." and kept[1]["solution"] is None
    report = filter_report(recs, rejected, kept)
    assert report["rejected"]["repetition"] == 1 and report["by_teacher"]["t_r1"]["incorrect"] == 1


@pytest.mark.parametrize(
    "solution,ok",
    [
        ("Adding gives \\boxed{42}.", True),
        ("Adding gives \\boxed{41}.", False),
        ("I am not sure.", False),
    ],
)
def test_completed_solution_must_agree_with_thought(solution, ok):
    item = {"thought": GOOD + " So \\boxed{42}.", "answer_type": "gym", "extracted_answer": "42"}
    assert answers_agree(item, solution) is ok


def test_import_release_fixture(tmp_path):
    demos = import_release(FIXTURES / "release.jsonl")
    assert [d["domain"] for d in demos] == ["math", "puzzle"]
    assert demos[0]["group"] == "normal_math" and demos[1]["group"] == "other"
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"question": "q", "combined_text": "no markers", "domain": "math"}\n')
    with pytest.raises(ValueError, match="line 1: combined_text is not in the thought/solution"):
        import_release(bad)


def test_the_release_splits_math_by_thought_length_when_asked(tmp_path):
    from helpers.method.release import import_release

    demos = import_release(FIXTURES / "release.jsonl")
    assert {d["group"] for d in demos if d["domain"] == "math"} <= {"normal_math"}
    words = sorted(d["thought_words"] for d in demos if d["domain"] == "math")
    split = import_release(FIXTURES / "release.jsonl", hard_words=words[-1])
    hard = [d for d in split if d["group"] == "hard_math"]
    assert hard and all(d["thought_words"] >= words[-1] for d in hard)
