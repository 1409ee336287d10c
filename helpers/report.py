"""REPORT.md: the reproduced tables, figures and what they say, readable without a notebook."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from .artifacts import atomic_write_text, read_json
from .tables import COLUMNS, write_table


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
