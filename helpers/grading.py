"""Grading: extract the final answer from a response and judge it against the ground truth."""

from __future__ import annotations

import re
from dataclasses import asdict, dataclass
from functools import lru_cache
from typing import Any

from .formatting import BEGIN_SOLUTION, parse_response

# Option letters; benchmarks use four (GPQA), RiddleSense five.
LETTERS = "ABCDEFGH"


def _boxed_spans(text: str) -> list[tuple[int, int, int]]:
    """(macro start, content start, content end) of each closed \\boxed{...} or \\fbox{...}."""
    spans = []
    for m in re.finditer(r"\\(?:boxed|fbox)\s*\{", text):
        depth, i = 1, m.end()
        while i < len(text) and depth:
            depth += {"{": 1, "}": -1}.get(text[i], 0)
            i += 1
        if depth == 0:
            spans.append((m.start(), m.end(), i - 1))
    return spans


def last_boxed(text: str) -> str | None:
    """Return the content of the last \\boxed{...} (or \\fbox{...}), nested braces included."""
    spans = _boxed_spans(text)
    return text[spans[-1][1] : spans[-1][2]].strip() if spans else None


def unbox(text: str) -> str:
    """Replace each \\boxed{X} (or \\fbox{X}) by X, keeping the rest of the text as it is."""
    out, pos = [], 0
    for start, c0, c1 in _boxed_spans(text):
        if start < pos:  # a box inside a box already unwrapped
            continue
        out += [text[pos:start], unbox(text[c0:c1].strip())]
        pos = c1 + 1
    return "".join(out) + text[pos:]


ANSWER_IS_RE = re.compile(
    r"(?:final answer|the answer|answer)\s*(?:is|:|=)\s*[:\s]*(.+?)(?:\.\s|\.$|\n|$)", re.I
)


def _strip_markup(ans: str) -> str:
    ans = ans.strip().strip("$").strip()
    ans = re.sub(r"^\*\*(.*)\*\*$", r"\1", ans)  # **73** -> 73
    ans = re.sub(r"^\\text\{(.*)\}$", r"\1", ans)
    return ans.strip().rstrip(".").strip()


def extract_answer(text: str) -> tuple[str | None, str]:
    """Return (answer, where it came from): solution, thought (no solution part), or none."""
    parsed = parse_response(text)
    if parsed.solution is not None:
        regions = [(parsed.solution, "solution")]
    elif BEGIN_SOLUTION not in text and parsed.thought is not None:
        regions = [(parsed.thought, "thought")]
    else:
        regions = [(text, "response")]
    for region, where in regions:
        boxed = last_boxed(region)
        if boxed is not None:
            return _strip_markup(boxed), where
        stated = ANSWER_IS_RE.findall(region)
        if stated:
            return _strip_markup(stated[-1]), where
    return None, "none"


@lru_cache(maxsize=8)
def _mc_patterns(letters: str) -> tuple[re.Pattern[str], ...]:
    """Patterns for an explicit choice among `letters` (A-D for GPQA, A-E for RiddleSense)."""
    cls = f"[{letters[0]}-{letters[-1]}{letters[0].lower()}-{letters[-1].lower()}]"
    up = f"[{letters[0]}-{letters[-1]}]"
    return (
        re.compile(rf"\\boxed\{{\s*(?:\\text\{{)?\(?({cls})\)?\}}?\s*\}}"),
        re.compile(rf"answer\s*(?:is|:)\s*(?:option\s*)?\**\(?({cls})\)?\**(?![A-Za-z])", re.I),
        re.compile(rf"^\s*\**\(?({up})\)?\**\.?\s*$", re.M),  # a line that is only the letter
    )


def extract_choice(text: str, n_choices: int = 4) -> tuple[str | None, str]:
    """Return the explicit choice letter of a multiple-choice response, never a stray capital."""
    parsed = parse_response(text)
    region, where = (
        (parsed.solution, "solution")
        if parsed.solution is not None
        else (parsed.thought, "thought")
        if parsed.thought is not None and BEGIN_SOLUTION not in text
        else (text, "response")
    )
    for pat in _mc_patterns(LETTERS[:n_choices]):
        hits = pat.findall(region)
        if hits:
            return hits[-1].upper(), where
    return None, "none"


# Two numbers joined by an arithmetic operator: an expression still to be computed.
_OPERATION_RE = re.compile(r"\d\s*(?:[-+*×÷^]|\\times|\\cdot|\\div)\s*[({]?-?\d")


def restates_expression(gold: str, pred: str) -> bool:
    """Is pred an uncomputed arithmetic expression where gold is a computed value?"""
    return bool(_OPERATION_RE.search(pred)) and not _OPERATION_RE.search(gold)


def math_equal(gold: str, pred: str) -> bool:
    """Judge math equivalence with math-verify, gold first; fall back to exact text."""
    if pred is None:
        return False
    from math_verify import parse, verify

    def norm(s: str) -> str:
        return re.sub(r"\s+", "", s).lower()

    if norm(gold) == norm(pred):
        return True
    try:
        g = parse(f"${gold}$")
        p = parse(f"${pred}$")
        return bool(g) and bool(p) and bool(verify(g, p))
    except Exception:  # math-verify can raise on odd LaTeX; treat as not equal
        return False


def gym_score(answer: str | None, example: dict[str, Any]) -> float:
    """Score with reasoning-gym's own verifier for the example's source dataset."""
    import reasoning_gym as rg

    from .tasks import gym_entry

    if answer is None:
        return 0.0
    fn = rg.get_score_answer_fn(example["gym"]["dataset"])
    try:
        return float(fn(answer, gym_entry(example)))
    except Exception:  # a verifier that chokes on a malformed answer scores it wrong
        return 0.0


@dataclass
class Grade:
    """The verdict on one response."""

    correct: bool
    answer: str | None
    answer_from: str
    truncated: bool
    well_formed: bool

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def grade(response: str, example: dict[str, Any], stop_reason: str = "end") -> Grade:
    """Grade a response to a benchmark or pool example (schema of helpers.tasks)."""
    # A loop stopped early (generation.stop_loops) would have run to the limit: truncated too.
    truncated = stop_reason in ("length", "loop")
    well_formed = parse_response(response).well_formed
    if example["answer_type"] == "open":  # prose or code: no grader here, see collect.label
        return Grade(False, None, "none", truncated, well_formed)
    if example["answer_type"] == "choice":
        ans, where = extract_choice(response, len(example.get("choices") or "ABCD"))
        ok = ans is not None and ans == example["answer"]
    else:
        ans, where = extract_answer(response)
        if example["answer_type"] == "gym":
            from .tasks import FAMILIES

            family = FAMILIES.get(example.get("family", ""))
            # The math-verify fallback forgives formatting ("1/2" for "0.5"), but it would also
            # evaluate an answer that merely restates the question's expression: not computed.
            ok = gym_score(ans, example) >= 1.0 or (
                not (family and family.verifier_only)
                and ans is not None
                and not restates_expression(example["answer"], ans)
                and math_equal(example["answer"], ans)
            )
        else:
            ok = ans is not None and math_equal(example["answer"], ans)
    return Grade(bool(ok) and not truncated, ans, where, truncated, well_formed)
