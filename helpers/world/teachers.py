"""Embedded teachers: two programmatic slow thinkers in the shapes of the two o1-like systems.

They really work each problem (compute step by step, check, catch slips, search and backtrack on
hard problems) and write it out: the R1-like one marks its thought off (<think>...</think>) and
then writes a short solution; the QwQ-like one writes one stream that ends with the answer and
no solution section. Wording varies with the seed; defect rates mimic real distilled data.
Which solver works a family is the table SOLVERS.
"""

from __future__ import annotations

import random
import re
from collections.abc import Callable
from typing import Any

from ..grading.problem import LETTERS, gym_entry
from . import puzzles, solvers
from .work import Voice, Work

CHINESE = ["让我们再检查一下。", "所以我们需要仔细计算。", "这一步很重要。", "嗯，我想想。"]


def _expression(entry: dict[str, Any], voice: Voice, slip: float) -> Work:
    return solvers.solve_expression(entry["metadata"]["expression"], voice, slip)


def _countdown(entry: dict[str, Any], voice: Voice, slip: float) -> Work:
    m = entry["metadata"]
    return solvers.solve_countdown(list(m["numbers"]), m["target"], voice)


Solver = Callable[[dict[str, Any], Voice, float], Work]
# family -> solver(reasoning-gym entry, voice, slip rate)
SOLVERS: dict[str, Solver] = {
    "arithmetic": _expression,
    "long_chain": _expression,
    "equations": lambda e, v, s: solvers.solve_equation(
        e["metadata"]["equation"], e["metadata"]["variable"], v
    ),
    "word_problems": lambda e, v, s: solvers.solve_legs(e["metadata"]["animals"], v),
    "countdown": _countdown,
    "knights_knaves": lambda e, v, s: puzzles.solve_knights(e, v),
    "family": lambda e, v, s: puzzles.solve_story(e, v),
    "siblings": lambda e, v, s: puzzles.solve_siblings(e, v),
    "syllogism": lambda e, v, s: puzzles.solve_syllogism(e, v),
}


def work_problem(problem: dict[str, Any], rng: random.Random, slip_rate: float = 0.2) -> Work:
    """Work one problem of the embedded pools from its question and generator entry."""
    fam = problem["family"]
    if fam not in SOLVERS:
        raise ValueError(f"no embedded solver for family '{fam}': add one to teachers.SOLVERS")
    voice = Voice(rng)
    work = SOLVERS[fam](gym_entry(problem), voice, slip_rate)
    if problem["domain"] != "math":  # a math question is one short line: nothing to restate
        work.steps.insert(0, voice.restate(problem["question"]))
    if problem["answer_type"] == "choice":
        letter = option_letter(problem, work.answer)
        work.steps.append(f"That matches option ({letter}).")
        work.summary.append(f"This is option ({letter}).")
        work.answer = letter
    return work


def option_letter(problem: dict[str, Any], answer: str) -> str:
    """The letter of the option a worked answer is; an answer that is no option is an error."""
    choices = [c.strip().rstrip(".") for c in problem["choices"]]
    text = answer.strip().rstrip(".")
    if text not in choices:
        raise ValueError(
            f"problem {problem['id']}: the worked answer {text!r} is none of its options "
            f"{choices}: the solver and the option builder disagree"
        )
    return LETTERS[choices.index(text)]


def _wrong(answer: str, problem: dict[str, Any], rng: random.Random) -> str:
    if problem["answer_type"] == "choice":
        return rng.choice([x for x in "ABCD" if x != answer])
    try:
        return str(int(answer) + rng.choice([-3, -1, 1, 2, 7]))
    except ValueError:  # an expression (countdown): one of its numbers changed
        return re.sub(r"\d+", lambda m: str(int(m.group()) + 1), answer, count=1)


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
        summary = " ".join(work.summary)
        text = f"<think>\n{thought}\n</think>\n\n{summary + ' ' if summary else ''}"
        text += f"The answer is \\boxed{{{answer}}}."
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
