"""Where every embedded problem set draws its generator seeds: one table, checked disjoint.

A family's reasoning-gym generator for a use is seeded `base + stride * (profile seed + shift)
+ hash(family) % FAMILY_SPREAD` (tasks.build_embedded adds the family's part). Two uses of the
same family draw the same problems only if their seeds meet, so uses must never meet for any
profile seed: `tests/test_seeds.py` checks every pair over SEEDS_CHECKED profile seeds.
Decontamination (tasks.overlapping) still drops any overlap with a benchmark or a pool.
"""

from __future__ import annotations

from dataclasses import dataclass

FAMILY_SPREAD = 100_000  # hash(family) % FAMILY_SPREAD is added to a use's seed
SEEDS_CHECKED = range(100)  # the profile seeds the table is guaranteed disjoint for


@dataclass(frozen=True)
class SeedRange:
    """A use's seeds: base + stride * (profile seed + shift)."""

    base: int
    stride: int = 7919
    shift: int = 0
    fixed: bool = False  # the same for every profile seed (the benchmarks)

    def seed(self, profile_seed: int) -> int:
        """The use's seed base for a profile seed (the family's part is added by the caller)."""
        return self.base if self.fixed else self.base + self.stride * (profile_seed + self.shift)


SEEDS: dict[str, SeedRange] = {
    "benchmarks": SeedRange(9_000_000, fixed=True),
    "pools": SeedRange(1_000),
    "warmup_steps": SeedRange(20_000),  # problems whose teacher steps become atomic examples
    "warmup_answers": SeedRange(20_000, stride=104_729, shift=1),
    "explore": SeedRange(3_000_000),
    "dev": SeedRange(5_000_000),  # calibration and probes: never a benchmark, pool or explore
    "bench_demos": SeedRange(5_000, fixed=True),  # tools/bench.py's training rows
}


def seed_base(use: str, profile_seed: int = 0) -> int:
    """The seed base of a use of the table for a profile seed."""
    return SEEDS[use].seed(profile_seed)
