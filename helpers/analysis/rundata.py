"""What a run wrote, read back for the tables, the figures and the report."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from ..pipeline.artifacts import read_json, read_jsonl
from ..pipeline.schema import Profile
from ..pipeline.stages import TRAIN_LOG, TRAIN_SUMMARY, explore_iterations, locate, pattern
from .display import margins
from .stats import bootstrap_ci
from .tables import COLUMNS


def mixture_thought_words(profile: Profile, rdir: Path) -> dict[str, float]:
    """Mean thought length (words) of the mixture each SFT variant trained on."""
    path = locate(rdir, "mix", "stats")
    if not path.exists():
        return {}
    stats = {s["mixture"]: s for s in read_json(path)}
    return {
        v.name: stats[v.mixture]["mean_thought_words"]
        for v in profile.variants
        if v.mixture in stats
    }


def long_accuracy(profile: Profile, summaries: dict[str, dict], words: dict[str, float]) -> Any:
    """A long table (variant, benchmark, accuracy, thought_words) for plots."""
    import pandas as pd

    rows = [
        {
            "variant": name,
            "benchmark": f"{b} ({COLUMNS[profile.benchmarks[b].kind]})",
            "accuracy": s["accuracy"],
            "thought_words": words.get(name),
        }
        for name, summ in summaries.items()
        for b, s in summ["benchmarks"].items()
        if b in profile.benchmarks
    ]
    return pd.DataFrame(rows, columns=["variant", "benchmark", "accuracy", "thought_words"])


TOKEN_COLUMNS = {
    "prefill": "prefill",
    "prefill_padding": "prefill pad",
    "shared_prefill": "prefill shared",
    "decode": "generated",
    "train": "trained",
    "train_padding": "train pad",
}


def stage_timings(rdir: Path, profile: Profile = None) -> Any:
    """One row per finished execution: stage, variant, minutes, tokens paid for, machine.

    Minutes come from the manifests; tokens from the artifact each stage's record names
    (`tokens_at` in helpers/pipeline/stages.py): prefill and decode of generation, trained
    tokens and padding of training, in thousands.
    """
    import pandas as pd

    from ..pipeline.stages import BY_NAME

    variants = {v.name: v for v in profile.variants} if profile is not None else {}
    rows = []
    for path in sorted((Path(rdir) / "manifests").glob("*.json")):
        m = read_json(path)
        # .digests.json (the runner's hash cache) sits beside the manifests and has no stage
        if m.get("status") == "running" or "stage" not in m:
            continue
        row = {
            "stage": m.get("stage"),
            "variant": m.get("variant") or "",
            "status": m.get("status"),
            "minutes": round(float(m.get("seconds") or 0) / 60, 1),
            "start": m.get("start"),
            "machine": _machine_label(m.get("machine")),
        }
        st = BY_NAME.get(row["stage"])
        v = variants.get(row["variant"])
        if st is not None and st.tokens_at is not None and (v is not None or not row["variant"]):
            src = Path(rdir) / st.tokens_file(profile, v)
            tokens = read_json(src).get("tokens", {}) if src.exists() else {}
            for key, col in TOKEN_COLUMNS.items():
                if tokens.get(key):
                    row[col] = round(tokens[key] / 1000, 1)
        rows.append(row)
    cols = ["stage", "variant", "status", "minutes", *TOKEN_COLUMNS.values(), "start", "machine"]
    df = pd.DataFrame(rows, columns=cols)
    empty = [c for c in TOKEN_COLUMNS.values() if df[c].isna().all()]
    return df.drop(columns=empty).sort_values("start").reset_index(drop=True)


def _machine_label(record: dict[str, Any] | None) -> str | None:
    """The machine and compute setting a manifest recorded, as one label (None if none)."""
    from ..pipeline.machine import summary_line

    if not record:
        return None
    held = ", ".join(f"{k}={v}" for k, v in (record.get("held") or {}).items())
    cpu = f"{record.get('cpu', 'unknown CPU')}, {record.get('cores', '?')} cores"
    return f"{cpu}; {summary_line(record)}" + (f", held: {held}" if held else "")


def machines_used(timings: Any) -> list[str]:
    """One line per machine and compute setting of the finished executions in stage_timings."""
    done = timings[(timings["status"] == "done") & timings["machine"].notna()]
    groups = done.groupby("machine", sort=False)["minutes"].agg(["size", "sum"])
    return [
        f"{label}: {n} execution{'s' * (n > 1)}, {minutes:.0f} minutes"
        for label, n, minutes in zip(groups.index, groups["size"], groups["sum"], strict=True)
    ]


def data_summary(rdir: Path) -> list[str]:
    """Report lines on the imitation data: filter totals and mixture sizes, when present."""
    rdir = Path(rdir)
    lines: list[str] = []
    fr = locate(rdir, "unify", "report")
    if fr.exists():
        r = read_json(fr)
        rules = ", ".join(f"{k} {v}" for k, v in r["rejected"].items() if v)
        kept = ", ".join(f"{k} {v}" for k, v in r.get("kept_by_teacher", {}).items())
        lines += [
            f"Teachers wrote {r['responses']} responses; {r['kept']} became demonstrations "
            f"({kept}). Rejected by rule: {rules}.",
            "",
        ]
    ms = locate(rdir, "mix", "stats")
    if ms.exists():
        lines += ["| mixture | size | mean thought words | by group |", "|---|---|---|---|"]
        for m in read_json(ms):
            groups = ", ".join(f"{g} {w:.0f}" for g, w in m["thought_words_by_group"].items())
            lines.append(
                f"| {m['mixture']} | {m['size']} | {m['mean_thought_words']:.1f} | {groups} |"
            )
        lines.append("")
    return lines


def data_sizes(profile: Profile, rdir: Path) -> dict[str, dict[str, int]]:
    """Per variant, the data it trained on: distilled demonstrations, explored ones, DPO pairs."""
    rdir = Path(rdir)
    stats_path = locate(rdir, "mix", "stats")
    mixes = {m["mixture"]: m["size"] for m in read_json(stats_path)} if stats_path.exists() else {}
    by_name = {v.name: v for v in profile.variants}
    out: dict[str, dict[str, int]] = {}
    for v in profile.variants:
        sizes: dict[str, int] = {}
        base = by_name.get(v.init) if v.kind == "dpo" else v
        if base is not None and base.mixture in mixes:
            sizes["distill"] = mixes[base.mixture]
        if v.explore_iteration:
            summ = locate(rdir, "explore", "summary", i=v.explore_iteration)
            if summ.exists():
                sizes["explore"] = read_json(summ)["selected"]
        if v.kind == "dpo":
            summ = locate(rdir, "dpo", "model", variant=v.name) / TRAIN_SUMMARY
            if summ.exists():
                sizes["explore"] = read_json(summ)["pairs"]
        out[v.name] = sizes
    return out


def explore_summaries(rdir: Path, profile: Profile = None) -> list[dict[str, Any]]:
    """Each exploration iteration's summary, in order (those the profile names, or on disk)."""
    if profile is not None:
        paths = [locate(rdir, "explore", "summary", i=i) for i in explore_iterations(profile)]
    else:
        paths = sorted(
            Path(rdir).glob(pattern("explore", "summary")),
            key=lambda p: int(p.parent.name.removeprefix("iter")),
        )
    return [read_json(p) for p in paths if p.exists()]


def explore_table(rdir: Path, profile: Profile = None) -> Any:
    """Per iteration: who explored, problems solved, rollouts, tokens, and the saving against
    drawing the full number of rollouts for every problem."""
    import pandas as pd

    rows = []
    for s in explore_summaries(rdir, profile):
        st = s["stats"]
        rows.append(
            {
                "iteration": s["iteration"],
                "explorer": s["explorer"],
                "problems": st["problems"],
                "solved": st["solved"],
                "pass@1 %": round(100 * st["pass_at_k"][0], 1),
                f"pass@{len(st['pass_at_k'])} %": round(100 * st["pass_at_k"][-1], 1),
                "rollouts": st["rollouts"],
                "tokens": st["tokens"],
                "tokens at fixed rollouts": st["fixed_rollouts_tokens"],
                "saved %": round(100 * (1 - st["tokens"] / max(st["fixed_rollouts_tokens"], 1)), 1),
                "selected": s["selected"],
            }
        )
    return pd.DataFrame(rows)


def _with_interval(summary: dict[str, Any], bench: str) -> dict[str, float]:
    """A benchmark's accuracy with its 95% bootstrap interval."""
    m = summary["benchmarks"][bench]
    lo, hi = bootstrap_ci(m["correct"])
    return {"accuracy": m["accuracy"], "lo": lo, "hi": hi}


def accuracy_by_iteration(profile: Profile, summaries: dict[str, dict]) -> Any:
    """Accuracy per benchmark (with its 95% interval) against the explore iteration (0: the
    first-round model), for each training seed the variants were trained with."""
    import pandas as pd

    start = profile.explore.start if profile.explore else None
    its = {
        v.name: (v.explore_iteration, v.seed if v.seed is not None else profile.seed)
        for v in profile.variants
        if v.explore_iteration
    }
    if start:
        its[start] = (0, profile.seed)
        for v in profile.variants:
            if v.replicate_of == start:
                its[v.name] = (0, v.seed)
    rows = [
        {
            "iteration": it,
            "seed": seed,
            "benchmark": f"{b} ({COLUMNS[profile.benchmarks[b].kind]})",
            **_with_interval(summaries[name], b),
        }
        for name, (it, seed) in its.items()
        if name in summaries
        for b in summaries[name]["benchmarks"]
        if b in profile.benchmarks
    ]
    return pd.DataFrame(rows, columns=["iteration", "seed", "benchmark", "accuracy", "lo", "hi"])


def dpo_accuracy(profile: Profile, summaries: dict[str, dict]) -> Any:
    """Table 4's variants: accuracy per benchmark with its 95% interval, by what DPO aligns and
    whether it adds the SFT loss."""
    import pandas as pd

    rows = [
        {
            "variant": f"{'thought' if v.align == 'thought' else 'thought + solution'}"
            f"{', SFT loss' if v.sft_loss else ''}",
            "benchmark": f"{b} ({COLUMNS[profile.benchmarks[b].kind]})",
            **_with_interval(summaries[v.name], b),
        }
        for v in profile.variants
        if any(r.startswith("t4_") for r in v.paper_rows) and v.name in summaries
        for b in summaries[v.name]["benchmarks"]
        if b in profile.benchmarks
    ]
    return pd.DataFrame(rows, columns=["variant", "benchmark", "accuracy", "lo", "hi"])


def mixture_lengths(rdir: Path) -> Any:
    """Mean thought length (words) of each mixture's demonstrations, by pool group (Table 3)."""
    import pandas as pd

    path = locate(rdir, "mix", "stats")
    rows = [
        {"mixture": m["mixture"], "group": g, "thought_words": w}
        for m in (read_json(path) if path.exists() else [])
        for g, w in m["thought_words_by_group"].items()
    ]
    return pd.DataFrame(rows, columns=["mixture", "group", "thought_words"])


def dpo_histories(profile: Profile, rdir: Path) -> dict[str, list[tuple[int, float]]]:
    """The reward margins logged while each DPO variant trained."""
    out = {}
    for v in profile.variants:
        log = locate(rdir, "dpo", "model", variant=v.name) / TRAIN_LOG
        if v.kind == "dpo" and log.exists():
            out[v.name] = margins(read_jsonl(log))
    return out
