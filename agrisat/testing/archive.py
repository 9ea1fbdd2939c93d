"""A tiny archive builder for tests: a few dates, a few farms, known constant reflectances.

Example: a farm laid exactly on 10 m pixel edges over a constant-reflectance field::

    from shapely.geometry import box
    from agrisat.testing import SyntheticFarm, make_archive

    x0, y0 = 600000.0, 4040000.0  # the grid's top-left corner (default origin)
    farm = SyntheticFarm("F1", box(x0 + 100, y0 - 200, x0 + 200, y0 - 100),
                         {"red": 0.05, "nir": 0.45})
    arc = make_archive(tmp_path, [farm], dates=["2026-04-01", "2026-04-06"])
    # every pixel of F1 decodes to red 0.05 and nir 0.45, so NDVI == (0.45-0.05)/(0.45+0.05)

Pixels are assigned by pixel centre (no mixing): a farm whose edges fall on pixel edges covers
exactly its pixels. Bands missing from a farm's reflectance take the background's value.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import geopandas as gpd
import numpy as np
from affine import Affine
from rasterio.features import rasterize
from shapely.geometry.base import BaseGeometry

from .cog import write_cog
from .stac import Style, asset_key, item_dir, make_s2_item, reflectance_to_dn, write_static_catalog

__all__ = [
    "BARE_SOIL",
    "DEFAULT_BASELINES",
    "REFLECTANCE_BANDS",
    "SyntheticArchive",
    "SyntheticFarm",
    "make_archive",
    "strip_archive",
    "two_farm_archive",
]

REFLECTANCE_BANDS: tuple[str, ...] = ("blue", "green", "red", "nir", "swir16")
#: bands written at 20 m (the others at 10 m)
BANDS_20M: frozenset[str] = frozenset({"swir16", "scl"})
BARE_SOIL: Mapping[str, float] = {
    "blue": 0.08,
    "green": 0.10,
    "red": 0.13,
    "nir": 0.18,
    "swir16": 0.26,
}
#: the baseline an item gets for each convention when none is given
DEFAULT_BASELINES: Mapping[str, str] = {
    "earthsearch_v1": "05.10",
    "baseline_offset": "04.00",
    "boa_applied": "05.09",
    "legacy": "03.01",
    "scale_only": "05.10",
}

Reflectance = Mapping[str, float] | Callable[[dt.date], Mapping[str, float]]


@dataclass(frozen=True)
class SyntheticFarm:
    """One farm of a synthetic archive.

    ``geometry`` is in the archive's CRS (``make_archive(epsg=...)``). ``reflectance`` is a
    ``{band: true reflectance}`` mapping, or a callable ``date -> mapping`` for values that
    change over time.
    """

    farm_id: str
    geometry: BaseGeometry
    reflectance: Reflectance
    crop: str = "wheat_maize"
    loan_id: str | None = None
    borrower_id: str | None = None
    exposure: float = 100_000.0
    region: str = "R1"

    def values(self, date: dt.date) -> Mapping[str, float]:
        """True reflectances of the farm on ``date``."""
        return self.reflectance(date) if callable(self.reflectance) else self.reflectance


@dataclass(frozen=True)
class SyntheticArchive:
    """Paths and grid of an archive written by :func:`make_archive`."""

    root: Path
    catalog: Path
    book: Path
    epsg: int
    #: transform of the 10 m grid (20 m bands share its origin)
    transform: Affine
    #: (height, width) of the 10 m grid
    shape: tuple[int, int]
    dates: tuple[dt.date, ...]
    item_ids: tuple[str, ...] = field(default=())


def _as_date(value: dt.date | str) -> dt.date:
    if isinstance(value, dt.datetime):
        return value.date()
    if isinstance(value, dt.date):
        return value
    return dt.date.fromisoformat(value)


def _per_date(value: object, date: dt.date) -> object:
    if isinstance(value, Mapping):
        return value.get(date.isoformat(), value.get(date))  # type: ignore[call-overload]
    return value


def make_archive(
    root: str | Path,
    farms: Sequence[SyntheticFarm],
    *,
    dates: Sequence[dt.date | str],
    epsg: int = 32650,
    origin: tuple[float, float] = (600000.0, 4040000.0),
    shape: tuple[int, int] = (40, 40),
    resolution: float = 10.0,
    background: Mapping[str, float] = BARE_SOIL,
    scl: int | Mapping[str, int | np.ndarray] = 4,
    convention: str | Mapping[str, str] = "earthsearch_v1",
    baseline: str | Mapping[str, str] | None = None,
    style: Style = "earthsearch",
    tile: str = "50SQF",
    nodata: Mapping[str, np.ndarray] | None = None,
    book_name: str = "book.gpkg",
) -> SyntheticArchive:
    """Write a small static STAC archive (one item per date) and its loan book.

    Parameters
    ----------
    root
        Folder to write into: ``catalog/`` (static catalog and COGs) and the book.
    farms
        The farms; their geometries are in ``epsg`` and are burned in by pixel centre.
    dates
        Acquisition dates (``date`` or ``"YYYY-MM-DD"``); item ids are
        ``S2B_<tile>_<YYYYMMDD>_0_L2A``.
    epsg, origin, shape, resolution
        The 10 m grid: top-left corner, ``(height, width)`` (even numbers) and pixel size;
        ``swir16`` and ``scl`` are written at twice the pixel size from the same origin.
    background
        True reflectance outside the farms.
    scl
        SCL value everywhere, or ``{"YYYY-MM-DD": int or (height/2, width/2) uint8 array}``
        per date (dates not listed get 4, vegetation).
    convention, baseline
        Offset convention and processing baseline (see :mod:`agrisat.testing.stac`), for all
        dates or per ``"YYYY-MM-DD"``; the baseline defaults to :data:`DEFAULT_BASELINES`.
    style
        ``"earthsearch"`` or ``"planetary"`` asset keys.
    tile
        MGRS tile id written into the items.
    nodata
        ``{"YYYY-MM-DD": bool (height, width) mask}`` of 10 m pixels written as nodata (0) in
        every band (20 m pixels are nodata where any of their four 10 m pixels is).
    book_name
        File name of the loan book (GeoPackage ``.gpkg`` or GeoJSON, in ``epsg``).

    Returns
    -------
    SyntheticArchive
    """
    height, width = shape
    if height % 2 or width % 2:
        raise ValueError(f"shape must be even so the 20 m grid fits, got {shape}")
    root = Path(root)
    cat_root = root / "catalog"
    grids = {
        10: (Affine(resolution, 0, origin[0], 0, -resolution, origin[1]), (height, width)),
        20: (
            Affine(2 * resolution, 0, origin[0], 0, -2 * resolution, origin[1]),
            (height // 2, width // 2),
        ),
    }
    labels = {
        res: rasterize(
            [(f.geometry, i + 1) for i, f in enumerate(farms)],
            out_shape=grid_shape,
            transform=aff,
            fill=0,
            dtype="int32",
        )
        if farms
        else np.zeros(grid_shape, dtype="int32")
        for res, (aff, grid_shape) in grids.items()
    }
    items = []
    parsed = [_as_date(d) for d in dates]
    for date in parsed:
        item_id = f"S2B_{tile}_{date:%Y%m%d}_0_L2A"
        conv = str(_per_date(convention, date))
        base = _per_date(baseline, date) if baseline is not None else None
        base = str(base) if base is not None else DEFAULT_BASELINES[conv]
        folder = item_dir(cat_root, item_id)
        mask10 = _per_date(nodata, date) if nodata is not None else None
        mask10 = np.zeros(shape, bool) if mask10 is None else np.asarray(mask10, bool)
        mask20 = mask10.reshape(height // 2, 2, width // 2, 2).any(axis=(1, 3))
        assets = {}
        for band in (*REFLECTANCE_BANDS, "scl"):
            res = 20 if band in BANDS_20M else 10
            aff, grid_shape = grids[res]
            invalid = mask20 if res == 20 else mask10
            if band == "scl":
                value = _per_date(scl, date)
                arr = np.full(grid_shape, 4 if value is None else 0, dtype=np.uint8)
                if value is not None:
                    arr[...] = np.asarray(value, dtype=np.uint8)
                arr[invalid] = 0
                resampling = "nearest"
            else:
                lut = np.array(
                    [background[band]] + [f.values(date).get(band, background[band]) for f in farms]
                )
                arr = reflectance_to_dn(lut[labels[res]], conv, valid=np.logical_not(invalid))
                resampling = "average"
            path = write_cog(
                folder / f"{asset_key(band, style)}.tif",
                arr,
                transform=aff,
                crs=epsg,
                overview_resampling=resampling,
            )
            assets[band] = (str(path.resolve()), aff, grid_shape)
        items.append(
            make_s2_item(
                item_id,
                datetime=date,
                epsg=epsg,
                assets=assets,
                tile=tile,
                baseline=base,
                convention=conv,
                style=style,
            )
        )
    catalog = write_static_catalog(cat_root, items)
    book = root / book_name
    book_frame = gpd.GeoDataFrame(
        {
            "farm_id": [f.farm_id for f in farms],
            "loan_id": [f.loan_id or f"L-{f.farm_id}" for f in farms],
            "borrower_id": [f.borrower_id or f"B-{f.farm_id}" for f in farms],
            "crop": [f.crop for f in farms],
            "exposure": [float(f.exposure) for f in farms],
            "region": [f.region for f in farms],
        },
        geometry=[f.geometry for f in farms],
        crs=epsg,
    )
    book_frame.to_file(book)
    return SyntheticArchive(
        root=root,
        catalog=catalog,
        book=book,
        epsg=epsg,
        transform=grids[10][0],
        shape=(height, width),
        dates=tuple(parsed),
        item_ids=tuple(item.id for item in items),
    )


def two_farm_archive(root: str | Path, *, dates: Sequence[dt.date | str]) -> SyntheticArchive:
    """:func:`make_archive` of two farms on the default grid (1 ha of dense crop and 0.48 ha
    of a sparser one, 200 m apart): the small run the fault and CLI tests break."""
    from shapely.geometry import box

    x0, y0 = 600000.0, 4040000.0
    farms = [
        SyntheticFarm("F1", box(x0 + 40, y0 - 140, x0 + 140, y0 - 40), {"red": 0.05, "nir": 0.45}),
        SyntheticFarm("F2", box(x0 + 200, y0 - 300, x0 + 280, y0 - 240), {"red": 0.1, "nir": 0.3}),
    ]
    return make_archive(root, farms, dates=dates)


def strip_archive(
    root: str | Path,
    *,
    dates: Sequence[dt.date | str],
    farms: int = 4,
    scl: int | Mapping[str, int | np.ndarray] = 4,
) -> SyntheticArchive:
    """:func:`make_archive` of ``farms`` narrow strips (0.6 × 2.6 ha-ish, 70 m apart) on the
    default grid, each a little sparser than the one before: the small run the scheduler and
    cluster tests compare between schedulers."""
    from shapely.geometry import box

    x0, y0 = 600000.0, 4040000.0
    strips = [
        SyntheticFarm(
            f"F{i}",
            box(x0 + 20 + 70 * i, y0 - 300, x0 + 80 + 70 * i, y0 - 40),
            {"red": 0.04 + 0.01 * i, "nir": 0.4 - 0.02 * i},
        )
        for i in range(farms)
    ]
    return make_archive(root, strips, dates=dates, scl=scl)
