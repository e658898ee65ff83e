"""The one out-of-fold engine (sampleval.training.out_of_fold): every sample predicted by a model
that never saw it, one fold rule (refusals name the params key), used by the pipeline's
cleanlab (logistic regression) and the detection sweep's cleanlab (the audited CNN)."""
import numpy as np
import pytest

from sampleval.training.out_of_fold import fold_assignment, out_of_fold_probs


def test_out_of_fold_probs_come_from_models_that_never_saw_the_sample():
    labels = np.repeat(np.arange(3), 20)
    seen: dict[int, set] = {}

    def fit_predict(train_idx, held_out, k):
        seen[k] = set(train_idx.tolist())
        p = np.zeros((len(held_out), 3))
        p[:, k % 3] = 1.0  # marks which fold's model predicted the row
        return p

    probs, fold = out_of_fold_probs(labels, 3, fit_predict, folds=4, seed=3)
    assert set(seen) == {0, 1, 2, 3}
    for i in range(len(labels)):
        assert i not in seen[fold[i]]  # the model that predicted sample i never trained on it
        assert probs[i, fold[i] % 3] == 1.0
    for k in range(4):  # the other folds are exactly what model k trained on
        assert seen[k] == set(np.flatnonzero(fold != k).tolist())
        assert np.bincount(labels[fold == k], minlength=3).tolist() == [5, 5, 5]  # stratified
    assert np.array_equal(fold, fold_assignment(labels, 4, 3))  # seeded
    assert not np.array_equal(fold, fold_assignment(labels, 4, 4))


def test_folds_are_sklearns():
    from sklearn.model_selection import KFold, StratifiedKFold

    rng = np.random.default_rng(0)
    labels = rng.integers(0, 4, 90)
    for fold, cv, y in ((fold_assignment(labels, 5, 7), StratifiedKFold(5, shuffle=True, random_state=7), labels),
                        (fold_assignment(labels, 5, 7, stratify=False), KFold(5, shuffle=True, random_state=7), labels)):
        for k, (train, test) in enumerate(cv.split(np.zeros(len(y)), y)):
            assert np.array_equal(np.flatnonzero(fold == k), test) and np.array_equal(np.flatnonzero(fold != k), train)


@pytest.mark.parametrize("labels, folds, stratify, message", [
    (np.array([0, 0, 0, 1, 1]), 3, True, r"only 2 training samples, fewer than detect\.cleanlab_folds = 3; lower it"),
    (np.array([0, 0, 0, 1]), 2, True, r"only 1 training samples, .* at least 2 samples of every class"),
    (np.array([0, 1, 0]), 4, False, r"only 3 training samples, fewer than detect\.cleanlab_folds = 4; lower it"),
    (np.array([0, 1, 0, 1]), 1, True, r"detect\.cleanlab_folds must be at least 2"),
])
def test_fold_rule_refuses_naming_the_key(labels, folds, stratify, message):
    with pytest.raises(ValueError, match=message):
        fold_assignment(labels, folds, 0, "detect.cleanlab_folds", stratify)


def test_a_fold_of_the_wrong_shape_is_named():
    with pytest.raises(RuntimeError, match=r"fold 0: probabilities of shape \(5, 2\), expected \(5, 3\)"):
        out_of_fold_probs(np.repeat([0, 1], 5), 3, lambda tr, te, k: np.zeros((len(te), 2)), folds=2)


def test_the_logistic_regression_cleanlab_refuses_where_it_used_to_shrink_the_folds():
    """A class with fewer samples than influence.options.cleanlab.folds: the one rule refuses and
    names the key to lower (the estimator used to lower the folds silently)."""
    from sampleval.influence.heuristics import cross_validated_probs

    x = np.random.default_rng(0).normal(size=(43, 3))
    y = np.repeat([0, 1, 2], [20, 20, 3])
    with pytest.raises(ValueError, match=r"only 3 training samples, fewer than influence\.options\.cleanlab\.folds = 5; lower it"):
        cross_validated_probs(x, y, "multiclass", 3, folds=5, seed=0)
    assert cross_validated_probs(x, y, "multiclass", 3, folds=3, seed=0).shape == (43, 3)


def test_the_api_gives_scikit_learns_cross_val_predict():
    """sampleval.api.out_of_fold_probs runs the one engine: the folds and numbers of cross_val_predict."""
    from sklearn.linear_model import LogisticRegression
    from sklearn.model_selection import StratifiedKFold, cross_val_predict

    from sampleval import api

    rng = np.random.default_rng(0)
    y = np.repeat([0, 1, 2], 20)
    x = rng.normal(size=(60, 4)) + y[:, None]
    ours = api.out_of_fold_probs(x, y, folds=4, seed=2)
    theirs = cross_val_predict(LogisticRegression(max_iter=1000), x, y, cv=StratifiedKFold(4, shuffle=True, random_state=2), method="predict_proba")
    np.testing.assert_array_equal(ours, theirs)
