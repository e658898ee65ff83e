"""fidelity: how well each estimator predicts what retraining actually does.

- leave-one-out: retrain without each of ``fidelity.n_points`` fixed random training
  points (same recipe and seed) and correlate the actual change in summed validation loss
  with each estimator's score (Pearson, Spearman);
- linear datamodeling score over ``fidelity.n_subsets`` random 50 % subsets;
- a convex control: multinomial logistic regression on the same data, where influence
  functions should be near exact.

Writes metrics/fidelity.json, plots/fidelity.csv and plots/fidelity.png."""
from __future__ import annotations

import pandas as pd

from sampleval import fidelity as fid
from sampleval import plots
from sampleval.data.prepared import load_prepared
from sampleval.estimators import signed_estimators
from sampleval.io import atomic_path, write_json
from sampleval.training import TrainConfig
from stages._common import log, main, start


@main
def run(argv=None) -> None:
    params = start("fidelity", baseline=True)
    f, seed = params["fidelity"], params["seed"]
    methods = params["influence"]["methods"]
    predictors = signed_estimators(methods)  # magnitudes (self_influence) predict no signed loss change
    prepared = load_prepared("data/prepared")
    tr, va = prepared.split("train"), prepared.split("val")
    scores = pd.read_parquet("data/influence/scores.parquet", columns=["sample_id", *methods])
    cfg = TrainConfig.from_params(params)
    setup = fid.Retraining(tr.x, tr.y, va.x, va.y, prepared.task, prepared.n_classes, cfg)

    idx = fid.sample_points(len(tr.ids), f["n_points"], seed)
    loo = fid.leave_one_out(setup, idx, seed=seed)
    masks = fid.random_subsets(len(tr.ids), f["n_subsets"], 0.5, seed)
    subset_losses = fid.subset_val_losses(setup, masks, seed=seed)

    out: dict = {"n_points": int(len(idx)), "n_subsets": int(f["n_subsets"]), "network": {}}
    rows = []
    for m in predictors:
        predicted = scores[m].to_numpy(float)
        c = fid.correlations(predicted[idx], loo["loss_increase"].to_numpy())
        out["network"][m] = {
            "loo_pearson": c["pearson"],
            "loo_spearman": c["spearman"],
            "lds": fid.linear_datamodeling_score(predicted, masks, subset_losses),
        }
        rows.append(pd.DataFrame({"model": "network", "estimator": m, "sample_id": tr.ids[idx], "predicted": predicted[idx], "actual": loo["loss_increase"].to_numpy()}))
    if prepared.task == "multiclass":
        convex = fid.convex_leave_one_out(tr.x, tr.y, va.x, va.y, prepared.n_classes, idx, damping=params["influence"]["damping"])
        c = fid.correlations(convex["predicted"].to_numpy(), convex["actual"].to_numpy())
        out["convex_if"] = {"loo_pearson": c["pearson"], "loo_spearman": c["spearman"]}
        rows.append(pd.DataFrame({"model": "logistic regression", "estimator": "if_exact", "sample_id": tr.ids[convex["index"].to_numpy()],
                                  "predicted": convex["predicted"].to_numpy(), "actual": convex["actual"].to_numpy()}))
    table = pd.concat(rows, ignore_index=True)
    write_json("metrics/fidelity.json", out)
    with atomic_path("plots/fidelity.csv") as tmp:
        table.to_csv(tmp, index=False, float_format="%.6g")
    plots.fidelity_plot(table, out, "plots/fidelity.png")
    for m, c in out["network"].items():
        log.info("%s: leave-one-out Pearson %.3f Spearman %.3f, LDS %.3f", m, c["loo_pearson"], c["loo_spearman"], c["lds"])


if __name__ == "__main__":
    run()
