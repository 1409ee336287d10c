"""Selection (the paper's 2.3.2): clean the pool's correct trajectories, keep the hardest.

The cleaning chain is unify's (helpers.grading.cleaning, the profile's unify thresholds), with
a malformed rollout refused first; then, per problem, the trajectories the current model finds
least likely (highest perplexity) are kept.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable
from pathlib import Path
from typing import Any

from ..grading import cleaning
from ..grading.formatting import parse_response
from ..pipeline.artifacts import read_jsonl, write_json, write_jsonl
from ..pipeline.stages import locate


def select(
    pool: list[dict[str, Any]],
    perplexity: dict[str, float],
    per_problem: int,
    cleaning_cfg: Any,
) -> list[dict[str, Any]]:
    """Every correct trajectory of the pool with the reason it was kept or dropped.

    The cleaning chain first (cleaning_cfg: the profile's unify section), a malformed rollout
    refused before the content rules; then, per problem, the `per_problem` trajectories with
    the highest perplexity under the current model are kept.
    """
    items = []
    for r in pool:
        if r["correct"]:
            parsed = parse_response(r["response"])
            thought = parsed.thought or ""
            items.append(
                {
                    **r,
                    "thought": thought,
                    "perplexity": perplexity.get(r["id"]),
                    "problems": parsed.problems,
                }
            )
    kept, rejected = cleaning.clean(
        items, cleaning_cfg, before=[("malformed", lambda r: bool(r["problems"]))]
    )
    out = [{**r, "kept": False, "why": _why_dropped(r)} for r in rejected]
    by_problem: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for item in kept:
        by_problem[item["problem_id"]].append(item)
    for items_ in by_problem.values():
        items_.sort(key=lambda it: -(it["perplexity"] if it["perplexity"] is not None else 0.0))
        for rank, item in enumerate(items_):
            keep = rank < per_problem
            why = (
                f"highest perplexity of its problem ({rank + 1} of {len(items_)})"
                if keep
                else f"perplexity rank {rank + 1} of {len(items_)}, past the {per_problem} kept"
            )
            out.append({**item, "kept": keep, "why": why})
    return [{k: v for k, v in r.items() if k not in ("problems", "rule")} for r in out]


def _why_dropped(item: dict[str, Any]) -> str:
    """The chain's rule, with what was malformed."""
    rule = item["rule"]
    return f"{rule}: {', '.join(item['problems'])}" if rule == "malformed" else rule


def as_demos(selected: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Kept trajectories as SFT demonstrations (the fields a mixture's records have)."""
    return [
        {
            "question": s["question"],
            "combined_text": s["response"],
            "domain": "math",
            "id": s["id"],
            "problem_id": s["problem_id"],
            "group": "explored",
            "difficulty": "hard",
            "family": s.get("family"),
            "teacher": f"explore:{s['model']}",
            "thought_words": s["thought_words"],
        }
        for s in selected
        if s["kept"]
    ]


def perplexities(
    backend: Any,
    pool: list[dict[str, Any]],
    prompt: str,
    current: str,
    keep: Callable[[dict[str, Any]], bool] = lambda r: r["correct"],
) -> dict[str, float]:
    """Perplexity of the pool's trajectories that `keep` accepts (the correct ones unless told
    otherwise) under the current model, the one `backend` (hf or vllm) runs.

    The current model's own rollouts carry their log-probability from generation; the others
    (earlier iterations' models) are scored teacher-forced.
    """
    from ..grading.formatting import render_prompt
    from ..infer.scoring import Score

    tok = backend.tok
    out: dict[str, float] = {}
    todo = []
    for r in pool:
        if not keep(r):
            continue
        if r["model"] == current and r.get("logprob") is not None:
            out[r["id"]] = Score(r["logprob"], r["tokens"]).perplexity
        else:
            todo.append(r)
    if todo:
        p_ids = [
            tok(render_prompt(tok, r["question"], prompt), add_special_tokens=False).input_ids
            for r in todo
        ]
        r_ids = [tok(r["response"], add_special_tokens=False).input_ids for r in todo]
        for r, s in zip(todo, backend.score(p_ids, r_ids), strict=True):
            out[r["id"]] = s.perplexity
    return out


def write_iteration(
    rdir: Path,
    iteration: int,
    selected: list[dict[str, Any]],
    stats: dict[str, Any],
    tokens: dict[str, int],
    explorer: str,
) -> Path:
    """Write the selection (every candidate with its reason) and the iteration's summary."""
    write_jsonl(locate(rdir, "explore", "selected", i=iteration), selected)
    summary = locate(rdir, "explore", "summary", i=iteration)
    write_json(
        summary,
        {
            "iteration": iteration,
            "explorer": explorer,
            "stats": stats,
            "selected": sum(s["kept"] for s in selected),
            "tokens": dict(tokens),
        },
    )
    return summary.parent


def sft_data(rdir: Path, variant: Any) -> list[dict[str, Any]]:
    """A variant's SFT data: its mixture, plus the trajectories its explore iteration kept."""
    data = read_jsonl(locate(rdir, "mix", "mixture", mixture=variant.mixture))
    if variant.explore_iteration:
        data += as_demos(
            read_jsonl(locate(rdir, "explore", "selected", i=variant.explore_iteration))
        )
    return data
