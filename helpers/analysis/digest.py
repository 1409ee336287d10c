"""The figures a run's readers rely on, flat: its counts (filter totals by rule, demonstrations,
mixture sizes, problems solved, rollouts, trajectories selected, DPO pairs, tokens by stage) and
its measurements (accuracy, format adherence and mean tokens per variant and benchmark).

`tests/pins.py` keeps the smoke run's in `tests/expected/` and compares a fresh run with them.
"""

from __future__ import annotations

from pathlib import Path

from ..pipeline.artifacts import read_json, read_jsonl
from ..pipeline.stages import TRAIN_SUMMARY, locate, pattern


def run_figures(rdir: Path) -> dict[str, int | float]:
    """Every figure of a finished run, by a dotted name."""
    rdir = Path(rdir)
    out: dict[str, int | float] = {}
    fr = locate(rdir, "unify", "report")
    if fr.exists():
        r = read_json(fr)
        out["unify.responses"], out["unify.kept"] = r["responses"], r["kept"]
        out.update({f"unify.rejected.{k}": v for k, v in r["rejected"].items()})
        out.update({f"unify.tokens.{k}": v for k, v in sorted(r.get("tokens", {}).items())})
    ms = locate(rdir, "mix", "stats")
    for m in read_json(ms) if ms.exists() else []:
        out[f"mix.{m['mixture']}.size"] = m["size"]
        out[f"mix.{m['mixture']}.mean_thought_words"] = round(m["mean_thought_words"], 2)
    for summ in sorted(rdir.glob(pattern("evaluate", "summary"))):
        s, v = read_json(summ), summ.parent.name
        for b, m in sorted(s["benchmarks"].items()):
            for key in ("accuracy", "format_adherence", "mean_tokens"):
                out[f"eval.{v}.{b}.{key}"] = round(m[key], 2)
        out.update({f"eval.{v}.tokens.{k}": n for k, n in sorted(s.get("tokens", {}).items())})
    for summ in sorted(rdir.glob(pattern("explore", "summary"))):
        s, it = read_json(summ), summ.parent.name
        for key in ("problems", "solved", "rollouts", "correct", "tokens"):
            out[f"explore.{it}.{key}"] = s["stats"][key]
        out[f"explore.{it}.selected"] = s["selected"]
    pairs = locate(rdir, "dpo", "pairs")
    if pairs.exists():
        out["dpo.pairs"] = sum("chosen_id" in r for r in read_jsonl(pairs))
    for summ in sorted(rdir.glob(f"{pattern('sft', 'model')}/{TRAIN_SUMMARY}")):
        s, v = read_json(summ), summ.parent.name
        out[f"train.{v}.steps"] = s["steps"]
        out.update({f"train.{v}.tokens.{k}": n for k, n in sorted(s.get("tokens", {}).items())})
    return out
