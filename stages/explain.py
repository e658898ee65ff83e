"""explain: for the misclassified test samples with the highest loss, their most helpful and
most harmful training samples (per-test-sample TracIn over the checkpoints)
-> data/influence/explanations.parquet and plots/explanations.png.

Explanations only describe the final model; nothing here feeds back into training or selection."""
from __future__ import annotations

from sampleval.data.prepared import load_prepared
from sampleval.influence.explain import explain, figure_inputs, plot_explanations
from sampleval.influence.context import Baseline, InfluenceSettings
from sampleval.influence.core import make_context
from sampleval.io import write_parquet
from sampleval.training.loop import TrainConfig
from stages import paths
from stages._common import log, main, start


@main
def run(argv=None) -> None:
    params = start("explain", baseline=True)
    inf = params.influence
    prepared = load_prepared(paths.PREPARED)
    baseline = Baseline.load(prepared, TrainConfig.from_params(params), paths.CHECKPOINTS, paths.MODEL)
    ctx = make_context(baseline, InfluenceSettings.from_params(inf, params.seed))
    tr, te = prepared.split("train"), prepared.split("test")
    df = explain(ctx.final_state, ctx.model, ctx.loss_fn, ctx.checkpoints, ctx.train, te.x, te.y, tr.ids, te.ids,
                 top_k=inf.explain_top_k, n_test=inf.explain_n_test, batch_size=inf.batch_size)
    write_parquet(paths.EXPLANATIONS, df)
    ctx.model.load_state_dict(ctx.final_state)
    images, labels, predictions = figure_inputs(prepared, ctx.model)
    plot_explanations(df, images, labels, paths.EXPLANATIONS_PLOT, predictions=predictions)
    log.info("explained %d test samples", df["test_id"].nunique())


if __name__ == "__main__":
    run()
