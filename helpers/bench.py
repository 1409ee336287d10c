"""Generation throughput of the hf backend on the backbone: tokens/s by batch size and dtype.

Usage: python -m helpers.bench [--batch-sizes 16 64] [--dtypes fp32 bf16] [--new-tokens 64]
       [--model DIR --random-init]   (the backbone's architecture with random weights)
"""

from __future__ import annotations

import argparse
import time
from typing import Any

from .artifacts import write_json
from .formatting import render_prompt
from .paths import outputs_root, rel


def build_model(name: str, dtype: str, random_init: bool) -> tuple[Any, Any]:
    """Load a model, or build its architecture with random weights (same cost per token)."""
    import torch
    from transformers import AutoConfig, AutoModelForCausalLM

    from .models import load_model, load_tokenizer, pick_dtype, resolve_model_path

    if not random_init:
        return load_model(name, dtype=dtype)
    config = AutoConfig.from_pretrained(resolve_model_path(name))
    model = AutoModelForCausalLM.from_config(config, dtype=pick_dtype(dtype))
    device = "cuda" if torch.cuda.is_available() else "cpu"
    return model.to(device).eval(), load_tokenizer(name)


def measure(model: Any, tok: Any, batch: int, new_tokens: int) -> float:
    """Tokens per second of the hf backend's decode loop, every row running new_tokens steps."""
    from .generation import decode_continuous

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


def main() -> None:
    """Print and save the throughput table."""
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", default="smollm2-135m-instruct")
    ap.add_argument("--random-init", action="store_true")
    ap.add_argument("--batch-sizes", type=int, nargs="+", default=[16, 64])
    ap.add_argument("--dtypes", nargs="+", default=["fp32", "bf16"])
    ap.add_argument("--new-tokens", type=int, default=64)
    args = ap.parse_args()
    rows = []
    for dtype in args.dtypes:
        model, tok = build_model(args.model, dtype, args.random_init)
        for b in args.batch_sizes:
            tps = measure(model, tok, b, args.new_tokens)
            rows.append(
                {
                    "device": str(model.device),
                    "dtype": dtype,
                    "batch": b,
                    "tokens_per_s": round(tps, 1),
                }
            )
            print(f"{model.device} {dtype:5s} batch {b:4d}: {tps:8.1f} tokens/s", flush=True)
    out = outputs_root() / "bench" / "generation.json"
    write_json(out, rows)
    print(f"wrote {rel(out)}")


if __name__ == "__main__":
    main()
