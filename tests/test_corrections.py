"""The corrections file: checked as a whole (one line per problem, nothing applied), applied
by prepare after the noise, recorded in the manifest, undone exactly; the comparison."""
import json

import pandas as pd
import pytest

from sampleval.experiments.correction_runs import compare_corrections
from sampleval.data.corrections import APPLIED, CorrectionsError, uncorrected_table
from sampleval.data.prepared import Prepared, load_prepared
from sampleval.data.prepare import prepare_dataset
from sampleval.training.loop import TrainConfig
from typed_params import data_params, noise_params

DATA = data_params(source="digits", root=None, val_fraction=0.15, test_fraction=0.2, limit=300, image_size=8,
                   on_bad_image="fail", uncertainty="ones", frontal_only=True)
NOISE = noise_params(kind="pairwise", rate=0.4, pairs=[[9, 4]], splits=["train"])


@pytest.fixture(scope="module")
def plain(tmp_path_factory):
    out = tmp_path_factory.mktemp("plain")
    prepare_dataset(DATA, NOISE, 0, out)
    return load_prepared(out)


def _write(path, rows: list[str]):
    path.write_text("sample_id,action,new_label\n" + "".join(r + "\n" for r in rows))
    return path


def _ids(prep, split="train", flipped=None):
    t = prep.table[prep.table["split"] == split]
    if flipped is not None:
        t = t[t["flipped"] == flipped]
    return t["sample_id"].tolist()


def test_header_only_file_changes_nothing(tmp_path, plain):
    f = _write(tmp_path / "c.csv", [])
    manifest = prepare_dataset(DATA, NOISE, 0, tmp_path / "p", f)
    prep = load_prepared(tmp_path / "p")
    pd.testing.assert_frame_equal(prep.table, plain.table)
    assert manifest["corrections"]["counts"] == {"relabel": 0, "remove": 0, "keep": 0}
    assert len(manifest["corrections"]["sha256"]) == 64


def test_relabel_remove_keep_applied_recorded_and_undone(tmp_path, plain):
    flips = _ids(plain, flipped=True)
    clean = _ids(plain, flipped=False)
    rows = [f"{flips[0]},relabel,9", f"{flips[1]},remove,", f"{clean[0]},keep,", f"{clean[1]},relabel,3"]
    f = _write(tmp_path / "c.csv", rows)
    manifest = prepare_dataset(DATA, NOISE, 0, tmp_path / "p", f)
    prep = load_prepared(tmp_path / "p")
    t = prep.table.set_index("sample_id")
    assert t.loc[flips[0], "label"] == 9 and not t.loc[flips[0], "flipped"]  # fixed: no longer a wrong label
    assert flips[1] not in t.index and clean[0] in t.index
    assert t.loc[clean[1], "label"] == 3 and t.loc[clean[1], "flipped"] == (t.loc[clean[1], "clean_label"] != 3)
    rec = manifest["corrections"]
    assert rec["counts"] == {"relabel": 2, "remove": 1, "keep": 1}
    assert rec["n_flipped_relabelled_to_clean"] == 1 and rec["n_flipped_removed"] == 1
    assert manifest["n_flipped"]["train"] == plain.table.query("split == 'train'")["flipped"].sum() - 2 + int(t.loc[clean[1], "flipped"])
    applied = pd.read_parquet(tmp_path / "p" / APPLIED)
    assert set(applied["sample_id"]) == {flips[0], flips[1], clean[1]}  # keep changes nothing
    pd.testing.assert_frame_equal(uncorrected_table(prep.table, applied), plain.table)


@pytest.mark.parametrize("rows, message", [
    (["{f},relabel,9", "nope-1,relabel,9"], "unknown sample ids"),
    (["{v},relabel,9"], "ids outside the training split"),
    (["{f},relabel,nine"], "unknown labels"),
    (["{f},relabel,9", "{f},remove,"], "duplicate rows"),
    (["{f},relabel,"], "relabel without new_label"),
    (["{f},delete,"], "unknown action"),
    (["{f},remove,9"], "new_label given for remove/keep"),
])
def test_bad_rows_fail_in_one_line_and_nothing_is_written(tmp_path, plain, rows, message):
    f = _write(tmp_path / "c.csv", [r.format(f=_ids(plain, flipped=True)[0], v=_ids(plain, "val")[0]) for r in rows])
    with pytest.raises(CorrectionsError) as err:
        prepare_dataset(DATA, NOISE, 0, tmp_path / "p", f)
    text = str(err.value)
    assert message in text and "\n" not in text and "line" in text and ";" in text  # rows named, then the fix
    assert not (tmp_path / "p").exists()  # nothing half-applied


def test_wrong_columns_fail_naming_them(tmp_path, plain):
    (tmp_path / "c.csv").write_text("id,action\nx,keep\n")
    with pytest.raises(CorrectionsError, match="needs exactly sample_id, action, new_label"):
        prepare_dataset(DATA, NOISE, 0, tmp_path / "p", tmp_path / "c.csv")


def test_comparison_trains_nothing_without_corrections(plain):
    empty = pd.DataFrame(columns=["sample_id", "action", "new_label"])
    rec = compare_corrections(plain, empty, TrainConfig(epochs=1), list(range(8)), "accuracy", 0.05, 100)
    assert rec["n_corrections"] == 0 and "nothing trained" in rec["note"]


def test_comparison_against_a_random_control_of_the_same_size(tmp_path, plain):
    flips = _ids(plain, flipped=True)[:6]
    f = _write(tmp_path / "c.csv", [f"{i},relabel,9" for i in flips[:4]] + [f"{i},remove," for i in flips[4:]])
    prepare_dataset(DATA, NOISE, 0, tmp_path / "p", f)
    prep = load_prepared(tmp_path / "p")
    applied = pd.read_parquet(tmp_path / "p" / APPLIED)
    before = Prepared(prep.images, uncorrected_table(prep.table, applied), prep.task, prep.classes)
    seeds = list(range(8))
    rec = compare_corrections(before, applied, TrainConfig(epochs=1, batch_size=64), seeds, "accuracy", 0.05, 100)
    assert (rec["n_relabel"], rec["n_remove"], rec["flipped_in_corrected"]) == (4, 2, 6)
    assert set(rec["per_seed"]) == {"before", "corrected", "random"} and all(len(v) == 8 for v in rec["per_seed"].values())
    for key in ("corrected_vs_random", "corrected_vs_before"):
        t = rec[key]
        assert t["min_attainable_p"] == pytest.approx(2 / 2 ** t["n_nonzero"]) and 0 < t["p"] <= 1
    assert sum(rec["random_class_composition_mean"].values()) == pytest.approx(6)
    json.dumps(rec)


def test_report_section_shows_the_suspects_and_the_exact_test():
    from sampleval.reporting.label_issues import suspects_summary
    from sampleval.reporting.report_inputs import ReportInputs
    from sampleval.reporting.sections_labels import section_corrections

    table = pd.DataFrame({"rank": [1, 2], "sample_id": ["a", "b"], "given_label": ["4", "3"], "suggested_label": ["9", "3"],
                          "suggested_prob": [0.8, 0.9], "score": [2.0, 1.0], "ranking": "tracin",
                          "flipped": pd.array([True, False], dtype="boolean")})
    test = {"mean_diff": 0.02, "p": 0.0078125, "min_attainable_p": 0.0078125, "cohen_dz": 1.2}
    corr = {"n_corrections": 2, "n_relabel": 2, "n_remove": 0, "flipped_in_corrected": 1, "flipped_in_random_mean": 0.25,
            "seeds": list(range(8)), "metric": "test.accuracy", "mean": {"corrected": 0.97, "random": 0.95, "before": 0.955},
            "corrected_vs_random": test, "corrected_vs_before": {**test, "p": 0.0234}, "corrected_class_composition": {"4": 1, "3": 1}}
    text = "\n".join(section_corrections(ReportInputs({}, {}, {}, None, extra={"suspects": suspects_summary(table, 1), "corrections": corr})))
    assert "| 1 | a | 4 | 9 (0.80) | 2.000 | yes |" in text and "1 of the 1 injected flips" in text
    assert "| corrected vs random control | 0.9700 | 0.9500 | 0.0200 | 0.0078 | 0.0078 | 1.200 |" in text and "| 0.0234 |" in text
    none = "\n".join(section_corrections(ReportInputs({}, {}, {}, None, extra={"corrections": {"n_corrections": 0, "note": "x"}})))
    assert "No corrections yet" in none and section_corrections(ReportInputs({}, {}, {}, None)) == []
