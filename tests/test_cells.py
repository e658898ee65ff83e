import json
from dataclasses import replace

import pytest

from sampleval.experiments.settings import SubsetsParams
from sampleval.experiments.subset_cells import CellKey, comparisons, composition, load_cells, matched_plan, plan, planned_cells, stripped_classes

SUB = SubsetsParams(
    scores=["tracin", "self_influence", "loss"],
    variants=["global", "stratified"],
    remove_strategies=["remove-harmful", "remove-helpful"],
    remove_fractions=[0.05, 0.6],
    select_fractions=[0.4],
    seeds=[0, 1],
)


def test_one_control_serves_every_ranking():
    pairs = plan(SUB)
    assert len(pairs) == 3 * 2 * (2 * 2 + 1)
    controls = {c for _, c in pairs}
    # depends only on direction, fraction and variant
    assert controls == {CellKey("random", v, s, f) for v in ("global", "stratified")
                        for s, f in (("remove-random", 0.05), ("remove-random", 0.6), ("select-random", 0.4))}
    assert len(planned_cells(SUB)) == 30 + 6 + 15  # + a class-matched control per global ranked cell
    tr = CellKey("tracin", "global", "remove-harmful", 0.05)
    assert str(tr.path()) == "metrics/subsets/tracin/global/remove-harmful-0.05.json"
    assert str(dict(pairs)[tr].path()) == "metrics/subsets/random/global/remove-random-0.05.json"


def _record(key, accs, sha, chosen=None):
    chosen = chosen or {"a": 5, "b": 5}
    return {
        "ranking": key.ranking, "variant": key.variant, "strategy": key.strategy, "fraction": key.fraction,
        "n_train": 100, "train_class_composition": {"a": 50, "b": 50},
        "seeds": {str(s): {"accuracy": a, "ids_sha256": f"{sha}{s}", "n_chosen": sum(chosen.values()),
                           "n_trained": 100 - sum(chosen.values()), "flipped_in_chosen": 0, "chosen_class_composition": chosen}
                  for s, a in enumerate(accs)},
    }


def _write_all(root, sub, sha_of=lambda key: key.name):
    for key in planned_cells(sub):
        path = key.path(root)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(_record(key, [0.9, 0.8], sha_of(key))))


def test_load_cells_reads_only_planned_cells_and_names_the_missing(tmp_path):
    sub = replace(SUB, scores=["tracin"], variants=["global"])
    _write_all(tmp_path, sub)
    cells = load_cells(sub, tmp_path)
    assert set(cells) == set(planned_cells(sub))
    comps = comparisons(sub, cells, "accuracy")
    assert comps[0]["strategy"] == {0: 0.9, 1: 0.8} and comps[0]["n_test"] is None  # no counts recorded: the values
    CellKey("random", "global", "select-random", 0.4).path(tmp_path).unlink()
    with pytest.raises(FileNotFoundError, match="select-random-0.4.json is missing"):
        load_cells(sub, tmp_path)
    with pytest.raises(KeyError, match="lacks seeds"):
        load_cells(replace(sub, select_fractions=[], seeds=[0, 1, 2]), tmp_path)


def test_identical_subsets_share_a_signature(tmp_path):
    sub = replace(SUB, scores=["tracin"], variants=["global"], remove_strategies=["remove-harmful"])

    def sha(key):  # remove@0.6 keeps what select@0.4 keeps
        return key.name.replace("remove-harmful@0.6", "select-helpful@0.4").replace("remove-random@0.6", "select-random@0.4")

    _write_all(tmp_path, sub, sha)
    comps = {c["name"]: c for c in comparisons(sub, load_cells(sub, tmp_path), "accuracy")}
    assert comps["tracin/global/remove-harmful@0.6"]["signature"] == comps["tracin/global/select-helpful@0.4"]["signature"]
    assert comps["tracin/global/remove-harmful@0.05"]["signature"] != comps["tracin/global/select-helpful@0.4"]["signature"]


def test_composition_flags_a_stripped_class():
    remove = _record(CellKey("tracin", "global", "remove-harmful", 0.1), [0.9], "x", chosen={"a": 9, "b": 1})
    rows = {r["class"]: r for r in composition(remove)}
    assert rows["a"]["rate"] == pytest.approx(0.18) and rows["a"]["average_rate"] == pytest.approx(0.1)
    assert rows["a"]["strip_ratio"] == pytest.approx(1.8) and not rows["a"]["stripped"]
    assert rows["a"]["chosen_share"] == pytest.approx(0.9) and rows["a"]["train_share"] == 0.5
    worse = _record(CellKey("tracin", "global", "remove-harmful", 0.1), [0.9], "x", chosen={"a": 10, "b": 0})
    assert [r["class"] for r in stripped_classes(worse)] == []  # 2.0x is not more than twice
    worse["train_class_composition"] = {"a": 40, "b": 60}
    assert [r["class"] for r in stripped_classes(worse)] == ["a"]  # 25 % removed vs 10 % on average
    select = _record(CellKey("tracin", "global", "select-helpful", 0.5), [0.9], "x", chosen={"a": 45, "b": 5})
    flagged = stripped_classes(select)  # b: 10 % selected vs 50 % on average
    assert [r["class"] for r in flagged] == ["b"] and flagged[0]["strip_ratio"] == pytest.approx(5.0)


def test_class_matched_controls_are_per_global_cell_and_compared_on_counts(tmp_path):
    sub = replace(SUB, scores=["tracin", "loss"], remove_strategies=["remove-harmful"], remove_fractions=[0.05])
    pairs = matched_plan(sub)
    assert [c.name for c, _ in pairs] == [f"{r}/global/{s}" for r in ("tracin", "loss") for s in ("remove-harmful@0.05", "select-helpful@0.4")]
    cell, matched = pairs[0]
    assert matched == CellKey("tracin", "global", "remove-harmful-matched", 0.05)  # depends on the ranking
    assert str(matched.path()) == "metrics/subsets/tracin/global/remove-harmful-matched-0.05.json"
    assert all(m.variant == "global" for _, m in pairs)  # stratified controls already match the composition
    for key in planned_cells(sub):
        path = key.path(tmp_path)
        path.parent.mkdir(parents=True, exist_ok=True)
        record = _record(key, [0.9, 0.8], key.name)
        for s, correct in zip(record["seeds"].values(), (324, 288)):
            s.update(n_correct=correct - (2 if key.strategy.endswith("matched") else 0), n_test=360)
        path.write_text(json.dumps(record))
    comps = {c["name"]: c for c in comparisons(sub, load_cells(sub, tmp_path), "accuracy")}
    plain, vs = comps["tracin/global/remove-harmful@0.05"], comps["tracin/global/remove-harmful@0.05 vs class-matched"]
    assert plain["control_kind"] == "random" and vs["control_kind"] == "class-matched"
    assert vs["control_name"] == "tracin/global/remove-harmful-matched@0.05"
    assert vs["strategy"] == {0: 324, 1: 288} and vs["control"] == {0: 322, 1: 286} and vs["n_test"] == 360  # integers
    assert comps["tracin/global/remove-harmful@0.05"]["n_test"] == 360
    assert len(comps) == 4 * 2 + 4  # 4 ranked cells per variant, 4 global ones also against their class-matched control
