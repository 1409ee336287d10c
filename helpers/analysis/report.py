"""REPORT.md: the reproduced tables, figures and what they say, readable without a notebook."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from ..pipeline.artifacts import atomic_write_text, read_json
from .stats import mcnemar, paired_bootstrap
from .tables import COLUMNS, PAPER_ROWS, markdown, undefined_gains, write_table

# The paper's comparisons, as (better row, worse row, what it shows), checked on our run.
CLAIMS = [
    ("t2_sft_small", "t2_backbone", "distilling 1.1k helps"),
    ("t2_sft_large", "t2_backbone", "distilling 3.9k helps"),
    ("t2_sft_large", "t2_sft_small", "more distilled data helps"),
    ("t3_no_other", "t3_no_hard", "hard problems help"),
    ("t3_mixed", "t3_no_other", "other domains help"),
    ("t2_explore_1", "t2_sft_small", "explore + SFT, iteration 1"),
    ("t2_explore_2", "t2_sft_small", "explore + SFT, iteration 2"),
    ("t2_explore_3", "t2_sft_small", "explore + SFT, iteration 3"),
    ("t2_dpo_small", "t2_sft_small", "explore + DPO, fewer pairs"),
    ("t2_dpo_large", "t2_sft_small", "explore + DPO, more pairs"),
    ("t4_thought", "t4_full", "DPO on the thought only (no SFT loss)"),
    ("t4_thought_sft", "t4_full_sft", "DPO on the thought only (SFT loss)"),
    ("t4_full_sft", "t4_full", "the SFT loss (thought + solution)"),
    ("t4_thought_sft", "t4_thought", "the SFT loss (thought only)"),
]


def mixture_thought_words(profile: Any, rdir: Path) -> dict[str, float]:
    """Mean thought length (words) of the mixture each SFT variant trained on."""
    path = Path(rdir) / "mix" / "stats.json"
    if not path.exists():
        return {}
    stats = {s["mixture"]: s for s in read_json(path)}
    return {
        v.name: stats[v.mixture]["mean_thought_words"]
        for v in profile.variants
        if v.mixture in stats
    }


def long_accuracy(profile: Any, summaries: dict[str, dict], words: dict[str, float]) -> Any:
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


EFFECT_COLUMNS = [
    "claim",
    "comparison",
    "benchmark",
    "ours",
    "95% CI (paired)",
    "only a / only b",
    "McNemar p",
    "paper",
    "verdict",
]

ALPHA = 0.05  # the significance level of the Effects table's verdicts


def verdict(ours: float, paper: float, p: float) -> str:
    """Whether a paired difference of ours shows the paper's effect: the direction, and whether
    McNemar's test separates it from chance at ALPHA."""
    if ours == 0:
        return "no difference"
    same = (ours > 0) == (paper > 0) if paper else None
    direction = "paper's direction" if same else "opposite direction" if same is False else ""
    if p < ALPHA:
        return "holds" if same else "reversed" if same is False else f"differs (p < {ALPHA})"
    return f"not shown ({direction})" if direction else "not shown"


def effects(profile: Any, summaries: dict[str, dict]) -> Any:
    """Each of the paper's comparisons on our run, tested on the same problems.

    ours: accuracy difference (points) of the first variant minus the second; its 95% paired
    bootstrap interval; the problems only one of the two solves; McNemar's exact p-value.
    """
    import pandas as pd

    variant_of = {r: v.name for v in profile.variants for r in v.paper_rows}
    rows = []
    for better, worse, claim in CLAIMS:
        a, b = summaries.get(variant_of.get(better, "")), summaries.get(variant_of.get(worse, ""))
        if a is None or b is None or variant_of[better] == variant_of[worse]:
            continue
        for bench, bcfg in profile.benchmarks.items():
            if bench not in a["benchmarks"] or bench not in b["benchmarks"]:
                continue
            col = COLUMNS[bcfg.kind]
            ca, cb = a["benchmarks"][bench]["correct"], b["benchmarks"][bench]["correct"]
            diff, lo, hi = paired_bootstrap(ca, cb)
            only_a, only_b, p = mcnemar(ca, cb)
            paper = PAPER_ROWS[better][col] - PAPER_ROWS[worse][col]
            rows.append(
                {
                    "claim": claim,
                    "comparison": f"{variant_of[better]} - {variant_of[worse]}",
                    "benchmark": col,
                    "ours": round(diff, 1),
                    "95% CI (paired)": f"[{lo:.1f}, {hi:.1f}]",
                    "only a / only b": f"{only_a} / {only_b}",
                    "McNemar p": round(p, 3),
                    "paper": round(paper, 1),
                    "verdict": verdict(diff, paper, p),
                }
            )
    return pd.DataFrame(rows, columns=EFFECT_COLUMNS)


TOKEN_COLUMNS = {
    "prefill": "prefill",
    "prefill_padding": "prefill pad",
    "shared_prefill": "prefill shared",
    "decode": "generated",
    "train": "trained",
    "train_padding": "train pad",
}


def stage_timings(rdir: Path, profile: Any = None) -> Any:
    """One row per finished execution: stage, variant, minutes, and the tokens it paid for.

    Minutes come from the manifests; tokens from the artifact each stage's record names
    (`tokens_at` in helpers/pipeline/stages.py): prefill and decode of generation, trained tokens and
    padding of training, in thousands.
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
        }
        st = BY_NAME.get(row["stage"])
        v = variants.get(row["variant"])
        if st is not None and st.tokens_at is not None and (v is not None or not row["variant"]):
            src = Path(rdir) / st.tokens_at(profile, v)
            tokens = read_json(src).get("tokens", {}) if src.exists() else {}
            for key, col in TOKEN_COLUMNS.items():
                if tokens.get(key):
                    row[col] = round(tokens[key] / 1000, 1)
        rows.append(row)
    cols = ["stage", "variant", "status", "minutes", *TOKEN_COLUMNS.values(), "start"]
    df = pd.DataFrame(rows, columns=cols)
    empty = [c for c in TOKEN_COLUMNS.values() if df[c].isna().all()]
    return df.drop(columns=empty).sort_values("start").reset_index(drop=True)


def data_summary(rdir: Path) -> list[str]:
    """Report lines on the imitation data: filter totals and mixture sizes, when present."""
    rdir = Path(rdir)
    lines: list[str] = []
    fr = rdir / "unify" / "filter_report.json"
    if fr.exists():
        r = read_json(fr)
        rules = ", ".join(f"{k} {v}" for k, v in r["rejected"].items() if v)
        kept = ", ".join(f"{k} {v}" for k, v in r.get("kept_by_teacher", {}).items())
        lines += [
            f"Teachers wrote {r['responses']} responses; {r['kept']} became demonstrations "
            f"({kept}). Rejected by rule: {rules}.",
            "",
        ]
    ms = rdir / "mix" / "stats.json"
    if ms.exists():
        lines += ["| mixture | size | mean thought words | by group |", "|---|---|---|---|"]
        for m in read_json(ms):
            groups = ", ".join(f"{g} {w:.0f}" for g, w in m["thought_words_by_group"].items())
            lines.append(
                f"| {m['mixture']} | {m['size']} | {m['mean_thought_words']:.1f} | {groups} |"
            )
        lines.append("")
    return lines


def data_sizes(profile: Any, rdir: Path) -> dict[str, dict[str, int]]:
    """Per variant, the data it trained on: distilled demonstrations, explored ones, DPO pairs."""
    rdir = Path(rdir)
    stats_path = rdir / "mix" / "stats.json"
    mixes = {m["mixture"]: m["size"] for m in read_json(stats_path)} if stats_path.exists() else {}
    by_name = {v.name: v for v in profile.variants}
    out: dict[str, dict[str, int]] = {}
    for v in profile.variants:
        sizes: dict[str, int] = {}
        base = by_name.get(v.init) if v.kind == "dpo" else v
        if base is not None and base.mixture in mixes:
            sizes["distill"] = mixes[base.mixture]
        if v.explore_iteration:
            summ = rdir / "explore" / f"iter{v.explore_iteration}" / "summary.json"
            if summ.exists():
                sizes["explore"] = read_json(summ)["selected"]
        if v.kind == "dpo":
            summ = rdir / "models" / v.name / "train_summary.json"
            if summ.exists():
                sizes["explore"] = read_json(summ)["pairs"]
        out[v.name] = sizes
    return out


def explore_summaries(rdir: Path) -> list[dict[str, Any]]:
    """Each exploration iteration's summary.json, in order."""
    paths = sorted(
        (Path(rdir) / "explore").glob("iter*/summary.json"),
        key=lambda p: int(p.parent.name.removeprefix("iter")),
    )
    return [read_json(p) for p in paths]


def explore_table(rdir: Path) -> Any:
    """Per iteration: who explored, problems solved, rollouts, tokens, and the saving against
    drawing the full number of rollouts for every problem."""
    import pandas as pd

    rows = []
    for s in explore_summaries(rdir):
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


def accuracy_by_iteration(profile: Any, summaries: dict[str, dict]) -> Any:
    """Accuracy per benchmark against the explore iteration (0: the first-round model)."""
    import pandas as pd

    start = profile.explore.start if profile.explore else None
    its = {v.name: v.explore_iteration for v in profile.variants if v.explore_iteration}
    if start:
        its[start] = 0
    rows = [
        {
            "iteration": it,
            "benchmark": f"{b} ({COLUMNS[profile.benchmarks[b].kind]})",
            "accuracy": summaries[name]["benchmarks"][b]["accuracy"],
        }
        for name, it in its.items()
        if name in summaries
        for b in summaries[name]["benchmarks"]
        if b in profile.benchmarks
    ]
    return pd.DataFrame(rows, columns=["iteration", "benchmark", "accuracy"])


def dpo_histories(profile: Any, rdir: Path) -> dict[str, list[tuple[int, float]]]:
    """The reward margins logged while each DPO variant trained."""
    from ..pipeline.artifacts import read_jsonl
    from ..train.dpo import margins

    out = {}
    for v in profile.variants:
        log = Path(rdir) / "models" / v.name / "train_log.jsonl"
        if v.kind == "dpo" and log.exists():
            out[v.name] = margins(read_jsonl(log))
    return out


def write_report(
    profile: Any, rdir: Path, tabs: dict[str, Any], summaries: dict[str, dict], missing: list[str]
) -> Path:
    """Write tables (md, csv) and REPORT.md for the run; return the report's path."""
    rdir = Path(rdir)
    for name, df in tabs.items():
        write_table(df, rdir / "tables", name)
    lines = [
        f"# Reproduction report: run `{profile.run}`",
        "",
        f"Backbone `{profile.backbone}`; benchmarks "
        + ", ".join(
            f"{n} ({COLUMNS[b.kind]}-like, {b.size} problems)"
            for n, b in profile.benchmarks.items()
        )
        + ".",
        "",
        "Accuracies are % with a 95% bootstrap interval in brackets; the paper's numbers "
        "are for Qwen2.5-32B-Instruct on the real benchmarks, so compare directions and "
        "gaps, not levels.",
        "",
    ]
    if missing:
        lines += [f"Not evaluated yet: {', '.join(missing)}.", ""]
    regraded = {n: s["regraded"] for n, s in summaries.items() if "regraded" in s}
    if regraded:
        lines += [
            "Re-graded from the stored responses after a grader fix, without generating again "
            "(`python -m helpers.method.evaluation PROFILE`); verdicts changed: "
            + "; ".join(f"{n} {r['changed_verdicts']}" for n, r in regraded.items())
            + ".",
            "",
        ]
    lines += [
        "## Per variant",
        "",
        "| variant | benchmark | accuracy | format adherence | mean tokens | truncated |",
        "|---|---|---|---|---|---|",
    ]
    for name, s in summaries.items():
        for b, m in s["benchmarks"].items():
            lines.append(
                f"| {name} | {b} | {m['accuracy']:.1f} | {m['format_adherence']:.1f} | "
                f"{m['mean_tokens']:.0f} | {m['truncation_rate']:.1f} |"
            )
    for name, df in tabs.items():
        if len(df):
            lines += ["", f"## {name.replace('table', 'Table ')}", "", markdown(df)]
            empty = undefined_gains(df)
            if empty:
                lines += [
                    "",
                    f"No gain of ours on {', '.join(empty)}: the backbone scores 0% there, and "
                    "a gain relative to 0 (the paper's (acc - backbone) / backbone) is undefined.",
                ]
    eff = effects(profile, summaries)
    if len(eff):
        lines += [
            "",
            "## Effects: the paper's comparisons on this run",
            "",
            "Differences in accuracy points, ours and the paper's, on the same problems: a 95% "
            "paired bootstrap interval of our difference, the problems only the first or only "
            "the second variant solves, and McNemar's exact p-value. One training seed each.",
            "",
            markdown(eff),
        ]
    data = data_summary(rdir)
    if data:
        lines += ["", "## Imitation data", "", *data]
    explored = explore_table(rdir)
    if len(explored):
        lines += [
            "",
            "## Exploration",
            "",
            "Per iteration: the model that explored, problems solved (a problem stops at its "
            "first correct rollout), pass@1 and pass@k as the share solved within k attempts, "
            "and the tokens spent against drawing every problem's full number of rollouts.",
            "",
            markdown(explored),
        ]
    timings = stage_timings(rdir, profile)
    if len(timings):
        total = timings["minutes"].sum()
        lines += [
            "",
            "## Where the time goes",
            "",
            f"Wall time of each finished execution, {total:.0f} minutes in all, and the tokens "
            "it paid for in thousands (prefill: prompt tokens computed, pad: padding computed, "
            "shared: prompt rows copied from an identical prompt instead, generated: decoded "
            "tokens, trained: training tokens):",
            "",
            markdown(timings),
        ]
    lines += ["", "## Figures", ""]
    for name, title in FIGURES:
        if (rdir / "figures" / name).exists():
            lines += [f"![{title}](figures/{name})", ""]
    path = rdir / "REPORT.md"
    atomic_write_text(path, "\n".join(lines) + "\n")
    return path


FIGURES = [
    ("accuracy.png", "accuracy"),
    ("accuracy_vs_thought_length.png", "accuracy vs thought length"),
    ("pass_at_k.png", "pass@k by explore iteration"),
    ("accuracy_by_iteration.png", "accuracy by explore iteration"),
    ("dpo_margins.png", "DPO reward margins"),
]

# What a committed reference run keeps (no models, no raw responses): (source, destination).
PUBLISHED = [
    ("REPORT.md", "REPORT.md"),
    ("tables/*", "tables/"),
    ("figures/*", "figures/"),
    ("mix/thought_lengths.png", "figures/"),
    ("eval/*/summary.json", "eval/{variant}.summary.json"),
    ("manifests/*.json", "manifests/"),
    ("collect/summary.csv", "data/collect_summary.csv"),
    ("unify/filter_report.json", "data/filter_report.json"),
    ("unify/completer/train_summary.json", "data/completer_summary.json"),
    ("mix/stats.json", "data/mixture_stats.json"),
    ("explore/iter*/summary.json", "data/explore_{variant}.json"),
    ("dpo/pairs.jsonl", "data/dpo_pairs.jsonl"),
]


def publish(rdir: Path, dest: Path, profile_path: Path) -> list[Path]:
    """Copy a finished run's report, tables, figures, summaries and manifests to dest."""
    import shutil

    rdir, dest = Path(rdir), Path(dest)
    if not (rdir / "REPORT.md").exists():
        raise FileNotFoundError(f"{rdir}: no REPORT.md; run the analyse stage first")
    written = []
    for pattern, target in PUBLISHED:
        for src in sorted(rdir.glob(pattern)):
            if src.name.startswith("."):  # the runner's own caches, not results
                continue
            if target.endswith("/"):
                out = dest / target / src.name
            else:
                out = dest / target.format(variant=src.parent.name)
            out.parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(src, out)
            written.append(out)
    shutil.copyfile(profile_path, dest / "profile.yaml")
    return [*written, dest / "profile.yaml"]


if __name__ == "__main__":  # python -m helpers.analysis.report PROFILE [DEST]: publish a finished run
    import sys

    from ..pipeline.config import load_profile, resolve_path
    from ..pipeline.paths import rel, run_dir

    prof_path = resolve_path(sys.argv[1])
    target = resolve_path(sys.argv[2] if len(sys.argv) > 2 else "outputs/reference")
    files = publish(run_dir(load_profile(prof_path).run), target, prof_path)
    print(f"published {len(files)} files to {rel(target)}")
