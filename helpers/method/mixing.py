"""Data mixtures by domain group and difficulty, with their statistics (stage 03)."""

from __future__ import annotations

import random
from itertools import zip_longest
from typing import Any


def build_mixture(
    demos: list[dict[str, Any]], size: int, ratios: dict[str, float], seed: int
) -> tuple[list[dict[str, Any]], dict[str, int]]:
    """Sample a mixture (distinct problems first, families in turn); return it and its shortfall."""
    rng = random.Random(seed)
    groups = list(ratios)
    targets = {g: round(size * ratios[g]) for g in groups}
    targets[groups[-1]] += size - sum(targets.values())  # rounding goes to the last group
    out, shortfall = [], {}
    for g in groups:
        pool = [d for d in demos if d["group"] == g]
        rng.shuffle(pool)
        seen: set[str] = set()
        first = [d for d in pool if not (d["problem_id"] in seen or seen.add(d["problem_id"]))]
        rest = [d for d in pool if d not in first]
        chosen = (interleave(first) + interleave(rest))[: targets[g]]
        if len(chosen) < targets[g]:
            shortfall[g] = targets[g] - len(chosen)
        out += chosen
    rng.shuffle(out)
    return out, shortfall


def interleave(rows: list[dict[str, Any]], key: str = "family") -> list[dict[str, Any]]:
    """Round-robin rows over their `key` values, keeping each value's order."""
    # A uniform draw of a few dozen demonstrations can leave a family with one or none (the
    # tiny profile's 17 normal-math demonstrations over six families); round-robin gives each
    # family its share before any gets a second helping. Rows without the key form one queue.
    queues: dict[Any, list[dict[str, Any]]] = {}
    for r in rows:
        queues.setdefault(r.get(key), []).append(r)
    return [r for turn in zip_longest(*queues.values()) for r in turn if r is not None]


def mixture_stats(
    name: str, mixture: list[dict[str, Any]], shortfall: dict[str, int]
) -> dict[str, Any]:
    """Size, share per group, and thought length (words) of a mixture."""
    n = max(1, len(mixture))
    groups = sorted({d["group"] for d in mixture})
    lengths = [d["thought_words"] for d in mixture]
    return {
        "mixture": name,
        "size": len(mixture),
        "share": {g: round(sum(d["group"] == g for d in mixture) / n, 3) for g in groups},
        "mean_thought_words": round(sum(lengths) / n, 1),
        "thought_words_by_group": {
            g: round(
                sum(d["thought_words"] for d in mixture if d["group"] == g)
                / max(1, sum(d["group"] == g for d in mixture)),
                1,
            )
            for g in groups
        },
        "shortfall": shortfall,
    }
