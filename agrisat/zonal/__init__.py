"""Per-farm, per-item zonal statistics with exact pixel coverage weights.

Farms do not move between dates, so the expensive geometry work is done once per farm and grid:
:func:`coverage_weights` turns every farm into a sparse row of exact pixel coverage fractions
(exactextract's algorithm: the share of each pixel's area inside the polygon), grouped by
spatial block. :func:`zonal_stats` then applies those matrices to each item's index arrays — a
sparse matrix product per block and date — inside dask tasks, so each image block is read once
per date for all the farms on it. With the direct reader (:mod:`agrisat.pixels`) that product
is taken in the read task itself, from the DN of the pixels under farms only (same numbers).
A :class:`WeightsCache` (one file per farm group in the workdir's store, keyed by a hash of
the group's farms, geometries and pixel window) lets later nights load unchanged groups
instead of measuring them again.

Statistics for farm *f* and item *t*, with coverage weights *w_p*, clear mask *c_p* and finite
index value *v_p* of pixel *p*:

- ``clear_fraction`` = Σ w c / Σ w (0–1, coverage-weighted);
- ``clear_pixels`` = Σ w c (clear area in pixel units, rounded to 0.01);
- ``water_fraction`` = Σ w c water / Σ w c;
- ``<index>_mean`` = Σ w c v / Σ w c, ``<index>_std`` the weighted population std;
- ``status``: ``no_data`` if the item has no valid pixel on the farm, ``too_small`` if the farm
  covers fewer than ``min_pixels`` pixels, ``cloudy`` if ``clear_fraction`` <
  ``min_clear_fraction``, else ``ok``.
"""

from __future__ import annotations

from .cache import WeightsCache
from .stats import (
    STATUS_ORDER,
    release_shipped,
    release_zone,
    resolve_same_day,
    zonal_stats,
    zonal_stats_stack,
)
from .weights import FarmGroup, ZoneWeights, assign_zones, coverage_weights

__all__ = [
    "STATUS_ORDER",
    "FarmGroup",
    "WeightsCache",
    "ZoneWeights",
    "assign_zones",
    "coverage_weights",
    "release_shipped",
    "release_zone",
    "resolve_same_day",
    "zonal_stats",
    "zonal_stats_stack",
]
