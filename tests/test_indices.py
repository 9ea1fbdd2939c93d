from __future__ import annotations

import dask.array as da
import numpy as np
import pytest
import xarray as xr

from agrisat.errors import ConfigError
from agrisat.indices import INDICES, bands_for, compute_index, resolve_indices


def test_ndvi_by_hand() -> None:
    red = np.array([0.1, 0.05, 0.0])
    nir = np.array([0.3, 0.45, 0.0])
    got = compute_index("ndvi", {"red": red, "nir": nir})
    assert got[0] == pytest.approx(0.2 / 0.4)
    assert got[1] == pytest.approx(0.4 / 0.5)
    assert np.isnan(got[2])  # 0/0 is not a value


def test_evi_ndmi_ndwi_by_hand() -> None:
    b = {
        "blue": np.array([0.04]),
        "green": np.array([0.08]),
        "red": np.array([0.05]),
        "nir": np.array([0.4]),
        "swir16": np.array([0.2]),
    }
    assert compute_index("evi", b)[0] == pytest.approx(2.5 * 0.35 / (0.4 + 0.3 - 0.3 + 1.0))
    assert compute_index("ndmi", b)[0] == pytest.approx(0.2 / 0.6)
    assert compute_index("ndwi", b)[0] == pytest.approx(-0.32 / 0.48)


def test_out_of_range_is_nan() -> None:
    # negative reflectance from a bad offset makes NDVI leave [-1, 1]
    got = compute_index("ndvi", {"red": np.array([-0.2]), "nir": np.array([0.1])})
    assert np.isnan(got[0])


def test_lazy_inputs_stay_lazy() -> None:
    red = xr.DataArray(da.from_array(np.full((2, 3), 0.1), chunks=1), dims=("y", "x"))
    nir = xr.DataArray(da.from_array(np.full((2, 3), 0.5), chunks=1), dims=("y", "x"))
    out = compute_index("ndvi", {"red": red, "nir": nir})
    assert isinstance(out, xr.DataArray)
    assert isinstance(out.data, da.Array)
    assert float(out.compute()[0, 0]) == pytest.approx(0.4 / 0.6)


def test_registry_and_bands() -> None:
    assert {"ndvi", "evi", "ndmi", "ndwi"} <= set(INDICES)
    assert bands_for(["ndvi"]) == ("red", "nir")
    assert set(bands_for(["ndwi", "ndmi"])) == {"green", "nir", "swir16"}
    assert resolve_indices("NDVI, ndmi") == ("ndvi", "ndmi")
    with pytest.raises(ConfigError, match="unknown index"):
        resolve_indices("ndvi,foo")
    with pytest.raises(ConfigError, match="needs band"):
        compute_index("ndmi", {"nir": np.array([0.1])})
