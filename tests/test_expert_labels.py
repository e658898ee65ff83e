"""Google's 2019 expert relabels: the join with NIH labels and detection of expert disagreement,
on real rows (tests/fixtures/google2019_sample.csv, nih14_google_sample.csv)."""
import numpy as np
import pandas as pd
import pytest

from sampleval.config import typed
from sampleval.data import expert_labels as ex
from sampleval.data.xray import NIH14_FINDINGS, parse_nih14_labels
from sampleval.detection.multilabel import label_wise_suspicion
from xray_fixtures import FIXTURES

GOOGLE = FIXTURES / "google2019_sample.csv"
NIH = FIXTURES / "nih14_google_sample.csv"


@pytest.fixture(scope="module")
def experts():
    return ex.read_expert_labels(GOOGLE)


@pytest.fixture(scope="module")
def nih():
    frame = pd.read_csv(NIH)
    return frame["Image Index"].to_numpy(), parse_nih14_labels(frame["Finding Labels"])


def test_fixture_is_the_real_file_shape(experts, nih):
    assert len(experts) == 300 and experts["View Position"].value_counts().to_dict() == {"PA": 150, "AP": 150}
    assert experts[list(ex.EXPERT_COLUMNS)].dtypes.eq(bool).all()
    assert set(nih[0]) == set(experts["Image Index"])


def test_join_by_hand(experts, nih):
    ids, labels = nih
    joined = ex.join_expert_labels(ids, labels, NIH14_FINDINGS, experts)
    assert len(joined) == 300 and joined["position"].tolist() == sorted(joined["position"])
    g = experts.set_index("Image Index")
    frame = pd.read_csv(NIH).set_index("Image Index")
    for _, row in joined.sample(40, random_state=0).iterrows():
        findings = frame.loc[row["sample_id"], "Finding Labels"].split("|")
        nodule = int("Nodule" in findings or "Mass" in findings)
        opacity = int(any(f in findings for f in ("Consolidation", "Infiltration", "Pneumonia")))
        assert row["nih:Nodule or mass"] == nodule and row["nih:Airspace opacity"] == opacity
        assert row["nih:Pneumothorax"] == int("Pneumothorax" in findings)
        assert row["expert:Nodule or mass"] == int(g.loc[row["sample_id"], "Nodule or mass"])
        assert row["disagree:Nodule or mass"] == (nodule != row["expert:Nodule or mass"])
        assert row["view"] == g.loc[row["sample_id"], "View Position"]
    # real disagreement exists in every mapped finding, and more on airspace opacity than pneumothorax
    d = {f: int(joined[f"disagree:{f}"].sum()) for f in ex.EXPERT_TO_NIH}
    assert all(v > 0 for v in d.values()) and d["Airspace opacity"] > d["Pneumothorax"]
    assert "Fracture" not in ex.EXPERT_TO_NIH  # NIH has no fracture label


def test_join_keeps_only_matches_in_our_order(experts, nih):
    ids, labels = nih
    order = np.arange(len(ids))[::-1]
    extra_ids = np.concatenate([ids[order], ["99999999_000.png"]])
    extra_labels = np.concatenate([labels[order], np.zeros((1, 14), np.int8)])
    joined = ex.join_expert_labels(extra_ids, extra_labels, NIH14_FINDINGS, experts)
    assert len(joined) == 300 and joined["sample_id"].tolist() == list(ids[order])


def test_group_probabilities():
    probs = np.full((2, 14), 0.0)
    probs[0, NIH14_FINDINGS.index("Nodule")] = 0.5
    probs[0, NIH14_FINDINGS.index("Mass")] = 0.5
    g = ex.nih_group_probs(probs, NIH14_FINDINGS)
    assert g[0, list(ex.EXPERT_TO_NIH).index("Nodule or mass")] == pytest.approx(0.75)
    assert g[1].max() == 0
    with pytest.raises(ValueError, match="not all among"):
        ex.nih_group_labels(np.zeros((1, 3)), ["a", "b", "c"])


def test_metrics_against_experts(experts, nih):
    ids, labels = nih
    joined = ex.join_expert_labels(ids, labels, NIH14_FINDINGS, experts)
    expert = joined[[f"expert:{f}" for f in ex.EXPERT_TO_NIH]].to_numpy()
    nih_y = joined[[f"nih:{f}" for f in ex.EXPERT_TO_NIH]].to_numpy()
    # a model that predicts the expert label (with some blur) flags exactly the disagreements
    probs = np.where(expert == 1, 0.8, 0.2)
    res = ex.evaluate_against_experts(joined, label_wise_suspicion(probs, nih_y))
    for f in ex.EXPERT_TO_NIH:
        m = res["all"][f]
        assert m["auroc"] == pytest.approx(1.0) and m["average_precision"] == pytest.approx(1.0)
        assert m["n_flagged"] == int(joined[f"disagree:{f}"].sum())
        assert m["nih_positive"] == int(nih_y[:, list(ex.EXPERT_TO_NIH).index(f)].sum())
        assert res["PA"][f]["n"] == 150
    # a model that repeats the NIH label finds nothing: every disagreement scores lowest
    res = ex.evaluate_against_experts(joined, label_wise_suspicion(np.where(nih_y == 1, 0.8, 0.2), nih_y))
    assert res["all"]["Airspace opacity"]["auroc"] == pytest.approx(0.5)
    with pytest.raises(ValueError, match="expected"):
        ex.evaluate_against_experts(joined, np.zeros((3, 3)))


def test_bad_file_one_line(tmp_path):
    bad = tmp_path / "g.csv"
    pd.read_csv(GOOGLE).drop(columns=["Set Id"]).to_csv(bad, index=False)
    with pytest.raises(ValueError, match="Set Id"):
        ex.read_expert_labels(bad)
    frame = pd.read_csv(GOOGLE)
    frame.loc[3, "Pneumothorax"] = "MAYBE"
    frame.to_csv(bad, index=False)
    with pytest.raises(ValueError, match="MAYBE"):
        ex.read_expert_labels(bad)
    with pytest.raises(FileNotFoundError, match="torchxrayvision"):
        ex.read_expert_labels(tmp_path / "missing.csv")


def test_command_on_fixture_images(tmp_path, monkeypatch):
    """`python -m stages.expert_labels` on the fixture's real rows with generated pixels."""
    import json

    import yaml

    from sampleval.io import torch_save
    from sampleval.data.prepare import prepare_dataset
    from sampleval.data.prepared import load_prepared
    from sampleval.training.retrain import train_and_evaluate
    from sampleval.training.loop import TrainConfig
    from stages import expert_labels as stage
    from xray_fixtures import make_nih_root

    root = make_nih_root(tmp_path / "nih", frame=pd.read_csv(NIH))
    params = yaml.safe_load((FIXTURES.parents[1] / "params.yaml").read_text())
    params["data"].update(source="nih14", root=str(root), image_size=8, val_fraction=0.2, test_fraction=0.2)
    params["noise"]["kind"] = "none"
    params["subsets"]["variants"] = ["global"]  # multi-label: no class strata
    params["train"].update(epochs=1, pos_weight_clamp=[2, 8])
    (tmp_path / "params.yaml").write_text(yaml.safe_dump(params))
    monkeypatch.chdir(tmp_path)
    p = typed(params)
    prepare_dataset(p.data, p.noise, 0, "data/prepared")
    cfg = TrainConfig.from_params(p)
    result, _ = train_and_evaluate(load_prepared("data/prepared"), cfg, 0)
    torch_save("models/model.pt", {"model": result.best_state})
    stage.run(["--expert", str(GOOGLE)])
    out = json.loads((tmp_path / "metrics/expert_labels.json").read_text())
    assert sum(out[s]["n_matched"] for s in ("train", "val", "test")) == 300
    m = out["train"]["all"]["Airspace opacity"]
    assert m["n"] == out["train"]["n_matched"] and m["n_flagged"] > 0 and 0 <= m["auroc"] <= 1
    assert set(out["test"]["PA"]) == set(ex.EXPERT_TO_NIH)
