"""Collection: several rollouts per problem per teacher, each auto-labelled by the grader."""

from __future__ import annotations

from collections import defaultdict
from pathlib import Path
from typing import Any

from tqdm import tqdm

from ..grading.grade import grade
from ..grading.problem import stable_hash
from ..infer.interface import Completion, Prompt, SamplingCfg
from ..infer.openai_backend import OpenAIBackend
from ..world.teachers import respond

PROBLEM_KEYS = (
    "group",
    "family",
    "domain",
    "difficulty",
    "question",
    "answer",
    "answer_type",
    "choices",
    "source",
    "gym",
)


def label(problem: dict[str, Any], correct: bool) -> str:
    """correct, incorrect, or unverified for problems whose answer no grader can check."""
    if problem.get("answer_type") == "open":
        return "unverified"
    return "correct" if correct else "incorrect"


def _record(
    problem: dict[str, Any], teacher: Any, rollout: int, comp: Completion, extra: dict[str, Any]
) -> dict[str, Any]:
    """One teacher response as collect stores it, labelled by the grader."""
    g = grade(comp.text, problem, comp.stop_reason)
    return {
        "id": f"{problem['id']}:{teacher.name}:{rollout}",
        "problem_id": problem["id"],
        **{k: problem.get(k) for k in PROBLEM_KEYS},
        "teacher": teacher.name,
        "style": teacher.style,
        "rollout": rollout,
        "response": comp.text,
        "stop_reason": comp.stop_reason,
        "tokens": comp.tokens,
        "label": label(problem, g.correct),
        "extracted_answer": g.answer,
        **extra,
    }


def collect_embedded(
    problems: list[dict[str, Any]], teacher: Any, seed: int
) -> list[dict[str, Any]]:
    """Rollouts of an embedded teacher (wording and defects vary with the rollout seed)."""
    out = []
    for p in tqdm(problems, desc=teacher.name, unit="problem"):
        for k in range(teacher.rollouts):
            r = respond(
                p, teacher.style, teacher.defects, stable_hash(seed, teacher.name, p["id"], k)
            )
            stop = "length" if "truncation" in r["defects"] else "end_of_turn"
            comp = Completion(r["text"], len(r["text"].split()), stop)
            out.append(_record(p, teacher, k, comp, {"defects": r["defects"]}))
    return out


def collect_openai(
    problems: list[dict[str, Any]], teacher: Any, api_key: str | None, cache_dir: Path, seed: int
) -> list[dict[str, Any]]:
    """Rollouts of a real teacher behind an OpenAI-compatible endpoint (resumable)."""
    backend = OpenAIBackend(
        teacher.base_url,
        teacher.api_model,
        api_key,
        cache_path=Path(cache_dir) / f"{teacher.name}.partial.jsonl",
        reasoning_field=teacher.reasoning_field,
    )
    # A teacher gets the bare question, as the paper's teachers did: no instruction, no system.
    prompts = [Prompt([{"role": "user", "content": p["question"]}]) for p in problems]
    outs = backend.generate(
        prompts,
        SamplingCfg(
            n=teacher.rollouts,
            temperature=0.7,
            max_new_tokens=teacher.max_new_tokens,
            seed=seed,
            stop=(),
        ),
    )
    records = []
    for p, comps in zip(problems, outs, strict=True):
        for k, c in enumerate(comps):
            # DeepSeek-R1's API returns the thought in a separate field: mark it off as R1 does.
            text = f"<think>\n{c.reasoning}\n</think>\n\n{c.text}" if c.reasoning else c.text
            extra = {"defects": None, "prompt_tokens": c.extra.get("prompt_tokens", 0)}
            comp = Completion(text, c.tokens, c.stop_reason)
            records.append(_record(p, teacher, k, comp, extra))
    return records


def token_cost(records: list[dict[str, Any]]) -> dict[str, int]:
    """Completion tokens spent per teacher."""
    cost: dict[str, int] = defaultdict(int)
    for r in records:
        cost[r["teacher"]] += int(r["tokens"])
    return dict(cost)


def example_response(
    records: list[dict[str, Any]], teacher: str, prefer_group: str
) -> dict[str, Any]:
    """One response of a teacher, from the preferred group when it has any."""
    mine = [r for r in records if r["teacher"] == teacher]
    return next((r for r in mine if r["group"] == prefer_group), mine[0])
