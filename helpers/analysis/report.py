"""REPORT.md: the reproduced tables, figures and what they say, readable without a notebook.

python -m helpers.analysis.report PROFILE [DEST]   # publish a finished run (make publish)
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

from ..pipeline.artifacts import atomic_write_text
from ..pipeline.schema import Profile
from ..pipeline.stages import TRAIN_SUMMARY, file_name, locate, pattern
from .claims import MARGIN, claim_verdicts
from .effects import ALPHA, effects
from .rundata import data_summary, explore_table, machines_used, stage_timings
from .tables import COLUMNS, markdown, undefined_gains, write_table

# The analysis notebook's figures: the file each is drawn into, and its caption in REPORT.md.
FIGURES = {
    "accuracy": ("accuracy.png", "accuracy"),
    "length": ("accuracy_vs_thought_length.png", "accuracy vs thought length"),
    "pass_at_k": ("pass_at_k_by_iteration.png", "pass@k by explore iteration"),
    "iterations": ("accuracy_by_iteration.png", "accuracy by explore iteration"),
    "dpo_margins": ("dpo_margins.png", "DPO reward margins"),
    "dpo_variants": ("dpo_variants.png", "Table 4: the four DPO variants"),
    "mixture_lengths": ("thought_length_by_group.png", "Table 3: thought length by group"),
}


def figure(rdir: Path, key: str) -> Path:
    """Where the analysis draws one of its figures (FIGURES)."""
    return locate(rdir, "analyse", "figures") / FIGURES[key][0]


def _header(profile: Profile, summaries: dict[str, dict], missing: list[str]) -> list[str]:
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
    return lines


def _per_variant(summaries: dict[str, dict]) -> list[str]:
    lines = [
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
    return lines


def _tables(tabs: dict[str, Any]) -> list[str]:
    lines: list[str] = []
    for name, df in tabs.items():
        if not len(df):
            continue
        lines += ["", f"## {name.replace('table', 'Table ')}", "", markdown(df)]
        empty = undefined_gains(df)
        if empty:
            lines += [
                "",
                f"No gain of ours on {', '.join(empty)}: the backbone scores 0% there, and "
                "a gain relative to 0 (the paper's (acc - backbone) / backbone) is undefined.",
            ]
    return lines


def _section(title: str, intro: str, body: str) -> list[str]:
    """A report section: its heading, a paragraph saying how to read it, and its table."""
    return ["", f"## {title}", "", intro, "", body]


def _effects(profile: Profile, summaries: dict[str, dict]) -> list[str]:
    eff = effects(profile, summaries)
    if not len(eff):
        return []
    intro = (
        "Differences in accuracy points, ours and the paper's, on the same problems: a 95% "
        "paired bootstrap interval of our difference, the problems only the first or only "
        "the second variant solves, and McNemar's exact p-value. One training seed each."
    )
    return _section("Effects: the paper's comparisons on this run", intro, markdown(eff))


def _claims(profile: Profile, summaries: dict[str, dict]) -> list[str]:
    table = claim_verdicts(profile, summaries)
    intro = (
        "Each claim of the paper on one comparison, pooled over the benchmarks it is about: our "
        "difference in accuracy points, its 95% paired bootstrap interval, McNemar's exact p, the "
        "same comparison on the second training seed where both variants have one, and a "
        f"verdict: holds (the paper's direction, p < {ALPHA}; claim 6: not worse than "
        f"-{MARGIN:g} points), fails, or untestable here. FINDINGS.md explains each."
    )
    return _section("Claims: a verdict for each", intro, markdown(table))


def _data_and_exploration(profile: Profile, rdir: Path) -> list[str]:
    lines: list[str] = []
    data = data_summary(rdir)
    if data:
        lines += ["", "## Imitation data", "", *data]
    explored = explore_table(rdir, profile)
    if len(explored):
        intro = (
            "Per iteration: the model that explored, problems solved (a problem stops at its "
            "first correct rollout), pass@1 and pass@k as the share solved within k attempts, "
            "and the tokens spent against drawing every problem's full number of rollouts. "
            "Every iteration explores the same problems, and from the second on its explorer was "
            "trained on earlier iterations' correct trajectories of them: pass@k rising here is "
            "partly recall, so the claims rest on the benchmarks, not on this table."
        )
        lines += _section("Exploration", intro, markdown(explored))
    return lines


def _time(profile: Profile, rdir: Path) -> list[str]:
    timings = stage_timings(rdir, profile)
    if not len(timings):
        return []
    intro = (
        f"Wall time of each finished execution, {timings['minutes'].sum():.0f} minutes in all, "
        "and the tokens it paid for in thousands (prefill: prompt tokens computed, pad: "
        "padding computed, shared: prompt rows copied from an identical prompt instead, "
        "generated: decoded tokens, trained: training tokens):"
    )
    machines = machines_used(timings)
    if machines:
        intro += "\n\nMade on " + ("; and on ".join(machines)) + "."
    return _section("Where the time goes", intro, markdown(timings.drop(columns="machine")))


def _figures(rdir: Path) -> list[str]:
    lines = ["", "## Figures", ""]
    for name, title in FIGURES.values():
        if (locate(rdir, "analyse", "figures") / name).exists():
            lines += [f"![{title}](figures/{name})", ""]
    return lines


def write_report(
    profile: Profile,
    rdir: Path,
    tabs: dict[str, Any],
    summaries: dict[str, dict],
    missing: list[str],
) -> Path:
    """Write tables (md, csv) and REPORT.md for the run; return the report's path."""
    rdir = Path(rdir)
    for name, df in tabs.items():
        write_table(df, locate(rdir, "analyse", "tables"), name)
    lines = [
        *_header(profile, summaries, missing),
        *_per_variant(summaries),
        *_tables(tabs),
        *_claims(profile, summaries),
        *_effects(profile, summaries),
        *_data_and_exploration(profile, rdir),
        *_time(profile, rdir),
        *_figures(rdir),
    ]
    out = locate(rdir, "analyse", "report")
    atomic_write_text(out, "\n".join(lines) + "\n")
    return out


# What a committed reference run keeps (no models, no raw responses): (source glob, where it
# goes; {parent} is the source's folder name, for files that share a name).
PUBLISHED = [
    (pattern("analyse", "report"), file_name("analyse", "report")),
    (pattern("analyse", "tables") + "/*", "tables/"),
    (pattern("analyse", "figures") + "/*", "figures/"),
    (pattern("mix", "lengths"), "figures/"),
    (pattern("evaluate", "summary"), "eval/{parent}.summary.json"),
    ("manifests/*.json", "manifests/"),
    (pattern("collect", "summary"), "data/collect_summary.csv"),
    (pattern("unify", "report"), "data/" + file_name("unify", "report")),
    (pattern("unify", "completer") + "/" + TRAIN_SUMMARY, "data/completer_summary.json"),
    (pattern("mix", "stats"), "data/mixture_stats.json"),
    (pattern("explore", "summary"), "data/explore_{parent}.json"),
    (pattern("dpo", "pairs"), "data/dpo_pairs.jsonl"),
]


def publish(rdir: Path, dest: Path, profile_path: Path) -> list[Path]:
    """Replace dest's published run with a finished run's report, tables, figures and manifests."""
    import shutil

    rdir, dest = Path(rdir), Path(dest)
    if not locate(rdir, "analyse", "report").exists():
        raise FileNotFoundError(f"{rdir}: no REPORT.md; run the analyse stage first")
    # The folders a publish writes hold one run: a previous run's files there would mix in.
    for folder in sorted({t.split("/")[0] for _, t in PUBLISHED if "/" in t}):
        shutil.rmtree(dest / folder, ignore_errors=True)
    written = []
    for glob, target in PUBLISHED:
        for src in sorted(rdir.glob(glob)):
            if src.name.startswith("."):  # the runner's own caches, not results
                continue
            if target.endswith("/"):
                out = dest / target / src.name
            else:
                out = dest / target.format(parent=src.parent.name)
            out.parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(src, out)
            written.append(out)
    shutil.copyfile(profile_path, dest / "profile.yaml")
    return [*written, dest / "profile.yaml"]


def main(argv: list[str]) -> int:
    """Publish the finished run of a profile to outputs/reference (or DEST)."""
    from ..pipeline.config import load_profile, resolve_path
    from ..pipeline.paths import rel, run_dir

    prof_path = resolve_path(argv[0])
    target = resolve_path(argv[1] if len(argv) > 1 else "outputs/reference")
    files = publish(run_dir(load_profile(prof_path).run), target, prof_path)
    print(f"published {len(files)} files to {rel(target)}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
