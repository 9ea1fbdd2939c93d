"""``arrowops.isin`` answers exactly as pandas' ``isin`` (the reference), whatever the input."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from agrisat.arrowops import isin

IDS = pd.Series([f"F{i:04d}" for i in range(300)] * 3, dtype="str")


@pytest.mark.parametrize(
    "values",
    [
        IDS.unique()[:200],  # an ArrowStringArray
        {"F0001", "F0299", "nope"},  # a set
        ["F0001", None],  # a missing value: pandas' rules
        [],
        pd.Index(["F0002"]),
        np.array(["F0003", "F0004"], dtype=object),
    ],
)
def test_isin_equals_pandas(values) -> None:  # type: ignore[no-untyped-def]
    want = IDS.isin(list(values) if isinstance(values, set) else values).to_numpy()
    got = isin(IDS, values)
    assert got.dtype == bool and got.shape == want.shape
    np.testing.assert_array_equal(got, want)
    assert got.sum() == want.sum()


def test_isin_on_object_text_indexes_nulls_and_numbers() -> None:
    obj = IDS.astype(object)
    np.testing.assert_array_equal(isin(obj, ["F0001"]), obj.isin(["F0001"]).to_numpy())
    nulls = pd.Series(["a", None, "b"], dtype="str")
    np.testing.assert_array_equal(isin(nulls, ["a"]), [True, False, False])
    ix = pd.Index(["x", "F0001"])
    np.testing.assert_array_equal(isin(ix, IDS.unique()), [False, True])
    np.testing.assert_array_equal(isin(pd.Series([1, 2, 3]), [2]), [False, True, False])
