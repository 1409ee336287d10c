"""The smoke run's pinned figures (helpers.analysis.digest), and the comparison against them.

    python -m tests.pins PROFILE            # compare a finished run with its expected file
    python -m tests.pins PROFILE --update   # rewrite the expected file from the run

Runs are held to AVX2 kernels (pipeline.machine.HELD_TO_AVX2): the same figures on AVX2-only and
AVX-512 machines, fp32 throughout.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

from helpers.analysis.digest import run_figures

# Floats are rounded to 2 decimals when recorded; a run held to one instruction set repeats
# them exactly, so the tolerance only absorbs the rounding.
FLOAT_TOLERANCE = 0.011
EXPECTED_DIR = Path(__file__).resolve().parent / "expected"


def compare(expected: dict[str, Any], found: dict[str, Any]) -> list[str]:
    """Every figure that moved, from what to what (and those that appeared or vanished)."""
    moved = []
    for key in sorted(set(expected) | set(found)):
        if key not in found:
            moved.append(f"{key}: expected {expected[key]}, missing from the run")
        elif key not in expected:
            moved.append(f"{key}: {found[key]} in the run, not in the expected figures")
        else:
            e, f = expected[key], found[key]
            same = abs(e - f) <= FLOAT_TOLERANCE if isinstance(e, float) else e == f
            if not same:
                moved.append(f"{key}: expected {e}, found {f}")
    return moved


def expected_path(run: str) -> Path:
    """Where a run's expected figures are kept."""
    return EXPECTED_DIR / f"{run}_figures.json"


def main(argv: list[str]) -> int:
    """Compare a run's figures with its expected file, or rewrite that file (--update)."""
    from helpers.pipeline.config import load_profile
    from helpers.pipeline.paths import rel, run_dir

    profile = load_profile(argv[0])
    found = run_figures(run_dir(profile.run))
    path = expected_path(profile.run)
    if "--update" in argv:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(found, indent=1, sort_keys=True) + "\n")
        print(f"wrote {len(found)} figures to {rel(path)}; say why in the commit that changes it")
        return 0
    moved = compare(json.loads(path.read_text()), found)
    print("\n".join(moved) if moved else f"all {len(found)} figures as expected ({rel(path)})")
    return 1 if moved else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
