"""The paper's pool sources through the real loaders, on fixture files in the published schemas."""

from __future__ import annotations

import pytest

from helpers.grading.grade import grade
from helpers.method.collect import label
from helpers.method.unify import clean
from helpers.pipeline.config import load_profile
from helpers.pipeline.schema import PoolCfg, PoolSourceCfg, UnifyCfg
from helpers.world.sources import (
    load_aime_history,
    load_camel_science,
    load_leetcode,
    load_numina,
    load_pool,
    load_riddlesense,
    pool_sizes,
)
from helpers.world.tasks import build_benchmark, build_pools

from .conftest import FIXTURES


def test_numina_keeps_math_and_olympiads_with_a_boxed_answer():
    rows = load_numina(str(FIXTURES / "numina_cot.jsonl"))
    # cn_k12 is another subset; the proof has no boxed answer and cannot be auto-labelled.
    assert [r["answer"] for r in rows] == ["4", "1", r"\frac{5}{6}", "2"]
    assert [r["difficulty"] for r in rows] == ["normal", "hard", "hard", "normal"]
    assert {r["answer_type"] for r in rows} == {"math"}
    only = load_numina(str(FIXTURES / "numina_cot.jsonl"), ["cn_k12"])
    assert [r["answer"] for r in only] == ["5"]


def test_aime_history_stops_before_the_benchmark_year():
    rows = load_aime_history(str(FIXTURES / "aime_1983_2024.csv"))
    assert [(r["id"], r["answer"]) for r in rows] == [
        ("aime-1983-1", "60"),
        ("aime-2023-I-2", "625"),
    ]
    assert len(load_aime_history(str(FIXTURES / "aime_1983_2024.csv"), (1983, 2024))) == 3


def test_camel_science_is_open_and_labelled_unverified():
    rows = load_camel_science(str(FIXTURES / "camel_physics.jsonl"))
    assert {r["domain"] for r in rows} == {"physics"} and rows[0]["answer_type"] == "open"
    assert "Quantum mechanics" in rows[0]["source"]
    g = grade(f"The energy is {rows[0]['answer']}", rows[0])
    assert not g.correct and g.answer is None
    assert label(rows[0], g.correct) == "unverified"


@pytest.mark.parametrize("name", ["riddlesense_hub.jsonl", "riddlesense_release.jsonl"])
def test_riddlesense_both_layouts_give_five_options(name):
    rows = load_riddlesense(str(FIXTURES / name))
    for r in rows:
        assert r["answer_type"] == "choice" and len(r["choices"]) == 5
        gold = r["choices"]["ABCDE".index(r["answer"])]
        assert f"({r['answer']}) {gold}" in r["question"]
    last = rows[-1]
    assert grade(f"So the answer is ({last['answer']}).", last).correct
    wrong = "A" if last["answer"] != "A" else "B"
    assert not grade(f"So the answer is ({wrong}).", last).correct


def test_riddlesense_gold_letter_must_be_an_option(tmp_path):
    bad = tmp_path / "rs.jsonl"
    bad.write_text(
        '{"answerKey": "F", "question": "q?", "choices": {"label": ["A", "B"], "text": ["x", "y"]}}\n'
    )
    with pytest.raises(ValueError, match=r"rs.jsonl, row 0: answerKey 'F' is not one of"):
        load_riddlesense(str(bad))


def test_leetcode_keeps_hard_problems_only():
    rows = load_leetcode(str(FIXTURES / "leetcode.jsonl"))
    assert [r["id"] for r in rows] == ["leetcode-median-of-two-sorted-arrays"]
    assert rows[0]["domain"] == "code" and rows[0]["answer_type"] == "open"


def test_loaders_name_the_missing_field(tmp_path):
    bad = tmp_path / "camel.jsonl"
    bad.write_text('{"role_1": "Chemist_RoleType.ASSISTANT", "message_1": "q"}\n')
    with pytest.raises(
        ValueError, match=r"camel.jsonl, row 0: expected the field\(s\) \['message_2'\]"
    ):
        load_camel_science(str(bad))


def test_pool_sizes_split_the_rest_equally():
    assert pool_sizes(10, [None, None, None]) == [4, 3, 3]
    assert pool_sizes(10, [6, None, None]) == [6, 2, 2]


def test_pool_size_overflow_is_a_profile_error():
    with pytest.raises(ValueError, match="add up to 7, more than size 5"):
        PoolCfg(size=5, sources=[{"source": "aime", "size": 7}])


def paper_like_profile():
    """The paper profile with every pool source pointed at a fixture file."""
    prof = load_profile("params/paper.yaml")
    fx = {
        "numina_math": "numina_cot.jsonl",
        "aime": "aime_1983_2024.csv",
        "camel_science": "camel_physics.jsonl",
        "riddlesense": "riddlesense_hub.jsonl",
        "leetcode": "leetcode.jsonl",
    }
    pools = {}
    for group, cfg in prof.pools.items():
        sources = [
            PoolSourceCfg(**{**s.model_dump(), "path": str(FIXTURES / fx[s.source]), "size": None})
            for s in cfg.sources
        ]
        pools[group] = PoolCfg(size=4 * len(sources), sources=sources)
    return prof.model_copy(update={"pools": pools})


def test_paper_pools_build_from_fixtures_and_skip_benchmark_copies():
    prof = paper_like_profile()
    assert {s.source for c in prof.pools.values() for s in c.sources} == {
        "numina_math",
        "aime",
        "camel_science",
        "riddlesense",
        "leetcode",
    }
    bench = {
        "math": build_benchmark(
            "math",
            prof.benchmarks["math_oai"].model_copy(
                update={"path": str(FIXTURES / "math500.jsonl")}
            ),
        )
    }
    pools, dropped = build_pools(prof, bench)
    again, _ = build_pools(prof, bench)
    assert pools == again
    # NuminaMath's "What is $1+1$?" is a MATH-500 test question: decontamination drops it.
    assert dropped >= 1 and not [p for p in pools if p["question"] == "What is $1+1$?"]
    by_group = {
        g: {p["source"].split("/")[0].split(":")[0] for p in pools if p["group"] == g}
        for g in prof.pools
    }
    assert by_group["normal_math"] == {"NuminaMath"}
    assert {"NuminaMath", "AIME 1983", "AIME 2023"} >= by_group["hard_math"] >= {"NuminaMath"}
    assert {"camel-ai", "RiddleSense", "LeetCode"} == by_group["other"]
    assert all(p["group"] in prof.pools for p in pools)


def test_load_pool_reports_an_empty_source(tmp_path):
    empty = tmp_path / "numina.jsonl"
    empty.write_text('{"source": "cn_k12", "problem": "p", "solution": "\\\\boxed{1}"}\n')
    cfg = PoolCfg(size=2, sources=[{"source": "numina_math", "path": str(empty)}])
    with pytest.raises(ValueError, match=r"pools.normal_math: source numina_math .* no usable"):
        load_pool("normal_math", cfg, 0)


def _rec(i, label_):
    thought = " ".join(f"step {k} checks value {k * (i + 3)} against case {i}." for k in range(8))
    return {
        "id": f"r{i}",
        "problem_id": f"p{i}",
        "question": f"Question number {i} about a physics topic?",
        "response": f"<think>\n{thought}\n</think>\n\nThe answer follows.",
        "label": label_,
        "style": "r1",
        "teacher": "t",
        "domain": "physics",
        "group": "other",
        "difficulty": "normal",
        "family": "camel_physics",
        "answer_type": "open",
        "extracted_answer": None,
    }


def test_unverified_responses_are_kept_only_when_the_profile_says_so():
    recs = [_rec(0, "unverified"), _rec(1, "unverified")]
    kept, rejected = clean(recs, {}, UnifyCfg(min_thought_words=5))
    assert not kept and {r["rule"] for r in rejected} == {"unverified"}
    kept, rejected = clean(recs, {}, UnifyCfg(min_thought_words=5, keep_unverified=True))
    assert len(kept) == 2 and not rejected
