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
from affine import Affine
from odc.geo.geobox import GeoBox

from .config import CubeSettings
from .errors import CatalogError, ConfigError

__all__ = [
    "RawCube",
    "grid_anchor",
    "grid_for",
    "item_epsg",
    "load_cube",
    "load_raw",
    "masked_read",
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


def masked_read(items: Sequence[pystac.Item]) -> bool:
    """Whether a read of ``items`` loads SCL: True when every item carries it, False when none.

    A read decides once for all its items, so a single item without SCL among items with it
    would switch the cloud mask off for all of them; such a mix is refused (callers read the
    two kinds apart, as :func:`agrisat.ingest.ingest` does).

    Raises
    ------
    CatalogError
        When some items carry SCL and others do not.
    """
    has = [SCL in it.assets for it in items]
    if any(has) and not all(has):
        bare = [it.id for it, h in zip(items, has, strict=True) if not h]
        raise CatalogError(
            f"{len(bare)} of {len(has)} items to read together carry no SCL (e.g. {bare[0]}): "
            "read scenes with and without SCL separately, or one would unmask the others"
        )
    return all(has)


def grid_for(
    bounds: tuple[float, float, float, float],
    epsg: int,
    *,
    resolution: float = 10.0,
    anchor: tuple[float, float] | None = None,
    block: int = 1,
) -> GeoBox:
    """A north-up grid in ``epsg`` covering ``bounds`` (same CRS), edges on multiples of ``resolution``.

    Sentinel-2 tiles have origins on multiples of 60 m, so this grid coincides with every tile's
    10 m grid in the zone: reads need no resampling of 10 m bands.

    With ``anchor`` (the upper-left corner of the imagery's pixel grid, e.g. a tile origin) the
    upper-left corner is moved up and left onto ``anchor`` + a multiple of ``block`` pixels, so
    ``block``-pixel chunks of the grid start where the COG's internal blocks start (512 or 1024
    pixels from the tile origin): each chunk then decodes whole blocks that no other chunk needs.
    """
    x0, y0, x1, y1 = bounds
    r = float(resolution)
    x0, y0 = np.floor(x0 / r) * r, np.floor(y0 / r) * r
    x1, y1 = np.ceil(x1 / r) * r, np.ceil(y1 / r) * r
    x1, y1 = max(x1, x0 + r), max(y1, y0 + r)
    if anchor is not None:
        step = r * max(int(block), 1)
        ax, ay = anchor
        x0 = ax + np.floor((x0 - ax) / step) * step
        y1 = ay - np.floor((ay - y1) / step) * step
    return GeoBox.from_bbox((x0, y0, x1, y1), crs=f"EPSG:{epsg}", resolution=r)


def grid_anchor(
    items: Sequence[pystac.Item], *, resolution: float = 10.0, block: int = 1
) -> tuple[float, float] | None:
    """An upper-left corner that the ``resolution`` pixel grids of all ``items`` share.

    Read from the assets' ``proj:transform``: the first item's grid origin, when every item's
    origin lies a whole number of ``block`` pixels away from it (one tile: any ``block``;
    several Sentinel-2 tiles of a zone: ``block`` 2, their origins are on a 60 m lattice).
    ``None`` when an item declares no grid at that resolution or the origins disagree.
    """
    step = float(resolution) * max(int(block), 1)
    first: tuple[float, float] | None = None
    for it in items:
        found = None
        for asset in it.assets.values():
            nat = _native_grid(asset)
            if nat is not None and np.isclose(nat[0], resolution):
                found = (nat[1], nat[2])
                break
        if found is None:
            return None
        if first is None:
            first = found
        elif not (
            _is_multiple(found[0] - first[0], step) and _is_multiple(found[1] - first[1], step)
        ):
            return None
    return first


def _native_grid(asset: pystac.Asset) -> tuple[float, float, float] | None:
    """(resolution, x0, y0) of a north-up asset from its ``proj:transform``, else ``None``."""
    t = asset.extra_fields.get("proj:transform")
    try:
        a, b, c, d, e, f = (float(v) for v in list(t)[:6])  # type: ignore[arg-type]
    except (TypeError, ValueError):
        return None
    if b != 0 or d != 0 or a <= 0 or not np.isclose(e, -a):
        return None
    return a, c, f


def _is_multiple(value: float, step: float) -> bool:
    q = value / step
    return bool(abs(q - round(q)) < 1e-6)


def _factor(
    asset: pystac.Asset, epsg: int, res: float, x0: float, y0: float
) -> tuple[int, int, int] | None:
    """(factor, row offset, column offset) of an asset's grid against the zone grid, or None.

    The factor is 1 (same pixels) or 2 (pixels twice as large, each over 2 × 2 zone pixels);
    the offsets are the asset-grid pixel of the zone grid's upper-left corner.
    """
    code = asset.extra_fields.get("proj:epsg") or asset.extra_fields.get("proj:code")
    if code is not None and str(code).upper().removeprefix("EPSG:") != str(epsg):
        return None
    nat = _native_grid(asset)
    if nat is None:
        return None
    ares, ax, ay = nat
    for k in (1, 2):
        if np.isclose(ares, k * res):
            if not (_is_multiple(x0 - ax, ares) and _is_multiple(ay - y0, ares)):
                return None
            return k, round((ay - y0) / ares), round((x0 - ax) / ares)
    return None


def _declared_shape(asset: pystac.Asset) -> tuple[int, int] | None:
    shape = asset.extra_fields.get("proj:shape")
    try:
        h, w = (int(v) for v in list(shape)[:2])  # type: ignore[arg-type]
    except (TypeError, ValueError):
        return None
    return h, w


def _coarse_factor(items: Sequence[pystac.Item], band: str, geobox: GeoBox, chunk: int) -> int:
    """2 when ``band`` of every item is a grid exactly twice as coarse as ``geobox``, aligned.

    Such a band can be read on its own grid (no warp) and upsampled by repeating pixels, which is
    what nearest-neighbour resampling gives when every fine pixel lies inside one coarse pixel.
    """
    a = geobox.affine
    r = a.a
    if a.b != 0 or a.d != 0 or not np.isclose(a.e, -r) or chunk % 2:
        return 1
    for it in items:
        nat = _native_grid(it.assets[band])
        if nat is None or not np.isclose(nat[0], 2 * r):
            return 1
        if not (_is_multiple(a.c - nat[1], nat[0]) and _is_multiple(a.f - nat[2], nat[0])):
            return 1
    return 2


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
    #: bands read on their native grid twice as coarse (``native=True``): not in ``data``
    coarse: xr.Dataset | None = None


def load_raw(
    items: Sequence[pystac.Item],
    geobox: GeoBox,
    *,
    bands: Sequence[str],
    settings: CubeSettings = CubeSettings(),
    native: bool = False,
    time_chunk: int = 1,
) -> RawCube:
    """Lazy DN arrays of ``bands`` (and SCL when the items carry it) on ``geobox``; no reads.

    The items must all carry SCL or all lack it (:func:`masked_read`). With ``native``, bands whose own grid is exactly twice as coarse as ``geobox`` and aligned
    with it (20 m bands and SCL on a 10 m grid) are loaded on that coarse grid, with chunks half
    the size so both chunk grids coincide, into ``RawCube.coarse``; the caller upsamples them.
    ``time_chunk`` dates are read by one task (per band and chunk).
    """
    import odc.stac

    if not bands:
        raise ConfigError("no band to load: choose at least one index")
    items = list(items)
    if not items:
        raise CatalogError("no items to load: widen the dates or check the catalog")
    ids = [it.id for it in items]
    if len(set(ids)) != len(ids):
        raise CatalogError("duplicate item ids passed to load_cube; dedupe the items first")
    has_scl = masked_read(items)
    to_load = list(dict.fromkeys([*bands, *([SCL] if has_scl else [])]))
    for it in items:
        missing = [b for b in to_load if b not in it.assets]
        if missing:
            raise CatalogError(f"item {it.id} lacks band(s) {missing} needed for this run")
    chunk = int(settings.chunk_size)
    coarse_bands: list[str] = []
    if native:
        coarse_bands = [b for b in to_load if _coarse_factor(items, b, geobox, chunk) == 2]
        if len(coarse_bands) == len(to_load):  # keep one band on the output grid for its shape
            coarse_bands = []
    fine_bands = [b for b in to_load if b not in coarse_bands]

    def load(names: list[str], box: GeoBox, size: int) -> xr.Dataset:
        return odc.stac.load(
            items,
            bands=names,
            geobox=box,
            groupby=_by_position({it.id: i for i, it in enumerate(items)}),
            chunks={"time": max(1, int(time_chunk)), "y": size, "x": size},
            resampling="nearest",
            # Declared dtype and nodata keep odc-stac from guessing (items without raster:bands
            # would load as float32 with NaN fill). DN 0 is nodata for every band; SCL fits in
            # uint16 too (one dtype for all: odc-stac's chunk sizing rejects a per-band mapping).
            dtype="uint16",
            nodata=0,
            fail_on_error=True,
        )

    raw = load(fine_bands, geobox, chunk)
    coarse = None
    if coarse_bands:
        a = geobox.affine
        ny, nx = geobox.shape.y, geobox.shape.x
        box = GeoBox(
            ((ny + 1) // 2, (nx + 1) // 2),
            Affine(2 * a.a, 0.0, a.c, 0.0, 2 * a.e, a.f),
            geobox.crs,
        )
        coarse = load(coarse_bands, box, chunk // 2)

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
        coarse=coarse,
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
