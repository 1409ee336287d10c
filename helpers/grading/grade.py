"""Grading: judge a response's final answer against the ground truth, safely and in bounded time.

The grader is the reward of exploration: every rollout it calls correct becomes training data.
So it gives full credit or none, never runs model output (see `verifiers`), and every call is
time-boxed. Each reasoning-gym dataset names its check in `GYM_CHECKS`; a new family must add
one there, or grading it fails loudly.
"""

from __future__ import annotations

import contextlib
import re
import signal
import threading
import time
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field
from functools import lru_cache
from typing import Any

from .answers import read_answer, read_choice
from .formatting import parse_response
from .problem import gym_entry
from .verifiers import (
    check_expression,
    check_fraction,
    check_number,
    check_roles,
    check_text,
    parse_number,
)

# How each reasoning-gym dataset's answers are checked (see helpers.grading.verifiers).
GYM_CHECKS = {
    "countdown": "expression",
    "puzzle24": "expression",
    "fraction_simplification": "fraction",
    "basic_arithmetic": "number",
    "simple_equations": "number",
    "leg_counting": "number",
    "gcd": "number",
    "lcm": "number",
    "chain_sum": "number",
    "aiw": "number",
    "family_relationships": "text",
    "syllogism": "text",
    "knights_knaves": "knights",
}
GRADE_SECONDS = 1.0  # the most one grading call may take; past it the answer is wrong
SYMBOLIC_MAX_CHARS = 200  # longer answers never reach sympy


class GradingTimeout(Exception):
    """A grading call ran past its deadline."""


_deadline_active = False


@contextlib.contextmanager
def deadline(seconds: float) -> Iterator[None]:
    """Raise GradingTimeout inside the block once `seconds` have passed (main thread only).

    A signal timer interrupts Python code only between bytecodes, so symbolic work that could
    spend long in C (a huge power) is refused beforehand by `too_costly`. Off the main thread
    no signal can be delivered and only that screen applies.
    """
    global _deadline_active
    if _deadline_active or threading.current_thread() is not threading.main_thread():
        yield
        return

    def on_alarm(signum: int, frame: Any) -> None:
        raise GradingTimeout(f"grading took longer than {seconds:g}s")

    old_handler = signal.signal(signal.SIGALRM, on_alarm)
    prev_delay, prev_interval = signal.setitimer(signal.ITIMER_REAL, seconds)
    t0 = time.monotonic()
    _deadline_active = True
    try:
        yield
    finally:
        _deadline_active = False
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, old_handler)
        if prev_delay > 0:  # somebody else's timer (pytest-timeout, say) keeps running
            left = max(prev_delay - (time.monotonic() - t0), 1e-3)
            signal.setitimer(signal.ITIMER_REAL, left, prev_interval)


# A power, factorial, binomial or root whose size could keep sympy busy in C for minutes.
_COSTLY = [
    re.compile(r"(?:\^|\*\*)\s*\{?\s*[-+(]*\s*\d{3,}"),  # 9^{123...}
    re.compile(r"(?:\^|\*\*)[^\^*]{0,40}(?:\^|\*\*)"),  # a power of a power
    re.compile(r"\d{4,}\s*!"),  # 1000!
    re.compile(r"\\(?:binom|dbinom|tbinom|choose)\s*\{?\s*\d{4,}"),
    re.compile(r"\\sqrt\s*\[\s*\d{4,}"),
]


def too_costly(answer: str) -> bool:
    """Whether a symbolic library should not see this answer (too long, or explosive)."""
    return len(answer) > SYMBOLIC_MAX_CHARS or any(p.search(answer) for p in _COSTLY)


_DECIMAL = re.compile(r"(?:\d+\.?\d*|\.\d+)(?:[eE][-+]?\d+)?")


def sympy_number(text: str) -> Any:
    """A sympy number from a numeral, built without sympify (which runs parse_expr, an eval)."""
    import sympy

    t = text.replace(",", "").strip()
    if t.isdigit():
        return sympy.Integer(int(t))
    if _DECIMAL.fullmatch(t):
        return sympy.Float(t)
    raise ValueError(f"not a numeral: {text[:40]!r}")


def _quiet_math_verify() -> None:
    import logging

    from latex2sympy2_extended import latex2sympy2 as l2s

    # Our own deadline replaces math-verify's signal.alarm (which would cancel it); math-verify
    # warns once that its timeout is off.
    logging.getLogger("math_verify").setLevel(logging.ERROR)
    # latex2sympy turns each numeral of the answer into sympy.Number(text), which sympifies the
    # string through parse_expr. The lexer has already checked it is a numeral, but nothing of
    # a response may reach an eval: numbers are built directly instead.
    if l2s.convert_number is not _convert_number:
        l2s.convert_number = _convert_number
        l2s._Latex2Sympy.parse_number = lambda self, text: sympy_number(text)


def _convert_number(number: str) -> Any:
    """latex2sympy's convert_number ("0,5" is a decimal, "1,000" an integer), without sympify."""
    if "," in number and number.startswith("0"):
        number = number.replace(",", ".")
    return sympy_number(number.replace(" ", "").lstrip("0") or "0")


@lru_cache(maxsize=4096)
def _parse_gold(gold: str) -> Any:
    from math_verify import LatexExtractionConfig, parse, verify

    _quiet_math_verify()
    if _parse_gold.cache_info().currsize == 0:  # load math-verify's grammars once, untimed
        one = parse("$1$", [LatexExtractionConfig()], parsing_timeout=None)
        verify(one, one, timeout_seconds=None)
    return parse(f"${gold}$", [LatexExtractionConfig()], parsing_timeout=None)


def math_equal(gold: str, pred: str | None) -> bool:
    """Judge math equivalence with math-verify, gold first; fall back to exact text.

    Both sides are parsed as LaTeX only: math-verify's plain-expression reader hands text to
    sympy's parse_expr, which is Python eval, and `gold` is model output too where unify
    compares a thought's answer with its solution's.
    """
    if pred is None:
        return False

    def norm(s: str) -> str:
        return re.sub(r"\s+", "", s).lower()

    if norm(gold) == norm(pred):
        return True
    if too_costly(pred) or too_costly(gold):
        return False
    from math_verify import LatexExtractionConfig, parse, verify

    _quiet_math_verify()
    g = _parse_gold(gold)  # trusted, cached, and untimed (its first call loads the grammars)
    try:
        with deadline(GRADE_SECONDS):
            p = parse(f"${pred}$", [LatexExtractionConfig()], parsing_timeout=None)
            return bool(g) and bool(p) and bool(verify(g, p, timeout_seconds=None))
    except GradingTimeout:
        return False
    except Exception:  # math-verify can raise on odd LaTeX; treat as not equal
        return False


# Two numbers joined by an arithmetic operator: an expression still to be computed.
_OPERATION_RE = re.compile(r"\d\s*(?:[-+*×÷^]|\\times|\\cdot|\\div)\s*[({]?-?\d")


def restates_expression(gold: str, pred: str) -> bool:
    """Is pred an uncomputed arithmetic expression where gold is a computed value?"""
    return bool(_OPERATION_RE.search(pred)) and not _OPERATION_RE.search(gold)


def not_simplified(gold: str, pred: str) -> bool:
    """Is pred a fraction not in lowest terms ("26/28") where gold is not written so?"""
    return parse_number(pred)[1] == "unreduced fraction" != parse_number(gold)[1]


@dataclass
class Grade:
    """The verdict on one response, with the reason for it."""

    correct: bool
    answer: str | None
    answer_from: str
    truncated: bool
    well_formed: bool
    reason: str = ""  # ok, no answer, wrong value, wrong numbers, several options, timeout, ...
    checks: dict[str, Any] = field(default_factory=dict)  # verifier details (expressions)

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def _trusted_context(example: dict[str, Any]) -> dict[str, Any]:
    """What judging needs from the problem itself, computed before the deadline starts.

    Regenerating a reasoning-gym entry or parsing a gold answer the first time can take longer
    than the deadline; neither depends on the response, so it is kept outside it.
    """
    if example["answer_type"] == "math":
        _parse_gold(example["answer"])
        return {}
    if example["answer_type"] != "gym":
        return {}
    dataset = example["gym"]["dataset"]
    kind = GYM_CHECKS.get(dataset)
    if kind is None:
        raise ValueError(
            f"grading: no check for reasoning-gym dataset '{dataset}' "
            f"(problem {example.get('id')}); add it to helpers.grading.GYM_CHECKS"
        )
    ctx: dict[str, Any] = {"kind": kind}
    if kind in ("expression", "fraction"):
        ctx["entry"] = gym_entry(example)
    return ctx


def _check_gym(
    ans: str | None, example: dict[str, Any], ctx: dict[str, Any]
) -> tuple[bool, str, dict[str, Any]]:
    kind = ctx["kind"]
    if kind == "number":
        return (*check_number(ans, example["answer"]), {})
    if kind == "text":
        return (*check_text(ans, example["answer"]), {})
    if kind == "knights":
        return (*check_roles(ans, example["answer"]), {})
    meta = ctx["entry"]["metadata"]
    if kind == "expression":
        c = check_expression(ans, meta["numbers"], int(meta.get("target", 24)))
        checks = {
            "parses": c.parses,
            "numbers_ok": c.numbers_ok,
            "value": None if c.value is None else str(c.value),
        }
        return c.correct, c.reason, checks
    return (
        *check_fraction(ans, meta["simplified_numerator"], meta["simplified_denominator"]),
        {},
    )


def _judge(
    ans: str | None, example: dict[str, Any], ctx: dict[str, Any]
) -> tuple[bool, str, dict[str, Any]]:
    if example["answer_type"] == "gym":
        return _check_gym(ans, example, ctx)
    if ans is None:
        return False, "no answer", {}
    gold = example["answer"]
    # math-verify would evaluate "26 + 19 - 57" or reduce "26/28" and call either equal to
    # the gold: the model computed nothing.
    if restates_expression(gold, ans):
        return False, "uncomputed expression", {}
    if not_simplified(gold, ans):
        return False, "not simplified", {}
    if too_costly(ans):
        return False, "refused: too costly to evaluate", {}
    ok = math_equal(gold, ans)
    return ok, "ok" if ok else "wrong value", {}


def grade(response: str, example: dict[str, Any], stop_reason: str = "end") -> Grade:
    """Grade a response to a benchmark or pool example (schema of helpers.tasks)."""
    # A loop stopped early (generation.stop_loops) would have run to the limit: truncated too.
    truncated = stop_reason in ("length", "loop")
    well_formed = parse_response(response).well_formed
    kind = example["answer_type"]
    if kind == "open":  # prose or code: no grader here, see collect.label
        return Grade(False, None, "none", truncated, well_formed, "not gradable")
    ctx = _trusted_context(example)
    try:
        with deadline(GRADE_SECONDS):
            if kind == "choice":
                r = read_choice(
                    response, len(example.get("choices") or "ABCD"), example.get("choices")
                )
                ok = r.answer is not None and r.answer == example["answer"]
                reason = r.note or ("ok" if ok else "wrong value")
                checks: dict[str, Any] = {}
            else:
                r = read_answer(response)
                ok, reason, checks = _judge(r.answer, example, ctx)
    except GradingTimeout:
        return Grade(False, None, "none", truncated, well_formed, "timeout")
    if ok and truncated:
        ok, reason = False, "truncated"
    return Grade(ok, r.answer, r.where, truncated, well_formed, reason, checks)
