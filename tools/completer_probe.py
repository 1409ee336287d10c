"""Size the QwQ completer: agreement with the thought's answer against training and generation cost.

Usage: python tools/completer_probe.py PROFILE OUT_JSON [--sizes 24x2 12x2 24x1 8x2]

Takes a finished collect stage of the profile's run (training data only), applies unify's rules,
then for each size EXAMPLESxEPOCHS trains a completer on that many R1-style demonstrations and
completes every QwQ-style thought. Reports, per size, the share of completions that agree with
the thought's answer (what unify keeps), and the seconds spent training and generating.
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

from helpers.grading.formatting import load_prompt
from helpers.method.unify import clean, complete_thoughts, to_demo
from helpers.pipeline.artifacts import read_jsonl
from helpers.pipeline.config import load_profile, with_overrides
from helpers.pipeline.paths import run_dir
from helpers.pipeline.stages import locate
from helpers.world.tasks import load_benchmarks


def main() -> None:
    """Train one completer per size and report agreement and cost."""
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("profile")
    ap.add_argument("out")
    ap.add_argument("--sizes", nargs="+", default=["24x2", "12x2", "24x1", "8x2"])
    args = ap.parse_args()
    profile = load_profile(args.profile)
    rdir = run_dir(profile.run)
    prompt = load_prompt(profile.prompt_file)
    responses = read_jsonl(locate(rdir, "collect", "responses"))
    kept, _ = clean(responses, load_benchmarks(profile, rdir), profile.unify)
    r1 = [to_demo(it, it["solution"]) for it in kept if it["solution"]]
    todo = [it for it in kept if not it["solution"]]
    report: dict = {
        "profile": args.profile,
        "r1_demos": len(r1),
        "to_complete": len(todo),
        "sizes": {},
    }
    for size in args.sizes:
        n, epochs = size.split("x")
        prof = with_overrides(
            profile, unify={"completer_examples": int(n), "completer_epochs": float(epochs)}
        )
        t0 = time.time()
        with tempfile.TemporaryDirectory() as tmp:
            demos, rejected, summary = complete_thoughts(
                prof, todo, r1, Path(tmp) / "c", prompt, prof.backbone
            )
        report["sizes"][size] = {
            "agree": len(demos),
            "disagree": len(rejected),
            "agreement": round(len(demos) / max(1, len(todo)), 3),
            "seconds": round(time.time() - t0, 1),
            "tokens": summary.get("tokens", {}),
        }
        print(size, json.dumps(report["sizes"][size]), flush=True)
        Path(args.out).write_text(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
