"""Label-error detection benchmark: which ranking finds wrong labels, for which kind of noise.

A sweep cell is (noise setting, seed) (:mod:`.cell`); its outputs:

``data/detect/<setting>-s<seed>.parquet``, one row per training sample, in the order of
the training split:

| column | type | meaning |
|---|---|---|
| ``sample_id`` | string | stable id (``digit-0042``) |
| ``label`` | int64 | the (noisy) label trained on |
| ``clean_label`` | int64 | the label before noise injection |
| ``flipped`` | bool | the label was changed by noise injection |
| every other column | float64 | one ranking each, **higher = more suspicious** (:mod:`.rankings`) |

The ranking columns: the estimators in ``detect.rankings`` (plus their
``*_self_influence`` extras), ``cleanlab`` (1 - cleanlab label quality on out-of-fold
probabilities, :mod:`.oof`), ``random``, and the rank-average combinations in
``detect.combinations``.

``metrics/detection/cells/<setting>-s<seed>.json``: the cell's detection metrics per
ranking (:mod:`.quality`), cleanlab's ``find_label_issues`` precision and recall, the
baseline's test accuracy, and ``noise_structure`` (cleanlab's confident joint and what it
says of the noise, :func:`.oof.noise_structure`). :mod:`.summary` aggregates the cells and
chooses the recommended ranking (``detect.recommend.rule``; :func:`.summary.recommended_ranking`).
"""
