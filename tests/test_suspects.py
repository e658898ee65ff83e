"""The suspects table (sampleval.reporting.suspects), its ranking choice and its image grid."""
import json
from dataclasses import replace

import numpy as np
import pandas as pd
import pytest
from PIL import Image

from sampleval.detection.rankings import rank_average
from sampleval.reporting.label_issues import found_in_top
from sampleval.reporting.suspects import label_issues_table, plot_suspects, suggestions, write_label_issues
from sampleval.reporting.settings import SuspectsParams
from stages.suspects import recommended_ranking
from typed_params import committed

CLASSES = [str(i) for i in range(10)]


def _scores(n=40, seed=0):
    rng = np.random.default_rng(seed)
    flipped = np.zeros(n, dtype=bool)
    flipped[:5] = True
    return pd.DataFrame({
        "sample_id": [f"digit-{i:04d}" for i in range(n)], "split": "train",
        "label": np.where(flipped, 4, rng.integers(0, 10, n)), "clean_label": np.where(flipped, 9, 0), "flipped": flipped,
        "tracin": np.where(flipped, -5.0, 1.0) + rng.normal(0, 0.1, n),  # signed: harmful = suspect
        "tracin_epoch_001": rng.normal(size=n),  # per-checkpoint parts are no ranking
        "self_influence": rng.random(n),  # magnitude: high = suspect
        "loss": -rng.random(n),
        "cleanlab": rng.random(n) - 0.5,
    })


def _probs(n=40):
    p = np.full((n, 10), 0.01)
    p[:, 9] = 0.91
    return p


def test_table_schema_order_and_orientation():
    s = _scores()
    t = label_issues_table(s, _probs(), CLASSES, "multiclass", "tracin", {}, top_k=7, noise_known=True)
    assert list(t.columns[:7]) == ["sample_id", "given_label", "suggested_label", "suggested_prob", "ranking", "score", "rank"]
    assert {"score_tracin", "score_self_influence", "score_loss", "score_cleanlab"} <= set(t.columns)
    assert not any("epoch" in c for c in t.columns)
    assert t["rank"].tolist() == list(range(1, 41)) and t["score"].is_monotonic_decreasing
    assert set(t["sample_id"].head(5)) == set(s["sample_id"].head(5))  # the harmful ones first
    by_id = t.set_index("sample_id")
    np.testing.assert_allclose(by_id.loc[s["sample_id"], "score_tracin"], -s["tracin"])  # signed: minus
    np.testing.assert_allclose(by_id.loc[s["sample_id"], "score_self_influence"], s["self_influence"])  # magnitude: as is
    assert t["is_suspect"].sum() == 7 and t["is_suspect"].head(7).all()
    assert (t["given_label"].head(5) == "4").all() and (t["suggested_label"] == "9").all() and t["suggested_prob"].iloc[0] == pytest.approx(0.91)
    assert found_in_top(t) == {"k": 5, "n_flipped": 5, "found": 5}


def test_combination_is_the_rank_average_of_registry_suspicions():
    s = _scores()
    t = label_issues_table(s, _probs(), CLASSES, "multiclass", "loss_cleanlab", {"loss_cleanlab": ["loss", "cleanlab"]}, 5, True)
    expected = rank_average({"loss": -s["loss"].to_numpy(), "cleanlab": -s["cleanlab"].to_numpy()}, ["loss", "cleanlab"])
    np.testing.assert_allclose(t.set_index("sample_id").loc[s["sample_id"], "score"], expected)
    assert (t["ranking"] == "loss_cleanlab").all()
    alias = label_issues_table(s, _probs(), CLASSES, "multiclass", "cleanlab_logreg", {}, 5, True)  # the sweep's name for `cleanlab`
    np.testing.assert_allclose(alias.set_index("sample_id").loc[s["sample_id"], "score"], -s["cleanlab"])


@pytest.mark.parametrize("ranking, combos, missing", [("if_cg", {}, "if_cg"), ("combo", {"combo": ["loss", "ekfac"]}, "ekfac")])
def test_a_ranking_missing_from_the_scores_fails_naming_the_fix(ranking, combos, missing):
    with pytest.raises(ValueError) as err:
        label_issues_table(_scores(), _probs(), CLASSES, "multiclass", ranking, combos, 5, True)
    assert f"add {missing} to influence.methods" in str(err.value) and "\n" not in str(err.value)


def test_unknown_noise_gives_null_flipped_and_files_round_trip(tmp_path):
    t = label_issues_table(_scores(), _probs(), CLASSES, "multiclass", "tracin", {}, 5, noise_known=False)
    assert t["flipped"].isna().all() and found_in_top(t) == {}
    write_label_issues(t, tmp_path / "li.parquet", tmp_path / "li.csv")
    pd.testing.assert_frame_equal(pd.read_parquet(tmp_path / "li.parquet"), t)
    csv = pd.read_csv(tmp_path / "li.csv", dtype={"given_label": str, "suggested_label": str})
    assert csv["sample_id"].tolist() == t["sample_id"].tolist() and csv["flipped"].isna().all()


def test_multilabel_suggestions_are_the_findings_above_one_half():
    names, prob = suggestions(np.array([[0.9, 0.2, 0.6], [0.1, 0.3, 0.45]]), ["Mass", "Effusion", "Nodule"], "multilabel")
    assert names == ["Mass|Nodule", "none"]
    np.testing.assert_allclose(prob, [0.6, 0.55])  # the least certain decision


def test_recommended_ranking_prefers_the_summary(tmp_path):
    params = replace(committed(), suspects=SuspectsParams(ranking="recommended", top_k=47))
    summary = tmp_path / "summary.json"
    with pytest.raises(ValueError, match="names no recommended ranking; run `dvc repro detect-summary`"):  # no summary yet
        recommended_ranking(params, str(summary))
    summary.write_text(json.dumps({"recommended": {"ranking": "tracin"}}))
    assert recommended_ranking(params, str(summary)) == "tracin"
    assert recommended_ranking(replace(params, suspects=SuspectsParams(ranking="if_diag", top_k=47)), str(summary)) == "if_diag"  # named: as named
    summary.write_text(json.dumps({"recommended": "loss"}))  # an older summary without the ranking key
    with pytest.raises(ValueError, match="names no recommended ranking"):
        recommended_ranking(params, str(summary))


def test_grid_shows_the_top_k_and_tables_get_a_note(tmp_path):
    s = _scores()
    t = label_issues_table(s, _probs(), CLASSES, "multiclass", "tracin", {}, 12, True)
    rng = np.random.default_rng(0)
    images = {i: rng.integers(0, 255, (1, 8, 8), dtype=np.uint8) for i in s["sample_id"]}
    plot_suspects(t, images, tmp_path / "grid.png", 12)
    w, h = Image.open(tmp_path / "grid.png").size
    assert w > 800 and h > 200  # 10 columns, 2 rows
    features = {i: rng.normal(size=(5, 1, 1)).astype(np.float32) for i in s["sample_id"]}
    plot_suspects(t, features, tmp_path / "table.png", 12)
    assert Image.open(tmp_path / "table.png").size[1] < h
