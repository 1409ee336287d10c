"""Greedy evaluation of one model on the profile's benchmarks: per-example records and summary."""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from ..grading.formatting import chat_messages, parse_response
from ..grading.grade import grade
from ..infer.interface import Prompt, SamplingCfg
from ..pipeline.artifacts import append_jsonl, write_json, write_jsonl
from ..pipeline.paths import rel
from ..pipeline.stages import file_name, pattern


def graded_record(ex: dict[str, Any], comp: Any) -> dict[str, Any]:
    """One benchmark example's response, graded, as evaluation stores it."""
    g = grade(comp.text, ex, comp.stop_reason)
    parsed = parse_response(comp.text)
    return {
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


def evaluate_benchmarks(
    backend: Any,
    benchmarks: dict[str, list[dict[str, Any]]],
    prompt: str,
    max_new_tokens: int,
    seed: int = 42,
    done: dict[tuple[str, str], dict[str, Any]] | None = None,
    keep: Callable[[str, dict[str, Any]], None] | None = None,
) -> dict[str, list[dict[str, Any]]]:
    """Generate for every benchmark's examples in one pass, then grade; records per benchmark.

    `done` holds records of an earlier, interrupted pass, by (benchmark, id): those examples are
    not generated again. `keep(benchmark, record)` sees each new record the moment its response
    is finished.
    """
    done = dict(done or {})
    # One pass rather than one per benchmark: each pass ends with a few long responses decoding
    # nearly alone, and on CPU such a step costs almost as much as a full batch.
    items = [(name, ex) for name, exs in benchmarks.items() for ex in exs]
    todo = [(name, ex) for name, ex in items if (name, ex["id"]) not in done]

    def finished(j: int, comps: list[Any]) -> None:
        name, ex = todo[j]
        done[(name, ex["id"])] = rec = graded_record(ex, comps[0])
        if keep is not None:
            keep(name, rec)

    if todo:
        outs = backend.generate(
            [Prompt(chat_messages(ex["question"], prompt)) for _, ex in todo],
            SamplingCfg(n=1, temperature=0.0, max_new_tokens=max_new_tokens, seed=seed),
            on_result=finished,
        )
        for j, comps in enumerate(outs):  # a backend that reports nothing as it goes
            if (todo[j][0], todo[j][1]["id"]) not in done:
                finished(j, comps)
    return {name: [done[(name, ex["id"])] for ex in exs] for name, exs in benchmarks.items()}


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
    """Evaluate on every benchmark; write <bench>.jsonl and summary.json; return the summary.

    Each finished response is appended to `partial.jsonl` as it completes, so an interrupted
    evaluation resumes without generating those again (a torn last line is dropped; the
    runner's --force starts afresh).
    """
    out_dir = Path(out_dir)
    # A checkpoint is named relative to the repo, so summaries carry no machine paths.
    shown = rel(model_name) if Path(model_name).exists() else model_name
    done = resume_partial(out_dir, benchmarks, prompt, max_new_tokens, model_name)
    partial = out_dir / PARTIAL
    records = evaluate_benchmarks(
        backend,
        benchmarks,
        prompt,
        max_new_tokens,
        done=done,
        keep=lambda name, rec: append_jsonl(partial, [{"_in": name, **rec}]),
    )
    # No timings in the summary: an evaluation that gives the same answers writes the same
    # bytes, so nothing downstream reruns for it (the manifest keeps the time).
    summary: dict[str, Any] = {"variant": variant, "model": shown, "benchmarks": {}}
    for name, recs in records.items():
        write_jsonl(out_dir / file_name("evaluate", "responses", benchmark=name), recs)
        summary["benchmarks"][name] = summarize(recs)
    if getattr(backend, "tokens", None):
        summary["tokens"] = dict(backend.tokens)
    write_json(out_dir / file_name("evaluate", "summary"), summary)
    partial.unlink(missing_ok=True)
    partial.with_name(PARTIAL_META).unlink(missing_ok=True)
    return summary


PARTIAL, PARTIAL_META = "partial.jsonl", "partial.meta.json"


def resume_partial(
    out_dir: Path,
    benchmarks: dict[str, list[dict[str, Any]]],
    prompt: str,
    max_new_tokens: int,
    model_name: str,
    log: Callable[[str], None] = print,
) -> dict[tuple[str, str], dict[str, Any]]:
    """The records an interrupted evaluation of the same model and settings left, by key.

    Records of other settings (or any, when the runner forces the stage) are set aside.
    """
    from ..pipeline.artifacts import (
        DamagedFile,
        hash_path,
        read_json,
        resume_jsonl,
        set_aside,
        settings_hash,
    )
    from ..pipeline.config import forced

    partial, meta_path = Path(out_dir) / PARTIAL, Path(out_dir) / PARTIAL_META
    fp = settings_hash(
        {
            "model": rel(model_name) if Path(model_name).exists() else model_name,
            "weights": hash_path(model_name),
            "prompt": prompt,
            "max_new_tokens": max_new_tokens,
            "benchmarks": {n: [ex["id"] for ex in exs] for n, exs in benchmarks.items()},
        }
    )
    done: dict[tuple[str, str], dict[str, Any]] = {}
    if partial.exists():
        meta = read_json(meta_path) if meta_path.exists() else {}
        if forced() or meta.get("fingerprint") != fp:
            set_aside(partial, "replaced" if forced() else "stale")
        else:
            known = {(n, ex["id"]) for n, exs in benchmarks.items() for ex in exs}

            def check(r: dict[str, Any]) -> str | None:
                key = (r.get("_in"), r.get("id"))
                return None if key in known else f"{key} is not one of the benchmarks' examples"

            try:
                rows = resume_jsonl(partial, check, log)
            except DamagedFile as exc:
                raise DamagedFile(
                    f"{exc}: run this stage again with --force to evaluate afresh (the damaged "
                    "file is kept beside it)"
                ) from None
            done = {(r.pop("_in"), r["id"]): r for r in rows}
            if done:
                log(f"resuming after {len(done)} finished responses ({rel(partial)})")
    write_json(meta_path, {"fingerprint": fp})
    return done


def regrade(out_dir: Path, benchmarks: dict[str, list[dict[str, Any]]]) -> dict[str, Any]:
    """Grade a finished evaluation's stored responses again (after a grader fix); no generation.

    Rewrites <bench>.jsonl and summary.json in place and records how many verdicts changed.
    """
    from ..pipeline.artifacts import read_json, read_jsonl

    out_dir = Path(out_dir)
    summary = read_json(out_dir / file_name("evaluate", "summary"))
    changed = {}
    for name, examples in benchmarks.items():
        by_id = {ex["id"]: ex for ex in examples}
        recs = read_jsonl(out_dir / file_name("evaluate", "responses", benchmark=name))
        n = 0
        for r in recs:
            g = grade(r["response"], by_id[r["id"]], r["stop_reason"]).as_dict()
            n += g["correct"] != r["correct"]
            r.update(g)
        write_jsonl(out_dir / file_name("evaluate", "responses", benchmark=name), recs)
        summary["benchmarks"][name] = summarize(recs)
        changed[name] = n
    summary["regraded"] = {"changed_verdicts": changed, "at": time.strftime("%Y-%m-%d %H:%M")}
    write_json(out_dir / file_name("evaluate", "summary"), summary)
    return summary


if __name__ == "__main__":  # python -m helpers.method.evaluation PROFILE: regrade every evaluation
    import sys

    from ..pipeline.config import load_profile
    from ..pipeline.paths import rel, run_dir
    from ..world.tasks import load_benchmarks

    prof = load_profile(sys.argv[1])
    rdir = run_dir(prof.run)
    benches = load_benchmarks(prof, rdir)
    for d in sorted(rdir.glob(pattern("evaluate", "summary"))):
        s = regrade(d.parent, benches)
        print(f"{rel(d.parent)}: changed verdicts {s['regraded']['changed_verdicts']}")
