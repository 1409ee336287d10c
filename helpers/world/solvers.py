"""The teachers' solvers for the math families: they compute each problem, step by step.

Every step is one operation on small numbers, written as `a op b = c`: the form the warm-up
teaches the backbone (helpers.world.warmup_data), so a thought is a chain of steps the backbone can
do. Arithmetic writes what is left of the expression after each operation (a small model copies
the state instead of counting where it is); equations isolate the unknown and substitute back;
word problems multiply then add; countdown tries sign patterns in a fixed order, computing
each and comparing it with the target, until one hits (a search the model can run, not guess).
Slips are marked and repaired, as in real distilled thoughts.
"""

from __future__ import annotations

import itertools
import re

from .work import Voice, Work

SLIP_NOTE = "No,"  # a marked slip: "a + b = wrong. No, a + b = right"


def _apply(a: int, op: str, b: int) -> int:
    return a + b if op == "+" else a - b if op == "-" else a * b


def parse_expression(expr: str) -> tuple[list[int], list[str]]:
    """The numbers and operators of `a op b op c ...` (a leading minus binds to its number)."""
    toks = re.findall(r"\d+|[-+*]", expr)
    out: list[str] = []
    for t in toks:
        if t == "-" and (not out or out[-1] in "+-*"):
            out.append("neg")
        elif out and out[-1] == "neg":
            out[-1] = str(-int(t))
        else:
            out.append(t)
    return [int(t) for t in out[0::2]], out[1::2]


def expression_text(vals: list[int], ops: list[str]) -> str:
    """An expression written back, negative numbers in parentheses after an operator."""
    s = str(vals[0])
    for op, v in zip(ops, vals[1:], strict=True):
        s += f" {op} {v}" if v >= 0 else f" {op} ({v})"
    return s


def solve_expression(expr: str, voice: Voice, slip_rate: float) -> Work:
    """Products first, then left to right; each step says what is left of the expression."""
    vals, ops = parse_expression(expr)
    steps: list[str] = []
    slipped = False

    def step(i: int) -> None:
        nonlocal slipped
        a, op, b = vals[i], ops[i], vals[i + 1]
        r = _apply(a, op, b)
        vals[i : i + 2] = [r]
        del ops[i]
        rest = f", leaving {expression_text(vals, ops)}." if ops else "."
        if not slipped and voice.rng.random() < slip_rate:
            slipped = True
            wrong = r + voice.rng.choice([-2, -1, 1, 2])
            steps.append(f"{a} {op} {b} = {wrong}. {SLIP_NOTE} {a} {op} {b} = {r}{rest}")
        else:
            steps.append(f"{a} {op} {b} = {r}{rest}")

    i = 0
    while i < len(ops):
        if ops[i] == "*":
            step(i)
        else:
            i += 1
    while ops:
        step(0)
    steps.append(f"{voice.pick('Check', 'Verify')}: {expr.strip()} = {vals[0]}.")
    return Work(steps, [], str(vals[0]))


def solve_equation(equation: str, var: str, voice: Voice) -> Work:
    """`x + a = b`, `x - a = b` or `a +/- x = b`: move the number across, substitute back."""
    lhs, rhs = (side.strip() for side in equation.split("="))
    c = int(rhs)
    m = re.fullmatch(rf"{var}\s*([+-])\s*(\d+)", lhs)
    if m:
        op, k = m.group(1), int(m.group(2))
        inv = "-" if op == "+" else "+"
        x = _apply(c, inv, k)
        steps = [f"{var} = {c} {inv} {k}.", f"{c} {inv} {k} = {x}, so {var} = {x}."]
        check = f"{x} {op} {k} = {c}"
    else:
        m = re.fullmatch(rf"(\d+)\s*([+-])\s*{var}", lhs)
        if m is None:
            raise ValueError(f"an equation of a form the teacher does not know: {equation!r}")
        k, op = int(m.group(1)), m.group(2)
        x = c - k if op == "+" else k - c
        shown = (
            f"{k} - {c}" if op == "-" and c >= 0 else f"{k} - ({c})" if op == "-" else f"{c} - {k}"
        )
        steps = [f"{var} = {shown}.", f"{shown} = {x}, so {var} = {x}."]
        check = f"{k} {op} {x} = {c}" if x >= 0 else f"{k} {op} ({x}) = {c}"
    steps.append(f"{voice.pick('Check', 'Verify')}: {check}.")
    return Work(steps, [], str(x))


def solve_legs(animals: dict[str, int], voice: Voice) -> Work:
    """Legs of each kind of animal, then their sum."""
    from reasoning_gym.arithmetic.leg_counting import ANIMALS

    steps, parts = [], []
    for animal, n in animals.items():
        legs = ANIMALS[animal]
        steps.append(f"A {animal} has {legs} legs: {n} * {legs} = {n * legs}.")
        parts.append(n * legs)
    total = parts[0]
    for p in parts[1:]:
        steps.append(f"{total} + {p} = {total + p}.")
        total += p
    return Work(steps, [], str(total))


def candidates(numbers: list[int]) -> list[tuple[str, list[str], int]]:
    """Every way to add some numbers and subtract the others, in a fixed order: no number
    subtracted first, then each one, then each pair; the added ones written first, so the
    running value never drops below the result. Those that would end below 0 are left out.
    (expression, its steps, its value)."""
    out = []
    n = len(numbers)
    for k in range(n):  # how many numbers are subtracted
        for minus in itertools.combinations(range(n), k):
            plus = [x for i, x in enumerate(numbers) if i not in minus]
            terms = [("+", x) for x in plus[1:]] + [("-", numbers[i]) for i in minus]
            acc, steps = plus[0], []
            for sign, x in terms:
                r = _apply(acc, sign, x)
                steps.append(f"{acc} {sign} {x} = {r}")
                acc = r
            if acc >= 0:
                expr = f"{plus[0]}" + "".join(f" {sign} {x}" for sign, x in terms)
                out.append((expr, steps, acc))
    return out


def solve_countdown(numbers: list[int], target: int, voice: Voice) -> Work:
    """Try the candidates in order, computing and comparing each, until one hits the target."""
    steps = []
    for expr, work, value in candidates(numbers):
        if value == target:
            steps.append(f"{expr}: {', '.join(work)}. {value} is {target}, found it.")
            steps.append(
                f"{voice.pick('Check', 'Verify')}: {expr} uses "
                f"{', '.join(map(str, numbers))} once each."
            )
            return Work(steps, [], expr)
        steps.append(f"{expr}: {', '.join(work)}. {value} is not {target}.")
    raise ValueError(f"no expression of {numbers} with + and - makes {target}")
