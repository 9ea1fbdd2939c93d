"""Vegetation and water indices: pure functions plus a registry declared as data.

Every function takes reflectance arrays (numpy, dask or xarray; floats in 0..1) and returns an
array of the same shape. Division by zero gives NaN, never inf, so a bad pixel cannot bias a
farm mean: the zonal stage excludes non-finite values.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np
import xarray as xr

from .errors import ConfigError

__all__ = [
    "INDICES",
    "IndexSpec",
    "bands_for",
    "compute_index",
    "evi",
    "ndmi",
    "ndvi",
    "ndwi",
    "resolve_indices",
]


def _ratio(a: Any, b: Any) -> Any:
    """(a - b) / (a + b) with NaN where the sum is zero."""
    den = a + b
    with np.errstate(divide="ignore", invalid="ignore"):
        out = (a - b) / den
    return _finite(out)


def _where(cond: Any, a: Any, b: Any) -> Any:
    # xarray has no __array_function__; dask and numpy dispatch through np.where
    if isinstance(cond, xr.DataArray):
        return xr.where(cond, a, b, keep_attrs=True)
    return np.where(cond, a, b)


def _finite(x: Any) -> Any:
    return _where(np.isfinite(x), x, np.nan)


def ndvi(red: Any, nir: Any) -> Any:
    """Normalised difference vegetation index, (nir - red) / (nir + red)."""
    return _ratio(nir, red)


def evi(blue: Any, red: Any, nir: Any) -> Any:
    """Enhanced vegetation index, 2.5 (nir - red) / (nir + 6 red - 7.5 blue + 1)."""
    den = nir + 6.0 * red - 7.5 * blue + 1.0
    with np.errstate(divide="ignore", invalid="ignore"):
        out = 2.5 * (nir - red) / den
    return _finite(out)


def ndmi(nir: Any, swir16: Any) -> Any:
    """Normalised difference moisture index (Gao's NDWI), (nir - swir16) / (nir + swir16)."""
    return _ratio(nir, swir16)


def ndwi(green: Any, nir: Any) -> Any:
    """McFeeters' water index, (green - nir) / (green + nir): positive over open water."""
    return _ratio(green, nir)


@dataclass(frozen=True)
class IndexSpec:
    """One index: its function, the canonical bands it needs (in argument order) and its range."""

    name: str
    func: Callable[..., Any]
    bands: tuple[str, ...]
    valid_range: tuple[float, float]
    description: str


#: The registry. Order is the order of output columns.
INDICES: Mapping[str, IndexSpec] = {
    s.name: s
    for s in (
        IndexSpec("ndvi", ndvi, ("red", "nir"), (-1.0, 1.0), "greenness, crop vigour"),
        IndexSpec("evi", evi, ("blue", "red", "nir"), (-1.0, 2.5), "greenness, less saturated"),
        IndexSpec("ndmi", ndmi, ("nir", "swir16"), (-1.0, 1.0), "canopy water content (drought)"),
        IndexSpec("ndwi", ndwi, ("green", "nir"), (-1.0, 1.0), "open water (flooding)"),
    )
}


def resolve_indices(names: str | Iterable[str] | None) -> tuple[str, ...]:
    """Normalise a comma list or iterable of index names; None means every registered index.

    Raises
    ------
    ConfigError
        If a name is not in the registry.
    """
    if names is None:
        return tuple(INDICES)
    if isinstance(names, str):
        names = [n for n in names.split(",")]
    out = tuple(dict.fromkeys(n.strip().lower() for n in names if n.strip()))
    unknown = [n for n in out if n not in INDICES]
    if unknown or not out:
        raise ConfigError(
            f"unknown index name(s) {unknown or names!r}; choose from {', '.join(INDICES)}"
        )
    return out


def bands_for(indices: Iterable[str]) -> tuple[str, ...]:
    """The canonical bands needed by ``indices``, in a stable order (registry order)."""
    needed: dict[str, None] = {}
    for name in resolve_indices(list(indices)):
        for band in INDICES[name].bands:
            needed[band] = None
    return tuple(needed)


def compute_index(name: str, bands: Mapping[str, Any]) -> Any:
    """Compute index ``name`` from a mapping of canonical band name to reflectance array.

    Values outside the index's valid range are set to NaN (they come from bad pixels).
    """
    spec = INDICES[resolve_indices([name])[0]]
    missing = [b for b in spec.bands if b not in bands]
    if missing:
        raise ConfigError(f"index {name!r} needs band(s) {missing}; the scene has {sorted(bands)}")
    out = spec.func(*(bands[b] for b in spec.bands))
    lo, hi = spec.valid_range
    return _where((out >= lo) & (out <= hi), out, np.nan)
