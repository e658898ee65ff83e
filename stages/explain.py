"""explain: for the misclassified test samples with the highest loss, their most helpful and
most harmful training samples (per-test-sample TracIn over the checkpoints)
-> data/influence/explanations.parquet and plots/explanations.png.

Explanations only describe the final model; nothing here feeds back into training or selection."""
from __future__ import annotations

import numpy as np

from sampleval.data.prepared import load_prepared
from sampleval.explain import explain, plot_explanations
from sampleval.influence import make_context
from sampleval.io import write_parquet
from sampleval.training import TrainConfig, predict_logits
from stages._common import log, main, start


@main
def run(argv=None) -> None:
    params = start("explain", baseline=True)
    inf = params["influence"]
    prepared = load_prepared("data/prepared")
    ctx = make_context(
        prepared, TrainConfig.from_params(params), "models/checkpoints", "models/model.pt",
        inf["batch_size"], inf["damping"], inf["cg_iterations"], params["seed"],
    )
    tr, te = prepared.split("train"), prepared.split("test")
    df = explain(ctx.final_state, ctx.model, ctx.loss_fn, ctx.checkpoints, ctx.train, te.x, te.y, tr.ids, te.ids,
                 top_k=inf["explain_top_k"], n_test=inf["explain_n_test"], batch_size=inf["batch_size"])
    write_parquet("data/influence/explanations.parquet", df)
    ctx.model.load_state_dict(ctx.final_state)
    images = {**dict(zip(tr.ids, tr.x)), **dict(zip(te.ids, te.x))}

    def name(y) -> str:
        y = np.asarray(y)
        if prepared.task == "multiclass":
            return prepared.classes[int(y)]
        return ",".join(c for c, v in zip(prepared.classes, y) if v > 0) or "none"

    labels = {**{i: name(y) for i, y in zip(tr.ids, tr.y)}, **{i: name(y) for i, y in zip(te.ids, te.y)}}
    logits = predict_logits(ctx.model, te.x)
    if prepared.task == "multiclass":
        predictions = {i: prepared.classes[int(k)] for i, k in zip(te.ids, logits.argmax(1))}
    else:
        predictions = {i: name(row > 0) for i, row in zip(te.ids, logits)}
    plot_explanations(df, images, labels, "plots/explanations.png", predictions=predictions)
    log.info("explained %d test samples", df["test_id"].nunique())


if __name__ == "__main__":
    run()
