"""Refinement loop: DCS by hand, the validation split, and the loop on tiny data."""
import json

import numpy as np
import pandas as pd
import pytest

from sampleval.experiments import refine as rf
from sampleval.data.prepared import Split, load_prepared
from sampleval.data.prepare import prepare_dataset
from sampleval.training.loop import TrainConfig
from sampleval.influence.settings import InfluenceSettings
from typed_params import data_params, noise_params

DATA = data_params(source="digits", root=None, val_fraction=0.3, test_fraction=0.3, limit=200, image_size=8,
                   on_bad_image="fail", uncertainty="ones", frontal_only=True)
NOISE = noise_params(kind="pairwise", rate=0.4, pairs=[[9, 4]], splits=["train"])
INFLUENCE = InfluenceSettings(batch_size=256, damping=0.1, cg_iterations=10, tracin_method="central",
                              options={"tracin": {"burn_in": 0}})  # 2-epoch runs: keep both checkpoints


def test_dcs_hand_case():
    # P = 3 + 2 = 5, N = 1 + 2 = 3: (5 - 3) / 8
    assert rf.dataset_contribution_score(np.array([3.0, -1.0, 2.0, -2.0])) == pytest.approx(0.25)
    assert rf.dataset_contribution_score(np.array([1.0, 2.0])) == 1.0
    assert rf.dataset_contribution_score(np.array([-1.0, -0.5])) == -1.0
    # scale-free: the same data quality at another score scale has the same DCS
    s = np.array([0.3, -0.1, 0.05, -0.02])
    assert rf.dataset_contribution_score(1000 * s) == pytest.approx(rf.dataset_contribution_score(s))
    # removing the harmful samples raises it
    assert rf.dataset_contribution_score(s[s > -0.05]) > rf.dataset_contribution_score(s)
    # = 2 * share of positive mass - 1
    pos = s[s > 0].sum() / np.abs(s).sum()
    assert rf.dataset_contribution_score(s) == pytest.approx(2 * pos - 1)
    assert np.isnan(rf.dataset_contribution_score(np.zeros(3)))
    with pytest.raises(ValueError, match="NaN"):
        rf.dataset_contribution_score(np.array([1.0, np.nan]))


def test_harmfulness_orientation():
    assert rf.harmfulness("tracin", np.array([1.0, -2.0])).tolist() == [-1.0, 2.0]
    assert rf.harmfulness("self_influence", np.array([1.0, 3.0])).tolist() == [1.0, 3.0]


def test_split_validation_is_seeded_stratified_disjoint():
    y = np.repeat(np.arange(4), [10, 7, 3, 2])
    val = Split(x=np.zeros((len(y), 1, 2, 2), np.uint8), y=y, ids=np.array([f"v{i}" for i in range(len(y))]), clean_y=y, flipped=np.zeros(len(y), bool))
    a, b = rf.split_validation(val, 0.5, seed=3, stratify=True)
    assert not (a & b).any() and (a | b).all()
    for c in range(4):  # every class on both sides
        assert a[y == c].any() and b[y == c].any()
    assert b[y == 0].sum() == 5
    a2, _ = rf.split_validation(val, 0.5, seed=3, stratify=True)
    assert np.array_equal(a, a2)
    a3, _ = rf.split_validation(val, 0.5, seed=4, stratify=True)
    assert not np.array_equal(a, a3)
    with pytest.raises(ValueError, match="heldout_fraction"):
        rf.split_validation(val, 1.0, 0, True)


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    out = tmp_path_factory.mktemp("prep")
    prepare_dataset(DATA, NOISE, 0, out)
    return load_prepared(out)


def _setup(prepared, **kw):
    cfg = TrainConfig(epochs=2, batch_size=32, lr=3e-3, device="cpu")
    args = dict(prepared=prepared, cfg=cfg, ranking="tracin", dcs_score="tracin", rounds=2, fraction=0.1, influence=INFLUENCE)
    args.update(kw)
    return rf.RefineSetup(**args)


def test_refine_loop_on_tiny_data(tiny):
    setup = _setup(tiny)
    n = len(setup.train.ids)
    assert setup.n_remove == round(0.1 * n)
    # the held-out part is never seen by training or scoring
    seen_val = []

    def scorer(view, cfg, ckpt_dir, model_path, names, influence, seed):
        seen_val.append(set(view.split("val").ids))
        return rf.score_training_set(view, cfg, ckpt_dir, model_path, names, influence, seed)

    setup.scorer = scorer
    table = rf.run(setup, [0, 1])
    assert len(table) == 2 * 2 * 3
    held = set(setup.val_heldout.ids)
    assert all(not (s & held) for s in seen_val) and all(s == set(setup.val_score.ids) for s in seen_val)
    for (seed, arm), part in table.groupby(["seed", "arm"]):
        part = part.sort_values("round")
        assert part["n_train"].tolist() == [n - r * setup.n_remove for r in range(3)]
        assert part["n_removed"].tolist() == [r * setup.n_remove for r in range(3)]
        assert (part["flipped_removed"] + part["flipped_remaining"]).nunique() == 1
        assert part["dcs"].between(-1, 1).all()
    # round 0 is one training shared by both arms
    r0 = table[table["round"] == 0]
    for col in ("test_accuracy", "dcs", "heldout_loss"):
        assert r0.groupby("seed")[col].nunique().eq(1).all()
    # same params -> same rows
    again = rf.run_refinement(_setup(tiny), 1)
    pd.testing.assert_frame_equal(table[table["seed"] == 1].reset_index(drop=True), again)
    summary = rf.summarize(table, n_bootstrap=200)
    assert set(summary["tests"]["test_accuracy"]) == {"round_1", "round_2"}
    t = summary["tests"]["test_accuracy"]["round_2"]
    assert "p_bh" in t and "cohen_dz" in t and t["n_seeds"] == 2
    assert summary["refined"]["round_2"]["n_train"] == n - 2 * setup.n_remove
    assert (table["test_correct"] == (table["test_accuracy"] * table["n_test"]).round()).all()  # the counts behind the accuracies
    assert t["tested_on"] == "correct counts" and t["n_test"] == len(setup.test.ids)
    assert summary["tests"]["heldout_accuracy"]["round_1"]["n_test"] == len(setup.val_heldout.ids)
    json.dumps(summary)  # JSON-ready


def test_refined_arm_removes_the_most_harmful(tiny):
    setup = _setup(tiny, rounds=1)
    n = len(setup.train.ids)
    calls = []

    def scorer(view, cfg, ckpt_dir, model_path, names, influence, seed):
        ids = view.split("train").ids
        calls.append(ids)
        # a fake ranking: the flipped samples are the most harmful
        flipped = dict(zip(setup.train.ids, setup.train.flipped))
        s = np.array([-1.0 if flipped[i] else 1.0 for i in ids])
        return {name: s for name in names}

    setup.scorer = scorer
    table = rf.run_refinement(setup, seed=0)
    n_flip = int(setup.train.flipped.sum())
    refined = table[(table["arm"] == "refined") & (table["round"] == 1)].iloc[0]
    assert refined["flipped_removed"] == min(n_flip, setup.n_remove)
    assert len(calls[1]) == n - setup.n_remove
    # DCS rises when the harmful mass goes
    assert refined["dcs"] > table[(table["round"] == 0)]["dcs"].iloc[0]


def test_bad_setups_fail_in_one_line(tiny):
    with pytest.raises(ValueError, match="empty the training set"):
        _setup(tiny, rounds=10, fraction=0.1)
    for name in ("self_influence", "loss"):
        with pytest.raises(ValueError, match="not a signed influence"):
            _setup(tiny, dcs_score=name)
    with pytest.raises(ValueError, match="removes no sample"):
        _setup(tiny, fraction=0.001)


def test_plot_writes_png(tiny, tmp_path):
    rows = []
    for seed in (0, 1):
        for arm in rf.ARMS:
            for r in range(3):
                rows.append({"seed": seed, "arm": arm, "round": r, "dcs": 0.1 * r, "test_accuracy": 0.9, "flipped_remaining": 5 - r, "heldout_loss": 0.3})
    rf.refine_plot(pd.DataFrame(rows), {"ranking": "tracin", "n_seeds": 2, "n_remove_per_round": 3}, tmp_path / "r.png")
    assert (tmp_path / "r.png").read_bytes()[:4] == b"\x89PNG"


def test_summarize_tests_accuracies_on_integer_counts():
    from scipy import stats as st

    from sampleval.experiments.stats import signed_rank_statistic

    refined = [326, 327, 330, 331, 329, 335, 333, 328]
    random = [324, 325, 330, 329, 330, 331, 333, 321]  # differences 2 2 0 2 -1 4 0 7: three tied at 2, two zeros
    rows = []
    for seed in range(8):
        for arm, correct in (("refined", refined[seed]), ("random", random[seed])):
            for r in (0, 1):
                c = 320 if r == 0 else correct
                rows.append({"seed": seed, "arm": arm, "round": r, "n_train": 100 - 5 * r, "test_accuracy": round(c / 360, 4),
                             "test_correct": c, "n_test": 360, "heldout_correct": 50, "n_heldout": 60, "heldout_accuracy": 50 / 60,
                             "test_macro_f1": 0.9 + 1e-9 * seed * (arm == "refined"), "dcs": 0.1, "flipped_remaining": 3,
                             "score_val_loss": 0.2, "score_val_accuracy": 0.9, "heldout_loss": 0.3, "heldout_gap": 0.1})
    t = rf.summarize(pd.DataFrame(rows), n_bootstrap=200)["tests"]
    acc = t["test_accuracy"]["round_1"]
    d = np.array(refined) - np.array(random)
    exact = st.permutation_test((d, np.zeros_like(d)), lambda a, b: signed_rank_statistic(a - b), permutation_type="samples",
                                n_resamples=np.inf).pvalue
    assert acc["differences"] == d.tolist() and acc["n_nonzero"] == 6 and acc["n_tied"] == 2
    assert acc["p"] == pytest.approx(exact) and acc["min_attainable_p"] == 2 / 2**6
    assert acc["mean_diff"] == pytest.approx(d.mean() / 360)
    assert t["heldout_accuracy"]["round_1"]["p"] == 1.0 and t["heldout_accuracy"]["round_1"]["n_test"] == 60
    f1 = t["test_macro_f1"]["round_1"]  # other metrics: the unrounded values (differences of 1e-9 are not zeros)
    assert f1["tested_on"] == "unrounded values" and f1["n_nonzero"] == 7


def test_refine_seeds_must_let_bh_over_the_rounds_reach_alpha():
    from pathlib import Path

    from sampleval.config import ParamsError, load_params, typed

    params = load_params(Path(__file__).resolve().parents[1] / "params.yaml")
    assert params["refine"]["rounds"] * 2 / 2 ** len(params["refine"]["seeds"]) <= params["stats"]["alpha"]  # the default can
    params["refine"].update(seeds=[0, 1, 2, 3, 4, 5], rounds=3)  # 3 x 2/64 = 0.094 > 0.05
    with pytest.raises(ParamsError, match=r"6 'refine.seeds' cannot reach 'stats.alpha' = 0.05 after Benjamini-Hochberg over 3 "
                                          r"'refine.rounds'.*2/2\^6 = 0.03125.*0.09375; use at least 7 seeds \(8 to allow one zero"):
        typed(params)
    params["refine"]["rounds"] = 1  # one round: no multiplicity, 6 seeds reach 0.031
    typed(params)
