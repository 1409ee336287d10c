"""nbval's notebooks start from a finished smoke run, as `make notebooks` executed them.

Each notebook re-executes its stage at its defaults, and what the later ones show (the tables,
the effects) depends on every variant's evaluation being there: so the smoke plan runs first in
the session's outputs root (a check only, when tests/test_pipeline.py has already run it).
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

_ready: list[bool] = []


def pytest_runtest_setup(item) -> None:
    """Before the first notebook cell: make sure the smoke plan is done in the outputs root."""
    if _ready or not str(item.fspath).endswith(".ipynb"):
        return
    subprocess.run(
        [sys.executable, "-m", "helpers.run", "params/smoke.yaml"],
        check=True,
        capture_output=True,
        timeout=1500,
        env=dict(os.environ),
        cwd=Path(__file__).resolve().parent.parent,
    )
    _ready.append(True)
