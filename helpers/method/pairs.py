"""DPO pairs from the exploration pool (the paper's 2.4): the hardest correct trajectory of a
problem against its most likely incorrect one.

A pair is a problem's correct trajectory with the highest perplexity under the model DPO starts
from (the chosen one) and its incorrect trajectory with the lowest (the rejected one): the
paper's rule, which makes the two hardest to tell apart. Both must be well formed.
"""

from __future__ import annotations

from collections import defaultdict
from pathlib import Path
from typing import Any

from ..pipeline.artifacts import Digests, cached_jsonl
from ..pipeline.config import resolve_path
from ..pipeline.schema import Profile
from ..pipeline.stages import explore_iterations, locate
from .pool import global_pool, pool_path
from .selection import perplexities


def pair_candidates(pool: list[dict[str, Any]]) -> set[str]:
    """The trajectories a pair could use: the well-formed ones of problems that have both a
    well-formed correct and a well-formed incorrect trajectory (the only ones worth scoring)."""
    sides: dict[str, set[bool]] = defaultdict(set)
    for r in pool:
        if r.get("well_formed", True):
            sides[r["problem_id"]].add(bool(r["correct"]))
    return {
        r["id"]
        for r in pool
        if r.get("well_formed", True) and sides[r["problem_id"]] == {True, False}
    }


def pair_rows(pool: list[dict[str, Any]], perplexity: dict[str, float]) -> list[dict[str, Any]]:
    """One row per problem of the pool: its pair, or why it has none.

    Chosen: the correct trajectory with the highest perplexity; rejected: the incorrect one
    with the lowest. Every candidate of a problem that has a pair must have a perplexity
    (`pair_candidates` names them).
    """
    by_problem: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for r in pool:
        by_problem[r["problem_id"]].append(r)
    rows = []
    for pid in sorted(by_problem):
        # Both sides well formed: the pair teaches which thought to prefer, not the format.
        good = [r for r in by_problem[pid] if r["correct"] and r.get("well_formed", True)]
        bad = [r for r in by_problem[pid] if not r["correct"] and r.get("well_formed", True)]
        row: dict[str, Any] = {"problem_id": pid, "correct": len(good), "incorrect": len(bad)}
        if not good or not bad:
            row["why"] = (
                "no well-formed correct one" if not good else "no well-formed incorrect one"
            )
            rows.append(row)
            continue
        unscored = [r["id"] for r in good + bad if r["id"] not in perplexity]
        if unscored:
            raise KeyError(f"pair candidates of problem {pid} were not scored: {unscored[:3]}")
        chosen = max(good, key=lambda r: (perplexity[r["id"]], r["id"]))
        rejected = min(bad, key=lambda r: (perplexity[r["id"]], r["id"]))
        ties = sum(perplexity[r["id"]] == perplexity[chosen["id"]] for r in good) > 1
        row.update(
            question=chosen["question"],
            chosen_id=chosen["id"],
            rejected_id=rejected["id"],
            chosen=chosen["response"],
            rejected=rejected["response"],
            chosen_perplexity=perplexity[chosen["id"]],
            rejected_perplexity=perplexity[rejected["id"]],
            why=(
                f"highest-perplexity correct of {len(good)} against lowest-perplexity incorrect"
                f" of {len(bad)}" + (" (a tie, broken by id)" if ties else "")
            ),
        )
        rows.append(row)
    return rows


def build_pairs(
    profile: Profile,
    rdir: Path,
    backend: Any,
    init_name: str,
    prompt: str,
    problems: list[dict[str, Any]],
) -> list[dict[str, Any]]:
    """Every problem's pair from the global pool, under the DPO start model that `backend`
    runs (hf or vllm; computed once).

    The start model's own rollouts (the first exploration iteration's) carry their
    log-probabilities from generation; the later iterations' are scored here.
    """
    iterations = explore_iterations(profile)
    files = [resolve_path(f) for f in profile.explore.pool_files] + [
        pool_path(rdir, i) for i in iterations
    ]
    digests = Digests()
    settings = {
        "pools": [digests.path(f) for f in files],
        "model": digests.path(locate(rdir, "sft", "model", variant=init_name)),
        "prompt": prompt,
    }

    def build() -> list[dict[str, Any]]:
        pool = global_pool(profile, rdir, max(iterations, default=0), problems)
        # Only a problem with both sides can make a pair: the rest (never solved, or solved
        # at the first try) are not scored, which is most of an exploration pool.
        candidates = pair_candidates(pool)
        perplexity = perplexities(
            backend, pool, prompt, init_name, keep=lambda r: r["id"] in candidates
        )
        return pair_rows(pool, perplexity)

    return cached_jsonl(locate(rdir, "dpo", "pairs"), settings, build)
