"""The two engines side by side, alone: evaluation, sampled exploration and scoring, timed whole.

Usage: python tools/engine_compare.py PROFILE MODEL [--out FILE] [--limit N] [--explore-problems 40]

For one model of a run (a checkpoint folder, or the backbone's alias), on the profile's sizes:

- evaluation: greedy on every benchmark of the profile (its first N problems with `--limit`;
  its max_new_tokens), each engine from
  its start (model load, engine start-up) to the last graded response; how many responses are
  the same text on both, and the accuracy each gives;
- exploration: the explore section's settings (temperature, top-p, rollouts, parallel attempts,
  stop when solved) on dev problems of the explore groups (never a benchmark or pool problem),
  through the one scheduler both engines run; problems solved and tokens generated;
- scoring: the perplexity of every greedy response under the model, teacher-forced on both, and
  the largest difference in mean log-probability.

Run it alone: two torch processes on two cores do not share fairly. The JSON names its command.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

from calibrate_world import dev_problems

from helpers.grading.formatting import load_prompt, render_prompt
from helpers.infer.generation import free, make_backend
from helpers.method.evaluation import evaluate_benchmarks
from helpers.method.explore import explore, settings
from helpers.method.pool import iteration_stats
from helpers.pipeline.artifacts import read_jsonl
from helpers.pipeline.config import load_profile
from helpers.pipeline.paths import rel, run_dir
from helpers.world.tasks import load_benchmarks


def one_engine(kind: str, profile, model: str, benches, explore_dev, out: Path) -> dict:
    """Evaluate, explore and score with one engine; each part timed from the engine's start."""
    prompt = load_prompt(profile.prompt_file)
    gen = profile.generation
    t0 = time.time()
    be = make_backend(kind, model, batch_size=gen.batch_size, dtype=gen.dtype, seed=profile.seed)
    be.progress = False
    started = time.time() - t0
    records = evaluate_benchmarks(be, benches, prompt, gen.max_new_tokens)
    evaluated = time.time() - t0
    pool = out / f"{kind}_pool.jsonl"
    t1 = time.time()
    tokens = explore(
        be,
        explore_dev,
        pool,
        prompt=prompt,
        iteration=1,
        model_name=kind,
        settings=settings(profile),
        progress=False,
    )
    explored = time.time() - t1
    rows = read_jsonl(pool)
    stats = iteration_stats(rows, explore_dev, profile.explore.max_rollouts)
    tok = be.tok
    flat = [r for rs in records.values() for r in rs]
    p_ids = [
        tok(render_prompt(tok, r["question"], prompt), add_special_tokens=False).input_ids
        for r in flat
    ]
    r_ids = [tok(r["response"], add_special_tokens=False).input_ids for r in flat]
    t2 = time.time()
    scores = be.score(p_ids, r_ids)
    scored = time.time() - t2
    free(be)
    return {
        "start_s": round(started, 1),
        "evaluation_s": round(evaluated, 1),
        "exploration_s": round(explored, 1),
        "scoring_s": round(scored, 1),
        "responses": {r["id"]: r["response"] for r in flat},
        "accuracy": {
            b: round(100 * sum(r["correct"] for r in rs) / len(rs), 1) for b, rs in records.items()
        },
        "generated_tokens": sum(r["tokens"] for r in flat),
        "explore": {
            "solved": stats["solved"],
            "problems": stats["problems"],
            "rollouts": stats["rollouts"],
            "tokens": dict(tokens),
        },
        "mean_logprobs": [s.mean for s in scores],
    }


def speedups(report: dict) -> None:
    """hf's time over vLLM's: evaluation and scoring do the same work on both; exploration's
    samples differ (each engine draws its own), so it is compared per decoded token."""
    for part in ("evaluation", "scoring"):
        report[f"speedup_{part}"] = round(
            report["hf"][f"{part}_s"] / report["vllm"][f"{part}_s"], 2
        )
    rate = {}
    for kind in ("hf", "vllm"):
        e = report[kind]
        e["exploration_decode_tokens_per_s"] = rate[kind] = round(
            e["explore"]["tokens"]["decode"] / e["exploration_s"], 1
        )
    report["speedup_exploration_per_token"] = round(rate["vllm"] / rate["hf"], 2)


def main() -> None:
    """Run both engines on the same work, write what each took and how far they agree."""
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("profile")
    ap.add_argument("model")
    ap.add_argument("--out", default="outputs/reference/engine_compare.json")
    ap.add_argument("--explore-problems", type=int, default=40)
    ap.add_argument("--limit", type=int, default=None, help="problems per benchmark")
    args = ap.parse_args()
    profile = load_profile(args.profile)
    rdir = run_dir(profile.run)
    benches = load_benchmarks(profile, rdir)
    refs = [r for rs in benches.values() for r in rs]
    benches = {b: rs[: args.limit] for b, rs in benches.items()}
    explore_dev = [
        p
        for g in profile.explore.groups
        for p in dev_problems(profile, g, args.explore_problems, refs)
    ]
    report: dict = {
        "command": " ".join(["python tools/engine_compare.py", *sys.argv[1:]]),
        "model": rel(args.model),
    }
    with tempfile.TemporaryDirectory() as tmp:
        for kind in ("hf", "vllm"):
            report[kind] = one_engine(kind, profile, args.model, benches, explore_dev, Path(tmp))
            print(
                kind,
                {k: v for k, v in report[kind].items() if k not in ("responses", "mean_logprobs")},
                flush=True,
            )
    a, b = report["hf"].pop("responses"), report["vllm"].pop("responses")
    la, lb = report["hf"].pop("mean_logprobs"), report["vllm"].pop("mean_logprobs")
    report["same_greedy_text"] = f"{sum(a[k] == b[k] for k in a)} of {len(a)}"
    report["largest_mean_logprob_difference"] = round(
        max(abs(x - y) for x, y in zip(la, lb, strict=True)), 6
    )
    speedups(report)
    Path(args.out).write_text(json.dumps(report, indent=1) + "\n")
    print(json.dumps({k: v for k, v in report.items() if k not in ("hf", "vllm")}, indent=1))


if __name__ == "__main__":
    main()
