"""Google's 2019 expert relabels of NIH ChestX-ray14 as ground truth for NIH label errors.

Majkowska et al. (Radiology, 2019) had radiologists adjudicate four findings on 4,376 NIH
images (1,132 PA views); the labels ship in the ``torchxrayvision`` wheel as
``torchxrayvision/data/google2019_nih-chest-xray-labels.csv.gz``. Its columns: the NIH
``Data_Entry`` metadata of each image (``Image Index``, ``Finding Labels``, ``View
Position``, ...) then ``Fracture``, ``Pneumothorax``, ``Airspace opacity``, ``Nodule or
mass`` (``YES``/``NO``) and ``Set Id`` (``val``/``test``, Google's split).

**Mapping onto NIH's 14 findings** (:data:`EXPERT_TO_NIH`): an expert finding is present
in the NIH label when any of its NIH findings is:

| expert finding | NIH findings |
|---|---|
| Pneumothorax | Pneumothorax |
| Nodule or mass | Nodule, Mass |
| Airspace opacity | Consolidation, Infiltration, Pneumonia |
| Fracture | none: NIH has no fracture label, so no disagreement is defined (left out) |

Airspace opacity is our mapping (the three NIH findings that name an airspace-filling
opacity; Edema is left out as a separate, usually bilateral, process); pass another mapping
to :func:`join_expert_labels` to change it.

**Expert disagreement** for finding f: the NIH label (as mapped) differs from the expert
adjudicated label. Detection is evaluated against it with the same metrics as injected
flips: a group's suspicion is the label-wise suspicion of the group label under the group
probability ``P(any member) = 1 - prod_j (1 - p_j)`` (members treated as independent).
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

EXPERT_TO_NIH: dict[str, tuple[str, ...]] = {
    "Pneumothorax": ("Pneumothorax",),
    "Nodule or mass": ("Nodule", "Mass"),
    "Airspace opacity": ("Consolidation", "Infiltration", "Pneumonia"),
}
EXPERT_COLUMNS = ("Fracture", "Pneumothorax", "Airspace opacity", "Nodule or mass")
REQUIRED = ("Image Index", "View Position", "Set Id", *EXPERT_COLUMNS)


def read_expert_labels(path: str | Path) -> pd.DataFrame:
    """The Google relabel CSV (plain or .gz) with the expert columns as booleans."""
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"{path} does not exist; extract google2019_nih-chest-xray-labels.csv.gz from the torchxrayvision wheel (see README)")
    frame = pd.read_csv(path)
    missing = [c for c in REQUIRED if c not in frame.columns]
    if missing:
        raise ValueError(f"{path} lacks column(s) {', '.join(missing)}; is it Google's 2019 NIH relabel file?")
    for c in EXPERT_COLUMNS:
        values = frame[c].astype(str).str.upper()
        bad = ~values.isin(("YES", "NO"))
        if bad.any():
            raise ValueError(f"{path}: column {c!r} holds {frame.loc[bad, c].iloc[0]!r} in row {int(np.flatnonzero(bad)[0])}; expected YES or NO")
        frame[c] = values.eq("YES")
    if frame["Image Index"].duplicated().any():
        raise ValueError(f"{path}: duplicate 'Image Index' {frame.loc[frame['Image Index'].duplicated(), 'Image Index'].iloc[0]!r}")
    return frame


def nih_group_labels(labels: np.ndarray, classes: list[str], mapping: dict[str, tuple[str, ...]] = EXPERT_TO_NIH) -> np.ndarray:
    """``(N, len(mapping))`` 0/1: an expert finding is present when any of its NIH findings is."""
    labels = np.asarray(labels)
    idx = _member_indices(classes, mapping)
    return np.stack([(labels[:, members] > 0.5).any(axis=1) for members in idx], axis=1).astype(np.int8)


def nih_group_probs(probs: np.ndarray, classes: list[str], mapping: dict[str, tuple[str, ...]] = EXPERT_TO_NIH) -> np.ndarray:
    """``(N, len(mapping))`` probability that any member finding is present, ``1 - prod (1 - p_j)``."""
    probs = np.asarray(probs, dtype=np.float64)
    return np.stack([1.0 - np.prod(1.0 - probs[:, members], axis=1) for members in _member_indices(classes, mapping)], axis=1)


def _member_indices(classes: list[str], mapping: dict[str, tuple[str, ...]]) -> list[list[int]]:
    pos = {c: i for i, c in enumerate(classes)}
    out = []
    for finding, members in mapping.items():
        missing = [m for m in members if m not in pos]
        if missing or not members:
            raise ValueError(f"expert finding {finding!r} maps to {list(members)}, not all among the data's classes ({', '.join(classes)})")
        out.append([pos[m] for m in members])
    return out


def join_expert_labels(sample_ids: np.ndarray, labels: np.ndarray, classes: list[str], experts: pd.DataFrame,
                       mapping: dict[str, tuple[str, ...]] = EXPERT_TO_NIH) -> pd.DataFrame:
    """Inner join of our samples (``sample_id`` = NIH ``Image Index``, multi-hot ``labels`` in
    ``classes`` order) with the expert frame of :func:`read_expert_labels`.

    One row per sample with an expert label, in the order of ``sample_ids``: ``sample_id``,
    ``position`` (index into ``sample_ids``), ``view`` (PA/AP), ``set_id``, and per expert
    finding f: ``nih:<f>``, ``expert:<f>`` (0/1) and ``disagree:<f>`` (bool)."""
    ids = pd.Series(np.asarray(sample_ids).astype(str), name="sample_id")
    group = nih_group_labels(labels, classes, mapping)
    ours = pd.DataFrame({"sample_id": ids, "position": np.arange(len(ids))})
    for j, f in enumerate(mapping):
        ours[f"nih:{f}"] = group[:, j]
    theirs = experts[["Image Index", "View Position", "Set Id", *mapping]].rename(columns={"Image Index": "sample_id", "View Position": "view", "Set Id": "set_id"})
    theirs = theirs.rename(columns={f: f"expert:{f}" for f in mapping})
    joined = ours.merge(theirs, on="sample_id", how="inner", validate="one_to_one").sort_values("position", kind="stable")
    for f in mapping:
        joined[f"expert:{f}"] = joined[f"expert:{f}"].astype(np.int8)
        joined[f"disagree:{f}"] = joined[f"nih:{f}"] != joined[f"expert:{f}"]
    return joined.reset_index(drop=True)


def evaluate_against_experts(joined: pd.DataFrame, suspicion: np.ndarray, mapping: dict[str, tuple[str, ...]] = EXPERT_TO_NIH,
                             views: tuple[str, ...] = ("all", "PA")) -> dict:
    """Detection of expert disagreement per finding and view.

    ``suspicion``: ``(len(joined), len(mapping))`` in ``joined``'s row order, higher = more likely
    the NIH label is wrong (e.g. :func:`~sampleval.detection.multilabel.label_wise_suspicion` of
    the group labels under :func:`nih_group_probs`). Returns ``{view: {finding: metrics}}`` with
    the metrics of :func:`~sampleval.detection.multilabel.detection_metrics` plus
    ``nih_positive`` and ``expert_positive`` counts."""
    from sampleval.detection.multilabel import detection_metrics

    suspicion = np.asarray(suspicion, dtype=np.float64)
    if suspicion.shape != (len(joined), len(mapping)):
        raise ValueError(f"suspicion has shape {suspicion.shape}, expected ({len(joined)}, {len(mapping)}) (joined rows x expert findings)")
    out: dict = {}
    for view in views:
        rows = np.ones(len(joined), bool) if view == "all" else joined["view"].eq(view).to_numpy()
        out[view] = {}
        for j, f in enumerate(mapping):
            m = detection_metrics(joined[f"disagree:{f}"].to_numpy(bool)[rows], suspicion[rows, j])
            m["nih_positive"] = int(joined[f"nih:{f}"].to_numpy()[rows].sum())
            m["expert_positive"] = int(joined[f"expert:{f}"].to_numpy()[rows].sum())
            out[view][f] = m
    return out
