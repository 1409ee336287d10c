"""Statistics for small benchmarks: bootstrap intervals and paired tests on the same problems.

Two variants evaluated on the same 30-40 problems are compared problem by problem: the paired
bootstrap resamples problems (keeping each problem's pair of verdicts together) for an interval
of the accuracy difference, and McNemar's exact test asks whether the problems only one of them
solves split more unevenly than a fair coin would. Overlapping unpaired intervals say little.
"""

from __future__ import annotations

import math
import random


def bootstrap_ci(correct: list[int], n_boot: int = 2000, seed: int = 0) -> tuple[float, float]:
    """95% bootstrap interval of an accuracy (in %)."""
    if not correct:
        return (0.0, 0.0)
    rng = random.Random(seed)
    n = len(correct)
    stats = sorted(100.0 * sum(rng.choices(correct, k=n)) / n for _ in range(n_boot))
    return stats[int(0.025 * n_boot)], stats[int(0.975 * n_boot) - 1]


def paired_bootstrap(
    a: list[int], b: list[int], n_boot: int = 2000, seed: int = 0
) -> tuple[float, float, float]:
    """Accuracy difference a - b (points) and its 95% paired-bootstrap interval."""
    if len(a) != len(b):
        raise ValueError(
            f"paired comparison of {len(a)} and {len(b)} verdicts: not the same problems"
        )
    n = len(a)
    if n == 0:
        return 0.0, 0.0, 0.0
    diffs = [x - y for x, y in zip(a, b, strict=True)]
    rng = random.Random(seed)
    stats = sorted(100.0 * sum(rng.choices(diffs, k=n)) / n for _ in range(n_boot))
    return 100.0 * sum(diffs) / n, stats[int(0.025 * n_boot)], stats[int(0.975 * n_boot) - 1]


def mcnemar(a: list[int], b: list[int]) -> tuple[int, int, float]:
    """McNemar's exact test: (solved by a only, by b only, two-sided p-value)."""
    if len(a) != len(b):
        raise ValueError(
            f"paired comparison of {len(a)} and {len(b)} verdicts: not the same problems"
        )
    only_a = sum(1 for x, y in zip(a, b, strict=True) if x and not y)
    only_b = sum(1 for x, y in zip(a, b, strict=True) if y and not x)
    n = only_a + only_b
    if n == 0:
        return 0, 0, 1.0
    tail = sum(math.comb(n, k) for k in range(0, min(only_a, only_b) + 1)) / 2**n
    return only_a, only_b, min(1.0, 2 * tail)
