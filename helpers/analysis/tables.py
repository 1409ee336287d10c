"""The paper's tables, reproduced beside its numbers, with bootstrap intervals (stage 08)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from ..pipeline.artifacts import read_json
from ..pipeline.schema import Profile
from ..pipeline.stages import locate
from .stats import bootstrap_ci

# Paper numbers (accuracy %), from shared/reference/paper-facts.md.
COLUMNS = {"normal": "MATH-OAI", "hard": "AIME", "other": "GPQA"}
PAPER_ROWS: dict[str, dict[str, Any]] = {
    # This world's own row: the backbone before the warm-up, which the paper has no need of.
    "t2_raw": {
        "table": 2,
        "label": "Backbone as shipped, before the warm-up",
        "MATH-OAI": None,
        "AIME": None,
        "GPQA": None,
    },
    "t2_backbone": {"table": 2, "label": "Backbone", "MATH-OAI": 80.0, "AIME": 13.3, "GPQA": 43.4},
    "t2_sft_large": {
        "table": 2,
        "label": "w/ SFT, distill 3.9k",
        "MATH-OAI": 90.2,
        "AIME": 46.7,
        "GPQA": 55.1,
    },
    "t2_sft_small": {
        "table": 2,
        "label": "w/ SFT, distill 1.1k",
        "MATH-OAI": 86.0,
        "AIME": 33.3,
        "GPQA": 48.0,
    },
    "t2_explore_1": {
        "table": 2,
        "label": "w/ SFT, distill 1.1k + explore 0.7k",
        "MATH-OAI": 87.1,
        "AIME": 40.0,
        "GPQA": 49.0,
    },
    "t2_explore_2": {
        "table": 2,
        "label": "w/ SFT, distill 1.1k + explore 1.6k",
        "MATH-OAI": 87.4,
        "AIME": 46.7,
        "GPQA": 53.0,
    },
    "t2_explore_3": {
        "table": 2,
        "label": "w/ SFT, distill 1.1k + explore 1.8k",
        "MATH-OAI": 89.8,
        "AIME": 40.0,
        "GPQA": 56.1,
    },
    "t2_dpo_small": {
        "table": 2,
        "label": "w/ SFT & DPO, distill 1.1k + pairs 0.3k",
        "MATH-OAI": 87.2,
        "AIME": 30.0,
        "GPQA": 49.5,
    },
    "t2_dpo_large": {
        "table": 2,
        "label": "w/ SFT & DPO, distill 1.1k + pairs 1.0k",
        "MATH-OAI": 85.4,
        "AIME": 46.7,
        "GPQA": 51.0,
    },
    "t4_full": {
        "table": 4,
        "label": "Thought + Solution, no SFT loss",
        "MATH-OAI": 86.2,
        "AIME": 33.3,
        "GPQA": 52.5,
    },
    "t4_full_sft": {
        "table": 4,
        "label": "Thought + Solution, SFT loss",
        "MATH-OAI": 87.2,
        "AIME": 26.7,
        "GPQA": 43.9,
    },
    "t4_thought": {
        "table": 4,
        "label": "Thought, no SFT loss",
        "MATH-OAI": 85.4,
        "AIME": 46.7,
        "GPQA": 51.0,
    },
    "t4_thought_sft": {
        "table": 4,
        "label": "Thought, SFT loss",
        "MATH-OAI": 87.6,
        "AIME": 33.3,
        "GPQA": 50.5,
    },
    "t3_no_hard": {
        "table": 3,
        "label": "w/o hard problems",
        "thought": 2866,
        "MATH-OAI": 86.0,
        "AIME": 33.3,
        "GPQA": 51.0,
    },
    "t3_no_other": {
        "table": 3,
        "label": "w/o other domains",
        "thought": 3389,
        "MATH-OAI": 87.4,
        "AIME": 46.7,
        "GPQA": 53.0,
    },
    "t3_mixed": {
        "table": 3,
        "label": "mixed",
        "thought": 3162,
        "MATH-OAI": 89.8,
        "AIME": 40.0,
        "GPQA": 56.1,
    },
}


def gain(acc: float, backbone: float) -> float | None:
    """Relative gain over the backbone, the paper's way: (acc - backbone) / backbone * 100."""
    return None if not backbone else (acc - backbone) / backbone * 100.0


def load_summaries(rdir: Path, variants: list[Any]) -> tuple[dict[str, dict], list[str]]:
    """Read each variant's eval summary; return (found, names of the missing ones)."""
    found, missing = {}, []
    for v in variants:
        path = locate(rdir, "evaluate", "summary", variant=v.name)
        if path.exists():
            found[v.name] = read_json(path)
        else:
            missing.append(v.name)
    return found, missing


def kind_columns(profile: Profile) -> dict[str, str]:
    """Map the profile's benchmark names to the paper's columns through their kind."""
    return {name: COLUMNS[b.kind] for name, b in profile.benchmarks.items()}


def build_table(
    table: int,
    profile: Profile,
    summaries: dict[str, dict],
    thought_words: dict[str, float] | None = None,
    data_sizes: dict[str, dict[str, int]] | None = None,
) -> Any:
    """One of the paper's tables: our accuracy [95% CI], the paper's, and gains over backbone.

    Table 2 also gives each variant's data (distilled demonstrations, and explored trajectories
    or DPO pairs) as `data_sizes` provides them; Table 3 the mixtures' thought lengths.
    """
    import pandas as pd

    cols = kind_columns(profile)
    base_name = next((v.name for v in profile.variants if "t2_backbone" in v.paper_rows), None)
    base = summaries.get(base_name) if base_name else None
    rows = []
    for v in profile.variants:
        for row_id in v.paper_rows:
            paper = PAPER_ROWS[row_id]
            if paper["table"] != table:
                continue
            row: dict[str, Any] = {"setting": paper["label"], "variant": v.name}
            s = summaries.get(v.name)
            if table == 2:
                sizes = (data_sizes or {}).get(v.name, {})
                row["distill"] = str(sizes["distill"]) if "distill" in sizes else "-"
                row["explore"] = str(sizes["explore"]) if "explore" in sizes else "-"
            if table == 3:
                row["thought words (ours)"] = (thought_words or {}).get(v.name)
                row["thought tokens (paper)"] = paper["thought"]
            ours_all = []
            for bench, col in cols.items():
                paper_acc = paper[col]
                if s is None or bench not in s["benchmarks"]:
                    row[f"{col} ours"] = None
                else:
                    b = s["benchmarks"][bench]
                    lo, hi = bootstrap_ci(b["correct"])
                    row[f"{col} ours"] = f"{b['accuracy']:.1f} [{lo:.0f}, {hi:.0f}]"
                    ours_all.append(b["accuracy"])
                    if table == 2 and base and bench in base["benchmarks"]:
                        g = gain(b["accuracy"], base["benchmarks"][bench]["accuracy"])
                        row[f"{col} gain ours"] = None if g is None else round(g, 1)
                        pg = (
                            None
                            if paper_acc is None
                            else gain(paper_acc, PAPER_ROWS["t2_backbone"][col])
                        )
                        row[f"{col} gain paper"] = round(pg, 1) if pg is not None else None
                row[f"{col} paper"] = paper_acc
            if table in (3, 4):
                row["Avg. ours"] = round(sum(ours_all) / len(ours_all), 1) if ours_all else None
                row["Avg. paper"] = round(sum(paper[c] for c in cols.values()) / len(cols), 1)
            rows.append(row)
    return pd.DataFrame(rows)


def markdown(df: Any) -> str:
    """A table as Markdown, with '-' in the cells that hold nothing (never 'nan' or 'None')."""
    import pandas as pd

    return df.astype(object).where(pd.notna(df), "-").to_markdown(index=False)


def undefined_gains(df: Any) -> list[str]:
    """The benchmarks whose 'gain ours' column is empty: the backbone scored 0% there."""
    return [
        c.removesuffix(" gain ours")
        for c in df.columns
        if c.endswith(" gain ours") and df[c].isna().all()
    ]


def write_table(df: Any, out_dir: Path, name: str) -> None:
    """Write a table as Markdown and CSV."""
    from ..pipeline.artifacts import atomic_write_text

    atomic_write_text(Path(out_dir) / f"{name}.md", markdown(df) + "\n")
    atomic_write_text(Path(out_dir) / f"{name}.csv", df.to_csv(index=False))
