import numpy as np
import pytest

from sampleval.experiments.subsets import choose_subset, control_of, helpfulness, matched_of, parse_strategy

IDS = np.array([f"s{i:03d}" for i in range(200)])
SCORES = np.random.default_rng(0).normal(size=200)
CLASSES = np.repeat(np.arange(4), 50)


@pytest.mark.parametrize("strategy", ["remove-harmful", "remove-helpful", "remove-random", "select-helpful", "select-random"])
@pytest.mark.parametrize("fraction", [0.05, 0.35, 0.8])
def test_exact_sizes(strategy, fraction):
    sub = choose_subset(IDS, SCORES, strategy, fraction, seed=3)
    k = round(fraction * 200)
    assert sub.chosen.sum() == k
    assert sub.keep.sum() == (200 - k if strategy.startswith("remove") else k)
    assert np.array_equal(sub.keep, ~sub.chosen) == strategy.startswith("remove")


def test_ranked_choices_are_the_extremes():
    harmful = choose_subset(IDS, SCORES, "remove-harmful", 0.1, 0)
    helpful = choose_subset(IDS, SCORES, "remove-helpful", 0.1, 0)
    assert SCORES[harmful.chosen].max() < SCORES[~harmful.chosen].min()
    assert SCORES[helpful.chosen].min() > SCORES[~helpful.chosen].max()
    assert not (harmful.chosen & helpful.chosen).any()  # disjoint at 10 %
    select = choose_subset(IDS, SCORES, "select-helpful", 0.1, 0)
    assert np.array_equal(select.chosen, helpful.chosen)


def test_orientation_magnitude_rankings_are_negated():
    values = np.array([3.0, -1.0, 0.5])
    assert np.array_equal(helpfulness("tracin", values), values)
    assert np.array_equal(helpfulness("loss", values), values)  # the loss column is minus the loss
    assert np.array_equal(helpfulness("self_influence", values), -values)
    # remove-harmful on self-influence drops the most unusual (largest) samples
    self_inf = np.abs(SCORES)
    sub = choose_subset(IDS, helpfulness("self_influence", self_inf), "remove-harmful", 0.1, 0)
    assert self_inf[sub.chosen].min() > self_inf[~sub.chosen].max()


def test_remove_f_and_select_one_minus_f_keep_the_same_ids():
    for ranked, control in (("remove-harmful", "select-helpful"), ("remove-random", "select-random")):
        for classes in (None, CLASSES):
            a = choose_subset(IDS, SCORES, ranked, 0.6, seed=4, classes=classes)
            b = choose_subset(IDS, SCORES, control, 0.4, seed=4, classes=classes)
            assert np.array_equal(a.keep, b.keep)


def test_random_control_same_size_depends_on_seed_only():
    a = choose_subset(IDS, None, "remove-random", 0.35, seed=1)
    b = choose_subset(IDS, SCORES, "remove-random", 0.35, seed=1)  # scores are ignored
    c = choose_subset(IDS, None, "remove-random", 0.35, seed=2)
    ranked = choose_subset(IDS, SCORES, "remove-harmful", 0.35, seed=1)
    assert np.array_equal(a.keep, b.keep) and not np.array_equal(a.keep, c.keep)
    assert a.keep.sum() == ranked.keep.sum()
    assert control_of("remove-harmful") == "remove-random" and control_of("select-helpful") == "select-random"


def test_stratified_keeps_class_shares_for_strategy_and_control():
    for strategy in ("remove-harmful", "remove-random", "select-helpful", "select-random"):
        sub = choose_subset(IDS, SCORES, strategy, 0.2, 0, classes=CLASSES)
        assert [int(sub.chosen[CLASSES == c].sum()) for c in range(4)] == [10, 10, 10, 10]


def test_global_ranking_can_strip_a_class():
    scores = np.where(CLASSES == 0, -10.0, 1.0) + SCORES * 0.01
    sub = choose_subset(IDS, scores, "remove-harmful", 0.25, 0)
    assert sub.chosen[CLASSES == 0].all()  # the whole class is gone without stratification


def test_ties_broken_by_id_deterministically():
    sub = choose_subset(IDS, np.zeros(200), "select-helpful", 0.1, 0)
    assert list(IDS[sub.chosen]) == list(IDS[:20])


@pytest.mark.parametrize("fraction", [0.0, 1.0, -0.1, 1.5])
def test_edge_fractions_rejected(fraction):
    with pytest.raises(ValueError, match="strictly between 0 and 1"):
        choose_subset(IDS, SCORES, "remove-harmful", fraction, 0)


def test_fraction_rounding_to_empty_rejected_and_bad_inputs():
    with pytest.raises(ValueError, match="empty or full"):
        choose_subset(IDS[:10], SCORES[:10], "remove-harmful", 0.01, 0)
    with pytest.raises(ValueError, match="NaN"):
        choose_subset(IDS, np.full(200, np.nan), "remove-harmful", 0.1, 0)
    with pytest.raises(ValueError, match="unknown subset strategy"):
        choose_subset(IDS, SCORES, "remove-worst", 0.1, 0)


LABELS = np.repeat(np.arange(4), [80, 60, 40, 20])  # the given labels (unequal classes)
SKEWED = np.where(LABELS == 2, -5.0, 0.0) + SCORES  # the ranking picks class 2 first


@pytest.mark.parametrize("strategy, fraction", [("remove-harmful", 0.1), ("remove-helpful", 0.3), ("select-helpful", 0.25)])
def test_class_matched_control_has_the_strategys_composition_drawn_at_random(strategy, fraction):
    ranked = choose_subset(IDS, SKEWED, strategy, fraction, seed=0)
    per_class = [int(ranked.chosen[LABELS == c].sum()) for c in range(4)]
    draws = [choose_subset(IDS, SKEWED, matched_of(strategy), fraction, seed, labels=LABELS) for seed in (0, 1)]
    for m in draws:
        assert [int(m.chosen[LABELS == c].sum()) for c in range(4)] == per_class  # same size, same classes
        assert np.array_equal(m.keep, ~m.chosen) == strategy.startswith("remove")
    assert not np.array_equal(draws[0].chosen, draws[1].chosen)  # a new draw per seed
    assert not np.array_equal(draws[0].chosen, ranked.chosen)  # random within the class, not the ranked samples
    again = choose_subset(IDS, SKEWED, matched_of(strategy), fraction, 0, labels=LABELS)
    assert np.array_equal(again.keep, draws[0].keep)
    assert parse_strategy(matched_of(strategy)) == (strategy.split("-")[0], "matched")


def test_class_matched_remove_f_and_select_one_minus_f_keep_the_same_ids():
    a = choose_subset(IDS, SKEWED, "remove-harmful-matched", 0.6, seed=4, labels=LABELS)
    b = choose_subset(IDS, SKEWED, "select-helpful-matched", 0.4, seed=4, labels=LABELS)
    assert np.array_equal(a.keep, b.keep)


def test_class_matched_on_multilabel_matches_label_vectors():
    y = np.array([[1, 0], [0, 1], [1, 1], [0, 0]] * 50)
    ranked = choose_subset(IDS, SCORES, "remove-harmful", 0.2, 0)
    m = choose_subset(IDS, SCORES, "remove-harmful-matched", 0.2, 3, labels=y)
    for pattern in ([1, 0], [0, 1], [1, 1], [0, 0]):
        rows = (y == pattern).all(axis=1)
        assert m.chosen[rows].sum() == ranked.chosen[rows].sum()


def test_class_matched_bad_inputs():
    with pytest.raises(ValueError, match="given labels"):
        choose_subset(IDS, SCORES, "remove-harmful-matched", 0.1, 0)
    with pytest.raises(ValueError, match="only ranked strategies"):
        matched_of("remove-random")
    with pytest.raises(ValueError, match="unknown subset strategy"):
        choose_subset(IDS, SCORES, "remove-random-matched", 0.1, 0, labels=LABELS)


def test_class_matched_cell_record_copies_the_composition_and_records_counts():
    import sys
    from pathlib import Path

    sys.path.insert(0, str(Path(__file__).parent))
    from test_experiment import CFG, _prepared, _scores  # noqa: E402

    from sampleval.experiments.subset_runs import run_subset_cell

    prepared = _prepared()
    scores = _scores(prepared, "tracin")
    ranked = run_subset_cell(prepared, CFG, "remove-harmful", 0.2, [0, 1], "global", scores, "tracin")
    matched = run_subset_cell(prepared, CFG, "remove-harmful-matched", 0.2, [0, 1], "global", scores, "tracin")
    assert matched["ranking"] == "tracin" and matched["strategy"] == "remove-harmful-matched"
    for s in ("0", "1"):
        assert matched["seeds"][s]["chosen_class_composition"] == ranked["seeds"][s]["chosen_class_composition"]
        assert matched["seeds"][s]["n_chosen"] == ranked["seeds"][s]["n_chosen"] == 12
        for rec in (ranked, matched):
            seed = rec["seeds"][s]
            assert isinstance(seed["n_correct"], int) and seed["n_test"] == 15 and seed["n_correct"] / 15 == seed["accuracy"]
    assert matched["seeds"]["0"]["ids_sha256"] != matched["seeds"]["1"]["ids_sha256"]  # drawn per seed
    assert matched["seeds"]["0"]["flipped_in_chosen"] < ranked["seeds"]["0"]["flipped_in_chosen"] == 5  # at random within the classes
