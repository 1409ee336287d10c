"""The warm-up (stage 00): the backbone made a fast thinker of this world before the method.

Full fine-tuning on short examples, no thought (helpers.world.warmup_data): the world's atomic
steps as the teachers' thoughts write them, animal facts, and normal problems answered at once. The
model it writes is where every SFT variant, the QwQ completer and the backbone row start from;
the backbone as shipped is kept as the `raw` variant beside it.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from ..grading.formatting import load_prompt
from ..pipeline.schema import Profile
from ..train.sft import SFTSpec, train_sft
from ..world.tasks import load_benchmarks
from ..world.warmup_data import warmup_rows


def warmup_spec(profile: Profile, rdir: Path, out_dir: Path) -> SFTSpec:
    """The warm-up's training: its examples, no instruction (answer-only turns), its settings."""
    refs = [r for rs in load_benchmarks(profile, rdir).values() for r in rs]
    instruction = load_prompt(profile.prompt_file) if profile.warmup.instruction else ""
    rows = warmup_rows(profile.warmup, profile.seed, refs, instruction)
    return SFTSpec(
        profile.backbone, rows, str(out_dir), "", train=profile.warmup, seed=profile.seed
    )


def warm_up(spec: SFTSpec) -> dict[str, Any]:
    """Train the warmed-up backbone and save it (with its training log and summary)."""
    return train_sft(spec)


def example_kinds(rows: list[dict[str, Any]]) -> Any:
    """A table of the warm-up's examples by kind: how many, and the first of each."""
    import pandas as pd

    def kind(row: dict[str, Any]) -> str:
        if row["id"].startswith("warmup-step-"):
            return "atomic step"
        return "animal fact" if row["id"].startswith("warmup-legs-") else "normal answer"

    firsts: dict[str, dict[str, Any]] = {}
    counts: dict[str, int] = {}
    for r in rows:
        k = kind(r)
        counts[k] = counts.get(k, 0) + 1
        firsts.setdefault(k, r)
    return pd.DataFrame(
        [
            {
                "kind": k,
                "examples": counts[k],
                "question": f["question"],
                "target": f["combined_text"],
            }
            for k, f in sorted(firsts.items())
        ]
    )
