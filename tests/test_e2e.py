"""End to end: the real `dvc repro` in a temporary git repo on tiny params."""
import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest
import yaml

ROOT = Path(__file__).resolve().parents[1]
pytestmark = pytest.mark.e2e


def _dvc(repo: Path, *args: str) -> str:
    # Stage commands say `python`: it must be this interpreter even when the venv is not activated.
    path = os.path.dirname(sys.executable) + os.pathsep + os.environ.get("PATH", "")
    env = {**os.environ, "PATH": path, "DVC_NO_ANALYTICS": "1", "PYTHONWARNINGS": "ignore"}
    proc = subprocess.run([sys.executable, "-m", "dvc", *args], cwd=repo, env=env, capture_output=True, text=True)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    return proc.stdout + proc.stderr


def _ran(output: str) -> set[str]:
    return set(re.findall(r"Running stage '([^']+)'", output))


def _declared_outputs(repo: Path) -> list[Path]:
    out = _dvc(repo, "stage", "list", "--name-only")
    lock = yaml.safe_load((repo / "dvc.lock").read_text())
    paths = []
    for stage in lock["stages"].values():
        paths += [repo / o["path"] for o in stage.get("outs", [])]
    assert out.strip()
    return paths


def make_repo(base: Path, edit) -> Path:
    """A temporary git + DVC repo with this project's pipeline and ``edit(params)`` applied."""
    repo = base
    for name in ("dvc.yaml", ".gitignore"):
        shutil.copy(ROOT / name, repo / name)
    for folder in ("stages", "sampleval"):
        shutil.copytree(ROOT / folder, repo / folder, ignore=shutil.ignore_patterns("__pycache__"))
    (repo / "data" / "raw").mkdir(parents=True)
    shutil.copy(ROOT / "data" / "raw" / "README.md", repo / "data" / "raw" / "README.md")
    shutil.copy(ROOT / "data" / "corrections.csv", repo / "data" / "corrections.csv")
    params = yaml.safe_load((ROOT / "params.yaml").read_text())
    params["train"]["epochs"] = 3
    params["influence"]["options"]["tracin"]["burn_in"] = 0  # 3 epochs: keep every checkpoint
    params["influence"]["methods"] = ["tracin", "self_influence"]
    params["subsets"].update(scores=["tracin", "self_influence"], variants=["global"], remove_strategies=["remove-harmful"],
                             remove_fractions=[0.1], select_fractions=[0.5], seeds=[0, 1, 2, 3, 4, 5])
    params["stats"]["n_bootstrap"] = 200
    params["fidelity"].update(n_points=5, n_subsets=4)
    params["refine"].update(rounds=1, seeds=[0, 1, 2, 3, 4, 5])  # one round: 6 seeds reach alpha (2/64)
    params["shapes"]["ranking"] = "loss"  # a ranking the tiny sweep below computes
    params["detect"].update(run=["pair94-40-fixed"], rankings=["loss", "tracin_last_layer", "if_last_layer"], cleanlab_folds=2)  # if_last_layer: detect.combinations
    params["suspects"]["ranking"] = "tracin"  # the tiny sweep's recommendation need not be among the tiny influence.methods
    edit(params)
    (repo / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    subprocess.run(["git", "init", "-q"], cwd=repo, check=True)
    _dvc(repo, "init", "-q")
    shutil.copytree(ROOT / ".dvc" / "plots", repo / ".dvc" / "plots")  # the custom plot templates dvc.yaml names
    return repo


def _xray_run(repo: Path) -> Path:
    """The X-ray fixture's run: the whole DAG on a non-digits, multi-label source."""
    sys.path.insert(0, str(Path(__file__).parent))
    from xray_fixtures import make_nih_root

    def edit(p):
        p["data"].update(source="nih14", root="data/raw/nih14", image_size=16, val_fraction=0.2, test_fraction=0.2)
        p["noise"]["kind"] = "none"
        p["train"].update(epochs=2, pos_weight_clamp=[2, 8])
        p["subsets"].update(remove_fractions=[0.2], select_fractions=[0.6], variants=["global"])
        p["stats"]["metric"] = "macro_auroc"
        p["checks"]["allow_chance_level"] = True  # generated pixels carry no signal: the baseline is at chance by design

    make_repo(repo, edit)
    make_nih_root(repo / "data" / "raw" / "nih14")
    _dvc(repo, "repro")
    return repo




def _relabel_flips(repo: Path, n: int) -> list[str]:
    """A reviewed corrections file as `sampleval suspects --export` writes it for a ranking that
    found the first ``n`` flipped training samples: relabel each to its clean class."""
    from sampleval.config import load
    from sampleval.data.prepare import prepare_dataset

    params = load(repo / "params.yaml")
    manifest = prepare_dataset(params.data, params.noise, params.seed, repo / "tmp" / "prepared")
    t = pd.read_parquet(repo / "tmp" / "prepared" / "samples.parquet")
    shutil.rmtree(repo / "tmp")
    flips = t[(t["split"] == "train") & t["flipped"]].head(n)
    rows = [f"{i},relabel,{manifest['classes'][c]}\n" for i, c in zip(flips["sample_id"], flips["clean_label"])]
    (repo / "data" / "corrections.csv").write_text("sample_id,action,new_label\n" + "".join(rows))
    return list(flips["sample_id"])


def _main_run(base: Path) -> tuple[Path, str]:
    """The main tiny pipeline's first `dvc repro` (the module's ``repo``)."""
    repo = make_repo(base, lambda p: p["data"].update(limit=400))
    _relabel_flips(repo, 8)  # the review loop: prepare applies them, the corrections stage tests them
    return repo, _dvc(repo, "repro")


# started with the session (tests/conftest.py), alongside the unit tests: the main tiny pipeline
# first (the module's tests wait for it), then the X-ray fixture's run
BACKGROUND_RUNS = {"test_repro_produces_every_declared_output": _main_run, "test_chest_xray_fixture_end_to_end": _xray_run}


@pytest.fixture(scope="module")
def repo(background_runs, tmp_path_factory):
    future = background_runs.get("test_repro_produces_every_declared_output")
    return future.result() if future is not None else _main_run(tmp_path_factory.mktemp("pipeline"))


def test_repro_produces_every_declared_output(repo):
    repo, first = repo
    outputs = _declared_outputs(repo)
    assert outputs and all(p.exists() for p in outputs), [str(p) for p in outputs if not p.exists()]
    for name in ("train", "influence", "stats", "fidelity", "refine"):
        assert (repo / "metrics" / f"{name}.json").exists()
    scores = pd.read_parquet(repo / "data/influence/scores.parquet")
    assert {"sample_id", "split", "label", "clean_label", "flipped", "tracin", "self_influence"} <= set(scores.columns)
    assert scores["sample_id"].is_unique and (scores["split"] == "train").all()
    stats = json.loads((repo / "metrics/stats.json").read_text())
    assert set(stats["comparisons"]) == {f"{r}/global/{s}" for r in ("tracin", "self_influence") for s in ("remove-harmful@0.1", "select-helpful@0.5")}
    row = stats["comparisons"]["tracin/global/remove-harmful@0.1"]
    assert row["min_attainable_p"] == pytest.approx(2 / 2 ** row["n_nonzero"], abs=1e-4)
    assert row["control_name"] == stats["comparisons"]["self_influence/global/remove-harmful@0.1"]["control_name"]  # one shared control
    assert set(stats["class_matched"]) == set(stats["comparisons"]) and stats["tested_on"] == "correct counts"
    matched = stats["class_matched"]["tracin/global/remove-harmful@0.1"]  # its own control, drawn with the set's class composition
    assert matched["control_name"] == "tracin/global/remove-harmful-matched@0.1" and len(matched["differences"]) == 6
    assert all(isinstance(d, int) for d in row["differences"])  # accuracies compared as correct-counts
    cell = json.loads((repo / "metrics/subsets/random/global/remove-random-0.1.json").read_text())
    assert sorted(cell["seeds"]) == [str(s) for s in range(6)]
    assert all(s["n_correct"] / s["n_test"] == s["accuracy"] for s in cell["seeds"].values())  # unrounded, from the count
    assert len({s["ids_sha256"] for s in cell["seeds"].values()}) == 6  # a new random subset per seed
    assert "report.md" in first or (repo / "report.md").read_text().startswith("# Sample valuation report")
    assert re.findall(r"Running stage '([^']+)'", first)[-1] == "report" and re.search(r"\[report\] report: \S+report\.md", first)
    headline = json.loads((repo / "metrics/headline.json").read_text())
    assert headline["n_flipped"] > 0 and headline["flips_top5"] is not None and 0 < headline["test_accuracy"] <= 1
    assert (repo / "report.html").read_text().count("data:image/png;base64,") >= 5


def test_second_repro_runs_nothing(repo):
    repo, _ = repo
    assert _ran(_dvc(repo, "repro")) == set()


def test_corrections_reach_the_report_with_their_exact_test(repo):
    """The relabelled flips are applied by prepare (manifest), retrained against a random
    control of the same size with 8 seeds, and the report shows the exact p."""
    repo, _ = repo
    manifest = json.loads((repo / "data/prepared/manifest.json").read_text())
    assert manifest["corrections"]["counts"] == {"relabel": 8, "remove": 0, "keep": 0}
    assert manifest["corrections"]["n_flipped_relabelled_to_clean"] == 8
    rec = json.loads((repo / "metrics/corrections.json").read_text())
    assert (rec["n_relabel"], rec["n_remove"], rec["flipped_in_corrected"], len(rec["seeds"])) == (8, 0, 8, 8)
    test = rec["corrected_vs_random"]
    assert test["min_attainable_p"] == pytest.approx(2 / 2 ** test["n_nonzero"], abs=1e-4) and 0 < test["p"] <= 1
    report = (repo / "report.md").read_text()
    section = report[report.index("## Corrections"):]
    row = next(line for line in section.splitlines() if line.startswith("| corrected vs random control"))
    assert f"| {test['p']:.4f} |" in row
    issues = pd.read_csv(repo / "data/label_issues.csv")
    assert issues["rank"].tolist() == list(range(1, len(issues) + 1)) and (issues["ranking"] == "tracin").all()
    assert issues["is_suspect"].sum() == min(50, len(issues)) and (repo / "plots/suspects.png").stat().st_size > 10_000


def test_exported_corrections_mark_prepare(repo):
    """`sampleval suspects --top 10 --export data/corrections.csv` edits a dependency of
    prepare: `dvc status` marks prepare, the one stage that reads the file (not run here)."""
    repo, _ = repo
    path = repo / "data/corrections.csv"
    before = path.read_text()
    try:
        proc = subprocess.run([sys.executable, "-m", "sampleval.cli", "suspects", "--top", "10", "--export", "data/corrections.csv"],
                              cwd=repo, capture_output=True, text=True)
        assert proc.returncode == 0, proc.stderr
        exported = pd.read_csv(path, keep_default_na=False)
        assert len(exported) == 10 and set(exported["action"]) <= {"relabel", "keep"}
        changed = set(re.findall(r"^([\w@.-]+):\s*$", _dvc(repo, "status"), flags=re.M))
        assert changed == {"prepare"}, changed  # its output changes next, and with it everything after it
    finally:
        path.write_text(before)
    assert _ran(_dvc(repo, "repro")) == set()


# The metrics files dvc.yaml declares as `metrics:` (small summaries); everything else is a plain output.
SUMMARY_METRICS = {"metrics/train.json", "metrics/headline.json", "metrics/corrections.json"}


def _leaves(x) -> int:
    """Columns DVC makes of a JSON/YAML value: one per leaf (a list is one; an empty mapping none)."""
    return sum(_leaves(v) for v in x.values()) if isinstance(x, dict) else 1


def test_dvc_views_fit_on_a_screen(repo):
    """`dvc exp show` has few metric columns, `dvc metrics diff` fits on a screen even when
    every metric changes (what a new seed does: the bound is checked by changing every number),
    and every top-level plot definition renders with data."""
    repo, _ = repo
    env = {**os.environ, "GIT_AUTHOR_NAME": "t", "GIT_AUTHOR_EMAIL": "t@t", "GIT_COMMITTER_NAME": "t", "GIT_COMMITTER_EMAIL": "t@t"}
    for args in (["add", "-A"], ["commit", "-qm", "run"]):
        subprocess.run(["git", *args], cwd=repo, env=env, check=True, capture_output=True)
    shown = json.loads(_dvc_stdout(repo, "exp", "show", "--json"))[0]["data"]
    assert set(shown["metrics"]) <= SUMMARY_METRICS, sorted(set(shown["metrics"]) - SUMMARY_METRICS)
    n_metrics = sum(_leaves(m["data"]) for m in shown["metrics"].values())
    n_params = sum(_leaves(p["data"]) for p in shown["params"].values())
    header = _dvc_stdout(repo, "exp", "show", "--csv", "--no-pager").splitlines()[0].split(",")
    assert len(header) == 5 + n_metrics + n_params + len(shown["deps"])  # Experiment, rev, typ, Created, parent
    assert n_metrics <= 40, n_metrics  # was 5,470 (every per-seed and per-cell number)
    # DVC lists every leaf of params.yaml and every dependency file whatever dvc.yaml declares:
    # they are the rest of the columns (README "Changing parameters and comparing")
    assert len(_dvc_stdout(repo, "metrics", "show").splitlines()) < 60
    originals = {f: (repo / f).read_bytes() for f in shown["metrics"]}

    def bump(x):
        if isinstance(x, dict):
            return {k: bump(v) for k, v in x.items()}
        return x + 1 if isinstance(x, (int, float)) and not isinstance(x, bool) else x

    try:
        for f, raw in originals.items():
            (repo / f).write_text(json.dumps(bump(json.loads(raw))))
        diff = _dvc_stdout(repo, "metrics", "diff")
        assert n_metrics <= len(diff.splitlines()) < 60, diff
    finally:
        for f, raw in originals.items():
            (repo / f).write_bytes(raw)
    plots = json.loads(_dvc_stdout(repo, "plots", "show", "--json"))
    assert not plots.get("errors"), plots.get("errors")
    defined = yaml.safe_load((repo / "dvc.yaml").read_text())["plots"]
    names = [next(iter(p)) if isinstance(p, dict) else p for p in defined]
    assert set(names) <= set(plots["data"]) and all(plots["data"][n] for n in names)
    curves = next(c["content"] for n, c in ((n, plots["data"][n][0]) for n in names) if "Detection sweep" in n)
    assert {r["group"] for r in curves["data"]["values"]} >= {"loss", "tracin_last_layer", "cleanlab", "random"}  # one line each


def test_figures_come_from_fidelity_outputs(repo):
    """plots/fidelity.png is drawn by the figures stage from metrics/fidelity.json (its LDS
    table is plots/fidelity_lds.csv); editing plots.py reruns figures and report, no training."""
    repo, _ = repo
    fid = json.loads((repo / "metrics/fidelity.json").read_text())
    lds = pd.read_csv(repo / "plots/fidelity_lds.csv").set_index("estimator")
    for name, entry in fid["network"].items():
        assert lds.loc[name, "lds"] == pytest.approx(entry["lds"], abs=1e-5) and lds.loc[name, "lds_lo"] == pytest.approx(entry["lds_lo"], abs=1e-5)
    assert (repo / "plots/fidelity.png").read_bytes()[:4] == b"\x89PNG"
    plots_py = repo / "sampleval/reporting/figures.py"
    original = plots_py.read_text()
    plots_py.write_text(original + "\n# edited\n")
    try:
        changed = set(re.findall(r"^([\w@.-]+):\s*$", _dvc(repo, "status"), flags=re.M))
        assert "figures" in changed and not changed & {"train", "fidelity", "subsets", "refine", "detect", "influence"}, changed
    finally:
        plots_py.write_text(original)


def _dvc_stdout(repo: Path, *args: str) -> str:
    path = os.path.dirname(sys.executable) + os.pathsep + os.environ.get("PATH", "")
    env = {**os.environ, "PATH": path, "DVC_NO_ANALYTICS": "1", "PYTHONWARNINGS": "ignore"}
    proc = subprocess.run([sys.executable, "-m", "dvc", *args], cwd=repo, env=env, capture_output=True, text=True)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    return proc.stdout


def _cached(output: str) -> tuple[int, int]:
    """(jobs read from the job cache, jobs) of the subsets stage's retrainings."""
    found = re.findall(r"subset retrainings: (\d+) of (\d+) jobs read from the job cache", output)
    assert len(found) == 1, output[-3000:]
    return int(found[0][0]), int(found[0][1])


def test_adding_a_fraction_marks_only_the_subset_stages(repo):
    """Only the stages that read subsets.* are out of date (they are the ones `dvc repro`
    runs: nothing else reads their outputs); the retrainings are checked with the next edit."""
    repo, _ = repo
    params = yaml.safe_load((repo / "params.yaml").read_text())
    params["subsets"]["remove_fractions"] = [0.1, 0.2]
    (repo / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    changed = set(re.findall(r"^([\w@.-]+):\s*$", _dvc(repo, "status"), flags=re.M))
    assert changed == {"check-params", "subsets", "stats", "report", "figures"}  # figures: the subset-cells chart


def test_adding_a_fraction_and_a_ranking_trains_only_new_cells(repo):
    """One `dvc repro` for both edits (the fraction is in params.yaml since the test above)."""
    repo, _ = repo
    params = yaml.safe_load((repo / "params.yaml").read_text())
    assert params["subsets"]["remove_fractions"] == [0.1, 0.2]
    params["influence"]["methods"].append("loss")
    params["subsets"]["scores"].append("loss")
    (repo / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    out = _dvc(repo, "repro")
    assert {"subsets", "stats", "report"} <= _ran(out)
    assert "influence: 2 of 3 jobs read from the job cache" in out  # only the new estimator computed
    # 2 rankings x 2 strategies, their 4 class-matched controls + 2 controls, 6 seeds each, were trained before (60);
    # the new fraction adds 2 ranked cells, 2 class-matched and 1 control, the loss ranking 3 + 3: 66 new retrainings
    assert _cached(out) == (60, 126)
    assert (repo / "metrics/subsets/random/global/remove-random-0.2.json").exists()
    assert (repo / "metrics/subsets/loss/global/remove-harmful-0.2.json").exists()


def test_estimator_options_and_diagnostics(repo):
    """Each estimator's diagnostics reach metrics/influence.json; changing one estimator's
    options (influence.options.<name>) reruns the influence stage, which computes only that
    estimator (the others come from its job cache, data/jobs/influence)."""
    repo, _ = repo
    influence = json.loads((repo / "metrics/influence.json").read_text())
    assert influence["diagnostics"]["tracin"]["epochs_used"] == [1, 2, 3]
    assert influence["diagnostics"]["tracin"]["checkpoints"] == "all"
    assert influence["diagnostics"]["self_influence"]["epochs_used"] == [1, 2, 3]
    methods = "data/influence/methods"
    before = {p.name: p.read_bytes() for p in (repo / methods).iterdir()}
    original = (repo / "params.yaml").read_text()
    params = yaml.safe_load(original)
    params["influence"]["options"]["tracin"]["burn_in"] = 1
    (repo / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    try:
        status = _dvc(repo, "status")
        changed = set(re.findall(r"^([\w@.-]+):\s*$", status, flags=re.M))
        # the sweep (detect) and refine run the estimators themselves, so they declare influence.options too
        assert changed - {"check-params"} == {"influence", "refine", "detect"}, status
        n = len(params["influence"]["methods"])
        out = _dvc(repo, "repro", "influence")
        assert f"influence: {n - 1} of {n} jobs read from the job cache" in out
        assert json.loads((repo / methods / "tracin.json").read_text())["epochs_used"] == [2, 3]
        assert (repo / methods / "self_influence.parquet").read_bytes() == before["self_influence.parquet"]
    finally:
        (repo / "params.yaml").write_text(original)
    _dvc(repo, "repro", "influence")  # DVC's run cache restores the earlier outputs (or the job cache would)
    assert {p.name: p.read_bytes() for p in (repo / methods).iterdir()} == before  # bit for bit


def test_adding_a_detect_seed_computes_only_the_new_cell(repo):
    """detect is one stage; its job cache (data/jobs/detect) keeps the finished cells."""
    repo, _ = repo
    params = yaml.safe_load((repo / "params.yaml").read_text())
    params["detect"]["seeds"] = params["detect"]["seeds"] + [7]
    (repo / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    out = _dvc(repo, "repro")
    assert {"detect", "detect-summary"} <= _ran(out)
    n = len(params["detect"]["seeds"])
    assert f"{n - 1} of {n} jobs read from the job cache" in out
    assert (repo / "data/detect/pair94-40-fixed-s7.parquet").exists() and (repo / "metrics/detection/cells/pair94-40-fixed-s7.json").exists()


def test_bad_params_fail_before_work_with_one_line(repo):
    repo, _ = repo
    params = yaml.safe_load((repo / "params.yaml").read_text())
    params["subsets"]["seeds"] = [0, 1, 2]
    (repo / "bad.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    proc = subprocess.run(
        [sys.executable, "-m", "stages.stats"], cwd=repo, capture_output=True, text=True, env={**os.environ, "SAMPLEVAL_PARAMS": "bad.yaml"}
    )
    assert proc.returncode == 1
    assert proc.stderr.strip().splitlines()[-1].startswith("error: params: 'subsets.seeds'")


def test_chest_xray_fixture_end_to_end(background_runs):
    """Real NIH metadata rows with generated pixels: multi-label through every stage."""
    repo = background_runs["test_chest_xray_fixture_end_to_end"].result()
    scores = pd.read_parquet(repo / "data/influence/scores.parquet")
    assert all(len(v) == 14 for v in scores["label"])
    prepared = pd.read_parquet(repo / "data/prepared/samples.parquet")
    by_split = prepared.groupby("split")["patient_id"].apply(set)
    assert not (by_split["train"] & by_split["test"]) and not (by_split["train"] & by_split["val"])
    train = json.loads((repo / "metrics/train.json").read_text())
    assert set(train["thresholds"]) and 0 <= train["test"]["macro_auroc"] <= 1
    stats = json.loads((repo / "metrics/stats.json").read_text())
    assert stats["metric"] == "test.macro_auroc" and len(stats["comparisons"]) == 4
    refine = json.loads((repo / "metrics/refine.json").read_text())
    assert refine["n_seeds"] == 6 and "round_1" in refine["tests"]["test_macro_f1"]
