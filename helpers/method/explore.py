"""Exploration on hard problems (stage 05): rollouts until one reaches the ground truth.

For each problem the model samples attempts, in a numbered order, until one is graded correct
or the limit is reached; a problem leaves the batch the moment it is solved and its slots go to
the next. Every finished rollout, correct or not, is appended to the iteration's pool file as it
finishes, so a killed run resumes without redoing or repeating any. The global pool is every
iteration's file together. Selection then keeps, per problem, the correct trajectories the
current model finds hardest (highest perplexity), after the same cleaning rules as unify.
"""

from __future__ import annotations

from collections import Counter, defaultdict
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path
from typing import Any

from ..grading.formatting import END_SOLUTION, parse_response
from ..infer.decoding import Finished
from ..pipeline.artifacts import append_jsonl, cached_jsonl, settings_hash
from ..pipeline.schema import Profile
from ..pipeline.stages import locate
from .pool import resume_pool

# --------------------------------------------------------------------------- problems


def explore_problems(
    profile: Profile, rdir: Path, pool_problems: list[dict[str, Any]]
) -> list[dict]:
    """The problems explored (built once per settings), none overlapping a benchmark or a
    distillation pool problem: real problems from the explore section's sources, or else the
    embedded families of its groups, sharing `problems` out."""
    from ..world.tasks import POOL_FAMILIES, load_benchmarks

    cfg = profile.explore
    settings = {
        "size": cfg.problems,
        "seed": profile.seed,
        "groups": {g: POOL_FAMILIES[g] for g in cfg.groups},
        "sources": [s.model_dump(mode="json") for s in cfg.sources],
    }

    def build() -> list[dict[str, Any]]:
        refs = [r for rs in load_benchmarks(profile, rdir).values() for r in rs] + pool_problems
        if cfg.sources:
            return _from_sources(cfg, profile.seed, refs)
        return _embedded(cfg, profile.seed, refs)

    return cached_jsonl(locate(rdir, "explore", "problems"), settings, build)


def _embedded(cfg: Any, seed: int, refs: list[dict[str, Any]]) -> list[dict[str, Any]]:
    from ..world.seeds import seed_base
    from ..world.tasks import POOL_FAMILIES, build_embedded, overlapping

    rows = []
    for k, group in enumerate(cfg.groups):
        n = cfg.problems // len(cfg.groups) + (k < cfg.problems % len(cfg.groups))
        # each family draws from its own seed, so one prefix keeps ids apart
        rows += build_embedded(
            POOL_FAMILIES[group], n, seed_base("explore", seed), group, "explore"
        )
    flagged = overlapping(rows, refs)
    return [r for r in rows if r["id"] not in flagged]


def _from_sources(cfg: Any, seed: int, refs: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """A seeded sample of each source's problems, those overlapping a reference left out first
    (the distillation pools draw from the same datasets)."""
    import random

    from ..grading.problem import stable_hash
    from ..world.sources import POOL_LOADERS, pool_sizes
    from ..world.tasks import overlapping

    out: list[dict[str, Any]] = []
    for src, n in zip(
        cfg.sources, pool_sizes(cfg.problems, [s.size for s in cfg.sources]), strict=True
    ):
        rows = POOL_LOADERS[src.source](src)
        flagged = overlapping(rows, refs)
        rows = [r for r in rows if r["id"] not in flagged]
        if not rows:
            raise ValueError(
                f"explore.sources: {src.source} ({src.path}) left no problem to explore"
            )
        rng = random.Random(stable_hash(seed, "explore", src.source, src.path))
        out += [{**r, "group": "hard_math"} for r in rng.sample(rows, min(n, len(rows)))]
    return out


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


class Recorder:
    """Judges each finished rollout and appends it to the iteration's pool as it arrives.

    Engine-independent: the hf decode loop and vLLM's rounds hand it the same text. Keeps the
    per-problem counts that say when a problem is settled (solved, or out of attempts) and
    moves the progress bar then.
    """

    def __init__(
        self,
        problems: list[dict[str, Any]],
        out_path: Path,
        *,
        iteration: int,
        model_name: str,
        max_rollouts: int,
        done_before: list[dict[str, Any]],
        progress: bool = True,
    ) -> None:
        from tqdm import tqdm

        self.out_path, self.iteration, self.model_name = Path(out_path), iteration, model_name
        self.max_rollouts = max_rollouts
        self.solved = {r["problem_id"] for r in done_before if r["correct"]}
        self.attempts = Counter(r["problem_id"] for r in done_before)
        self.settled = self.solved | {p for p, n in self.attempts.items() if n >= max_rollouts}
        # A problem is settled once solved or out of attempts: the bar moves on failures too.
        self.bar = tqdm(
            total=len(problems), desc=f"explore {iteration}", unit="problem", disable=not progress
        )
        self._show()
        self.bar.update(len(self.settled))

    def _show(self) -> None:
        self.bar.set_postfix(solved=len(self.solved), rollouts=sum(self.attempts.values()))

    def judge(self, problem: dict[str, Any], text: str) -> dict[str, Any]:
        """A rollout's record: its response cut at the end of the solution, graded."""
        from ..grading.grade import grade

        cut = text.find(END_SOLUTION)
        if cut >= 0:
            text = text[: cut + len(END_SOLUTION)]
        g = grade(text, problem, "end")
        parsed = parse_response(text)
        return {
            "id": f"{problem['id']}:it{self.iteration}",
            "problem_id": problem["id"],
            "family": problem.get("family"),
            "question": problem["question"],
            "gold": problem["answer"],
            "iteration": self.iteration,
            "model": self.model_name,
            "response": text,
            "correct": g.correct,
            "grade": {"answer": g.answer, "reason": g.reason, "checks": g.checks},
            "well_formed": parsed.well_formed,
            "thought_words": len((parsed.thought or "").split()),
        }

    def record(self, row: dict[str, Any]) -> None:
        """Append a judged rollout (with its attempt number) to the pool."""
        row["id"] = f"{row['id']}:a{row['attempt']}"
        append_jsonl(self.out_path, [row])
        pid = row["problem_id"]
        self.attempts[pid] += 1
        if row["correct"]:
            self.solved.add(pid)
        if pid not in self.settled and (row["correct"] or self.attempts[pid] >= self.max_rollouts):
            self.settled.add(pid)
            self._show()
            self.bar.update(1)

    def close(self) -> None:
        self.bar.close()


def explore(
    backend: Any,
    problems: list[dict[str, Any]],
    out_path: Path,
    *,
    prompt: str,
    iteration: int,
    model_name: str,
    settings: dict[str, Any],
    progress: bool = True,
) -> Counter:
    """Explore every problem with a local backend (hf or vllm), appending each finished rollout
    to out_path; return the tokens spent.

    Both engines run the same scheduler (ExploreSource): attempts of a problem in order, at
    most `parallel` at once, the later ones cancelled the moment one is correct. A pool file
    written with the same settings is resumed (attempts already recorded are not run again);
    one written with other settings is set aside and exploration starts afresh.
    """
    from ..grading.formatting import render_prompt
    from ..infer.interface import SourceSettings

    cfg, tok = settings, backend.tok
    fp = settings_hash({**settings, "model": model_name, "iteration": iteration})
    done_before = resume_pool(Path(out_path), fp, problems, settings, model_name)
    recorder = Recorder(
        problems,
        out_path,
        iteration=iteration,
        model_name=model_name,
        max_rollouts=cfg["max_rollouts"],
        done_before=done_before,
        progress=progress,
    )
    ids = [
        tok(render_prompt(tok, p["question"], prompt), add_special_tokens=False).input_ids
        for p in problems
    ]

    def judge(problem: dict[str, Any], tokens: list[int]) -> dict[str, Any]:
        if tokens and tokens[-1] == tok.eos_token_id:
            tokens = tokens[:-1]
        return recorder.judge(problem, tok.decode(tokens, skip_special_tokens=False))

    source = ExploreSource(
        problems,
        ids,
        max_rollouts=cfg["max_rollouts"],
        parallel=cfg["parallel"],
        judge=judge,
        record=recorder.record,
        done_before=done_before,
    )
    run = SourceSettings(
        prompts=ids,
        max_new_tokens=cfg["max_new_tokens"],
        batch_size=cfg["batch_size"],
        temperature=cfg["temperature"],
        top_p=cfg["top_p"],
        seed=settings_hash([cfg["seed"], iteration]),
        stop=(END_SOLUTION,),
        logprobs=True,
    )
    try:
        return backend.run_source(source, run)
    finally:
        recorder.close()


def settings(profile: Profile) -> dict[str, Any]:
    """The exploration settings that decide a pool's rollouts (its resume fingerprint)."""
    cfg = profile.explore.model_dump(
        exclude={"select", "start", "problems", "pool_files", "pool_files_unmatched"}
    )
    return {**cfg, "seed": profile.seed}
