"""Stages as data: the plan, fingerprints and README all come from helpers/pipeline/stages.py."""

from __future__ import annotations

from pathlib import Path

import pytest

from helpers.pipeline.config import load_profile
from helpers.pipeline.plan import build_plan, execution_fingerprint, stage_config
from helpers.pipeline.schema import ProfileError, guard_sections
from helpers.pipeline.stages import STAGES, markdown_table

from .test_config import GOOD

REPO = Path(__file__).resolve().parent.parent

# The plans of the imitate half (and the warm-up, where the profile has one).
IMITATE = {
    "smoke": [
        "collect",
        "warmup",
        "unify",
        "mix",
        "sft:sft_small",
        "evaluate:raw",
        "evaluate:backbone",
        "evaluate:sft_small",
        "analyse",
    ],
    "tiny": [
        "collect",
        "warmup",
        "unify",
        "mix",
        "sft:sft_small",
        "sft:sft_large",
        "sft:sft_no_hard",
        "sft:sft_mixed",
        "sft:sft_small_s1",
        "evaluate:raw",
        "evaluate:backbone",
        "evaluate:sft_small",
        "evaluate:sft_large",
        "evaluate:sft_no_hard",
        "evaluate:sft_mixed",
        "analyse",
    ],
    "paper": [
        "collect",
        "unify",
        "mix",
        "sft:sft_small",
        "sft:sft_large",
        "sft:sft_no_hard",
        "sft:sft_mixed",
        "evaluate:backbone",
        "evaluate:sft_small",
        "evaluate:sft_large",
        "evaluate:sft_no_hard",
        "evaluate:sft_mixed",
        "analyse",
    ],
}
IMITATE["gpu"] = IMITATE["paper"]
EXPLORE_DPO = {
    "smoke": ["explore:sft_explore_1", "sft:sft_explore_1", "dpo:dpo_thought"],
    "paper": [
        "explore:sft_explore_1",
        "sft:sft_explore_1",
        "explore:sft_explore_2",
        "sft:sft_explore_2",
        "explore:sft_explore_3",
        "sft:sft_explore_3",
        "dpo:dpo_small",
        "dpo:dpo_thought",
        "dpo:dpo_thought_sft",
        "dpo:dpo_full",
        "dpo:dpo_full_sft",
    ],
}
EXPLORE_DPO["gpu"] = EXPLORE_DPO["paper"]
# tiny: the seed replicates train as soon as their data is there
EXPLORE_DPO["tiny"] = [*EXPLORE_DPO["paper"][:2], "sft:sft_explore_1_s1", *EXPLORE_DPO["paper"][2:]]
REPLICATES = {"tiny": ["evaluate:sft_small_s1", "evaluate:sft_explore_1_s1"]}


def _golden(name: str) -> list[str]:
    """Training first (imitate, then explore and DPO), then every evaluation, then analyse."""
    imitate = IMITATE[name]
    first_eval = next(k for k in imitate if k.startswith("evaluate"))
    trained = [k for k in EXPLORE_DPO[name] if not k.startswith("explore")]
    evals = [k for k in imitate if k.startswith("evaluate")]
    evals += [f"evaluate:{k.split(':')[1]}" for k in trained if not k.endswith("_s1")]
    order = [k for k in evals if not k.startswith("evaluate:dpo")] + REPLICATES.get(name, [])
    order += [k for k in evals if k.startswith("evaluate:dpo")]
    return imitate[: imitate.index(first_eval)] + EXPLORE_DPO[name] + order + ["analyse"]


GOLDEN = {name: _golden(name) for name in IMITATE}


@pytest.mark.parametrize("name", sorted(GOLDEN))
def test_every_profile_plans_the_whole_method_in_order(name):
    prof = load_profile(f"params/{name}.yaml")
    plan, left_out = build_plan(prof, f"params/{name}.yaml")
    assert left_out == [] and [e.key for e in plan] == GOLDEN[name]


@pytest.mark.parametrize("name", ["tiny", "paper", "gpu"])
def test_the_full_profiles_reproduce_every_row_of_the_papers_tables(name):
    from helpers.analysis.tables import PAPER_ROWS

    prof = load_profile(f"params/{name}.yaml")
    rows = {r for v in prof.variants for r in v.paper_rows}
    assert rows | {"t2_raw"} == set(PAPER_ROWS)  # the raw backbone: this world's own row


def _fingerprints(prof):
    plan, _ = build_plan(prof, "p.yaml")
    return {e.key: execution_fingerprint(e, stage_config(prof, e)) for e in plan}


@pytest.mark.parametrize(
    "section,change",
    [
        ("generation", {"dtype": "bf16"}),
        ("sft", {"learning_rate": 0.123}),
        ("mixtures", None),
        ("unify", {"min_thought_words": 3}),
        ("teachers", None),
        ("prompt_file", None),
    ],
)
def test_a_section_change_reruns_exactly_the_stages_that_read_it(section, change):
    prof = load_profile("params/tiny.yaml")
    before = _fingerprints(prof)
    data = prof.model_dump()
    if section == "mixtures":
        data["mixtures"]["distill_small"]["size"] = 26
    elif section == "teachers":
        data["teachers"][0]["rollouts"] = 3
    elif section == "prompt_file":
        data["prompt_file"] = None
    else:
        data[section].update(change)
    after = _fingerprints(type(prof).model_validate(data))
    changed = {k for k in before if before[k] != after[k]}
    readers = {s.name for s in STAGES if s.sections is None or section in s.sections}
    assert changed == {k for k in before if k.split(":")[0] in readers}


def test_changing_a_variant_reruns_only_its_executions():
    prof = load_profile("params/tiny.yaml")
    before = _fingerprints(prof)
    data = prof.model_dump()
    large = next(v for v in data["variants"] if v["name"] == "sft_large")
    large["paper_rows"] = ["t2_sft_large"]
    after = _fingerprints(type(prof).model_validate(data))
    changed = {k for k in before if before[k] != after[k]}
    assert changed == {"sft:sft_large", "evaluate:sft_large", "analyse"}


EXPLORING = GOOD.replace("variants:", "explore: {start: sft_small}\nvariants:") + (
    "  - {name: sft_explore_1, kind: sft, mixture: small, explore_iteration: 1}\n"
    "  - {name: sft_explore_2, kind: sft, mixture: small, explore_iteration: 2}\n"
)


def test_every_left_out_execution_is_named_with_its_reason(tmp_path):
    path = tmp_path / "p.yaml"
    path.write_text(EXPLORING)
    prof = load_profile(path)
    nbs = tmp_path / "nbs"
    nbs.mkdir()
    for s in STAGES:
        if s.name != "explore":
            (nbs / s.notebook).write_text((REPO / "notebooks" / "01_collect.ipynb").read_text())
    plan, left_out = build_plan(prof, "p.yaml", nbs)
    reasons = dict(left_out)
    assert "05_explore.ipynb is not built yet" in reasons["explore:sft_explore_1"]
    assert "explore/iter1/selected.jsonl" in reasons["sft:sft_explore_1"]
    assert "evaluate:sft_explore_2" in reasons
    assert {e.key for e in plan} | set(reasons) == {
        "collect",
        "unify",
        "mix",
        "sft:sft_small",
        "sft:sft_explore_1",
        "sft:sft_explore_2",
        "explore:sft_explore_1",
        "explore:sft_explore_2",
        "evaluate:backbone",
        "evaluate:sft_small",
        "evaluate:sft_explore_1",
        "evaluate:sft_explore_2",
        "analyse",
    }
    # with every notebook present, iterations chain: explore with M_{i-1}, then train M_i
    (nbs / "05_explore.ipynb").write_text((REPO / "notebooks" / "01_collect.ipynb").read_text())
    plan, left_out = build_plan(prof, "p.yaml", nbs)
    keys = [e.key for e in plan]
    assert left_out == []
    assert keys.index("sft:sft_small") < keys.index("explore:sft_explore_1")
    assert keys.index("explore:sft_explore_1") < keys.index("sft:sft_explore_1")
    assert keys.index("sft:sft_explore_1") < keys.index("explore:sft_explore_2")
    assert keys.index("explore:sft_explore_2") < keys.index("sft:sft_explore_2")
    ex = plan[keys.index("explore:sft_explore_2")]
    assert "models/sft_explore_1" in ex.inputs and "explore/iter1/pool.jsonl" in ex.inputs


def test_the_guard_refuses_a_section_the_record_does_not_list():
    prof = guard_sections(load_profile("params/smoke.yaml"), ("run", "variants", "seed"))
    assert prof.seed == 0 and prof.run == "smoke"
    with pytest.raises(
        ProfileError, match=r"read the profile section 'sft'.*helpers/pipeline/stages\.py"
    ):
        _ = prof.sft
    assert prof.model_dump()["sft"]["method"] == "lora"  # dumping is not reading a section


def test_a_notebook_run_by_the_runner_may_read_only_its_sections(monkeypatch):
    monkeypatch.setenv("STILL_STAGE_SECTIONS", "run,variants,seed,mixtures")
    prof = load_profile("params/smoke.yaml")
    assert prof.mixtures
    with pytest.raises(ProfileError, match="'generation'"):
        _ = prof.generation


def test_the_readme_carries_the_generated_stage_table():
    readme = (REPO / "README.md").read_text()
    assert markdown_table() in readme, "run: python -m helpers.pipeline.stages --readme"


def test_a_benchmark_built_from_other_settings_is_rebuilt(tmp_outputs):
    from helpers.world.tasks import load_benchmarks

    prof = load_profile("params/smoke.yaml")
    rdir = tmp_outputs / "smoke"
    first = load_benchmarks(prof, rdir)["normal"]
    assert {r["group"] for r in first} == {"normal_math"}
    data = prof.model_dump()
    data["benchmarks"]["normal"]["kind"] = "other"  # same size: the old file used to be kept
    other = load_benchmarks(type(prof).model_validate(data), rdir)["normal"]
    assert {r["group"] for r in other} == {"other"} and len(other) == len(first)
    path = rdir / "benchmarks" / "normal.jsonl"
    path.write_text(path.read_text().replace("other", "otter", 1))  # edited behind its back
    again = load_benchmarks(type(prof).model_validate(data), rdir)["normal"]
    assert again == other


def test_a_dry_run_says_what_each_stage_may_spend(tmp_outputs, capsys):
    from helpers.pipeline.execute import main

    assert main(["params/gpu.yaml", "--dry-run"]) == 0
    out = capsys.readouterr().out
    assert "explore:sft_explore_1        run (never ran)  [<= 9.8M generated]" in out
    assert "sft:sft_small                run (never ran)  [<= 18.0M trained]" in out
    assert "the plan may spend at most 107.0M tokens generated and 292.6M trained" in out
