"""Plots for the notebooks and the report: loss curves, thought lengths, accuracies."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")  # headless under Papermill; notebooks still display the returned figure
import matplotlib.pyplot as plt
import seaborn as sns


def _save(fig: Any, path: Path | None) -> Any:
    if path is not None:
        Path(path).parent.mkdir(parents=True, exist_ok=True)
        fig.savefig(path, dpi=120, bbox_inches="tight")
    return fig


def loss_curve(history: list[dict[str, Any]], title: str, path: Path | None = None) -> Any:
    """Training loss per logged step."""
    fig, ax = plt.subplots(figsize=(5, 3))
    steps = [h.get("step", i + 1) for i, h in enumerate(history)]
    ax.plot(steps, [h["loss"] for h in history], marker="o", ms=3)
    ax.set(xlabel="step", ylabel="loss", title=title)
    return _save(fig, path)


def thought_lengths(
    demos: list[dict[str, Any]], path: Path | None = None, by: str = "group"
) -> Any:
    """Distribution of thought length (words) per group."""
    import pandas as pd

    df = pd.DataFrame(demos)
    fig, ax = plt.subplots(figsize=(6, 3.2))
    if len(df):
        sns.boxplot(data=df, x=by, y="thought_words", ax=ax, hue=by, legend=False)
    ax.set(xlabel=by, ylabel="thought length (words)", title="Thought length by " + by)
    return _save(fig, path)


def accuracy_bars(table: Any, path: Path | None = None) -> Any:
    """Accuracy per variant and benchmark (ours), from a long table variant/benchmark/accuracy."""
    fig, ax = plt.subplots(figsize=(7, 3.5))
    if len(table):
        sns.barplot(data=table, x="variant", y="accuracy", hue="benchmark", ax=ax)
    ax.set(ylabel="accuracy (%)", title="Accuracy per variant and benchmark")
    ax.tick_params(axis="x", rotation=20)
    return _save(fig, path)


def accuracy_vs_length(table: Any, path: Path | None = None) -> Any:
    """Accuracy against mean thought length of the training mixture."""
    fig, ax = plt.subplots(figsize=(5, 3.5))
    if len(table):
        sns.scatterplot(
            data=table,
            x="thought_words",
            y="accuracy",
            hue="benchmark",
            style="variant",
            ax=ax,
            s=60,
        )
    ax.set(
        xlabel="mean thought length of training data (words)",
        ylabel="accuracy (%)",
        title="Accuracy vs. thought length",
    )
    return _save(fig, path)


def pass_at_k(curves: dict[Any, list[float]], path: Path | None = None) -> Any:
    """pass@k (the share of problems solved within k attempts) against k, one line per label."""
    fig, ax = plt.subplots(figsize=(5, 3.2))
    for label, curve in curves.items():
        ks = list(range(1, len(curve) + 1))
        ax.plot(ks, [100 * c for c in curve], marker="o", ms=3, label=str(label))
    ax.set(xlabel="attempts k", ylabel="pass@k (%)", title="Exploration: solved within k attempts")
    ax.set_ylim(0, 100)
    if curves:
        ax.legend(title="iteration", fontsize=8)
    return _save(fig, path)


def dpo_margins(curves: dict[str, list[tuple[int, float]]], path: Path | None = None) -> Any:
    """DPO's reward margin (chosen minus rejected) by step, one line per variant."""
    fig, ax = plt.subplots(figsize=(5, 3.2))
    for name, points in curves.items():
        if points:
            ax.plot(*zip(*points, strict=True), marker="o", ms=3, label=name)
    ax.axhline(0, color="grey", lw=0.8)
    ax.set(xlabel="step", ylabel="reward margin", title="DPO: chosen minus rejected reward")
    if curves:
        ax.legend(fontsize=8)
    return _save(fig, path)


def _interval_points(ax: Any, table: Any, x: str, hue: str, offsets: bool = True) -> None:
    """Points with 95% interval bars, one series per `hue` value, side by side at each x."""
    series = sorted(table[hue].unique())
    for k, name in enumerate(series):
        part = table[table[hue] == name].sort_values(x)
        shift = (k - (len(series) - 1) / 2) * 0.08 if offsets else 0.0
        ax.errorbar(
            part[x] + shift,
            part["accuracy"],
            yerr=[part["accuracy"] - part["lo"], part["hi"] - part["accuracy"]],
            fmt="o-",
            ms=4,
            capsize=3,
            label=str(name),
        )


def accuracy_by_iteration(table: Any, path: Path | None = None) -> Any:
    """Accuracy per benchmark against the explore iteration (0: the first-round model), with
    95% bootstrap intervals; a second seed's models as open points."""
    fig, ax = plt.subplots(figsize=(5.5, 3.4))
    if len(table):
        main = table[table["seed"] == table["seed"].min()]
        _interval_points(ax, main, "iteration", "benchmark")
        for _, r in table[table["seed"] != table["seed"].min()].iterrows():
            ax.plot(r["iteration"], r["accuracy"], "o", mfc="none", color="grey", ms=6)
        ax.set_xticks(sorted(table["iteration"].unique()))
        ax.legend(fontsize=7)
    ax.set(xlabel="explore iteration", ylabel="accuracy (%)", title="Accuracy by iteration")
    return _save(fig, path)


def dpo_variants(table: Any, path: Path | None = None) -> Any:
    """Table 4: each DPO variant's accuracy per benchmark, with 95% bootstrap intervals."""
    fig, ax = plt.subplots(figsize=(6.5, 3.4))
    if len(table):
        variants = list(dict.fromkeys(table["variant"]))
        benches = sorted(table["benchmark"].unique())
        width = 0.8 / max(len(variants), 1)
        for k, v in enumerate(variants):
            part = table[table["variant"] == v].set_index("benchmark").reindex(benches)
            xs = [i + (k - (len(variants) - 1) / 2) * width for i in range(len(benches))]
            err = [part["accuracy"] - part["lo"], part["hi"] - part["accuracy"]]
            ax.bar(xs, part["accuracy"], width, yerr=err, capsize=3, label=v)
        ax.set_xticks(range(len(benches)), benches)
        ax.legend(fontsize=7)
    ax.set(ylabel="accuracy (%)", title="DPO: what it aligns, with or without an SFT loss")
    return _save(fig, path)


def mixture_lengths(table: Any, path: Path | None = None) -> Any:
    """Table 3: mean thought length of each mixture's demonstrations, by pool group."""
    fig, ax = plt.subplots(figsize=(6, 3.2))
    if len(table):
        sns.barplot(data=table, x="mixture", y="thought_words", hue="group", ax=ax)
    ax.set(ylabel="mean thought length (words)", title="Thought length by mixture and group")
    return _save(fig, path)
