"""Benchmarks and pools: schema, determinism, disjointness, and the real loaders on fixtures."""

from __future__ import annotations

import re

import pytest

from helpers.grading.verifiers import expression_value
from helpers.pipeline.config import load_profile
from helpers.pipeline.schema import BenchmarkCfg
from helpers.world.tasks import (
    build_benchmark,
    build_embedded,
    build_pools,
    load_aime2024,
    load_gpqa_diamond,
    load_math500,
    overlapping,
)

from .conftest import FIXTURES

KEYS = {
    "id",
    "domain",
    "difficulty",
    "question",
    "answer",
    "answer_type",
    "choices",
    "source",
    "group",
    "family",
    "benchmark",
}


@pytest.mark.parametrize("kind", ["normal", "hard", "other"])
def test_embedded_benchmarks_schema_and_determinism(kind):
    a = build_benchmark(kind, BenchmarkCfg(kind=kind, size=9))
    b = build_benchmark(kind, BenchmarkCfg(kind=kind, size=9))
    assert a == b and len(a) == 9 and len({r["id"] for r in a}) == 9
    for r in a:
        assert set(r) >= KEYS
    if kind == "other":
        for r in a:
            assert r["answer_type"] == "choice" and len(r["choices"]) == 4
            assert r["answer"] in "ABCD" and len(set(r["choices"])) == 4


def test_pools_disjoint_from_benchmarks():
    prof = load_profile("params/tiny.yaml")
    benches = {n: build_benchmark(n, c) for n, c in prof.benchmarks.items()}
    pools, _ = build_pools(prof, benches)
    refs = [r for rs in benches.values() for r in rs]
    bench_q = {r["question"] for r in refs}
    assert not [p for p in pools if p["question"] in bench_q]
    assert not overlapping(pools, refs)
    groups = {p["group"] for p in pools}
    assert groups == {"normal_math", "hard_math", "other"}
    fams = {g: {p["family"] for p in pools if p["group"] == g} for g in groups}
    assert len(fams["normal_math"]) >= 3 and len(fams["hard_math"]) >= 2
    assert len(fams["other"]) >= 3
    assert any(p["answer_type"] == "choice" for p in pools if p["group"] == "other")


def test_overlap_catches_exact_and_near_copies():
    refs = [
        {
            "id": "b1",
            "question": "Alice has 3 red apples and 5 green pears in a basket, "
            "and Bob takes 2 pears away from the basket today.",
        }
    ]
    near = {"id": "p1", "question": refs[0]["question"].replace("today", "tonight")}
    exact = {"id": "p2", "question": refs[0]["question"].upper()}
    other = {
        "id": "p3",
        "question": "Carol owns 9 blue cars and 4 white vans parked at the "
        "station while Dan buys 1 van later this week.",
    }
    assert overlapping([near, exact, other], refs) == {"p1", "p2"}


def test_math500_loader():
    rows = load_math500(str(FIXTURES / "math500.jsonl"))
    assert [r["answer"] for r in rows] == ["2", r"\frac{1}{2}"]
    assert rows[0]["answer_type"] == "math" and rows[0]["difficulty"] == "level1"


def test_aime_loader():
    rows = load_aime2024(str(FIXTURES / "aime2024.jsonl"))
    assert [r["answer"] for r in rows] == ["204", "25"] and rows[0]["id"] == "aime2024-2024-I-1"


def test_gpqa_loader_shuffles_with_fixed_seed():
    a = load_gpqa_diamond(str(FIXTURES / "gpqa_diamond.csv"), seed=0)
    b = load_gpqa_diamond(str(FIXTURES / "gpqa_diamond.csv"), seed=0)
    assert a == b
    for r in a:
        gold = {"rec1": "photon", "rec2": "7"}[r["id"].removeprefix("gpqa-")]
        assert r["choices"]["ABCD".index(r["answer"])] == gold
        assert f"({r['answer']}) {gold}" in r["question"]


def test_loader_names_missing_fields(tmp_path):
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"question": "x"}\n')
    with pytest.raises(ValueError, match=r"bad.jsonl, row 0: expected the field\(s\)"):
        load_math500(str(bad))


def test_arithmetic_gold_follows_precedence():
    # reasoning-gym's own answer to "8 + 1 * 2" is 18 (left to right); the teachers and any
    # correct solver say 10, so a wrong gold would grade a right answer wrong
    rows = build_embedded(["arithmetic"], 400, 777, "t", "t")
    mixed = [r for r in rows if re.search(r"[-+] \d+ \*", r["question"])]
    assert len(mixed) > 20
    for r in rows:
        expr = re.fullmatch(r"Calculate (.*)\.", r["question"]).group(1)
        nums, ops = [int(x) for x in re.findall(r"\d+", expr)], re.findall(r" ([-+*]) ", expr)
        while "*" in ops:  # multiply first, by hand
            i = ops.index("*")
            nums[i : i + 2], ops[i : i + 1] = [nums[i] * nums[i + 1]], []
        total = nums[0]
        for op, n in zip(ops, nums[1:], strict=True):
            total = total + n if op == "+" else total - n
        assert r["answer"] == str(total), r["question"]


def test_expression_value_reads_only_arithmetic():
    assert expression_value("8 + 5 * 6") == 38 and expression_value("7 - 7 * 9") == -56
    for bad in ("__import__('os')", "2 ** 8", "", "1 +"):
        with pytest.raises(ValueError, match="not an arithmetic expression"):
            expression_value(bad)
