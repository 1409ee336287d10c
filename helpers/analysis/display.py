"""What the notebooks show: the pandas tables of each stage's data, one function each."""

from __future__ import annotations

from collections import Counter
from pathlib import Path
from typing import Any


def collection_summary(records: list[dict[str, Any]]) -> Any:
    """Count, accuracy and mean length by teacher, group and difficulty."""
    import pandas as pd

    df = pd.DataFrame(records)
    df["correct"] = df["label"] == "correct"
    return (
        df.groupby(["teacher", "group", "difficulty"])
        .agg(
            responses=("id", "count"), accuracy=("correct", "mean"), mean_tokens=("tokens", "mean")
        )
        .assign(
            accuracy=lambda d: (100 * d.accuracy).round(1),
            mean_tokens=lambda d: d.mean_tokens.round(0),
        )
    )


def pool_table(problems: list[dict[str, Any]]) -> Any:
    """Problems per group, family and difficulty."""
    import pandas as pd

    df = pd.DataFrame(problems)
    return df.groupby(["group", "family", "difficulty"]).size().rename("problems").to_frame()


def rejected_examples(rejected: list[dict[str, Any]], width: int = 300) -> Any:
    """One rejected example of each rule, for reading."""
    import pandas as pd

    seen: dict[str, dict[str, Any]] = {}
    for r in rejected:
        seen.setdefault(r["rule"], r)
    return pd.DataFrame(
        [
            {
                "rule": k,
                "teacher": v["teacher"],
                "id": v["id"],
                "response (start)": v["response"][:width],
            }
            for k, v in seen.items()
        ]
    )


def summary_table(summary: dict[str, Any]) -> Any:
    """Return a pandas table of a summary (one row per benchmark)."""
    import pandas as pd

    rows = [
        {"benchmark": b, **{k: v for k, v in s.items() if k != "correct"}}
        for b, s in summary["benchmarks"].items()
    ]
    return pd.DataFrame(rows).set_index("benchmark").round(1)


def examples_table(out_dir: Path, per_benchmark: int = 2, width: int = 160) -> Any:
    """Show a few graded responses per benchmark (response tail, answer, gold, verdict)."""
    import pandas as pd

    from ..pipeline.artifacts import read_jsonl

    rows = []
    for path in sorted(Path(out_dir).glob("*.jsonl")):
        for r in read_jsonl(path)[:per_benchmark]:
            rows.append(
                {
                    "benchmark": path.stem,
                    "id": r["id"],
                    "response (end)": r["response"][-width:],
                    "answer": r["answer"],
                    "from": r["answer_from"],
                    "gold": r["gold"],
                    "correct": r["correct"],
                }
            )
    return pd.DataFrame(rows)


def pairs_table(rows: list[dict[str, Any]]) -> Any:
    """Problems with a pair, and why the others have none."""
    import pandas as pd

    why = [("pair" if "chosen_id" in r else r["why"]) for r in rows]
    return pd.Series(why).value_counts().rename_axis("problem").to_frame("problems")


def problem_table(problems: list[dict[str, Any]]) -> Any:
    """Problems per family, with one question each."""
    import pandas as pd

    df = pd.DataFrame(problems)
    return (
        df.groupby("family")
        .agg(problems=("id", "count"), example=("question", "first"))
        .assign(example=lambda d: d.example.str.slice(0, 80))
    )


def stats_table(stats: dict[str, Any]) -> Any:
    """One iteration's exploration in one table: by family, and in all."""
    import pandas as pd

    fixed = f"tokens at {stats['max_rollouts']} rollouts each"
    keys = ["problems", "solved", "rollouts", "tokens", "fixed_rollouts_tokens"]
    rows = [{"family": f, **{k: c[k] for k in keys}} for f, c in stats["by_family"].items()]
    rows.append({"family": "all", **{k: stats[k] for k in keys}})
    return pd.DataFrame(rows).set_index("family").rename(columns={"fixed_rollouts_tokens": fixed})


def problems_note(asked: int, problems: list[dict[str, Any]]) -> str:
    """How many problems are explored, and how many of those asked for were dropped."""
    dropped = asked - len(problems)
    why = (
        f" ({dropped} of the {asked} asked for dropped: they overlap a benchmark or a "
        "training pool problem)"
        if dropped
        else ""
    )
    return f"{len(problems)} problems explored{why}"


def selection_table(selected: list[dict[str, Any]]) -> Any:
    """How many correct trajectories were kept, and why the others were dropped."""
    import pandas as pd

    reasons = Counter(
        "kept" if s["kept"] else s["why"].split(":")[0].split(",")[0].split(" (")[0]
        for s in selected
    )
    return pd.DataFrame(sorted(reasons.items()), columns=["outcome", "trajectories"]).set_index(
        "outcome"
    )


def margins(history: list[dict[str, Any]]) -> list[tuple[int, float]]:
    """The reward margin (chosen minus rejected) at each logged step."""
    return [
        (h.get("step", i + 1), h["rewards/margins"])
        for i, h in enumerate(history)
        if "rewards/margins" in h
    ]
