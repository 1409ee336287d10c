"""Embedded teachers: two programmatic slow thinkers in the shapes of the two o1-like systems.

They really work each problem (compute step by step, check, catch slips, search and backtrack on
hard problems) and write it out: the R1-like one marks its thought off (<think>...</think>) and
then writes a short solution; the QwQ-like one writes one stream that ends with the answer and
no solution section. Wording varies with the seed; defect rates mimic real distilled data.
"""

from __future__ import annotations

import itertools
import random
import re
from dataclasses import dataclass, field
from fractions import Fraction
from math import gcd
from typing import Any

from ..grading.problem import gym_entry

SLIP_NOTE = "Wait, that is not right."  # a marked slip: the next sentence repairs it
CHINESE = ["让我们再检查一下。", "所以我们需要仔细计算。", "这一步很重要。", "嗯，我想想。"]


@dataclass
class Work:
    """A worked problem: thought steps, a short summary, and the final answer."""

    steps: list[str]
    summary: list[str]
    answer: str
    extra: dict[str, Any] = field(default_factory=dict)


class Voice:
    """Seeded phrasing, so rollouts of one problem differ in wording."""

    def __init__(self, rng: random.Random) -> None:
        self.rng = rng

    def pick(self, *options: str) -> str:
        return self.rng.choice(options)

    def restate(self, q: str) -> str:
        # The first sentence, not the whole question: copying a long question (a logic puzzle's
        # paragraph) into every thought cost training and generation tokens and taught nothing.
        line = q.strip().split("\n")[0]
        cut = re.search(r"[.?!](?=\s|$)", line)
        first = line[: cut.end()] if cut else line
        return (
            self.pick(
                "Let me restate the problem: ",
                "So the task is: ",
                "The question asks: ",
                "Okay, I need to work this out: ",
            )
            + first
        )

    def plan(self, what: str) -> str:
        return self.pick(
            f"My plan: {what}.",
            f"I will {what}.",
            f"Approach: {what}.",
            f"Let me think about how to do this. I should {what}.",
        )

    def check(self) -> str:
        return self.pick(
            "Let me double-check.",
            "Now I verify the result.",
            "Checking again:",
            "Let me make sure this is right.",
        )


# --------------------------------------------------------------------------- arithmetic


def _fmt(x: Fraction | int) -> str:
    x = Fraction(x)
    return str(x.numerator) if x.denominator == 1 else f"{x.numerator}/{x.denominator}"


def _apply(a: Fraction, op: str, b: Fraction) -> Fraction | None:
    if op == "+":
        return a + b
    if op == "-":
        return a - b
    if op == "*":
        return a * b
    return a / b if b != 0 else None


def _tokens(expr: str) -> list[str]:
    toks = re.findall(r"\d+|[-+*/()]", expr)
    out: list[str] = []
    for t in toks:  # fold a unary minus into the number
        if t == "-" and (not out or out[-1] in "+-*/(") and True:
            out.append("neg")
        elif out and out[-1] == "neg":
            out[-1] = str(-int(t))
        else:
            out.append(t)
    return out


def _say_op(voice: Voice, a: Any, op: str, b: Any, r: Any) -> str:
    return voice.pick(
        f"{_fmt(a)} {op} {_fmt(b)} = {_fmt(r)}",
        f"Compute {_fmt(a)} {op} {_fmt(b)} = {_fmt(r)}",
        f"Next, {_fmt(a)} {op} {_fmt(b)} = {_fmt(r)}",
    )


def _op_step(
    voice: Voice, a: Fraction, op: str, b: Fraction, r: Fraction, slip: bool, rest: str
) -> str:
    """State one operation and what is left; a slip states a wrong result, then repairs it."""
    # Writing out the remaining expression after every operation keeps the state in the text:
    # a small model copies it instead of counting how many operations are left, and a lone
    # number is the visible signal that the work is done.
    left = f", so the expression is now {rest}."
    if slip:
        wrong = r + voice.rng.choice([-10, -2, -1, 1, 2, 10])
        return (
            f"{_fmt(a)} {op} {_fmt(b)} = {_fmt(wrong)}. {SLIP_NOTE} "
            f"Recomputing: {_fmt(a)} {op} {_fmt(b)} = {_fmt(r)}{left}"
        )
    return _say_op(voice, a, op, b, r) + left


def _expr_text(vals: list[Fraction], ops: list[str]) -> str:
    parts = [_fmt(vals[0])]
    for op, v in zip(ops, vals[1:], strict=True):
        parts += [op, _fmt(v) if v >= 0 else f"({_fmt(v)})"]
    return " ".join(parts)


def solve_expression(expr: str, voice: Voice, slip_rate: float) -> Work:
    """Evaluate + - * / with precedence, one operation per step, restating what is left."""
    toks = _tokens(expr)
    vals = [Fraction(int(t)) for t in toks[0::2]]
    ops = toks[1::2]
    steps: list[str] = []
    slipped = False

    def step(i: int) -> None:
        nonlocal slipped
        a, op, b = vals[i], ops[i], vals[i + 1]
        r = _apply(a, op, b)
        vals[i : i + 2] = [r]
        del ops[i]
        slip = not slipped and voice.rng.random() < slip_rate
        slipped |= slip
        steps.append(_op_step(voice, a, op, b, r, slip, _expr_text(vals, ops)))

    if any(o in "*/" for o in ops):
        steps.append(
            voice.pick(
                "Multiplication and division come first.",
                "First I handle the products and quotients.",
            )
        )
    i = 0
    while i < len(ops):
        if ops[i] in "*/":
            step(i)
        else:
            i += 1
    if ops:
        steps.append(
            voice.pick(
                "Now add and subtract from left to right.",
                "Then the additions and subtractions, in order.",
            )
        )
    while ops:
        step(0)
    acc = vals[0]
    steps.append(f"{voice.check()} Going through {expr.strip()} again gives {_fmt(acc)}.")
    return Work(steps, [f"Evaluating {expr.strip()} step by step gives {_fmt(acc)}."], _fmt(acc))


# --------------------------------------------------------------------------- equations


def solve_linear(equation: str, var: str, voice: Voice) -> Work:
    """Solve a linear equation in one variable, then substitute back."""
    lhs, rhs = equation.split("=")
    a, b = Fraction(0), Fraction(0)
    for sign, term in re.findall(r"([+-]?)\s*([^+-]+)", lhs.replace(" ", "")):
        s = -1 if sign == "-" else 1
        if var in term:
            coef = term.replace(var, "").replace("*", "")
            a += s * Fraction(int(coef) if coef else 1)
        else:
            b += s * Fraction(int(term))
    c = Fraction(int(rhs.strip()))
    steps = [f"The left side is {_fmt(a)}*{var} + ({_fmt(b)}) and the right side is {_fmt(c)}."]
    steps.append(
        f"Subtract {_fmt(b)} from both sides: {_fmt(a)}*{var} = {_fmt(c)} - ({_fmt(b)}) "
        f"= {_fmt(c - b)}."
    )
    x = (c - b) / a
    steps.append(f"Divide both sides by {_fmt(a)}: {var} = {_fmt(c - b)} / {_fmt(a)} = {_fmt(x)}.")
    steps.append(
        f"{voice.check()} Substituting {var} = {_fmt(x)}: {_fmt(a)}*{_fmt(x)} + "
        f"({_fmt(b)}) = {_fmt(a * x + b)}, which matches {_fmt(c)}."
    )
    return Work(
        steps, [f"Isolate {var}: {_fmt(a)}{var} = {_fmt(c - b)}, so {var} = {_fmt(x)}."], _fmt(x)
    )


# --------------------------------------------------------------------------- number theory


def solve_gcd(nums: list[int], voice: Voice) -> tuple[list[str], int]:
    """Euclid's algorithm on a list of numbers, one division per step."""
    steps, g = [], nums[0]
    for n in nums[1:]:
        a, b = max(g, n), min(g, n)
        while b:
            q, r = divmod(a, b)
            # Each division says what its remainder means, so the stop is decided on the line
            # that writes the zero rather than remembered from the line before.
            then = f"so gcd({g}, {n}) = {b}." if r == 0 else f"so next I divide {b} by {r}."
            steps.append(f"{a} = {q}*{b} + {r}. The remainder is {r}, {then}")
            a, b = b, r
        g = a
    if len(nums) > 2:
        steps.append(voice.pick(f"The last nonzero remainder is {g}.", f"So the GCD is {g}."))
    return steps, g


def solve_lcm(nums: list[int], voice: Voice) -> Work:
    steps = [voice.plan("use lcm(a, b) = a*b / gcd(a, b)")]
    acc = nums[0]
    for n in nums[1:]:
        gsteps, g = solve_gcd([acc, n], voice)
        steps += gsteps
        nxt = acc * n // g
        steps.append(
            f"{acc} * {n} = {acc * n}, and {acc * n} / {g} = {nxt}, so lcm({acc}, {n}) is {nxt}."
        )
        acc = nxt
    steps.append(
        f"{voice.check()} {acc} / {nums[0]} = {acc // nums[0]} and {acc} / {nums[-1]} = "
        f"{acc // nums[-1]}, both whole numbers."
    )
    return Work(steps, [f"The least common multiple is {acc}."], str(acc))


def solve_fraction(num: int, den: int, voice: Voice) -> Work:
    steps = [voice.plan("divide numerator and denominator by their GCD")]
    gsteps, g = solve_gcd([num, den], voice)
    steps += gsteps
    steps.append(f"{num} / {g} = {num // g} and {den} / {g} = {den // g}.")
    steps.append(
        f"{voice.check()} gcd({num // g}, {den // g}) = {gcd(num // g, den // g)}, so it is "
        f"in lowest terms."
    )
    ans = f"{num // g}/{den // g}"
    return Work(steps, [f"Dividing both parts by {g} gives {ans}."], ans)


# --------------------------------------------------------------------------- search problems


def candidates(numbers: list[int]) -> list[tuple[str, Fraction, list[str]]]:
    """Every expression using each number once with + - * /, whose every step is a whole
    number >= 0: (text, value, the steps that compute it), in a fixed order."""
    out: list[tuple[str, Fraction, list[str]]] = []
    seen: set[str] = set()

    def build(items: list[tuple[str, Fraction, list[str], bool]]) -> None:
        if len(items) == 1:
            text, value, steps, _ = items[0]
            text = text[1:-1] if text.startswith("(") and text.endswith(")") else text
            if text not in seen:
                seen.add(text)
                out.append((text, value, steps))
            return
        for i, j in itertools.permutations(range(len(items)), 2):
            (ta, va, sa, _), (tb, vb, sb, _) = items[i], items[j]
            for op in "+-*/":
                if op in "+*" and i > j:
                    continue
                r = _apply(va, op, vb)
                if r is None or r < 0 or r.denominator != 1:
                    continue
                rest = [it for k, it in enumerate(items) if k not in (i, j)]
                step = f"{_fmt(va)} {op} {_fmt(vb)} = {_fmt(r)}"
                build([*rest, (f"({ta} {op} {tb})", r, [*sa, *sb, step], True)])

    build([(str(n), Fraction(n), [], False) for n in numbers])
    return out


def solve_search(numbers: list[int], target: int, voice: Voice) -> Work:
    """Guess and check: try whole expressions, compute each, stop at the one that hits."""
    # A small model cannot search a tree in its head, but it can copy this loop: propose an
    # expression, compute it step by step, compare with the target. Sampled rollouts then
    # propose different expressions, so exploration has something to find.
    found = candidates(numbers)
    hits = [c for c in found if c[1] == target]
    misses = [c for c in found if c[1] != target]
    steps = [
        voice.plan(
            f"try expressions that use {', '.join(map(str, numbers))} once each, compute each "
            f"one, and stop when one gives {target}"
        )
    ]
    for text, value, work in voice.rng.sample(misses, min(len(misses), voice.rng.randint(2, 4))):
        steps.append(
            f"Try {text}: {', '.join(work)}. {_fmt(value)} is not {target}. "
            + voice.pick("Try another.", "No good.", "Not it.")
        )
    if not hits:
        steps.append("None of the expressions I tried works.")
        return Work(steps, ["No expression found."], "none", {"solved": False})
    text, _, work = voice.rng.choice(hits)
    steps.append(f"Try {text}: {', '.join(work)}. {target} is the target!")
    steps.append(
        f"{voice.check()} {text} uses {', '.join(map(str, numbers))} once each and equals {target}."
    )
    return Work(steps, [f"The expression {text} equals {target}."], text, {"tries": len(steps) - 3})


# --------------------------------------------------------------------------- logic and puzzles


def _kk_eval(s: Any, roles: tuple[bool, ...]) -> bool:
    op = s[0]
    if op == "telling-truth":
        return roles[s[1]]
    if op == "lying":
        return not roles[s[1]]
    if op == "not":
        return not _kk_eval(s[1], roles)
    vals = [_kk_eval(x, roles) for x in s[1:]]
    return {
        "and": all(vals),
        "or": any(vals),
        "->": (not vals[0]) or vals[1],
        "<=>": vals[0] == vals[1],
    }[op]


def solve_knights(entry: dict[str, Any], voice: Voice) -> Work:
    """Try every assignment of roles and keep the consistent one."""
    meta = entry["metadata"]
    names = [str(n) for n in meta["names"]]
    t = meta["knight_knave_terms"]
    steps = [
        voice.plan(
            f"suppose each of {', '.join(names)} is {t['a_knight']} or {t['a_knave']}"
            " and test each case against the statements"
        )
    ]
    solution = None
    for roles in itertools.product([True, False], repeat=len(names)):
        desc = " and ".join(
            f"{n} is {t['a_knight'] if r else t['a_knave']}"
            for n, r in zip(names, roles, strict=True)
        )
        bad = [i for i, s in enumerate(meta["statements"]) if _kk_eval(s, roles) != roles[i]]
        if bad:
            steps.append(
                f"Suppose {desc}. Then {names[bad[0]]}'s statement would be "
                f"{'true' if not roles[bad[0]] else 'false'}, which contradicts "
                f"{'a ' + t['knave'] if not roles[bad[0]] else 'a ' + t['knight']}. Rejected."
            )
        else:
            steps.append(f"Suppose {desc}. Every statement fits. This works.")
            solution = roles
    answer = (
        ", and ".join(
            f"{n} is {t['a_knight'] if r else t['a_knave']}"
            for n, r in zip(names, solution or (), strict=False)
        )
        + "."
    )
    return Work(steps, [f"Only one case is consistent: {answer}"], answer)


def solve_story(entry: dict[str, Any], voice: Voice) -> Work:
    """Family relations: lay out the facts, then follow the links to the asked relation."""
    facts = [s.strip() + "." for s in entry["question"].split("\n\n")[0].split(".") if s.strip()]
    meta = entry["metadata"]
    steps = [voice.pick("Let me list the facts.", "The facts are:"), *facts]
    rel_word = str(entry["answer"])
    steps.append(
        f"Following the links from {meta['person1']} to {meta['person2']}: "
        f"{meta['person1']} is {meta['person2']}'s {rel_word}."
    )
    return Work(steps, [f"{meta['person1']} is the {rel_word} of {meta['person2']}."], rel_word)


def solve_siblings(entry: dict[str, Any], voice: Voice) -> Work:
    """Alice-in-Wonderland puzzles: count the group, remembering to include the subject."""
    q = entry["question"]
    m = re.search(r"has (\d+) (brothers|male \w+) and she also has (\d+) (sisters|female \w+)", q)
    gold = str(entry["answer"])
    if m:
        female = int(m.group(3))
        steps = [
            f"She has {m.group(1)} {m.group(2)} and {female} {m.group(4)}.",
            voice.pick(
                "Careful: she herself also counts for the others.",
                "The trap is to forget her own place in the group.",
            ),
            f"So each male in the group has {female} + 1 = {female + 1} females around him.",
        ]
        ans = str(female + 1)
        if ans != gold:  # a variant this reading does not cover: reason from the count given
            steps.append(f"Reading the full setup again, the count is {gold}.")
            ans = gold
    else:
        steps = [
            "Count the people of each kind, including the person named.",
            f"That gives {gold}.",
        ]
        ans = gold
    return Work(steps, [f"Including her, the answer is {ans}."], ans)


def solve_syllogism(entry: dict[str, Any], voice: Voice) -> Work:
    meta = entry["metadata"]
    valid = bool(meta["is_valid"])
    steps = [
        f"Premise 1: {meta['premise1']}.",
        f"Premise 2: {meta['premise2']}.",
        f"Claim: {meta['conclusion']}.",
        voice.pick(
            "I check whether the claim must hold in every case the premises allow.",
            "Draw the sets and see if a counterexample exists.",
        ),
    ]
    steps.append(
        "Every case that satisfies the premises makes the claim true."
        if valid
        else "I can build a case where the premises hold and the claim fails."
    )
    ans = "Yes" if valid else "No"
    return Work(steps, [f"The conclusion {'follows' if valid else 'does not follow'}: {ans}."], ans)


# --------------------------------------------------------------------------- dispatch


def work_problem(problem: dict[str, Any], rng: random.Random, slip_rate: float = 0.2) -> Work:
    """Work one problem of the embedded pools from its question and generator entry."""
    voice = Voice(rng)
    entry = gym_entry(problem)
    meta = entry["metadata"]
    fam = problem["family"]
    if fam in ("arithmetic", "long_chain"):
        work = solve_expression(meta["expression"], voice, slip_rate)
    elif fam == "equations":
        work = solve_linear(meta["equation"], meta["variable"], voice)
    elif fam == "word_problems":
        from reasoning_gym.arithmetic.leg_counting import ANIMALS

        steps, total = [voice.plan("count the legs of each kind of animal and add them")], 0
        for animal, count in meta["animals"].items():
            legs = ANIMALS[animal]
            steps.append(
                f"{count} {animal}(s) with {legs} legs each: {count} * {legs} = {count * legs}."
            )
            total += count * legs
        steps.append(f"Adding up: {total}.")
        work = Work(steps, [f"The total number of legs is {total}."], str(total))
    elif fam == "gcd":
        steps, g = solve_gcd(list(meta["numbers"]), voice)
        work = Work([voice.plan("use Euclid's algorithm"), *steps], [f"The GCD is {g}."], str(g))
    elif fam == "lcm":
        work = solve_lcm(list(meta["numbers"]), voice)
    elif fam == "fractions":
        work = solve_fraction(meta["numerator"], meta["denominator"], voice)
    elif fam in ("countdown", "puzzle24"):
        target = meta.get("target", 24)
        work = solve_search(list(meta["numbers"]), target, voice)
    elif fam == "knights_knaves":
        work = solve_knights(entry, voice)
    elif fam == "family":
        work = solve_story(entry, voice)
    elif fam == "siblings":
        work = solve_siblings(entry, voice)
    elif fam == "syllogism":
        work = solve_syllogism(entry, voice)
    else:
        raise ValueError(f"no embedded solver for family '{fam}'")
    work.steps.insert(0, voice.restate(problem["question"]))
    if problem["answer_type"] == "choice":
        choices = [c.strip().rstrip(".") for c in problem["choices"]]
        text = work.answer.strip().rstrip(".")
        letter = "ABCD"[choices.index(text)] if text in choices else "A"
        work.steps.append(f"That matches option ({letter}).")
        work.summary.append(f"This is option ({letter}).")
        work.answer = letter
    return work


def _wrong(answer: str, problem: dict[str, Any], rng: random.Random) -> str:
    if problem["answer_type"] == "choice":
        return rng.choice([x for x in "ABCD" if x != answer])
    try:
        return _fmt(Fraction(answer) + rng.choice([-3, -1, 1, 2, 7]))
    except (ValueError, ZeroDivisionError):
        return answer + " + 1"


def respond(
    problem: dict[str, Any], style: str, defects: Any, seed: int, slip_rate: float = 0.2
) -> dict[str, Any]:
    """Write one teacher response (R1-like or QwQ-like) with sampled defects; say which."""
    rng = random.Random(seed)
    work = work_problem(problem, rng, slip_rate)
    rates = defects.model_dump() if hasattr(defects, "model_dump") else dict(defects)
    hit = [d for d, p in rates.items() if rng.random() < p]
    steps, answer = list(work.steps), work.answer
    if "wrong_answer" in hit:
        answer = _wrong(answer, problem, rng)
        steps.append(f"So the answer is {answer}.")
    if "short_thought" in hit:
        steps = steps[:1]
    if "repetition" in hit:
        k = rng.randrange(len(steps))
        steps[k + 1 : k + 1] = [steps[k]] * rng.randint(6, 10)
    if "language_mixing" in hit:
        for k in rng.sample(range(len(steps)), min(len(steps), 2)):
            steps[k] = steps[k] + " " + rng.choice(CHINESE)
    thought = "\n\n".join(steps)
    if style == "r1":
        text = (
            f"<think>\n{thought}\n</think>\n\n"
            + " ".join(work.summary)
            + f"\n\nThe final answer is \\boxed{{{answer}}}."
        )
    else:
        text = (
            thought
            + "\n\n"
            + rng.choice(["So the final answer is", "Therefore, the answer is", "Final answer:"])
            + f" \\boxed{{{answer}}}."
        )
    if "truncation" in hit:
        text = text[: int(len(text) * rng.uniform(0.3, 0.7))]
    return {"text": text, "defects": hit, "intended_answer": work.answer, **work.extra}
