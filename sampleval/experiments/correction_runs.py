"""The corrections' worth: retrain with every seed before the corrections, after them, and on a
random control of the same size; compare with the exact paired test (the ``corrections``
stage; the file and its rules: :mod:`sampleval.data.corrections`)."""
from __future__ import annotations

import numpy as np
import pandas as pd

from sampleval.runtime.compute import SERIAL, pack_mask, run_jobs, unpack_mask
from sampleval.data.prepared import Split
from sampleval.training.retrain import train_and_evaluate
from sampleval.experiments.stats import paired_test
from sampleval.training.loop import predict_logits


def _train_job(shared, job: dict) -> dict:
    """Executor job: train on the uncorrected data with ``job['labels']`` (training split, in
    order) and the ``job['keep']`` mask; the test metrics, and the training split's
    predictions when ``job['predict']``."""
    prepared, cfg = shared
    tr, va, te = prepared.split("train"), prepared.split("val"), prepared.split("test")
    y = np.asarray(job["labels"], dtype=tr.y.dtype) if job.get("labels") is not None else tr.y
    tr = Split(x=tr.x, y=y, ids=tr.ids, clean_y=tr.clean_y, flipped=tr.flipped)
    keep = unpack_mask(job["keep"], len(tr.ids))
    result, metrics = train_and_evaluate(prepared, cfg, int(job["seed"]), keep=keep, splits=(tr, va, te))
    out = {k: v for k, v in metrics["test"].items() if isinstance(v, float)}
    if job.get("predict"):
        result.model.load_state_dict(result.best_state)
        out["predictions"] = predict_logits(result.model, tr.x).argmax(1).astype(int).tolist()
    return out


def compare_corrections(before, applied: pd.DataFrame | None, cfg, seeds: list[int], metric: str, alpha: float, n_bootstrap: int,
                        compute=None, cache=None) -> dict:
    """Corrected vs random control and vs before (see the module docstring). ``before``: the
    :class:`~sampleval.data.prepared.Prepared` data before the corrections; ``applied``: the
    prepared folder's corrections table. No relabel/remove rows: a record saying so, nothing trained."""
    acted = applied[applied["action"].isin(["relabel", "remove"])] if applied is not None else applied
    if acted is None or not len(acted):
        return {"n_corrections": 0, "note": "no corrections (data/corrections.csv has no relabel or remove rows): nothing trained"}
    tr = before.split("train")
    n = len(tr.ids)
    pos = {i: k for k, i in enumerate(tr.ids)}
    index = {c: i for i, c in enumerate(before.classes)}
    labels, keep = tr.y.copy(), np.ones(n, dtype=bool)
    for row in acted.itertuples():
        if row.action == "relabel":
            labels[pos[row.sample_id]] = index[row.new_label]
        else:
            keep[pos[row.sample_id]] = False
    n_relabel, n_remove = int((acted["action"] == "relabel").sum()), int((acted["action"] == "remove").sum())
    everything = pack_mask(np.ones(n, dtype=bool))
    compute = compute or SERIAL
    first = [{"seed": int(s), "keep": everything, "labels": None, "predict": True} for s in seeds]
    first += [{"seed": int(s), "keep": pack_mask(keep), "labels": labels.tolist()} for s in seeds]
    res = run_jobs(_train_job, first, compute, shared=(before, cfg), desc="corrections: before/corrected retrainings", cache=cache,
                   labels=[f"before seed {s}" for s in seeds] + [f"corrected seed {s}" for s in seeds])
    before_res, corrected_res = res[: len(seeds)], res[len(seeds):]
    controls, chosen_flipped, chosen_classes = [], [], []
    for s, b in zip(seeds, before_res):
        rng = np.random.default_rng([int(s), 29])
        chosen = rng.choice(n, size=n_relabel + n_remove, replace=False)
        y, k = tr.y.copy(), np.ones(n, dtype=bool)
        pred = np.asarray(b["predictions"])
        y[chosen[:n_relabel]] = pred[chosen[:n_relabel]]
        k[chosen[n_relabel:]] = False
        controls.append({"seed": int(s), "keep": pack_mask(k), "labels": y.tolist()})
        chosen_flipped.append(int(tr.flipped[chosen].sum()))
        chosen_classes.append(np.bincount(tr.y[chosen], minlength=before.n_classes))
    random_res = run_jobs(_train_job, controls, compute, shared=(before, cfg), desc="corrections: random-control retrainings", cache=cache,
                          labels=[f"random seed {s}" for s in seeds])
    values = {name: np.array([r[metric] for r in rs]) for name, rs in
              (("before", before_res), ("corrected", corrected_res), ("random", random_res))}
    acted_pos = np.array([pos[i] for i in acted["sample_id"]])
    return {
        "n_corrections": int(len(acted)),
        "n_relabel": n_relabel,
        "n_remove": n_remove,
        "metric": f"test.{metric}",
        "seeds": [int(s) for s in seeds],
        "per_seed": {name: {str(s): float(v) for s, v in zip(seeds, vals)} for name, vals in values.items()},
        "mean": {name: float(vals.mean()) for name, vals in values.items()},
        "corrected_vs_random": paired_test(values["corrected"], values["random"], alpha, n_bootstrap),
        "corrected_vs_before": paired_test(values["corrected"], values["before"], alpha, n_bootstrap),
        "flipped_in_corrected": int(tr.flipped[acted_pos].sum()),
        "flipped_in_random_mean": float(np.mean(chosen_flipped)),
        "corrected_class_composition": {c: int(v) for c, v in zip(before.classes, np.bincount(tr.y[acted_pos], minlength=before.n_classes))},
        "random_class_composition_mean": {c: float(v) for c, v in zip(before.classes, np.mean(chosen_classes, axis=0))},
        "random_control": "per seed: as many random training samples relabelled to that seed's before-model prediction, and as many removed",
    }
