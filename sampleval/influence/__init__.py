"""Influence estimators behind one interface.

An estimator is a function ``estimate(ctx: InfluenceContext) -> dict[str, np.ndarray]``
returning one float64 array per output column, one entry per training sample, in the
order of ``ctx.train``. Its main column is named like the estimator; extra columns
start with the estimator's name (``tracin`` also returns ``tracin_epoch_NNN`` per checkpoint).
It leaves its diagnostics (solver, iterations, residual, curvature, fallback, damping,
checkpoints used) in ``ctx.diagnostics[name]`` via :func:`.core.record`.

Layout: :mod:`.core` is the shared vocabulary (checkpoints, samples, batching, summed
gradients, directional derivatives); :mod:`.last_layer` the last-layer quantities;
:mod:`.solvers` CG, power iteration and the PSD projection; :mod:`sampleval.influence.registry` the one entry
per estimator (name, function, kind, options); the estimators are sibling modules
(:mod:`.tracin`, :mod:`.hessian`, :mod:`.if_last_layer`, :mod:`.heuristics`, ...) that import
public names from those only.

``ctx.train`` and ``ctx.val`` unpack into model-ready float tensors (``x, y = ctx.train``);
in the pipeline they are :class:`~sampleval.influence.core.Samples`, which stream
from the uint8 images for the estimators built to scale (``tracin``, ``self_influence``,
which also run on ``ctx.device``) and materialise the float tensors for the others.

Sign convention for every signed estimator: positive = helpful (the sample lowers the
validation loss); negative = harmful. Magnitude estimators (``self_influence``) are
non-negative, high = unusual.

The package's modules: :mod:`.context` (what an estimator receives; :func:`~.core.make_context`
builds it), :mod:`.runner` (:func:`~.runner.run_estimator`, :func:`~.runner.run_estimators`),
:mod:`.registry` (one entry per estimator), :mod:`.settings` (the ``influence`` params section).
"""
