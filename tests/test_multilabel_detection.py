"""Label-wise detection for multi-label targets, on the real NIH label rows of the Google fixture
(tests/fixtures/nih14_google_sample.csv) with per-finding flips and generated pixels."""
import numpy as np
import pandas as pd
import pytest

from sampleval.detection import multilabel as md
from sampleval.data.noise import inject_multilabel_noise
from sampleval.data.xray import NIH14_FINDINGS, load_nih14, parse_nih14_labels
from sampleval.training.loop import TrainConfig
from xray_fixtures import FIXTURES, make_nih_root

NIH = FIXTURES / "nih14_google_sample.csv"


@pytest.fixture(scope="module")
def noisy():
    clean = parse_nih14_labels(pd.read_csv(NIH)["Finding Labels"])
    noisy, flipped = inject_multilabel_noise(clean, np.ones(len(clean), bool), 0.1, "both", rng=np.random.default_rng(0))
    return clean, noisy, flipped


def test_label_wise_suspicion_by_hand():
    s = md.label_wise_suspicion(np.array([[0.9, 0.2]]), np.array([[1, 1]]))
    assert s[0].tolist() == pytest.approx([-np.log(0.9), -np.log(0.2)])
    s = md.label_wise_suspicion(np.array([[0.9, 0.2]]), np.array([[0, 0]]))
    assert s[0].tolist() == pytest.approx([-np.log(0.1), -np.log(0.8)])
    with pytest.raises(ValueError, match="0/1"):
        md.label_wise_suspicion(np.array([[0.5]]), np.array([[-1]]))


def test_matches_cleanlab_per_class_scores(noisy):
    _, y, _ = noisy
    rng = np.random.default_rng(1)
    probs = rng.random(y.shape)
    ours = md.label_wise_suspicion(probs, y)
    theirs = md.cleanlab_label_wise(probs, y)
    assert theirs.shape == y.shape
    # cleanlab's self-confidence is the probability of the given label: exp(-ours)
    assert np.allclose(1 - np.exp(-ours), theirs, atol=1e-6)
    sample = md.cleanlab_sample_suspicion(probs, y)
    assert sample.shape == (len(y),) and np.all((0 <= sample) & (sample <= 1))


def test_per_finding_detection_on_fixture(noisy):
    clean, y, flipped = noisy
    assert (flipped.sum(axis=0) == round(0.1 * len(y))).all()
    rng = np.random.default_rng(2)
    # a model that learnt the clean labels (with noise) flags the flipped entries
    good = 1 / (1 + np.exp(-(3 * (2 * clean - 1) + rng.normal(0, 1, clean.shape))))
    res = md.per_finding_detection(flipped, md.label_wise_suspicion(good, y), NIH14_FINDINGS)
    assert set(res) == set(NIH14_FINDINGS) | {"macro", "entries"}
    assert res["macro"]["auroc"] > 0.95 and res["entries"]["auroc"] > 0.95
    assert all(res[f]["n_flagged"] == 30 for f in NIH14_FINDINGS)
    assert res["Pneumothorax"]["found_top_10pct"] > 0.8
    # a model that memorised the noisy labels finds nothing (chance)
    memo = 1 / (1 + np.exp(-(3 * (2 * y - 1) + rng.normal(0, 1, y.shape))))
    bad = md.per_finding_detection(flipped, md.label_wise_suspicion(memo, y), NIH14_FINDINGS)
    assert 0.35 < bad["macro"]["auroc"] < 0.65


def test_detection_metrics_by_hand():
    m = md.detection_metrics(np.array([True, False, False, True, False]), np.array([0.9, 0.1, 0.2, 0.3, 0.4]))
    assert m["auroc"] == pytest.approx(5 / 6)  # (flag, clean) pairs ranked right: 0.9 beats all 3, 0.3 beats 0.1 and 0.2
    assert m["found_top_20pct"] == 0.5  # top 1 of 5 = the 0.9 one
    assert np.isnan(md.detection_metrics(np.zeros(3, bool), np.arange(3.0))["auroc"])


def test_out_of_fold_probs_on_fixture_images(tmp_path, noisy):
    root = make_nih_root(tmp_path / "nih", frame=pd.read_csv(NIH).iloc[:60])
    data = load_nih14(root, image_size=8, val_fraction=0.2, test_fraction=0.2, seed=0)
    tr = (data.table["split"] == "train").to_numpy()
    va = (data.table["split"] == "val").to_numpy()
    y = np.stack(data.table["label"].to_numpy())
    cfg = TrainConfig(epochs=1, batch_size=16, device="cpu")
    probs = md.out_of_fold_probs(data.images[tr], y[tr], data.images[va], y[va], cfg, folds=2, seed=0)
    assert probs.shape == y[tr].shape and np.all((probs > 0) & (probs < 1))
    again = md.out_of_fold_probs(data.images[tr], y[tr], data.images[va], y[va], cfg, folds=2, seed=0)
    assert np.array_equal(probs, again)
    with pytest.raises(ValueError, match="folds"):
        md.out_of_fold_probs(data.images[tr], y[tr], data.images[va], y[va], cfg, folds=1)
