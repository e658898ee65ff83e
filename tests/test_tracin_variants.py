"""TracIn checkpoint variants: which epochs each keeps, sums of the lr-weighted columns."""
import numpy as np
import pandas as pd
import pytest

from sampleval.influence.tracin_variants import check_variant, epoch_columns, select_epochs, variant_scores


def test_select_epochs():
    epochs = list(range(1, 11))
    assert select_epochs(epochs, "all") == epochs
    assert select_epochs(epochs, "up_to_selected", 6) == [1, 2, 3, 4, 5, 6]
    assert select_epochs(epochs, "burn_in_2") == list(range(3, 11))
    with pytest.raises(ValueError, match="selected epoch"):
        select_epochs(epochs, "up_to_selected")
    with pytest.raises(ValueError, match="keeps none"):
        select_epochs([1, 2], "burn_in_2")
    for bad in ("burn_in_0", "first", "burn_in_x"):
        with pytest.raises(ValueError, match="burn_in_K"):
            check_variant(bad)


def test_variant_scores_sum_the_per_checkpoint_columns():
    rng = np.random.default_rng(0)
    cols = {f"tracin_epoch_{e:03d}": rng.normal(size=5) for e in (1, 2, 3)}
    table = pd.DataFrame({"tracin": sum(cols.values()), **cols, "loss": np.zeros(5)})
    assert epoch_columns(table.columns) == {1: "tracin_epoch_001", 2: "tracin_epoch_002", 3: "tracin_epoch_003"}
    np.testing.assert_allclose(variant_scores(table, "all"), table["tracin"])
    np.testing.assert_allclose(variant_scores(table, "up_to_selected", 2), cols["tracin_epoch_001"] + cols["tracin_epoch_002"])
    np.testing.assert_allclose(variant_scores(table, "burn_in_1"), cols["tracin_epoch_002"] + cols["tracin_epoch_003"])
    with pytest.raises(ValueError, match="no tracin_epoch_NNN"):
        variant_scores(table[["tracin"]], "all")
