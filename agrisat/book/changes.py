"""What changed in the loan book between two runs: farms whose polygon was redrawn.

A farm keeps its id when the bank redraws its polygon (a plot merged, split or mapped
again). Its observations so far were measured over the old polygon, and the ledger is kept
per scene for the whole book, so they are not read again over the new one: the farm's series
then mixes two fields, and detection compares the new field with the old one's history.
:func:`redrawn_farms` finds those farms so the run can say so.
"""

from __future__ import annotations

import geopandas as gpd
import numpy as np
import shapely

__all__ = ["REDRAWN_SHARE", "redrawn_farms"]

#: a polygon counts as redrawn when the area the old and new polygons do not share is more
#: than this share of their union (a vertex nudged by a metre on a 1 ha plot is ~1 %)
REDRAWN_SHARE = 0.10


def redrawn_farms(
    old: gpd.GeoDataFrame, new: gpd.GeoDataFrame, *, share: float = REDRAWN_SHARE
) -> list[str]:
    """Ids of the farms in both books whose polygon changed by more than ``share``.

    Parameters
    ----------
    old, new
        Checked books (``farm_id``, geometry); ``old`` is brought to ``new``'s CRS.
    share
        Area of the symmetric difference over the area of the union above which a polygon
        counts as redrawn.

    Returns
    -------
    list of str
        The redrawn farms' ids, in ``new``'s order.
    """
    if old.empty or new.empty:
        return []
    if old.crs is not None and new.crs is not None and old.crs != new.crs:
        old = old.to_crs(new.crs)
    before = dict(zip(old["farm_id"].astype(str), old.geometry.to_numpy(), strict=True))
    ids = new["farm_id"].astype(str).to_numpy()
    keep = np.array([i in before for i in ids], dtype=bool)
    if not keep.any():
        return []
    a = np.array([before[i] for i in ids[keep]], dtype=object)
    b = new.geometry.to_numpy()[keep]
    same = shapely.equals_exact(a, b, tolerance=0.0)
    moved = np.zeros(len(a), dtype=bool)
    rest = ~same
    if rest.any():
        with np.errstate(all="ignore"):
            union = shapely.area(shapely.union(a[rest], b[rest]))
            differ = shapely.area(shapely.symmetric_difference(a[rest], b[rest]))
            moved[rest] = differ > share * union
    return ids[keep][moved].tolist()
