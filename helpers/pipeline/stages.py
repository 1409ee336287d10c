"""The stages of the method as data: one record each, read by the runner, fingerprints and README.

Adding a stage is a record here, a notebook under notebooks/ and a helper module. The runner
expands the records into executions (one per run, or one per variant a stage applies to),
orders them so every execution comes after the ones that write its inputs, and leaves out,
with a reason it prints, any execution whose notebook is not built or whose inputs nothing
writes. Each record names the profile sections its result depends on: the runner fingerprints
exactly those, and a notebook run by the runner that reads another section stops with an error
(see `config.guard_sections`), so the table cannot drift from the code.

    python -m helpers.pipeline.stages            # print the stage table
    python -m helpers.pipeline.stages --readme   # rewrite the README's copy of it
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .paths import repo_root

# Sections every stage may read: what the run is called, and the variant list itself (each
# execution's own variant record is part of its fingerprint).
ALWAYS_READABLE = ("run", "variants", "stages")


@dataclass(frozen=True)
class Stage:
    """One stage of the method: its notebook, what it runs for, reads, writes and depends on."""

    name: str
    notebook: str
    doc: str  # one line for the stage table
    sections: tuple[str, ...] | None  # profile sections it reads; None: the whole profile
    per_variant: Callable[[Any], bool] | None = None  # None: one execution per run
    runs_doc: str = "once"
    reads: Callable[[Any, Any], list[str]] = lambda profile, v: []
    writes: Callable[[Any, Any], list[str]] = lambda profile, v: []
    reads_doc: str = ""
    writes_doc: str = ""
    # The artifact (JSON) whose "tokens" field counts what the execution spent, if any.
    tokens_at: Callable[[Any, Any], str] | None = None


def _model(profile: Any, name: str) -> list[str]:
    kind = next(v.kind for v in profile.variants if v.name == name)
    return [] if kind == "backbone" else [f"models/{name}"]


def explorer(profile: Any, v: Any) -> str:
    """The model that explores for variant v: the previous iteration's, or the first-round one."""
    if v.explore_iteration == 1:
        return profile.explore.start
    return next(
        u.name
        for u in profile.variants
        if u.kind == "sft" and u.explore_iteration == v.explore_iteration - 1
    )


def _explored(profile: Any, upto: int | None = None) -> list[str]:
    its = sorted(
        {u.explore_iteration for u in profile.variants if u.explore_iteration > 0}
        if profile.explore
        else set()
    )
    return [f"explore/iter{i}/pool.jsonl" for i in its if upto is None or i <= upto]


STAGES: tuple[Stage, ...] = (
    Stage(
        "collect",
        "01_collect.ipynb",
        "problem pools and teacher rollouts, each auto-labelled by the grader",
        ("seed", "pools", "teachers", "benchmarks"),
        writes=lambda p, v: ["collect/problems.jsonl", "collect/responses.jsonl"],
        reads_doc="pools, teachers",
        writes_doc="`collect/responses.jsonl`",
    ),
    Stage(
        "unify",
        "02_unify_format.ipynb",
        "one thought/solution format; QwQ-style thoughts completed; cleaning rules",
        ("seed", "backbone", "prompt_file", "generation", "benchmarks", "unify", "sft"),
        reads=lambda p, v: ["collect/responses.jsonl"],
        writes=lambda p, v: ["unify/demos.jsonl", "unify/filter_report.json"],
        reads_doc="responses",
        writes_doc="`unify/demos.jsonl`, `unify/filter_report.json`",
        tokens_at=lambda p, v: "unify/filter_report.json",
    ),
    Stage(
        "mix",
        "03_mix_data.ipynb",
        "every mixture the profile names, by domain group and difficulty",
        ("seed", "mixtures"),
        reads=lambda p, v: ["unify/demos.jsonl"],
        writes=lambda p, v: [f"mix/{m}.jsonl" for m in p.mixtures] + ["mix/stats.json"],
        reads_doc="demos",
        writes_doc="`mix/<mixture>.jsonl`, `mix/stats.json`",
    ),
    Stage(
        "sft",
        "04_sft.ipynb",
        "fine-tune the backbone on a mixture (plus the explored data of an iteration)",
        ("seed", "backbone", "prompt_file", "sft"),
        per_variant=lambda v: v.kind == "sft",
        runs_doc="per SFT variant",
        reads=lambda p, v: (
            [f"mix/{v.mixture}.jsonl"]
            + ([f"explore/iter{v.explore_iteration}/selected.jsonl"] if v.explore_iteration else [])
        ),
        writes=lambda p, v: [f"models/{v.name}"],
        reads_doc="a mixture (+ explored data)",
        writes_doc="`models/<variant>/`",
        tokens_at=lambda p, v: f"models/{v.name}/train_summary.json",
    ),
    Stage(
        "explore",
        "05_explore.ipynb",
        "rollouts on hard problems until solved; the global pool; selection",
        ("seed", "backbone", "prompt_file", "generation", "benchmarks", "explore"),
        per_variant=lambda v: v.kind == "sft" and v.explore_iteration > 0,
        runs_doc="per explore iteration",
        reads=lambda p, v: (
            [
                *_model(p, explorer(p, v)),
                "collect/problems.jsonl",
                *_explored(p, v.explore_iteration - 1),
            ]
        ),
        writes=lambda p, v: [
            f"explore/iter{v.explore_iteration}/pool.jsonl",
            f"explore/iter{v.explore_iteration}/selected.jsonl",
            f"explore/iter{v.explore_iteration}/summary.json",
        ],
        reads_doc="the previous iteration's model, the pool so far",
        writes_doc="`explore/iter<i>/pool.jsonl`, `selected.jsonl`, `summary.json`",
        tokens_at=lambda p, v: f"explore/iter{v.explore_iteration}/summary.json",
    ),
    Stage(
        "dpo",
        "06_dpo.ipynb",
        "pairs from the pool; DPO from the first-round model, optionally thought only",
        ("seed", "backbone", "prompt_file", "generation", "benchmarks", "explore", "dpo"),
        per_variant=lambda v: v.kind == "dpo",
        runs_doc="per DPO variant",
        reads=lambda p, v: [*_model(p, v.init), "collect/problems.jsonl", *_explored(p)],
        writes=lambda p, v: [f"models/{v.name}"],
        reads_doc="the pool, the first-round model",
        writes_doc="`models/<variant>/`",
        tokens_at=lambda p, v: f"models/{v.name}/train_summary.json",
    ),
    Stage(
        "evaluate",
        "07_evaluate.ipynb",
        "greedy evaluation on the three benchmarks",
        ("seed", "backbone", "prompt_file", "generation", "benchmarks"),
        per_variant=lambda v: True,
        runs_doc="per variant",
        reads=lambda p, v: _model(p, v.name),
        writes=lambda p, v: [f"eval/{v.name}/summary.json"],
        reads_doc="a model, the benchmarks",
        writes_doc="`eval/<variant>/<benchmark>.jsonl`, `summary.json`",
        tokens_at=lambda p, v: f"eval/{v.name}/summary.json",
    ),
    Stage(
        "analyse",
        "08_analyse_tables.ipynb",
        "the paper's tables beside ours, paired tests, plots, REPORT.md",
        None,
        reads=lambda p, v: [f"eval/{u.name}/summary.json" for u in p.variants],
        writes=lambda p, v: ["REPORT.md"],
        reads_doc="every evaluation, the pool, the mixtures",
        writes_doc="`tables/`, `figures/`, `REPORT.md`",
    ),
)
BY_NAME = {s.name: s for s in STAGES}
NAMES = tuple(s.name for s in STAGES)


def stage(name: str) -> Stage:
    """The record of a stage, naming the choices when there is none."""
    if name not in BY_NAME:
        raise KeyError(f"no stage '{name}': expected one of {list(NAMES)}")
    return BY_NAME[name]


def markdown_table() -> str:
    """The stage table as Markdown (the README carries a generated copy)."""
    lines = [
        "| stage | notebook | runs | reads | writes | depends on (profile) |",
        "|---|---|---|---|---|---|",
    ]
    for s in STAGES:
        deps = ", ".join(s.sections) if s.sections is not None else "everything"
        lines.append(
            f"| {s.name} | `{s.notebook}` | {s.runs_doc} | {s.reads_doc or '-'} | "
            f"{s.writes_doc} | {deps} |"
        )
    return "\n".join(lines)


README_BEGIN = "<!-- stage table: generated by `python -m helpers.pipeline.stages --readme` -->"
README_END = "<!-- end of the stage table -->"


def write_readme(path: Path) -> None:
    """Replace the README's copy of the stage table (between its markers) with the table."""
    text = path.read_text()
    if README_BEGIN not in text or README_END not in text:
        raise ValueError(f"{path}: no stage-table markers ({README_BEGIN} ... {README_END})")
    head, rest = text.split(README_BEGIN, 1)
    _, tail = rest.split(README_END, 1)
    path.write_text(f"{head}{README_BEGIN}\n{markdown_table()}\n{README_END}{tail}")


if __name__ == "__main__":
    if sys.argv[1:] == ["--readme"]:
        write_readme(repo_root() / "README.md")
    else:
        sys.stdout.write(markdown_table() + "\n")
