"""A worked problem and the teachers' voice: what every solver returns, and how it words it."""

from __future__ import annotations

import random
import re
from dataclasses import dataclass, field
from typing import Any


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
