"""Exploration on hard problems (stage 05): rollouts until one reaches the ground truth.

For each problem the model samples attempts, in a numbered order, until one is graded correct
or the limit is reached; a problem leaves the batch the moment it is solved and its slots go to
the next. Every finished rollout, correct or not, is appended to the iteration's pool file as it
finishes, so a killed run resumes without redoing or repeating any. The global pool is every
iteration's file together. Selection then keeps, per problem, the correct trajectories the
current model finds hardest (highest perplexity), after the same cleaning rules as unify.
"""

from __future__ import annotations

import math
from collections import Counter, defaultdict
from collections.abc import Callable, Iterable, Sequence
from itertools import combinations
from pathlib import Path
from typing import Any

from ..grading import filters
from ..grading.formatting import END_SOLUTION, parse_response
from ..infer.decoding import Finished, common_prefix, decode
from ..pipeline.artifacts import (
    append_jsonl,
    cached_jsonl,
    iter_jsonl,
    read_json,
    settings_hash,
    write_json,
)

# Exploration problems come from seeds of their own: disjoint from the benchmarks', the
# training pools' and the SFT probe's ranges (decontamination checks it anyway).
EXPLORE_SEED_BASE = 3_000_000


# --------------------------------------------------------------------------- problems


def explore_problems(profile: Any, rdir: Path, pool_problems: list[dict[str, Any]]) -> list[dict]:
    """The problems explored (built once per settings), shared out among the explore section's
    pool groups, none overlapping a benchmark or a distillation pool problem."""
    from ..world.tasks import POOL_FAMILIES, build_embedded, load_benchmarks, overlapping

    cfg = profile.explore
    groups = {g: POOL_FAMILIES[g] for g in cfg.groups}
    settings = {"size": cfg.problems, "seed": profile.seed, "groups": groups}

    def build() -> list[dict[str, Any]]:
        rows = []
        for k, (group, families) in enumerate(groups.items()):
            n = cfg.problems // len(groups) + (k < cfg.problems % len(groups))
            # each family draws from its own seed, so one prefix keeps ids apart
            rows += build_embedded(
                families, n, EXPLORE_SEED_BASE + 7919 * profile.seed, group, "explore"
            )
        refs = [r for rs in load_benchmarks(profile, rdir).values() for r in rs] + pool_problems
        flagged = overlapping(rows, refs)
        return [r for r in rows if r["id"] not in flagged]

    return cached_jsonl(Path(rdir) / "explore" / "problems.jsonl", settings, build)


# --------------------------------------------------------------------------- the pool


def pool_path(rdir: Path, iteration: int) -> Path:
    """The file that holds one iteration's rollouts."""
    return Path(rdir) / "explore" / f"iter{iteration}" / "pool.jsonl"


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


class ExploreSource:
    """Hands out numbered attempts of unsolved problems and stops a problem once solved.

    Attempt k of a problem is issued only after attempts 1..k-1, and a correct attempt j
    cancels the problem's running attempts numbered above j (never those below, which still
    finish): the attempts recorded up to the first success are then exactly 1..j, so "solved
    within k attempts" is an unbiased estimate of pass@k however attempts overlap in time.
    """

    def __init__(
        self,
        problems: list[dict[str, Any]],
        prompts: list[list[int]],
        *,
        max_rollouts: int,
        parallel: int,
        judge: Callable[[dict[str, Any], list[int]], dict[str, Any]],
        record: Callable[[dict[str, Any]], None],
        done_before: Iterable[dict[str, Any]] = (),
    ) -> None:
        self.problems, self.prompts = problems, prompts
        self.max_rollouts, self.parallel = max_rollouts, parallel
        self.judge, self.record = judge, record
        self.finished_attempts: dict[int, set[int]] = defaultdict(set)
        self.first_correct: dict[int, int] = {}
        self.running: dict[int, set[int]] = defaultdict(set)
        index = {p["id"]: i for i, p in enumerate(problems)}
        for row in done_before:  # a resumed run: what finished before the kill counts
            i = index.get(row["problem_id"])
            if i is None:
                continue
            self.finished_attempts[i].add(row["attempt"])
            if row["correct"]:
                self.first_correct[i] = min(
                    self.first_correct.get(i, row["attempt"]), row["attempt"]
                )

    def _limit(self, i: int) -> int:
        """The highest attempt number problem i may still run: below its first success."""
        return self.first_correct[i] - 1 if i in self.first_correct else self.max_rollouts

    def _next(self, i: int) -> list[int]:
        """Attempts of problem i that could start now, in order."""
        room = self.parallel - len(self.running[i])
        if room <= 0:
            return []
        done = self.finished_attempts[i] | self.running[i]
        todo = [k for k in range(1, self._limit(i) + 1) if k not in done]
        return todo[:room]

    def waiting(self) -> int:
        """Attempts that could start now."""
        return sum(len(self._next(i)) for i in range(len(self.problems)))

    def take(self, n: int) -> list[tuple[Any, Sequence[int]]]:
        """Up to n attempts; a problem's attempts are taken together (they share a prefill)."""
        out: list[tuple[Any, Sequence[int]]] = []
        for i in range(len(self.problems)):
            for k in self._next(i)[: n - len(out)]:
                self.running[i].add(k)
                out.append(((i, k), self.prompts[i]))
            if len(out) >= n:
                break
        return out

    def finished(self, done: Finished) -> Iterable[Any]:
        """Grade and record a finished attempt; a correct one cancels later running attempts."""
        i, k = done.key
        self.running[i].discard(k)
        row = self.judge(self.problems[i], done.tokens)
        row.update(attempt=k, tokens=len(done.tokens), stop_reason=done.reason)
        if done.logprob is not None:
            row["logprob"] = done.logprob
        self.record(row)
        self.finished_attempts[i].add(k)
        if not row["correct"]:
            return ()
        self.first_correct[i] = min(self.first_correct.get(i, k), k)
        later = [(i, j) for j in self.running[i] if j > self.first_correct[i]]
        for _, j in later:
            self.running[i].discard(j)
        return later


def explore(
    model: Any,
    tok: Any,
    problems: list[dict[str, Any]],
    out_path: Path,
    *,
    prompt: str,
    iteration: int,
    model_name: str,
    settings: dict[str, Any],
    stop_loops: bool = True,
    progress: bool = True,
) -> Counter:
    """Explore every problem with the model, appending each finished rollout to out_path.

    A pool file written with the same settings is resumed: attempts already recorded are not
    run again. One written with other settings is moved aside and exploration starts afresh.
    Returns the tokens spent (prefill, decode, ...) by this call.
    """
    from tqdm import tqdm

    from ..grading.formatting import render_prompt
    from ..grading.grade import grade
    from ..infer.generation import stop_check

    cfg = settings
    out_path = Path(out_path)
    fp = settings_hash({**settings, "model": model_name, "iteration": iteration})
    done_before = resume_pool(out_path, fp, problems, cfg, model_name)

    rendered = [render_prompt(tok, p["question"], prompt) for p in problems]
    ids = [tok(r, add_special_tokens=False).input_ids for r in rendered]
    # A problem is settled once solved or out of attempts: the bar moves on failures too.
    bar = tqdm(
        total=len(problems), desc=f"explore {iteration}", unit="problem", disable=not progress
    )

    def judge(problem: dict[str, Any], tokens: list[int]) -> dict[str, Any]:
        text = tok.decode(tokens, skip_special_tokens=False)
        if tokens and tokens[-1] == tok.eos_token_id:
            text = tok.decode(tokens[:-1], skip_special_tokens=False)
        cut = text.find(END_SOLUTION)
        if cut >= 0:
            text = text[: cut + len(END_SOLUTION)]
        g = grade(text, problem, "end")
        parsed = parse_response(text)
        return {
            "id": f"{problem['id']}:it{iteration}",
            "problem_id": problem["id"],
            "family": problem.get("family"),
            "question": problem["question"],
            "gold": problem["answer"],
            "iteration": iteration,
            "model": model_name,
            "response": text,
            "correct": g.correct,
            "grade": {"answer": g.answer, "reason": g.reason, "checks": g.checks},
            "well_formed": parsed.well_formed,
            "thought_words": len((parsed.thought or "").split()),
        }

    solved = {r["problem_id"] for r in done_before if r["correct"]}
    attempts = Counter(r["problem_id"] for r in done_before)
    settled = solved | {p for p, n in attempts.items() if n >= cfg["max_rollouts"]}

    def record(row: dict[str, Any]) -> None:
        row["id"] = f"{row['id']}:a{row['attempt']}"
        append_jsonl(out_path, [row])
        pid = row["problem_id"]
        attempts[pid] += 1
        solved.update([pid] if row["correct"] else [])
        if pid not in settled and (row["correct"] or attempts[pid] >= cfg["max_rollouts"]):
            settled.add(pid)
            bar.set_postfix(solved=len(solved), rollouts=sum(attempts.values()))
            bar.update(1)

    bar.set_postfix(solved=len(solved), rollouts=sum(attempts.values()))
    bar.update(len(settled))
    source = ExploreSource(
        problems,
        ids,
        max_rollouts=cfg["max_rollouts"],
        parallel=cfg["parallel"],
        judge=judge,
        record=record,
        done_before=done_before,
    )
    stats: Counter = Counter()
    head = common_prefix(ids)
    decode(
        model,
        source,
        head=ids[0][:head] if head else [],
        pad_id=tok.pad_token_id if tok.pad_token_id is not None else tok.eos_token_id,
        batch_size=cfg["batch_size"],
        max_new_tokens=cfg["max_new_tokens"],
        eos=tok.eos_token_id,
        stopped=stop_check(tok, (END_SOLUTION,), stop_loops),
        temperature=cfg["temperature"],
        top_p=cfg["top_p"],
        seed=settings_hash([cfg["seed"], iteration]),
        logprobs=True,
        stats=stats,
    )
    bar.close()
    return stats


# --------------------------------------------------------------------------- statistics


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
            if done:
                log(f"{out_path.name}: resuming after {len(done)} finished rollouts")
    write_json(meta_path, {"fingerprint": fingerprint, "settings": settings, "model": model_name})
    return done


def pass_at_k(n: int, c: int, k: int) -> float:
    """The unbiased pass@k estimate from n samples with c correct (Chen et al., 2021)."""
    if n - c < k:
        return 1.0
    return 1.0 - math.comb(n - c, k) / math.comb(n, k)


def pass_at_k_enumerated(outcomes: Sequence[bool], k: int) -> float:
    """pass@k by brute force: the share of k-subsets of the samples holding a correct one."""
    subsets = list(combinations(range(len(outcomes)), k))
    return sum(any(outcomes[i] for i in s) for s in subsets) / len(subsets)


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


# --------------------------------------------------------------------------- selection


def select(
    pool: list[dict[str, Any]],
    perplexity: dict[str, float],
    per_problem: int,
    min_thought_words: int,
) -> list[dict[str, Any]]:
    """Every correct trajectory of the pool with the reason it was kept or dropped.

    The same cleaning rules as unify first (malformed, short, repetition, gibberish, language
    mixing, near duplicates of one problem); then, per problem, the `per_problem` trajectories
    with the highest perplexity under the current model are kept.
    """
    out = []
    clean = []
    for r in pool:
        if not r["correct"]:
            continue
        parsed = parse_response(r["response"])
        thought = parsed.thought or ""
        why = None
        if not parsed.well_formed:
            why = "not well formed: " + ", ".join(parsed.problems)
        elif filters.too_short(thought, min_thought_words):
            why = "thought too short"
        elif filters.has_language_mixing(r["response"]):
            why = "language mixing"
        elif filters.has_repetition(thought):
            why = "repetition"
        elif filters.is_gibberish(thought):
            why = "gibberish"
        item = {**r, "thought": thought, "perplexity": perplexity.get(r["id"])}
        if why:
            out.append({**item, "kept": False, "why": why})
        else:
            clean.append(item)
    exact, near = filters.near_duplicates(clean, "thought", 0.9)
    unique = []
    for i, item in enumerate(clean):
        if i in exact or i in near:
            out.append({**item, "kept": False, "why": "duplicate of an earlier trajectory"})
        else:
            unique.append(item)
    by_problem: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for item in unique:
        by_problem[item["problem_id"]].append(item)
    for items in by_problem.values():
        items.sort(key=lambda it: -(it["perplexity"] if it["perplexity"] is not None else 0.0))
        for rank, item in enumerate(items):
            kept = rank < per_problem
            why = (
                f"highest perplexity of its problem ({rank + 1} of {len(items)})"
                if kept
                else f"perplexity rank {rank + 1} of {len(items)}, past the {per_problem} kept"
            )
            out.append({**item, "kept": kept, "why": why})
    return out


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


# --------------------------------------------------------------------------- for the notebooks


def settings(profile: Any) -> dict[str, Any]:
    """The exploration settings that decide a pool's rollouts (its resume fingerprint)."""
    cfg = profile.explore.model_dump(
        exclude={"select", "start", "problems", "pool_files", "pool_files_unmatched"}
    )
    return {**cfg, "seed": profile.seed}


def global_pool(
    profile: Any, rdir: Path, upto: int, problems: list[dict[str, Any]]
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


def perplexities(
    model: Any,
    tok: Any,
    pool: list[dict[str, Any]],
    prompt: str,
    current: str,
    keep: Callable[[dict[str, Any]], bool] = lambda r: r["correct"],
) -> dict[str, float]:
    """Perplexity of the pool's trajectories that `keep` accepts (the correct ones unless told
    otherwise) under the current model.

    The current model's own rollouts carry their log-probability from generation; the others
    (earlier iterations' models) are scored with a forward pass.
    """
    from ..grading.formatting import render_prompt
    from ..infer.scoring import Score, score_hf

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
        for r, s in zip(todo, score_hf(model, p_ids, r_ids), strict=True):
            out[r["id"]] = s.perplexity
    return out


def problem_table(problems: list[dict[str, Any]]) -> Any:
    """Problems per family, with one question each."""
    import pandas as pd

    df = pd.DataFrame(problems)
    return (
        df.groupby("family")
        .agg(problems=("id", "count"), example=("question", "first"))
        .assign(example=lambda d: d.example.str.slice(0, 80))
    )


def stats_table(stats: dict[str, Any]) -> Any:
    """One iteration's exploration in one table: by family, and in all."""
    import pandas as pd

    fixed = f"tokens at {stats['max_rollouts']} rollouts each"
    keys = ["problems", "solved", "rollouts", "tokens", "fixed_rollouts_tokens"]
    rows = [{"family": f, **{k: c[k] for k in keys}} for f, c in stats["by_family"].items()]
    rows.append({"family": "all", **{k: stats[k] for k in keys}})
    return pd.DataFrame(rows).set_index("family").rename(columns={"fixed_rollouts_tokens": fixed})


def problems_note(asked: int, problems: list[dict[str, Any]]) -> str:
    """How many problems are explored, and how many of those asked for were dropped."""
    dropped = asked - len(problems)
    why = (
        f" ({dropped} of the {asked} asked for dropped: they overlap a benchmark or a "
        "training pool problem)"
        if dropped
        else ""
    )
    return f"{len(problems)} problems explored{why}"


def selection_table(selected: list[dict[str, Any]]) -> Any:
    """How many correct trajectories were kept, and why the others were dropped."""
    import pandas as pd

    reasons = Counter(
        "kept" if s["kept"] else s["why"].split(":")[0].split(",")[0].split(" (")[0]
        for s in selected
    )
    return pd.DataFrame(sorted(reasons.items()), columns=["outcome", "trajectories"]).set_index(
        "outcome"
    )


def iteration_dir(rdir: Path, iteration: int) -> Path:
    """The folder of one iteration's artifacts."""
    return Path(rdir) / "explore" / f"iter{iteration}"


def write_iteration(
    rdir: Path,
    iteration: int,
    selected: list[dict[str, Any]],
    stats: dict[str, Any],
    tokens: dict[str, int],
    explorer: str,
) -> Path:
    """Write the selection (every candidate with its reason) and the iteration's summary."""
    from ..pipeline.artifacts import write_jsonl

    out = iteration_dir(rdir, iteration)
    write_jsonl(out / "selected.jsonl", selected)
    write_json(
        out / "summary.json",
        {
            "iteration": iteration,
            "explorer": explorer,
            "stats": stats,
            "selected": sum(s["kept"] for s in selected),
            "tokens": dict(tokens),
        },
    )
    return out


def sft_data(rdir: Path, variant: Any) -> list[dict[str, Any]]:
    """A variant's SFT data: its mixture, plus the trajectories its explore iteration kept."""
    from ..pipeline.artifacts import read_jsonl

    data = read_jsonl(Path(rdir) / "mix" / f"{variant.mixture}.jsonl")
    if variant.explore_iteration:
        data += as_demos(
            read_jsonl(iteration_dir(rdir, variant.explore_iteration) / "selected.jsonl")
        )
    return data
