"""Generation throughput of the hf backend on the backbone: tokens/s by batch size and dtype.

Usage: python -m helpers.bench [--batch-sizes 16 64] [--dtypes fp32 bf16] [--new-tokens 64]
"""

from __future__ import annotations

import argparse
import time

from .artifacts import write_json
from .formatting import render_prompt
from .paths import outputs_root, rel


def measure(batch: int, dtype: str, new_tokens: int) -> float:
    """Tokens per second of plain batched greedy generation, after a warm-up call."""
    import torch

    from .models import load_model

    model, tok = load_model("smollm2-135m-instruct", dtype=dtype)
    texts = [render_prompt(tok, f"Count from {i} to {i + 100}.", "") for i in range(batch)]
    enc = tok(texts, return_tensors="pt", padding=True, add_special_tokens=False)
    kw = dict(
        do_sample=False, pad_token_id=tok.pad_token_id, temperature=None, top_p=None, top_k=None
    )
    with torch.inference_mode():
        model.generate(**enc, max_new_tokens=4, **kw)
        t0 = time.time()
        model.generate(**enc, max_new_tokens=new_tokens, min_new_tokens=new_tokens, **kw)
    return batch * new_tokens / (time.time() - t0)


def main() -> None:
    """Print and save the throughput table."""
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--batch-sizes", type=int, nargs="+", default=[16, 64])
    ap.add_argument("--dtypes", nargs="+", default=["fp32", "bf16"])
    ap.add_argument("--new-tokens", type=int, default=64)
    args = ap.parse_args()
    rows = []
    for dtype in args.dtypes:
        for b in args.batch_sizes:
            rows.append(
                {
                    "dtype": dtype,
                    "batch": b,
                    "tokens_per_s": round(measure(b, dtype, args.new_tokens), 1),
                }
            )
            print(f"{dtype:5s} batch {b:4d}: {rows[-1]['tokens_per_s']:8.1f} tokens/s", flush=True)
    out = outputs_root() / "bench" / "generation.json"
    write_json(out, rows)
    print(f"wrote {rel(out)}")


if __name__ == "__main__":
    main()
