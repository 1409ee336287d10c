"""The teachers' solvers for the math families: they compute each problem, step by step.

Each solver returns a Work (thought steps, a summary, the answer). Arithmetic writes the
expression left after every operation; equations isolate the unknown and substitute back;
number theory runs Euclid's algorithm; search problems guess, compute and compare.
"""

from __future__ import annotations

import itertools
import re
from fractions import Fraction
from math import gcd
from typing import Any

from .work import Voice, Work

SLIP_NOTE = "Wait, that is not right."  # a marked slip: the next sentence repairs it


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
