"""The estimator registry: documented, kinds, options validated from the dataclasses, TracIn variants."""
import re
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml

from sampleval.influence import registry as reg
from sampleval.config import ParamsError, validate
from sampleval.influence.tracin_variants import variant_scores

ROOT = Path(__file__).resolve().parents[1]


def test_every_registered_estimator_is_in_the_readme_table():
    readme = (ROOT / "README.md").read_text()
    section = readme[readme.index("### Estimators") :]
    table = re.findall(r"^\| `([a-z_]+)`(?:, `([a-z_]+)`)? \|", section, flags=re.M)
    documented = {name for row in table for name in row if name}
    assert set(reg.ESTIMATORS) <= documented, sorted(set(reg.ESTIMATORS) - documented)


def test_every_entry_loads_and_has_a_kind_and_options():
    for name, e in reg.ESTIMATORS.items():
        assert e.kind in (reg.SIGNED, reg.MAGNITUDE)
        assert callable(e.load()) and e.load().__name__ == f"estimate_{name}"
        assert reg.options_for(name) == e.options()  # defaults pass their own checks


def test_kinds_drive_column_kinds_and_signed_estimators():
    assert reg.kind_of("self_influence") == reg.MAGNITUDE and reg.kind_of("tracin") == reg.SIGNED
    assert reg.column_kind("tracincp_self_influence") == reg.MAGNITUDE
    assert reg.column_kind("tracin_epoch_003") == reg.SIGNED and reg.column_kind("cleanlab_quality") == reg.SIGNED
    assert reg.signed_estimators(["tracin", "self_influence", "loss"]) == ["tracin", "loss"]


def test_entries_declare_where_they_run_what_they_need_and_their_suspicion():
    assert {n for n, e in reg.ESTIMATORS.items() if e.shards} == {"tracin", "self_influence"}
    assert {n for n, e in reg.ESTIMATORS.items() if e.fans_out or e.needs_recipe} == {"trak"}
    assert reg.estimator_of("cleanlab_logreg") == "cleanlab" and reg.estimator_of("tracin") == "tracin"
    assert reg.column_kind("cleanlab_logreg") == reg.SIGNED
    v = np.array([-1.0, 2.0])
    assert reg.get("self_influence").suspicion_sign == 1 and reg.get("loss").suspicion_sign == -1
    np.testing.assert_array_equal(reg.suspicion("self_influence", v), v)
    np.testing.assert_array_equal(reg.suspicion("tracin", v), -v)
    np.testing.assert_array_equal(reg.suspicion("cleanlab_logreg", v), -v)


def test_tracin_variant_names_have_one_grammar():
    assert all(reg.is_tracin_variant(v) for v in ("all", "up_to_selected", "burn_in_1", "burn_in_12"))
    assert not any(reg.is_tracin_variant(v) for v in ("burn_in_0", "burn_in_", "burn_in_x", "last", 3, None, "burn_in_\u00b2"))
    params = yaml.safe_load((ROOT / "params.yaml").read_text())
    params["fidelity"]["tracin_checkpoints"] = ["all", "burn_in_0"]
    with pytest.raises(ParamsError, match="fidelity.tracin_checkpoints.*all, up_to_selected or burn_in_K"):
        validate(params)


def test_params_options_are_validated_from_the_dataclasses():
    params = yaml.safe_load((ROOT / "params.yaml").read_text())
    assert set(params["influence"]["options"]) == set(reg.ESTIMATORS)
    validate(params)
    for name, opts in params["influence"]["options"].items():
        assert reg.options_for(name, opts) == reg.options_for(name)  # params.yaml holds the defaults
    params["influence"]["options"]["if_cg"]["curvature"] = "fisher"
    with pytest.raises(ParamsError, match=r"'influence.options.if_cg.curvature' = 'fisher' is not allowed; expected one of exact, gauss_newton"):
        validate(params)
    params["influence"]["options"]["if_cg"] = {"curvature": "exact"}
    with pytest.raises(ParamsError, match="missing key 'influence.options.if_cg.on_negative_curvature'"):
        validate(params)


def test_options_for_overrides_defaults_and_names_bad_values():
    opts = reg.options_for("if_cg", {"cg_tol": 1e-8, "curvature": "gauss_newton"})
    assert opts.curvature == "gauss_newton" and opts.cg_tol == 1e-8 and opts.on_negative_curvature == "gauss_newton"
    assert reg.options_for("if_cg", opts) == opts  # an options instance passes as it is
    with pytest.raises(ValueError, match="influence.options.tracin_randproj.dim = 0"):
        reg.options_for("tracin_randproj", {"dim": 0})
    with pytest.raises(ValueError, match="unknown option 'dimension'"):
        reg.options_for("tracin_randproj", {"dimension": 3})
    with pytest.raises(ValueError, match="unknown influence estimator 'tracinn'"):
        reg.get("tracinn")


def test_checkpoint_epochs():
    epochs = list(range(1, 11))
    assert reg.checkpoint_epochs(epochs) == epochs
    assert reg.checkpoint_epochs(epochs, "up_to_selected", 0, 6) == [1, 2, 3, 4, 5, 6]
    assert reg.checkpoint_epochs(epochs, "all", 2) == list(range(3, 11))
    assert reg.checkpoint_epochs(epochs, "up_to_selected", 2, 6) == [3, 4, 5, 6]
    with pytest.raises(ValueError, match="no checkpoint left"):
        reg.checkpoint_epochs(epochs, "up_to_selected", 6, 6)
    with pytest.raises(ValueError, match="needs the selected epoch"):
        reg.checkpoint_epochs(epochs, "up_to_selected")


def test_tracin_variant_from_per_epoch_columns():
    rng = np.random.default_rng(0)
    cols = {f"tracin_epoch_{e:03d}": rng.normal(size=50) for e in range(1, 5)}
    total = np.zeros(50)
    for v in cols.values():
        total = total + v
    table = pd.DataFrame({"tracin": total, **cols})
    assert np.array_equal(variant_scores(table, "all"), table["tracin"].to_numpy())  # bit for bit
    np.testing.assert_allclose(variant_scores(table, "burn_in_2"), cols["tracin_epoch_003"] + cols["tracin_epoch_004"])
    np.testing.assert_allclose(variant_scores(table.drop(columns=["tracin_epoch_001"]), "up_to_selected", 3), cols["tracin_epoch_002"] + cols["tracin_epoch_003"])


def test_signed_influences_exclude_magnitudes_and_baselines():
    """One home for which scores a Dataset Contribution Score may sum: the registry."""
    from sampleval.config import SCHEMA

    names = reg.signed_influences()
    assert "tracin" in names and "if_diag" in names
    assert not {"self_influence", "loss", "cleanlab"} & set(names)
    assert SCHEMA["refine"]["dcs_score"].check("tracin") and not SCHEMA["refine"]["dcs_score"].check("loss")
