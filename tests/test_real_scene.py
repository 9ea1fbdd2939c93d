"""A real Sentinel-2 scene (T33UUU, 2017-02-16; JP2 bands at 10/20/60 m) through
catalog → cube → zonal, checked against an independent reference computed here with rasterio
and shapely for the scene's 30 reference polygons."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import dask
import geopandas as gpd
import numpy as np
import pandas as pd
import pystac
import rasterio
import shapely
from rasterio.warp import transform_bounds

from agrisat.catalog import normalize_item
from agrisat.config import CubeSettings
from agrisat.cube import grid_for, load_cube
from agrisat.indices import compute_index
from agrisat.zonal import coverage_weights, zonal_stats

from .conftest import shared_path

BANDS = {"B02": "blue", "B03": "green", "B04": "red", "B08": "nir", "B11": "swir16"}


def _item(img: Path) -> pystac.Item:
    assets = {}
    for key in BANDS:
        href = img / f"T33UUU_20170216T102101_{key}.jp2"
        with rasterio.open(href) as ds:
            t = ds.transform
            assets[key] = pystac.Asset(
                str(href),
                media_type="image/jp2",
                roles=["data"],
                extra_fields={
                    "proj:shape": [ds.height, ds.width],
                    "proj:transform": [t.a, t.b, t.c, t.d, t.e, t.f],
                },
            )
            bounds = ds.bounds
    lonlat = shapely.box(*transform_bounds("EPSG:32633", "EPSG:4326", *bounds))
    # wrapped as the test's own local item: a 2017 L1C product, baseline 02.04 (no offset)
    item = pystac.Item(
        "T33UUU_20170216T102101",
        shapely.geometry.mapping(lonlat),
        list(lonlat.bounds),
        dt.datetime(2017, 2, 16, 10, 21, 1, tzinfo=dt.UTC),
        {"proj:epsg": 32633, "s2:processing_baseline": "02.04"},
    )
    for key, asset in assets.items():
        item.add_asset(key, asset)
    return item


def test_real_scene_polygons_match_independent_reference() -> None:
    folder = shared_path("s2-scenes", "t33uuu-20170216-l1c")
    item = normalize_item(_item(folder / "IMG_DATA"))
    assert item.assets["red"].extra_fields["agrisat:offset"] == 0.0  # baseline 02.04
    assert item.assets["red"].extra_fields["agrisat:scale"] == 1e-4
    polys = gpd.read_file(folder / "s2l1c_ref.gpkg")
    polys["farm_id"] = polys["pid"].astype(str)
    farms = polys.to_crs(4326)

    # the pipeline's grid: the farms' extent (one polygon lies outside the scene, one straddles it)
    grid = grid_for(tuple(polys.total_bounds), 32633)
    cube = load_cube(
        [item], grid, bands=["red", "nir", "swir16"], settings=CubeSettings(chunk_size=512)
    )
    for name in ("ndvi", "ndmi"):
        cube[name] = compute_index(name, {v: cube[v] for v in ("red", "nir", "swir16")})
    weights = coverage_weights(farms, grid, block=512)
    df = pd.concat(dask.compute(*zonal_stats(cube, weights, indices=["ndvi", "ndmi"])))
    df = df.set_index("farm_id")
    assert len(df) == 30
    # L1C has no SCL: every valid pixel counts as clear. Polygon 18 lies outside the scene.
    assert df.loc["18", "status"] == "no_data"
    assert np.isnan(df.loc["18", "ndvi_mean"])
    assert (df.drop(index="18")["status"] == "ok").all(), df["status"].value_counts()

    # Independent reference: rasterio reads, shapely pixel-box intersections, numpy.
    def read(key: str) -> tuple[np.ndarray, rasterio.Affine]:
        with rasterio.open(folder / "IMG_DATA" / f"T33UUU_20170216T102101_{key}.jp2") as ds:
            return ds.read(1).astype(np.float64) * 1e-4, ds.transform

    red, t10 = read("B04")
    nir, _ = read("B08")
    swir20, _ = read("B11")
    swir = np.repeat(np.repeat(swir20, 2, axis=0), 2, axis=1)[: red.shape[0], : red.shape[1]]
    worst = {"ndvi": 0.0, "ndmi": 0.0}
    h, w = red.shape
    for pid, geom in zip(polys["farm_id"], farms.to_crs(32633).geometry, strict=True):
        if pid == "18":
            continue
        x0, y0, x1, y1 = geom.bounds
        c0, c1 = max(0, int((x0 - t10.c) // 10)), min(w, int(np.ceil((x1 - t10.c) / 10)))
        r0, r1 = max(0, int((t10.f - y1) // 10)), min(h, int(np.ceil((t10.f - y0) / 10)))
        rr, cc = np.mgrid[r0:r1, c0:c1]
        boxes = shapely.box(
            t10.c + cc * 10, t10.f - (rr + 1) * 10, t10.c + (cc + 1) * 10, t10.f - rr * 10
        )
        cov = shapely.area(shapely.intersection(boxes, geom)) / 100.0
        r, n, s = red[r0:r1, c0:c1], nir[r0:r1, c0:c1], swir[r0:r1, c0:c1]
        for name, val in (("ndvi", (n - r) / (n + r)), ("ndmi", (n - s) / (n + s))):
            ref = (cov * val).sum() / cov.sum()
            worst[name] = max(worst[name], abs(df.loc[pid, f"{name}_mean"] - ref))
        assert abs(df.loc[pid, "clear_pixels"] - cov.sum()) < 0.01
        assert abs(df.loc[pid, "clear_fraction"] - cov.sum() * 100.0 / geom.area) < 1e-4
    assert worst["ndvi"] < 1e-4, worst
    assert worst["ndmi"] < 1e-4, worst
