"""The paper's six claims (shared/reference/paper-facts.md), each given one verdict on our run.

Each claim rests on one comparison of two variants on the same problems, pooled over the
benchmarks the claim is about (every problem a paired verdict): the accuracy difference, its 95%
paired bootstrap interval and McNemar's exact test. Where both variants were also trained on a
second seed, the same comparison on that seed is shown beside it (the spread a reader needs
before trusting a difference). One word sums it up:

- holds: the difference is in the paper's direction and McNemar's test separates it from chance
  at ALPHA (for claim 6, "at least as well": the interval's lower end is above -MARGIN points);
- fails: it is not (the reason says whether it went the other way or was not separable);
- untestable: the run lacks a variant the comparison needs, or neither variant solves a single
  problem it is tested on (no verdict can come from two zeros).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from ..pipeline.schema import Profile
from .effects import ALPHA
from .stats import mcnemar, paired_bootstrap

MARGIN = 5.0  # points: how much worse "at least as well" may be (claim 6)


@dataclass(frozen=True)
class Claim:
    """One claim: the paper rows it compares (better, worse) and the benchmark kinds it is about."""

    number: int
    text: str
    better: str
    worse: str
    kinds: tuple[str, ...] = ("normal", "hard", "other")
    at_least: bool = False  # "at least as well": non-inferiority instead of superiority


CLAIMS = (
    Claim(1, "a small amount of long-form thought elicits slow thinking", "t2_sft_small", "t2_backbone"),
    Claim(2, "more distilled data helps (3.9k > 1.1k)", "t2_sft_large", "t2_sft_small"),
    Claim(3, "exploration + self-improvement improves on the 1.1k model", "t2_explore_1", "t2_sft_small"),
    Claim(4, "hard problems matter (most on the hardest benchmark)", "t3_no_other", "t3_no_hard"),
    Claim(5, "math-only data transfers to other domains", "t3_no_other", "t2_backbone", ("other",)),
    Claim(6, "DPO on the thought alone works at least as well", "t4_thought", "t4_full", at_least=True),
)  # fmt: skip

CLAIM_COLUMNS = ["claim", "rests on", "benchmarks", "ours", "95% CI", "McNemar p", "other seed"]
CLAIM_COLUMNS += ["verdict", "why"]


def _pooled(summary: dict[str, Any], names: list[str]) -> list[int]:
    return [c for n in names for c in summary["benchmarks"][n]["correct"]]


def _compare(a: list[int], b: list[int]) -> tuple[float, float, float, float]:
    diff, lo, hi = paired_bootstrap(a, b)
    return diff, lo, hi, mcnemar(a, b)[2]


def judge(
    claim: Claim,
    a: list[int],
    b: list[int],
    compared: tuple[float, float, float, float] | None = None,
) -> tuple[str, str]:
    """A claim's verdict and its reason from the paired verdicts of its two variants."""
    if not any(a) and not any(b):
        return "untestable", "neither variant solves any of these problems"
    diff, lo, _, p = compared or _compare(a, b)
    if claim.at_least:
        if lo > -MARGIN:
            return "holds", f"the interval's lower end {lo:.1f} is above -{MARGIN:g} points"
        return "fails", f"the interval reaches {lo:.1f}, below -{MARGIN:g} points"
    if diff > 0 and p < ALPHA:
        return "holds", f"better by {diff:.1f} points, p = {p:.3g}"
    if diff < 0 and p < ALPHA:
        return "fails", f"reversed: worse by {-diff:.1f} points, p = {p:.3g}"
    return "fails", f"not separable from chance (p = {p:.2g})"


def _replicas(profile: Profile) -> dict[str, str]:
    """Each variant's seed-1 replicate (or other seed), by the variant it replicates."""
    return {v.replicate_of: v.name for v in profile.variants if v.replicate_of is not None}


def _missing(
    c: Claim, a: str | None, b: str | None, summaries: dict[str, dict], names: list[str]
) -> str:
    """Why a claim cannot be tested on this run ("" when it can)."""
    rows = [r for r, v in ((c.better, a), (c.worse, b)) if v is None]
    if rows:
        return f"the profile has no variant for the paper's row {' and '.join(rows)}"
    unevaluated = [v for v in (a, b) if v not in summaries]
    if unevaluated:
        return f"{' and '.join(map(str, unevaluated))} not evaluated"
    return "" if names else "no benchmark of the kinds it is about"


def claim_verdicts(profile: Profile, summaries: dict[str, dict]) -> Any:
    """The Claims table: one row per claim of the paper, with its verdict on this run."""
    import pandas as pd

    variant_of = {r: v.name for v in profile.variants for r in v.paper_rows}
    replicas = _replicas(profile)
    rows = []
    for c in CLAIMS:
        a, b = variant_of.get(c.better), variant_of.get(c.worse)
        row = {"claim": f"{c.number}. {c.text}", "rests on": f"{a or '?'} - {b or '?'}"}
        names = [n for n, cfg in profile.benchmarks.items() if cfg.kind in c.kinds]
        row["benchmarks"] = ", ".join(names)
        why = _missing(c, a, b, summaries, names)
        if why:
            rows.append({**row, "verdict": "untestable", "why": why})
            continue
        ca, cb = _pooled(summaries[a], names), _pooled(summaries[b], names)
        diff, lo, hi, p = _compare(ca, cb)
        ra, rb = replicas.get(a, a), replicas.get(b, b)
        other = "-"
        if (ra, rb) != (a, b) and ra in summaries and rb in summaries:
            other = (
                f"{_compare(_pooled(summaries[ra], names), _pooled(summaries[rb], names))[0]:+.1f}"
            )
            other += f" ({ra} - {rb})"
        verdict, why = judge(c, ca, cb, (diff, lo, hi, p))
        rows.append(
            {
                **row,
                "ours": f"{diff:+.1f}",
                "95% CI": f"[{lo:.1f}, {hi:.1f}]",
                "McNemar p": round(p, 3),
                "other seed": other,
                "verdict": verdict,
                "why": why,
            }
        )
    return pd.DataFrame(rows, columns=CLAIM_COLUMNS).fillna("-")
