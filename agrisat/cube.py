"""Lazy pixel cubes: STAC items of one UTM zone → an xarray Dataset (time × y × x) on dask.

Nothing here reads a pixel: :func:`load_cube` builds a dask graph with odc-stac, converts DN to
reflectance per item (each item carries its own scale and offset, resolved by
:mod:`agrisat.catalog`), masks nodata and non-clear SCL classes and keeps water as its own flag.
The pipeline owns the one place that computes.

One time slice is one item (odc-stac ``groupby`` by position), so items of the same day from two
tiles stay apart and the zonal stage can keep, per farm, the look that saw it best.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import pystac
import xarray as xr
from odc.geo.geobox import GeoBox

from .config import CubeSettings
from .errors import CatalogError, ConfigError

__all__ = [
    "RawCube",
    "grid_for",
    "item_epsg",
    "load_cube",
    "load_raw",
    "prepared_stack",
    "zone_of_lon",
]

SCL = "scl"


def zone_of_lon(lon: float, lat: float = 0.0) -> int:
    """EPSG code of the WGS84 / UTM zone whose strip holds ``lon`` (north unless ``lat`` < 0)."""
    zone = int(np.floor((lon + 180.0) / 6.0)) % 60 + 1
    return (32700 if lat < 0 else 32600) + zone


def item_epsg(item: pystac.Item) -> int:
    """The EPSG code of a normalised item (``agrisat:epsg``)."""
    try:
        return int(item.properties["agrisat:epsg"])
    except (KeyError, TypeError, ValueError):
        raise CatalogError(
            f"item {item.id} has no 'agrisat:epsg'; pass items through agrisat.catalog first"
        ) from None


def grid_for(
    bounds: tuple[float, float, float, float], epsg: int, *, resolution: float = 10.0
) -> GeoBox:
    """A north-up grid in ``epsg`` covering ``bounds`` (same CRS), edges on multiples of ``resolution``.

    Sentinel-2 tiles have origins on multiples of 60 m, so this grid coincides with every tile's
    10 m grid in the zone: reads need no resampling of 10 m bands.
    """
    x0, y0, x1, y1 = bounds
    r = float(resolution)
    x0, y0 = np.floor(x0 / r) * r, np.floor(y0 / r) * r
    x1, y1 = np.ceil(x1 / r) * r, np.ceil(y1 / r) * r
    x1, y1 = max(x1, x0 + r), max(y1, y0 + r)
    return GeoBox.from_bbox((x0, y0, x1, y1), crs=f"EPSG:{epsg}", resolution=r)


def _by_position(index: dict[str, int]) -> Any:
    def key(item: pystac.Item, parsed: Any, idx: int) -> int:
        return index[item.id]

    return key


@dataclass(frozen=True)
class RawCube:
    """DN arrays as odc-stac loads them, with each item's scale and offset per band."""

    data: xr.Dataset  # uint16 DN per band (and SCL), dims time × y × x, dask-backed
    bands: tuple[str, ...]
    has_scl: bool
    scale: np.ndarray  # (n_bands, n_items) float32
    offset: np.ndarray  # (n_bands, n_items) float32
    item_ids: tuple[str, ...]


def load_raw(
    items: Sequence[pystac.Item],
    geobox: GeoBox,
    *,
    bands: Sequence[str],
    settings: CubeSettings = CubeSettings(),
) -> RawCube:
    """Lazy DN arrays of ``bands`` (and SCL when every item has it) on ``geobox``; no reads."""
    import odc.stac

    if not bands:
        raise ConfigError("no band to load: choose at least one index")
    items = list(items)
    if not items:
        raise CatalogError("no items to load: widen the dates or check the catalog")
    ids = [it.id for it in items]
    if len(set(ids)) != len(ids):
        raise CatalogError("duplicate item ids passed to load_cube; dedupe the items first")
    has_scl = all(SCL in it.assets for it in items)
    to_load = list(dict.fromkeys([*bands, *([SCL] if has_scl else [])]))
    for it in items:
        missing = [b for b in to_load if b not in it.assets]
        if missing:
            raise CatalogError(f"item {it.id} lacks band(s) {missing} needed for this run")
    chunk = int(settings.chunk_size)
    raw = odc.stac.load(
        items,
        bands=to_load,
        geobox=geobox,
        groupby=_by_position({it.id: i for i, it in enumerate(items)}),
        chunks={"time": 1, "y": chunk, "x": chunk},
        resampling="nearest",
        # Declared dtype and nodata keep odc-stac from guessing (items without raster:bands would
        # load as float32 with NaN fill). DN 0 is nodata for every band; SCL fits in uint16 too
        # (one dtype for all: odc-stac's chunk sizing rejects a per-band dtype mapping).
        dtype="uint16",
        nodata=0,
        fail_on_error=True,
    )

    def per_item(key: str, default: float) -> np.ndarray:
        return np.array(
            [[float(it.assets[b].extra_fields.get(key, default)) for it in items] for b in bands],
            dtype="float32",
        )

    return RawCube(
        data=raw,
        bands=tuple(bands),
        has_scl=has_scl,
        scale=per_item("agrisat:scale", 1e-4),
        offset=per_item("agrisat:offset", 0.0),
        item_ids=tuple(ids),
    )


def load_cube(
    items: Sequence[pystac.Item],
    geobox: GeoBox,
    *,
    bands: Sequence[str],
    settings: CubeSettings = CubeSettings(),
) -> xr.Dataset:
    """Build a lazy cube of reflectance and masks for ``items`` on ``geobox``.

    Parameters
    ----------
    items
        Normalised items (see :func:`agrisat.catalog.normalize_item`), all with unique ids.
    geobox
        Output grid, normally from :func:`grid_for`; 20 m bands are brought to it by nearest
        neighbour (SCL must never be interpolated; reflectance keeps its pixel values).
    bands
        Canonical reflectance bands to load (SCL is added when the items have it).
    settings
        Chunking and SCL classes.

    Returns
    -------
    xarray.Dataset
        Variables: one float32 reflectance per band (NaN where nodata), ``valid`` (all bands
        have data), ``clear`` (valid and SCL says clear ground or water), ``water`` (SCL 6).
        Coordinates: ``time`` and ``item_id`` (one slice per item, in the given order).
        Items without SCL (L1C) are treated as all clear where valid.
    """
    rc = load_raw(items, geobox, bands=bands, settings=settings)
    raw = rc.data
    out = xr.Dataset(coords={"time": raw.time, "y": raw.y, "x": raw.x})
    valid: xr.DataArray | None = None
    for k, b in enumerate(rc.bands):
        dn = raw[b]
        has = dn.notnull() & (dn != 0)
        valid = has if valid is None else (valid & has)
        scale = xr.DataArray(rc.scale[k], dims="time")
        offset = xr.DataArray(rc.offset[k], dims="time")
        out[b] = (dn.astype("float32") * scale + offset).where(has)
    if valid is None:  # unreachable: load_raw refuses an empty band list
        raise ConfigError("no band to load")
    if rc.has_scl:
        scl = raw[SCL]
        out["valid"] = valid & (scl != 0)
        out["clear"] = out["valid"] & ~scl.isin(list(settings.scl_not_clear))
        out["water"] = out["clear"] & (scl == settings.scl_water)
    else:
        out["valid"] = valid
        out["clear"] = valid
        out["water"] = xr.zeros_like(valid)
    out = out.assign_coords(item_id=("time", np.array(rc.item_ids, dtype=object)))
    out.attrs["crs"] = str(geobox.crs)
    out.attrs["has_scl"] = int(rc.has_scl)
    return out


def _prepare_block(
    *dn: np.ndarray,
    scale: np.ndarray,
    offset: np.ndarray,
    bands: tuple[str, ...],
    has_scl: bool,
    indices: tuple[str, ...],
    not_clear: tuple[int, ...],
    water_class: int,
    block_info: dict[Any, Any] | None = None,
) -> np.ndarray:
    """One chunk: DN → reflectance → masks and indices, stacked as (var, t, y, x) float32."""
    from .indices import compute_index

    t0, t1 = block_info[0]["array-location"][0] if block_info else (0, dn[0].shape[0])
    refl = {}
    valid = np.ones(dn[0].shape, dtype=bool)
    for k, b in enumerate(bands):
        arr = dn[k]
        has = arr != 0
        valid &= has
        sc = scale[k, t0:t1, None, None]
        off = offset[k, t0:t1, None, None]
        refl[b] = np.where(has, arr.astype(np.float32) * sc + off, np.float32(np.nan))
    if has_scl:
        scl = dn[len(bands)]
        valid &= scl != 0
        clear = valid & ~np.isin(scl, not_clear)
        water = clear & (scl == water_class)
    else:
        clear = valid
        water = np.zeros_like(valid)
    out = np.empty((3 + len(indices), *dn[0].shape), dtype=np.float32)
    out[0], out[1], out[2] = valid, clear, water
    with np.errstate(invalid="ignore", divide="ignore"):
        for j, name in enumerate(indices):
            out[3 + j] = compute_index(name, refl)
    return out


def prepared_stack(
    items: Sequence[pystac.Item],
    geobox: GeoBox,
    *,
    indices: Sequence[str],
    settings: CubeSettings = CubeSettings(),
) -> tuple[Any, tuple[str, ...]]:
    """The zonal stage's input: one fused task per chunk from DN to masks and indices.

    Returns a dask array (variable, time, y, x) of float32 — ``valid``, ``clear``, ``water``
    (0/1) then one layer per index — and the variable names. Each chunk's reads, scaling,
    masking and index arithmetic run in a single task, so a block is decoded once and no
    intermediate arrays are kept.
    """
    import dask.array as da

    from .indices import bands_for

    rc = load_raw(items, geobox, bands=bands_for(indices), settings=settings)
    arrays = [rc.data[b].data for b in rc.bands] + ([rc.data[SCL].data] if rc.has_scl else [])
    names = ("valid", "clear", "water", *indices)
    stack = da.map_blocks(
        _prepare_block,
        *arrays,
        dtype=np.float32,
        new_axis=0,
        chunks=((len(names),), *arrays[0].chunks),
        scale=rc.scale,
        offset=rc.offset,
        bands=rc.bands,
        has_scl=rc.has_scl,
        indices=tuple(indices),
        not_clear=tuple(settings.scl_not_clear),
        water_class=int(settings.scl_water),
        meta=np.empty((0, 0, 0, 0), dtype=np.float32),
    )
    return stack, names
