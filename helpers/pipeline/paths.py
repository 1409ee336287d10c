"""Repository-relative paths, so notebooks and logs never print machine paths."""

from __future__ import annotations

import os
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[2]


def repo_root() -> Path:
    """Return the repository root (the folder holding helpers/)."""
    return REPO_ROOT


def outputs_root() -> Path:
    """Return the outputs folder; STILL_OUTPUTS overrides it (tests use a temporary one)."""
    env = os.environ.get("STILL_OUTPUTS")
    return Path(env).resolve() if env else REPO_ROOT / "outputs"


def cache_root() -> Path:
    """Return the cache folder for converted checkpoints (shared by all runs)."""
    env = os.environ.get("STILL_CACHE")
    return Path(env).resolve() if env else REPO_ROOT / "outputs" / ".cache"


def run_dir(run: str) -> Path:
    """Return outputs/<run>/ for a run name."""
    return outputs_root() / run


def rel(path: str | os.PathLike) -> str:
    """Show a path relative to the repo root (or the outputs root) when it lies inside it."""
    p = Path(path).resolve()
    for base, prefix in ((REPO_ROOT, ""), (outputs_root(), "outputs/")):
        try:
            return prefix + str(p.relative_to(base))
        except ValueError:
            continue
    return str(p)
