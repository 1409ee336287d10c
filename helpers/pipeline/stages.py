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

import re
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from .paths import repo_root

if TYPE_CHECKING:  # schema imports this module: the type only
    from .schema import Profile

# Sections every stage may read: what the run is called, and the variant list itself (each
# execution's own variant record is part of its fingerprint).
ALWAYS_READABLE = ("run", "variants", "stages")


@dataclass(frozen=True)
class Read:
    """An input of a stage: one output of a stage before it, for the fields `fields` gives.

    `fields(profile, v)` lists one dict of template fields per path read (none: nothing read).
    """

    stage: str
    output: str
    fields: Callable[[Any, Any], list[dict[str, Any]]] = lambda profile, v: [{}]


@dataclass(frozen=True)
class Stage:
    """One stage of the method: its notebook, what it runs for, reads, writes and depends on.

    `writes` names each output and gives its path in the run folder as a template; `fields`
    fills the templates for one execution (a list value gives one path per item). The runner,
    the helpers that locate artifacts, the report and the README all read these.
    """

    name: str
    notebook: str
    doc: str  # one line for the stage table
    sections: tuple[str, ...] | None  # profile sections it reads; None: the whole profile
    writes: dict[str, str]
    reads: tuple[Read, ...] = ()
    fields: Callable[[Any, Any], dict[str, Any]] = lambda profile, v: {}
    per_variant: Callable[[Any], bool] | None = None  # None: one execution per run
    runs_doc: str = "once"
    reads_doc: str = ""  # what its reads are, in words (the table also lists their paths)
    # The JSON (a path template) whose "tokens" field counts what an execution spent, if any.
    tokens_at: str | None = None
    # Whether a profile has the stage at all (a warm-up only when it has a warmup section).
    applies: Callable[[Any], bool] = lambda profile: True

    def tokens_file(self, profile: Profile, v: Any) -> str | None:
        """The path of the JSON that counts an execution's tokens, if the stage has one."""
        if self.tokens_at is None:
            return None
        fields = {k: x for k, x in self.fields(profile, v).items() if not isinstance(x, list)}
        return self.tokens_at.format(**fields)

    def outputs(self, profile: Profile, v: Any) -> list[str]:
        """Every path an execution of this stage writes, relative to the run folder."""
        fields = self.fields(profile, v)
        return [p for t in self.writes.values() for p in expand(t, fields)]

    def inputs(self, profile: Profile, v: Any) -> list[str]:
        """Every path an execution of this stage reads, relative to the run folder."""
        return [path(r.stage, r.output, **f) for r in self.reads for f in r.fields(profile, v)]


def expand(template: str, fields: dict[str, Any]) -> list[str]:
    """A path template filled in; a field holding a list gives one path per item."""
    names = [n for n in re.findall(r"{(\w+)}", template)]
    listed = [n for n in names if isinstance(fields.get(n), list | tuple)]
    if not listed:
        return [template.format(**fields).rstrip("/")]
    first, rest = listed[0], {k: v for k, v in fields.items() if k != listed[0]}
    return [p for item in fields[first] for p in expand(template, {**rest, first: item})]


def path(stage_name: str, output: str, **fields: Any) -> str:
    """The path of one output of a stage, relative to the run folder."""
    (p,) = expand(stage(stage_name).writes[output], fields)
    return p


def pattern(stage_name: str, output: str, **fields: str) -> str:
    """An output's path template as a glob relative to the run folder: every field not given
    matches anything."""
    template = stage(stage_name).writes[output]
    names = [n for n in ("variant", "i", "benchmark", "mixture") if "{" + n + "}" in template]
    return path(stage_name, output, **{n: fields.get(n, "*") for n in names})


def file_name(stage_name: str, output: str, **fields: Any) -> str:
    """The file name (last part) of one output of a stage."""
    return Path(pattern(stage_name, output, **fields)).name


# Every trained model's folder holds its training log and summary beside the checkpoint.
TRAIN_LOG = "train_log.jsonl"
TRAIN_SUMMARY = "train_summary.json"


def locate(rdir: Path, stage_name: str, output: str, **fields: Any) -> Path:
    """Where one output of a stage lies in a run folder."""
    return Path(rdir) / path(stage_name, output, **fields)


def _model_of(profile: Profile, name: str) -> list[dict[str, Any]]:
    kind = next(v.kind for v in profile.variants if v.name == name)
    return [] if kind in ("raw", "backbone") else [{"variant": name, "kind": kind}]


# The warmed-up backbone, for the stages that start from it, when the profile warms up.
_WARMED = Read("warmup", "model", lambda p, v: [{}] if p.warmup is not None else [])


def _models(kind: str, of: Callable[[Any, Any], str]) -> Read:
    """The trained model of the variant `of(profile, v)` names, when it is one of `kind`."""
    return Read(
        kind,
        "model",
        lambda p, v: [f for f in _model_of(p, of(p, v)) if f["kind"] == kind],
    )


def explorer(profile: Profile, v: Any) -> str:
    """The model that explores for variant v: the previous iteration's, or the first-round one."""
    if v.explore_iteration == 1:
        return profile.explore.start
    return next(
        u.name
        for u in profile.variants
        if u.kind == "sft" and u.explore_iteration == v.explore_iteration - 1 and not u.replicate_of
    )


def explore_iterations(profile: Profile, below: int | None = None) -> list[int]:
    """The exploration iterations of a profile (those below `below`, when given)."""
    its = {u.explore_iteration for u in profile.variants if u.explore_iteration > 0}
    return sorted(i for i in its if profile.explore and (below is None or i < below))


_BENCHMARKS = Read("collect", "benchmark", lambda p, v: [{"benchmark": b} for b in p.benchmarks])
_PROBLEMS = Read("collect", "problems")

STAGES: tuple[Stage, ...] = (
    # The backbone made a fast thinker of this world first (the paper's backbone already is).
    Stage(
        "warmup",
        "00_warm_up.ipynb",
        "the backbone fine-tuned on answer-only atomic steps and normal problems",
        ("seed", "backbone", "prompt_file", "benchmarks", "warmup"),
        writes={"model": "models/warmup/"},
        reads=(
            Read("collect", "benchmark", lambda p, v: [{"benchmark": b} for b in p.benchmarks]),
        ),
        reads_doc="the benchmarks (decontamination)",
        tokens_at=f"models/warmup/{TRAIN_SUMMARY}",
        applies=lambda p: p.warmup is not None,
    ),
    # Imitate (the paper's 2.2): distilled long-form thought, cleaned and mixed.
    Stage(
        "collect",
        "01_collect.ipynb",
        "problem pools and teacher rollouts, each auto-labelled by the grader",
        ("seed", "pools", "teachers", "benchmarks"),
        writes={
            "benchmark": "benchmarks/{benchmark}.jsonl",
            "problems": "collect/problems.jsonl",
            "responses": "collect/responses.jsonl",
            "summary": "collect/summary.csv",
        },
        fields=lambda p, v: {"benchmark": list(p.benchmarks)},
        reads_doc="pools, teachers",
    ),
    Stage(
        "unify",
        "02_unify_format.ipynb",
        "one thought/solution format; QwQ-style thoughts completed; cleaning rules",
        ("seed", "backbone", "prompt_file", "generation", "benchmarks", "unify", "sft", "warmup"),
        writes={
            "demos": "unify/demos.jsonl",
            "report": "unify/filter_report.json",
            "completer": "unify/completer/",
        },
        reads=(Read("collect", "responses"), _BENCHMARKS, _WARMED),
        reads_doc="responses",
        tokens_at="unify/filter_report.json",
    ),
    Stage(
        "mix",
        "03_mix_data.ipynb",
        "every mixture the profile names, by domain group and difficulty",
        ("seed", "mixtures"),
        writes={
            "mixture": "mix/{mixture}.jsonl",
            "stats": "mix/stats.json",
            "lengths": "mix/thought_lengths.png",
        },
        reads=(Read("unify", "demos"),),
        fields=lambda p, v: {"mixture": list(p.mixtures)},
        reads_doc="demos",
    ),
    # Imitate, then self-improve by SFT (2.2.3, 2.4): every variant trains from the backbone.
    Stage(
        "sft",
        "04_sft.ipynb",
        "fine-tune the backbone on a mixture (plus the explored data of an iteration)",
        ("seed", "backbone", "prompt_file", "sft", "warmup"),
        writes={"model": "models/{variant}/"},
        reads=(
            _WARMED,
            Read("mix", "mixture", lambda p, v: [{"mixture": v.mixture}]),
            Read(
                "explore",
                "selected",
                lambda p, v: [{"i": v.explore_iteration}] if v.explore_iteration else [],
            ),
        ),
        fields=lambda p, v: {"variant": v.name},
        per_variant=lambda v: v.kind == "sft",
        runs_doc="per SFT variant",
        reads_doc="a mixture (+ explored data)",
        tokens_at="models/{variant}/" + TRAIN_SUMMARY,
    ),
    # Explore (2.3): rollouts until one is right, one global pool, selection by perplexity.
    Stage(
        "explore",
        "05_explore.ipynb",
        "rollouts on hard problems until solved; the global pool; selection",
        ("seed", "backbone", "prompt_file", "generation", "benchmarks", "unify", "explore"),
        writes={
            "problems": "explore/problems.jsonl",
            "pool": "explore/iter{i}/pool.jsonl",
            "selected": "explore/iter{i}/selected.jsonl",
            "summary": "explore/iter{i}/summary.json",
            "curve": "explore/iter{i}/pass_at_k.png",
        },
        reads=(
            _models("sft", explorer),
            _PROBLEMS,
            _BENCHMARKS,
            Read(
                "explore",
                "pool",
                lambda p, v: [{"i": j} for j in explore_iterations(p, below=v.explore_iteration)],
            ),
        ),
        fields=lambda p, v: {"i": v.explore_iteration},
        per_variant=lambda v: v.kind == "sft" and v.explore_iteration > 0 and not v.replicate_of,
        runs_doc="per explore iteration",
        reads_doc="the previous iteration's model, the pool so far",
        tokens_at="explore/iter{i}/summary.json",
    ),
    # Self-improve by DPO (2.4): pairs from the pool, from the first-round model.
    Stage(
        "dpo",
        "06_dpo.ipynb",
        "pairs from the pool; DPO from the first-round model, optionally thought only",
        ("seed", "backbone", "prompt_file", "generation", "benchmarks", "explore", "dpo"),
        writes={"pairs": "dpo/pairs.jsonl", "model": "models/{variant}/"},
        reads=(
            _models("sft", lambda p, v: v.init),
            _PROBLEMS,
            _BENCHMARKS,
            Read("explore", "pool", lambda p, v: [{"i": j} for j in explore_iterations(p)]),
        ),
        fields=lambda p, v: {"variant": v.name},
        per_variant=lambda v: v.kind == "dpo",
        runs_doc="per DPO variant",
        reads_doc="the pool, the first-round model",
        tokens_at="models/{variant}/" + TRAIN_SUMMARY,
    ),
    # Evaluate and analyse (3): greedy on the three benchmarks, the tables beside the paper's.
    Stage(
        "evaluate",
        "07_evaluate.ipynb",
        "greedy evaluation on the three benchmarks",
        ("seed", "backbone", "prompt_file", "generation", "benchmarks", "warmup"),
        writes={
            "responses": "eval/{variant}/{benchmark}.jsonl",
            "summary": "eval/{variant}/summary.json",
        },
        reads=(
            Read("warmup", "model", lambda p, v: [{}] if v.kind == "backbone" and p.warmup else []),
            _models("sft", lambda p, v: v.name),
            _models("dpo", lambda p, v: v.name),
            _BENCHMARKS,
        ),
        fields=lambda p, v: {"variant": v.name, "benchmark": list(p.benchmarks)},
        per_variant=lambda v: True,
        runs_doc="per variant",
        reads_doc="a model, the benchmarks",
        tokens_at="eval/{variant}/summary.json",
    ),
    Stage(
        "analyse",
        "08_analyse_tables.ipynb",
        "the paper's tables beside ours, paired tests, plots, REPORT.md",
        None,
        writes={"report": "REPORT.md", "tables": "tables/", "figures": "figures/"},
        reads=(
            Read("evaluate", "summary", lambda p, v: [{"variant": u.name} for u in p.variants]),
            Read("unify", "report"),
            Read("mix", "stats"),
            Read("explore", "summary", lambda p, v: [{"i": j} for j in explore_iterations(p)]),
        ),
        reads_doc="every evaluation, the data, the explorations",
    ),
)
BY_NAME = {s.name: s for s in STAGES}
NAMES = tuple(s.name for s in STAGES)


def stage(name: str) -> Stage:
    """The record of a stage, naming the choices when there is none."""
    if name not in BY_NAME:
        raise KeyError(f"no stage '{name}': expected one of {list(NAMES)}")
    return BY_NAME[name]


def _shown(template: str) -> str:
    """A path template as the README shows it: `explore/iter<i>/pool.jsonl`."""
    return "`" + re.sub(r"{(\w+)}", r"<\1>", template) + "`"


def markdown_table() -> str:
    """The stage table as Markdown (the README carries a generated copy)."""
    lines = [
        "| stage | notebook | runs | reads | writes | depends on (profile) |",
        "|---|---|---|---|---|---|",
    ]
    for s in STAGES:
        deps = ", ".join(s.sections) if s.sections is not None else "everything"
        reads = sorted({_shown(stage(r.stage).writes[r.output]) for r in s.reads})
        read_doc = f"{s.reads_doc}: {', '.join(reads)}" if reads else s.reads_doc or "-"
        writes = ", ".join(_shown(t) for t in s.writes.values())
        lines.append(
            f"| {s.name} | `{s.notebook}` | {s.runs_doc} | {read_doc} | {writes} | {deps} |"
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
