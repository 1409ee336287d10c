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
from ..infer.generation import Prompt, SamplingCfg
from ..pipeline.paths import rel
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


# The public release's domains, the only ones its importer accepts.
RELEASE_DOMAINS = ("math", "physics", "chemistry", "biology", "code", "puzzle")
RELEASE_FIELDS = ("question", "combined_text", "domain")


def _release_row_problem(r: Any) -> str | None:
    """What is wrong with one row of the public release, or None."""
    from ..grading.formatting import parse_response

    if not isinstance(r, dict):
        return f"expected a JSON object, found {type(r).__name__}"
    missing = [k for k in RELEASE_FIELDS if k not in r]
    if missing:
        return f"expected the fields {missing}"
    for k in RELEASE_FIELDS:
        v = r[k]
        if not isinstance(v, str):
            return (
                f"field '{k}': expected a string, found {'null' if v is None else type(v).__name__}"
            )
        try:
            v.encode("utf-8")
        except UnicodeEncodeError:
            return f"field '{k}': not valid UTF-8 text (a lone surrogate)"
    if not r["question"].strip():
        return "field 'question' is blank"
    if r["domain"].strip().lower() not in RELEASE_DOMAINS:
        return f"field 'domain': expected one of {list(RELEASE_DOMAINS)}, found {r['domain']!r}"
    parsed = parse_response(r["combined_text"])
    if not parsed.well_formed:
        return f"combined_text is not in the thought/solution format ({', '.join(parsed.problems)})"
    return None


def import_release(path: str | Path) -> list[dict[str, Any]]:
    """Read the public release (JSON lines: question, combined_text, domain) into demos.

    Every row is checked; any bad row stops the import with one error that names each bad
    line and what is wrong with it, so nothing is imported as a silently different record.
    """
    import json

    from ..grading.formatting import parse_response

    path = Path(path)
    demos, bad = [], []
    with path.open("rb") as f:
        for i, raw in enumerate(f, 1):
            if not raw.strip():
                continue
            try:
                r = json.loads(raw.decode("utf-8"))
            except UnicodeDecodeError as exc:
                bad.append(f"line {i}: not UTF-8 text (byte {exc.start}: {raw[exc.start]:#04x})")
                continue
            except json.JSONDecodeError as exc:
                bad.append(f"line {i}: not valid JSON ({exc.msg})")
                continue
            problem = _release_row_problem(r)
            if problem:
                bad.append(f"line {i}: {problem}")
                continue
            domain = r["domain"].strip().lower()
            demos.append(
                {
                    "question": r["question"],
                    "combined_text": r["combined_text"],
                    "domain": domain,
                    "id": f"release-{i}",
                    "problem_id": f"release-{i}",
                    "group": "normal_math" if domain == "math" else "other",
                    "difficulty": "unknown",
                    "family": domain,
                    "teacher": "release",
                    "thought_words": len(
                        (parse_response(r["combined_text"]).thought or "").split()
                    ),
                }
            )
    if bad:
        shown = "\n  ".join(bad[:20]) + (
            f"\n  ... and {len(bad) - 20} more" if len(bad) > 20 else ""
        )
        raise ValueError(f"{rel(path)}: {len(bad)} bad row(s), nothing imported:\n  {shown}")
    return demos


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
    profile: Any,
    items: list[dict[str, Any]],
    r1_demos: list[dict[str, Any]],
    out_dir: Path,
    prompt: str,
) -> tuple[list[dict[str, Any]], list[dict[str, Any]], dict[str, Any]]:
    """The paper's QwQ step: train a completer on R1 demos, write solutions, keep agreeing ones.

    The completer learns the solution only (its prompt holds the question and the thought), so
    its few steps go to the one thing it must do. A completer already trained on the same
    demonstrations and settings is reused. Returns (demos, rejected, training summary).
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
    spec = training.spec_from_profile(profile, profile.backbone, data, out_dir, prompt)
    spec.train = spec.train.model_copy(update={"epochs": profile.unify.completer_epochs})
    spec.target = "solution"
    done = Path(out_dir) / "train_summary.json"
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
