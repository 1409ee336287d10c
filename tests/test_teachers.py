"""Embedded teachers: they really work problems, in two shapes, with seeded wording and defects."""

from __future__ import annotations

import re
from fractions import Fraction

import pytest

from helpers.grading.formatting import format_response, split_r1
from helpers.grading.grade import grade
from helpers.pipeline.schema import DefectRates
from helpers.world.solvers import SLIP_NOTE
from helpers.world.tasks import POOL_FAMILIES, POOL_SEED_BASE, build_embedded
from helpers.world.teachers import respond

OP_RE = re.compile(r"(-?\d+(?:/\d+)?) ([-+*/]) (-?\d+(?:/\d+)?) = (-?\d+(?:/\d+)?)")


def problems(group, n=24):
    return build_embedded(
        POOL_FAMILIES[group], n, POOL_SEED_BASE, group, f"t-{group}", mixed_choice=True
    )


def _holds(a, op, b, c):
    a, b, c = Fraction(a), Fraction(b), Fraction(c)
    return {"+": a + b, "-": a - b, "*": a * b, "/": a / b if b else None}[op] == c


@pytest.mark.parametrize("group", ["normal_math", "hard_math"])
def test_every_stated_step_is_correct_unless_a_marked_slip(group):
    checked = slips = 0
    for p in problems(group):
        for seed in range(4):
            text = respond(p, "r1", DefectRates(), seed, slip_rate=0.5)["text"]
            for sentence_start in [m.start() for m in OP_RE.finditer(text)]:
                m = OP_RE.match(text, sentence_start)
                checked += 1
                if not _holds(*m.groups()):
                    # a wrong step must be followed at once by the slip note and a repair
                    after = text[m.end() : m.end() + 80]
                    assert after.startswith(". " + SLIP_NOTE), (p["id"], m.group(0), after)
                    slips += 1
    assert checked > 50 and slips > 0


@pytest.mark.parametrize("group", ["normal_math", "hard_math", "other"])
def test_clean_responses_are_correct_in_both_shapes(group):
    for p in problems(group, 12):
        r1 = respond(p, "r1", DefectRates(), 1)["text"]
        thought, solution = split_r1(r1)
        assert grade(format_response(thought, solution), p).correct
        qwq = respond(p, "qwq", DefectRates(), 1)["text"]
        assert "<think>" not in qwq and "<|begin_of_solution|>" not in qwq
        assert grade(qwq, p).correct


def test_hard_thoughts_are_longer_and_search_guesses_and_checks():
    def mean_words(group):
        texts = [respond(p, "r1", DefectRates(), 2)["text"] for p in problems(group)]
        return sum(len(t.split()) for t in texts) / len(texts)

    assert mean_words("hard_math") > 1.4 * mean_words("normal_math")
    search = [p for p in problems("hard_math") if p["family"] in ("countdown", "puzzle24")]
    outs = [respond(p, "r1", DefectRates(), s) for p in search for s in range(3)]
    for o in outs:
        thought, _ = split_r1(o["text"])
        misses = re.findall(r"Try (.+?): .+?\. (\S+) is not (\d+)\.", thought)
        assert 2 <= len(misses) == o["tries"] <= 4  # wrong guesses, each computed and rejected
        assert "is the target!" in thought
    # different rollouts of one problem guess differently
    assert len({respond(search[0], "r1", DefectRates(), s)["text"] for s in range(3)}) == 3


def test_expression_steps_restate_what_is_left_until_one_number():
    chains = [p for p in problems("normal_math", 36) if p["family"] == "arithmetic"] + [
        p for p in problems("hard_math", 12) if p["family"] == "long_chain"
    ]
    assert len(chains) >= 8
    for p in chains:
        thought, _ = split_r1(respond(p, "r1", DefectRates(), 3, slip_rate=0.0)["text"])
        states = re.findall(r"so the expression is now (.+?)\.(?:\n|$)", thought)
        assert states, p["id"]
        # each restated expression keeps the value; the last one is the answer alone
        for st in states:
            exact = re.sub(r"\d+", lambda m: f"Fraction({m.group()})", st)
            assert eval(exact) == Fraction(p["answer"]), (p["id"], st)
        assert states[-1] == p["answer"] and all(re.search(r"[-+*/] ", s) for s in states[:-1])


def test_euclid_steps_name_their_remainder_and_stop_at_zero():
    fams = {"gcd", "lcm", "fractions"}
    seen = set()
    for p in problems("normal_math", 36):
        if p["family"] not in fams:
            continue
        seen.add(p["family"])
        thought, _ = split_r1(respond(p, "r1", DefectRates(), 3)["text"])
        lines = re.findall(r"(\d+) = (\d+)\*(\d+) \+ (\d+)\. The remainder is (\d+), (.+)", thought)
        assert lines, p["id"]
        for a, q, b, r, said, then in lines:
            assert int(a) == int(q) * int(b) + int(r) and r == said
            assert (
                then.startswith("so gcd(") if r == "0" else then == f"so next I divide {b} by {r}."
            )
    assert seen == fams


def test_wording_varies_with_seed():
    p = problems("normal_math")[0]
    texts = {respond(p, "qwq", DefectRates(), s)["text"] for s in range(6)}
    assert len(texts) >= 3


@pytest.mark.parametrize(
    "defect", ["wrong_answer", "repetition", "language_mixing", "truncation", "short_thought"]
)
def test_each_defect_shows(defect):
    p = problems("normal_math")[2]
    clean = respond(p, "r1", DefectRates(), 5)["text"]
    r = respond(p, "r1", DefectRates(**{defect: 1.0}), 5)
    assert r["defects"] == [defect]
    text = r["text"]
    if defect == "wrong_answer":
        assert not grade(format_response(*split_r1(text)), p).correct
    elif defect == "repetition":
        paras = [x for x in text.split("\n\n") if x]
        assert max(paras.count(x) for x in paras) >= 6
    elif defect == "language_mixing":
        assert re.search(r"[\u4e00-\u9fff]", text)
    elif defect == "truncation":
        assert len(text) < len(clean) and "\\boxed" not in text[-40:]
    else:
        assert len(split_r1(text)[0].split("\n\n")) == 1
