import numpy as np
import pytest

from sampleval.data.noise import inject_noise


def _labels():
    rng = np.random.default_rng(0)
    return rng.integers(0, 10, size=1000), rng.random(1000) < 0.6


def test_uniform_flips_exact_count_only_eligible_never_same_class():
    labels, eligible = _labels()
    noisy, flipped = inject_noise(labels, eligible, "uniform", 0.2, 10, rng=np.random.default_rng(1))
    assert flipped.sum() == round(0.2 * eligible.sum())
    assert not flipped[~eligible].any()
    assert np.array_equal(noisy[~flipped], labels[~flipped])
    assert (noisy[flipped] != labels[flipped]).all()
    assert set(np.unique(noisy[flipped])) <= set(range(10))


def test_pairwise_flips_exact_share_of_source_to_target():
    labels, eligible = _labels()
    noisy, flipped = inject_noise(labels, eligible, "pairwise", 0.4, 10, pairs=[[9, 4]], rng=np.random.default_rng(1))
    n_source = int((eligible & (labels == 9)).sum())
    assert flipped.sum() == round(0.4 * n_source)
    assert (labels[flipped] == 9).all() and (noisy[flipped] == 4).all()
    assert not flipped[~eligible].any()


def test_none_and_zero_rate_change_nothing():
    labels, eligible = _labels()
    for kind, rate in (("none", 0.3), ("uniform", 0.0)):
        noisy, flipped = inject_noise(labels, eligible, kind, rate, 10)
        assert np.array_equal(noisy, labels) and not flipped.any()


def test_bad_noise_arguments():
    labels, eligible = _labels()
    with pytest.raises(ValueError, match="itself"):
        inject_noise(labels, eligible, "pairwise", 0.1, 10, pairs=[[3, 3]])
    with pytest.raises(ValueError, match="outside"):
        inject_noise(labels, eligible, "pairwise", 0.1, 10, pairs=[[3, 12]])
    with pytest.raises(ValueError, match="unknown noise kind"):
        inject_noise(labels, eligible, "gaussian", 0.1, 10)


def test_multilabel_flips_exact_per_finding_only_eligible():
    from sampleval.data.noise import inject_multilabel_noise

    rng = np.random.default_rng(0)
    y = (rng.random((200, 5)) < 0.3).astype(np.int8)
    y[0, 2] = -1  # an ignored entry is never chosen
    eligible = np.arange(200) < 150
    noisy, flipped = inject_multilabel_noise(y, eligible, 0.1, "both", rng=np.random.default_rng(1))
    assert flipped.shape == y.shape and not flipped[~eligible].any()
    assert np.array_equal(noisy != y, flipped)
    assert flipped.sum(axis=0).tolist() == [15, 15, round(0.1 * 149), 15, 15]  # per finding, of the valid eligible entries
    assert not flipped[0, 2] and noisy[0, 2] == -1
    again, f2 = inject_multilabel_noise(y, eligible, 0.1, "both", rng=np.random.default_rng(1))
    assert np.array_equal(again, noisy) and np.array_equal(f2, flipped)


def test_multilabel_drop_add_and_findings():
    from sampleval.data.noise import inject_multilabel_noise

    y = np.zeros((100, 3), np.int8)
    y[:40, 0] = 1
    y[:10, 1] = 1
    noisy, flipped = inject_multilabel_noise(y, np.ones(100, bool), 0.5, "drop", findings=[0, 1])
    assert flipped[:, 0].sum() == 20 and flipped[:, 1].sum() == 5 and not flipped[:, 2].any()
    assert (y[flipped] == 1).all() and (noisy[flipped] == 0).all()  # only positives lost
    noisy, flipped = inject_multilabel_noise(y, np.ones(100, bool), 0.25, "add")
    assert flipped[:, 0].sum() == 15 and flipped[:, 2].sum() == 25 and (noisy[flipped] == 1).all()
    with pytest.raises(ValueError, match="direction"):
        inject_multilabel_noise(y, np.ones(100, bool), 0.1, "sideways")
    with pytest.raises(ValueError, match="outside"):
        inject_multilabel_noise(y, np.ones(100, bool), 0.1, findings=[3])
    with pytest.raises(ValueError, match=r"\(N, K\)"):
        inject_multilabel_noise(y[:, 0], np.ones(100, bool), 0.1)
