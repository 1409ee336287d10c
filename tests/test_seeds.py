"""One table of seed ranges (helpers.world.seeds): no two uses ever draw the same generator
seed for any profile seed, and no module spells a seed base of its own."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from helpers.world.seeds import SEEDS, SEEDS_CHECKED, SeedRange

ROOT = Path(__file__).resolve().parents[1]


def meetings(table: dict[str, SeedRange]) -> list[tuple[str, int, str, int]]:
    """Pairs of (use, profile seed) whose seed bases are equal."""
    where: dict[int, tuple[str, int]] = {}
    out = []
    for use, r in table.items():
        for s in [0] if r.fixed else SEEDS_CHECKED:
            other = where.setdefault(r.seed(s), (use, s))
            if other[0] != use:
                out.append((*other, use, s))
    return out


def test_no_two_uses_draw_the_same_seed_for_any_profile_seed():
    assert meetings(SEEDS) == []


def test_the_check_finds_uses_that_meet():
    # the warm-up's problems one stride above the pools' would be seed 1's pools at seed 0
    broken = {**SEEDS, "warmup_steps": SeedRange(SEEDS["pools"].base + 7919)}
    assert ("pools", 1, "warmup_steps", 0) in meetings(broken)


@pytest.mark.parametrize("folder", ["helpers", "tools"])
def test_no_module_spells_a_seed_base_of_its_own(folder):
    spelled = re.compile(r"SEED_BASE\s*=|\b7919\b|\b104_?729\b")
    found = [
        str(p.relative_to(ROOT))
        for p in (ROOT / folder).rglob("*.py")
        if p.name != "seeds.py" and spelled.search(p.read_text())
    ]
    assert found == []
