"""What a grader change does to a finished run: verdicts and labels that change, and speed.

Usage: python tools/grader_report.py PROFILE [--out REPORT.json]

Grades every stored evaluation response (`eval/<variant>/<benchmark>.jsonl`) and every collected
teacher response (`collect/responses.jsonl`) of the profile's run again with the current
grader, without generating anything and without writing into the run. Prints each verdict or
label that changes (old -> new, with the new grade's reason) and the grader's speed in responses
per second. `python -m helpers.method.evaluation PROFILE` then rewrites the evaluations in place.
"""

from __future__ import annotations

import argparse
import json
import time
from collections import Counter
from pathlib import Path

from helpers.grading.grade import grade
from helpers.method.collect import label
from helpers.pipeline.artifacts import read_jsonl
from helpers.pipeline.config import load_profile
from helpers.pipeline.paths import rel, run_dir
from helpers.pipeline.stages import locate, pattern
from helpers.world.tasks import load_benchmarks


def main() -> None:
    """Grade a run's stored responses again and report the differences."""
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("profile")
    ap.add_argument("--out", help="write the report as JSON here too")
    args = ap.parse_args()
    prof = load_profile(args.profile)
    rdir = run_dir(prof.run)
    benches = {n: {ex["id"]: ex for ex in rows} for n, rows in load_benchmarks(prof, rdir).items()}
    report: dict = {"run": rel(rdir), "evaluations": {}, "collected": {}}
    graded, seconds = 0, 0.0

    for path in sorted(rdir.glob(pattern("evaluate", "responses"))):
        changes = []
        for r in read_jsonl(path):
            t0 = time.perf_counter()
            g = grade(r["response"], benches[path.stem][r["id"]], r["stop_reason"])
            seconds += time.perf_counter() - t0
            graded += 1
            if g.correct != r["correct"]:
                changes.append(
                    {
                        "id": r["id"],
                        "was": r["correct"],
                        "now": g.correct,
                        "answer": g.answer,
                        "gold": r["gold"],
                        "reason": g.reason,
                    }
                )
        report["evaluations"][f"{path.parent.name}/{path.stem}"] = changes

    problems = {p["id"]: p for p in read_jsonl(locate(rdir, "collect", "problems"))}
    relabels: Counter = Counter()
    examples = []
    responses = read_jsonl(locate(rdir, "collect", "responses"))
    for r in responses:
        p = problems[r["problem_id"]]
        t0 = time.perf_counter()
        g = grade(r["response"], p, r["stop_reason"])
        seconds += time.perf_counter() - t0
        graded += 1
        new = label(p, g.correct)
        if new != r["label"]:
            relabels[(r["family"], r["label"], new, g.reason)] += 1
            if len(examples) < 10:
                examples.append(
                    {
                        "id": r["id"],
                        "was": r["label"],
                        "now": new,
                        "answer": g.answer,
                        "gold": p["answer"],
                        "reason": g.reason,
                    }
                )
    report["collected"] = {
        "responses": len(responses),
        "relabelled": [
            {"family": f, "was": a, "now": b, "reason": why, "count": n}
            for (f, a, b, why), n in sorted(relabels.items())
        ],
        "examples": examples,
    }
    report["speed"] = {
        "responses": graded,
        "seconds": round(seconds, 3),
        "per_second": round(graded / max(seconds, 1e-9), 1),
    }

    for name, changes in report["evaluations"].items():
        for c in changes:
            print(
                f"{name} {c['id']}: {c['was']} -> {c['now']} ({c['reason']}; "
                f"answer {c['answer']!r}, gold {c['gold']!r})"
            )
    for row in report["collected"]["relabelled"]:
        print(
            f"collect {row['family']}: {row['was']} -> {row['now']} ({row['reason']}) "
            f"x{row['count']}"
        )
    changed = sum(len(c) for c in report["evaluations"].values())
    print(
        f"{changed} evaluation verdicts and {sum(relabels.values())} of {len(responses)} "
        f"teacher labels change; graded {graded} responses in {seconds:.2f}s "
        f"({report['speed']['per_second']} per second)"
    )
    if args.out:
        Path(args.out).write_text(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
