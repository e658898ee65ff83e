"""Report figures (matplotlib, Agg) and the data files behind them for `dvc plots`."""
from __future__ import annotations

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402

from .io import atomic_path  # noqa: E402
from .scores import detection_curve, ranking_columns, suspicion  # noqa: E402


def _save(fig, path) -> None:
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png", dpi=110, bbox_inches="tight", metadata={"Software": None})
    plt.close(fig)


def influence_histogram(table: pd.DataFrame, column: str, path) -> None:
    fig, ax = plt.subplots(figsize=(6, 3.6))
    values = table[column].to_numpy(float)
    bins = np.linspace(values.min(), values.max(), 50)
    flipped = table["flipped"].to_numpy(bool)
    ax.hist(values[~flipped], bins=bins, alpha=0.7, label=f"clean labels (n={int((~flipped).sum())})")
    if flipped.any():
        ax.hist(values[flipped], bins=bins, alpha=0.8, color="crimson", label=f"flipped labels (n={int(flipped.sum())})")
    ax.axvline(0, color="k", lw=0.8)
    ax.set_xlabel(f"{column} score (positive = helpful)")
    ax.set_ylabel("training samples")
    ax.set_yscale("log")
    ax.legend(fontsize=8)
    ax.set_title("Influence of each training sample on the validation loss")
    _save(fig, path)


def sorted_scores(table: pd.DataFrame, column: str) -> pd.DataFrame:
    order = np.argsort(table[column].to_numpy(float), kind="stable")
    return pd.DataFrame(
        {
            "rank_share": np.linspace(0, 1, len(order)),
            "score": table[column].to_numpy(float)[order],
            "flipped": table["flipped"].to_numpy(bool)[order],
        }
    )


def sorted_scores_plot(df: pd.DataFrame, column: str, s_index: float, path) -> None:
    fig, ax = plt.subplots(figsize=(6, 3.6))
    ax.plot(df["rank_share"], df["score"], lw=1.2, label="sorted scores")
    f = df["flipped"].to_numpy(bool)
    ax.scatter(df["rank_share"][f], df["score"][f], s=8, color="crimson", label="flipped labels", zorder=3)
    ax.plot([0, 1], [df["score"].iloc[0], df["score"].iloc[-1]], "k--", lw=0.8, label="end-point line")
    ax.axhline(0, color="grey", lw=0.6)
    ax.set_xlabel("rank (share of training set, most harmful first)")
    ax.set_ylabel(column)
    ax.set_title(f"Sorted {column} scores (S-shapedness index {s_index:.3f})")
    ax.legend(fontsize=8)
    _save(fig, path)


def detection_table(table: pd.DataFrame, methods: list[str]) -> pd.DataFrame:
    flipped = table["flipped"].to_numpy(bool)
    frames = []
    for col in ranking_columns(table, methods):
        grid, found = detection_curve(flipped, suspicion(table, col))
        frames.append(pd.DataFrame({"inspected": grid, "found": found, "ranking": col}))
    return pd.concat(frames, ignore_index=True)


def detection_plot(df: pd.DataFrame, path) -> None:
    fig, ax = plt.subplots(figsize=(5, 4))
    styles = [("-", 2.6), ("--", 1.6), ("-.", 2.0), (":", 2.2), ("-", 1.0)]
    for i, (name, part) in enumerate(df.groupby("ranking", sort=False)):
        ls, lw = styles[i % len(styles)]
        ax.plot(part["inspected"], part["found"], ls=ls, lw=lw, label=name)  # identical rankings overlap: dashes keep both visible
    ax.plot([0, 1], [0, 1], color="grey", lw=0.8, label="random inspection")
    ax.set_xlabel("share of training data inspected")
    ax.set_ylabel("share of flipped labels found")
    ax.set_title("Finding flipped labels")
    ax.legend(fontsize=8)
    _save(fig, path)


def subsets_table(cells: list[dict], metric: str) -> pd.DataFrame:
    rows = []
    for cell in cells:
        values = [seed[metric] for seed in cell["seeds"].values()]
        rows.append(
            {
                "strategy": cell["strategy"],
                "fraction": cell["fraction"],
                "mean": float(np.mean(values)),
                "std": float(np.std(values, ddof=1)) if len(values) > 1 else 0.0,
                "min": float(np.min(values)),
                "max": float(np.max(values)),
                "n_seeds": len(values),
            }
        )
    return pd.DataFrame(rows).sort_values(["strategy", "fraction"]).reset_index(drop=True)


def subsets_plot(df: pd.DataFrame, metric: str, baseline: float, path) -> None:
    fig, axes = plt.subplots(1, 2, figsize=(10, 3.8), sharey=True)
    styles = {"harmful": ("tab:green", "-o"), "helpful": ("tab:blue", "-s"), "random": ("grey", "--^")}
    for ax, direction in zip(axes, ("remove", "select")):
        for strategy, part in df[df["strategy"].str.startswith(direction)].groupby("strategy"):
            color, style = styles[strategy.split("-")[1]]
            ax.plot(part["fraction"], part["mean"], style, color=color, label=f"{strategy} (mean)")
            ax.fill_between(part["fraction"], part["min"], part["max"], color=color, alpha=0.15)
        ax.axhline(baseline, color="k", lw=0.8, ls=":", label="baseline (all data)")
        ax.set_xlabel(f"fraction {'removed' if direction == 'remove' else 'selected'}")
        ax.set_title(f"{direction}: mean over seeds, band = min..max")
        ax.legend(fontsize=8)
    axes[0].set_ylabel(f"test {metric}")
    _save(fig, path)


def train_curve_plot(curve: pd.DataFrame, best_epoch: int, path) -> None:
    fig, ax = plt.subplots(figsize=(6, 3.6))
    ax.plot(curve["epoch"], curve["train_loss"], "-o", label="train loss")
    ax.plot(curve["epoch"], curve["val_loss"], "-s", label="validation loss")
    ax.axvline(best_epoch, color="k", ls=":", lw=0.8, label=f"best epoch (val) = {best_epoch}")
    ax.set_xlabel("epoch")
    ax.set_ylabel("focal loss")
    ax.legend(fontsize=8)
    ax.set_title("Training curve")
    _save(fig, path)


def fidelity_plot(table: pd.DataFrame, summary: dict, path) -> None:
    """One scatter per estimator: predicted influence against the actual leave-one-out change."""
    groups = list(table.groupby(["model", "estimator"], sort=False))
    cols = min(4, len(groups))
    rows = int(np.ceil(len(groups) / cols))
    fig, axes = plt.subplots(rows, cols, figsize=(3.2 * cols, 3.0 * rows), squeeze=False)
    for ax, ((model, name), part) in zip(axes.flat, groups):
        ax.scatter(part["predicted"], part["actual"], s=12)
        stats = summary["network"].get(name) if model == "network" else summary.get("convex_if")
        r = stats.get("loo_pearson") if stats else None
        rho = stats.get("loo_spearman") if stats else None
        ax.set_title(f"{name} ({model})\nPearson {r if r is None else round(r, 3)}, Spearman {rho if rho is None else round(rho, 3)}", fontsize=8)
        ax.axhline(0, color="grey", lw=0.5)
        ax.axvline(0, color="grey", lw=0.5)
        ax.tick_params(labelsize=7)
    for ax in list(axes.flat)[len(groups):]:
        ax.axis("off")
    fig.supxlabel("predicted influence (positive = helpful)", fontsize=9)
    fig.supylabel("actual change in val loss when removed", fontsize=9)
    fig.tight_layout()
    _save(fig, path)
