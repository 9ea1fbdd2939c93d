"""Band vocabulary and reflectance scaling of Sentinel-2 L2A assets.

Public catalogs name the same Sentinel-2 band differently: Earth Search v1 says ``red``, Earth
Search v0 and Planetary Computer say ``B04``, Copernicus Data Space says ``B04_10m`` (and also
``B04_20m``, ``B04_60m``). This module maps all of them onto one canonical vocabulary
(:data:`BANDS`) and resolves, per asset, how digital numbers become reflectance.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

import pystac

__all__ = [
    "BANDS",
    "DEFAULT_SCALE",
    "OFFSET_BASELINE",
    "format_baseline",
    "map_bands",
    "parse_baseline",
    "reflectance_scaling",
]

#: canonical band names, in the order the normalised item lists them
BANDS: tuple[str, ...] = (
    "coastal",
    "blue",
    "green",
    "red",
    "rededge1",
    "rededge2",
    "rededge3",
    "nir",
    "nir08",
    "nir09",
    "swir16",
    "swir22",
    "scl",
)

DEFAULT_SCALE = 1e-4
#: from this processing baseline on, L2A products carry BOA_ADD_OFFSET = -1000 DN
OFFSET_BASELINE: tuple[int, int] = (4, 0)
_BOA_OFFSET = -0.1

# Sentinel-2 band numbers (ESA/PC/CDSE vocabulary) -> canonical name. B10 (cirrus) is L1C only.
_BAND_NUMBERS: dict[str, str] = {
    "B01": "coastal",
    "B02": "blue",
    "B03": "green",
    "B04": "red",
    "B05": "rededge1",
    "B06": "rededge2",
    "B07": "rededge3",
    "B08": "nir",
    "B8A": "nir08",
    "B09": "nir09",
    "B11": "swir16",
    "B12": "swir22",
    "SCL": "scl",
}

# "B4", "b04", "B8A", "SCL", optionally with a CDSE resolution suffix "_10m"
_BAND_KEY_RE = re.compile(r"^(B(\d{1,2})(A?)|SCL)(?:_(\d+)m)?$", re.IGNORECASE)

# Centre wavelengths (micrometres) of the S2 MSI bands, to tell apart bands whose eo:bands
# common_name is ambiguous ("rededge" is used for B05, B06, B07 and, on PC, B8A).
_WAVELENGTHS: dict[str, float] = {
    "coastal": 0.443,
    "blue": 0.490,
    "green": 0.560,
    "red": 0.665,
    "rededge1": 0.704,
    "rededge2": 0.740,
    "rededge3": 0.783,
    "nir": 0.842,
    "nir08": 0.865,
    "nir09": 0.945,
    "swir16": 1.610,
    "swir22": 2.190,
}
_WAVELENGTH_TOLERANCE = 0.015
_UNAMBIGUOUS_COMMON = {
    "coastal",
    "blue",
    "green",
    "red",
    "nir",
    "nir08",
    "nir09",
    "swir16",
    "swir22",
}

# ranks of the ways a key can be recognised: an exact canonical key beats a band number, which
# beats an eo:bands guess
_EXACT, _NUMBERED, _EO = 0, 1, 2


def _band_number_key(key: str) -> tuple[str, float] | None:
    """Return (canonical, resolution in m or 0) for "B04", "B8A", "SCL_20m"...; None otherwise."""
    match = _BAND_KEY_RE.match(key)
    if match is None:
        return None
    name = "SCL" if match.group(1).upper() == "SCL" else f"B{int(match.group(2)):02d}"
    if match.group(3):
        name = f"B{int(match.group(2))}A"
    canonical = _BAND_NUMBERS.get(name)
    if canonical is None:
        return None
    resolution = float(match.group(4)) if match.group(4) else 0.0
    return canonical, resolution


def _from_eo_bands(asset: pystac.Asset) -> str | None:
    """Guess the canonical band of a single-band asset from its ``eo:bands`` entry."""
    eo_bands = asset.extra_fields.get("eo:bands")
    # multi-band assets (visual, preview) are composites, never a band
    if not isinstance(eo_bands, list) or len(eo_bands) != 1 or not isinstance(eo_bands[0], dict):
        return None
    entry: Mapping[str, Any] = eo_bands[0]
    name = entry.get("name")
    if isinstance(name, str):
        numbered = _band_number_key(name)
        if numbered is not None:
            return numbered[0]
    common = entry.get("common_name")
    wavelength = entry.get("center_wavelength")
    if isinstance(wavelength, int | float) and isinstance(common, str):
        # the wavelength settles "rededge" (B05/B06/B07/B8A) and "nir" (B08 vs B8A)
        best = min(_WAVELENGTHS, key=lambda band: abs(_WAVELENGTHS[band] - wavelength))
        if abs(_WAVELENGTHS[best] - wavelength) <= _WAVELENGTH_TOLERANCE:
            return best
    if isinstance(common, str) and common in _UNAMBIGUOUS_COMMON:
        return common
    return None


def _resolution(asset: pystac.Asset) -> float:
    raster = asset.extra_fields.get("raster:bands")
    if isinstance(raster, list) and raster and isinstance(raster[0], dict):
        value = raster[0].get("spatial_resolution")
        if isinstance(value, int | float):
            return float(value)
    gsd = asset.extra_fields.get("gsd")
    return float(gsd) if isinstance(gsd, int | float) else 0.0


def map_bands(assets: Mapping[str, pystac.Asset]) -> dict[str, str]:
    """Map canonical band names to the asset keys that hold them.

    Parameters
    ----------
    assets
        An item's assets by key.

    Returns
    -------
    dict
        ``{canonical: asset_key}`` for the bands found, in :data:`BANDS` order. Exact canonical
        keys (Earth Search v1) win over band numbers (``B04``, ``B04_10m``: the finest
        resolution wins), which win over a guess from ``eo:bands``. ``-jp2`` duplicates,
        composites (``visual``) and auxiliary layers (``AOT``, ``WVP``) are ignored.
    """
    found: dict[str, tuple[tuple[int, float, str], str]] = {}
    for key, asset in assets.items():
        if key.lower().endswith("-jp2"):
            continue
        candidate: tuple[str, tuple[int, float, str]] | None = None
        if key in BANDS:
            candidate = key, (_EXACT, 0.0, key)
        elif (numbered := _band_number_key(key)) is not None:
            canonical, resolution = numbered
            candidate = canonical, (_NUMBERED, resolution or _resolution(asset), key)
        elif (guessed := _from_eo_bands(asset)) is not None:
            candidate = guessed, (_EO, _resolution(asset), key)
        if candidate is None:
            continue
        canonical, rank = candidate
        if canonical not in found or rank < found[canonical][0]:
            found[canonical] = (rank, key)
    return {band: found[band][1] for band in BANDS if band in found}


_BASELINE_RE = re.compile(r"^N?(\d{2})\.?(\d{2})$|^(\d{1,2})(?:\.(\d{1,2}))?$", re.IGNORECASE)


def parse_baseline(text: object) -> tuple[int, int] | None:
    """Parse a processing baseline ("05.10", "4.0", "3.1", "N0400", "0400") to (major, minor).

    Returns None for anything else, so an unknown baseline never passes for a recent one.
    """
    if isinstance(text, int | float) and not isinstance(text, bool):
        text = f"{text}"
    if not isinstance(text, str):
        return None
    match = _BASELINE_RE.match(text.strip())
    if match is None:
        return None
    if match.group(1) is not None:
        return int(match.group(1)), int(match.group(2))
    return int(match.group(3)), int(match.group(4) or 0)


def format_baseline(baseline: tuple[int, int] | None) -> str:
    """Format a parsed baseline as "MM.mm" ("" when unknown)."""
    return "" if baseline is None else f"{baseline[0]:02d}.{baseline[1]:02d}"


def reflectance_scaling(
    asset: pystac.Asset,
    *,
    band: str,
    baseline: tuple[int, int] | None,
    boa_offset_applied: bool,
) -> tuple[float, float]:
    """Return ``(scale, offset)`` such that reflectance = DN x scale + offset.

    Parameters
    ----------
    asset
        The band's asset.
    band
        Its canonical name; ``scl`` is a class map and is never scaled: (1, 0).
    baseline
        The item's parsed processing baseline, None if unknown.
    boa_offset_applied
        The catalog says the +1000 DN offset was already removed from the pixels.

    Notes
    -----
    Declared ``raster:bands[0]`` numbers win (a missing one of the two means 1e-4 or 0).
    Otherwise the baseline decides, not the acquisition date: from 04.00 on the offset is -0.1
    unless ``boa_offset_applied``; older or unknown baselines have none.
    """
    if band == "scl":
        return 1.0, 0.0
    raster = asset.extra_fields.get("raster:bands")
    if isinstance(raster, list) and raster and isinstance(raster[0], dict):
        scale, offset = raster[0].get("scale"), raster[0].get("offset")
        if scale is not None or offset is not None:
            return (
                float(scale) if scale is not None else DEFAULT_SCALE,
                float(offset) if offset is not None else 0.0,
            )
    recent = baseline is not None and baseline >= OFFSET_BASELINE
    return DEFAULT_SCALE, _BOA_OFFSET if recent and not boa_offset_applied else 0.0
