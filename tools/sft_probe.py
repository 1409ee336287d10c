"""Probe SFT settings on training data only: train on a mixture, test on held-out demonstrations.

Usage: python tools/sft_probe.py DEMOS MIXTURE OUT_JSON [--settings FILE] [--held-out 60]

The held-out set is demonstrations (from 02_unify_format) of problems the mixture does not
contain, graded by the boxed answer of their own solution; the benchmarks are never touched, so
profile settings chosen from this probe are tuned on training data. Reports, per setting, the
format adherence, answer agreement, mean tokens and truncation of greedy generations.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

from helpers.artifacts import read_jsonl
from helpers.formatting import DEFAULT_PROMPT, chat_messages, parse_response
from helpers.generation import HFBackend, Prompt, SamplingCfg
from helpers.grading import last_boxed
from helpers.models import load_model
from helpers.training import SFTSpec, train_sft

DEFAULT_SETTINGS = [
    {"name": "tiny", "method": "lora", "learning_rate": 5e-4, "epochs": 1},
    {"name": "lora_3ep", "method": "lora", "learning_rate": 5e-4, "epochs": 3},
    {"name": "full_3ep", "method": "full", "learning_rate": 5e-5, "epochs": 3},
]


def held_out(demos: list[dict], mixture: list[dict], n: int) -> list[dict]:
    """Math demonstrations of problems outside the mixture, with their boxed answer as gold."""
    seen = {d["problem_id"] for d in mixture}
    out, used = [], set()
    for d in demos:
        gold = last_boxed(parse_response(d["combined_text"]).solution or "")
        if d["problem_id"] in seen or d["problem_id"] in used or gold is None:
            continue
        used.add(d["problem_id"])
        out.append({**d, "gold": gold})
    return out[:n]


def score(model_dir: str, items: list[dict], max_new_tokens: int) -> dict:
    """Greedy generations on the held-out items: format, agreement, length, truncation."""
    model, tok = load_model(model_dir)
    be = HFBackend(model, tok, batch_size=len(items), progress=False)
    prompts = [Prompt(chat_messages(it["question"], DEFAULT_PROMPT)) for it in items]
    outs = [o[0] for o in be.generate(prompts, SamplingCfg(max_new_tokens=max_new_tokens))]
    n = len(items)
    by_group: dict[str, list[bool]] = {}
    for c, it in zip(outs, items, strict=True):
        by_group.setdefault(it["group"], []).append(parse_response(c.text).well_formed)
    return {
        "format_adherence": 100 * sum(parse_response(c.text).well_formed for c in outs) / n,
        "format_by_group": {g: f"{sum(v)}/{len(v)}" for g, v in sorted(by_group.items())},
        "answer_agrees": 100
        * sum(
            last_boxed(parse_response(c.text).solution or c.text) == it["gold"]
            for c, it in zip(outs, items, strict=True)
        )
        / n,
        "mean_tokens": sum(c.tokens for c in outs) / n,
        "truncated": 100 * sum(c.stop_reason == "length" for c in outs) / n,
        "example": outs[0].text[:400],
    }


def main() -> None:
    """Train each setting, score it and the backbone, write the report."""
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("demos")
    ap.add_argument("mixture")
    ap.add_argument("out")
    ap.add_argument("--settings")
    ap.add_argument("--held-out", type=int, default=60)
    ap.add_argument("--max-new-tokens", type=int, default=320)
    ap.add_argument("--model", default="smollm2-135m-instruct")
    args = ap.parse_args()
    mixture = read_jsonl(args.mixture)
    items = held_out(read_jsonl(args.demos), mixture, args.held_out)
    settings = json.loads(Path(args.settings).read_text()) if args.settings else DEFAULT_SETTINGS
    report = {"mixture": args.mixture, "train_examples": len(mixture), "held_out": len(items)}
    report["backbone"] = score(args.model, items, args.max_new_tokens)
    print("backbone", report["backbone"], flush=True)
    for s in settings:
        s = dict(s)
        name = s.pop("name")
        out_dir = f"/tmp/sft_probe/{name}"
        base = {"per_device_batch_size": 4, "max_length": 768, "lora_r": 32, "lora_alpha": 64}
        spec = SFTSpec(
            model=args.model,
            data=mixture,
            out_dir=out_dir,
            prompt=DEFAULT_PROMPT,
            **{**base, **s},
        )
        t0 = time.time()
        summary = train_sft(spec)
        report[name] = {
            **s,
            "train_loss": summary["train_loss"],
            "train_s": round(time.time() - t0, 1),
            **score(out_dir, items, args.max_new_tokens),
        }
        print(name, report[name], flush=True)
    Path(args.out).write_text(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
