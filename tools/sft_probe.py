"""Probe SFT settings on training data only: train on a mixture, test on fresh pool problems.

Usage: python tools/sft_probe.py PROFILE MIXTURE OUT_JSON [--settings FILE] [--dev 60]
       python tools/sft_probe.py PROFILE - OUT_JSON --score MODEL_DIR [--score MODEL_DIR ...]

The test set ("dev") is freshly drawn pool problems (the training pools' families, a seed of its
own) with any problem that overlaps a benchmark or a training pool dropped, graded with the
project's grader. The benchmarks are never generated for, so profile settings chosen from this
probe are tuned on training data. Reports, per setting, format adherence (also per family),
accuracy, mean tokens and truncation of greedy generations.
"""

from __future__ import annotations

import argparse
import json
import time
from dataclasses import replace
from pathlib import Path

from helpers.grading.formatting import load_prompt
from helpers.infer.generation import backend_from_profile
from helpers.method.evaluation import evaluate_benchmarks, summarize
from helpers.pipeline.artifacts import read_jsonl
from helpers.pipeline.config import load_profile
from helpers.pipeline.paths import run_dir
from helpers.train.sft import spec_from_profile, train_sft
from helpers.world.tasks import dev_problems

DEFAULT_SETTINGS = [
    {"name": "lora_1ep", "method": "lora", "learning_rate": 1e-3, "epochs": 1},
    {"name": "lora_2ep", "method": "lora", "learning_rate": 1e-3, "epochs": 2},
]


def score(profile, model_dir: str, items: list[dict], prompt: str) -> dict:
    """Greedy generations on the dev items: format (overall, per family), accuracy, length."""
    be = backend_from_profile(profile, model_dir, local=True, batch_size=len(items))
    t0 = time.time()
    recs = evaluate_benchmarks(be, {"dev": items}, prompt, profile.generation.max_new_tokens)["dev"]
    fams: dict[str, list[bool]] = {}
    for r in recs:
        fams.setdefault(r["family"], []).append(r["well_formed"])
    out = summarize(recs)
    out.pop("correct")
    bad = [r for r in recs if not r["well_formed"]]
    return {
        **out,
        "format_by_family": {f: f"{sum(v)}/{len(v)}" for f, v in sorted(fams.items())},
        "generate_s": round(time.time() - t0, 1),
        "malformed_example": bad[0]["response"][-300:] if bad else None,
    }


def main() -> None:
    """Train each setting (or take given checkpoints), score it on the dev set, write a report."""
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("profile")
    ap.add_argument("mixture", help="a mixture jsonl from 03_mix_data, or - with --score")
    ap.add_argument("out")
    ap.add_argument(
        "--settings", help="JSON list of sft-section overrides (and seed), each with a name"
    )
    ap.add_argument("--score", action="append", default=[], help="score this checkpoint only")
    ap.add_argument("--dev", type=int, default=60)
    ap.add_argument("--backbone", action="store_true", help="score the backbone too")
    args = ap.parse_args()
    if (args.mixture == "-") != bool(args.score):
        ap.error("give a mixture to train on, or - with one or more --score checkpoints")
    profile = load_profile(args.profile)
    prompt = load_prompt(profile.prompt_file)
    items = dev_problems(profile, run_dir(profile.run), "normal_math", args.dev)
    report: dict = {"profile": args.profile, "dev": len(items), "results": {}}

    def record(name: str, result: dict) -> None:
        report["results"][name] = result
        print(name, json.dumps(result), flush=True)
        Path(args.out).write_text(json.dumps(report, indent=2))

    if args.backbone:
        record("backbone", score(profile, profile.backbone, items, prompt))
    for ckpt in args.score:
        record(ckpt, score(profile, ckpt, items, prompt))
    if args.score:
        return
    mixture = read_jsonl(args.mixture)
    report["mixture"], report["train_examples"] = args.mixture, len(mixture)
    settings = json.loads(Path(args.settings).read_text()) if args.settings else DEFAULT_SETTINGS
    for s in settings:
        s = dict(s)
        name = s.pop("name")
        out_dir = f"/tmp/sft_probe/{name}"
        spec = spec_from_profile(profile, profile.backbone, mixture, Path(out_dir), prompt)
        seed = s.pop("seed", spec.seed)
        spec = replace(spec, seed=seed, train=spec.train.model_copy(update=s))
        t0 = time.time()
        summary = train_sft(spec)
        record(
            name,
            {
                **s,
                "train_loss": summary["train_loss"],
                "train_s": round(time.time() - t0, 1),
                **score(profile, out_dir, items, prompt),
            },
        )


if __name__ == "__main__":
    main()
