"""Unify distilled responses into the thought/solution format and clean them (stage 02)."""

from __future__ import annotations

import re
from collections import Counter, defaultdict
from pathlib import Path
from typing import Any

from ..grading import cleaning
from ..grading.answers import extract_answer, last_boxed
from ..grading.cleaning import RULES as CHAIN_RULES
from ..grading.formatting import (
    BEGIN_SOLUTION,
    END_SOLUTION,
    chat_messages,
    format_response,
    solution_prefix,
    split_r1,
)
from ..grading.grade import math_equal
from ..infer.interface import Prompt, SamplingCfg
from ..pipeline.schema import Profile
from ..pipeline.stages import TRAIN_SUMMARY
from ..world.tasks import overlapping

# The chain's rules that apply to distilled responses, in report order.
RULES = tuple(r for r in CHAIN_RULES if r != "malformed")


def split_thought(record: dict[str, Any]) -> tuple[str, str | None]:
    """Return (thought, solution or None): R1 responses split at </think>; QwQ keep one stream."""
    if record["style"] == "r1":
        parts = split_r1(record["response"])
        if parts:
            return parts
        return record["response"].replace("<think>", "").strip(), None
    return record["response"].strip(), None


def clean(
    records: list[dict[str, Any]], benchmarks: dict[str, list[dict[str, Any]]], cfg: Any
) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """The cleaning chain on teacher responses; return (kept, rejected), each rejected one
    naming its rule. cfg: the profile's unify section."""
    refs = [r for rs in benchmarks.values() for r in rs]
    contaminated = overlapping([{"id": r["id"], "question": r["question"]} for r in records], refs)
    items = []
    for r in records:
        thought, solution = split_thought(r)
        items.append({**r, "thought": thought, "solution": solution})
    return cleaning.clean(
        items,
        cfg,
        before=[
            ("unverified", lambda r: r["label"] == "unverified" and not cfg.keep_unverified),
            ("incorrect", lambda r: r["label"] not in ("correct", "unverified")),
        ],
        after=[("contaminated", lambda r: r["id"] in contaminated)],
    )


def completion_prompt(item: dict[str, Any], prompt: str) -> Prompt:
    """Ask a model for the solution part, given the question and the (fixed) thought."""
    return Prompt(chat_messages(item["question"], prompt), solution_prefix(item["thought"]))


def complete_solutions(
    backend: Any, items: list[dict[str, Any]], prompt: str, max_new_tokens: int = 128
) -> list[str]:
    """Generate the solution part for thoughts that have none (greedy)."""
    outs = backend.generate(
        [completion_prompt(it, prompt) for it in items], SamplingCfg(max_new_tokens=max_new_tokens)
    )
    return [c[0].text.split(END_SOLUTION)[0].strip() for c in outs]


def answers_agree(item: dict[str, Any], solution: str) -> bool:
    """Does the completed solution state the answer the thought reached?"""
    if item["answer_type"] == "open":  # nothing to compare against: any non-empty solution
        return bool(solution.strip())
    thought_ans = last_boxed(item["thought"]) or item.get("extracted_answer")
    sol_ans, _ = extract_answer(f"{BEGIN_SOLUTION}\n{solution}\n{END_SOLUTION}")
    if thought_ans is None or sol_ans is None:
        return False
    if item["answer_type"] == "choice":
        return re.sub(r"[^A-H]", "", sol_ans.upper()) == re.sub(r"[^A-H]", "", thought_ans.upper())
    return math_equal(thought_ans, sol_ans) or sol_ans.replace(" ", "") == thought_ans.replace(
        " ", ""
    )


def to_demo(item: dict[str, Any], solution: str) -> dict[str, Any]:
    """A demonstration in the public release's fields plus the project's metadata."""
    return {
        "question": item["question"],
        "combined_text": format_response(item["thought"], solution),
        "domain": item["domain"],
        "id": item["id"],
        "problem_id": item["problem_id"],
        "group": item["group"],
        "difficulty": item["difficulty"],
        "family": item["family"],
        "teacher": item["teacher"],
        "thought_words": len(item["thought"].split()),
    }


def filter_report(
    records: list[dict[str, Any]],
    rejected: list[dict[str, Any]],
    demos: list[dict[str, Any]],
    tokens: dict[str, int] | None = None,
) -> dict[str, Any]:
    """Counts of every rule by teacher and by domain, with totals (and the tokens spent)."""
    by_teacher: dict[str, Counter] = defaultdict(Counter)
    by_domain: dict[str, Counter] = defaultdict(Counter)
    for r in rejected:
        by_teacher[r["teacher"]][r["rule"]] += 1
        by_domain[r["domain"]][r["rule"]] += 1
    totals = Counter(r["rule"] for r in rejected)
    return {
        "responses": len(records),
        "kept": len(demos),
        "rejected": {rule: totals.get(rule, 0) for rule in RULES},
        "by_teacher": {
            t: {rule: c.get(rule, 0) for rule in RULES} for t, c in sorted(by_teacher.items())
        },
        "by_domain": {
            d: {rule: c.get(rule, 0) for rule in RULES} for d, c in sorted(by_domain.items())
        },
        "kept_by_teacher": dict(Counter(d["teacher"] for d in demos)),
        "tokens": tokens or {},
    }


def keep_agreeing(
    items: list[dict[str, Any]], solutions: list[str]
) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """Demos whose completed solution agrees with the thought; the rest as rejected records."""
    demos, rejected = [], []
    for it, sol in zip(items, solutions, strict=True):
        if answers_agree(it, sol):
            demos.append(to_demo(it, sol))
        else:
            rejected.append({**it, "solution": sol, "rule": "solution_disagrees"})
    return demos, rejected


def completer_demos(r1_demos: list[dict[str, Any]], n: int) -> list[dict[str, Any]]:
    """Up to n R1-formatted demonstrations, taken in turn from each group so all are taught."""
    by_group: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for d in r1_demos:
        by_group[d["group"]].append(d)
    order = sorted((i, g, d) for g, ds in sorted(by_group.items()) for i, d in enumerate(ds))
    return [d for _, _, d in order][:n]


def complete_thoughts(
    profile: Profile,
    items: list[dict[str, Any]],
    r1_demos: list[dict[str, Any]],
    out_dir: Path,
    prompt: str,
    model: str,
) -> tuple[list[dict[str, Any]], list[dict[str, Any]], dict[str, Any]]:
    """The paper's QwQ step: train a completer on R1 demos, write solutions, keep agreeing ones.

    The completer (trained from `model`, the one the method starts from) learns the solution
    only (its prompt holds the question and the thought), so its few steps go to the one thing
    it must do. A completer already trained on the same demonstrations and settings is reused.
    Returns (demos, rejected, training summary).
    """
    from ..infer.generation import backend_from_profile
    from ..pipeline.artifacts import read_json
    from ..train import sft as training

    if not items:
        return [], [], {}
    if not r1_demos:
        raise ValueError(
            "unify: QwQ-style responses need a completer, but no R1-style response passed the "
            "rules to train it on; collect R1-style rollouts first"
        )
    data = completer_demos(r1_demos, profile.unify.completer_examples)
    spec = training.spec_from_profile(profile, model, data, out_dir, prompt)
    spec.train = spec.train.model_copy(update={"epochs": profile.unify.completer_epochs})
    spec.target = "solution"
    done = Path(out_dir) / TRAIN_SUMMARY
    summary = read_json(done) if done.exists() else {}
    same = summary.get("data_ids") == [d["id"] for d in data] and summary.get("spec") == (
        training.spec_key(spec)
    )
    trained: dict[str, int] = {}
    if not same:
        summary = training.train_sft(spec)
        trained = summary.get("tokens", {})
    # The completer is this run's checkpoint: generated locally, and not stopped at loops (its
    # solutions are short, and a looping one disagrees with the thought anyway).
    backend = backend_from_profile(profile, str(out_dir), local=True, stop_loops=False)
    solutions = complete_solutions(backend, items, prompt, profile.unify.solution_max_tokens)
    demos, rejected = keep_agreeing(items, solutions)
    # Tokens spent by this execution: a reused completer trained on nothing now.
    tokens = Counter(trained) + Counter(getattr(backend, "tokens", {}))
    return demos, rejected, {**summary, "tokens": dict(tokens)}
