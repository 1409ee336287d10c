"""The problem record's shared pieces: option letters, choice questions, stable seeds, gym entries.

A leaf module: it imports nothing of the project, so grading, tasks and sources can all use it.
"""

from __future__ import annotations

import hashlib
from functools import lru_cache
from typing import Any

# Option letters; benchmarks use four (GPQA), RiddleSense five.
LETTERS = "ABCDEFGH"


def stable_hash(*parts: Any) -> int:
    """A seed from any values, the same on every machine and run (unlike hash())."""
    return int(hashlib.sha256("|".join(map(str, parts)).encode()).hexdigest()[:8], 16)


def choice_question(stem: str, options: list[str]) -> str:
    """A multiple-choice question: the stem, lettered options, and how to answer."""
    listing = "\n".join(f"({L}) {o}" for L, o in zip(LETTERS, options, strict=False))
    return f"{stem.strip()}\n\n{listing}\n\nAnswer with the letter of the correct option."


@lru_cache(maxsize=256)
def gym_dataset(name: str, config_items: tuple, seed: int, size: int) -> Any:
    """A reasoning-gym dataset, built once per (name, config, seed, size)."""
    import reasoning_gym as rg

    return rg.create_dataset(name, seed=seed, size=size, **dict(config_items))


def freeze(config: dict[str, Any]) -> tuple:
    """A hashable form of a generator config (lists become tuples)."""
    return tuple(sorted((k, tuple(v) if isinstance(v, list) else v) for k, v in config.items()))


def gym_entry(example: dict[str, Any]) -> dict[str, Any]:
    """Regenerate the reasoning-gym entry behind an example (its metadata drives verifiers)."""
    g = example["gym"]
    ds = gym_dataset(g["dataset"], freeze(g["config"]), g["seed"], g["size"])
    return ds[g["index"]]
