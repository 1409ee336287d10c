"""Re-execute the committed notebooks in place at their smoke defaults (what nbval compares).

Usage: python tools/refresh_notebooks.py [--outputs DIR] [NOTEBOOK ...]   (default: all notebooks)

Runs the smoke plan first in a temporary outputs root, so that every notebook finds the
artifacts of the stages before it, then executes each notebook with Papermill at its defaults
against that root. Nothing under the repository's outputs/ is touched. `--outputs DIR` reuses
an outputs root where the smoke plan has finished (held to the same kernels) instead; the
notebooks then write into it.
"""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
from pathlib import Path

from helpers.pipeline.machine import HELD_TO_AVX2

ROOT = Path(__file__).resolve().parent.parent
KERNEL = "slow-thinking"


def main() -> None:
    """Run the smoke plan, then each notebook in place, stopping at the first failure."""
    args = sys.argv[1:]
    reuse = None
    if args[:1] == ["--outputs"]:
        reuse, args = Path(args[1]).resolve(), args[2:]
    names = args or sorted(str(p.relative_to(ROOT)) for p in ROOT.glob("notebooks/*.ipynb"))
    with tempfile.TemporaryDirectory(prefix="still-refresh-") as tmp:
        env = {**os.environ, **HELD_TO_AVX2, "STILL_OUTPUTS": str(reuse or tmp)}
        # the plan skips every stage that is done, so a reused root costs a check only
        subprocess.run(
            [sys.executable, "-m", "helpers.run", "params/smoke.yaml"],
            cwd=ROOT,
            env=env,
            check=True,
        )
        for name in names:
            print(f"executing {name}", flush=True)
            subprocess.run(
                [sys.executable, "-m", "papermill", name, name, "-k", KERNEL, "--cwd", str(ROOT)],
                cwd=ROOT,
                env=env,
                check=True,
                stdout=subprocess.DEVNULL,
            )


if __name__ == "__main__":
    main()
