"""The cleaning chain: one set of rules, in one order, with one set of thresholds.

Distilled demonstrations (unify) and explored trajectories (selection) pass the same chain,
with the thresholds of the profile's `unify` section. A stage adds the rules only it can
judge before the content rules (a teacher's label, a malformed rollout) or after them
(contamination); duplicates of an earlier kept item of the same problem come last.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

from . import filters

# Every rule's name, in the order a record meets them.
RULES = (
    "unverified",
    "incorrect",
    "malformed",
    "language_mixing",
    "repetition",
    "gibberish",
    "short_thought",
    "contaminated",
    "exact_duplicate",
    "near_duplicate",
    "solution_disagrees",
)

Rule = tuple[str, Callable[[dict[str, Any]], bool]]


def content_rule(response: str, thought: str, cfg: Any) -> str | None:
    """The first content rule a response breaks (cfg: the profile's unify section), or None."""
    if filters.has_language_mixing(response):
        return "language_mixing"
    if filters.has_repetition(thought, cfg.repetition_ngram, cfg.repetition_max_share):
        return "repetition"
    if filters.is_gibberish(thought):
        return "gibberish"
    if filters.too_short(thought, cfg.min_thought_words):
        return "short_thought"
    return None


def clean(
    items: list[dict[str, Any]],
    cfg: Any,
    *,
    before: Sequence[Rule] = (),
    after: Sequence[Rule] = (),
) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """Run every item through the chain; return (kept, rejected), each rejected one with its
    `rule`. Items carry `response`, `thought` and `problem_id`."""
    kept, rejected = [], []
    for item in items:
        rule = next((name for name, broken in before if broken(item)), None)
        rule = rule or content_rule(item["response"], item["thought"], cfg)
        rule = rule or next((name for name, broken in after if broken(item)), None)
        (rejected if rule else kept).append({**item, "rule": rule} if rule else item)
    exact, near = filters.near_duplicates(kept, "thought", cfg.near_duplicate_jaccard)
    out = []
    for i, item in enumerate(kept):
        if i in exact or i in near:
            rejected.append({**item, "rule": "exact_duplicate" if i in exact else "near_duplicate"})
        else:
            out.append(item)
    return out, rejected
