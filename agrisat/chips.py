"""Image chips of a farm read back from the scenes: true colour and NDVI, farm outline drawn.

Chips go through agrisat's own scene path, so what an analyst sees is what the run measured:
the STAC item (found by the id the observations table recorded) is normalised by
:func:`agrisat.catalog.normalize_item` (band names, scale and offset), and pixels are read by
:func:`agrisat.cube.load_cube` on a small grid around the farm (:func:`agrisat.cube.grid_for`,
the same 10 m grid as the run), with the run's GDAL options.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd
import pystac

from .catalog import normalize_item, search_items
from .config import Settings
from .cube import grid_for, item_epsg, load_cube
from .errors import AgrisatError, CatalogError, SceneError
from .i18n import check_lang, t

if TYPE_CHECKING:
    from matplotlib.figure import Figure

__all__ = ["ChipSet", "SceneIndex", "chip_labels", "load_chips", "plot_chips", "true_colour"]

log = logging.getLogger(__name__)

CHIP_BANDS = ("red", "green", "blue", "nir")


class SceneIndex:
    """Find STAC items by id in a catalog, normalised, cached.

    A static catalog is walked once per date range asked; a STAC API is searched over the
    farm's bounds and the dates. Items are matched by the ids the run recorded.
    """

    def __init__(self, catalog: str) -> None:
        self.catalog = str(catalog)
        self._items: dict[str, pystac.Item] = {}
        self._static: list[pystac.Item] | None = None

    def get(
        self,
        ids: Iterable[str],
        *,
        bbox: tuple[float, float, float, float],
        start: str,
        end: str,
    ) -> dict[str, pystac.Item]:
        """The normalised items of ``ids`` (those found), searching ``bbox`` and [start, end]."""
        wanted = [i for i in dict.fromkeys(ids) if i]
        missing = [i for i in wanted if i not in self._items]
        if missing:
            if self._static is None and "://" not in self.catalog:
                # a local static catalog is walked whole on every search: walk it once
                self._static = search_items(self.catalog, bbox=(-180.0, -90.0, 180.0, 90.0))
            found = (
                self._static
                if self._static is not None
                else search_items(self.catalog, bbox=bbox, start=start, end=end)
            )
            for item in found:
                if item.id in missing:
                    try:
                        self._items[item.id] = normalize_item(item)
                    except CatalogError as exc:
                        log.warning("item %s cannot be used for chips: %s", item.id, exc)
        return {i: self._items[i] for i in wanted if i in self._items}


@dataclass
class ChipSet:
    """Chips of one farm on a few dates.

    Arrays are (date, y, x) on the chip grid (``crs``, ``transform``): ``rgb`` is reflectance
    (date, y, x, 3) of red/green/blue (NaN where no data), ``ndvi`` is (date, y, x), ``clear``
    marks clear-ground pixels by the scene classification. ``outline`` is the farm polygon in
    ``crs``. ``figure`` is the drawing (None when not drawn).
    """

    farm_id: str
    dates: list[str]
    item_ids: list[str]
    rgb: np.ndarray
    ndvi: np.ndarray
    clear: np.ndarray
    crs: str
    transform: Any
    outline: Any
    bounds: tuple[float, float, float, float]
    labels: list[str] = field(default_factory=list)
    figure: Figure | None = None
    #: each date's observation status and clear share (what :func:`chip_labels` prints)
    statuses: list[str] = field(default_factory=list)
    clear_fractions: list[float] = field(default_factory=list)

    def _repr_png_(self) -> bytes | None:
        if self.figure is None:
            return None
        import io

        buf = io.BytesIO()
        self.figure.savefig(buf, format="png", dpi=100)
        return buf.getvalue()


def true_colour(rgb: np.ndarray, *, gain: float = 3.5, gamma: float = 1 / 1.6) -> np.ndarray:
    """Display RGB (0–1) from reflectance: linear gain then a mild gamma; NaN shows white."""
    out = np.clip(np.nan_to_num(rgb, nan=1.0 / gain) * gain, 0.0, 1.0) ** gamma
    out[np.isnan(rgb).any(axis=-1)] = 1.0
    return out


def _read_one(
    item: pystac.Item, farm_geom: Any, pad_m: float, settings: Settings
) -> dict[str, Any]:
    import geopandas as gpd
    import rasterio

    from .ingest import gdal_options

    epsg = item_epsg(item)
    local = gpd.GeoSeries([farm_geom], crs=4326).to_crs(epsg).iloc[0]
    x0, y0, x1, y1 = local.bounds
    side = max(x1 - x0, y1 - y0) + 2 * pad_m
    cx, cy = (x0 + x1) / 2, (y0 + y1) / 2
    box = (cx - side / 2, cy - side / 2, cx + side / 2, cy + side / 2)
    geobox = grid_for(box, epsg, resolution=settings.cube.resolution)
    bands = [b for b in CHIP_BANDS if b in item.assets]
    if "red" not in bands or "nir" not in bands:
        raise SceneError(f"item {item.id} has no red or nir band: no chip can be drawn")
    try:
        with rasterio.Env(**gdal_options(settings)):
            cube = load_cube([item], geobox, bands=bands, settings=settings.cube).compute(
                scheduler="threads"
            )
    except AgrisatError:
        raise
    except Exception as exc:  # a remote read can fail in many ways; name the scene
        raise SceneError(f"scene {item.id} could not be read for a chip: {exc}") from None
    sl = cube.isel(time=0)
    nan = np.full(sl["red"].shape, np.nan, dtype="float32")
    rgb = np.stack([sl[b].values if b in sl else nan for b in ("red", "green", "blue")], axis=-1)
    red, nir = sl["red"].values, sl["nir"].values
    with np.errstate(all="ignore"):
        ndvi = (nir - red) / (nir + red)
    return {
        "rgb": rgb,
        "ndvi": ndvi.astype("float32"),
        "clear": sl["clear"].values.astype(bool),
        "crs": f"EPSG:{epsg}",
        "transform": geobox.affine,
        "outline": local,
        "bounds": tuple(float(v) for v in geobox.boundingbox),
    }


def load_chips(
    farm: Any,
    picks: pd.DataFrame,
    scenes: SceneIndex,
    *,
    pad_m: float = 60.0,
    settings: Settings = Settings(),
    draw: bool = True,
) -> ChipSet:
    """Read chips of ``farm`` (a book row with ``farm_id`` and a lon/lat ``geometry``).

    ``picks`` has ``date`` and ``item_id`` per chip (see
    :meth:`agrisat.workspace.Workspace.pick_looks`). All chips share the grid of the first
    scene's UTM zone when the farm lies in one zone's tiles; chips in another zone are read on
    their own grid (same size in metres).

    Raises
    ------
    SceneError
        An item is not in the catalog any more, or its pixels cannot be read.
    """
    geom = farm["geometry"]
    minx, miny, maxx, maxy = geom.bounds
    days = sorted(picks["date"].astype(str))
    items = scenes.get(
        picks["item_id"].astype(str).tolist(),
        bbox=(minx, miny, maxx, maxy),
        start=days[0],
        end=days[-1],
    )
    reads = []
    for _, p in picks.iterrows():
        item = items.get(str(p["item_id"]))
        if item is None:
            raise SceneError(
                f"scene {p['item_id']} (farm {farm['farm_id']}, {p['date']}) is not in catalog "
                f"{scenes.catalog}; was the catalog moved? pass the catalog the run read"
            )
        reads.append(_read_one(item, geom, pad_m, settings))
    shape = reads[0]["ndvi"].shape
    same = all(r["ndvi"].shape == shape and r["crs"] == reads[0]["crs"] for r in reads)
    if not same:
        raise SceneError(
            f"chips of farm {farm['farm_id']} fall on different grids (UTM zones); "
            "ask for dates of one tile at a time"
        )
    chips = ChipSet(
        farm_id=str(farm["farm_id"]),
        dates=picks["date"].astype(str).tolist(),
        item_ids=picks["item_id"].astype(str).tolist(),
        rgb=np.stack([r["rgb"] for r in reads]),
        ndvi=np.stack([r["ndvi"] for r in reads]),
        clear=np.stack([r["clear"] for r in reads]),
        crs=reads[0]["crs"],
        transform=reads[0]["transform"],
        outline=reads[0]["outline"],
        bounds=reads[0]["bounds"],
        statuses=picks["status"].astype(str).tolist(),
        clear_fractions=picks["clear_fraction"].astype(float).tolist(),
    )
    chips.labels = chip_labels(chips)
    if draw:
        chips.figure = plot_chips(chips)
    return chips


def chip_labels(
    chips: ChipSet, *, lang: str = "en", tags: Sequence[str] | None = None
) -> list[str]:
    """One title per date: ``"<tag> 2026-06-27\nok · clear 100%"`` (in ``lang``)."""
    check_lang(lang)
    tags = list(tags) if tags is not None else [""] * len(chips.dates)
    clear = t("chart.clear", lang)
    return [
        # a scene without a cloud mask has an unknown clear share (NaN): "?" not "nan%"
        f"{tag} {d}".strip()
        + f"\n{t('obs.' + st, lang)} · {clear} "
        + ("?" if cf != cf else f"{cf:.0%}")
        for tag, d, st, cf in zip(
            tags, chips.dates, chips.statuses, chips.clear_fractions, strict=False
        )
    ]


def plot_chips(chips: ChipSet, *, size: float = 2.6, lang: str = "en") -> Figure:
    """Two rows (true colour, NDVI) by one column per date; the farm outline in each.

    ``lang="zh"`` labels the rows in Chinese (render as SVG with live text, see
    :func:`agrisat.report.cards.figure_data_uri`, where no CJK font is installed).

    Cloud or shadow pixels (not clear by SCL) are hatched over in the NDVI row, so a low NDVI
    under a cloud is not mistaken for a failed crop.
    """
    from matplotlib.colors import ListedColormap
    from matplotlib.figure import Figure

    n = len(chips.dates)
    fig = Figure(figsize=(size * n + 0.9, size * 2 + 0.5), layout="constrained")
    axes = fig.subplots(2, n, squeeze=False)
    x0, y0, x1, y1 = chips.bounds
    extent = (x0, x1, y0, y1)
    xs, ys = _outline_xy(chips.outline)
    cloud = ListedColormap(["#00000000", "#ffffffcc"])
    im = None
    for j in range(n):
        top, bottom = axes[0, j], axes[1, j]
        top.imshow(true_colour(chips.rgb[j]), extent=extent, interpolation="nearest")
        im = bottom.imshow(chips.ndvi[j], extent=extent, cmap="RdYlGn", vmin=0.0, vmax=0.9,
                           interpolation="nearest")  # fmt: skip
        bottom.imshow((~chips.clear[j]).astype(float), extent=extent, cmap=cloud, vmin=0, vmax=1,
                      interpolation="nearest")  # fmt: skip
        for ax in (top, bottom):
            for x, y in zip(xs, ys, strict=True):
                ax.plot(x, y, color="#00e5ff" if ax is top else "#212121", lw=1.6)
            ax.set_xticks([])
            ax.set_yticks([])
            ax.set_xlim(x0, x1)
            ax.set_ylim(y0, y1)
        top.set_title(chips.labels[j] if j < len(chips.labels) else chips.dates[j], fontsize=8)
    zh = check_lang(lang) == "zh"
    axes[0, 0].set_ylabel("真彩色" if zh else "true colour", fontsize=9)
    axes[1, 0].set_ylabel(
        "NDVI（白色：非有效像元）" if zh else "NDVI (white: not clear)", fontsize=9
    )
    if im is not None:
        fig.colorbar(im, ax=axes[1, :].tolist(), shrink=0.8, label="NDVI")
    fig.suptitle(f"{chips.farm_id} · {chips.crs}", fontsize=9, x=0.01, ha="left")
    return fig


def _outline_xy(geom: Any) -> tuple[list[np.ndarray], list[np.ndarray]]:
    polys = list(getattr(geom, "geoms", [geom]))
    xs, ys = [], []
    for p in polys:
        for ring in (p.exterior, *p.interiors):
            arr = np.asarray(ring.coords)
            xs.append(arr[:, 0])
            ys.append(arr[:, 1])
    return xs, ys
