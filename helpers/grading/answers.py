"""Reading answers out of responses: boxes, answer statements and option letters.

Everything here reads text and never evaluates it. Each search is one pass over the response,
so a looping response with thousands of unclosed boxes costs no more than its length.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from .formatting import BEGIN_SOLUTION, parse_response
from .problem import LETTERS

# One token of the box search: a box opening, or a brace.
_BOX_TOKEN = re.compile(r"\\(?:boxed|fbox)\s*\{|[{}]")


def boxed_spans(text: str) -> list[tuple[int, int, int]]:
    """(macro start, content start, content end) of each closed \\boxed{...} or \\fbox{...}."""
    stack: list[tuple[bool, int, int]] = []  # (is a box, macro start, content start)
    spans = []
    for m in _BOX_TOKEN.finditer(text):
        if m.group() == "}":
            if stack:
                is_box, start, c0 = stack.pop()
                if is_box:
                    spans.append((start, c0, m.start()))
        else:
            stack.append((m.group() != "{", m.start(), m.end()))
    spans.sort()
    return spans


def last_boxed(text: str) -> str | None:
    """Return the content of the last \\boxed{...} (or \\fbox{...}), nested braces included."""
    spans = boxed_spans(text)
    return text[spans[-1][1] : spans[-1][2]].strip() if spans else None


@dataclass
class Reading:
    """An answer read from a response: the text, the region it came from, and a note."""

    answer: str | None
    where: str  # solution | thought | response | none
    note: str = ""  # why there is no answer, when there is none ("several options", ...)


def answer_region(text: str) -> tuple[str, str]:
    """The part of a response that holds its final answer: the solution, else the thought."""
    parsed = parse_response(text)
    if parsed.solution is not None:
        return parsed.solution, "solution"
    if BEGIN_SOLUTION not in text and parsed.thought is not None:
        return parsed.thought, "thought"
    return text, "response"


# "The final answer is: X", "**Answer:** X", "the correct option is (C)": one line's statement.
_STATEMENT = re.compile(
    r"\b(?:final answer|answer|correct (?:option|choice|letter)|the option|the choice)"
    r"\s*\**\s*(?:is(?![a-z])|:|=)\s*\**\s*:?\s*\**[ \t]*(?P<ans>[^\n]*)",
    re.I,
)
# Markup that wraps an answer without changing it.
_WRAPPERS = re.compile(r"\\(?:textbf|text|mathbf|mathrm|textit|emph|mbox)\s*\{([^{}]*)\}")


def unwrap(text: str) -> str:
    """Drop \\text{}-like wrappers and markdown emphasis around words, keeping their content."""
    text = _WRAPPERS.sub(r"\1", text)
    return re.sub(r"\*\*|__", "", text)


# Words between "the answer is" and the answer itself ("the answer is thus 73").
_FILLER = re.compile(
    r"^(?:(?:thus|therefore|hence|so|then|simply|just|clearly|indeed|actually|exactly|"
    r"precisely|now|finally|equal to|given by)\b[\s,:]*)+",
    re.I,
)
# Where a statement's answer ends: its sentence, then any clause that explains it.
_SENTENCE_END = re.compile(r"\.(?:\s|$)")
_EXPLANATION = re.compile(r",?\s+(?:since|because|as|which|given|where|when)\b")


def answer_clause(raw: str) -> str:
    """The part of an answer statement that is the answer: filler words dropped, and a negated
    candidate ("not 72; it is 73") passed over for the one the statement settles on."""
    ans = _FILLER.sub("", raw.strip())
    if re.match(r"not\b", ans, re.I):
        rest = re.search(
            r"(?:;|,|\bbut\b)\s*(?:but\s+)?(?:(?:it|the answer)\s+is\s+|it's\s+)?(.+)$", ans
        )
        if not rest or re.match(r"not\b", rest.group(1).strip(), re.I):
            return ""
        ans = _FILLER.sub("", rest.group(1).strip())
    return ans


def _statement_answer(raw: str) -> str:
    """A statement's answer: its sentence, the clause it settles on, no explanation or markup."""
    cut = _SENTENCE_END.search(raw)
    ans = answer_clause(raw[: cut.start()] if cut else raw)
    why = _EXPLANATION.search(ans)
    return strip_markup(ans[: why.start()] if why else ans)


_BOLD = re.compile(r"\*\*([^*\n]{1,80})\*\*")


def _bold_ending(region: str) -> str | None:
    """The bold span on a response's last line ("... is **73**"), read when nothing else is."""
    lines = [ln for ln in region.strip().splitlines() if ln.strip()]
    spans = _BOLD.findall(lines[-1]) if lines else []
    return strip_markup(spans[-1]) if spans else None


def strip_markup(ans: str) -> str:
    """Remove $...$, bold and \\text{} around an answer, and a final period."""
    ans = ans.strip().strip("$").strip()
    ans = re.sub(r"^\*\*(.*)\*\*$", r"\1", ans)  # **73** -> 73
    ans = re.sub(r"^\\text\{(.*)\}$", r"\1", ans)
    return ans.strip().rstrip(".").strip()


def read_answer(text: str) -> Reading:
    """The final answer of a response: its last box, else its last answer statement."""
    region, where = answer_region(text)
    boxed = last_boxed(region)
    if boxed is not None:  # the format asks for a box: a box outranks prose
        return Reading(strip_markup(boxed), where)
    stated = [_statement_answer(m.group("ans")) for m in _STATEMENT.finditer(unwrap(region))]
    stated = [s for s in stated if s]
    if stated:
        return Reading(stated[-1], where)
    bold = _bold_ending(region)
    if bold:
        return Reading(bold, where)
    return Reading(None, "none", "no answer")


def extract_answer(text: str) -> tuple[str | None, str]:
    """Return (answer, where it came from): solution, thought (no solution part), or none."""
    r = read_answer(text)
    return r.answer, r.where


# --------------------------------------------------------------------------- choices


def _norm_option(text: str) -> str:
    return re.sub(r"[^a-z0-9]+", " ", unwrap(text).lower()).strip()


def _letters_named(text: str, letters: str) -> set[str]:
    """Option letters a text names explicitly: '(C)', a capital standing alone, 'A or C'."""
    cls = f"[{letters[0]}-{letters[-1]}]"
    found = set(re.findall(rf"\(({cls})\)", text))
    # A capital counts when nothing word-like follows it ("A knight" is an article) ...
    found |= set(re.findall(rf"(?<![\w'])({cls})(?=\s*(?:$|[,.;:)\]]|\s(?:or|and|&)\b))", text))
    # ... or when it follows "or"/"and"/a comma in a list of options.
    found |= set(re.findall(rf"(?:\b(?:or|and)|[,&/])\s*\(?({cls})\)?(?![\w'])", text))
    return found


def parse_choice(
    span: str, letters: str, choices: list[str] | None = None
) -> tuple[str | None, bool]:
    """Read one answer span as an option: (letter or None, whether it names several options)."""
    s = strip_markup(unwrap(span)).strip().strip("'\"`").strip()
    s = re.sub(r"^(?:option|choice)\s+", "", s, flags=re.I)
    lo, hi = letters[0], letters[-1]
    lead = re.match(rf"^(\()?([{lo}-{hi}{lo.lower()}-{hi.lower()}])(\))?(?=$|[\s.:,)\]])", s)
    if lead:
        letter, rest = lead.group(2), s[lead.end() :].strip(" .:)")
        # A lower-case letter is an option only on its own or in parentheses: "a knight" is not.
        if letter.islower() and rest and not (lead.group(1) and lead.group(3)):
            lead = None
        else:
            letter = letter.upper()
            text = _norm_option(rest)
            option = _norm_option(choices[letters.index(letter)]) if choices else ""
            own = bool(option and text) and (text.startswith(option) or option.startswith(text))
            others = set() if own else _letters_named(rest, letters) - {letter}
            return (None, True) if others else (letter, False)
    named = _letters_named(s, letters)
    if len(named) > 1:
        return None, True
    if named:
        return named.pop(), False
    if choices:  # the option's text instead of its letter
        hits = [i for i, c in enumerate(choices) if _norm_option(c) == _norm_option(s) and s]
        if len(hits) == 1:
            return letters[hits[0]], False
    return None, False


def read_choice(text: str, n_choices: int = 4, choices: list[str] | None = None) -> Reading:
    """The option a multiple-choice response picks; never a stray capital, never two options."""
    letters = LETTERS[:n_choices]
    region, where = answer_region(text)
    region = unwrap(region)
    boxes = [region[c0:c1] for _, c0, c1 in boxed_spans(region)]
    statements = [answer_clause(m.group("ans")) for m in _STATEMENT.finditer(region)]
    lone = re.findall(rf"^[ \t]*\(?([{letters[0]}-{letters[-1]}])\)?\.?[ \t]*$", region, re.M)
    # Boxes outrank statements, statements outrank a lone letter; within a kind the last wins,
    # and a span that names no option (a box of working) gives way to the one before it.
    for spans in (boxes, statements, lone):
        for span in reversed(spans):
            letter, several = parse_choice(span, letters, choices)
            if several:
                return Reading(None, where, "several options")
            if letter:
                return Reading(letter, where)
    return Reading(None, "none", "no answer")
