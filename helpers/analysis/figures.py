"""The figures a run's readers rely on, flat, and a comparison against a committed copy.

A run's figures are its counts (filter totals by rule, demonstrations, mixture sizes, problems
solved, rollouts, trajectories selected, DPO pairs, tokens by stage) and its measurements
(accuracy, format adherence and mean tokens per variant and benchmark). `tests/expected/`
keeps the smoke run's; the pipeline test compares a fresh run against them: counts exactly,
measurements within FLOAT_TOLERANCE.

    python -m helpers.analysis.figures PROFILE            # compare a finished run with its expected file
    python -m helpers.analysis.figures PROFILE --update   # rewrite the expected file from the run
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

from ..pipeline.artifacts import read_json, read_jsonl
from ..pipeline.paths import repo_root
from ..pipeline.stages import TRAIN_SUMMARY, locate, pattern

# PyTorch, MKL and oneDNN held to AVX2 kernels: a run then gives the same figures on AVX2-only
# and AVX-512 machines (fp32 throughout). The tests, nbval's kernels and `make notebooks` set it.
ONE_INSTRUCTION_SET = {
    "ATEN_CPU_CAPABILITY": "avx2",
    "MKL_ENABLE_INSTRUCTIONS": "AVX2",
    "ONEDNN_MAX_CPU_ISA": "AVX2",
}
# Floats are rounded to 2 decimals when recorded; a run held to one instruction set repeats
# them exactly, so the tolerance only absorbs the rounding.
FLOAT_TOLERANCE = 0.011
EXPECTED_DIR = repo_root() / "tests" / "expected"


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
    for summ in sorted(rdir.glob(pattern("sft", "model") + TRAIN_SUMMARY)):
        s, v = read_json(summ), summ.parent.name
        out[f"train.{v}.steps"] = s["steps"]
        out.update({f"train.{v}.tokens.{k}": n for k, n in sorted(s.get("tokens", {}).items())})
    return out


def compare(expected: dict[str, Any], found: dict[str, Any]) -> list[str]:
    """Every figure that moved, from what to what (and those that appeared or vanished)."""
    moved = []
    for key in sorted(set(expected) | set(found)):
        if key not in found:
            moved.append(f"{key}: expected {expected[key]}, missing from the run")
        elif key not in expected:
            moved.append(f"{key}: {found[key]} in the run, not in the expected figures")
        else:
            e, f = expected[key], found[key]
            same = abs(e - f) <= FLOAT_TOLERANCE if isinstance(e, float) else e == f
            if not same:
                moved.append(f"{key}: expected {e}, found {f}")
    return moved


def expected_path(run: str) -> Path:
    """Where a run's expected figures are kept."""
    return EXPECTED_DIR / f"{run}_figures.json"


def main(argv: list[str]) -> int:
    """Compare a run's figures with its expected file, or rewrite that file (--update)."""
    from ..pipeline.config import load_profile
    from ..pipeline.paths import rel, run_dir

    profile = load_profile(argv[0])
    found = run_figures(run_dir(profile.run))
    path = expected_path(profile.run)
    if "--update" in argv:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(found, indent=1, sort_keys=True) + "\n")
        print(f"wrote {len(found)} figures to {rel(path)}; say why in the commit that changes it")
        return 0
    moved = compare(json.loads(path.read_text()), found)
    print("\n".join(moved) if moved else f"all {len(found)} figures as expected ({rel(path)})")
    return 1 if moved else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
