"""Exploration: stop-when-solved scheduling, resuming a killed run, pass@k, perplexity, selection."""

from __future__ import annotations

import itertools
import json
import random
from collections import Counter

import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st

from helpers.grading.formatting import format_response
from helpers.infer.decoding import Finished, ListSource
from helpers.infer.scoring import score_hf
from helpers.method.explore import ExploreSource
from helpers.method.pool import first_success, iteration_stats, pass_at_k, solved_within
from helpers.method.selection import select
from tests.conftest import sample

transformers = pytest.importorskip("transformers")


def pass_at_k_enumerated(outcomes, k):
    """pass@k by brute force: the share of k-subsets of the samples holding a correct one."""
    from itertools import combinations

    subsets = list(combinations(range(len(outcomes)), k))
    return sum(any(outcomes[i] for i in s) for s in subsets) / len(subsets)


def explore_settings(**changes):
    """An explore section's settings for a test: sampling at temperature 1, batch 4, seed 0."""
    return {"temperature": 1.0, "top_p": 1.0, "batch_size": 4, "seed": 0, **changes}


# --------------------------------------------------------------------------- pass@k


@given(st.lists(st.booleans(), min_size=1, max_size=9), st.integers(1, 9))
def test_pass_at_k_estimator_matches_enumeration(outcomes, k):
    k = min(k, len(outcomes))
    assert pass_at_k(len(outcomes), sum(outcomes), k) == pytest.approx(
        pass_at_k_enumerated(outcomes, k)
    )


def test_solved_within_k_is_pass_at_k_over_orderings():
    # For samples drawn in a random order, "the first success comes within k" has the same
    # expectation as the unbiased estimator: average it over every ordering of the samples.
    outcomes = [False, True, False, False, True]
    for k in range(1, len(outcomes) + 1):
        orders = list(itertools.permutations(outcomes))
        share = sum(any(o[:k]) for o in orders) / len(orders)
        assert share == pytest.approx(pass_at_k(len(outcomes), sum(outcomes), k))


def test_solved_within_reads_first_successes():
    rows = [
        {"problem_id": "a", "attempt": 1, "correct": False},
        {"problem_id": "a", "attempt": 2, "correct": True},
        {"problem_id": "b", "attempt": 1, "correct": True},
        {"problem_id": "c", "attempt": 1, "correct": False},
    ]
    assert first_success(rows) == {"a": 2, "b": 1, "c": None}
    assert solved_within(rows, problems=4, max_k=3) == [0.25, 0.5, 0.5]


# --------------------------------------------------------------------------- scheduling


def make_source(problems, record, max_rollouts=6, parallel=3, done_before=(), wins=None):
    """An ExploreSource whose 'grader' calls an attempt correct when (problem, attempt) is in wins."""
    wins = wins if wins is not None else {(0, 3), (1, 1), (2, 5)}

    def judge(problem, tokens):
        return {"id": problem["id"], "problem_id": problem["id"], "correct": None}

    src = ExploreSource(
        problems,
        [[1, 2, 3 + i] for i in range(len(problems))],
        max_rollouts=max_rollouts,
        parallel=parallel,
        judge=judge,
        record=record,
        done_before=done_before,
    )
    orig = src.finished

    def finished(done):
        i, k = done.key
        src.judge = lambda p, t, i=i, k=k: {
            "id": p["id"],
            "problem_id": p["id"],
            "correct": (i, k) in wins,
        }
        return orig(done)

    src.finished = finished
    return src


def drive(src, order_seed=0, stop_after=None):
    """Finish running attempts in a shuffled order, as a batch of uneven lengths would."""
    rng = random.Random(order_seed)
    running = []
    finished = 0
    while True:
        running += src.take(100)
        if not running:
            return finished
        rng.shuffle(running)
        key, _ = running.pop()
        cancelled = set(src.finished(Finished(key, [7], "eos")))
        running = [r for r in running if r[0] not in cancelled]
        finished += 1
        if stop_after is not None and finished >= stop_after:
            return finished


PROBLEMS = [{"id": f"p{i}"} for i in range(4)]


@pytest.mark.parametrize("seed", range(5))
def test_attempts_stop_at_the_first_success_in_issue_order(seed):
    rows = []
    drive(make_source(PROBLEMS, rows.append), order_seed=seed)
    by = {
        p["id"]: sorted(r["attempt"] for r in rows if r["problem_id"] == p["id"]) for p in PROBLEMS
    }
    # every attempt below the first success finished; p3 (never correct) ran all six
    assert by["p0"][:3] == [1, 2, 3] and by["p1"][:1] == [1] and by["p2"][:5] == [1, 2, 3, 4, 5]
    assert by["p3"] == [1, 2, 3, 4, 5, 6]
    assert first_success(rows) == {"p0": 3, "p1": 1, "p2": 5, "p3": None}
    assert len(rows) == len({(r["problem_id"], r["attempt"]) for r in rows})


@pytest.mark.parametrize("kill_after", [1, 4, 9])
def test_a_killed_exploration_resumes_with_nothing_lost_or_repeated(kill_after):
    full = []
    drive(make_source(PROBLEMS, full.append), order_seed=3)
    first = []
    drive(make_source(PROBLEMS, first.append), order_seed=3, stop_after=kill_after)
    rest = []
    drive(make_source(PROBLEMS, rest.append, done_before=first), order_seed=1)
    done = first + rest
    keys = [(r["problem_id"], r["attempt"]) for r in done]
    assert len(keys) == len(set(keys))  # nothing repeated
    assert first_success(done) == first_success(full)  # the same outcome as an unbroken run
    for pid, j in first_success(full).items():  # nothing below a first success is lost
        got = {a for p, a in keys if p == pid}
        assert set(range(1, (j or 6) + 1)) <= got


def test_exploration_through_the_decode_loop_shares_prefill_and_cancels(tiny_lm):
    rows = []
    src = make_source(PROBLEMS[:2], rows.append, max_rollouts=4, parallel=4, wins={(0, 1)})
    stats = Counter()
    sample(tiny_lm, src, head=[1, 2], batch_size=8, max_new_tokens=6, seed=0, stats=stats)
    assert stats["shared_prefill"] == 6  # four attempts of each prompt, one prefill each
    assert {r["problem_id"] for r in rows if r["attempt"] == 1} == {"p0", "p1"}
    assert all(r["logprob"] < 0 for r in rows)


# --------------------------------------------------------------------------- perplexity


def test_perplexity_matches_a_direct_computation(tiny_lm):
    prompts = [[1, 2, 3], [4, 5], [6, 7, 8, 9]]
    responses = [[10, 11, 12], [13], [14, 15]]
    got = score_hf(tiny_lm, prompts, responses, batch_tokens=8)
    for p, r, s in zip(prompts, responses, got, strict=True):
        with torch.no_grad():
            logits = tiny_lm(torch.tensor([p + r])).logits[0].float()
        lp = torch.log_softmax(logits, -1)
        direct = sum(lp[len(p) - 1 + j, t].item() for j, t in enumerate(r))
        assert s.logprob == pytest.approx(direct, abs=1e-4) and s.tokens == len(r)
        assert s.perplexity == pytest.approx(torch.tensor(-direct / len(r)).exp().item(), rel=1e-4)


def test_generation_logprobs_equal_a_rescoring(tiny_lm):
    src = ListSource([[1, 2, 3], [4, 5]])
    sample(tiny_lm, src, batch_size=2, max_new_tokens=5, temperature=0.9, top_p=0.9, seed=1)
    scores = score_hf(tiny_lm, [[1, 2, 3], [4, 5]], [src.out[0].tokens, src.out[1].tokens])
    for i in range(2):
        assert src.out[i].logprob == pytest.approx(scores[i].logprob, abs=1e-4)


# --------------------------------------------------------------------------- selection


def rollout(pid, a, thought, correct=True):
    return {
        "id": f"{pid}:a{a}",
        "problem_id": pid,
        "question": "q",
        "response": format_response(thought, "\\boxed{1}"),
        "correct": correct,
        "model": "m",
        "thought_words": len(thought.split()),
    }


def test_selection_keeps_the_hardest_clean_trajectory_and_says_why():
    long = "I add the numbers one by one and check each partial sum twice before moving on"
    pool = [
        rollout("p1", 1, long + " first way"),
        rollout("p1", 2, long + " a second, different way entirely with other words"),
        rollout("p1", 3, "too short"),
        rollout("p1", 4, long + " first way"),  # a duplicate of attempt 1
        rollout("p2", 1, long, correct=False),
    ]
    ppl = {"p1:a1": 3.0, "p1:a2": 5.0, "p1:a3": 9.0, "p1:a4": 3.0}
    from helpers.pipeline.schema import UnifyCfg

    cleaning = UnifyCfg(min_thought_words=10)  # the chain unify applies, with its thresholds
    out = {s["id"]: s for s in select(pool, ppl, per_problem=1, cleaning_cfg=cleaning)}
    assert set(out) == {"p1:a1", "p1:a2", "p1:a3", "p1:a4"}  # incorrect ones are not candidates
    assert out["p1:a2"]["kept"] and "highest perplexity" in out["p1:a2"]["why"]
    assert not out["p1:a1"]["kept"] and "rank 2 of 2" in out["p1:a1"]["why"]
    assert out["p1:a3"]["why"] == "short_thought"
    assert out["p1:a4"]["why"] == "exact_duplicate"


def test_iteration_stats_count_what_fixed_rollouts_would_have_spent():
    rows = [
        {"problem_id": "a", "attempt": 1, "correct": True, "tokens": 100},
        {"problem_id": "b", "attempt": 1, "correct": False, "tokens": 50},
        {"problem_id": "b", "attempt": 2, "correct": False, "tokens": 70},
    ]
    problems = [{"id": "a", "family": "x"}, {"id": "b", "family": "x"}]
    st_ = iteration_stats(rows, problems, max_rollouts=20)
    assert st_["tokens"] == 220 and st_["fixed_rollouts_tokens"] == 20 * 100 + 20 * 60
    assert st_["solved"] == 1 and st_["pass_at_k"][:2] == [0.5, 0.5]
    assert json.dumps(st_)  # a summary artifact is plain JSON


def test_explore_killed_while_writing_resumes_from_its_pool_file(
    small_model, tmp_path, monkeypatch
):
    import helpers.method.explore as ex
    from helpers.infer.hf_backend import HFBackend
    from helpers.pipeline.schema import BenchmarkCfg
    from helpers.world.tasks import build_benchmark

    backend = HFBackend(*small_model, progress=False, stop_loops=True)
    problems = build_benchmark("h", BenchmarkCfg(kind="hard", size=3))
    settings = explore_settings(max_rollouts=3, parallel=2, max_new_tokens=6)

    def run(path):
        return ex.explore(
            backend,
            problems,
            path,
            prompt="p",
            iteration=1,
            model_name="m",
            settings=settings,
            progress=False,
        )

    whole = tmp_path / "whole" / "pool.jsonl"
    run(whole)
    broken = tmp_path / "broken" / "pool.jsonl"
    real, calls = ex.append_jsonl, []

    def crash_on_fourth(path, rows):
        calls.append(1)
        if len(calls) == 4:
            raise KeyboardInterrupt  # the run is killed while it writes its fourth rollout
        real(path, rows)

    monkeypatch.setattr(ex, "append_jsonl", crash_on_fourth)
    with pytest.raises(KeyboardInterrupt):
        run(broken)
    monkeypatch.setattr(ex, "append_jsonl", real)
    assert len(broken.read_text().splitlines()) == 3
    run(broken)  # resumes: the same settings, the same pool file
    a = [json.loads(x) for x in whole.read_text().splitlines()]
    b = [json.loads(x) for x in broken.read_text().splitlines()]
    key = lambda r: (r["problem_id"], r["attempt"])  # noqa: E731
    assert sorted(map(key, b)) == sorted(map(key, a)) and len(b) == len(set(map(key, b)))
    # each attempt drew from its own seed: the same tokens, however the batch was made up
    assert {key(r): r["response"] for r in b} == {key(r): r["response"] for r in a}
    # other settings: the old pool is moved aside, never mixed in
    settings["max_new_tokens"] = 4
    run(broken)
    assert len(list(broken.parent.glob("pool.stale-*.jsonl"))) == 1


def test_explore_problems_share_out_the_groups_and_avoid_pools_and_benchmarks(tmp_path):
    from helpers.method.explore import explore_problems
    from helpers.pipeline.config import load_profile
    from helpers.world.tasks import POOL_FAMILIES, load_benchmarks, overlapping

    prof = load_profile("params/tiny.yaml")
    data = prof.model_dump()
    data["explore"].update(groups=["normal_math", "hard_math"], problems=16)
    prof = type(prof).model_validate(data)
    problems = explore_problems(prof, tmp_path, [])
    # one-digit problems repeat across seed ranges: those equal to a benchmark's are dropped
    benches = [r for rs in load_benchmarks(prof, tmp_path).values() for r in rs]
    assert not overlapping(problems, benches) and 14 <= len(problems) <= 16
    by_group = {g: [p for p in problems if p["group"] == g] for g in prof.explore.groups}
    assert all(7 <= len(ps) <= 8 for ps in by_group.values())
    for g, ps in by_group.items():
        assert {p["family"] for p in ps} <= set(POOL_FAMILIES[g])
    # a pool problem with the same text is dropped, and the file is rebuilt for the new pool
    again = explore_problems(prof, tmp_path / "other", [problems[0]])
    assert problems[0]["id"] not in {p["id"] for p in again} and len(again) == len(problems) - 1


def test_the_bar_moves_when_a_problem_is_solved_or_out_of_attempts(small_model, tmp_path, capsys):
    import helpers.method.explore as ex
    from helpers.infer.hf_backend import HFBackend
    from helpers.pipeline.schema import BenchmarkCfg
    from helpers.world.tasks import build_benchmark

    problems = build_benchmark("h", BenchmarkCfg(kind="hard", size=2))
    settings = explore_settings(max_rollouts=2, parallel=1, max_new_tokens=3)
    ex.explore(
        HFBackend(*small_model, progress=False, stop_loops=True),
        problems,
        tmp_path / "pool.jsonl",
        prompt="p",
        iteration=1,
        model_name="m",
        settings=settings,
        progress=True,
    )
    # a random model solves nothing: the problems settle by running out of attempts
    final = capsys.readouterr().err.replace("\r", "\n").strip().splitlines()[-1]
    assert "2/2" in final and "rollouts=4" in final and "solved=0" in final
