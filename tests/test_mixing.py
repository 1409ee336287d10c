"""Mixtures: group shares, distinct problems first, families taken in turn."""

from collections import Counter

from helpers.method import mixing


def demo(group: str, family: str | None, problem: int, rollout: int = 0) -> dict:
    row = {"group": group, "problem_id": f"{group}-{family}-{problem}", "thought_words": 10}
    row["id"] = f"{row['problem_id']}:{rollout}"
    if family is not None:
        row["family"] = family
    return row


def pool() -> list[dict]:
    # normal: family a dominates (12 problems, 2 rollouts each), b and c have 2 problems each
    rows = [demo("normal", "a", i, r) for i in range(12) for r in range(2)]
    rows += [demo("normal", f, i) for f in "bc" for i in range(2)]
    rows += [demo("hard", "h", i, r) for i in range(3) for r in range(2)]
    return rows


def test_shares_follow_the_ratios_and_rounding_goes_to_the_last_group():
    rows, short = mixing.build_mixture(pool(), 7, {"normal": 0.7, "hard": 0.3}, seed=0)
    assert Counter(r["group"] for r in rows) == {"normal": 5, "hard": 2}
    assert short == {}


def test_every_family_is_represented_before_any_gets_a_third():
    for seed in range(5):
        rows, _ = mixing.build_mixture(pool(), 6, {"normal": 1.0}, seed=seed)
        fams = Counter(r["family"] for r in rows)
        assert fams["b"] == 2 and fams["c"] == 2 and fams["a"] == 2, (seed, fams)


def test_distinct_problems_before_second_rollouts():
    rows, _ = mixing.build_mixture(pool(), 14, {"normal": 1.0}, seed=1)
    assert len({r["problem_id"] for r in rows}) == 14  # 16 distinct problems exist


def test_shortfall_when_a_group_runs_out():
    rows, short = mixing.build_mixture(pool(), 20, {"normal": 0.5, "hard": 0.5}, seed=0)
    assert short == {"hard": 4} and sum(r["group"] == "hard" for r in rows) == 6


def test_same_seed_same_mixture():
    a, _ = mixing.build_mixture(pool(), 9, {"normal": 0.6, "hard": 0.4}, seed=3)
    b, _ = mixing.build_mixture(pool(), 9, {"normal": 0.6, "hard": 0.4}, seed=3)
    assert [r["id"] for r in a] == [r["id"] for r in b]


def test_interleave_takes_families_in_turn_and_keeps_rows_without_one():
    rows = [demo("g", "a", 0), demo("g", "a", 1), demo("g", "b", 0), demo("g", None, 0)]
    out = mixing.interleave(rows)
    assert [r.get("family") for r in out] == ["a", "b", None, "a"]
    assert sorted(r["id"] for r in out) == sorted(r["id"] for r in rows)
