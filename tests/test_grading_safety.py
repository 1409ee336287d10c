"""The grader as an adversary meets it: injected code, exponent bombs, wrong numbers, odd forms."""

from __future__ import annotations

import builtins
import json
import time
from fractions import Fraction

import pytest
from hypothesis import given
from hypothesis import strategies as st

from helpers.grading.answers import boxed_spans, read_choice
from helpers.grading.formatting import format_response
from helpers.grading.grade import GYM_CHECKS, grade
from helpers.grading.problem import gym_dataset, gym_entry
from helpers.grading.verifiers import check_expression
from helpers.method.release import RELEASE_DOMAINS, import_release
from helpers.pipeline.schema import BenchmarkCfg
from helpers.world.tasks import FAMILIES, build_benchmark, make_example

from .conftest import FIXTURES

ATTACKS = [
    "__import__('os').system('touch {sentinel}')",
    "open('{sentinel}', 'w').write('x')",
    "(lambda: __import__('os').system('touch {sentinel}'))()",
    "9**9**9",
    "9^{9^{9}}",
    "10^{10^{10}}",
    "2^{999999999}",
    "(10**10**10)/(10**10**10)",
    "100000000!",
    "\\binom{100000000}{50000000}",
]


def _examples():
    """One problem of every answer type and every gym check the project uses."""
    exs = {}
    for kind, size in (("hard", 9), ("normal", 12), ("other", 6)):
        for ex in build_benchmark(kind, BenchmarkCfg(kind=kind, size=size)):
            exs.setdefault(ex["family"], ex)
    # choice-capable families also appear in open form in the training pools
    for fam in ("knights_knaves", "family", "siblings", "syllogism"):
        exs[f"{fam}_open"] = make_example(fam, 5, 4, 0, "other", f"t-{fam}", as_choice=False)
    exs["math"] = {"id": "m", "answer": "\\frac{1}{2}", "answer_type": "math"}
    return exs


EXAMPLES = _examples()


def test_every_gym_dataset_has_a_check():
    assert {f.dataset for f in FAMILIES.values()} <= set(GYM_CHECKS)
    with pytest.raises(ValueError, match="no check for reasoning-gym dataset 'mystery'"):
        grade("x", {"id": "q", "answer_type": "gym", "answer": "1", "gym": {"dataset": "mystery"}})


@pytest.mark.parametrize("name", sorted(EXAMPLES))
def test_injected_code_and_bombs_are_wrong_fast_and_never_run(name, tmp_path, monkeypatch):
    import math_verify.parser
    import sympy.parsing.sympy_parser

    ex = EXAMPLES[name]
    grade(format_response("t", "\\boxed{1/2}"), ex)  # imports and grammars load before the trap
    called = []

    def trap(label):
        def f(*args, **kwargs):
            called.append(label)
            raise AssertionError(f"{label} called on model output")

        return f

    monkeypatch.setattr(builtins, "eval", trap("eval"))
    monkeypatch.setattr(builtins, "exec", trap("exec"))
    monkeypatch.setattr(sympy.parsing.sympy_parser, "parse_expr", trap("parse_expr"))
    monkeypatch.setattr(math_verify.parser, "parse_expr", trap("parse_expr"))
    sentinel = tmp_path / "PWNED"
    for attack in ATTACKS:
        answer = attack.replace("{sentinel}", str(sentinel))
        for resp in (
            format_response("t", f"\\boxed{{{answer}}}"),
            format_response("t", f"The answer is {answer}"),
            f"Answer: {answer}",
        ):
            t0 = time.perf_counter()
            g = grade(resp, ex, "end_marker")
            took = time.perf_counter() - t0
            assert not g.correct, (name, answer)
            assert took < 1.0, (name, answer, took)
    assert not called and not sentinel.exists()


def _gym_problem(dataset: str, config: tuple = (), index: int = 0) -> dict:
    """A problem of any reasoning-gym dataset the grader checks, embedded world or not."""
    entry = gym_dataset(dataset, config, 0, index + 1)[index]
    return {
        "id": f"{dataset}-{index}",
        "family": dataset,
        "question": entry["question"],
        "answer": str(entry["answer"]),
        "answer_type": "gym",
        "gym": {
            "dataset": dataset,
            "config": dict(config),
            "seed": 0,
            "size": index + 1,
            "index": index,
        },
    }


def _countdown_and_24():
    """The world's countdown problem, and a 24-game one (the grader checks any expression task
    of reasoning-gym, whether or not the embedded world uses it)."""
    hard = build_benchmark("h", BenchmarkCfg(kind="hard", size=9))
    # distinct numbers: replacing one by another must change the expression
    countdown = next(
        r
        for r in hard
        if r["family"] == "countdown" and len(set(gym_entry(r)["metadata"]["numbers"])) == 3
    )
    return [countdown, _gym_problem("puzzle24")]


@pytest.mark.parametrize("ex", _countdown_and_24(), ids=["countdown", "puzzle24"])
def test_expressions_must_use_exactly_the_given_numbers(ex):
    meta = gym_entry(ex)["metadata"]
    nums, target = list(meta["numbers"]), int(meta.get("target", 24))
    right = ex["answer"]
    assert grade(format_response("t", f"\\boxed{{{right}}}"), ex).correct
    # the right value from other numbers: the target plus zeros, or times ones
    other = f"{target} + 0 * ({' + '.join(str(n) for n in nums[1:])})"
    assert check_expression(other, nums, target).value == target
    g = grade(format_response("t", f"\\boxed{{{other}}}"), ex)
    assert not g.correct and g.reason == "wrong numbers" and g.checks["value"] == str(target)
    # reasoning-gym 0.1.25's 24-game scorer gives full credit to this on every puzzle
    g = grade(format_response("t", "\\boxed{6*4*1*1}"), ex)
    assert not g.correct
    # a number used twice, one left out
    twice = right.replace(str(nums[0]), str(nums[1]), 1)
    assert not grade(format_response("t", f"\\boxed{{{twice}}}"), ex).correct
    # the right numbers, the wrong value
    wrong = " + ".join(str(n) for n in nums)
    g = grade(format_response("t", f"\\boxed{{{wrong}}}"), ex)
    if sum(nums) != target:
        assert not g.correct and g.reason == "wrong value" and g.checks["numbers_ok"]
    # text that only mentions the answer: reasoning-gym gives partial credit, we give none
    assert not grade(format_response("t", f"\\boxed{{the answer uses {right}}}"), ex).correct


ops = st.sampled_from("+-*/")


@st.composite
def expression(draw):
    """A random expression over 2-5 numbers, with its value computed independently."""
    nums = draw(st.lists(st.integers(1, 30), min_size=2, max_size=5))
    terms = [(str(n), Fraction(n)) for n in nums]
    while len(terms) > 1:
        i = draw(st.integers(0, len(terms) - 2))
        (a, va), (b, vb) = terms[i], terms[i + 1]
        op = draw(ops)
        if op == "/" and vb == 0:
            op = "+"
        v = {"+": va + vb, "-": va - vb, "*": va * vb, "/": va / vb if vb else None}[op]
        terms[i : i + 2] = [(f"({a} {op} {b})", v)]
    return nums, terms[0][0], terms[0][1]


@given(expression())
def test_expression_verifier_matches_an_independent_computation(case):
    nums, text, value = case
    if value.denominator != 1:
        c = check_expression(text, nums, 24)
        assert c.parses and c.value == value and not c.correct
        return
    c = check_expression(text, nums, int(value))
    assert c.correct and c.numbers_ok and c.value == value
    shuffled = list(reversed(nums))
    assert check_expression(text, shuffled, int(value)).correct  # a multiset, not a list
    assert not check_expression(text, [*nums, 1], int(value)).correct  # one number unused
    assert not check_expression(text, nums[:-1], int(value)).correct  # one number extra
    assert not check_expression(text, nums, int(value) + 1).correct


@pytest.mark.parametrize(
    "answer,reason",
    [
        ("2**3 + 1", "unparsable"),
        ("2 // 3", "unparsable"),
        ("x + 1", "unparsable"),
        ("1.5 + 2", "unparsable"),
        ("2(3 + 4)", "unparsable"),
        ("1 / (2 - 2)", "unparsable"),
        ("9" * 300, "too long"),
    ],
)
def test_expression_verifier_refuses_what_it_does_not_allow(answer, reason):
    assert check_expression(answer, [2, 3, 4], 24).reason.startswith(reason)


LETTERS_FORMS = [
    "**Answer:** {L}",
    "**Answer: {L}**",
    "Answer: **{L}**",
    "The answer is: {L}",
    "The answer is ({L}).",
    "the correct option is ({L})",
    "The correct choice is {L}.",
    "Final answer: $\\boxed{{{L}}}$",
    "\\boxed{{\\textbf{{{L}}}}}",
    "The answer is \\textbf{{({L})}}.",
    "\\boxed{{{L}) {text}}}",
    "\\boxed{{({L}) {text}}}",
    "\\boxed{{{L}. {text}}}",
    "The answer is {L}, a fine choice.",
    "So the answer is {L}.\\n\\nA short check: it is a match.",
]
OPTIONS = ["Alice is a knight", "7", "a shadow", "grandfather"]


@given(st.sampled_from("ABCD"), st.sampled_from(LETTERS_FORMS))
def test_choice_forms_are_read(letter, form):
    text = OPTIONS["ABCD".index(letter)]
    resp = format_response("t", form.format(L=letter, text=text).replace("\\n", "\n"))
    assert read_choice(resp, 4, OPTIONS).answer == letter
    ex = {"answer": letter, "answer_type": "choice", "choices": OPTIONS}
    assert grade(resp, ex).correct


@given(st.lists(st.sampled_from("ABCD"), min_size=2, max_size=3, unique=True))
def test_an_answer_naming_several_options_is_wrong(letters):
    for form in ("\\boxed{{{}}}", "The answer is {}.", "**Answer:** {}"):
        for joiner in (", ", " or ", " and "):
            resp = format_response("t", form.format(joiner.join(letters)))
            r = read_choice(resp, 4)
            assert r.answer is None and r.note == "several options", resp
            assert not grade(resp, {"answer": letters[0], "answer_type": "choice"}).correct


@pytest.mark.parametrize(
    "resp",
    [
        "The answer is a knight.",
        "So the answer is a shadow, which fits the riddle.",
        "Answer: a grandfather",
    ],
)
def test_an_article_is_not_option_a(resp):
    assert read_choice(format_response("t", resp), 4).answer is None
    assert not grade(format_response("t", resp), {"answer": "A", "answer_type": "choice"}).correct


def test_the_option_text_in_the_box_is_read_as_its_letter():
    resp = format_response("t", "\\boxed{7}")
    assert read_choice(resp, 4, OPTIONS).answer == "B"
    assert read_choice(resp, 4, None).answer is None


def test_restating_an_unsimplified_fraction_is_wrong():
    ex = _gym_problem("fraction_simplification", (("styles", ("plain",)),))
    meta = gym_entry(ex)["metadata"]
    asked = f"{meta['numerator']}/{meta['denominator']}"
    assert asked in ex["question"]
    g = grade(format_response("t", f"\\boxed{{{asked}}}"), ex)
    assert not g.correct and g.reason == "not simplified"
    assert grade(format_response("t", f"\\boxed{{{ex['answer']}}}"), ex).correct
    assert grade(format_response("t", f"\\boxed{{{ex['answer'].replace('/', ' / ')}}}"), ex).correct
    # the same rule for real math problems graded by math-verify
    math = {"answer": "\\frac{13}{14}", "answer_type": "math"}
    assert not grade(format_response("t", "\\boxed{26/28}"), math).correct
    assert not grade(format_response("t", "\\boxed{\\frac{26}{28}}"), math).correct
    assert grade(format_response("t", "\\boxed{\\frac{13}{14}}"), math).correct


def test_box_search_is_linear():
    math = {"answer": "1", "answer_type": "math"}
    grade(format_response("t", "\\boxed{1}"), math)  # math-verify loads once, untimed

    def cost(n):
        text = "\\boxed{" * n + "x"
        t0 = time.perf_counter()
        assert boxed_spans(text) == []
        grade(format_response("t", text), math)
        return time.perf_counter() - t0

    small, big = cost(2_000), cost(20_000)
    assert big < 0.5 and big < 30 * max(small, 1e-3)


def test_timeouts_restore_an_outer_timer():
    import signal

    from helpers.grading.grade import deadline

    signal.setitimer(signal.ITIMER_REAL, 50.0)
    try:
        with deadline(0.2):
            pass
        left, _ = signal.getitimer(signal.ITIMER_REAL)
        assert 45 < left <= 50
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)


# --------------------------------------------------------------------------- the importer

GOOD = {
    "question": "What is 2+2?",
    "combined_text": format_response("I add 2 and 2. That is 4.", "\\boxed{4}"),
    "domain": "math",
}


def _write(tmp_path, rows, raw=None):
    path = tmp_path / "release.jsonl"
    lines = [json.dumps(r) for r in rows] if raw is None else raw
    path.write_text("\n".join(lines) + "\n")
    return path


@pytest.mark.parametrize(
    "change,message",
    [
        (
            {
                "combined_text": "<|begin_of_thought|> t <|begin_of_solution|> s "
                "<|end_of_thought|> <|end_of_solution|>"
            },
            "combined_text is not in the thought/solution format (markers out of order)",
        ),
        ({"domain": "astrology"}, "field 'domain': expected one of"),
        ({"domain": None}, "field 'domain': expected a string, found null"),
        ({"question": None}, "field 'question': expected a string, found null"),
        ({"question": "   "}, "field 'question' is blank"),
        ({"combined_text": "no markers"}, "combined_text is not in the thought/solution"),
    ],
)
def test_importer_refuses_bad_rows_naming_the_line(tmp_path, change, message):
    path = _write(tmp_path, [GOOD, {**GOOD, **change}])
    with pytest.raises(ValueError, match="1 bad row") as exc:
        import_release(path)
    assert f"line 2: {message}" in str(exc.value)


def test_importer_refuses_a_lone_surrogate_and_bad_json(tmp_path):
    surrogate = json.dumps(GOOD).replace("What is", "What \\ud800 is")
    path = _write(tmp_path, [], raw=[json.dumps(GOOD), surrogate, "{not json", json.dumps([1])])
    with pytest.raises(ValueError) as exc:
        import_release(path)
    msg = str(exc.value)
    assert "3 bad row(s), nothing imported" in msg
    assert "line 2: field 'question': not valid UTF-8 text" in msg
    assert "line 3: not valid JSON" in msg and "line 4: expected a JSON object" in msg


def test_importer_accepts_the_release_domains_in_any_case(tmp_path):
    rows = [{**GOOD, "domain": d.upper()} for d in RELEASE_DOMAINS]
    demos = import_release(_write(tmp_path, rows))
    assert [d["domain"] for d in demos] == list(RELEASE_DOMAINS)
    assert [d["group"] for d in demos] == ["normal_math"] + ["other"] * 5
    assert len(import_release(FIXTURES / "release.jsonl")) == 2


def _knights_open(n):
    from helpers.world.tasks import make_example

    return [
        make_example("knights_knaves", 11, n, i, "other", f"k-{i}", as_choice=False)
        for i in range(n)
    ]


@pytest.mark.parametrize("ex", _knights_open(6), ids=lambda e: e["id"])
def test_our_role_check_agrees_with_the_library_on_full_credit(ex):
    from helpers.grading.problem import freeze, gym_dataset, gym_entry
    from helpers.grading.verifiers import check_roles, role_assignments

    g = ex["gym"]
    library = gym_dataset(g["dataset"], freeze(g["config"]), g["seed"], g["size"])
    entry = gym_entry(ex)
    pairs = list(role_assignments(ex["answer"]).items())
    other = {r for _, r in pairs}
    swapped = [(n, r) for n, r in pairs]
    swapped[0] = (pairs[0][0], next(iter(other - {pairs[0][1]}), "sage"))
    candidates = [
        ex["answer"],
        " and ".join(f"{n.title()} is a {r}" for n, r in reversed(pairs)),
        " and ".join(f"{n} is a {r}" for n, r in swapped),
        " and ".join(f"{n} is a {r}" for n, r in pairs[:1]),
    ]
    for text in candidates:
        # the library scorer runs here on test-made strings only, never on model output
        assert check_roles(text, ex["answer"])[0] == (library.score_answer(text, entry) >= 1.0)
    # markdown and colons, which the library's reader does not strip, are read too
    marked = "**" + ", ".join(f"{n.upper()}: {r}" for n, r in pairs) + "**"
    assert check_roles(marked, ex["answer"]) == (True, "ok")
    # a name given both roles is wrong (the library's set comparison says so too)
    both = ex["answer"] + f" {pairs[0][0]} is a {swapped[0][1]}."
    assert check_roles(both, ex["answer"]) == (False, "a name given two roles")
    assert grade(format_response("t", f"\\boxed{{{candidates[1]}}}"), ex).correct
