"""The slow-thinking prompt and the thought/solution format: build, parse, unify."""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

BEGIN_THOUGHT = "<|begin_of_thought|>"
END_THOUGHT = "<|end_of_thought|>"
BEGIN_SOLUTION = "<|begin_of_solution|>"
END_SOLUTION = "<|end_of_solution|>"
MARKERS = (BEGIN_THOUGHT, END_THOUGHT, BEGIN_SOLUTION, END_SOLUTION)

# The project's own wording of the slow-thinking instruction. A profile's prompt_file
# replaces it (for example with the exact text of a public release).
DEFAULT_PROMPT = (
    "Think slowly, then answer in two parts. "
    f"Thought, between {BEGIN_THOUGHT} and {END_THOUGHT}: work step by step, "
    "check your results and fix any mistake you find. "
    f"Solution, between {BEGIN_SOLUTION} and {END_SOLUTION}: a short, clean derivation "
    "that ends with the final answer in \\boxed{}.\n"
    "Problem:"
)


def load_prompt(prompt_file: str | None = None) -> str:
    """Return the slow-thinking instruction: the project's own, or a profile's file."""
    if prompt_file is None:
        return DEFAULT_PROMPT
    from ..pipeline.config import resolve_path

    return resolve_path(prompt_file).read_text().strip()


def user_turn(question: str, prompt: str | None = None) -> str:
    """Put the instruction in the user turn before the question, as the paper does.

    An empty instruction leaves the question alone (the warm-up's answer-only turns).
    """
    instruction = prompt if prompt is not None else DEFAULT_PROMPT
    return f"{instruction}\n{question.strip()}" if instruction else question.strip()


def chat_messages(question: str, prompt: str | None = None) -> list[dict[str, str]]:
    """Return the chat messages for one question: an empty system turn, then the user's.

    Without a system message, chat templates write their own default one (SmolLM2's is 16
    tokens, "You are a helpful AI assistant named SmolLM..."; Qwen2.5's names Qwen). The method
    does not use it; the paper puts its instruction in the user turn. Left to the template it
    is repeated in every training row, so the turn is given, empty.
    """
    return [
        {"role": "system", "content": ""},
        {"role": "user", "content": user_turn(question, prompt)},
    ]


def render_prompt(tokenizer: Any, question: str, prompt: str | None = None) -> str:
    """Render the chat prompt text (with the generation prompt) for a local model."""
    return tokenizer.apply_chat_template(
        chat_messages(question, prompt), tokenize=False, add_generation_prompt=True
    )


def solution_prefix(thought: str) -> str:
    """A response up to its solution marker (it ends there: a token boundary for training)."""
    return f"{BEGIN_THOUGHT}\n\n{thought.strip()}\n\n{END_THOUGHT}\n\n{BEGIN_SOLUTION}"


def format_response(thought: str, solution: str) -> str:
    """Write a response in the thought/solution format."""
    return f"{solution_prefix(thought)}\n\n{solution.strip()}\n\n{END_SOLUTION}"


@dataclass
class Parsed:
    """A response split into its parts, with what is missing or malformed."""

    thought: str | None
    solution: str | None
    problems: list[str]

    @property
    def well_formed(self) -> bool:
        return not self.problems


def _between(text: str, start: str, end: str) -> tuple[str | None, bool]:
    """Return (content after start up to end or to the text's end, whether end was seen)."""
    i = text.find(start)
    if i < 0:
        return None, False
    rest = text[i + len(start) :]
    j = rest.find(end)
    return (rest[:j], True) if j >= 0 else (rest, False)


def parse_response(text: str) -> Parsed:
    """Split a response into thought and solution and list which parts are missing."""
    problems: list[str] = []
    thought, thought_closed = _between(text, BEGIN_THOUGHT, END_THOUGHT)
    if thought is None:
        problems.append("no thought start")
    elif not thought_closed:
        problems.append("thought not closed")
        thought = thought.split(BEGIN_SOLUTION)[0]
    solution, solution_closed = _between(text, BEGIN_SOLUTION, END_SOLUTION)
    if solution is None:
        problems.append("no solution start")
    elif not solution_closed:
        problems.append("solution not closed")
    for m in MARKERS:
        if text.count(m) > 1:
            problems.append(f"{m} repeated")
    # Each marker present must come after the ones before it: a solution opened inside the
    # thought ("interleaved") or a thought after the solution is not the format.
    seen = [text.find(m) for m in MARKERS if m in text]
    if seen != sorted(seen):
        problems.append("markers out of order")
    if thought is not None and not thought.strip():
        problems.append("empty thought")
    if solution is not None and not solution.strip():
        problems.append("empty solution")
    return Parsed(
        thought.strip() if thought is not None else None,
        solution.strip() if solution is not None else None,
        problems,
    )


THINK_RE = re.compile(r"<think>(.*?)</think>(.*)", re.S)


def split_r1(text: str) -> tuple[str, str] | None:
    """Split an R1-style response ('<think>thought</think> solution'); None if unmarked."""
    m = THINK_RE.search(text)
    if not m:
        return None
    thought, solution = m.group(1).strip(), m.group(2).strip()
    return (thought, solution) if thought and solution else None
