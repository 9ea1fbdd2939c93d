"""The demo's small outputs: the loan book GeoJSON, ``truth.csv`` and ``demo.json``."""

from __future__ import annotations

import csv
import datetime as dt
import io
import json
from typing import Any

import shapely

from .. import __version__
from .events import TRUTH_COLUMNS
from .layout import Landscape, tile_polygon
from .spec import DemoSpec
from .world import DemoWorld

__all__ = ["book_geojson", "meta_json", "truth_csv"]


def book_geojson(land: Landscape) -> str:
    """The loan book as GeoJSON text (EPSG:4326), one feature per line, stable bytes."""
    lines = []
    for i in range(land.n_book):
        geom = shapely.geometry.mapping(land.parcels_ll[i])
        props = {
            "farm_id": land.farm_id[i],
            "loan_id": land.loan_id[i],
            "borrower_id": land.borrower_id[i],
            "crop": str(land.parcel_crop[i]),
            "exposure": float(land.exposure[i]),
            "region": land.region_names[int(land.parcel_region[i])],
        }
        feature = {"type": "Feature", "properties": props, "geometry": geom}
        lines.append(json.dumps(feature, separators=(",", ":")))
    head = '{"type":"FeatureCollection","name":"shandong_demo_book","features":[\n'
    return head + ",\n".join(lines) + "\n]}\n"


def truth_csv(world: DemoWorld) -> str:
    """``truth.csv`` text: one row per (event, farm), dates YYYY-MM-DD."""
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\n")
    writer.writerow(TRUTH_COLUMNS)
    for r in world.plan.truth:
        writer.writerow(
            [
                r.event_id,
                r.farm_id,
                r.hazard,
                r.start.isoformat(),
                r.end.isoformat(),
                r.crop,
                r.note,
            ]
        )
    return buf.getvalue()


def _non_events(spec: DemoSpec, world: DemoWorld) -> list[dict[str, Any]]:
    land, plan = world.land, world.plan
    out: list[dict[str, Any]] = []
    if plan.regional_stress is not None:
        region, frac, start, end = plan.regional_stress
        farms = [land.farm_id[i] for i in range(land.n_book) if land.parcel_region[i] == region]
        out.append(
            {
                "kind": "regional_stress",
                "region": land.region_names[region],
                "ndvi_deficit": frac,
                "start": start.isoformat(),
                "end": end.isoformat(),
                "farms": farms,
            }
        )
    out.append(
        {
            "kind": "early_harvest",
            "shift_days": -10,
            "crop": "winter_wheat",
            "farms": [land.farm_id[p] for p in plan.early_harvest],
        }
    )
    lo, hi = spec.cloudy_weeks
    out.append({"kind": "cloudy_weeks", "start": lo.isoformat(), "end": hi.isoformat()})
    for prev, cur in zip(spec.conventions, spec.conventions[1:], strict=False):
        out.append(
            {
                "kind": "baseline_change",
                "date": cur[0].isoformat(),
                "from": {"convention": prev[1], "baseline": prev[2]},
                "to": {"convention": cur[1], "baseline": cur[2]},
                "in_season": spec.season_start <= cur[0] <= spec.season_end,
            }
        )
    y = spec.crop_year
    out.append(
        {
            "kind": "normal_harvest",
            "crop": "winter_wheat",
            "start": f"{y}-05-25",
            "end": f"{y}-06-20",
        }
    )
    out.append(
        {"kind": "normal_harvest", "crop": "maize", "start": f"{y}-09-18", "end": f"{y}-10-12"}
    )
    return out


def meta_json(
    spec: DemoSpec,
    world: DemoWorld,
    records: list[dict[str, Any]],
    duplicates: list[tuple[str, dt.date]],
) -> dict[str, Any]:
    """Content of ``demo.json`` (see the keys in :func:`agrisat.demo.generate_demo`)."""
    land = world.land
    by_conv: dict[str, int] = {}
    for rec in records:
        by_conv[rec["convention"]] = by_conv.get(rec["convention"], 0) + 1
    hazards: dict[str, int] = {}
    for r in world.plan.truth:
        hazards[r.hazard] = hazards.get(r.hazard, 0) + 1
    tile_polys = [tile_polygon(g, land.world_epsg) for g in land.tiles]
    book = land.parcels_world[: land.n_book]
    in_tile = [shapely.within(book, t) for t in tile_polys]
    tiles = []
    for g in land.tiles:
        x0, y0, x1, y1 = g.bounds()
        tiles.append(
            {
                "tile_id": g.tile_id,
                "epsg": g.epsg,
                "transform_10m": list(tuple(g.transform)[:6]),
                "shape_10m": list(g.shape),
                "transform_20m": list(tuple(g.transform20)[:6]),
                "shape_20m": list(g.shape20),
                "bounds": [x0, y0, x1, y1],
            }
        )
    return {
        "generator": "agrisat.demo",
        "agrisat_version": __version__,
        "spec": spec.to_json(),
        "crop_year": spec.crop_year,
        "season": {"start": spec.season_start.isoformat(), "end": spec.season_end.isoformat()},
        "tiles": tiles,
        "n_farms": land.n_book,
        "n_parcels": len(land.parcels_world),
        "farms_in_both_tiles": int((in_tile[0] & in_tile[1]).sum()),
        "n_dates": len(world.dates),
        "n_items": len(records),
        "items_by_convention": dict(sorted(by_conv.items())),
        "duplicates": [
            {
                "tile_id": t,
                "date": d.isoformat(),
                "items": sorted(
                    r["item_id"]
                    for r in records
                    if land.tiles[r["tile"]].tile_id == t and world.dates[r["d"]] == d
                ),
            }
            for t, d in duplicates
        ],
        "events": hazards,
        "non_events": _non_events(spec, world),
        "files": {"catalog": "catalog/catalog.json", "book": "book.geojson", "truth": "truth.csv"},
    }
