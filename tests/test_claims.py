"""The Claims table: one verdict for each of the paper's six claims, on paired verdicts."""

from __future__ import annotations

from helpers.analysis.claims import CLAIMS, MARGIN, claim_verdicts, judge
from helpers.pipeline.config import load_profile

SMALL = CLAIMS[0]  # better: sft_small, worse: backbone
AT_LEAST = CLAIMS[5]


def test_a_clear_paired_gain_holds_and_a_loss_fails():
    a, b = [1] * 30 + [0] * 10, [0] * 30 + [0] * 10
    assert judge(SMALL, a, b)[0] == "holds"
    verdict, why = judge(SMALL, b, a)
    assert verdict == "fails" and why.startswith("reversed")


def test_a_difference_within_chance_fails_and_says_so():
    a, b = [1, 0] * 20, [0, 1] * 20
    verdict, why = judge(SMALL, a, b)
    assert verdict == "fails" and "chance" in why


def test_two_zeros_are_untestable():
    assert judge(SMALL, [0] * 40, [0] * 40)[0] == "untestable"


def test_at_least_as_well_is_non_inferiority():
    same = [1, 0] * 50
    assert judge(AT_LEAST, same, same)[0] == "holds"
    worse = [0] * 30 + [1, 0] * 35
    verdict, why = judge(AT_LEAST, worse, same)
    assert verdict == "fails" and f"-{MARGIN:g}" in why


def summary(correct_by_bench):
    return {
        "benchmarks": {
            b: {"correct": c, "accuracy": 100 * sum(c) / len(c)}
            for b, c in correct_by_bench.items()
        }
    }


def test_every_claim_gets_a_row_on_the_tiny_profile():
    prof = load_profile("params/tiny.yaml")
    n = {name: cfg.size for name, cfg in prof.benchmarks.items()}
    good = summary({b: [1] * (k // 2) + [0] * (k - k // 2) for b, k in n.items()})
    bad = summary({b: [0] * k for b, k in n.items()})
    summaries = {v.name: good for v in prof.variants}
    summaries["backbone"] = bad
    table = claim_verdicts(prof, summaries)
    assert list(table["claim"].str[:1]) == ["1", "2", "3", "4", "5", "6"]
    verdicts = dict(zip(table["claim"].str[:1], table["verdict"], strict=True))
    assert verdicts["1"] == "holds" and verdicts["5"] == "holds"  # against the zero backbone
    assert verdicts["2"] == "fails"  # equal accuracy: nothing to separate
    assert verdicts["6"] == "holds"
    # the second seed's comparison is shown where both variants have a replicate
    row3 = table[table["claim"].str.startswith("3")].iloc[0]
    assert "sft_explore_1_s1 - sft_small_s1" in row3["other seed"]


def test_a_missing_variant_is_untestable():
    prof = load_profile("params/tiny.yaml")
    table = claim_verdicts(prof, {})
    assert set(table["verdict"]) == {"untestable"}
