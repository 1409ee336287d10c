"""REPORT.md: the reproduced tables, figures and what they say, readable without a notebook."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from .artifacts import atomic_write_text, read_json
from .tables import COLUMNS, PAPER_ROWS, bootstrap_ci, write_table

# The paper's comparisons, as (better row, worse row, what it shows), checked on our run.
CLAIMS = [
    ("t2_sft_small", "t2_backbone", "distilling 1.1k helps"),
    ("t2_sft_large", "t2_backbone", "distilling 3.9k helps"),
    ("t2_sft_large", "t2_sft_small", "more distilled data helps"),
    ("t3_no_other", "t3_no_hard", "hard problems help"),
    ("t3_mixed", "t3_no_other", "other domains help"),
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


def effects(profile: Any, summaries: dict[str, dict]) -> Any:
    """For each of the paper's comparisons: our difference, the paper's, and whether they agree."""
    import pandas as pd

    variant_of = {r: v.name for v in profile.variants for r in v.paper_rows}
    rows = []
    for better, worse, claim in CLAIMS:
        a, b = summaries.get(variant_of.get(better, "")), summaries.get(variant_of.get(worse, ""))
        if a is None or b is None:
            continue
        for bench, bcfg in profile.benchmarks.items():
            if bench not in a["benchmarks"] or bench not in b["benchmarks"]:
                continue
            col = COLUMNS[bcfg.kind]
            ours = a["benchmarks"][bench]["accuracy"] - b["benchmarks"][bench]["accuracy"]
            paper = PAPER_ROWS[better][col] - PAPER_ROWS[worse][col]
            lo_a, hi_a = bootstrap_ci(a["benchmarks"][bench]["correct"])
            lo_b, hi_b = bootstrap_ci(b["benchmarks"][bench]["correct"])
            separated = lo_a > hi_b or lo_b > hi_a
            rows.append(
                {
                    "claim": claim,
                    "comparison": f"{variant_of[better]} - {variant_of[worse]}",
                    "benchmark": col,
                    "ours": round(ours, 1),
                    "paper": round(paper, 1),
                    "same sign": (ours > 0) == (paper > 0) if ours and paper else ours == paper,
                    "intervals separate": separated,
                }
            )
    return pd.DataFrame(
        rows,
        columns=[
            "claim",
            "comparison",
            "benchmark",
            "ours",
            "paper",
            "same sign",
            "intervals separate",
        ],
    )


def stage_timings(rdir: Path) -> Any:
    """One row per finished execution of the run: stage, variant, seconds, start, from manifests."""
    import pandas as pd

    rows = []
    for path in sorted((Path(rdir) / "manifests").glob("*.json")):
        m = read_json(path)
        rows.append(
            {
                "stage": m.get("stage"),
                "variant": m.get("variant") or "",
                "status": m.get("status"),
                "minutes": round(float(m.get("seconds") or 0) / 60, 1),
                "start": m.get("start"),
            }
        )
    rows = [r for r in rows if r["status"] != "running"]
    df = pd.DataFrame(rows, columns=["stage", "variant", "status", "minutes", "start"])
    return df.sort_values("start").reset_index(drop=True)


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
            "(`python -m helpers.evaluation PROFILE`); verdicts changed: "
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
        lines += ["", f"## {name.replace('table', 'Table ')}", "", df.to_markdown(index=False)]
    eff = effects(profile, summaries)
    if len(eff):
        lines += [
            "",
            "## Effects: the paper's comparisons on this run",
            "",
            "Differences in accuracy points (ours and the paper's); 'intervals separate' says "
            "whether the two 95% bootstrap intervals do not overlap, a conservative test.",
            "",
            eff.to_markdown(index=False),
        ]
    data = data_summary(rdir)
    if data:
        lines += ["", "## Imitation data", "", *data]
    timings = stage_timings(rdir)
    if len(timings):
        total = timings["minutes"].sum()
        lines += [
            "",
            "## Where the time goes",
            "",
            f"Wall time of each finished execution, {total:.0f} minutes in all:",
            "",
            timings.to_markdown(index=False),
        ]
    lines += [
        "",
        "## Figures",
        "",
        "![accuracy](figures/accuracy.png)",
        "",
        "![accuracy vs thought length](figures/accuracy_vs_thought_length.png)",
        "",
    ]
    path = rdir / "REPORT.md"
    atomic_write_text(path, "\n".join(lines) + "\n")
    return path


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
            if target.endswith("/"):
                out = dest / target / src.name
            else:
                out = dest / target.format(variant=src.parent.name)
            out.parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(src, out)
            written.append(out)
    shutil.copyfile(profile_path, dest / "profile.yaml")
    return [*written, dest / "profile.yaml"]


if __name__ == "__main__":  # python -m helpers.report PROFILE [DEST]: publish a finished run
    import sys

    from .config import load_profile, resolve_path
    from .paths import rel, run_dir

    prof_path = resolve_path(sys.argv[1])
    target = resolve_path(sys.argv[2] if len(sys.argv) > 2 else "outputs/reference")
    files = publish(run_dir(load_profile(prof_path).run), target, prof_path)
    print(f"published {len(files)} files to {rel(target)}")
