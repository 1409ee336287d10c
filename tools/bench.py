"""Throughput on the backbone: decode tokens/s by batch size, and LoRA SFT tokens/s.

Each is also shown as a ratio to the previous default measured in the same run (decode batch
64; SFT at two padded rows per step with the LM head over every position), so a change is
judged against the same machine in the same state.

Usage: python tools/bench.py [--batch-sizes 64 128 256] [--dtypes fp32] [--new-tokens 64]
       [--train-steps 4] [--model DIR --random-init]   (random weights: same cost per token)
"""

from __future__ import annotations

import argparse
import time
from typing import Any

from helpers.grading.formatting import render_prompt
from helpers.pipeline.artifacts import write_json
from helpers.pipeline.paths import outputs_root, rel

PREVIOUS_DECODE_BATCH = (
    64  # the batch the project measured its engines at (issue "Every token counts")
)


def build_model(name: str, dtype: str, random_init: bool) -> tuple[Any, Any]:
    """Load a model, or build its architecture with random weights (same cost per token)."""
    import torch
    from transformers import AutoConfig, AutoModelForCausalLM

    from helpers.infer.models import load_model, load_tokenizer, pick_dtype, resolve_model_path

    if not random_init:
        return load_model(name, dtype=dtype)
    config = AutoConfig.from_pretrained(resolve_model_path(name))
    model = AutoModelForCausalLM.from_config(config, dtype=pick_dtype(dtype))
    device = "cuda" if torch.cuda.is_available() else "cpu"
    return model.to(device).eval(), load_tokenizer(name)


def measure(model: Any, tok: Any, batch: int, new_tokens: int) -> float:
    """Tokens per second of the hf backend's decode loop, every row running new_tokens steps."""
    from helpers.infer.decoding import decode_continuous

    texts = [render_prompt(tok, f"Count from {i} to {i + 100}.", "") for i in range(batch)]
    ids = [tok(t, add_special_tokens=False).input_ids for t in texts]

    def run(n: int) -> float:
        t0 = time.time()
        # No end-of-turn token: every row decodes exactly n tokens, so the count is exact.
        decode_continuous(
            model, ids, pad_id=tok.pad_token_id, batch_size=batch, max_new_tokens=n, eos=None
        )
        return time.time() - t0

    run(4)  # warm-up
    return batch * new_tokens / run(new_tokens)


def bench_demos(n: int) -> list[dict[str, Any]]:
    """Demonstrations in the project's format from the programmatic teachers (no run needed)."""
    import random

    from helpers.grading.formatting import format_response
    from helpers.world.tasks import POOL_FAMILIES, build_embedded
    from helpers.world.teachers import work_problem

    problems = build_embedded(
        POOL_FAMILIES["normal_math"] + POOL_FAMILIES["hard_math"], n, 5_000, "bench", "bench"
    )
    out = []
    for i, p in enumerate(problems):
        work = work_problem(p, random.Random(i), 0.0)
        solution = " ".join(work.summary) + f" The final answer is \\boxed{{{work.answer}}}."
        out.append({**p, "combined_text": format_response("\n\n".join(work.steps), solution)})
    return out


def measure_training(name: str, steps: int, previous: bool) -> tuple[float, dict[str, int]]:
    """Trained tokens per second of LoRA SFT steps (two rows each) at the tiny profile's settings.

    previous=True is the former default: two rows padded into one batch, TRL's own loss.
    """
    import tempfile
    from pathlib import Path

    import torch
    from transformers import AutoModelForCausalLM

    from helpers.grading.formatting import load_prompt
    from helpers.infer.models import load_tokenizer, resolve_model_path
    from helpers.pipeline.config import load_profile
    from helpers.train.sft import SFTSpec, build_trainer

    prof = load_profile("params/tiny.yaml")
    layout = {"per_device_batch_size": 2, "gradient_accumulation": 1} if previous else {}
    train = prof.sft.model_copy(update={"max_steps": steps + 1, "warmup_ratio": 0.0, **layout})
    tok = load_tokenizer(name)
    model = AutoModelForCausalLM.from_pretrained(resolve_model_path(name), dtype=torch.float32)
    with tempfile.TemporaryDirectory() as tmp:
        spec = SFTSpec(
            name, bench_demos(4 * steps), str(Path(tmp) / "m"), load_prompt(prof.prompt_file), train
        )
        trainer = build_trainer(spec, model, tok, Path(tmp) / "w")
        if previous:  # TRL's loss: the LM head over every position
            trainer.compute_loss = super(type(trainer), trainer).compute_loss
        times: list[float] = []
        trainer.add_callback(_StepClock(times))
        trainer.train()
    counts = dict(trainer.token_counts)
    per_step = counts["train"] / (steps + 1)
    # the first step pays for warm-up; the others are timed
    return per_step * (len(times) - 1) / (times[-1] - times[0]), counts


class _StepClock:
    """A trainer callback that notes when each optimizer step ends."""

    def __init__(self, times: list[float]) -> None:
        self.times = times

    def __getattr__(self, name: str) -> Any:
        return lambda *a, **k: None

    def on_step_end(self, *args: Any, **kwargs: Any) -> None:
        self.times.append(time.time())


def main() -> None:
    """Print and save the throughput tables."""
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", default="smollm2-135m-instruct")
    ap.add_argument("--random-init", action="store_true")
    ap.add_argument("--batch-sizes", type=int, nargs="+", default=[64, 128, 256])
    ap.add_argument("--dtypes", nargs="+", default=["fp32"])
    ap.add_argument("--new-tokens", type=int, default=64)
    ap.add_argument("--train-steps", type=int, default=4, help="0 skips the training bench")
    args = ap.parse_args()
    rows = []
    for dtype in args.dtypes:
        model, tok = build_model(args.model, dtype, args.random_init)
        base = measure(model, tok, PREVIOUS_DECODE_BATCH, args.new_tokens)
        for b in args.batch_sizes:
            tps = base if b == PREVIOUS_DECODE_BATCH else measure(model, tok, b, args.new_tokens)
            rows.append(
                {
                    "what": "decode",
                    "device": str(model.device),
                    "dtype": dtype,
                    "batch": b,
                    "tokens_per_s": round(tps, 1),
                    "vs_previous": round(tps / base, 2),
                }
            )
            print(
                f"decode {model.device} {dtype:5s} batch {b:4d}: {tps:8.1f} tokens/s"
                f"  x{tps / base:.2f} of batch {PREVIOUS_DECODE_BATCH}",
                flush=True,
            )
    if args.train_steps and not args.random_init:
        before, _ = measure_training(args.model, args.train_steps, previous=True)
        now, counts = measure_training(args.model, args.train_steps, previous=False)
        for what, tps in (("sft previous", before), ("sft current", now)):
            rows.append(
                {"what": what, "tokens_per_s": round(tps, 1), "vs_previous": round(tps / before, 2)}
            )
            print(f"{what:12s}: {tps:8.1f} trained tokens/s  x{tps / before:.2f}", flush=True)
        print(f"(current: {counts.get('train_padding', 0)} padding tokens of {counts['train']})")
    out = outputs_root() / "bench" / "throughput.json"
    write_json(out, rows)
    print(f"wrote {rel(out)}")


if __name__ == "__main__":
    main()
