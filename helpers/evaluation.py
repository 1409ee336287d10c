"""Greedy evaluation of one model on the profile's benchmarks: per-example records and summary."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

from .artifacts import write_json, write_jsonl
from .formatting import chat_messages, parse_response
from .generation import Prompt, SamplingCfg
from .grading import grade
from .paths import rel


def evaluate_benchmarks(
    backend: Any,
    benchmarks: dict[str, list[dict[str, Any]]],
    prompt: str,
    max_new_tokens: int,
    seed: int = 42,
) -> dict[str, list[dict[str, Any]]]:
    """Generate for every benchmark's examples in one pass, then grade; records per benchmark."""
    # One pass rather than one per benchmark: each pass ends with a few long responses decoding
    # nearly alone, and on CPU such a step costs almost as much as a full batch.
    items = [(name, ex) for name, exs in benchmarks.items() for ex in exs]
    prompts = [Prompt(chat_messages(ex["question"], prompt)) for _, ex in items]
    outs = backend.generate(
        prompts, SamplingCfg(n=1, temperature=0.0, max_new_tokens=max_new_tokens, seed=seed)
    )
    records: dict[str, list[dict[str, Any]]] = {name: [] for name in benchmarks}
    for (name, ex), (comp,) in zip(items, outs, strict=True):
        g = grade(comp.text, ex, comp.stop_reason)
        parsed = parse_response(comp.text)
        records[name].append(
            {
                "id": ex["id"],
                "benchmark": ex.get("benchmark"),
                "family": ex.get("family"),
                "question": ex["question"],
                "gold": ex["answer"],
                "response": comp.text,
                "tokens": comp.tokens,
                "stop_reason": comp.stop_reason,
                "thought_tokens_approx": len((parsed.thought or "").split()),
                **g.as_dict(),
            }
        )
    return records


def summarize(records: list[dict[str, Any]]) -> dict[str, Any]:
    """Accuracy, mean response tokens, truncation rate and format adherence of one benchmark."""
    n = max(1, len(records))
    return {
        "n": len(records),
        "accuracy": 100.0 * sum(r["correct"] for r in records) / n,
        "mean_tokens": sum(r["tokens"] for r in records) / n,
        "truncation_rate": 100.0 * sum(r["truncated"] for r in records) / n,
        "format_adherence": 100.0 * sum(r["well_formed"] for r in records) / n,
        "correct": [int(r["correct"]) for r in records],
    }


def evaluate_model(
    backend: Any,
    benchmarks: dict[str, list[dict[str, Any]]],
    prompt: str,
    max_new_tokens: int,
    out_dir: Path,
    variant: str,
    model_name: str,
) -> dict[str, Any]:
    """Evaluate on every benchmark; write <bench>.jsonl and summary.json; return the summary."""
    out_dir = Path(out_dir)
    # A checkpoint is named relative to the repo, so summaries carry no machine paths.
    shown = rel(model_name) if Path(model_name).exists() else model_name
    # No timings in the summary: an evaluation that gives the same answers writes the same
    # bytes, so nothing downstream reruns for it (the manifest keeps the time).
    summary: dict[str, Any] = {"variant": variant, "model": shown, "benchmarks": {}}
    for name, recs in evaluate_benchmarks(backend, benchmarks, prompt, max_new_tokens).items():
        write_jsonl(out_dir / f"{name}.jsonl", recs)
        summary["benchmarks"][name] = summarize(recs)
    if getattr(backend, "tokens", None):
        summary["tokens"] = dict(backend.tokens)
    write_json(out_dir / "summary.json", summary)
    return summary


def summary_table(summary: dict[str, Any]) -> Any:
    """Return a pandas table of a summary (one row per benchmark)."""
    import pandas as pd

    rows = [
        {"benchmark": b, **{k: v for k, v in s.items() if k != "correct"}}
        for b, s in summary["benchmarks"].items()
    ]
    return pd.DataFrame(rows).set_index("benchmark").round(1)


def examples_table(out_dir: Path, per_benchmark: int = 2, width: int = 160) -> Any:
    """Show a few graded responses per benchmark (response tail, answer, gold, verdict)."""
    import pandas as pd

    from .artifacts import read_jsonl

    rows = []
    for path in sorted(Path(out_dir).glob("*.jsonl")):
        for r in read_jsonl(path)[:per_benchmark]:
            rows.append(
                {
                    "benchmark": path.stem,
                    "id": r["id"],
                    "response (end)": r["response"][-width:],
                    "answer": r["answer"],
                    "from": r["answer_from"],
                    "gold": r["gold"],
                    "correct": r["correct"],
                }
            )
    return pd.DataFrame(rows)


def regrade(out_dir: Path, benchmarks: dict[str, list[dict[str, Any]]]) -> dict[str, Any]:
    """Grade a finished evaluation's stored responses again (after a grader fix); no generation.

    Rewrites <bench>.jsonl and summary.json in place and records how many verdicts changed.
    """
    from .artifacts import read_json, read_jsonl

    out_dir = Path(out_dir)
    summary = read_json(out_dir / "summary.json")
    changed = {}
    for name, examples in benchmarks.items():
        by_id = {ex["id"]: ex for ex in examples}
        recs = read_jsonl(out_dir / f"{name}.jsonl")
        n = 0
        for r in recs:
            g = grade(r["response"], by_id[r["id"]], r["stop_reason"]).as_dict()
            n += g["correct"] != r["correct"]
            r.update(g)
        write_jsonl(out_dir / f"{name}.jsonl", recs)
        summary["benchmarks"][name] = summarize(recs)
        changed[name] = n
    summary["regraded"] = {"changed_verdicts": changed, "at": time.strftime("%Y-%m-%d %H:%M")}
    write_json(out_dir / "summary.json", summary)
    return summary


if __name__ == "__main__":  # python -m helpers.evaluation PROFILE: regrade every evaluation
    import sys

    from .config import load_profile
    from .paths import rel, run_dir
    from .tasks import load_benchmarks

    prof = load_profile(sys.argv[1])
    rdir = run_dir(prof.run)
    benches = load_benchmarks(prof, rdir)
    for d in sorted((rdir / "eval").glob("*/summary.json")):
        s = regrade(d.parent, benches)
        print(f"{rel(d.parent)}: changed verdicts {s['regraded']['changed_verdicts']}")
