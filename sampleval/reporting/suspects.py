"""The flagged samples a person reviews: ``data/label_issues.parquet`` (and ``.csv``) and
the image grid ``plots/suspects.png``.

Like cleanlab's ``find_label_issues`` table, one row per training sample, most suspect first:

- ``sample_id`` (str), ``given_label`` (the label trained on), ``suggested_label`` (the
  baseline model's prediction, ``models/model.pt``: argmax of its probabilities),
  ``suggested_prob`` (its probability), as class names;
- ``score``: the suspicion of the recommended ranking (higher = more suspect), ``rank``
  (1 = most suspect; ties broken by table order), ``ranking`` (its name);
- ``score_<name>``: the suspicion of every ranking in ``data/influence/scores.parquet``
  (the estimators' main columns and magnitude columns, oriented by the registry,
  :func:`sampleval.influence.registry.suspicion`);
- ``flipped``: the injected noise (nullable boolean; null when no noise was injected, so
  the truth is unknown); ``is_suspect``: the top ``suspects.top_k`` rows.

Multi-label data (nih14, chexpert, a multi-label manifest): labels are the findings joined
by ``|`` (``none`` when there are none); the suggestion is the set of findings the model
gives probability >= 0.5, and ``suggested_prob`` the probability of its least certain
decision (``min_j max(p_j, 1 - p_j)``).

The recommended ranking is a registry estimator (a column of the scores table) or a
combination (``detect.combinations``: the mean normalised rank of its components,
:func:`sampleval.detection.rankings.rank_average`).
"""
from __future__ import annotations


import numpy as np
import pandas as pd

from sampleval.influence.registry import suspicion
from sampleval.io import atomic_path, save_png, write_parquet

BASE = ["sample_id", "split", "label", "clean_label", "flipped"]
NOT_RANKINGS = set(BASE)


def available_rankings(scores: pd.DataFrame) -> list[str]:
    """The ranking columns of a scores table: every score column but the per-checkpoint parts."""
    return [c for c in scores.columns if c not in NOT_RANKINGS and "_epoch_" not in c]


# the detection sweep's name for the pipeline's ``cleanlab`` estimator (its own ``cleanlab`` is out-of-fold CNN cleanlab)
ALIASES = {"cleanlab_logreg": "cleanlab"}


def ranking_suspicion(scores: pd.DataFrame, name: str, combinations: dict[str, list[str]]) -> np.ndarray:
    """Suspicion (higher = more suspect) of ranking ``name``: a scores column, oriented by the
    registry, or a combination's mean normalised rank. Fails in one line when a column is missing."""
    name = ALIASES.get(name, name)
    if name in combinations:
        from sampleval.detection.rankings import rank_average

        parts = [ALIASES.get(c, c) for c in combinations[name]]
        missing = [c for c in parts if c not in scores.columns]
        if missing:
            raise ValueError(f"the recommended ranking {name!r} combines {parts}, but {missing} are not in the scores table; "
                             f"add {', '.join(missing)} to influence.methods (or set suspects.ranking)")
        return rank_average({c: suspicion(c, scores[c].to_numpy(float)) for c in parts}, parts)
    if name not in scores.columns:
        raise ValueError(f"the recommended ranking {name!r} is not in the scores table (it has {', '.join(available_rankings(scores))}); "
                         f"add {name} to influence.methods (or set suspects.ranking)")
    return suspicion(name, scores[name].to_numpy(float))


def label_names(y, classes: list[str], task: str) -> str:
    """A label as text: the class name, or the findings joined by ``|`` (``none``)."""
    if task == "multiclass":
        return classes[int(y)]
    return "|".join(c for c, v in zip(classes, np.asarray(y)) if v > 0.5) or "none"


def suggestions(probs: np.ndarray, classes: list[str], task: str) -> tuple[list[str], np.ndarray]:
    """The model's suggested label of every sample and its probability (see the module docstring)."""
    probs = np.asarray(probs, dtype=float)
    if task == "multiclass":
        k = probs.argmax(1)
        return [classes[i] for i in k], probs[np.arange(len(k)), k]
    decided = probs >= 0.5
    return [label_names(row, classes, task) for row in decided], np.where(decided, probs, 1 - probs).min(axis=1)


def label_issues_table(
    scores: pd.DataFrame, probs: np.ndarray, classes: list[str], task: str, ranking: str,
    combinations: dict[str, list[str]], top_k: int, noise_known: bool,
) -> pd.DataFrame:
    """The table of the module docstring, sorted most suspect first. ``scores``: the scores
    table (training split, in prepared order); ``probs``: the baseline's probabilities for
    those rows; ``noise_known``: whether ``flipped`` is a truth (noise was injected)."""
    if len(probs) != len(scores):
        raise ValueError(f"the model's probabilities cover {len(probs)} samples, the scores table {len(scores)}; rerun `dvc repro`")
    susp = ranking_suspicion(scores, ranking, combinations)
    suggested, prob = suggestions(probs, classes, task)
    out = pd.DataFrame({
        "sample_id": scores["sample_id"].astype(str).to_numpy(),
        "given_label": [label_names(y, classes, task) for y in scores["label"]],
        "suggested_label": suggested,
        "suggested_prob": prob.astype(float),
        "ranking": ranking,
        "score": np.asarray(susp, dtype=float),
    })
    for col in available_rankings(scores):
        out[f"score_{col}"] = suspicion(col, scores[col].to_numpy(float))
    flipped = scores["flipped"].astype(bool).to_numpy()
    out["flipped"] = pd.array(flipped if noise_known else [None] * len(out), dtype="boolean")
    order = np.argsort(-out["score"].to_numpy(), kind="stable")
    out = out.iloc[order].reset_index(drop=True)
    out.insert(out.columns.get_loc("score") + 1, "rank", np.arange(1, len(out) + 1, dtype=np.int64))
    out["is_suspect"] = out["rank"] <= top_k
    return out


def write_label_issues(table: pd.DataFrame, parquet_path, csv_path) -> None:
    write_parquet(parquet_path, table)
    with atomic_path(csv_path) as tmp:
        table.to_csv(tmp, index=False, float_format="%.6g")


def plot_suspects(table: pd.DataFrame, images: dict, path, top_k: int, cols: int = 10) -> None:
    """Image grid of the top ``top_k`` suspects, most suspect first: rank, given -> suggested
    label (red when they differ), a black frame when the flip is known to be injected.
    ``images``: sample id -> (C, H, W) array. Table data (features, not images) gets a
    one-panel note instead (the stage always writes the file)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    top = table.head(top_k)
    first = np.asarray(images[top["sample_id"].iloc[0]]) if len(top) else None
    if first is None or (first.ndim == 3 and first.shape[1:] == (1, 1)):
        fig, ax = plt.subplots(figsize=(5, 1.2))
        ax.axis("off")
        ax.text(0.5, 0.5, "no image grid: the data are table rows, not images\n(the suspects are in data/label_issues.csv)",
                ha="center", va="center", fontsize=9)
    else:
        import textwrap

        longest = max(len(str(v)) for v in pd.concat([top["given_label"], top["suggested_label"]]))
        if longest > 8:  # multi-label findings or long class names: fewer, wider panels, wrapped titles
            cols = min(cols, 5)

        def wrap(text: str) -> str:
            return textwrap.shorten(str(text).replace("|", " | "), 60, placeholder=" …") if longest > 8 else str(text)

        width = 1.25 if longest <= 8 else 2.8
        lines = 2 if longest <= 8 else 6
        rows = max(1, -(-len(top) // cols))
        fig, axes = plt.subplots(rows, cols, figsize=(width * cols, (1.2 + 0.16 * lines) * rows + 0.5), squeeze=False)
        for ax in axes.flat:
            ax.axis("off")
        for ax, row in zip(axes.flat, top.itertuples()):
            img = np.asarray(images[row.sample_id])
            img = img[0] if img.shape[0] == 1 else np.transpose(img, (1, 2, 0))
            ax.imshow(img, cmap="gray" if img.ndim == 2 else None, interpolation="nearest")
            ax.set_xticks([])
            ax.set_yticks([])
            ax.axis("on")
            differ = row.given_label != row.suggested_label
            title = f"#{row.rank} given {wrap(row.given_label)}\nsuggest {wrap(row.suggested_label)}"
            if longest > 8:
                title = "\n".join(textwrap.fill(part, 30) for part in title.split("\n"))
            ax.set_title(title, fontsize=8, color="crimson" if differ else "black")
            known = row.flipped is not pd.NA and bool(row.flipped)
            for spine in ax.spines.values():
                spine.set_edgecolor("crimson" if known else "lightgrey")
                spine.set_linewidth(2.5 if known else 0.8)
        ranking = table["ranking"].iloc[0] if len(table) else "?"
        note = "; red frame = injected flip" if table["flipped"].notna().any() else ""
        fig.suptitle(f"Top {len(top)} suspects by {ranking}\n(most suspect first; red title = the model suggests another label{note})", fontsize=10)
        fig.tight_layout()
    save_png(fig, path, dpi=100)


def model_probabilities(prepared, model_name: str, model_path, split: str = "train") -> np.ndarray:
    """The selected baseline's (``models/model.pt``, read with ``weights_only=True``)
    probabilities on ``split``: softmax (multi-class) or sigmoid (multi-label)."""
    import torch

    from sampleval.training.checkpoints import load_checkpoint
    from sampleval.training.models import build_model
    from sampleval.training.loop import predict_logits

    part = prepared.split(split)
    model = build_model(model_name, part.x.shape[1], prepared.n_classes, part.x.shape[-1], None)
    model.load_state_dict(load_checkpoint(model_path)["model"])
    logits = torch.from_numpy(predict_logits(model, part.x))
    probs = torch.softmax(logits, 1) if prepared.task == "multiclass" else torch.sigmoid(logits)
    return probs.double().numpy()
