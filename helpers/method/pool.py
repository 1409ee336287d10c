"""The global pool: every rollout of every exploration iteration, and earlier runs' pool files.

An iteration's rollouts are appended to its `pool.jsonl` as they finish; records are checked
(this run's problems, attempt numbers within the limit, sizes a rollout can have) whenever a
file is resumed or joined, and an earlier run's file joins only for this run's problems.
"""

from __future__ import annotations

import math
from collections import Counter, defaultdict
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from ..grading.formatting import parse_response
from ..pipeline.artifacts import iter_jsonl, read_json, write_json
from ..pipeline.schema import Profile
from ..pipeline.stages import locate


def pool_path(rdir: Path, iteration: int) -> Path:
    """The file that holds one iteration's rollouts."""
    return locate(rdir, "explore", "pool", i=iteration)


# A rollout record is a response of at most max_new_tokens tokens; none of the backbone's
# tokens spells more than a few dozen characters, so anything far longer was not generated.
CHARS_PER_TOKEN_BOUND = 64
MAX_JOINED_ATTEMPT = 1024  # the profile's own bound on max_rollouts


def rollout_problem(
    r: dict[str, Any], known: set[str], max_attempt: int, max_chars: int
) -> str | None:
    """What makes a pool record unfit to count, or None (problem, attempt, fields, size)."""
    if r.get("problem_id") not in known:
        return f"problem {r.get('problem_id')!r} is not one of this run's explore problems"
    a = r.get("attempt")
    if not isinstance(a, int) or isinstance(a, bool) or not 1 <= a <= max_attempt:
        return f"attempt {a!r}: expected a whole number from 1 to {max_attempt}"
    if not isinstance(r.get("response"), str) or not isinstance(r.get("correct"), bool):
        return "expected a string response and a true/false correct"
    if len(r["response"]) > max_chars:
        return (
            f"a response of {len(r['response']):,} characters, more than a rollout of this "
            f"run can hold ({max_chars:,})"
        )
    return None


def _join_file(
    path: Path, by_id: dict[str, dict[str, Any]], max_chars: int, log: Callable[[str], None]
) -> tuple[list[dict[str, Any]], Counter]:
    """An earlier run's pool file: its records for this run's problems, re-graded; the counts
    of what joined and what was left out, by reason."""
    from ..grading.grade import grade
    from ..pipeline.artifacts import DamagedFile, resume_jsonl

    counts: Counter = Counter()
    rows: list[dict[str, Any]] = []
    try:
        records = resume_jsonl(path, log=log)
    except DamagedFile as exc:
        raise DamagedFile(f"explore.pool_files: {exc}") from None
    for r in records:
        why = rollout_problem(r, set(by_id), MAX_JOINED_ATTEMPT, max_chars)
        if why:
            counts["other problems" if why.startswith("problem ") else "unfit records"] += 1
            continue
        problem = by_id[r["problem_id"]]
        g = grade(r["response"], problem, r.get("stop_reason", "end"))
        parsed = parse_response(r["response"])
        rows.append(
            {
                **r,
                "correct": g.correct,
                "grade": {"answer": g.answer, "reason": g.reason, "checks": g.checks},
                "well_formed": parsed.well_formed,
                "thought_words": len((parsed.thought or "").split()),
                "logprob": None,  # its model's, not one of this run's
            }
        )
        counts["joined"] += 1
    return rows, counts


def load_pool(
    rdir: Path,
    upto: int,
    earlier: Sequence[str] = (),
    problems: list[dict[str, Any]] | None = None,
    *,
    max_new_tokens: int = 512,
    unmatched: str = "stop",
    log: Callable[[str], None] = print,
) -> list[dict[str, Any]]:
    """The global pool: earlier runs' pool files (re-graded), then iterations 1..upto.

    An earlier run's rollout joins only if its problem is one of this run's (`problems`) and
    it is a record a rollout can be (see rollout_problem); its verdict is the current
    grader's, not the one stored with it. Each file's counts are logged; a file of which
    nothing joins stops the load (`unmatched: stop`) or is only reported (`warn`).
    """
    from ..pipeline.config import resolve_path

    rows: list[dict[str, Any]] = []
    by_id = {p["id"]: p for p in problems or []}
    max_chars = CHARS_PER_TOKEN_BOUND * max_new_tokens + 4096
    for f in earlier:
        joined, counts = _join_file(resolve_path(f), by_id, max_chars, log)
        left = ", ".join(f"{n} {why}" for why, n in sorted(counts.items()) if why != "joined")
        log(
            f"pool file {f}: {counts['joined']} records joined"
            + (f" ({left} left out)" if left else "")
        )
        if not joined:
            msg = (
                f"explore.pool_files: nothing in {f} joins this run's pool (none of its records "
                "is for one of this run's explore problems); remove it, or set "
                "explore.pool_files_unmatched: warn to go on without it"
            )
            if unmatched == "stop":
                raise ValueError(msg)
            log("warning: " + msg)
        rows += joined
    known = set(by_id)
    for i in range(1, upto + 1):
        path = pool_path(rdir, i)
        own = list(iter_jsonl(path)) if path.exists() else []
        if problems is not None:
            bad = [r for r in own if rollout_problem(r, known, MAX_JOINED_ATTEMPT, max_chars)]
            if bad:
                raise ValueError(
                    f"{path.name} of iteration {i}: {len(bad)} record(s) unfit for this run's "
                    f"pool, first: {rollout_problem(bad[0], known, MAX_JOINED_ATTEMPT, max_chars)}; "
                    "run that iteration's explore stage again with --force"
                )
        rows += own
    return rows


def global_pool(
    profile: Profile, rdir: Path, upto: int, problems: list[dict[str, Any]]
) -> list[dict[str, Any]]:
    """The profile's global pool up to an iteration: its pool files, then this run's rollouts."""
    cfg = profile.explore
    return load_pool(
        rdir,
        upto,
        cfg.pool_files,
        problems,
        max_new_tokens=cfg.max_new_tokens,
        unmatched=cfg.pool_files_unmatched,
    )


def resume_pool(
    out_path: Path,
    fingerprint: str,
    problems: list[dict[str, Any]],
    settings: dict[str, Any],
    model_name: str,
    log: Callable[[str], None] = print,
) -> list[dict[str, Any]]:
    """The rollouts an earlier, unfinished exploration of the same settings left to resume.

    A pool of other settings is set aside (kept beside it); so is any pool when the runner
    forces the stage. A torn last line is dropped; other damage stops with what to do.
    """
    from ..pipeline.artifacts import DamagedFile, resume_jsonl, set_aside
    from ..pipeline.config import forced

    meta_path = out_path.with_name("pool.meta.json")
    done: list[dict[str, Any]] = []
    if out_path.exists():
        meta = read_json(meta_path) if meta_path.exists() else {}
        if forced() or meta.get("fingerprint") != fingerprint:
            why = "replaced" if forced() else f"stale-{meta.get('fingerprint', 'unknown')}"
            log(f"{out_path.name}: set aside as {set_aside(out_path, why).name}; exploring afresh")
        else:
            known = {p["id"] for p in problems}
            chars = CHARS_PER_TOKEN_BOUND * settings["max_new_tokens"] + 4096
            try:
                done = resume_jsonl(
                    out_path,
                    lambda r: rollout_problem(r, known, settings["max_rollouts"], chars),
                    log,
                )
            except DamagedFile as exc:
                raise DamagedFile(
                    f"{exc}. The pool is damaged beyond a torn last line, so it cannot be "
                    "resumed: run this stage again with --force to explore this iteration "
                    "afresh (the damaged file is kept beside it)"
                ) from None
            # The settings' fingerprint leaves out the problem set (a larger set keeps the
            # rollouts of the problems it shares), so a problem reworded under its id goes here.
            asked = {p["id"]: p["question"] for p in problems}
            moved = sum(
                1 for r in done if "question" in r and r["question"] != asked[r["problem_id"]]
            )
            if moved:
                kept = set_aside(out_path, "stale-problems").name
                log(
                    f"{out_path.name}: {moved} rollouts ask another question than their problem "
                    f"now does; set aside as {kept}, exploring afresh"
                )
                done = []
            if done:
                log(f"{out_path.name}: resuming after {len(done)} finished rollouts")
    write_json(meta_path, {"fingerprint": fingerprint, "settings": settings, "model": model_name})
    return done


# --------------------------------------------------------------------------- statistics


def pass_at_k(n: int, c: int, k: int) -> float:
    """The unbiased pass@k estimate from n samples with c correct (Chen et al., 2021)."""
    if n - c < k:
        return 1.0
    return 1.0 - math.comb(n - c, k) / math.comb(n, k)


def first_success(rows: list[dict[str, Any]]) -> dict[str, int | None]:
    """Per problem, the attempt number of its first correct rollout (None: never solved)."""
    out: dict[str, int | None] = {}
    for r in rows:
        out.setdefault(r["problem_id"], None)
        if r["correct"]:
            cur = out[r["problem_id"]]
            out[r["problem_id"]] = r["attempt"] if cur is None else min(cur, r["attempt"])
    return out


def solved_within(rows: list[dict[str, Any]], problems: int, max_k: int) -> list[float]:
    """pass@k for k = 1..max_k from stop-when-solved rollouts: the share solved within k.

    With attempts numbered in the order they were issued, the first correct one's number J
    satisfies P(J <= k) = 1 - (1 - p)^k = pass@k for a problem solved with probability p per
    sample, so the share of problems with J <= k estimates pass@k without bias.
    """
    first = first_success(rows)
    return [
        sum(1 for j in first.values() if j is not None and j <= k) / max(problems, 1)
        for k in range(1, max_k + 1)
    ]


def iteration_stats(
    rows: list[dict[str, Any]],
    problems: list[dict[str, Any]],
    max_rollouts: int,
    asked: int | None = None,
) -> dict[str, Any]:
    """Problems solved, rollouts and tokens (per problem and family), pass@k, and what drawing
    max_rollouts for every problem would have cost. `asked`: the problems the profile asked
    for, before those overlapping a benchmark or a pool were dropped."""
    first = first_success(rows)
    by_problem: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for r in rows:
        by_problem[r["problem_id"]].append(r)
    tokens = {p: sum(r["tokens"] for r in rs) for p, rs in by_problem.items()}
    # Fixed sampling draws max_rollouts per problem: each at the problem's own mean length.
    fixed = {p: max_rollouts * t / len(by_problem[p]) for p, t in tokens.items()}

    def family(fam: str) -> dict[str, int]:
        ids = [p["id"] for p in problems if p["family"] == fam]
        return {
            "problems": len(ids),
            "solved": sum(first.get(i) is not None for i in ids),
            "rollouts": sum(len(by_problem.get(i, ())) for i in ids),
            "tokens": sum(tokens.get(i, 0) for i in ids),
            "fixed_rollouts_tokens": round(sum(fixed.get(i, 0) for i in ids)),
        }

    return {
        "asked": len(problems) if asked is None else asked,
        "problems": len(problems),
        "max_rollouts": max_rollouts,
        "solved": sum(j is not None for j in first.values()),
        "rollouts": len(rows),
        "correct": sum(r["correct"] for r in rows),
        "tokens": sum(tokens.values()),
        "tokens_by_problem": tokens,
        "fixed_rollouts_tokens": round(sum(fixed.values())),
        "pass_at_k": solved_within(rows, len(problems), max_rollouts),
        "by_family": {fam: family(fam) for fam in sorted({p["family"] for p in problems})},
    }
