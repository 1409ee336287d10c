"""Throughput side by side, in one run: generation (the decode loop and vLLM, greedy and sampled
as exploration samples) and training (one row per step and packed rows), by dtype.

Every figure of a kind is measured in the same process on the same prompts, so ratios compare
like with like on one machine in one state. Exploration's sampling (temperature, top-p and a seed
per sample) is compared with greedy decoding at the same batch and the same number of tokens per
row (no end of sequence), so tails and early stops do not enter the rates. With
`--agreement MODEL_DIR`, the model's greedy answers on dev problems are compared between fp32 and
bf16 (the share of identical answers).

Usage: python tools/bench.py [--batch 256] [--new-tokens 64] [--dtypes fp32 bf16]
       [--train-steps 4] [--skip-vllm] [--agreement MODEL_DIR] [--out FILE]
Writes outputs/reference/bench.json (the command, the CPU, the kernels in use, every figure and
ratio). Run it alone: two torch processes on two cores do not share fairly.
"""

from __future__ import annotations

import argparse
import sys
import time
from typing import Any

from helpers.grading.formatting import render_prompt
from helpers.pipeline.artifacts import write_json
from helpers.pipeline.machine import bf16_native, describe, resolve_dtype
from helpers.pipeline.paths import rel

EXPLORE = {"temperature": 0.8, "top_p": 0.95}  # the tiny profile's exploration sampling
TORCH_DTYPES = {"fp32": "float32", "bf16": "bfloat16"}


def prompts(tok: Any, batch: int) -> list[list[int]]:
    """`batch` distinct chat prompts as token ids."""
    texts = [render_prompt(tok, f"Count from {i} to {i + 100}.", "") for i in range(batch)]
    return [tok(t, add_special_tokens=False).input_ids for t in texts]


def hf_rates(dtype: str, batch: int, new_tokens: int) -> dict[str, float]:
    """The decode loop's tokens/s, greedy and sampled as exploration samples."""
    from helpers.infer.decoding import decode_continuous
    from helpers.infer.models import load_model

    model, tok = load_model("smollm2-135m-instruct", dtype=dtype)
    ids = prompts(tok, batch)

    def run(n: int, **sampling: Any) -> float:
        t0 = time.time()
        decode_continuous(
            model, ids, pad_id=tok.pad_token_id, batch_size=batch, max_new_tokens=n, eos=None,
            **sampling,
        )  # fmt: skip
        return batch * n / (time.time() - t0)

    run(4)  # warm-up
    return {"greedy": run(new_tokens), "sampled": run(new_tokens, seed=7, **EXPLORE)}


def vllm_rates(dtype: str, batch: int, new_tokens: int) -> dict[str, float]:
    """vLLM's tokens/s, greedy and sampled as exploration samples (a seed per sample), with the
    project's top-p and with vLLM's own (a sort of the whole vocabulary at every step)."""
    from helpers.infer.vllm_backend import VLLMBackend

    be = VLLMBackend(
        _model_path(), dtype=TORCH_DTYPES[dtype], max_model_len=1024, batch_size=batch,
        progress=False,
    )  # fmt: skip
    from vllm import SamplingParams
    from vllm.v1.sample.ops import topk_topp_sampler as sampler

    ids = [{"prompt_token_ids": p} for p in prompts(be.tok, batch)]

    def run(n: int, sampled: bool = False) -> float:
        params = [
            SamplingParams(
                max_tokens=n, ignore_eos=True, **({**EXPLORE, "seed": i} if sampled else {})
            )
            for i in range(batch)
        ]
        t0 = time.time()
        be.llm.generate(ids, params, use_tqdm=False)
        return batch * n / (time.time() - t0)

    run(8)  # warm-up
    out = {"greedy": run(new_tokens), "sampled": run(new_tokens, sampled=True)}
    project = sampler.apply_top_k_top_p
    sampler.apply_top_k_top_p = project.original
    try:
        out["sampled, vLLM's own top-p"] = run(new_tokens, sampled=True)
    finally:
        sampler.apply_top_k_top_p = project
    be.close()
    return out


def _model_path() -> str:
    from helpers.infer.models import resolve_model_path

    return resolve_model_path("smollm2-135m-instruct")


def bench_demos(n: int) -> list[dict[str, Any]]:
    """Demonstrations in the project's format from the programmatic teachers (no run needed)."""
    import random

    from helpers.grading.formatting import format_response
    from helpers.world.seeds import seed_base
    from helpers.world.tasks import POOL_FAMILIES, build_embedded
    from helpers.world.teachers import work_problem

    problems = build_embedded(
        POOL_FAMILIES["normal_math"] + POOL_FAMILIES["hard_math"],
        n,
        seed_base("bench_demos"),
        "bench",
        "bench",
    )
    out = []
    for i, p in enumerate(problems):
        work = work_problem(p, random.Random(i), 0.0)
        solution = " ".join(work.summary) + f" The final answer is \\boxed{{{work.answer}}}."
        out.append({**p, "combined_text": format_response("\n\n".join(work.steps), solution)})
    return out


def training_rate(dtype: str, rows: int, steps: int) -> float:
    """Trained tokens/s of full fine-tuning steps of the backbone on teacher demonstrations:
    one row per step (rows=1) or `rows` rows packed end to end; the first step is not timed."""
    import tempfile
    from pathlib import Path

    from helpers.grading.formatting import load_prompt
    from helpers.pipeline.config import load_profile
    from helpers.train.sft import SFTSpec, build_trainer
    from helpers.train.trainer import load_for_training

    prof = load_profile("params/tiny.yaml")
    layout = {"per_device_batch_size": rows, "padding_free": rows > 1, "gradient_accumulation": 1}
    train = prof.sft.model_copy(
        update={"max_steps": steps + 1, "warmup_ratio": 0.0, "dtype": dtype, **layout}
    )
    model, tok, cuda, bf16 = load_for_training("smollm2-135m-instruct", train)
    with tempfile.TemporaryDirectory() as tmp:
        spec = SFTSpec(
            "smollm2-135m-instruct", bench_demos(rows * (steps + 1)), str(Path(tmp) / "m"),
            load_prompt(prof.prompt_file), train,
        )  # fmt: skip
        trainer = build_trainer(spec, model, tok, Path(tmp) / "w", cuda, bf16)
        times: list[float] = []
        trainer.add_callback(_StepClock(times))
        trainer.train()
    per_step = trainer.token_counts["train"] / (steps + 1)
    return per_step * (len(times) - 1) / (times[-1] - times[0])


class _StepClock:
    """A trainer callback that notes when each optimizer step ends."""

    def __init__(self, times: list[float]) -> None:
        self.times = times

    def __getattr__(self, name: str) -> Any:
        return lambda *a, **k: None

    def on_step_end(self, *args: Any, **kwargs: Any) -> None:
        self.times.append(time.time())


def agreement(model_dir: str, n: int, profile: str = "params/tiny.yaml") -> dict[str, Any]:
    """Greedy answers of a model on the tiny profile's NORMAL and HARD dev problems in fp32 and
    in bf16 (vLLM):
    how many are the same answer, and each dtype's accuracy."""
    from helpers.grading.answers import extract_answer  # (answer, how it was read)
    from helpers.grading.formatting import chat_messages, load_prompt
    from helpers.grading.grade import grade
    from helpers.infer.generation import free
    from helpers.infer.interface import Prompt, SamplingCfg
    from helpers.infer.vllm_backend import VLLMBackend
    from helpers.pipeline.config import load_profile
    from helpers.pipeline.paths import run_dir
    from helpers.world.tasks import dev_problems

    prof = load_profile(profile)
    probs = [
        p for g in ("normal_math", "hard_math") for p in dev_problems(prof, run_dir(prof.run), g, n)
    ]
    instruction = load_prompt(prof.prompt_file)
    asks = [Prompt(chat_messages(p["question"], instruction)) for p in probs]
    answers, correct = {}, {}
    for dtype in ("fp32", "bf16"):
        be = VLLMBackend(model_dir, dtype=TORCH_DTYPES[dtype], max_model_len=1024, progress=False)
        outs = be.generate(asks, SamplingCfg(max_new_tokens=prof.generation.max_new_tokens))
        free(be)
        answers[dtype] = [extract_answer(o[0].text) for o in outs]
        correct[dtype] = [
            grade(o[0].text, p, o[0].stop_reason).correct for o, p in zip(outs, probs, strict=True)
        ]
    same = sum(a == b for a, b in zip(answers["fp32"], answers["bf16"], strict=True))
    return {
        "model": rel(model_dir),
        "problems": len(probs),
        "same_answer": same,
        "same_answer_share": round(same / len(probs), 3),
        "accuracy": {d: round(100 * sum(c) / len(c), 1) for d, c in correct.items()},
    }


def main() -> None:
    """Measure, print and save every figure with its ratios."""
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--batch", type=int, default=256)
    ap.add_argument("--new-tokens", type=int, default=64)
    ap.add_argument("--dtypes", nargs="+", default=["fp32", "bf16"], choices=list(TORCH_DTYPES))
    ap.add_argument("--train-steps", type=int, default=4, help="0 skips training")
    ap.add_argument("--train-rows", type=int, default=8, help="rows packed into a step")
    ap.add_argument("--skip-vllm", action="store_true")
    ap.add_argument("--agreement", metavar="MODEL_DIR", help="compare fp32 and bf16 answers")
    ap.add_argument("--agreement-problems", type=int, default=60, help="per group")
    ap.add_argument("--agreement-profile", default="params/tiny.yaml", help="its dev problems")
    ap.add_argument("--out", default="outputs/reference/bench.json")
    ap.add_argument(
        "--only-agreement", action="store_true", help="add it to --out, measure nothing else"
    )
    args = ap.parse_args()
    if args.only_agreement:
        from helpers.pipeline.artifacts import read_json

        report = read_json(args.out)
        report["bf16_agreement"] = {
            "command": " ".join(["python tools/bench.py", *sys.argv[1:]]),
            **agreement(args.agreement, args.agreement_problems, args.agreement_profile),
        }
        write_json(args.out, report)
        print(report["bf16_agreement"])
        return
    native, why = bf16_native()
    dtypes = [d for d in args.dtypes if d == "fp32" or (resolve_dtype(d) == d and native)]
    report: dict[str, Any] = {
        "command": " ".join(["python tools/bench.py", *sys.argv[1:]]),
        "machine": describe(),
        "batch": args.batch,
        "new_tokens": args.new_tokens,
        "bf16": "measured" if "bf16" in dtypes else f"not measured: {why}",
        "generation": {},
        "training": {},
    }

    def note(section: str, key: str, value: float) -> None:
        report[section][key] = round(value, 1)
        print(f"{section:10s} {key:45s} {value:8.1f} tokens/s", flush=True)
        write_json(args.out, report)

    for dtype in dtypes:
        for what, rate in hf_rates(dtype, args.batch, args.new_tokens).items():
            note("generation", f"decode loop {dtype} {what}", rate)
        if not args.skip_vllm:
            for what, rate in vllm_rates(dtype, args.batch, args.new_tokens).items():
                note("generation", f"vllm {dtype} {what}", rate)
        if args.train_steps:
            note("training", f"{dtype} one row per step", training_rate(dtype, 1, args.train_steps))
            note(
                "training",
                f"{dtype} {args.train_rows} rows packed",
                training_rate(dtype, args.train_rows, args.train_steps),
            )
    report["ratios"] = ratios(report, dtypes, args.train_rows)
    if args.agreement:
        report["bf16_agreement"] = agreement(
            args.agreement, args.agreement_problems, args.agreement_profile
        )
    write_json(args.out, report)
    for k, v in report["ratios"].items():
        print(f"ratio  {k:60s} {v:6.2f}")
    print(f"wrote {rel(args.out)}")


def ratios(report: dict[str, Any], dtypes: list[str], rows: int) -> dict[str, float]:
    """Sampled over greedy per engine, bf16 over fp32, packed over one row."""
    gen, train, out = report["generation"], report["training"], {}
    for d in dtypes:
        for engine in ("decode loop", "vllm"):
            if f"{engine} {d} greedy" in gen:
                g = gen[f"{engine} {d} greedy"]
                out[f"{engine} {d}: sampled / greedy"] = gen[f"{engine} {d} sampled"] / g
                out[f"{engine} {d}: sampled / decode loop greedy"] = (
                    gen[f"{engine} {d} sampled"] / gen[f"decode loop {d} greedy"]
                )
        if f"{d} one row per step" in train:
            out[f"training {d}: {rows} packed / one row"] = (
                train[f"{d} {rows} rows packed"] / train[f"{d} one row per step"]
            )
    if "bf16" in dtypes:
        for key in [k for k in gen if " bf16 " in k]:
            out[f"{key.replace(' bf16', '')}: bf16 / fp32"] = (
                gen[key] / gen[key.replace("bf16", "fp32")]
            )
        for key in [k for k in train if k.startswith("bf16")]:
            out[f"training {key[5:]}: bf16 / fp32"] = train[key] / train["fp32" + key[4:]]
    return {k: round(v, 2) for k, v in out.items()}


if __name__ == "__main__":
    main()
