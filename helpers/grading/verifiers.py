"""Exact answer checks of our own: arithmetic expressions, numbers, fractions and short text.

Model output is data: nothing here calls eval, exec or sympy. An expression is read with
Python's `ast` parser after a character whitelist (digits, + - * / and parentheses), walked
node by node, and computed exactly with fractions under size bounds. reasoning-gym's own
scorers for countdown and the 24 game parse answers with sympy's parse_expr (Python eval),
and the 24-game scorer does not check which numbers were used, so they are never called.
"""

from __future__ import annotations

import ast
import re
from collections import Counter
from dataclasses import dataclass
from fractions import Fraction
from math import gcd

from .answers import strip_markup

MAX_EXPRESSION_CHARS = 200  # a countdown answer is a few dozen characters
MAX_MAGNITUDE = 10**12  # bound on every intermediate numerator and denominator
_EXPR_CHARS = re.compile(r"^[\d\s+\-*/()]+$")
_LATEX_OPS = [
    (r"\\times|\\cdot|\\ast|×|·|∗", "*"),
    (r"\\div|÷|∕", "/"),
    (r"−|–|—", "-"),
    (r"\\left|\\right|\\[,;!:]|\\ ", ""),
    (r"\[|\{", "("),
    (r"\]|\}", ")"),
]
_FRAC = re.compile(r"\\[dt]?frac\s*\{([^{}]*)\}\s*\{([^{}]*)\}")


@dataclass
class ExpressionCheck:
    """What an expression answer turned out to be, step by step."""

    parses: bool = False  # a well-formed expression of numbers, + - * / and parentheses
    numbers_ok: bool = False  # uses exactly the given numbers (as a multiset)
    value: Fraction | None = None
    reason: str = "no answer"

    @property
    def correct(self) -> bool:
        return self.reason == "ok"


class _Reject(ValueError):
    pass


def _normalize_expression(text: str, target: int | None) -> str:
    s = strip_markup(text)
    for _ in range(4):  # \frac{a}{b} -> ((a)/(b)), innermost first
        s = _FRAC.sub(r"((\1)/(\2))", s)
    for pat, rep in _LATEX_OPS:
        s = re.sub(pat, rep, s)
    if "=" in s:  # "3 + 4 * 5 = 23": keep the side that is not just the target
        sides = [p.strip() for p in s.split("=")]
        rest = [p for p in sides if p != str(target)]
        if len(sides) != 2 or len(rest) != 1:
            raise _Reject("not one expression")
        s = rest[0]
    return s.strip()


def _walk(node: ast.AST, used: list[int]) -> Fraction:
    """Compute an expression node exactly, refusing anything but the four operations."""
    if isinstance(node, ast.Expression):
        return _walk(node.body, used)
    if isinstance(node, ast.Constant) and type(node.value) is int:
        used.append(node.value)
        return Fraction(node.value)
    if isinstance(node, ast.UnaryOp) and isinstance(node.op, ast.USub | ast.UAdd):
        v = _walk(node.operand, used)
        return -v if isinstance(node.op, ast.USub) else v
    if isinstance(node, ast.BinOp) and isinstance(node.op, ast.Add | ast.Sub | ast.Mult | ast.Div):
        a, b = _walk(node.left, used), _walk(node.right, used)
        if isinstance(node.op, ast.Div):
            if b == 0:
                raise _Reject("division by zero")
            r = a / b
        else:
            r = (
                a + b
                if isinstance(node.op, ast.Add)
                else a - b
                if isinstance(node.op, ast.Sub)
                else a * b
            )
        if abs(r.numerator) > MAX_MAGNITUDE or r.denominator > MAX_MAGNITUDE:
            raise _Reject("intermediate value too large")
        return r
    raise _Reject(f"not allowed: {type(getattr(node, 'op', node)).__name__}")


def _evaluate(s: str, used: list[int]) -> Fraction:
    """Compute a normalized expression after the character whitelist (numbers go to `used`)."""
    if not s or not _EXPR_CHARS.match(s):
        raise _Reject("characters other than digits, + - * / and parentheses")
    return _walk(ast.parse(s, mode="eval"), used)


def check_expression(answer: str | None, numbers: list[int], target: int) -> ExpressionCheck:
    """Judge an expression answer: parses, uses exactly `numbers`, and equals `target`."""
    if answer is None or not answer.strip():
        return ExpressionCheck()
    if len(answer) > MAX_EXPRESSION_CHARS:
        return ExpressionCheck(reason="too long")
    try:
        used: list[int] = []
        value = _evaluate(_normalize_expression(answer, target), used)
    except (_Reject, SyntaxError, RecursionError, MemoryError, ValueError) as exc:
        reason = str(exc) if isinstance(exc, _Reject) else "does not parse"
        return ExpressionCheck(reason=f"unparsable: {reason}")
    check = ExpressionCheck(parses=True, value=value)
    check.numbers_ok = Counter(used) == Counter(int(n) for n in numbers)
    if not check.numbers_ok:
        check.reason = "wrong numbers"
    elif value != target:
        check.reason = "wrong value"
    else:
        check.reason = "ok"
    return check


def expression_value(expression: str) -> Fraction:
    """The exact value of an arithmetic expression (numbers, + - * / and parentheses), with
    the usual precedence; ValueError when it is anything else."""
    try:
        if len(expression) > MAX_EXPRESSION_CHARS:
            raise _Reject("too long")
        return _evaluate(expression.strip(), [])
    except (_Reject, SyntaxError, RecursionError) as exc:
        raise ValueError(f"not an arithmetic expression: {expression[:60]!r} ({exc})") from exc


# --------------------------------------------------------------------------- numbers


_NUMBER = re.compile(r"^([+-]?)(\d{1,3}(?:,\d{3})+|\d+)(\.\d+)?$")


def _clean_number_text(text: str) -> str:
    s = strip_markup(text)
    s = re.sub(r"\\(?:text|mathrm|textbf)\s*\{([^{}]*)\}", r"\1", s).replace("$", "")
    s = re.sub(r"^[A-Za-z]\s*=\s*", "", s.strip())  # "x = 5"
    s = re.sub(r"−|–", "-", s)
    return s.strip()


def parse_number(text: str | None) -> tuple[Fraction | None, str]:
    """Read a number literal (integer, decimal, a/b, \\frac{a}{b}); return (value, kind)."""
    if text is None or len(text) > 64:
        return None, "none"
    s = _clean_number_text(text)
    m = re.match(r"^(.*?\d)\s*[A-Za-z][A-Za-z ]{0,30}$", s)  # "18 legs": a unit after it
    if m and not re.search(r"[A-Za-z]", m.group(1)):
        s = m.group(1).strip()
    frac = re.match(r"^([+-]?)\\[dt]?frac\s*\{\s*(\d+)\s*\}\s*\{\s*(\d+)\s*\}$", s) or re.match(
        r"^([+-]?)\(?(\d+)\s*/\s*(\d+)\)?$", s
    )
    if frac:
        num, den = int(frac.group(2)), int(frac.group(3))
        if den == 0:
            return None, "none"
        value = Fraction(num, den) * (-1 if frac.group(1) == "-" else 1)
        return value, "fraction" if gcd(num, den) == 1 and den != 1 else "unreduced fraction"
    m = _NUMBER.match(s)
    if not m:
        return None, "none"
    value = Fraction(m.group(2).replace(",", "") + (m.group(3) or ""))
    return (-value if m.group(1) == "-" else value), "decimal" if m.group(3) else "integer"


def check_number(answer: str | None, gold: str) -> tuple[bool, str]:
    """A computed number equal to the gold one (an unreduced fraction is not computed)."""
    value, kind = parse_number(answer)
    gold_value, _ = parse_number(gold)
    if value is None:
        return False, "no number" if answer else "no answer"
    if kind == "unreduced fraction":
        return False, "not simplified"
    if value != gold_value:
        return False, "wrong value"
    return True, "ok"


def check_fraction(answer: str | None, numerator: int, denominator: int) -> tuple[bool, str]:
    """A fraction in lowest terms equal to numerator/denominator, written as a fraction."""
    value, kind = parse_number(answer)
    if value is None:
        return False, "no number" if answer else "no answer"
    if kind == "unreduced fraction":
        return False, "not simplified"
    if value != Fraction(numerator, denominator):
        return False, "wrong value"
    if kind != "fraction" and not (kind == "integer" and denominator == 1):
        return False, "not a fraction"
    return True, "ok"


# The role pairs of reasoning-gym's knights-and-knaves puzzles (knight/knave, saint/sinner, ...).
ROLE_WORDS = frozenset(
    [
        "knight",
        "knave",
        "pioneer",
        "laggard",
        "saint",
        "sinner",
        "hero",
        "villain",
        "angel",
        "devil",
        "altruist",
        "egoist",
        "sage",
        "fool",
    ]
)


def role_assignments(text: str) -> dict[str, str] | None:
    """{name: role} from "Zoey is a knight, and Riley is a knave"; None if a name gets two roles.

    A role word goes to the last other word before it (skipping "is", "a", "an", "and").
    """
    out: dict[str, str] = {}
    name = None
    for word in re.findall(r"[a-z]+", strip_markup(text).lower()):
        if word in ("is", "a", "an", "and"):
            continue
        if word not in ROLE_WORDS:
            name = word
        elif name is not None:
            if out.setdefault(name, word) != word:
                return None
            name = None
    return out


def check_roles(answer: str | None, gold: str) -> tuple[bool, str]:
    """Knights-and-knaves answers in open form: exactly the gold's names with the gold's roles."""
    if not answer:
        return False, "no answer"
    if len(answer) > 400:
        return False, "too long"
    got = role_assignments(answer)
    if got is None:
        return False, "a name given two roles"
    ok = got == role_assignments(gold)
    return ok, "ok" if ok else "wrong value"


def check_text(answer: str | None, gold: str) -> tuple[bool, str]:
    """Short text answers (a relation, Yes/No): equal after case, markup and punctuation."""
    if not answer:
        return False, "no answer"

    def norm(t: str) -> str:
        t = re.sub(r"\\(?:text|mathrm|textbf)\s*\{([^{}]*)\}", r"\1", strip_markup(t))
        return re.sub(r"\s+", " ", re.sub(r"[^\w\s-]", " ", t.lower())).strip()

    ok = norm(answer) == norm(gold)
    return ok, "ok" if ok else "wrong value"
