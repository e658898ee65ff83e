"""The `sampleval` command (python -m sampleval.cli) and the Python API (sampleval.api)."""
import subprocess
import sys

import numpy as np
import pandas as pd
import pytest
import torch

from sampleval import api
from sampleval.cli import main
from sampleval.data.corrections import check_corrections, read_corrections


@pytest.fixture
def table(tmp_path):
    t = pd.DataFrame({
        "sample_id": [f"s{i}" for i in range(6)], "given_label": ["4", "4", "3", "4", "1", "9"],
        "suggested_label": ["9", "4", "8", "9", "1", "9"], "suggested_prob": [0.9, 0.6, 0.5, 0.8, 0.99, 0.97],
        "ranking": "tracin", "score": [6.0, 5, 4, 3, 2, 1], "rank": [1, 2, 3, 4, 5, 6],
        "flipped": pd.array([True, False, False, True, False, False], dtype="boolean"),
    })
    path = tmp_path / "label_issues.parquet"
    t.to_parquet(path)
    return path


def test_suspects_prints_top_rows_and_exports_a_valid_corrections_file(tmp_path, table, capsys):
    out = tmp_path / "corrections.csv"
    assert main(["suspects", "--top", "3", "--table", str(table), "--export", str(out), "--manifest", str(tmp_path / "none.json")]) == 0
    text = capsys.readouterr().out
    assert "s0" in text and "s2" in text and "s3" not in text and "injected flips in these 3: 1 of 2" in text
    corr, digest = read_corrections(out)
    assert corr[["sample_id", "action", "new_label"]].values.tolist() == [["s0", "relabel", "9"], ["s1", "keep", ""], ["s2", "relabel", "8"]]
    prepared = pd.DataFrame({"sample_id": [f"s{i}" for i in range(6)], "split": "train"})
    check_corrections(corr, prepared, [str(i) for i in range(10)], "multiclass")  # what prepare will accept
    assert digest is not None


def test_suspects_without_a_table_fails_in_one_line(tmp_path, capsys):
    assert main(["suspects", "--table", str(tmp_path / "missing.parquet")]) == 1
    err = capsys.readouterr().err.strip()
    assert err.startswith("error:") and "dvc repro" in err and "\n" not in err


def test_report_command_prints_the_path_and_first_lines(tmp_path):
    report = tmp_path / "report.md"
    report.write_text("# Sample valuation report\n" + "".join(f"line {i}\n" for i in range(40)))
    proc = subprocess.run([sys.executable, "-m", "sampleval.cli", "report", "--path", str(report), "--lines", "5"],
                          capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
    lines = proc.stdout.splitlines()
    assert lines[0] == f"report: {report.resolve()}" and lines[1] == "# Sample valuation report" and "36 more lines" in lines[-1]
    missing = subprocess.run([sys.executable, "-m", "sampleval.cli", "report", "--path", str(tmp_path / "no.md")], capture_output=True, text=True)
    assert missing.returncode == 1 and "dvc repro" in missing.stderr


def test_label_issues_api_finds_flipped_labels_from_out_of_fold_probs():
    from sklearn.datasets import load_digits

    x, y = load_digits(return_X_y=True)
    x, y = x[:400] / 16, y[:400].copy()
    rng = np.random.default_rng(0)
    flip = rng.choice(len(y), 20, replace=False)
    y[flip] = (y[flip] + 1) % 10
    probs = api.out_of_fold_probs(x, y, folds=5, seed=0)
    assert probs.shape == (400, 10) and np.allclose(probs.sum(1), 1)
    issues = api.label_issues(y, probs, class_names=[f"d{i}" for i in range(10)])
    assert len(issues) == 400 and set(issues["rank"]) == set(range(1, 401))
    top = issues.sort_values("rank").index[:20]
    assert len(set(top) & set(flip)) >= 15  # most flips rank first
    assert issues.loc[flip, "is_label_issue"].mean() > 0.7 and issues["given_label"].iloc[0].startswith("d")
    with pytest.raises(ValueError, match="labels must be integers"):
        api.label_issues(np.full(400, 10), probs)


def test_tracin_scores_api_equals_the_definition():
    """sum over checkpoints of lr * grad(summed val loss) . grad(loss of training sample i), by autograd."""
    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Linear(5, 3))
    states = []
    for _ in range(2):
        with torch.no_grad():
            for p in model.parameters():
                p.add_(0.1 * torch.randn_like(p))
        states.append(({k: v.clone() for k, v in model.state_dict().items()}, 0.01))
    xt, yt = torch.randn(20, 5), torch.randint(0, 3, (20,))
    xv, yv = torch.randn(8, 5), torch.randint(0, 3, (8,))
    df = api.tracin_scores(model, states, (xt, yt), (xv, yv))
    assert list(df.columns) == ["tracin", "suspicion", "tracin_epoch_001", "tracin_epoch_002"] and len(df) == 20
    expected = np.zeros(20)
    for state, lr in states:
        model.load_state_dict(state)
        params = list(model.parameters())
        gv = torch.autograd.grad(torch.nn.functional.cross_entropy(model(xv), yv, reduction="sum"), params)
        for i in range(20):
            gi = torch.autograd.grad(torch.nn.functional.cross_entropy(model(xt[i:i + 1]), yt[i:i + 1]), params)
            expected[i] += lr * sum(float((a * b).sum()) for a, b in zip(gv, gi))
    np.testing.assert_allclose(df["tracin"], expected, atol=2e-4)  # central differences in float32: a few 1e-5
    exact = api.tracin_scores(model, states, (xt, yt), (xv, yv), method="jvp")
    np.testing.assert_allclose(exact["tracin"], expected, rtol=1e-4, atol=1e-7)
    np.testing.assert_allclose(df["suspicion"], -df["tracin"])
