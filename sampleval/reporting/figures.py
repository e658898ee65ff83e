"""Report figures (matplotlib, Agg) and the data files behind them for `dvc plots`."""
from __future__ import annotations

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402

from sampleval.io import save_png  # noqa: E402
from sampleval.influence.scores import detection_curve, ranking_columns, suspicion  # noqa: E402


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
    save_png(fig, path)


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
    save_png(fig, path)


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
    save_png(fig, path)


def subsets_table(cells: dict, metric: str) -> pd.DataFrame:
    """One row per cell (``cells``: CellKey -> record): mean, sd, min and max over seeds."""
    rows = []
    for key, cell in cells.items():
        values = [seed[metric] for seed in cell["seeds"].values()]
        rows.append(
            {
                "ranking": key.ranking,
                "variant": key.variant,
                "strategy": key.strategy,
                "fraction": key.fraction,
                "mean": float(np.mean(values)),
                "std": float(np.std(values, ddof=1)) if len(values) > 1 else 0.0,
                "min": float(np.min(values)),
                "max": float(np.max(values)),
                "n_seeds": len(values),
            }
        )
    return pd.DataFrame(rows).sort_values(["variant", "strategy", "fraction", "ranking"]).reset_index(drop=True)


def subsets_plot(df: pd.DataFrame, metric: str, baseline: float, path) -> None:
    """Rows: variants; columns: strategy@fraction. In each panel one point per ranking (mean,
    bar = min..max over seeds), its class-matched control beside it where there is one (orange:
    random samples of the same classes), and the random control (grey)."""
    ranked = df[df["ranking"] != "random"]
    matched = ranked[ranked["strategy"].str.endswith("-matched")]
    ranked = ranked[~ranked["strategy"].str.endswith("-matched")]
    columns = list(dict.fromkeys(zip(ranked["strategy"], ranked["fraction"])))
    variants = list(dict.fromkeys(df["variant"]))
    fig, axes = plt.subplots(len(variants), max(len(columns), 1), figsize=(3.8 * max(len(columns), 1), 3.0 * len(variants)), squeeze=False, sharey=True)

    def point(ax, x, row, color):
        err = np.clip([[row["mean"] - row["min"]], [row["max"] - row["mean"]]], 0, None)
        ax.errorbar([x], [row["mean"]], yerr=err, fmt="o", color=color, capsize=3)

    for i, variant in enumerate(variants):
        for j, (strategy, fraction) in enumerate(columns):
            ax = axes[i, j]
            part = ranked[(ranked["variant"] == variant) & (ranked["strategy"] == strategy) & (ranked["fraction"] == fraction)]
            control = df[(df["ranking"] == "random") & (df["variant"] == variant) & (df["fraction"] == fraction)
                         & (df["strategy"] == f"{strategy.split('-')[0]}-random")]
            labels = []
            for x, (_, row) in enumerate(part.iterrows()):
                point(ax, x, row, "tab:blue")
                m = matched[(matched["ranking"] == row["ranking"]) & (matched["variant"] == variant)
                            & (matched["strategy"] == f"{strategy}-matched") & (matched["fraction"] == fraction)]
                if len(m):
                    point(ax, x + 0.3, m.iloc[0], "tab:orange")
                labels.append(row["ranking"])
            if len(control):
                point(ax, len(part), control.iloc[0], "grey")
                ax.axhline(float(control["mean"].iloc[0]), color="grey", lw=0.8, ls="--")
                labels.append("random")
            ax.axhline(baseline, color="k", lw=0.8, ls=":")
            ax.set_xticks(np.arange(len(labels)), labels, rotation=30, fontsize=8)
            ax.set_title(f"{variant}: {strategy} {fraction}", fontsize=9)
            if j == 0:
                ax.set_ylabel(f"test {metric}")
    fig.suptitle("Mean over seeds (bar = min..max). Blue: the ranking's subset; orange: random samples of the same classes "
                 "(class-matched control);\ngrey and dashed: random control; dotted: baseline on all data", fontsize=9)
    fig.tight_layout()
    save_png(fig, path)


def composition_table(cells: dict) -> pd.DataFrame:
    """Per cell and class: share of the removed/selected set against the full training set
    (``sampleval.experiments.subset_cells.composition``)."""
    from sampleval.experiments.subset_cells import composition

    rows = []
    for key, cell in cells.items():
        for r in composition(cell):
            rows.append({"cell": key.name, "ranking": key.ranking, "variant": key.variant, "strategy": key.strategy,
                         "fraction": key.fraction, **r})
    return pd.DataFrame(rows)


def composition_heatmap(df: pd.DataFrame, path) -> None:
    """Rows: cells; columns: classes; colour: the class's removal (selection) rate over the
    cell's average rate, log scale, 1 = proportional. Annotated with the class's share of
    the removed/selected set; the top row is each class's share of the full training set."""
    from matplotlib.colors import LogNorm

    cells = list(dict.fromkeys(df["cell"]))
    classes = list(dict.fromkeys(df["class"]))
    ratio = np.ones((len(cells) + 1, len(classes)))
    share = np.zeros_like(ratio)
    first = df[df["cell"] == cells[0]].set_index("class")
    share[0] = [first.loc[c, "train_share"] for c in classes]
    for i, cell in enumerate(cells, start=1):
        part = df[df["cell"] == cell].set_index("class")
        rate = np.array([part.loc[c, "rate"] for c in classes], dtype=float)
        ratio[i] = np.clip(rate / part["average_rate"].iloc[0], 1 / 8, 8)
        share[i] = [part.loc[c, "chosen_share"] for c in classes]
    fig, ax = plt.subplots(figsize=(1.0 + 0.55 * len(classes), 0.9 + 0.32 * (len(cells) + 1)))
    im = ax.imshow(ratio, cmap="RdBu_r", norm=LogNorm(1 / 8, 8), aspect="auto")
    for i in range(ratio.shape[0]):
        for j in range(ratio.shape[1]):
            far = abs(np.log2(ratio[i, j])) > 1.5  # dark cells: white text
            ax.text(j, i, f"{100 * share[i, j]:.0f}", ha="center", va="center", fontsize=6.5, color="white" if far else "black")
    ax.set_xticks(range(len(classes)), classes, fontsize=8)
    ax.set_yticks(range(len(cells) + 1), ["full training set (share %)"] + cells, fontsize=7)
    ax.set_xlabel("class")
    ticks = [1 / 8, 1 / 4, 1 / 2, 1, 2, 4, 8]
    bar = fig.colorbar(im, ax=ax, label="class rate / average rate\n(1 = proportional)", shrink=0.8, ticks=ticks)
    bar.ax.set_yticklabels(["<=1/8", "1/4", "1/2", "1", "2", "4", ">=8"])
    bar.ax.minorticks_off()
    ax.set_title("Removed / selected sets: each class's share (%)\nremove-*: red = the class is removed more than average; "
                 "select-*: blue = the class is kept less", fontsize=8)
    save_png(fig, path)


def train_curve_plot(curve: pd.DataFrame, best_epoch: int, path) -> None:
    fig, ax = plt.subplots(figsize=(6, 3.6))
    ax.plot(curve["epoch"], curve["train_loss"], "-o", label="train loss")
    ax.plot(curve["epoch"], curve["val_loss"], "-s", label="validation loss")
    ax.axvline(best_epoch, color="k", ls=":", lw=0.8, label=f"best epoch (val) = {best_epoch}")
    ax.set_xlabel("epoch")
    ax.set_ylabel("focal loss")
    ax.legend(fontsize=8)
    ax.set_title("Training curve")
    save_png(fig, path)


def fidelity_table(summary: dict) -> pd.DataFrame:
    """One row per estimator (and TracIn checkpoint variant) of ``metrics/fidelity.json``: the
    LDS and the leave-one-out Spearman, each with its bootstrap CI (the data of ``fidelity_plot``
    and of the ``dvc plots`` bar chart)."""
    rows = [("network", name, e) for name, e in summary.get("network", {}).items()]
    rows += [("tracin_checkpoints", f"tracin[{v}]", e) for v, e in summary.get("tracin_checkpoints", {}).items() if isinstance(e, dict)]
    keys = ("lds", "lds_lo", "lds_hi", "loo_spearman", "loo_spearman_lo", "loo_spearman_hi")
    out = [{"group": g, "estimator": name, **{k: e.get(k) for k in keys}} for g, name, e in rows]
    return pd.DataFrame(out, columns=["group", "estimator", *keys]).astype({k: float for k in keys})


def fidelity_plot(table: pd.DataFrame, path) -> None:
    """The LDS (left) and the leave-one-out Spearman (right) per estimator, each with its
    bootstrap 95 % CI as an error bar, estimators ordered by LDS; ``table`` is :func:`fidelity_table`."""
    df = table.sort_values("lds", na_position="first").reset_index(drop=True)
    y = np.arange(len(df))
    fig, axes = plt.subplots(1, 2, figsize=(10, 0.36 * len(df) + 1.6), sharey=True)
    for ax, key, title in ((axes[0], "lds", "linear datamodeling score (LDS)"), (axes[1], "loo_spearman", "leave-one-out Spearman")):
        v, lo, hi = df[key].to_numpy(), df[f"{key}_lo"].to_numpy(), df[f"{key}_hi"].to_numpy()
        err = np.vstack([np.clip(v - lo, 0, None), np.clip(hi - v, 0, None)])
        colors = np.where(df["group"] == "network", "tab:blue", "tab:orange")
        for i in range(len(df)):
            ax.errorbar(v[i], y[i], xerr=err[:, i:i + 1], fmt="o", color=colors[i], ecolor=colors[i], capsize=3, ms=5, lw=1.2)
        ax.axvline(0, color="grey", lw=0.8, ls=":")
        ax.set_title(title, fontsize=9)
        ax.grid(axis="x", alpha=0.3)
        ax.tick_params(labelsize=8)
    axes[0].set_yticks(y, df["estimator"])
    axes[0].set_xlabel("Spearman: predicted vs actual subset loss", fontsize=8)
    axes[1].set_xlabel("Spearman: predicted vs actual leave-one-out change", fontsize=8)
    fig.suptitle("Fidelity: agreement of each estimator with retraining (bars: bootstrap 95 % CI; "
                 "orange: TracIn checkpoint variants)", fontsize=9)
    fig.tight_layout()
    save_png(fig, path)


def subsets_cells(table: pd.DataFrame) -> pd.DataFrame:
    """:func:`subsets_table` with one label per cell (``ranking/variant/strategy@fraction``),
    for a ``dvc plots`` bar chart of the mean test metric over seeds per cell."""
    cell = table["ranking"] + "/" + table["variant"] + "/" + table["strategy"] + "@" + table["fraction"].map("{:g}".format)
    return pd.DataFrame({"cell": cell, "mean": table["mean"], "min": table["min"], "max": table["max"], "n_seeds": table["n_seeds"]})


def refine_rounds(rounds: pd.DataFrame) -> pd.DataFrame:
    """``plots/refine.csv`` (one row per seed, arm and round) as the mean over seeds per arm
    and round; ``group`` names the arm (refined, random): one line each in ``dvc plots``."""
    cols = [c for c in ("test_accuracy", "test_macro_f1", "flipped_remaining", "n_train") if c in rounds.columns]
    out = rounds.groupby(["arm", "round"], sort=True)[cols].mean().reset_index().rename(columns={"arm": "group"})
    return out[["group", "round", *cols]]


def detection_curves_long(curves: dict[str, pd.DataFrame], max_inspected: float = 0.3) -> pd.DataFrame:
    """The sweep's wide detection curves (setting -> ``inspected`` plus one column per
    ranking) as one long table: panel (setting), group (ranking), inspected, found; only the
    first ``max_inspected`` share inspected, where rankings differ (the full curves stay in the
    wide CSVs)."""
    parts = [wide[wide["inspected"] <= max_inspected + 1e-9].melt(id_vars="inspected", var_name="group", value_name="found").assign(panel=setting) for setting, wide in curves.items()]
    return pd.concat(parts, ignore_index=True)[["panel", "group", "inspected", "found"]]
