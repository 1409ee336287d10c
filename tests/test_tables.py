"""Tables and the report on synthetic evaluation summaries and manifests."""

from __future__ import annotations

import json

import pandas as pd
import pytest

from helpers.analysis import effects, report, rundata, stats, tables
from helpers.pipeline import config
from helpers.pipeline.paths import repo_root


def _summary(acc_by_bench: dict[str, list[int]]) -> dict:
    return {
        "benchmarks": {
            b: {
                "accuracy": 100.0 * sum(c) / len(c),
                "correct": c,
                "format_adherence": 100.0,
                "mean_tokens": 50.0,
                "truncation_rate": 0.0,
            }
            for b, c in acc_by_bench.items()
        }
    }


def test_bootstrap_interval_brackets_the_accuracy_and_narrows_with_n():
    lo, hi = stats.bootstrap_ci([1, 0] * 15)
    assert lo < 50.0 < hi
    lo2, hi2 = stats.bootstrap_ci([1, 0] * 150)
    assert hi2 - lo2 < hi - lo
    assert stats.bootstrap_ci([1] * 10) == (100.0, 100.0)


def test_gain_is_relative_to_the_backbone_like_the_paper():
    assert tables.gain(90.2, 80.0) == (90.2 - 80.0) / 80.0 * 100
    assert tables.gain(10.0, 0.0) is None


def test_table2_with_a_missing_variant_and_gains():
    cfg = config.load_profile(repo_root() / "params" / "tiny.yaml")
    summaries = {
        "backbone": _summary({"normal": [1, 0, 0, 0], "hard": [0, 0], "other": [1, 0]}),
        "sft_large": _summary({"normal": [1, 1, 0, 0], "hard": [1, 0], "other": [1, 0]}),
    }
    t2 = tables.build_table(2, cfg, summaries)
    rows = {r["variant"]: r for r in t2.to_dict("records")}
    assert {"backbone", "sft_small", "sft_large"} <= set(rows)
    for name in set(rows) - {"backbone", "sft_large"}:  # missing, not invented
        assert pd.isna(rows[name]["MATH-OAI ours"]), name
    assert rows["sft_large"]["distill"] == "-"  # no data sizes given
    assert rows["sft_large"]["MATH-OAI ours"].startswith("50.0 [")
    assert rows["sft_large"]["MATH-OAI gain ours"] == 100.0
    assert rows["sft_large"]["MATH-OAI paper"] == 90.2
    assert rows["sft_large"]["MATH-OAI gain paper"] == round((90.2 - 80.0) / 80.0 * 100, 1)
    t3 = tables.build_table(3, cfg, summaries, {"sft_large": 80.0})
    large = next(r for r in t3.to_dict("records") if r["variant"] == "sft_large")
    assert large["thought words (ours)"] == 80.0 and large["Avg. ours"] == 50.0


def test_report_lists_missing_variants_data_and_timings(tmp_path):
    cfg = config.load_profile(repo_root() / "params" / "tiny.yaml")
    (tmp_path / "manifests").mkdir()
    for name, stage, secs, start, status in [
        ("collect.json", "collect", 30, "2026-01-01T00:00:00", "done"),
        ("sft__sft_large.json", "sft", 600, "2026-01-01T00:01:00", "done"),
        ("evaluate__backbone.json", "evaluate", 0, "2026-01-01T00:11:00", "running"),
    ]:
        m = {"stage": stage, "seconds": secs, "start": start, "status": status}
        if stage in ("collect", "sft"):
            m["machine"] = {
                "cpu": "Test CPU",
                "cores": 2,
                "cuda": False,
                "kernels": "AVX2" if stage == "sft" else "AMX",
                "dtypes": {"sft": "fp32" if stage == "sft" else "bf16"},
                "bf16_reason": "held" if stage == "sft" else "native",
                "held": {},
            }
        if stage != "collect":
            m["variant"] = name.split("__")[1][:-5]
        (tmp_path / "manifests" / name).write_text(json.dumps(m))
    # the runner's hash cache lives beside the manifests: not an execution
    (tmp_path / "manifests" / ".digests.json").write_text(json.dumps({"x": [1, 2, "ab"]}))
    timings = rundata.stage_timings(tmp_path)
    assert list(timings["stage"]) == ["collect", "sft"]  # a running one is not a timing
    assert list(timings["minutes"]) == [0.5, 10.0]
    summaries = {"backbone": _summary({"normal": [1, 0], "hard": [0], "other": [1]})}
    t2 = tables.build_table(2, cfg, summaries)
    path = report.write_report(cfg, tmp_path, {"table2": t2}, summaries, ["sft_small"])
    text = path.read_text()
    assert "Not evaluated yet: sft_small." in text
    assert "10 minutes in all" in text or "11 minutes in all" in text
    # the machine each finished execution recorded is named, with its executions and minutes
    assert (
        "Made on Test CPU, 2 cores; compute: AMX kernels, sft bf16 (native): 1 execution, 0 minutes;"
        " and on Test CPU, 2 cores; compute: AVX2 kernels, sft fp32 (held): 1 execution, 10 minutes."
    ) in text
    assert (tmp_path / "tables" / "table2.csv").exists()


def test_effects_compare_our_differences_with_the_papers():
    cfg = config.load_profile(repo_root() / "params" / "tiny.yaml")
    summaries = {
        "backbone": _summary({"normal": [1] + [0] * 19, "hard": [0] * 10, "other": [1, 0]}),
        "sft_large": _summary({"normal": [1] * 19 + [0], "hard": [0] * 10, "other": [0, 0]}),
    }
    eff = effects.effects(cfg, summaries)
    # only the comparison whose two variants exist is made
    assert set(eff["claim"]) == {"distilling 3.9k helps"}
    rows = {r["benchmark"]: r for r in eff.to_dict("records")}
    assert rows["MATH-OAI"]["ours"] == 90.0 and rows["MATH-OAI"]["verdict"] == "holds"
    assert rows["MATH-OAI"]["only a / only b"] == "18 / 0" and rows["MATH-OAI"]["McNemar p"] < 0.001
    assert rows["GPQA"]["verdict"] == "not shown (opposite direction)"
    assert rows["GPQA"]["McNemar p"] == 1.0
    # a difference of exactly 0 is no difference, not a sign that disagrees
    assert rows["AIME"]["ours"] == 0.0 and rows["AIME"]["verdict"] == "no difference"


def test_effect_verdicts():
    assert effects.verdict(10.0, 5.0, 0.01) == "holds"
    assert effects.verdict(-10.0, 5.0, 0.01) == "reversed"
    assert effects.verdict(3.0, 5.0, 0.4) == "not shown (paper's direction)"
    assert effects.verdict(0.0, 5.0, 1.0) == "no difference"


def test_report_cells_say_nothing_rather_than_nan(tmp_path):
    import pandas as pd

    df = pd.DataFrame({"a": [1.0, None], "b": ["x", None]})
    text = tables.markdown(df)
    assert "nan" not in text and "None" not in text and "-" in text
    t2 = pd.DataFrame({"MATH-OAI gain ours": [None, None], "AIME gain ours": [1.0, None]})
    assert tables.undefined_gains(t2) == ["MATH-OAI"]


def test_paired_tests_against_hand_computed_values():
    from helpers.analysis.stats import mcnemar, paired_bootstrap

    # 6 problems only a solves, 1 only b: exact two-sided p = 2 * (1 + 7) / 2**7 = 0.125
    a = [1] * 6 + [0] + [1, 0]
    b = [0] * 6 + [1] + [1, 0]
    assert mcnemar(a, b) == (6, 1, 0.125)
    diff, lo, hi = paired_bootstrap(a, b)
    assert round(diff, 4) == round(500 / 9, 4) and lo < diff < hi
    same = [1, 0, 1, 1]
    assert paired_bootstrap(same, same) == (0.0, 0.0, 0.0) and mcnemar(same, same)[2] == 1.0
    with pytest.raises(ValueError, match="not the same problems"):
        mcnemar([1], [1, 0])


def test_publish_copies_the_report_but_no_models(tmp_path):
    run, dest = tmp_path / "run", tmp_path / "ref"
    for path, text in {
        "REPORT.md": "# report",
        "tables/table2.md": "| a |",
        "eval/sft_small/summary.json": "{}",
        "eval/sft_small/normal.jsonl": "{}",
        "models/sft_small/model.safetensors": "weights",
        "mix/thought_lengths.png": "png",
        "manifests/collect.json": "{}",
        "manifests/.digests.json": "{}",
    }.items():
        (run / path).parent.mkdir(parents=True, exist_ok=True)
        (run / path).write_text(text)
    prof = tmp_path / "p.yaml"
    prof.write_text("run: x\n")
    # a previous run's published files go; what a publish does not write stays
    for stale in ("eval/old_variant.summary.json", "manifests/old.json", "calibration.json"):
        (dest / stale).parent.mkdir(parents=True, exist_ok=True)
        (dest / stale).write_text("{}")
    report.publish(run, dest, prof)
    got = sorted(str(p.relative_to(dest)) for p in dest.rglob("*") if p.is_file())
    assert got == [
        "REPORT.md",
        "calibration.json",
        "eval/sft_small.summary.json",
        "figures/thought_lengths.png",
        "manifests/collect.json",
        "profile.yaml",
        "tables/table2.md",
    ]
    (run / "REPORT.md").unlink()
    with pytest.raises(FileNotFoundError, match="run the analyse stage first"):
        report.publish(run, dest, prof)


def test_a_moved_figure_is_named_with_both_values():
    from tests.pins import compare

    expected = {"eval.sft_small.normal.accuracy": 25.0, "dpo.pairs": 2, "unify.kept": 30}
    found = {"eval.sft_small.normal.accuracy": 50.0, "dpo.pairs": 2, "mix.small.size": 6}
    assert compare(expected, found) == [
        "eval.sft_small.normal.accuracy: expected 25.0, found 50.0",
        "mix.small.size: 6 in the run, not in the expected figures",
        "unify.kept: expected 30, missing from the run",
    ]
    assert compare(expected, dict(expected, **{"eval.sft_small.normal.accuracy": 25.004})) == []
