"""The paper's claims on our run: each comparison, paired on the same problems, with a verdict."""

from __future__ import annotations

from typing import Any

from ..pipeline.schema import Profile
from .stats import mcnemar, paired_bootstrap
from .tables import COLUMNS, PAPER_ROWS

# The paper's comparisons, as (better row, worse row, what it shows), checked on our run.
CLAIMS = [
    ("t2_sft_small", "t2_backbone", "distilling 1.1k helps"),
    ("t2_sft_large", "t2_backbone", "distilling 3.9k helps"),
    ("t2_sft_large", "t2_sft_small", "more distilled data helps"),
    ("t3_no_other", "t3_no_hard", "hard problems help"),
    ("t3_mixed", "t3_no_other", "other domains help"),
    ("t2_explore_1", "t2_sft_small", "explore + SFT, iteration 1"),
    ("t2_explore_2", "t2_sft_small", "explore + SFT, iteration 2"),
    ("t2_explore_3", "t2_sft_small", "explore + SFT, iteration 3"),
    ("t2_dpo_small", "t2_sft_small", "explore + DPO, fewer pairs"),
    ("t2_dpo_large", "t2_sft_small", "explore + DPO, more pairs"),
    ("t4_thought", "t4_full", "DPO on the thought only (no SFT loss)"),
    ("t4_thought_sft", "t4_full_sft", "DPO on the thought only (SFT loss)"),
    ("t4_full_sft", "t4_full", "the SFT loss (thought + solution)"),
    ("t4_thought_sft", "t4_thought", "the SFT loss (thought only)"),
]


EFFECT_COLUMNS = [
    "claim",
    "comparison",
    "benchmark",
    "ours",
    "95% CI (paired)",
    "only a / only b",
    "McNemar p",
    "paper",
    "verdict",
]

ALPHA = 0.05  # the significance level of the Effects table's verdicts


def verdict(ours: float, paper: float, p: float) -> str:
    """Whether a paired difference of ours shows the paper's effect: the direction, and whether
    McNemar's test separates it from chance at ALPHA."""
    if ours == 0:
        return "no difference"
    same = (ours > 0) == (paper > 0) if paper else None
    direction = "paper's direction" if same else "opposite direction" if same is False else ""
    if p < ALPHA:
        return "holds" if same else "reversed" if same is False else f"differs (p < {ALPHA})"
    return f"not shown ({direction})" if direction else "not shown"


def _pairs(profile: Profile) -> list[tuple[str, str, str, str, str]]:
    """Each claim's comparison on this profile's variants, with its seed replicates:
    (claim, paper's better row, worse row, our first variant, our second variant)."""
    variant_of = {r: v.name for v in profile.variants for r in v.paper_rows}
    replicas: dict[str, dict[int, str]] = {}
    for v in profile.variants:
        if v.replicate_of is not None:
            replicas.setdefault(v.replicate_of, {})[v.seed] = v.name
    out = []
    for better, worse, claim in CLAIMS:
        a, b = variant_of.get(better), variant_of.get(worse)
        if a is None or b is None or a == b:
            continue
        out.append((claim, better, worse, a, b))
        for seed in sorted(set(replicas.get(a, {})) & set(replicas.get(b, {}))):
            out.append(
                (f"{claim} (seed {seed})", better, worse, replicas[a][seed], replicas[b][seed])
            )
    return out


def effects(profile: Profile, summaries: dict[str, dict]) -> Any:
    """Each of the paper's comparisons on our run, tested on the same problems (and again on
    each seed the two variants are both replicated with).

    ours: accuracy difference (points) of the first variant minus the second; its 95% paired
    bootstrap interval; the problems only one of the two solves; McNemar's exact p-value.
    """
    import pandas as pd

    rows = []
    for claim, better, worse, name_a, name_b in _pairs(profile):
        a, b = summaries.get(name_a), summaries.get(name_b)
        if a is None or b is None:
            continue
        for bench, bcfg in profile.benchmarks.items():
            if bench not in a["benchmarks"] or bench not in b["benchmarks"]:
                continue
            col = COLUMNS[bcfg.kind]
            ca, cb = a["benchmarks"][bench]["correct"], b["benchmarks"][bench]["correct"]
            diff, lo, hi = paired_bootstrap(ca, cb)
            only_a, only_b, p = mcnemar(ca, cb)
            paper = PAPER_ROWS[better][col] - PAPER_ROWS[worse][col]
            rows.append(
                {
                    "claim": claim,
                    "comparison": f"{name_a} - {name_b}",
                    "benchmark": col,
                    "ours": round(diff, 1),
                    "95% CI (paired)": f"[{lo:.1f}, {hi:.1f}]",
                    "only a / only b": f"{only_a} / {only_b}",
                    "McNemar p": round(p, 3),
                    "paper": round(paper, 1),
                    "verdict": verdict(diff, paper, p),
                }
            )
    return pd.DataFrame(rows, columns=EFFECT_COLUMNS)
