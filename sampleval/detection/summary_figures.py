"""The detection sweep's figures (matplotlib, Agg): per setting the detection curves (share
of flips found against share inspected) and the labeling-bias paper's threshold curves,
drawn from the tables :func:`sampleval.detection.summary.curves` makes."""
from __future__ import annotations

import numpy as np

from sampleval.io import save_png


_LINESTYLES = ("-", "--", "-.", (0, (3, 1, 1, 1, 1, 1)), (0, (5, 2)), (0, (1, 1)))
_MARKERS = ("o", "s", "^", "v", "D", "P", "X", "*", "<", ">", "h", "p")


def _style(r: str, recommended: str, i: int = 0) -> dict:
    """A distinct look per ranking: the ``i``-th ranking gets its own colour (tab10, then
    tab20), line style and marker; cleanlab, random and the recommended ranking are fixed."""
    if r == "cleanlab":
        return dict(color="black", lw=2.2, ls="--", marker="s", ms=4, zorder=5)
    if r == "random":
        return dict(color="grey", lw=1.5, ls=":", marker=None, zorder=4)
    if r == recommended:
        return dict(color="crimson", lw=2.6, ls="-", marker="o", ms=5, zorder=6)
    import matplotlib

    palette = matplotlib.colormaps["tab10"].colors + matplotlib.colormaps["tab20"].colors[1::2]
    others = [c for c in palette if c != matplotlib.colors.to_rgb("tab:red") and c != matplotlib.colors.to_rgb("tab:gray")]
    return dict(color=others[i % len(others)], lw=1.3, ls=_LINESTYLES[i % len(_LINESTYLES)], marker=_MARKERS[i % len(_MARKERS)], ms=4, alpha=0.9)


def plot_curves(insp: dict, thr: dict, recommended: str | dict, path_curves, path_thresholds) -> None:
    """Detection curves (share found against share inspected) and the labeling-bias paper's
    threshold curves, one panel per setting; ``recommended``: the highlighted ranking, one
    name or per setting (:func:`recommended_by_setting`)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    if not isinstance(recommended, dict):
        recommended = {s: recommended for s in insp}

    _plot_inspection(plt, insp, recommended, path_curves)
    _plot_thresholds(plt, insp, thr, recommended, path_thresholds)


ZOOM = 0.2  # the detection figure shows the first 20 % inspected: where a reviewer's budget lies


def _plot_inspection(plt, insp: dict, recommended: dict, path, zoom: float = ZOOM) -> None:
    settings = list(insp)
    ncol = min(3, len(settings))
    nrow = -(-len(settings) // ncol)
    fig, axes = plt.subplots(nrow, ncol, figsize=(5.2 * ncol, 4.2 * nrow), squeeze=False, constrained_layout=True)
    for ax, s in zip(axes.flat, settings):
        df = insp[s]
        shown = df[df["inspected"] <= zoom + 1e-9]
        every = max(1, len(shown) // 10)
        for i, r in enumerate(df.columns[1:]):
            ax.plot(shown["inspected"], shown[r], label=r, markevery=every, **_style(r, recommended[s], i))
        ax.set_xlim(0, zoom)
        ax.set_ylim(0, 1.02)
        ax.xaxis.set_major_formatter(plt.matplotlib.ticker.PercentFormatter(1.0, decimals=0))
        ax.yaxis.set_major_formatter(plt.matplotlib.ticker.PercentFormatter(1.0, decimals=0))
        ax.set_title(f"{s} (red: {recommended[s]})")
        ax.set_xlabel("share inspected (most suspicious first)")
        ax.set_ylabel("share of flips found")
        ax.grid(alpha=0.3)
    for ax in list(axes.flat)[len(settings):]:
        ax.axis("off")
    handles, labels = axes.flat[0].get_legend_handles_labels()
    fig.legend(handles, labels, fontsize=8, loc="outside lower center", ncol=min(5, len(labels)), title="ranking", title_fontsize=8)
    fig.suptitle(f"Detection curves, mean over seeds: the first {zoom:.0%} inspected (full curves in the CSVs)\n"
                 "the ranking recommended for the setting: red solid (named in each title); cleanlab out-of-fold: black dashed; random: grey dotted")
    save_png(fig, path, dpi=100)


def _plot_thresholds(plt, insp: dict, thr: dict, recommended: dict, path) -> None:
    settings = list(insp)
    shown = [r for r in (*recommended.values(), "cleanlab", "random", "tracin", "if_diag", "loss", "self_influence") if r in insp[settings[0]].columns]
    index = {r: i for i, r in enumerate(insp[settings[0]].columns[1:])}
    ncol = min(4, len(settings))
    blocks = -(-len(settings) // ncol)
    fig, axes = plt.subplots(2 * blocks, ncol, figsize=(4.2 * ncol, 3.4 * 2 * blocks), squeeze=False, constrained_layout=True)
    for k, s in enumerate(settings):
        top, bottom = axes[2 * (k // ncol), k % ncol], axes[2 * (k // ncol) + 1, k % ncol]
        df = thr[s]
        for r in dict.fromkeys(shown):
            kw = {"markevery": max(1, len(df) // 10), **_style(r, recommended[s], index[r])}
            top.plot(df["threshold"], df[f"{r}_found"], label=r, **kw)
            bottom.plot(df["threshold"], np.maximum(df[f"{r}_fpr"], 1e-4), label=r, **kw)
        for ax in (top, bottom):
            ax.axvline(0.5, color="k", lw=0.6)
            ax.grid(alpha=0.3)
        top.set_title(f"{s} (red: {recommended[s]})")
        top.set_ylabel("share of flips above")
        bottom.set_yscale("log")
        bottom.set_ylim(8e-5, 1.2)
        bottom.set_ylabel("false-positive rate (floor 1e-4)")
        bottom.set_xlabel("threshold on score / max(score)")
    for k in range(len(settings), blocks * ncol):
        axes[2 * (k // ncol), k % ncol].axis("off")
        axes[2 * (k // ncol) + 1, k % ncol].axis("off")
    axes[0, 0].legend(fontsize=7, loc="lower left")
    fig.suptitle("Threshold curves as in the labeling-bias paper (mean over seeds; all rankings in the CSV)")
    save_png(fig, path, dpi=100)
