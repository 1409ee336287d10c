"""The warm-up's data: the world's atomic skills and its normal problems, no thought.

The paper's backbone is an instruct model that already solves 80% of MATH; SmolLM2-135M cannot
add two digits. The warm-up is this world's analogue of an instruct model's training: short
examples, no thought. Two kinds:

- atomic steps, written the way the teachers' thoughts write them ("13 - 5 = 8."): every
  operation the teachers' thoughts take on the pool families, drawn from the teachers' own
  work on problems of a seed range of the warm-up's own (so a thought is a chain of steps the
  warmed-up backbone has seen), and the number of legs of each animal the word problems name;
- normal-family problems with their answer in a box, alone or after one line that computes it
  at once (`warmup.answers`): what a fast thinker writes. The answer alone leaves leg counting
  out of a 135M model's reach (two products and a sum in the head); the line names the products
  and leaves the arithmetic unchecked, where thinking slowly still pays.

No warm-up problem is a benchmark problem (decontamination drops any that overlap).
"""

from __future__ import annotations

import random
import re
from typing import Any

from ..grading.problem import stable_hash
from .seeds import seed_base
from .solvers import SLIP_NOTE
from .tasks import POOL_FAMILIES, build_embedded, overlapping

STEP = re.compile(r"(?<![\d)])(-?\d+) ([-+*]) \(?(-?\d+)\)? = (-?\d+)(?!\d)")


def step_facts(thought: str) -> list[tuple[int, str, int, int]]:
    """The correct `a op b = c` steps of a thought (slips and check lines left out)."""
    out = []
    for para in thought.split("\n\n"):
        if SLIP_NOTE in para or para.startswith(("Check", "Verify")):
            continue
        for a, op, b, c in STEP.findall(para):
            x, y, z = int(a), int(b), int(c)
            if (x + y if op == "+" else x - y if op == "-" else x * y) == z:
                out.append((x, op, y, z))
    return out


def _math_problems(n: int, seed: int) -> list[dict[str, Any]]:
    families = POOL_FAMILIES["normal_math"] + POOL_FAMILIES["hard_math"]
    return build_embedded(families, n, seed_base("warmup_steps", seed), "warmup", "warmup")


def atomic_rows(n: int, seed: int, rng: random.Random) -> list[dict[str, Any]]:
    """n atomic-step examples, drawn from the steps the teachers take on warm-up problems."""
    from .teachers import work_problem

    facts: list[tuple[int, str, int, int]] = []
    for i, p in enumerate(_math_problems(max(n // 4, 20), seed)):
        facts += step_facts("\n\n".join(work_problem(p, random.Random(stable_hash(seed, i))).steps))
    rows = []
    for k in range(n):
        a, op, b, c = rng.choice(facts)
        shown = f"({b})" if b < 0 else str(b)
        rows.append(
            {
                "id": f"warmup-step-{k}",
                "question": f"What is {a} {op} {shown}?",
                "combined_text": f"{a} {op} {shown} = {c}.",
            }
        )
    return rows


def leg_rows(n: int, rng: random.Random) -> list[dict[str, Any]]:
    """n examples of how many legs an animal has (the facts the word problems use)."""
    from reasoning_gym.arithmetic.leg_counting import ANIMALS

    animals = sorted(ANIMALS)
    return [
        {
            "id": f"warmup-legs-{k}",
            "question": f"How many legs does a {a} have?",
            "combined_text": f"A {a} has {ANIMALS[a]} legs.",
        }
        for k, a in enumerate(rng.choice(animals) for _ in range(n))
    ]


def one_line(problem: dict[str, Any]) -> str:
    """A fast thinker's answer to a normal problem: the whole calculation in one line, its
    value worked out at once, then the boxed answer ("2 * 6 + 1 * 4 = 16. \\boxed{16}")."""
    from reasoning_gym.arithmetic.leg_counting import ANIMALS

    from .teachers import gym_entry, work_problem

    meta = gym_entry(problem)["metadata"]
    if problem["family"] == "arithmetic":
        line = meta["expression"]
    elif problem["family"] == "equations":  # the teachers' first step: "x = b - a"
        line = work_problem(problem, random.Random(0), slip_rate=0.0).steps[0].rstrip(".")
    else:
        line = " + ".join(f"{n} * {ANIMALS[a]}" for a, n in meta["animals"].items())
    return f"{line} = {problem['answer']}. \\boxed{{{problem['answer']}}}"


def answer_rows(
    n: int, seed: int, references: list[dict[str, Any]], instruction: str = "", style: str = "boxed"
) -> list[dict[str, Any]]:
    """n normal-family problems with their answer (`style`: boxed alone, or after `one_line`),
    asked with `instruction` (a row's own `prompt`); none overlapping a reference."""
    problems = build_embedded(
        POOL_FAMILIES["normal_math"], n, seed_base("warmup_answers", seed), "warmup", "warm"
    )
    flagged = overlapping(problems, references)
    return [
        {
            "id": p["id"],
            "question": p["question"],
            "combined_text": one_line(p) if style == "line" else f"\\boxed{{{p['answer']}}}",
            **({"prompt": instruction} if instruction else {}),
        }
        for p in problems
        if p["id"] not in flagged
    ]


def warmup_rows(
    cfg: Any, seed: int, references: list[dict[str, Any]], instruction: str = ""
) -> list[dict[str, Any]]:
    """The warm-up's examples (cfg: the profile's warmup section), in a seeded order; the
    normal problems carry `instruction` when the section asks for it."""
    rng = random.Random(stable_hash(seed, "warmup"))
    n_legs = round(cfg.examples * cfg.facts_share)
    n_steps = round(cfg.examples * cfg.steps_share)
    rows = (
        atomic_rows(n_steps, seed, rng)
        + leg_rows(n_legs, rng)
        + answer_rows(
            cfg.examples - n_steps - n_legs,
            seed,
            references,
            instruction if cfg.instruction else "",
            cfg.answers,
        )
    )
    rng.shuffle(rows)
    return rows
