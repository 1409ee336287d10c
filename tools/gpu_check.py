"""Check the GPU paths on a CUDA machine with the backbone's architecture and random weights.

Usage: python tools/gpu_check.py CONFIG_DIR OUT_DIR
CONFIG_DIR holds the backbone's config.json and tokenizer files (no weights needed). Checks the
hf backend's decode loop against transformers' generate on CUDA, sampled generation, and bf16
LoRA and full SFT through helpers.train.sft; writes gpu_check.json to OUT_DIR.
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path

import torch
from transformers import AutoConfig, AutoModelForCausalLM, AutoTokenizer

from helpers.grading.formatting import format_response
from helpers.infer.decoding import decode_continuous
from helpers.infer.hf_backend import HFBackend
from helpers.infer.interface import Prompt, SamplingCfg
from helpers.train.sft import SFTSpec, train_sft


def main() -> None:
    """Run the checks and write the report."""
    cfg_dir, out_dir = Path(sys.argv[1]), Path(sys.argv[2])
    assert torch.cuda.is_available(), "no CUDA device"
    report: dict = {"device": torch.cuda.get_device_name(0)}
    tok = AutoTokenizer.from_pretrained(cfg_dir)
    torch.manual_seed(0)
    model = AutoModelForCausalLM.from_config(AutoConfig.from_pretrained(cfg_dir))
    rand = Path("/tmp/rand_backbone")
    model.save_pretrained(rand)
    tok.save_pretrained(rand)
    prompts = [
        tok(f"Question {i}: " + "what is the sum? " * (i % 5), add_special_tokens=False).input_ids
        for i in range(12)
    ]
    for dtype in (torch.float32, torch.bfloat16):
        m = model.to("cuda", dtype).eval()
        got = decode_continuous(
            m, prompts, pad_id=tok.pad_token_id, batch_size=5, max_new_tokens=24, eos=None
        )
        ref = []
        for p in prompts:
            ids = torch.tensor([p], device="cuda")
            o = m.generate(
                ids,
                attention_mask=torch.ones_like(ids),
                max_new_tokens=24,
                do_sample=False,
                pad_token_id=tok.pad_token_id,
                eos_token_id=None,
            )
            ref.append(o[0, len(p) :].tolist())
        same = sum(a == b for a, b in zip(got, ref, strict=True))
        report[f"decode_matches_generate_{dtype}"] = f"{same}/{len(prompts)}"
        be = HFBackend(m, tok, batch_size=256, progress=False)
        ps = [Prompt([{"role": "user", "content": f"Count to {i}."}]) for i in range(256)]
        t0 = time.time()
        outs = be.generate(ps, SamplingCfg(n=2, temperature=0.7, max_new_tokens=128, stop=()))
        dt = time.time() - t0
        toks = sum(c.tokens for o in outs for c in o)
        report[f"hf_backend_sampled_{dtype}"] = {
            "sequences": 512,
            "tokens": toks,
            "seconds": round(dt, 1),
            "tokens_per_s": round(toks / dt),
        }
    demos = [
        {
            "question": f"What is {i} + {i}?",
            "combined_text": format_response(f"{i} + {i} = {2 * i}. " * 20, f"\\boxed{{{2 * i}}}"),
        }
        for i in range(64)
    ]
    for method in ("lora", "full"):
        spec = SFTSpec(
            model=str(rand),
            data=demos,
            out_dir=f"/tmp/sft_{method}",
            prompt="Think.",
            method=method,
            learning_rate=1e-4,
            epochs=1,
            per_device_batch_size=8,
            max_length=512,
        )
        t0 = time.time()
        summary = train_sft(spec)
        summary.pop("data_ids", None)
        summary["wall_s"] = round(time.time() - t0, 1)
        summary["saved"] = sorted(p.name for p in Path(spec.out_dir).iterdir())
        report[f"sft_{method}"] = summary
    (out_dir / "gpu_check.json").write_text(json.dumps(report, indent=2))
    print(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
