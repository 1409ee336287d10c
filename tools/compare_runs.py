"""Paired comparison of two runs' evaluations, variant by variant, on the benchmarks they share.

Usage: python tools/compare_runs.py OLD_EVAL_DIR NEW_EVAL_DIR [--benchmarks normal other]
       [--regrade PROFILE]   (grade OLD's stored responses again with today's grader first)

Each folder holds `<variant>.summary.json` (a published reference, `outputs/reference/eval/`)
or `<variant>/summary.json` (a run, `outputs/<run>/eval/`). The per-problem verdicts are
compared in benchmark order, so compare only benchmarks built from the same problems (a change
to a benchmark's families makes its pairs meaningless: leave it out with --benchmarks).
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from helpers.analysis.stats import mcnemar, paired_bootstrap
from helpers.pipeline.stages import file_name


def summaries(folder: Path) -> dict[str, dict]:
    """{variant: summary} from a reference or a run's eval folder."""
    out = {}
    name = file_name("evaluate", "summary")
    for p in sorted(folder.glob(f"*.{name}")):  # as report.PUBLISHED names them
        out[p.name.removesuffix(f".{name}")] = json.loads(p.read_text())
    for p in sorted(folder.glob(f"*/{name}")):
        out[p.parent.name] = json.loads(p.read_text())
    return out


def from_responses(folder: Path, profile: str | None) -> dict[str, dict]:
    """{variant: summary with per-problem verdicts and format} from a run's stored responses;
    with a profile, each response is graded again with today's grader."""
    problems = {}
    if profile:
        from helpers.pipeline.config import load_profile
        from helpers.world.tasks import build_benchmark

        prof = load_profile(profile)
        for name, cfg in prof.benchmarks.items():
            problems.update({p["id"]: p for p in build_benchmark(name, cfg, prof.seed)})
    out: dict[str, dict] = {}
    for path in sorted(folder.glob("*/*.jsonl")):
        rows = [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
        if not rows or "well_formed" not in rows[0]:
            continue
        if problems:
            from helpers.grading.grade import grade

            correct = [
                int(grade(r["response"], problems[r["id"]], r.get("stop_reason", "end")).correct)
                for r in rows
            ]
        else:
            correct = [int(r["correct"]) for r in rows]
        formed = [int(r["well_formed"]) for r in rows]
        out.setdefault(path.parent.name, {"benchmarks": {}})["benchmarks"][path.stem] = {
            "correct": correct,
            "formed": formed,
            "accuracy": 100.0 * sum(correct) / len(correct),
            "format_adherence": 100.0 * sum(formed) / len(formed),
        }
    return out


def load(folder: Path, profile: str | None = None) -> dict[str, dict]:
    """A folder's evaluations: its stored responses when it has them, else its summaries."""
    return from_responses(folder, profile) or summaries(folder)


def main() -> None:
    """Print one row per variant and benchmark: accuracy and format before and after."""
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("old", type=Path)
    ap.add_argument("new", type=Path)
    ap.add_argument("--benchmarks", nargs="+", default=None)
    ap.add_argument("--regrade", metavar="PROFILE", help="re-grade OLD's stored responses")
    args = ap.parse_args()
    old, new = load(args.old, args.regrade), load(args.new)
    print(
        "variant      bench   acc old -> new   diff [95% paired]   only old/new  McNemar p"
        "   format old -> new (only old/new, p)"
    )
    for variant in sorted(set(old) & set(new)):
        for bench, o in old[variant]["benchmarks"].items():
            n = new[variant]["benchmarks"].get(bench)
            if n is None or (args.benchmarks and bench not in args.benchmarks):
                continue
            d, lo, hi = paired_bootstrap(n["correct"], o["correct"])
            only_new, only_old, p = mcnemar(n["correct"], o["correct"])
            fmt = f"{o['format_adherence']:5.1f} -> {n['format_adherence']:5.1f}"
            if "formed" in o and "formed" in n:
                f_new, f_old, fp = mcnemar(n["formed"], o["formed"])
                fmt += f" ({f_old}/{f_new}, {fp:.3g})"
            print(
                f"{variant:12s} {bench:7s} {o['accuracy']:5.1f} -> {n['accuracy']:5.1f}"
                f"   {d:+5.1f} [{lo:+5.1f}, {hi:+5.1f}]   {only_old:3d}/{only_new:<3d}"
                f"      {p:5.2f}   {fmt}"
            )


if __name__ == "__main__":
    main()
