"""Score shapes over the detection sweep (the TracIn text paper, seed 003).

Input: per sweep cell, a table with ``sample_id, label, clean_label, flipped`` and one
float column per ranking, oriented as suspicion (higher = more suspicious; the ``tracin``
column there is minus TracIn). For the shapes we turn each column back into an influence
orientation, ``score = -suspicion`` (for ``tracin``: the TracIn score itself, positive =
helpful), and sort it in **descending** order, as the paper plots it (top-left = largest).

- **Sorted scores** per cell, flipped samples marked (the paper's Fig. 1).
- **Position from the centre** (the paper's Fig. 3): a sample at descending rank ``r`` of
  ``n`` sits at ``100 * |r - c| / c`` percent from the centre, ``c = (n - 1) / 2``: 0 % at the
  centre, 100 % at either end. We report the mean over the flipped samples (the paper's
  number) and over the clean ones (about 50 % for a position unrelated to the flag).
- **Distance to the training set** (the paper's explanation of the shape: an instance with
  few similar training instances gives an S shape, many give a Z shape). The paper measures,
  per misclassified test instance, its embedding distance to every training instance; our
  scores aggregate over the validation set, so we measure per *training* sample its
  isolation: the mean Euclidean distance, in pixel space (uint8 pixels scaled to [-1, 1]), to
  its ``k`` nearest other training samples (scikit-learn ``NearestNeighbors``). We report the
  Spearman correlation between isolation and position from the centre (do isolated samples
  sit at the ends?) and the mean isolation of flipped and clean samples.
- **Accuracy and loss against flip ratio** (the paper's threshold effect, Figs. 4-5): from
  each cell's test accuracy and loss when the sweep records them.
- **S-shapedness index**: helper module ``sampleval.influence.s_shapedness`` (one definition for the
  project); :func:`s_index` is the single call site.
"""
from __future__ import annotations

import math

import numpy as np
import pandas as pd

from sampleval.influence.s_shapedness import s_shapedness
from sampleval.io import save_png

REQUIRED = ("sample_id", "label", "clean_label", "flipped")


def check_cell(table: pd.DataFrame, name: str) -> list[str]:
    """Validate one sweep cell's table; return its ranking columns (every float column)."""
    missing = [c for c in REQUIRED if c not in table.columns]
    if missing:
        raise ValueError(f"detection cell {name}: missing column(s) {', '.join(missing)}; expected sample_id, label, clean_label, flipped and one float column per ranking")
    rankings = [c for c in table.columns if c not in REQUIRED and pd.api.types.is_float_dtype(table[c])]
    if not rankings:
        raise ValueError(f"detection cell {name}: no float ranking column")
    return rankings


def s_index(scores: np.ndarray) -> float:
    """The S-shapedness index of ``scores`` (:func:`sampleval.influence.s_shapedness.s_shapedness`, the one definition)."""
    return float(s_shapedness(np.asarray(scores, dtype=np.float64)))


def descending_ranks(scores: np.ndarray) -> np.ndarray:
    """Rank of each sample in descending order of ``scores`` (0 = largest), ties by position."""
    s = np.asarray(scores, dtype=np.float64)
    order = np.lexsort((np.arange(len(s)), -s))
    ranks = np.empty(len(s), dtype=np.int64)
    ranks[order] = np.arange(len(s))
    return ranks


def position_from_centre(scores: np.ndarray) -> np.ndarray:
    """Per sample, percent distance of its descending rank from the centre (0 centre, 100 ends)."""
    n = len(scores)
    if n < 2:
        raise ValueError("position from the centre needs at least 2 scores")
    c = (n - 1) / 2
    return 100.0 * np.abs(descending_ranks(scores) - c) / c


def sorted_curve(scores: np.ndarray, flipped: np.ndarray) -> pd.DataFrame:
    """Scores in descending order with ``rank_share`` in [0, 1] and the flipped flag."""
    s = np.asarray(scores, dtype=np.float64)
    order = np.lexsort((np.arange(len(s)), -s))
    return pd.DataFrame({"rank_share": np.linspace(0.0, 1.0, len(s)), "score": s[order], "flipped": np.asarray(flipped, bool)[order]})


def knn_isolation(x: np.ndarray, k: int) -> np.ndarray:
    """Mean Euclidean distance of each row of ``x`` (images, any shape past the first axis) to
    its ``k`` nearest other rows; uint8 pixels are scaled to [-1, 1] first."""
    from sklearn.neighbors import NearestNeighbors

    x = np.asarray(x)
    flat = x.reshape(len(x), -1).astype(np.float64)
    if x.dtype == np.uint8:
        flat = flat / 127.5 - 1.0
    if not 1 <= k < len(flat):
        raise ValueError(f"shapes.knn = {k} must be between 1 and n_samples - 1 ({len(flat) - 1})")
    dist, _ = NearestNeighbors(n_neighbors=k + 1).fit(flat).kneighbors(flat)
    return dist[:, 1:].mean(axis=1)  # column 0 is the sample itself (or an exact duplicate, also at 0)


def noise_pattern(label: np.ndarray, clean_label: np.ndarray, flipped: np.ndarray) -> str:
    """A readable name for a cell's noise from its flips: ``none``, ``pairwise a->b`` (one
    source, one target), ``asymmetric`` (each source class to one fixed target) or ``uniform``."""
    f = np.asarray(flipped, bool)
    if not f.any():
        return "none"
    pairs = pd.DataFrame({"src": np.asarray(clean_label)[f], "dst": np.asarray(label)[f]}).drop_duplicates()
    if len(pairs) == 1:
        return f"pairwise {pairs['src'].iloc[0]}->{pairs['dst'].iloc[0]}"
    return "asymmetric" if pairs.groupby("src")["dst"].nunique().max() == 1 else "uniform"


def cell_shape(table: pd.DataFrame, column: str, isolation: np.ndarray | None = None) -> dict:
    """The shape numbers of one ranking column of one cell (see the module docstring)."""
    scores = -table[column].to_numpy(np.float64)
    flipped = table["flipped"].to_numpy(bool)
    pos = position_from_centre(scores)
    out = {
        "n": int(len(scores)),
        "n_flipped": int(flipped.sum()),
        "flip_ratio": float(flipped.mean()),
        "noise": noise_pattern(table["label"].to_numpy(), table["clean_label"].to_numpy(), flipped),
        "s_shapedness": s_index(scores),
        "flipped_position_from_centre_pct": float(pos[flipped].mean()) if flipped.any() else math.nan,
        "clean_position_from_centre_pct": float(pos[~flipped].mean()) if (~flipped).any() else math.nan,
        "flipped_share_in_outer_10pct": float((pos[flipped] >= 90).mean()) if flipped.any() else math.nan,
    }
    if isolation is not None:
        from scipy.stats import spearmanr

        out["spearman_isolation_position"] = float(spearmanr(isolation, pos).statistic) if np.ptp(isolation) > 0 else math.nan
        out["isolation_flipped_mean"] = float(isolation[flipped].mean()) if flipped.any() else math.nan
        out["isolation_clean_mean"] = float(isolation[~flipped].mean()) if (~flipped).any() else math.nan
    return out


def position_bins(table: pd.DataFrame, column: str, isolation: np.ndarray, n_bins: int = 10) -> pd.DataFrame:
    """Mean isolation and share of flipped samples per band of position from the centre
    (``n_bins`` equal bands of 0-100 %)."""
    pos = position_from_centre(-table[column].to_numpy(np.float64))
    band = np.minimum((pos / (100.0 / n_bins)).astype(int), n_bins - 1)
    df = pd.DataFrame({"band": band, "isolation": isolation, "flipped": table["flipped"].to_numpy(bool)})
    g = df.groupby("band")
    out = pd.DataFrame({"position_from_centre_pct": (g.size().index + 0.5) * (100.0 / n_bins), "n": g.size().to_numpy(),
                        "mean_isolation": g["isolation"].mean().to_numpy(), "flipped_share": g["flipped"].mean().to_numpy()})
    return out.reset_index(drop=True)


def _lookup(record: dict, key: str):
    """``record['a.b']`` as ``record['a']['b']`` or ``record['a_b']``, searched one level down too
    (e.g. under ``baseline``); None when absent or not a number."""
    head, tail = key.split(".")
    places = [record] + [v for v in record.values() if isinstance(v, dict)]
    for place in places:
        for value in ((place.get(head) or {}).get(tail) if isinstance(place.get(head), dict) else None, place.get(f"{head}_{tail}")):
            if isinstance(value, (int, float)) and not isinstance(value, bool):
                return float(value)
    return None


def cell_performance(record: dict | None) -> dict:
    """Test accuracy and loss of a cell's baseline model from its sweep record, wherever the
    sweep put them (``test.accuracy`` or ``test_accuracy``; the loss from ``test.loss``, else
    ``val.loss``, with ``loss_source`` naming which); NaN if absent."""
    out = {"test_accuracy": math.nan, "loss": math.nan, "loss_source": None}
    if not record:
        return out
    acc = _lookup(record, "test.accuracy")
    if acc is not None:
        out["test_accuracy"] = acc
    for key in ("test.loss", "val.loss"):
        value = _lookup(record, key)
        if value is not None:
            out["loss"], out["loss_source"] = value, key.replace(".", "_")
            break
    return out


def analyse(cells: dict[str, pd.DataFrame], ranking: str, images: dict[str, np.ndarray] | None, knn: int,
            records: dict[str, dict] | None = None) -> tuple[dict, pd.DataFrame, pd.DataFrame, pd.DataFrame]:
    """All cells: ``(metrics, sorted_curves, position_bands, performance)``.

    ``images`` maps sample_id -> image (the training images, any shape); None skips the
    isolation analysis. ``records`` maps cell -> the sweep's metrics record of that cell."""
    metrics: dict = {"ranking": ranking, "knn": knn, "cells": {}}
    curves, bands, perf = [], [], []
    iso_cache: dict[tuple, np.ndarray] = {}
    for name in sorted(cells):
        table = cells[name]
        rankings = check_cell(table, name)
        if ranking not in rankings:
            raise ValueError(f"detection cell {name} has no ranking column {ranking!r} (it has {', '.join(rankings)}); set shapes.ranking to one of them")
        isolation = None
        if images is not None:
            ids = tuple(table["sample_id"].astype(str))
            if ids not in iso_cache:
                missing = [i for i in ids if i not in images]
                if missing:
                    raise ValueError(f"detection cell {name}: sample {missing[0]!r} is not in the prepared training images; rerun `dvc repro`")
                iso_cache[ids] = knn_isolation(np.stack([images[i] for i in ids]), knn)
            isolation = iso_cache[ids]
        m = cell_shape(table, ranking, isolation)
        m.update(cell_performance((records or {}).get(name)))
        metrics["cells"][name] = m
        c = sorted_curve(-table[ranking].to_numpy(np.float64), table["flipped"].to_numpy(bool))
        curves.append(c.assign(cell=name, noise=m["noise"], flip_ratio=m["flip_ratio"]))
        if isolation is not None:
            bands.append(position_bins(table, ranking, isolation).assign(cell=name))
        perf.append({"cell": name, "noise": m["noise"], "flip_ratio": m["flip_ratio"], "test_accuracy": m["test_accuracy"], "loss": m["loss"], "loss_source": m["loss_source"]})
    perf_df = pd.DataFrame(perf, columns=["cell", "noise", "flip_ratio", "test_accuracy", "loss", "loss_source"])
    metrics["missing_performance"] = sorted(perf_df.loc[perf_df["test_accuracy"].isna(), "cell"])
    bands_df = pd.concat(bands, ignore_index=True) if bands else pd.DataFrame(columns=["position_from_centre_pct", "n", "mean_isolation", "flipped_share", "cell"])
    return metrics, pd.concat(curves, ignore_index=True), bands_df, perf_df


def shapes_plot(curves: pd.DataFrame, metrics: dict, path) -> None:
    """One panel per (noise, flip ratio) setting: sorted scores of each of its cells (seeds
    overlaid), flipped samples in red."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    settings = curves[["noise", "flip_ratio"]].drop_duplicates().sort_values(["noise", "flip_ratio"]).to_numpy().tolist()
    ncol = min(4, len(settings))
    nrow = math.ceil(len(settings) / ncol)
    fig, axes = plt.subplots(nrow, ncol, figsize=(3.6 * ncol, 2.8 * nrow), squeeze=False)
    for ax, (noise, ratio) in zip(axes.ravel(), settings):
        part = curves[(curves["noise"] == noise) & (curves["flip_ratio"] == ratio)]
        pos = []
        for cell, c in part.groupby("cell"):
            ax.plot(c["rank_share"], c["score"], lw=1, color="tab:blue", alpha=0.7)
            f = c["flipped"].to_numpy(bool)
            ax.scatter(c["rank_share"][f], c["score"][f], s=5, color="crimson", zorder=3)
            pos.append(metrics["cells"][cell]["flipped_position_from_centre_pct"])
        ax.axhline(0, color="grey", lw=0.5)
        ax.set_title(f"{noise}, {ratio:.1%} flipped\nflips {np.nanmean(pos):.0f} % from centre", fontsize=9)
        ax.set_xlabel("rank share (descending)", fontsize=8)
    for ax in axes.ravel()[len(settings):]:
        ax.axis("off")
    fig.suptitle(f"Sorted {metrics['ranking']} scores per sweep setting (red: flipped labels)", fontsize=10)
    fig.tight_layout()
    save_png(fig, path)


def threshold_plot(perf: pd.DataFrame, bands: pd.DataFrame, path) -> None:
    """Left: test accuracy and loss against flip ratio per noise kind (the threshold effect).
    Right: mean isolation (kNN pixel distance) per band of position from the centre."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (ax1, ax3) = plt.subplots(1, 2, figsize=(11, 3.6))
    ax2 = ax1.twinx()
    for noise, part in perf.groupby("noise"):
        g = part.groupby("flip_ratio")[["test_accuracy", "loss"]].mean().sort_index()
        line = ax1.plot(g.index, g["test_accuracy"], marker="o", label=f"{noise}: accuracy")[0]
        ax2.plot(g.index, g["loss"], marker="x", ls="--", color=line.get_color())
    sources = sorted(set(perf["loss_source"].dropna()))
    ax1.set_xlabel("flip ratio")
    ax1.set_ylabel("test accuracy (o, solid)")
    ax2.set_ylabel(f"{' / '.join(sources) or 'loss'} (x, dashed)")
    ax1.legend(fontsize=7, loc="lower left")
    if perf["test_accuracy"].isna().all():
        ax1.text(0.5, 0.5, "the sweep recorded no test accuracy/loss", transform=ax1.transAxes, ha="center")
    ax1.set_title("Threshold effect", fontsize=10)
    if len(bands):
        g = bands.groupby("position_from_centre_pct")[["mean_isolation", "flipped_share"]].mean()
        ax3.plot(g.index, g["mean_isolation"], marker="o", label="mean kNN distance")
        ax4 = ax3.twinx()
        ax4.bar(g.index, g["flipped_share"], width=6, alpha=0.25, color="crimson", label="flipped share")
        ax4.set_ylabel("share flipped (bars)")
    ax3.set_xlabel("position from centre of sorted scores (%)")
    ax3.set_ylabel("distance to training set")
    ax3.set_title("Where isolated samples sit (all cells)", fontsize=10)
    fig.tight_layout()
    save_png(fig, path)
